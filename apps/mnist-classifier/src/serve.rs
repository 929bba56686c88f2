//! `mnist-classifier serve`: the drawing page and the JSON API of dl-serve for a checkpoint, on
//! 127.0.0.1 unless told otherwise, until Ctrl-C (or SIGTERM) stops it cleanly.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use dl_compress::load_classifier;
use dl_models::checkpoint_file;
use dl_serve::{router, serve, shutdown_signal, Limits, ServedModel};
use dl_tensor::DeviceChoice;

use crate::cli::ServeArgs;

/// Runs `serve`. It is called outside the compute pool: the server's own threads wait on the
/// network, and model runs are handed to the pool one request at a time.
pub fn run(arguments: &ServeArgs, compute_threads: usize) -> Result<()> {
    let device = arguments.device.parse::<DeviceChoice>()?.resolve()?;
    let path = checkpoint_file(&arguments.checkpoint, arguments.data_dir.as_deref())?;
    let classifier = load_classifier(&path, &device)?;
    let limits = Limits {
        max_body_bytes: arguments.max_body_bytes,
        max_requests: arguments.max_requests.max(1),
        workers: arguments.workers.unwrap_or(compute_threads).max(1),
        ..Limits::default()
    };
    let model = ServedModel::new(classifier, device);
    let info = model.info();
    let (app, handle) = router(model, limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's threads")?;
    runtime.block_on(async {
        let address = SocketAddr::new(arguments.host, arguments.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| {
                format!("cannot listen on {address}: is another server on that port? pass --port (0 picks a free one)")
            })?;
        let bound = listener.local_addr()?;
        println!(
            "serving {} ({}, {}) from {} at http://{bound}/ — draw a digit there; the API is POST /api/predict and POST /api/explain?method=M; Ctrl-C stops",
            info.model,
            info.dataset,
            info.precision,
            path.display()
        );
        if !bound.ip().is_loopback() {
            println!("note: {} is reachable from other machines", bound.ip());
        }
        serve(listener, app, shutdown_signal())
            .await
            .context("the server failed")
    })?;
    println!("stopped after answering {} request(s)", handle.answered());
    Ok(())
}
