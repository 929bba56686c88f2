//! dl-data: the data side of the course's projects — MNIST images (§5.1) and text corpora
//! (§5.2) — read, checked, tokenized, batched reproducibly and, when missing, downloaded and
//! verified.
//!
//! Nothing here panics on bad input: a truncated IDX file, invalid UTF-8 or an empty corpus is a
//! [`DataError`] that names the file and what is wrong.

mod data_dir;
mod error;

pub use data_dir::{resolve_data_dir, DATA_DIR_VARIABLE};
pub use error::{DataError, Result};
