//! Text corpora (course §5.2, text generation): the raw material of a language model is one long
//! string — read it, check it is UTF-8, and keep its last part aside for validation.
//!
//! The validation text is the *end* of the corpus, not a random sample of windows: windows drawn
//! from anywhere would overlap the training text, and the model would be graded on lines it has
//! already memorised.

use std::path::Path;

use crate::{DataError, Result};

/// Reads a UTF-8 text corpus.
///
/// A leading byte-order mark (U+FEFF, as some Windows editors write) is dropped, so it does not
/// become a "character" of the vocabulary.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read, [`DataError::InvalidUtf8`] with the byte
/// offset of the first invalid byte, [`DataError::TooLittleText`] when the file is empty.
pub fn read_corpus(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|error| DataError::io(path, error))?;
    corpus_from_bytes(bytes, path)
}

/// A corpus from the bytes of a file (`path` names it in errors), checked as [`read_corpus`]
/// checks one.
pub fn corpus_from_bytes(bytes: Vec<u8>, path: &Path) -> Result<String> {
    if bytes.is_empty() {
        return Err(DataError::TooLittleText {
            path: path.to_path_buf(),
            problem: "the corpus is empty".into(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|error| DataError::InvalidUtf8 {
        path: path.to_path_buf(),
        offset: error.utf8_error().valid_up_to(),
    })?;
    match text.strip_prefix('\u{feff}') {
        Some("") => Err(DataError::TooLittleText {
            path: path.to_path_buf(),
            problem: "the corpus is empty (it holds only a byte-order mark)".into(),
        }),
        Some(rest) => Ok(rest.to_owned()),
        None => Ok(text),
    }
}

/// Splits a sequence (characters, token ids...) into a training part and a validation part, the
/// validation part being the last `validation_fraction` of it, rounded to the nearest item.
///
/// ```
/// let tokens: Vec<u32> = (0..10).collect();
/// let (train, validation) = dl_data::split_train_validation(&tokens, 0.2)?;
/// assert_eq!(train, [0, 1, 2, 3, 4, 5, 6, 7]);
/// assert_eq!(validation, [8, 9]); // the end of the text, never a random sample
/// # Ok::<(), dl_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::Config`] when `validation_fraction` is not in `[0, 1)`.
pub fn split_train_validation<T: Clone>(
    items: &[T],
    validation_fraction: f64,
) -> Result<(Vec<T>, Vec<T>)> {
    if !(0.0..1.0).contains(&validation_fraction) {
        return Err(DataError::config(
            "validation fraction",
            format!("{validation_fraction} is not in [0, 1); use e.g. 0.1 to keep the last 10% for validation"),
        ));
    }
    let validation_len = (items.len() as f64 * validation_fraction).round() as usize;
    let (train, validation) = items.split_at(items.len() - validation_len);
    Ok((train.to_vec(), validation.to_vec()))
}
