//! The dataset manifest: what a malformed one is told, what `verify_file` catches, and that the
//! built-in manifest's SHA-256 values are those of ../shared/datasets/SHA256SUMS.

use std::path::Path;

use dl_data::{verify_file, DataError, FileEntry, Manifest};

const VALID_FILE: &str = r#"
[[datasets.tiny.files]]
name = "data.txt"
size = 4
md5 = "d3b07384d113edec49eaa6238ad5ff00"
"#;

const HEADER: &str = r#"
[datasets.tiny]
name = "Tiny"
license = "CC0"
urls = ["https://example.org/tiny/"]
"#;

/// The Config error's text for a manifest, which must fail.
fn problem(text: &str) -> String {
    match Manifest::from_toml(text) {
        Err(error @ DataError::Config { .. }) => error.to_string(),
        Err(other) => panic!("expected a Config error, got {other}"),
        Ok(_) => panic!("accepted:\n{text}"),
    }
}

#[test]
fn a_valid_manifest_parses() {
    let manifest = Manifest::from_toml(&format!("{HEADER}{VALID_FILE}")).unwrap();
    let tiny = manifest.dataset("tiny").unwrap();
    assert_eq!(tiny.key, "tiny");
    assert_eq!(tiny.directory(Path::new("data")), Path::new("data/tiny"));
    assert_eq!(tiny.file("data.txt").unwrap().size, 4);
    assert_eq!(tiny.files[0].checksum_names(), "MD5");
}

#[test]
fn toml_syntax_errors_name_the_manifest_and_the_line() {
    let message = problem("[datasets.tiny\nname = 1");
    assert!(message.contains("invalid dataset manifest"), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn missing_and_unknown_fields_are_reported() {
    let message = problem(&HEADER.replace("license = \"CC0\"\n", ""));
    assert!(message.contains("license"), "{message}");
    let message = problem(&format!("{HEADER}{}", VALID_FILE.replace("size", "bytes")));
    assert!(message.contains("bytes"), "{message}");
}

#[test]
fn a_file_needs_a_checksum_and_well_formed_ones() {
    let no_checksum = VALID_FILE.replace("md5 = \"d3b07384d113edec49eaa6238ad5ff00\"\n", "");
    let message = problem(&format!("{HEADER}{no_checksum}"));
    assert!(message.contains("'data.txt': no checksum"), "{message}");

    let short = VALID_FILE.replace("d3b07384d113edec49eaa6238ad5ff00", "d3b0");
    assert!(problem(&format!("{HEADER}{short}")).contains("md5 'd3b0' is not 32 hex digits"));

    let sha = format!("{VALID_FILE}sha256 = \"{}\"\n", "z".repeat(64));
    assert!(problem(&format!("{HEADER}{sha}")).contains("is not 64 hex digits"));
}

#[test]
fn file_names_urls_and_lists_are_checked() {
    let escape = VALID_FILE.replace("data.txt", "../data.txt");
    assert!(problem(&format!("{HEADER}{escape}")).contains("must be a plain file name"));

    let ftp = HEADER.replace("https://example.org", "ftp://example.org");
    assert!(problem(&format!("{ftp}{VALID_FILE}")).contains("must start with http"));

    let no_urls = HEADER.replace("[\"https://example.org/tiny/\"]", "[]");
    assert!(problem(&format!("{no_urls}{VALID_FILE}")).contains("lists no urls"));

    assert!(problem(HEADER).contains("files"));
    let twice = format!("{HEADER}{VALID_FILE}{VALID_FILE}");
    assert!(problem(&twice).contains("lists file 'data.txt' twice"));
    assert!(problem("").contains("no datasets"));
}

#[test]
fn checksums_are_compared_case_insensitively() {
    let upper = VALID_FILE.replace(
        "d3b07384d113edec49eaa6238ad5ff00",
        "D3B07384D113EDEC49EAA6238AD5FF00",
    );
    let manifest = Manifest::from_toml(&format!("{HEADER}{upper}")).unwrap();
    let entry = &manifest.dataset("tiny").unwrap().files[0];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    std::fs::write(&path, "foo\n").unwrap(); // md5sum: d3b07384d113edec49eaa6238ad5ff00
    verify_file(&path, entry).unwrap();
}

#[test]
fn verify_file_reports_size_sha256_and_md5_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    std::fs::write(&path, "foo\n").unwrap();
    // printf 'foo\n' | sha256sum; printf 'foo\n' | md5sum
    let sha256 = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";
    let md5 = "d3b07384d113edec49eaa6238ad5ff00";
    let entry = |size: u64, sha256: &str, md5: &str| FileEntry {
        name: "data.txt".into(),
        size,
        sha256: Some(sha256.into()),
        md5: Some(md5.into()),
    };
    verify_file(&path, &entry(4, sha256, md5)).unwrap();

    let kind = |entry: FileEntry| match verify_file(&path, &entry) {
        Err(DataError::Checksum { kind, .. }) => kind,
        other => panic!("expected a checksum error, got {other:?}"),
    };
    assert_eq!(kind(entry(5, sha256, md5)), "size");
    assert_eq!(kind(entry(4, &"0".repeat(64), md5)), "SHA-256");
    assert_eq!(kind(entry(4, sha256, &"0".repeat(32))), "MD5");

    let missing = verify_file(&dir.path().join("absent"), &entry(4, sha256, md5));
    assert!(matches!(missing, Err(DataError::Io { .. })));
}

#[test]
fn builtin_sha256_values_match_the_shared_sha256sums() {
    let sums = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/SHA256SUMS");
    let Ok(text) = std::fs::read_to_string(&sums) else {
        eprintln!("skipping: ../shared/datasets not found");
        return;
    };
    let manifest = Manifest::builtin();
    let mut checked = 0;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (sha256, path) = line.split_once("  ").expect("sha256sum format");
        let (key, name) = path.split_once('/').expect("KEY/FILE");
        let entry = manifest.dataset(key).unwrap().file(name).unwrap();
        assert_eq!(entry.sha256.as_deref(), Some(sha256), "{path}");
        checked += 1;
    }
    // Every file with a SHA-256 in the manifest is in SHA256SUMS (Fashion-MNIST has only MD5s).
    let with_sha256 = manifest
        .datasets()
        .flat_map(|dataset| &dataset.files)
        .filter(|file| file.sha256.is_some())
        .count();
    assert_eq!(checked, with_sha256);
}
