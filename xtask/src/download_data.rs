//! `cargo xtask download-data`: fetches the datasets (and Hub tokenizers) the programs need into
//! the data directory, verifying sizes, SHA-256 and published MD5s, and says what it did per file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dl_data::{
    download_dataset, hub_cache_dir, resolve_data_dir, tokenizer_spec, DownloadOptions,
    FileOutcome, HubOptions, Manifest, Source,
};

/// The datasets fetched when neither --dataset nor --tokenizer is given.
const DEFAULT_DATASETS: [&str; 2] = ["mnist", "tinyshakespeare"];

/// Options of `cargo xtask download-data`.
#[derive(Args, Debug)]
pub struct DownloadData {
    /// Dataset to fetch: mnist, fashion-mnist, tinyshakespeare or all; repeatable. Default: mnist
    /// and tinyshakespeare (none when only --tokenizer is given).
    #[arg(long = "dataset", value_name = "KEY")]
    datasets: Vec<String>,
    /// Where the data goes; default $DL_DATA_DIR, else datasets/.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A folder (holding KEY/FILE or FILE) or an http(s) base URL used instead of the
    /// manifest's mirrors: for offline machines and private mirrors.
    #[arg(long, value_name = "URL_OR_DIR")]
    mirror: Option<String>,
    /// Download again even files already present and verified.
    #[arg(long)]
    force: bool,
    /// Times a dropped connection is retried before the next source.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// A Hugging Face tokenizer to cache in DATA_DIR/hub-cache, e.g. hub:gpt2 or
    /// hub:OWNER/REPO[/FILE]; repeatable. HF_ENDPOINT selects another Hub.
    #[arg(long = "tokenizer", value_name = "hub:SPEC")]
    tokenizers: Vec<String>,
}

/// Runs the command, printing one line per file and a summary.
pub fn run(arguments: DownloadData) -> Result<()> {
    let data_dir = resolve_data_dir(arguments.data_dir.as_deref());
    let keys = dataset_keys(&arguments)?;
    // Check every spec before downloading anything, so a typo costs no waiting.
    let tokenizers = arguments
        .tokenizers
        .iter()
        .map(|spec| tokenizer_spec(spec))
        .collect::<dl_data::Result<Vec<_>>>()?;
    let options = DownloadOptions {
        mirror: arguments.mirror.as_deref().map(Source::parse),
        force: arguments.force,
        retries: arguments.retries,
        ..DownloadOptions::default()
    };
    let (mut downloaded, mut present) = (0, 0);
    for key in &keys {
        let report = download_dataset(key, &data_dir, &options)
            .with_context(|| format!("downloading {key} into {}", data_dir.display()))?;
        for file in &report.files {
            let shown = shown(&file.path);
            match &file.outcome {
                FileOutcome::AlreadyPresent => {
                    println!("{shown}: already present, verified ({})", file.checksums);
                }
                FileOutcome::Downloaded { source, .. } => {
                    println!(
                        "{shown}: downloaded from {source} ({} bytes, {} verified)",
                        file.size, file.checksums
                    );
                }
            }
        }
        downloaded += report.downloaded();
        present += report.already_present();
    }
    let cache = hub_cache_dir(&data_dir);
    for tokenizer in &tokenizers {
        let cached = tokenizer.cached(&cache).is_some();
        let path = tokenizer
            .fetch(&cache, &HubOptions::default())
            .with_context(|| format!("fetching {tokenizer} into {}", cache.display()))?;
        let what = if cached {
            "already cached"
        } else {
            "downloaded"
        };
        println!("{tokenizer}: {what}, {}", shown(&path));
    }
    println!(
        "done: {} in {} ({downloaded} downloaded, {present} already present){}",
        plural(downloaded + present, "file"),
        data_dir.display(),
        match tokenizers.len() {
            0 => String::new(),
            count => format!(", {} cached", plural(count, "tokenizer")),
        }
    );
    Ok(())
}

/// The dataset keys asked for, checked against the manifest; `all` means every one.
fn dataset_keys(arguments: &DownloadData) -> Result<Vec<String>> {
    let manifest = Manifest::builtin();
    if arguments.datasets.is_empty() {
        let defaults = if arguments.tokenizers.is_empty() {
            DEFAULT_DATASETS.map(String::from).to_vec()
        } else {
            Vec::new()
        };
        return Ok(defaults);
    }
    let mut keys: Vec<String> = Vec::new();
    for key in &arguments.datasets {
        let chosen = if key == "all" {
            manifest.keys().into_iter().map(String::from).collect()
        } else if manifest.dataset(key).is_ok() {
            vec![key.clone()]
        } else {
            bail!(
                "unknown dataset '{key}'; choose one of {} or all",
                manifest.keys().join(", ")
            );
        };
        for key in chosen {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

/// A path relative to the current directory when it is inside it, for shorter lines.
fn shown(path: &Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|current| path.strip_prefix(current).ok().map(Path::to_path_buf));
    relative
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
