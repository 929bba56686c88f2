//! `cargo xtask`: the project's chores, run from the workspace root.
//!
//! Commands arrive with the issues that need them: `download-data` fetches and verifies the
//! datasets; `bench` measures CPU training speed beside PyTorch; `layout` lists what exists.

mod bench;
mod docs;
mod download_data;
mod load_test;

use anyhow::Result;
use clap::Parser;

/// The allocator the apps use (mimalloc), so that `bench` measures training as they run it:
/// Candle allocates a fresh tensor for every intermediate result, and the system allocator
/// makes the course CNN's train step about 1.5x slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The project's chores.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
enum Command {
    /// Print the workspace's crates and where their docs live.
    Layout,
    /// Download and verify datasets (default: mnist and tinyshakespeare) and Hub tokenizers.
    DownloadData(download_data::DownloadData),
    /// Measure training and inference speed (JSON lines, as ../shared/bench/pytorch_baseline.py),
    /// in a release build; `bench compare OURS PYTORCH` puts two result files side by side.
    Bench(bench::BenchArgs),
    /// Load a running `mnist-classifier serve` with concurrent clients: every answer counted,
    /// p50 and p99 latency, requests/s.
    LoadTest(load_test::LoadTestArgs),
    /// Check the book (docs/ and README.md): excerpts equal to their source, links that
    /// resolve, every chapter in the contents; `--sync` first rewrites the excerpts.
    Docs(docs::DocsArgs),
}

fn main() -> Result<()> {
    match Command::parse() {
        Command::DownloadData(arguments) => download_data::run(arguments)?,
        Command::Bench(arguments) => bench::run(arguments)?,
        Command::LoadTest(arguments) => load_test::run(arguments)?,
        Command::Docs(arguments) => docs::run(&arguments)?,
        Command::Layout => {
            println!("crates/tensor    dl-tensor    tensors, devices, seeded RNG");
            println!("crates/autograd  dl-autograd  gradients, gradient checking, clipping");
            println!(
                "crates/nn        dl-nn        neuron, activations, layers, losses, checkpoints"
            );
            println!("crates/optim     dl-optim     optimizers, learning-rate schedules");
            println!("crates/data      dl-data      datasets, tokenizers, loaders, download-data");
            println!("crates/models    dl-models    the model zoo, checkpoint -> ready model");
            println!("crates/train     dl-train     the training loop, callbacks, resumable runs");
            println!(
                "crates/compress  dl-compress  pruning, int8 quantization, the compact format"
            );
            println!("crates/explain   dl-explain   saliency methods and their sanity checks");
            println!(
                "crates/tune      dl-tune      hyper-parameter search: samplers, pruners, journal"
            );
            println!("crates/serve     dl-serve     the drawing page and JSON API of a classifier");
            println!("examples         dl-examples  the course's concepts as numbered examples");
            println!("docs             dl-book      the course as a book, its code blocks and links checked");
            println!("docs/architecture.md  which concept lives where");
            println!("docs/README.md   the book's contents, chapter by chapter");
        }
    }
    Ok(())
}
