//! The dataset manifest: which datasets `download-data` knows, where each file comes from and how
//! to check it (byte size, SHA-256, published MD5).
//!
//! The project's manifest is `datasets/manifest.toml`, embedded in the library at build time, so
//! [`Manifest::builtin`] works from any directory. Tests and forks build their own with
//! [`Manifest::from_toml`]:
//!
//! ```
//! let manifest = dl_data::Manifest::from_toml(r#"
//!     [datasets.tiny]
//!     name = "Tiny"
//!     license = "CC0"
//!     urls = ["https://example.org/tiny/"]
//!     [[datasets.tiny.files]]
//!     name = "data.txt"
//!     size = 4
//!     md5 = "d3b07384d113edec49eaa6238ad5ff00"
//! "#)?;
//! assert_eq!(manifest.dataset("tiny")?.files[0].size, 4);
//! # Ok::<(), dl_data::DataError>(())
//! ```

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use md5::Md5;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// The text of `datasets/manifest.toml`, as compiled into the library.
pub const BUILTIN_MANIFEST: &str = include_str!("../../../datasets/manifest.toml");

/// Every dataset `download-data` knows, by key (`mnist`, `fashion-mnist`, `tinyshakespeare`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    datasets: BTreeMap<String, DatasetEntry>,
}

/// One dataset: its files live in `<data dir>/<key>/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// The key used on the command line and as the directory name, e.g. `fashion-mnist`.
    #[serde(skip)]
    pub key: String,
    /// The name people know it by, e.g. "Fashion-MNIST".
    pub name: String,
    /// Its license, e.g. "CC BY-SA 3.0".
    pub license: String,
    /// Where it is described, if anywhere.
    #[serde(default)]
    pub homepage: Option<String>,
    /// Base URLs tried in order; a file's URL is the base followed by the file's name.
    pub urls: Vec<String>,
    /// The files that make up the dataset.
    pub files: Vec<FileEntry>,
}

/// One file of a dataset, with what a correct copy must match. At least one checksum is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// The file's name, e.g. `train-images-idx3-ubyte.gz`; no directories.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, 64 lowercase hex digits, if known.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Its MD5 (usually the one the dataset's authors published), 32 lowercase hex digits.
    #[serde(default)]
    pub md5: Option<String>,
}

impl Manifest {
    /// The project's manifest, `datasets/manifest.toml`, parsed once.
    pub fn builtin() -> &'static Manifest {
        static BUILTIN: OnceLock<Manifest> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // Checked by a unit test below: a broken datasets/manifest.toml fails `cargo test`.
            Manifest::from_toml(BUILTIN_MANIFEST).expect("datasets/manifest.toml is valid")
        })
    }

    /// Parses and checks a manifest: every dataset has files and URLs, every file a plain name,
    /// a size and at least one well-formed checksum.
    pub fn from_toml(text: &str) -> Result<Manifest> {
        let mut manifest: Manifest =
            toml::from_str(text).map_err(|error| invalid(error.to_string().trim_end()))?;
        if manifest.datasets.is_empty() {
            return Err(invalid("no datasets; add a [datasets.KEY] table"));
        }
        for (key, dataset) in &mut manifest.datasets {
            dataset.key = key.clone();
            dataset.check()?;
        }
        Ok(manifest)
    }

    /// The dataset called `key`, or an error listing the known keys.
    pub fn dataset(&self, key: &str) -> Result<&DatasetEntry> {
        self.datasets.get(key).ok_or_else(|| {
            DataError::config(
                "dataset",
                format!("unknown dataset '{key}'; known: {}", self.keys().join(", ")),
            )
        })
    }

    /// The keys of all datasets, in alphabetical order.
    pub fn keys(&self) -> Vec<&str> {
        self.datasets.keys().map(String::as_str).collect()
    }

    /// All datasets, in the order of their keys.
    pub fn datasets(&self) -> impl Iterator<Item = &DatasetEntry> {
        self.datasets.values()
    }
}

