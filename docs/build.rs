//! Turns the ```` ```rust ```` blocks of `README.md` and `docs/*.md` into doctests of this crate:
//! one empty module per block, named after its page and line, whose documentation is the block
//! (excerpts, which the workspace compiles where they come from, left out). A block without `fn main` is wrapped in
//! one returning `Result<(), Box<dyn Error>>`, with hidden lines, so that it may use `?`.

use std::{env, fs, path::Path};

#[path = "src/markdown.rs"]
#[allow(dead_code)]
mod markdown;

fn main() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = docs.parent().expect("docs/ lives in the repository");
    let mut pages = vec![root.join("README.md")];
    let mut chapters: Vec<_> = fs::read_dir(docs)
        .expect("docs/ is readable")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    chapters.sort();
    pages.extend(chapters);
    println!("cargo:rerun-if-changed={}", docs.display());
    let mut generated = String::new();
    for page in &pages {
        println!("cargo:rerun-if-changed={}", page.display());
        let text = fs::read_to_string(page).expect("a page is readable");
        let name = page
            .strip_prefix(root)
            .unwrap_or(page)
            .display()
            .to_string();
        let page_module = name
            .trim_end_matches(".md")
            .replace(|character: char| !character.is_ascii_alphanumeric(), "_")
            .to_lowercase();
        for block in markdown::code_blocks(&text)
            .iter()
            .filter(|block| block.language == "rust" && block.excerpt.is_none())
        {
            // One module per block, named after its page and line, so that a failing doctest
            // says where it is written: `docs_neuron_line_37`.
            let documentation = doctest(&name, block);
            generated.push_str(&format!(
                "#[doc = {documentation:?}]\npub mod {page_module}_line_{} {{}}\n",
                block.line
            ));
        }
    }
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    fs::write(Path::new(&out).join("chapters.rs"), generated).expect("OUT_DIR is writable");
}

/// One block as a doctest, introduced by where it comes from.
fn doctest(page: &str, block: &markdown::CodeBlock) -> String {
    let mut info = String::from("rust");
    for attribute in &block.attributes {
        info.push(',');
        info.push_str(attribute);
    }
    let code = if block.code.contains("fn main") {
        block.code.clone()
    } else {
        format!(
            "# fn main() -> Result<(), Box<dyn std::error::Error>> {{\n{}# Ok(())\n# }}\n",
            block.code
        )
    };
    format!("{page}, line {}:\n\n```{info}\n{code}```\n\n", block.line)
}
