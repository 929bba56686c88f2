//! The error type of dl-tune: each message names the parameter, setting or file at fault and
//! what would be accepted.

use std::path::PathBuf;

/// Everything that can go wrong in a search.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A search space that cannot be searched.
    #[error("search space: {parameter}: {problem}")]
    Space {
        /// The parameter (or the file) at fault.
        parameter: String,
        /// What is wrong and what would be accepted.
        problem: String,
    },
    /// A bad setting of the search itself.
    #[error("{setting}: {problem}")]
    Setting {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong and what would be accepted.
        problem: String,
    },
    /// A journal that cannot be read, written or resumed.
    #[error("journal {}: {problem}", path.display())]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A file of the search's output that cannot be written.
    #[error("{}: {problem}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
}

impl TuneError {
    pub(crate) fn space(parameter: &str, problem: impl Into<String>) -> Self {
        Self::Space {
            parameter: parameter.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn journal(path: &std::path::Path, problem: impl Into<String>) -> Self {
        Self::Journal {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// The result type of dl-tune.
pub type Result<T> = std::result::Result<T, TuneError>;