impl DatasetEntry {
    /// Where this dataset's files live: `data_dir/<key>`.
    pub fn directory(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.key)
    }

    /// The file called `name`, if the dataset has one.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|file| file.name == name)
    }

    fn check(&mut self) -> Result<()> {
        let key = &self.key;
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if key.is_empty() || !key.chars().all(plain) {
            return Err(invalid(format!(
                "dataset key '{key}' must be letters, digits, '-' or '_' (it names a directory)"
            )));
        }
        if self.files.is_empty() {
            return Err(invalid(format!("dataset '{key}' lists no files")));
        }
        if self.urls.is_empty() {
            return Err(invalid(format!("dataset '{key}' lists no urls")));
        }
        if let Some(url) = self.urls.iter().find(|url| !is_http_url(url)) {
            return Err(invalid(format!(
                "dataset '{key}': url '{url}' must start with http:// or https://"
            )));
        }
        let mut names = HashSet::new();
        for file in &mut self.files {
            file.check(key)?;
            if !names.insert(file.name.clone()) {
                return Err(invalid(format!(
                    "dataset '{key}' lists file '{}' twice",
                    file.name
                )));
            }
        }
        Ok(())
    }
}

impl FileEntry {
    fn check(&mut self, key: &str) -> Result<()> {
        let name = &self.name;
        // The name becomes a path component: no separators, no `..`, no hidden (temporary) names.
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', ':']) {
            return Err(invalid(format!(
                "dataset '{key}': file name '{name}' must be a plain file name"
            )));
        }
        if self.sha256.is_none() && self.md5.is_none() {
            return Err(invalid(format!(
                "dataset '{key}', file '{name}': no checksum; give sha256 or md5 (or both)"
            )));
        }
        for (kind, value, digits) in [("sha256", &mut self.sha256, 64), ("md5", &mut self.md5, 32)]
        {
            if let Some(value) = value {
                *value = value.to_ascii_lowercase();
                if value.len() != digits || !value.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid(format!(
                        "dataset '{key}', file '{name}': {kind} '{value}' is not {digits} hex digits"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The checksums this entry gives, for messages: "SHA-256 and MD5", "MD5"...
    pub fn checksum_names(&self) -> &'static str {
        match (&self.sha256, &self.md5) {
            (Some(_), Some(_)) => "SHA-256 and MD5",
            (Some(_), None) => "SHA-256",
            _ => "MD5",
        }
    }
}

/// Checks `path` against `entry`: its size first (cheap), then every checksum the entry gives,
/// hashed in one streaming pass. The first difference is a [`DataError::Checksum`].
pub fn verify_file(path: &Path, entry: &FileEntry) -> Result<()> {
    let size = std::fs::metadata(path)
        .map_err(|error| DataError::io(path, error))?
        .len();
    if size != entry.size {
        return Err(mismatch(
            path,
            "size",
            entry.size.to_string(),
            size.to_string(),
        ));
    }
    let mut file = std::fs::File::open(path).map_err(|error| DataError::io(path, error))?;
    let mut sha256 = entry.sha256.as_ref().map(|_| Sha256::new());
    let mut md5 = entry.md5.as_ref().map(|_| Md5::new());
    let mut buffer = vec![0; 1 << 16];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(DataError::io(path, error)),
        };
        if let Some(hasher) = &mut sha256 {
            hasher.update(&buffer[..read]);
        }
        if let Some(hasher) = &mut md5 {
            hasher.update(&buffer[..read]);
        }
    }
    if let (Some(expected), Some(hasher)) = (&entry.sha256, sha256) {
        let actual = format!("{:x}", hasher.finalize());
        if &actual != expected {
            return Err(mismatch(path, "SHA-256", expected.clone(), actual));
        }
    }
    if let (Some(expected), Some(hasher)) = (&entry.md5, md5) {
        let actual = format!("{:x}", hasher.finalize());
        if &actual != expected {
            return Err(mismatch(path, "MD5", expected.clone(), actual));
        }
    }
    Ok(())
}

pub(crate) fn is_http_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

fn invalid(problem: impl Into<String>) -> DataError {
    DataError::config("dataset manifest", problem)
}

fn mismatch(path: &Path, kind: &'static str, expected: String, actual: String) -> DataError {
    DataError::Checksum {
        path: path.to_path_buf(),
        kind,
        expected,
        actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_lists_the_three_datasets() {
        let manifest = Manifest::builtin();
        assert_eq!(
            manifest.keys(),
            ["fashion-mnist", "mnist", "tinyshakespeare"]
        );
        let mnist = manifest.dataset("mnist").unwrap();
        assert_eq!(mnist.files.len(), 4);
        assert!(mnist.urls.len() >= 2, "MNIST needs at least two mirrors");
        assert!(mnist
            .files
            .iter()
            .all(|f| f.sha256.is_some() && f.md5.is_some()));
        let shakespeare = manifest.dataset("tinyshakespeare").unwrap();
        assert_eq!(shakespeare.files[0].size, 1_115_394);
        assert!(shakespeare.files[0].md5.is_none());
    }
}
