//! Files from the Hugging Face Hub, such as a pretrained tokenizer: `hub:gpt2` is GPT-2's
//! `tokenizer.json`, `hub:OWNER/REPO/PATH` any file of a model repository.
//!
//! A file is downloaded once (with hf-hub) into a cache folder, by convention
//! `<data dir>/hub-cache` ([`hub_cache_dir`]); later calls return the cached copy without touching
//! the network, so a program works offline once its files are there. `HF_ENDPOINT` points at
//! another Hub (a mirror, or a test server), and `HF_TOKEN` or hf-hub's token file, when present,
//! authenticate.
//!
//! ```no_run
//! use dl_data::{hub_cache_dir, hub_file, resolve_data_dir, tokenizer_spec};
//! let cache = hub_cache_dir(&resolve_data_dir(None));
//! let path = hub_file("hub:openai-community/gpt2/tokenizer.json", &cache)?;
//! let same = tokenizer_spec("hub:gpt2")?.fetch(&cache, &Default::default())?;
//! # Ok::<(), dl_data::DataError>(())
//! ```

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{DataError, Result};

/// What starts a Hub spec.
pub const HUB_PREFIX: &str = "hub:";

/// The file a tokenizer spec names when it gives only a repository.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// One file of a Hub model repository, at its `main` revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// The repository, `OWNER/REPO` (or a legacy single name such as `gpt2`).
    pub repo: String,
    /// The file's path inside the repository, e.g. `tokenizer.json` or `onnx/tokenizer.json`.
    pub file: String,
}

/// How [`HubFile::fetch`] reaches the Hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The Hub's address; `None` means `$HF_ENDPOINT` if set, else `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Show hf-hub's progress bar (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for HubOptions {
    /// The endpoint from the environment, progress shown.
    fn default() -> Self {
        Self {
            endpoint: None,
            progress: true,
        }
    }
}

/// Whether `text` is a Hub spec (starts with `hub:`) rather than a local path.
pub fn is_hub_spec(text: &str) -> bool {
    text.starts_with(HUB_PREFIX)
}

/// The cache folder for Hub files inside a data directory: `data_dir/hub-cache`.
pub fn hub_cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("hub-cache")
}

/// The local path of `hub:OWNER/REPO/FILE`, downloading it into `cache_dir` the first time.
pub fn hub_file(spec: &str, cache_dir: &Path) -> Result<PathBuf> {
    HubFile::parse(spec)?.fetch(cache_dir, &HubOptions::default())
}

/// Reads a tokenizer spec: `hub:gpt2` and `hub:OWNER/REPO` name the repository's
/// `tokenizer.json`; `hub:OWNER/REPO/FILE` names FILE.
///
/// ```
/// let spec = dl_data::tokenizer_spec("hub:gpt2")?;
/// assert_eq!((spec.repo.as_str(), spec.file.as_str()), ("gpt2", "tokenizer.json"));
/// # Ok::<(), dl_data::DataError>(())
/// ```
pub fn tokenizer_spec(spec: &str) -> Result<HubFile> {
    let parts = split(spec, "hub:NAME, hub:OWNER/REPO or hub:OWNER/REPO/FILE")?;
    Ok(match parts.as_slice() {
        [name] => HubFile::new(name, TOKENIZER_FILE),
        [owner, repo] => HubFile::new(&format!("{owner}/{repo}"), TOKENIZER_FILE),
        [owner, repo, file @ ..] => HubFile::new(&format!("{owner}/{repo}"), &file.join("/")),
        [] => unreachable!("split returns at least one part"),
    })
}

impl HubFile {
    fn new(repo: &str, file: &str) -> Self {
        Self {
            repo: repo.to_string(),
            file: file.to_string(),
        }
    }

    /// Reads `hub:OWNER/REPO/FILE`; FILE may contain slashes (`hub:o/r/onnx/tokenizer.json`).
    ///
    /// ```
    /// let file = dl_data::HubFile::parse("hub:openai-community/gpt2/tokenizer.json")?;
    /// assert_eq!(file.repo, "openai-community/gpt2");
    /// assert!(dl_data::HubFile::parse("hub:gpt2").is_err()); // no file: see tokenizer_spec
    /// # Ok::<(), dl_data::DataError>(())
    /// ```
    pub fn parse(spec: &str) -> Result<HubFile> {
        let expected = "hub:OWNER/REPO/FILE";
        match split(spec, expected)?.as_slice() {
            [owner, repo, file @ ..] if !file.is_empty() => {
                Ok(HubFile::new(&format!("{owner}/{repo}"), &file.join("/")))
            }
            _ => Err(bad_spec(spec, expected, "it names no file")),
        }
    }

    /// The file's URL on `endpoint`, as hf-hub requests it.
    pub fn url(&self, endpoint: &str) -> String {
        let endpoint = endpoint.trim_end_matches('/');
        format!("{endpoint}/{}/resolve/main/{}", self.repo, self.file)
    }

    /// The cached copy in `cache_dir`, if the file was fetched before.
    pub fn cached(&self, cache_dir: &Path) -> Option<PathBuf> {
        Cache::new(cache_dir.to_path_buf())
            .repo(self.repo())
            .get(&self.file)
    }

    /// The cached copy, downloading it into `cache_dir` first if there is none.
    pub fn fetch(&self, cache_dir: &Path, options: &HubOptions) -> Result<PathBuf> {
        if let Some(path) = self.cached(cache_dir) {
            return Ok(path);
        }
        let mut builder = ApiBuilder::from_env()
            .with_cache_dir(cache_dir.to_path_buf())
            .with_progress(options.progress && std::io::stderr().is_terminal())
            .with_user_agent("dl-practice", env!("CARGO_PKG_VERSION"));
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()) {
            builder = builder.with_token(Some(token));
        }
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let failed = |problem: String| DataError::Hub {
            spec: self.to_string(),
            url: self.url(&endpoint),
            problem,
        };
        let api = builder.build().map_err(|error| failed(error.to_string()))?;
        api.repo(self.repo())
            .download(&self.file)
            .map_err(|error| failed(error.to_string()))
    }

    fn repo(&self) -> Repo {
        Repo::new(self.repo.clone(), RepoType::Model)
    }
}

impl fmt::Display for HubFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HUB_PREFIX}{}/{}", self.repo, self.file)
    }
}

/// The `/`-separated parts after `hub:`, none empty, `.` or `..`.
fn split<'a>(spec: &'a str, expected: &str) -> Result<Vec<&'a str>> {
    let Some(rest) = spec.strip_prefix(HUB_PREFIX) else {
        return Err(bad_spec(spec, expected, "it does not start with hub:"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts
        .iter()
        .any(|part| part.is_empty() || *part == "." || *part == "..")
    {
        return Err(bad_spec(spec, expected, "a part is empty, . or .."));
    }
    Ok(parts)
}

fn bad_spec(spec: &str, expected: &str, problem: &str) -> DataError {
    DataError::config(
        format!("Hub spec '{spec}'"),
        format!("{problem}; expected {expected}"),
    )
}
