//! Reading corpora and splitting off the validation text.

mod common;

use std::path::{Path, PathBuf};

use dl_data::{read_corpus, split_train_validation, CharVocabulary, DataError};

/// Writes `bytes` as `name` in `directory`: the file's path.
fn write_file(directory: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = directory.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes `bytes` as `name` and reads it as a corpus: the error, whose message must name the
/// file and contain every one of `parts`.
fn corpus_error(
    directory: &tempfile::TempDir,
    name: &str,
    bytes: &[u8],
    parts: &[&str],
) -> DataError {
    let path = write_file(directory, name, bytes);
    let error = read_corpus(&path).unwrap_err();
    let message = error.to_string();
    for part in [name].iter().chain(parts) {
        assert!(message.contains(part), "{message}");
    }
    error
}

#[test]
fn reads_utf8_text_of_any_script() {
    let directory = tempfile::tempdir().unwrap();
    let text = "To be, or not to be.\n深度学习实践。🦀\n";
    let path = write_file(&directory, "corpus.txt", text.as_bytes());
    assert_eq!(read_corpus(&path).unwrap(), text);
}

#[test]
fn drops_a_leading_byte_order_mark() {
    let directory = tempfile::tempdir().unwrap();
    let path = write_file(&directory, "bom.txt", "\u{feff}hello".as_bytes());
    assert_eq!(read_corpus(&path).unwrap(), "hello");
}

#[test]
fn invalid_utf8_reports_the_offset_of_the_first_bad_byte() {
    let directory = tempfile::tempdir().unwrap();
    // "héllo 字 " is 1 + 2 + 3 + 1 + 3 + 1 = 11 bytes of valid UTF-8 (é takes 2, 字 takes 3).
    let valid = "héllo 字 ";
    assert_eq!(valid.len(), 11);

    let mut stray_byte = valid.as_bytes().to_vec();
    stray_byte.extend_from_slice(&[0xFF, b'a', b'b']);
    let path = write_file(&directory, "stray.txt", &stray_byte);
    match read_corpus(&path) {
        Err(DataError::InvalidUtf8 { path: at, offset }) => {
            assert_eq!(at, path);
            assert_eq!(offset, 11);
        }
        other => panic!("expected InvalidUtf8, got {other:?}"),
    }

    // A character cut short (the first two of 字's three bytes, then ASCII) is invalid from the
    // cut character's first byte.
    let mut cut_character = valid.as_bytes().to_vec();
    cut_character.extend_from_slice(&[0xE5, 0xAD, b'x']);
    let error = corpus_error(&directory, "cut.txt", &cut_character, &["byte offset 11"]);
    assert!(
        matches!(error, DataError::InvalidUtf8 { offset: 11, .. }),
        "{error:?}"
    );
}

#[test]
fn an_empty_file_is_too_little_text() {
    let directory = tempfile::tempdir().unwrap();
    let error = corpus_error(&directory, "empty.txt", b"", &["the corpus is empty"]);
    assert!(
        matches!(error, DataError::TooLittleText { .. }),
        "{error:?}"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let error = read_corpus(Path::new("/nonexistent/corpus.txt")).unwrap_err();
    assert!(matches!(error, DataError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/corpus.txt"));
}

#[test]
fn validation_is_the_last_fraction_of_the_text() {
    let tokens: Vec<u32> = (0..1000).collect();
    let (train, validation) = split_train_validation(&tokens, 0.1).unwrap();
    assert_eq!(train.len(), 900);
    assert_eq!(validation.len(), 100);
    assert_eq!(train, tokens[..900]);
    assert_eq!(validation, tokens[900..]);

    // 10 × 0.25 = 2.5 rounds to 3 validation items (round half away from zero).
    let (train, validation) = split_train_validation(&tokens[..10], 0.25).unwrap();
    assert_eq!((train.len(), validation), (7, vec![7, 8, 9]));

    let (train, validation) = split_train_validation(&tokens, 0.0).unwrap();
    assert_eq!((train.len(), validation.len()), (1000, 0));

    let characters: Vec<char> = "abcdefghij".chars().collect();
    let (_, validation) = split_train_validation(&characters, 0.3).unwrap();
    assert_eq!(validation, ['h', 'i', 'j']);
}

#[test]
fn validation_fractions_outside_zero_to_one_are_rejected() {
    let tokens = [1u32, 2, 3];
    for fraction in [1.0, 1.5, -0.1, f64::NAN, f64::INFINITY] {
        let error = split_train_validation(&tokens, fraction).unwrap_err();
        assert!(
            matches!(error, DataError::Config { .. }),
            "{fraction}: {error:?}"
        );
    }
}

#[test]
fn tiny_shakespeare_has_65_distinct_characters() {
    let Some(text) = common::tiny_shakespeare() else {
        return;
    };
    assert_eq!(text.len(), 1_115_394);
    let vocabulary = CharVocabulary::from_text(&text).unwrap();
    assert_eq!(vocabulary.len(), 65);
    assert_eq!(vocabulary.characters()[..3], ['\n', ' ', '!']);
    let ids = vocabulary.encode(&text).unwrap();
    assert_eq!(ids.len(), text.chars().count());
    assert_eq!(vocabulary.decode(&ids).unwrap(), text);
}
