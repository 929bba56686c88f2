//! Hub files through hf-hub against a loopback server that answers like the Hub
//! (`/OWNER/REPO/resolve/main/FILE`, with `Range`, `ETag` and `X-Repo-Commit`): the first fetch
//! downloads into the cache, later ones work with the server gone.

mod common;

use common::{proxy_configured, Behaviour, TestServer};
use dl_data::{hub_cache_dir, tokenizer_spec, DataError, HubFile, HubOptions};

const TOKENIZER: &str =
    r#"{"version":"1.0","model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]}}"#;

fn options(server: &TestServer) -> HubOptions {
    HubOptions {
        endpoint: Some(server.url("")),
        progress: false,
    }
}

/// A test server, or None (with a note) when an HTTP proxy is configured: hf-hub would send
/// even 127.0.0.1 through it.
fn start_server() -> Option<TestServer> {
    if proxy_configured() {
        eprintln!("skipping: an HTTP proxy is configured and hf-hub would use it");
        return None;
    }
    Some(TestServer::start())
}

/// A test server (see [`start_server`]) that serves the tokenizer as a Hub file at `path`.
fn serve_tokenizer(path: &str) -> Option<TestServer> {
    let server = start_server()?;
    server.route(
        path,
        Behaviour::HubFile {
            body: TOKENIZER.as_bytes().to_vec(),
            etag: "0123456789abcdef0123456789abcdef01234567".into(),
            commit: "fedcba9876543210fedcba9876543210fedcba98".into(),
        },
    );
    Some(server)
}

#[test]
fn a_hub_file_is_downloaded_once_then_read_from_the_cache_offline() {
    let Some(server) = serve_tokenizer("/owner/repo/resolve/main/tokenizer.json") else {
        return;
    };
    let data_dir = tempfile::tempdir().unwrap();
    let cache = hub_cache_dir(data_dir.path());
    let file = tokenizer_spec("hub:owner/repo").unwrap();
    let options = options(&server);
    assert_eq!(file.cached(&cache), None);

    let path = file.fetch(&cache, &options).unwrap();
    assert!(path.starts_with(&cache), "{}", path.display());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), TOKENIZER);
    let requests = server.requests("/owner/repo/resolve/main/tokenizer.json");
    assert!(requests >= 1);
    server.stop();

    let again = file.fetch(&cache, &options).unwrap();
    assert_eq!(again, path);
    assert_eq!(file.cached(&cache), Some(path));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), TOKENIZER);
}

#[test]
fn a_file_path_with_slashes_is_fetched_from_its_subfolder() {
    let Some(server) = serve_tokenizer("/owner/repo/resolve/main/onnx/tokenizer.json") else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let file = HubFile::parse("hub:owner/repo/onnx/tokenizer.json").unwrap();

    let path = file.fetch(cache.path(), &options(&server)).unwrap();

    assert!(path.ends_with("onnx/tokenizer.json"), "{}", path.display());
    assert_eq!(std::fs::read_to_string(path).unwrap(), TOKENIZER);
}

#[test]
fn a_missing_hub_file_is_an_error_naming_the_spec_and_url() {
    let Some(server) = start_server() else {
        return;
    }; // every path answers 404
    let cache = tempfile::tempdir().unwrap();
    let file = tokenizer_spec("hub:gpt2").unwrap();

    let error = file.fetch(cache.path(), &options(&server)).unwrap_err();

    let message = error.to_string();
    assert!(matches!(error, DataError::Hub { .. }), "{message}");
    assert!(message.starts_with("hub:gpt2/tokenizer.json"), "{message}");
    assert!(
        message.contains(&server.url("/gpt2/resolve/main/tokenizer.json")),
        "{message}"
    );
    assert!(message.contains("404"), "{message}");
    assert_eq!(server.requests("/gpt2/resolve/main/tokenizer.json"), 1);
}

#[test]
fn specs_are_parsed_and_bad_ones_explained() {
    let gpt2 = tokenizer_spec("hub:gpt2").unwrap();
    assert_eq!(
        (gpt2.repo.as_str(), gpt2.file.as_str()),
        ("gpt2", "tokenizer.json")
    );
    let owned = tokenizer_spec("hub:openai-community/gpt2").unwrap();
    assert_eq!(owned.repo, "openai-community/gpt2");
    assert_eq!(owned.file, "tokenizer.json");
    let explicit = tokenizer_spec("hub:o/r/sub/tok.json").unwrap();
    assert_eq!(
        (explicit.repo.as_str(), explicit.file.as_str()),
        ("o/r", "sub/tok.json")
    );
    assert_eq!(explicit.to_string(), "hub:o/r/sub/tok.json");
    assert_eq!(
        explicit.url("https://huggingface.co/"),
        "https://huggingface.co/o/r/resolve/main/sub/tok.json"
    );

    for (spec, problem) in [
        ("gpt2", "does not start with hub:"),
        ("hub:", "a part is empty"),
        ("hub:o//r", "a part is empty"),
        ("hub:o/r/../../etc/passwd", "a part is empty, . or .."),
    ] {
        let message = tokenizer_spec(spec).unwrap_err().to_string();
        assert!(message.contains(&format!("Hub spec '{spec}'")), "{message}");
        assert!(message.contains(problem), "{message}");
    }
    let message = HubFile::parse("hub:o/r").unwrap_err().to_string();
    assert!(
        message.contains("names no file; expected hub:OWNER/REPO/FILE"),
        "{message}"
    );
}
