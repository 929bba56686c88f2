//! How much the server takes on at once: the largest body it reads, the requests it admits, the
//! model runs it does in parallel and how long one request may take.

use std::time::Duration;

/// The server's bounds. A request beyond them is answered at once with a 4xx or 503 JSON error,
/// so that no load makes the server run out of memory or stop answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body read, in bytes (413 beyond it).
    pub max_body_bytes: usize,
    /// Requests admitted at once, waiting or computing (503 with `Retry-After` beyond it).
    pub max_requests: usize,
    /// Model runs at once; the others wait for a free worker.
    pub workers: usize,
    /// The longest a request may take, body upload included (503 beyond it).
    pub request_timeout: Duration,
}

impl Default for Limits {
    /// 4 MiB bodies (a phone photo of a digit fits), 64 admitted requests, a worker per core
    /// and 30 seconds per request.
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_requests: 64,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            request_timeout: Duration::from_secs(30),
        }
    }
}
