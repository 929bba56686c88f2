//! `cargo xtask load-test`: many concurrent clients against a running `mnist-classifier serve`,
//! every answer counted, with the median and 99th-percentile latency and the throughput.
//!
//! ```sh
//! cargo run --release -p mnist-classifier -- serve &
//! cargo xtask load-test --requests 2000 --clients 16 --image my-digit.png
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dl_serve::{run_load_test, LoadTest};

/// The endpoint under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Endpoint {
    /// POST /api/predict.
    Predict,
    /// POST /api/explain?method=M.
    Explain,
}

/// Settings of `load-test`.
#[derive(Debug, Args)]
pub struct LoadTestArgs {
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Which endpoint to load.
    #[arg(long, value_enum, default_value_t = Endpoint::Predict)]
    endpoint: Endpoint,
    /// With --endpoint explain: the method (saliency, gradxinput, smoothgrad, ig, gradcam,
    /// occlusion).
    #[arg(long, default_value = "saliency")]
    method: String,
    /// The image every request sends (PNG or JPEG); by default a 7 of 28 x 28 raw bytes.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Requests in all.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

/// A 7 as MNIST stores it: 28 x 28 bytes, 0 = background, 255 = ink.
fn raw_seven() -> Vec<u8> {
    let mut pixels = vec![0u8; 28 * 28];
    for x in 6..22 {
        pixels[6 * 28 + x] = 255;
        pixels[7 * 28 + x] = 255;
    }
    for y in 8..24 {
        let x = 21 - (y - 8) * 9 / 16;
        pixels[y * 28 + x] = 255;
        pixels[y * 28 + x - 1] = 255;
    }
    pixels
}

/// Runs `load-test`.
pub fn run(arguments: LoadTestArgs) -> Result<()> {
    if arguments.requests == 0 || arguments.clients == 0 {
        bail!("--requests and --clients must be positive");
    }
    let (content_type, body) = match &arguments.image {
        Some(path) => {
            let body =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let content_type = match body.get(..4) {
                Some([0x89, b'P', b'N', b'G']) => "image/png",
                Some([0xff, 0xd8, 0xff, _]) => "image/jpeg",
                _ => bail!("{} is neither a PNG nor a JPEG file", path.display()),
            };
            (content_type.to_string(), body)
        }
        None => ("application/octet-stream".to_string(), raw_seven()),
    };
    let base = arguments.url.trim_end_matches('/');
    let url = match arguments.endpoint {
        Endpoint::Predict => format!("{base}/api/predict"),
        Endpoint::Explain => format!("{base}/api/explain?method={}", arguments.method),
    };
    println!(
        "load test: {} requests from {} clients to {url}",
        arguments.requests, arguments.clients
    );
    let report = run_load_test(&LoadTest {
        url,
        content_type,
        body,
        requests: arguments.requests,
        clients: arguments.clients,
    });
    println!("{report}");
    if report.lost > 0 || report.count(200) != report.sent {
        bail!("not every request was answered 200 (is the server running at {base}?)");
    }
    Ok(())
}
