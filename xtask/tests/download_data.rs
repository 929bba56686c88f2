//! `cargo xtask download-data` as a user runs it: errors that say what to do, a Hub tokenizer
//! from a loopback server (HF_ENDPOINT), and — when ../shared/datasets exists — the real datasets
//! from that folder as a mirror. Nothing here reaches beyond 127.0.0.1.

#[path = "../../crates/data/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{proxy_configured, Behaviour, TestServer};

fn xtask(arguments: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("download-data").args(arguments);
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("run xtask")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_unknown_dataset_is_refused_before_anything_is_fetched() {
    let output = xtask(&["--dataset", "mnits", "--data-dir", "unused"], &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("unknown dataset 'mnits'"), "{stderr}");
    assert!(
        stderr.contains("fashion-mnist, mnist, tinyshakespeare or all"),
        "{stderr}"
    );
}

#[test]
fn a_mirror_without_the_files_lists_what_was_tried() {
    let mirror = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mirror_text = mirror.path().display().to_string();
    let data_text = data_dir.path().display().to_string();
    let arguments = [
        "--dataset",
        "tinyshakespeare",
        "--mirror",
        &mirror_text,
        "--data-dir",
        &data_text,
    ];

    let output = xtask(&arguments, &[]);

    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("downloading tinyshakespeare into"),
        "{stderr}"
    );
    let tried = mirror.path().join("tinyshakespeare/input.txt");
    assert!(stderr.contains(&tried.display().to_string()), "{stderr}");
    assert!(stderr.contains("--mirror"), "{stderr}");
    assert!(!data_dir.path().join("tinyshakespeare/input.txt").exists());
}

#[test]
fn a_tokenizer_is_fetched_from_hf_endpoint_then_found_in_the_cache() {
    if proxy_configured() {
        eprintln!("skipping: an HTTP proxy is configured and hf-hub would use it");
        return;
    }
    let server = TestServer::start();
    server.route(
        "/owner/repo/resolve/main/tokenizer.json",
        Behaviour::HubFile {
            body: br#"{"model":{"type":"BPE"}}"#.to_vec(),
            etag: "e7a9".into(),
            commit: "c0ffee".into(),
        },
    );
    let data_dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap(); // no token file of the user's is read
    let data_text = data_dir.path().display().to_string();
    let endpoint = server.url("");
    let envs = [
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_HOME", home.path().to_str().unwrap()),
    ];
    let arguments = ["--tokenizer", "hub:owner/repo", "--data-dir", &data_text];

    let first = xtask(&arguments, &envs);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(
        stdout.contains("hub:owner/repo/tokenizer.json: downloaded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 files"),
        "no dataset when only --tokenizer: {stdout}"
    );
    assert!(data_dir.path().join("hub-cache").is_dir());
    server.stop();

    let second = xtask(&arguments, &envs);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let stdout = text(&second.stdout);
    assert!(
        stdout.contains("hub:owner/repo/tokenizer.json: already cached"),
        "{stdout}"
    );
}

#[test]
fn the_shared_datasets_serve_as_an_offline_mirror() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
    if !shared.is_dir() {
        eprintln!("skipping: ../shared/datasets not found");
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let shared_text = shared.display().to_string();
    let data_text = data_dir.path().display().to_string();
    let arguments = ["--mirror", &shared_text, "--data-dir", &data_text];

    let first = xtask(&arguments, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert_eq!(stdout.matches("downloaded from").count(), 5, "{stdout}");
    assert!(stdout.contains("done: 5 files"), "{stdout}");

    let second = xtask(&arguments, &[]);
    let stdout = text(&second.stdout);
    assert_eq!(
        stdout.matches("already present, verified").count(),
        5,
        "{stdout}"
    );
    assert!(
        stdout.contains("(0 downloaded, 5 already present)"),
        "{stdout}"
    );
}
