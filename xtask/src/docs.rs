//! `cargo xtask docs`: the book's checks that need no compiler (excerpts, links, contents), and
//! with `--commands` the one that needs the built binaries: every `cargo run` line of a
//! ```` ```sh ```` block names an existing package or example, and its arguments parse.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};
use clap::Args;
use dl_book::{excerpt, links, markdown, pages, repository_root, unlisted_pages, Problem};

/// Settings of `docs`.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// Rewrite every excerpt from its source before checking.
    #[arg(long)]
    sync: bool,
    /// Also check that every `cargo run` command of the book parses, by running the built
    /// binary (the newer of release and debug) with the command's arguments and `--help`
    /// (build them first: `cargo build --workspace --bins`).
    #[arg(long)]
    commands: bool,
}

/// Runs the checks and fails listing every problem.
pub fn run(arguments: &DocsArgs) -> Result<()> {
    let root = repository_root();
    let pages = pages(&root)?;
    if arguments.sync {
        for page in &pages {
            let changed = excerpt::sync(&root, page)?;
            if changed > 0 {
                println!("{}: {changed} excerpt(s) rewritten", page.display());
            }
        }
    }
    let mut problems: Vec<Problem> = Vec::new();
    for page in &pages {
        problems.extend(excerpt::check(&root, page)?);
    }
    problems.extend(links::check(&root, &pages)?);
    for page in unlisted_pages(&root)? {
        problems.push(Problem::new(
            &page,
            1,
            "not linked from the contents, docs/README.md; list it under its chapter".into(),
        ));
    }
    let mut commands = 0;
    if arguments.commands {
        for page in &pages {
            let (checked, found) = check_commands(&root, page)?;
            commands += checked;
            problems.extend(found);
        }
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    if !problems.is_empty() {
        bail!("{} problem(s) in the book", problems.len());
    }
    println!(
        "{} pages: excerpts equal their source, links resolve, every chapter is in the contents{}",
        pages.len(),
        if arguments.commands {
            format!("; {commands} commands parse")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Checks the `cargo run` lines of the shell blocks of `page`; returns how many it checked and
/// the problems.
fn check_commands(root: &Path, page: &Path) -> Result<(usize, Vec<Problem>)> {
    let text = std::fs::read_to_string(root.join(page))
        .with_context(|| format!("reading {}", page.display()))?;
    let mut checked = 0;
    let mut problems = Vec::new();
    for block in markdown::code_blocks(&text) {
        if !matches!(block.language.as_str(), "sh" | "bash" | "shell" | "console") {
            continue;
        }
        for command in shell_commands(&block.code) {
            let Some(invocation) = CargoRun::parse(&command) else {
                continue;
            };
            checked += 1;
            if let Err(problem) = invocation.check(root) {
                problems.push(Problem::new(
                    page,
                    block.line,
                    format!("`{}`: {problem}", command.join(" ")),
                ));
            }
        }
    }
    Ok((checked, problems))
}

/// The commands of a shell block, split into words: continuation lines joined, comments
/// dropped, each pipeline or list cut at its first `|`, `&&`, `;` or redirection.
fn shell_commands(code: &str) -> Vec<Vec<String>> {
    let joined = code.replace("\\\n", " ");
    joined
        .lines()
        .map(split_words)
        .map(|words| {
            words
                .into_iter()
                .take_while(|word| {
                    !matches!(word.as_str(), "|" | "&&" | "||" | ";" | ">" | "2>&1" | "&")
                        && !word.starts_with('#')
                        && !word.starts_with('>')
                })
                .collect::<Vec<_>>()
        })
        .filter(|words| !words.is_empty())
        .collect()
}

/// Splits a line into words as a shell would for simple quoting ('…' and "…").
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for character in line.chars() {
        match (quote, character) {
            (Some(open), _) if character == open => quote = None,
            (Some(_), _) => word.push(character),
            (None, '\'' | '"') => {
                quote = Some(character);
                in_word = true;
            }
            (None, _) if character.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, _) => {
                word.push(character);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A `cargo run -p PACKAGE [--example NAME] [-- ARGS]` or `cargo xtask ARGS` line.
#[derive(Debug, PartialEq, Eq)]
struct CargoRun {
    package: String,
    example: Option<String>,
    arguments: Vec<String>,
}

impl CargoRun {
    /// The invocation in `words` (environment assignments before `cargo` skipped), if it is one.
    fn parse(words: &[String]) -> Option<Self> {
        let start = words.iter().position(|word| !word.contains('='))?;
        let words = &words[start..];
        if words.first()? != "cargo" {
            return None;
        }
        match words.get(1)?.as_str() {
            "xtask" => Some(Self {
                package: "xtask".into(),
                example: None,
                arguments: words[2..].to_vec(),
            }),
            "run" => {
                let separator = words.iter().position(|word| word == "--");
                let options = &words[2..separator.unwrap_or(words.len())];
                let value_of = |flag: &str| {
                    options
                        .iter()
                        .position(|word| word == flag)
                        .and_then(|index| options.get(index + 1))
                        .cloned()
                };
                Some(Self {
                    package: value_of("-p").or_else(|| value_of("--package"))?,
                    example: value_of("--example"),
                    arguments: separator.map_or_else(Vec::new, |index| words[index + 1..].to_vec()),
                })
            }
            _ => None,
        }
    }

    /// Whether the example exists, or the built binary accepts the arguments.
    fn check(&self, root: &Path) -> std::result::Result<(), String> {
        if let Some(example) = &self.example {
            let source = root.join("examples").join(format!("{example}.rs"));
            return if source.exists() {
                Ok(())
            } else {
                Err(format!("no example {}", source.display()))
            };
        }
        let Some(binary) = built_binary(root, &self.package) else {
            return Err(format!(
                "{} is not built; run `cargo build --workspace --bins` first",
                self.package
            ));
        };
        let output = Command::new(&binary)
            .args(&self.arguments)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("{}: {error}", binary.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr)
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("the arguments do not parse")
                .to_string())
        }
    }
}

/// The newest build of `package`'s binary, release or debug: any will do to parse arguments.
fn built_binary(root: &Path, package: &str) -> Option<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    ["release", "debug"]
        .iter()
        .map(|profile| {
            target
                .join(profile)
                .join(format!("{package}{}", std::env::consts::EXE_SUFFIX))
        })
        .filter_map(|path| {
            let modified = path.metadata().and_then(|meta| meta.modified()).ok()?;
            Some((modified, path))
        })
        .max()
        .map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line)
    }

    #[test]
    fn commands_are_split_like_a_shell_and_cut_at_pipes_and_comments() {
        assert_eq!(
            words(r#"text-gen generate --prompt "The meaning of life is" --length 10"#),
            [
                "text-gen",
                "generate",
                "--prompt",
                "The meaning of life is",
                "--length",
                "10"
            ]
        );
        let commands = shell_commands(
            "cargo run --release -p mnist-classifier   # the main job\n\
             DL_PLAIN_CANDLE=1 cargo run --release -p mnist-classifier -- train \\\n  --epochs 1 2>&1 | tail -3\n",
        );
        assert_eq!(commands.len(), 2);
        assert_eq!(
            commands[0],
            ["cargo", "run", "--release", "-p", "mnist-classifier"]
        );
        let run = CargoRun::parse(&commands[1]).unwrap();
        assert_eq!(run.package, "mnist-classifier");
        assert_eq!(run.arguments, ["train", "--epochs", "1"]);
        let example = CargoRun::parse(&words(
            "cargo run --release -p dl-examples --example 03-neuron",
        ))
        .unwrap();
        assert_eq!(example.example.as_deref(), Some("03-neuron"));
        assert_eq!(
            CargoRun::parse(&words("cargo xtask bench cnn"))
                .unwrap()
                .arguments,
            ["bench", "cnn"]
        );
        assert_eq!(CargoRun::parse(&words("cargo test -p dl-nn")), None);
        assert_eq!(CargoRun::parse(&words("ls docs")), None);
    }
}
