//! Where data lives: `--data-dir DIR` if given, else `$DL_DATA_DIR`, else `datasets/` in the
//! current directory. A data directory may be read-only: reading never writes into it.

use std::path::{Path, PathBuf};

/// The environment variable naming the default data directory.
pub const DATA_DIR_VARIABLE: &str = "DL_DATA_DIR";

/// The data directory to use: `explicit` (from `--data-dir`) if given, else `$DL_DATA_DIR` if
/// set and not empty, else `datasets` relative to the current directory.
///
/// ```
/// use std::path::Path;
/// assert_eq!(dl_data::resolve_data_dir(Some(Path::new("/data"))), Path::new("/data"));
/// ```
pub fn resolve_data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(directory) = explicit {
        return directory.to_path_buf();
    }
    match std::env::var_os(DATA_DIR_VARIABLE) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from("datasets"),
    }
}
