//! A load test of a running server: `clients` threads, each sending its share of `requests`
//! POSTs one after the other, every answer's status counted and every latency kept. Used by
//! `crates/serve/tests/api.rs` (all 2,000 answered) and `cargo xtask load-test` (the figures in
//! docs/performance.md).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

/// What to send, and how much of it.
#[derive(Debug, Clone)]
pub struct LoadTest {
    /// The full URL, e.g. `http://127.0.0.1:8080/api/predict`.
    pub url: String,
    /// The body's `Content-Type`.
    pub content_type: String,
    /// The body, the same for every request.
    pub body: Vec<u8>,
    /// Requests in all.
    pub requests: usize,
    /// Concurrent clients (threads, each with its own connection).
    pub clients: usize,
}

/// What a load test saw.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Requests sent.
    pub sent: usize,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, usize>,
    /// Requests that got no answer at all (a refused connection, a reset, a timeout).
    pub lost: usize,
    /// The median latency of the answered requests.
    pub p50: Duration,
    /// Their 99th-percentile latency.
    pub p99: Duration,
    /// Answers per second over the whole test.
    pub requests_per_second: f64,
}

impl LoadReport {
    /// How many answers had `status`.
    pub fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, count)| format!("{count} × {status}"))
            .collect();
        write!(
            formatter,
            "{} requests: {}, {} lost; p50 {:.2} ms, p99 {:.2} ms, {:.0} requests/s",
            self.sent,
            statuses.join(", "),
            self.lost,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.requests_per_second
        )
    }
}

/// Runs `test` and reports what came back.
pub fn run_load_test(test: &LoadTest) -> LoadReport {
    let clients = test.clients.clamp(1, test.requests.max(1));
    let test = Arc::new(test.clone());
    let begun = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let test = Arc::clone(&test);
            let share = test.requests / clients + usize::from(client < test.requests % clients);
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .proxy(None)
                    .timeout_global(Some(Duration::from_secs(120)))
                    .build()
                    .into();
                (0..share)
                    .map(|_| {
                        let sent = Instant::now();
                        let status = agent
                            .post(&test.url)
                            .header("Content-Type", &test.content_type)
                            .send(&test.body[..])
                            .and_then(|mut response| {
                                // the whole answer is part of the latency
                                response.body_mut().read_to_vec()?;
                                Ok(response.status().as_u16())
                            })
                            .ok();
                        (status, sent.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<(Option<u16>, Duration)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap_or_default())
        .collect();
    let elapsed = begun.elapsed();
    let mut statuses = BTreeMap::new();
    let mut latencies = Vec::new();
    for (status, latency) in &outcomes {
        if let Some(status) = status {
            *statuses.entry(*status).or_insert(0) += 1;
            latencies.push(*latency);
        }
    }
    latencies.sort();
    let percentile = |share: usize| {
        latencies
            .get((latencies.len() * share / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    LoadReport {
        sent: test.requests,
        lost: test.requests - latencies.len(),
        p50: percentile(50),
        p99: percentile(99),
        requests_per_second: latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        statuses,
    }
}
