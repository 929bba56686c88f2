//! The HTTP side: routes, the bounds of [`Limits`], JSON errors for everything that goes wrong,
//! and a clean shutdown.
//!
//! A request to `/api/predict` or `/api/explain` is first *admitted* (at most
//! `max_requests` at once, else 503 at once), then its body is read (at most `max_body_bytes`,
//! else 413), then it waits for one of `workers` compute slots; the whole must finish within
//! `request_timeout`. A model run happens on the compute threads (deep stacks for the backward
//! pass), never on the threads that serve connections, so the page and `/api/info` stay quick
//! under load, and a job that panics answers 500 while the server goes on.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::{handlers, ApiError, Limits, ServedModel};

/// What every handler shares: the model, the bounds, and the count of answers.
pub(crate) struct Server {
    /// The model.
    pub(crate) model: ServedModel,
    /// The bounds.
    pub(crate) limits: Limits,
    admitted: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    answered: AtomicU64,
}

impl Server {
    /// Runs `job` on a compute thread once a worker is free, and hands back its answer.
    pub(crate) async fn compute<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&ServedModel) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let worker = Arc::clone(&self.workers)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the server is shutting down"))?;
        let server = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // the slot is held until the job ends, even if the request gave up waiting for it
            let _worker = worker;
            dl_tensor::threads::on_compute_threads(|| job(&server.model))
        })
        .await
        .map_err(|_| {
            ApiError::internal("the model failed on this request; the server goes on serving")
        })?
    }
}

/// A handle on a server built by [`router`]: how many requests it has answered.
#[derive(Clone)]
pub struct ServerHandle(Arc<Server>);

impl ServerHandle {
    /// The requests to `/api/predict` and `/api/explain` answered so far, errors included.
    pub fn answered(&self) -> u64 {
        self.0.answered.load(Ordering::Relaxed)
    }
}

/// The routes of the server for `model` within `limits`:
///
/// | route | answer |
/// |---|---|
/// | `GET /` | the drawing page |
/// | `GET /api/info` | the model, its classes and methods ([`crate::ModelInfo`]) |
/// | `POST /api/predict` | [`crate::Prediction`] of the digit in the body |
/// | `POST /api/explain?method=M&target=C` | [`crate::Explanation`] |
///
/// Everything else, and every failure, is a JSON error ([`ApiError`]).
pub fn router(model: ServedModel, limits: Limits) -> (Router, ServerHandle) {
    let server = Arc::new(Server {
        model,
        limits,
        admitted: Arc::new(Semaphore::new(limits.max_requests.max(1))),
        workers: Arc::new(Semaphore::new(limits.workers.max(1))),
        answered: AtomicU64::new(0),
    });
    let model_routes = Router::new()
        .route("/api/predict", post(handlers::predict))
        .route("/api/explain", post(handlers::explain))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&server), admit));
    let router = Router::new()
        .route("/", get(handlers::page))
        .route("/api/info", get(handlers::info))
        .merge(model_routes)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(Arc::clone(&server));
    (router, ServerHandle(server))
}

/// Admits a request to the model's routes if fewer than `max_requests` are in, within
/// `request_timeout`, and counts its answer.
async fn admit(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let Ok(_admitted) = Arc::clone(&server.admitted).try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is busy ({} requests in progress): retry in a moment",
                server.limits.max_requests
            ),
        )
        .into_response();
    };
    let timeout = server.limits.request_timeout;
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {} s (a slow upload or a busy server): retry",
                timeout.as_secs_f32()
            ),
        )
        .into_response(),
    };
    server.answered.fetch_add(1, Ordering::Relaxed);
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "there is nothing at {}: the page is at /, the API at POST /api/predict, POST /api/explain and GET /api/info",
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    let path = request.uri().path().to_owned();
    let allowed = if path.starts_with("/api/predict") || path.starts_with("/api/explain") {
        "POST"
    } else {
        "GET"
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {path}: use {allowed}",
            request.method()
        ),
    )
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in progress
/// finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        // if the handler cannot be installed, only SIGTERM (or killing) stops the server
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
