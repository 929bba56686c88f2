//! Fuzz target: any request to the server of `mnist-classifier serve` (dl-serve) — any method,
//! path, query, content type and body — is answered: a JSON error for a bad request, JSON for a
//! good one, never a panic, a 500 or a hang. The requests go through the whole router (limits,
//! extractors, body parsing, image decoding, the model) on a course CNN with seeded weights.
#![no_main]

use std::sync::OnceLock;

use axum::{body::Body, http::Request, Router};
use dl_compress::ClassifierFile;
use dl_models::{ImageModel, ImageRecipe, Loaded};
use dl_serve::{router, Limits, ServedModel};
use dl_tensor::{DType, Device};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["POST", "GET", "PUT", "DELETE", "OPTIONS"];
const PATHS: [&str; 5] = ["/api/predict", "/api/explain", "/api/info", "/", "/api/"];
const CONTENT_TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "application/octet-stream",
    "application/json",
    "text/plain",
    "",
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let recipe = ImageRecipe {
            model: ImageModel::CourseCnn,
            dropout: 0.0,
            dataset: dl_data::ImageDataset::Mnist,
            widths: None,
        };
        let store = dl_nn::VarStore::new(&Device::Cpu, DType::F32, 1);
        let model = recipe.build(&store).expect("the course CNN builds");
        let classifier = ClassifierFile::Float(Loaded {
            model,
            recipe,
            metadata: Default::default(),
        });
        let limits = Limits {
            max_body_bytes: 64 << 10,
            ..Limits::default()
        };
        let (app, _handle) = router(ServedModel::new(classifier, Device::Cpu), limits);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Fixture { runtime, app }
    })
}

fuzz_target!(|bytes: &[u8]| {
    // [method, path, content type, query length, query..., body...]
    let [method, path, content_type, query_length, rest @ ..] = bytes else {
        return;
    };
    let (query, body) = rest.split_at((*query_length as usize % 32).min(rest.len()));
    let method = METHODS[*method as usize % METHODS.len()];
    let path = PATHS[*path as usize % PATHS.len()];
    let content_type = CONTENT_TYPES[*content_type as usize % CONTENT_TYPES.len()];
    let query = String::from_utf8_lossy(query);
    let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
    let mut request = Request::builder().method(method).uri(uri);
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return; // not a valid URI: no client could send it
    };
    let fixture = fixture();
    let (status, is_json, answer) = fixture.runtime.block_on(async {
        let response = fixture.app.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let is_json = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
        let answer = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        (status, is_json, answer)
    });
    assert!(!status.is_server_error() || status.as_u16() == 503, "{status}: {}", String::from_utf8_lossy(&answer));
    if path.starts_with("/api/") {
        assert!(is_json, "{status} without JSON");
        let parsed: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
        if !status.is_success() {
            assert!(parsed["error"].is_string(), "{parsed}");
        }
    }
});
