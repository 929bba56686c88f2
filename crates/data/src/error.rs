//! The error type of dl-data. Every variant names the file, directory or dataset at fault and,
//! where there is one, what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while finding, downloading, reading or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset's file is not in the data directory.
    #[error("{dataset} not found in {} ({file} missing); run `cargo xtask download-data --dataset {key}` or pass --data-dir", directory.display())]
    Missing {
        /// The dataset's display name, e.g. "MNIST".
        dataset: String,
        /// The dataset's key for `download-data`, e.g. "mnist".
        key: String,
        /// Where it was looked for.
        directory: PathBuf,
        /// The first missing file.
        file: String,
    },
    /// A file whose content is malformed (bad magic number, truncated, inconsistent counts...).
    #[error("{}: {problem}", path.display())]
    Corrupt {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A text file that is not valid UTF-8.
    #[error("{}: not valid UTF-8 at byte offset {offset}; convert the file to UTF-8", path.display())]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// The offset of the first invalid byte.
        offset: usize,
    },
    /// A corpus with too little text for the requested windows.
    #[error("{}: {problem}", path.display())]
    TooLittleText {
        /// The corpus file.
        path: PathBuf,
        /// What is needed and what there is.
        problem: String,
    },
    /// A tokenizer that cannot be built, loaded, stored or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Settings that cannot work (batch size 0, a validation fraction of 1.5...).
    #[error("invalid {what}: {problem}")]
    Config {
        /// The setting.
        what: String,
        /// What is wrong and what would be valid.
        problem: String,
    },
    /// No source of a file could be downloaded.
    #[error("could not download {file}: {}\n  tried:\n    {}\n  if this machine is offline or behind a proxy, fetch the files elsewhere and pass --mirror DIR_OR_URL", summary, attempts.join("\n    "))]
    Download {
        /// The file.
        file: String,
        /// A one-line summary.
        summary: String,
        /// Each source tried, with what happened.
        attempts: Vec<String>,
    },
    /// A file of the Hugging Face Hub (`hub:OWNER/REPO/FILE`) that could not be fetched.
    #[error("{spec}: could not fetch {url}: {problem}; check the repository and file names, or set HF_ENDPOINT to a reachable mirror of the Hub")]
    Hub {
        /// The spec asked for, e.g. "hub:gpt2".
        spec: String,
        /// The URL tried.
        url: String,
        /// What went wrong.
        problem: String,
    },
    /// A file whose size or checksum differs from the manifest's.
    #[error("{}: {kind} mismatch (expected {expected}, got {actual}); the file was not kept", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// "size", "SHA-256" or "MD5".
        kind: &'static str,
        /// The manifest's value.
        expected: String,
        /// The value found.
        actual: String,
    },
    /// An error raised by dl-tensor or Candle.
    #[error(transparent)]
    Tensor(#[from] dl_tensor::TensorError),
    /// An error raised by Candle.
    #[error(transparent)]
    Candle(#[from] dl_tensor::candle_core::Error),
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-content error for `path`.
    pub fn corrupt(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// A bad-setting error.
    pub fn config(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Config {
            what: what.into(),
            problem: problem.into(),
        }
    }
}
