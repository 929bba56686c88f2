//! Finding the text and turning it into token ids: Tiny Shakespeare by default (downloaded
//! through dl-data when missing), any UTF-8 file with `--corpus`, and the tokenizer named by
//! `--tokenizer`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dl_data::{DownloadOptions, HubOptions, Tokenizer};

/// The dataset key of Tiny Shakespeare in dl-data's manifest.
const SHAKESPEARE_KEY: &str = "tinyshakespeare";
/// Its one file.
const SHAKESPEARE_FILE: &str = "input.txt";

/// The corpus to train on: `corpus` if given, else Tiny Shakespeare in the data directory,
/// downloaded first unless `offline`.
pub fn corpus_path(corpus: Option<&Path>, data_dir: &Path, offline: bool) -> Result<PathBuf> {
    if let Some(path) = corpus {
        return Ok(path.to_path_buf());
    }
    let path = data_dir.join(SHAKESPEARE_KEY).join(SHAKESPEARE_FILE);
    if path.is_file() {
        return Ok(path);
    }
    if offline {
        anyhow::bail!(
            "Tiny Shakespeare not found at {} and --offline forbids downloading it; run `cargo xtask download-data --dataset {SHAKESPEARE_KEY}`, pass --data-dir, or give your own text with --corpus",
            path.display()
        );
    }
    println!(
        "Tiny Shakespeare is not in {}: downloading it (use --data-dir or $DL_DATA_DIR to point elsewhere)",
        path.parent().unwrap_or(data_dir).display()
    );
    let directory = dl_data::ensure_dataset(SHAKESPEARE_KEY, data_dir, &DownloadOptions::default())
        .with_context(|| {
            format!(
                "Tiny Shakespeare is missing from {} and could not be downloaded; fetch it elsewhere and run `cargo xtask download-data --dataset {SHAKESPEARE_KEY} --mirror DIR_OR_URL --data-dir {}`, or pass --corpus FILE",
                data_dir.display(),
                data_dir.display()
            )
        })?;
    Ok(directory.join(SHAKESPEARE_FILE))
}

/// Reads a corpus: UTF-8 (an error names the byte offset of the first invalid byte), not empty.
pub fn read_text(path: &Path) -> Result<String> {
    Ok(dl_data::read_corpus(path)?)
}

/// Builds the tokenizer `spec` names: `char`, `bpe` (trained on `text` with `vocab_size`
/// tokens), `hub:OWNER/REPO[/FILE]`, or the path of a tokenizer file.
pub fn build_tokenizer(
    spec: &str,
    text: &str,
    vocab_size: usize,
    data_dir: &Path,
    offline: bool,
) -> Result<Tokenizer> {
    match spec {
        "char" => Ok(Tokenizer::char_level(text)?),
        "bpe" => {
            println!("training a byte-level BPE tokenizer of {vocab_size} tokens on the corpus");
            Ok(Tokenizer::train_bpe(text, vocab_size)?)
        }
        hub if dl_data::is_hub_spec(hub) => {
            let file = dl_data::tokenizer_spec(hub)?;
            let cache = dl_data::hub_cache_dir(data_dir);
            let path = match file.cached(&cache) {
                Some(path) => path,
                None if offline => anyhow::bail!(
                    "{hub}: not in the Hub cache {} and --offline forbids downloading it",
                    cache.display()
                ),
                None => file.fetch(&cache, &HubOptions::default())?,
            };
            Ok(Tokenizer::from_file(&path)?)
        }
        path => {
            let path = Path::new(path);
            if !path.exists() {
                anyhow::bail!(
                    "--tokenizer {}: no such file; use char, bpe, hub:OWNER/REPO or the path of a tokenizer.json",
                    path.display()
                );
            }
            Ok(Tokenizer::from_file(path)?)
        }
    }
}

/// The token ids of `text`, with the corpus named in the error (a character vocabulary lists
/// the characters it lacks).
pub fn encode(tokenizer: &Tokenizer, text: &str, path: &Path) -> Result<Vec<u32>> {
    tokenizer
        .encode(text)
        .with_context(|| format!("cannot tokenize {}", path.display()))
}
