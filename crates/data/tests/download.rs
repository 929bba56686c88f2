//! The downloader against a real HTTP server on 127.0.0.1 (tests/common), with a test manifest
//! whose checksums are computed here from synthetic files: mirrors in order, retries, truncated
//! and corrupt bodies, files already present, read-only directories, local mirrors. The last test
//! copies the real MNIST and Tiny Shakespeare from ../shared/datasets when that folder exists.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{closed_port_url, Behaviour, TestServer};
use dl_data::{
    download_dataset, download_dataset_from, ensure_dataset_from, verify_file, DataError,
    DownloadOptions, FileOutcome, Manifest, Source,
};
use md5::Md5;
use sha2::{Digest, Sha256};

const KEY: &str = "synthetic";

/// `len` reproducible pseudo-random bytes (a 64-bit LCG, top byte), different per `seed`.
fn synthetic(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// A manifest with dataset `synthetic`: the given files (SHA-256 and MD5 computed here) at `urls`.
fn manifest(urls: &[String], files: &[(&str, &[u8])]) -> Manifest {
    let urls: Vec<String> = urls.iter().map(|url| format!("\"{url}\"")).collect();
    let mut text = format!(
        "[datasets.{KEY}]\nname = \"Synthetic\"\nlicense = \"CC0\"\nurls = [{}]\n",
        urls.join(", ")
    );
    for (name, bytes) in files {
        text.push_str(&format!(
            "[[datasets.{KEY}.files]]\nname = \"{name}\"\nsize = {}\nsha256 = \"{:x}\"\nmd5 = \"{:x}\"\n",
            bytes.len(),
            Sha256::digest(bytes),
            Md5::digest(bytes)
        ));
    }
    Manifest::from_toml(&text).expect("test manifest")
}

/// No progress output, a 1 ms back-off, 3 retries.
fn options() -> DownloadOptions {
    DownloadOptions {
        retry_delay: Duration::from_millis(1),
        progress: false,
        ..DownloadOptions::default()
    }
}

/// Everything in the dataset's folder, sorted, temporary files included.
fn listing(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(KEY)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that the dataset's folder holds nothing (no file, no temporary file).
fn assert_no_files(data_dir: &Path) {
    let names = listing(data_dir);
    assert!(names.is_empty(), "{names:?}");
}

/// A server answering each (path, behaviour) of `routes`, and a manifest of `files` whose URLs
/// are the server's `folders` (such as "/one/"), in that order.
fn serve(
    routes: Vec<(&str, Behaviour)>,
    folders: &[&str],
    files: &[(&str, &[u8])],
) -> (TestServer, Manifest) {
    let server = TestServer::start();
    for (path, behaviour) in routes {
        server.route(path, behaviour);
    }
    let urls: Vec<String> = folders.iter().map(|folder| server.url(folder)).collect();
    let manifest = manifest(&urls, files);
    (server, manifest)
}

/// A server and a manifest for the one file "a.bin" holding `body`, whose URLs are "/one/",
/// answering `first`, then (when `second` is given) "/two/", answering `second`.
fn serve_a_bin(body: &[u8], first: Behaviour, second: Option<Behaviour>) -> (TestServer, Manifest) {
    let mut routes = vec![("/one/a.bin", first)];
    let mut folders = vec!["/one/"];
    if let Some(second) = second {
        routes.push(("/two/a.bin", second));
        folders.push("/two/");
    }
    serve(routes, &folders, &[("a.bin", body)])
}

/// Two synthetic files "a.bin" and "b.txt" (seeds and lengths given), and a server at "/one/"
/// that serves both, with the manifest of both.
fn two_served_files(a: (u64, usize), b: (u64, usize)) -> (Vec<u8>, Vec<u8>, TestServer, Manifest) {
    let (a, b) = (synthetic(a.0, a.1), synthetic(b.0, b.1));
    let (server, manifest) = serve(
        vec![
            ("/one/a.bin", Behaviour::Serve(a.clone())),
            ("/one/b.txt", Behaviour::Serve(b.clone())),
        ],
        &["/one/"],
        &[("a.bin", &a), ("b.txt", &b)],
    );
    (a, b, server, manifest)
}

/// The source and the failed attempts of a file that was downloaded; panics otherwise.
fn downloaded(outcome: &FileOutcome) -> (&str, &[String]) {
    match outcome {
        FileOutcome::Downloaded {
            source,
            failed_attempts,
        } => (source, failed_attempts),
        other => panic!("expected a download, got {other:?}"),
    }
}

/// The contents of `name` in the dataset's folder.
fn read(data_dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(data_dir.join(KEY).join(name)).unwrap()
}

#[test]
fn a_404_on_the_first_mirror_moves_on_to_the_second() {
    let body = synthetic(1, 5_000);
    let (server, manifest) = serve_a_bin(
        &body,
        Behaviour::NotFound,
        Some(Behaviour::Serve(body.clone())),
    );
    let data_dir = tempfile::tempdir().unwrap();

    let report = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap();

    assert_eq!(read(data_dir.path(), "a.bin"), body);
    assert_eq!(
        (server.requests("/one/a.bin"), server.requests("/two/a.bin")),
        (1, 1)
    );
    let (source, failed_attempts) = downloaded(&report.files[0].outcome);
    assert_eq!(source, server.url("/two/a.bin"));
    assert_eq!(failed_attempts.len(), 1);
    assert!(
        failed_attempts[0].contains("HTTP 404"),
        "{failed_attempts:?}"
    );
    assert_eq!(listing(data_dir.path()), ["a.bin"]);
}

#[test]
fn a_truncated_body_is_not_kept_and_is_retried_then_the_next_source_is_used() {
    let body = synthetic(2, 8_000);
    let truncated = Behaviour::Truncated {
        body: body.clone(),
        sent: 3_000,
    };
    let (server, manifest) = serve_a_bin(&body, truncated, Some(Behaviour::Serve(body.clone())));
    let data_dir = tempfile::tempdir().unwrap();
    let options = DownloadOptions {
        retries: 2,
        ..options()
    };

    download_dataset_from(&manifest, KEY, data_dir.path(), &options).unwrap();

    // 1 try + 2 retries on the first source, then the second one.
    assert_eq!(server.requests("/one/a.bin"), 3);
    assert_eq!(server.requests("/two/a.bin"), 1);
    assert_eq!(read(data_dir.path(), "a.bin"), body);
    assert_eq!(
        listing(data_dir.path()),
        ["a.bin"],
        "no temporary file left"
    );
}

#[test]
fn a_body_truncated_by_every_source_leaves_no_file() {
    let body = synthetic(3, 4_000);
    let truncated = Behaviour::Truncated {
        body: body.clone(),
        sent: 100,
    };
    let (server, manifest) = serve_a_bin(&body, truncated, None);
    let data_dir = tempfile::tempdir().unwrap();

    let error = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap_err();

    assert!(matches!(error, DataError::Download { .. }), "{error}");
    assert_eq!(server.requests("/one/a.bin"), 4, "1 try + 3 retries");
    assert_no_files(data_dir.path());
}

#[test]
fn a_connection_dropped_mid_body_is_retried_and_the_retry_succeeds() {
    let body = synthetic(4, 20_000);
    let flaky = Behaviour::DropFirst {
        body: body.clone(),
        failures: 2,
        sent: 2_048,
    };
    let (server, manifest) = serve_a_bin(&body, flaky, Some(Behaviour::Serve(body.clone())));
    let data_dir = tempfile::tempdir().unwrap();

    let report = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap();

    assert_eq!(server.requests("/one/a.bin"), 3, "two drops, then success");
    assert_eq!(
        server.requests("/two/a.bin"),
        0,
        "the second source is not needed"
    );
    let (source, failed_attempts) = downloaded(&report.files[0].outcome);
    assert_eq!(source, server.url("/one/a.bin"));
    assert_eq!(failed_attempts.len(), 2, "{failed_attempts:?}");
    assert!(
        failed_attempts[0].contains("retrying"),
        "{failed_attempts:?}"
    );
    assert_eq!(read(data_dir.path(), "a.bin"), body);
    assert_eq!(listing(data_dir.path()), ["a.bin"]);
}

#[test]
fn a_checksum_mismatch_is_an_error_and_leaves_no_file() {
    let body = synthetic(5, 6_000);
    // Same size, other bytes: only the SHA-256 can tell. Then a longer file: the size tells.
    let (server, manifest) = serve_a_bin(
        &body,
        Behaviour::Serve(synthetic(50, 6_000)),
        Some(Behaviour::Serve(synthetic(51, 7_000))),
    );
    let data_dir = tempfile::tempdir().unwrap();

    let error = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap_err();

    let message = error.to_string();
    assert!(message.contains("synthetic/a.bin"), "{message}");
    assert!(message.contains("SHA-256 mismatch"), "{message}");
    assert!(message.contains("size mismatch"), "{message}");
    // A wrong copy is not retried: the same server would send the same bytes.
    assert_eq!(
        (server.requests("/one/a.bin"), server.requests("/two/a.bin")),
        (1, 1)
    );
    assert_no_files(data_dir.path());
}

#[test]
fn an_md5_mismatch_is_caught_when_only_md5_is_known() {
    let body = synthetic(6, 1_000);
    let server = TestServer::start();
    server.route("/one/a.bin", Behaviour::Serve(synthetic(60, 1_000)));
    let text = format!(
        "[datasets.{KEY}]\nname = \"S\"\nlicense = \"CC0\"\nurls = [\"{}\"]\n\
         [[datasets.{KEY}.files]]\nname = \"a.bin\"\nsize = 1000\nmd5 = \"{:x}\"\n",
        server.url("/one/"),
        Md5::digest(&body)
    );
    let manifest = Manifest::from_toml(&text).unwrap();
    let data_dir = tempfile::tempdir().unwrap();

    let error = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap_err();

    assert!(error.to_string().contains("MD5 mismatch"), "{error}");
    assert_no_files(data_dir.path());
}

/// Writes the files of the test dataset into `data_dir/synthetic/`, as a finished download would.
fn place(data_dir: &Path, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(data_dir.join(KEY)).unwrap();
    for (name, bytes) in files {
        std::fs::write(data_dir.join(KEY).join(name), bytes).unwrap();
    }
}

#[test]
fn files_already_present_and_verified_are_not_downloaded_again() {
    let (a, b, server, manifest) = two_served_files((7, 3_000), (8, 500));
    let data_dir = tempfile::tempdir().unwrap();
    place(data_dir.path(), &[("a.bin", &a), ("b.txt", &b)]);

    let report = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap();

    assert_eq!(server.total_requests(), 0);
    assert_eq!((report.already_present(), report.downloaded()), (2, 0));
    assert!(report
        .files
        .iter()
        .all(|file| file.outcome == FileOutcome::AlreadyPresent));
}

#[test]
fn force_downloads_files_already_present() {
    let (a, b, server, manifest) = two_served_files((9, 3_000), (10, 500));
    let data_dir = tempfile::tempdir().unwrap();
    place(data_dir.path(), &[("a.bin", &a), ("b.txt", &b)]);
    let options = DownloadOptions {
        force: true,
        ..options()
    };

    let report = download_dataset_from(&manifest, KEY, data_dir.path(), &options).unwrap();

    assert_eq!(
        (server.requests("/one/a.bin"), server.requests("/one/b.txt")),
        (1, 1)
    );
    assert_eq!(report.downloaded(), 2);
    assert_eq!(listing(data_dir.path()), ["a.bin", "b.txt"]);
}

#[test]
fn a_damaged_copy_is_replaced() {
    let body = synthetic(11, 2_000);
    let (server, manifest) = serve_a_bin(&body, Behaviour::Serve(body.clone()), None);
    let data_dir = tempfile::tempdir().unwrap();
    place(data_dir.path(), &[("a.bin", &synthetic(110, 2_000))]);

    let report = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap();

    assert_eq!(server.requests("/one/a.bin"), 1);
    assert_eq!(read(data_dir.path(), "a.bin"), body);
    let (_, failed_attempts) = downloaded(&report.files[0].outcome);
    assert!(
        failed_attempts[0].contains("existing copy rejected"),
        "{failed_attempts:?}"
    );
}

#[test]
fn a_data_dir_that_cannot_be_written_is_a_clear_error() {
    let body = synthetic(12, 100);
    let (server, manifest) = serve_a_bin(&body, Behaviour::Serve(body.clone()), None);
    // Tests may run as root, whom permissions do not stop: a directory under a regular file
    // cannot be created by anyone.
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let data_dir = file.join("datasets");

    let error = download_dataset_from(&manifest, KEY, &data_dir, &options()).unwrap_err();

    let message = error.to_string();
    assert!(matches!(error, DataError::Config { .. }), "{message}");
    assert!(
        message.contains(&data_dir.join(KEY).display().to_string()),
        "{message}"
    );
    assert!(message.contains("--data-dir"), "{message}");
    assert_eq!(server.total_requests(), 0, "fails before any download");
}

#[cfg(unix)]
#[test]
fn files_present_and_verified_need_no_write_access() {
    use std::os::unix::fs::PermissionsExt;
    let (a, b) = (synthetic(13, 1_500), synthetic(14, 700));
    let files: [(&str, &[u8]); 2] = [("a.bin", &a), ("b.txt", &b)];
    let server = TestServer::start();
    let manifest = manifest(&[server.url("/one/")], &files);
    let data_dir = tempfile::tempdir().unwrap();
    place(data_dir.path(), &files);
    let folder = data_dir.path().join(KEY);
    let read_only = std::fs::Permissions::from_mode(0o555);
    std::fs::set_permissions(&folder, read_only.clone()).unwrap();
    std::fs::set_permissions(data_dir.path(), read_only).unwrap();
    let modified = std::fs::metadata(&folder).unwrap().modified().unwrap();

    let report = download_dataset_from(&manifest, KEY, data_dir.path(), &options());
    let ensured = ensure_dataset_from(&manifest, KEY, data_dir.path(), &options());

    // Root ignores the mode bits, so also check that nothing was written: a temporary file
    // created and removed would have changed the folder's modification time.
    let unchanged = std::fs::metadata(&folder).unwrap().modified().unwrap() == modified;
    let listed = listing(data_dir.path());
    for path in [&folder, &data_dir.path().to_path_buf()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_eq!(report.unwrap().already_present(), 2);
    assert_eq!(ensured.unwrap(), folder);
    assert!(unchanged, "the folder was written to");
    assert_eq!(listed, ["a.bin", "b.txt"]);
    assert_eq!(server.total_requests(), 0);
}

#[test]
fn a_local_mirror_folder_works_offline() {
    let (a, b) = (synthetic(15, 2_500), synthetic(16, 300));
    let files: [(&str, &[u8]); 2] = [("a.bin", &a), ("b.txt", &b)];
    let server = TestServer::start(); // the manifest's URLs: must not be asked
    let manifest = manifest(&[server.url("/one/")], &files);
    // One file in <mirror>/<key>/, the other directly in <mirror>/: both layouts are accepted.
    let mirror = tempfile::tempdir().unwrap();
    std::fs::create_dir(mirror.path().join(KEY)).unwrap();
    std::fs::write(mirror.path().join(KEY).join("a.bin"), &a).unwrap();
    std::fs::write(mirror.path().join("b.txt"), &b).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let options = DownloadOptions {
        mirror: Some(Source::Folder(mirror.path().to_path_buf())),
        ..options()
    };

    let report = download_dataset_from(&manifest, KEY, data_dir.path(), &options).unwrap();

    assert_eq!(server.total_requests(), 0);
    assert_eq!(read(data_dir.path(), "a.bin"), a);
    assert_eq!(read(data_dir.path(), "b.txt"), b);
    let sources: Vec<String> = report
        .files
        .iter()
        .map(|file| downloaded(&file.outcome).0.to_string())
        .collect();
    let expected = [
        mirror.path().join(KEY).join("a.bin"),
        mirror.path().join("b.txt"),
    ];
    assert_eq!(sources, expected.map(|path| path.display().to_string()));
}

#[test]
fn a_mirror_url_replaces_the_manifest_urls() {
    let body = synthetic(17, 900);
    let (server, manifest) = serve_a_bin(&body, Behaviour::Serve(body.clone()), None);
    server.route("/mirror/a.bin", Behaviour::Serve(body.clone()));
    let data_dir = tempfile::tempdir().unwrap();
    let options = DownloadOptions {
        mirror: Some(Source::parse(&server.url("/mirror"))), // no trailing slash: added
        ..options()
    };

    download_dataset_from(&manifest, KEY, data_dir.path(), &options).unwrap();

    assert_eq!(
        (
            server.requests("/mirror/a.bin"),
            server.requests("/one/a.bin")
        ),
        (1, 0)
    );
}

#[test]
fn a_mirror_url_laid_out_like_the_data_directory_works() {
    // BASE/<key>/<file>, as a copy of datasets/ served over HTTP is laid out (MNIST and
    // Fashion-MNIST share file names, so the files cannot all sit in BASE/).
    let body = synthetic(19, 700);
    let (server, manifest) = serve_a_bin(&body, Behaviour::Serve(body.clone()), None);
    server.route(
        &format!("/copy/{KEY}/a.bin"),
        Behaviour::Serve(body.clone()),
    );
    let data_dir = tempfile::tempdir().unwrap();
    let options = DownloadOptions {
        mirror: Some(Source::parse(&server.url("/copy/"))),
        ..options()
    };

    download_dataset_from(&manifest, KEY, data_dir.path(), &options).unwrap();

    assert_eq!(read(data_dir.path(), "a.bin"), body);
    assert_eq!(
        (
            server.requests(&format!("/copy/{KEY}/a.bin")),
            server.requests("/one/a.bin")
        ),
        (1, 0)
    );
}

#[test]
fn when_every_source_fails_the_error_lists_each_attempt_and_suggests_a_mirror() {
    let body = synthetic(18, 400);
    let server = TestServer::start();
    let closed = closed_port_url();
    let manifest = manifest(&[server.url("/gone/"), closed.clone()], &[("a.bin", &body)]);
    let data_dir = tempfile::tempdir().unwrap();

    let error = download_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap_err();

    let message = error.to_string();
    let DataError::Download { attempts, .. } = &error else {
        panic!("expected a Download error, got {message}");
    };
    assert_eq!(attempts.len(), 2, "{message}");
    assert!(
        attempts[0].starts_with(&server.url("/gone/a.bin")),
        "{message}"
    );
    assert!(attempts[0].contains("HTTP 404"), "{message}");
    assert!(
        attempts[1].starts_with(&format!("{closed}a.bin")),
        "{message}"
    );
    assert!(message.contains("--mirror"), "{message}");
    assert_no_files(data_dir.path());
}

#[test]
fn ensure_dataset_downloads_only_what_is_missing_or_the_wrong_size() {
    let body = synthetic(19, 1_200);
    let (server, manifest) = serve_a_bin(&body, Behaviour::Serve(body.clone()), None);
    let data_dir = tempfile::tempdir().unwrap();

    let folder = ensure_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap();
    assert_eq!(folder, data_dir.path().join(KEY));
    assert_eq!(server.requests("/one/a.bin"), 1);

    ensure_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap();
    assert_eq!(
        server.requests("/one/a.bin"),
        1,
        "present with the right size: no request"
    );

    std::fs::write(folder.join("a.bin"), &body[..600]).unwrap();
    ensure_dataset_from(&manifest, KEY, data_dir.path(), &options()).unwrap();
    assert_eq!(
        server.requests("/one/a.bin"),
        2,
        "wrong size: downloaded again"
    );
    assert_eq!(read(data_dir.path(), "a.bin"), body);
}

#[test]
fn an_unknown_dataset_names_the_known_ones() {
    let error = download_dataset("mnits", Path::new("unused"), &options()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("unknown dataset 'mnits'"), "{message}");
    assert!(
        message.contains("known: fashion-mnist, mnist, tinyshakespeare"),
        "{message}"
    );
}

/// `../shared/datasets` relative to the project root, if this machine has it.
fn shared_datasets() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!("skipping: ../shared/datasets not found");
        None
    }
}

#[test]
fn the_real_datasets_copy_from_the_shared_folder_and_verify() {
    let Some(shared) = shared_datasets() else {
        return;
    };
    let data_dir = tempfile::tempdir().unwrap();
    let options = DownloadOptions {
        mirror: Some(Source::Folder(shared.clone())),
        ..options()
    };
    for key in ["mnist", "tinyshakespeare"] {
        let report = download_dataset(key, data_dir.path(), &options).unwrap();
        let entry = Manifest::builtin().dataset(key).unwrap();
        assert_eq!(report.downloaded(), entry.files.len());
        for (file, entry) in report.files.iter().zip(&entry.files) {
            assert_eq!(file.path, data_dir.path().join(key).join(&entry.name));
            verify_file(&file.path, entry).unwrap();
        }
        // A second run finds everything in place, verified.
        let again = download_dataset(key, data_dir.path(), &options).unwrap();
        assert_eq!(again.already_present(), entry.files.len());
    }
}
