//! The error type of the model zoo: every failure names the checkpoint and what to do.

use std::path::PathBuf;

/// What can go wrong building a model or loading one from a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// A model name that is not in the zoo.
    #[error("unknown model '{name}': use {known}")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The names the zoo knows.
        known: &'static str,
    },
    /// The checkpoint holds another kind of model (or none of ours).
    #[error("{} is not a {app} checkpoint ({problem}); pass a file written by `{app} train`", path.display())]
    WrongKind {
        /// The checkpoint.
        path: PathBuf,
        /// The app whose checkpoints were expected.
        app: &'static str,
        /// What the file holds instead.
        problem: String,
    },
    /// The checkpoint's recipe cannot be read.
    #[error("{}: {problem}", path.display())]
    BadRecipe {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong with its metadata.
        problem: String,
    },
    /// Hidden-layer widths that do not fit the architecture.
    #[error("{model} has {expected} hidden layers, so it takes {expected} positive widths, none above {factor} times the default ({defaults:?}), not {widths:?}", factor = crate::image_classifier::MAX_WIDTH_FACTOR)]
    BadWidths {
        /// The architecture.
        model: &'static str,
        /// The widths given.
        widths: Vec<usize>,
        /// How many it takes.
        expected: usize,
        /// The architecture's own widths; eight times each is the largest allowed.
        defaults: &'static [usize],
    },
    /// An error from the layers or the checkpoint file.
    #[error(transparent)]
    Nn(#[from] dl_nn::NnError),
    /// An error from the tokenizer or the data directory.
    #[error(transparent)]
    Data(#[from] dl_data::DataError),
}

/// `Result` with [`ModelsError`].
pub type Result<T> = std::result::Result<T, ModelsError>;
