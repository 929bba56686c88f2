//! mnist-gan: the course's generative adversarial network (§2.3, 生成对抗网络) as a
//! command-line tool.
//!
//! `cargo run --release -p mnist-gan` trains the default DCGAN on MNIST, writes a grid of
//! samples per epoch and a GIF of them, saves the run and scores the samples with our
//! classifier when one is there; `generate`, `interpolate` and `score` use saved runs.

mod cli;
mod generate;
mod score;
mod train;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, TrainArgs};

/// mimalloc makes Candle's many short-lived tensors cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let threads = cli.threads;
    dl_tensor::threads::run_program(threads, || run(cli));
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train::run(&TrainArgs::default()),
        Some(Command::Train(arguments)) => train::run(&arguments),
        Some(Command::Generate(arguments)) => generate::run(&arguments),
        Some(Command::Interpolate(arguments)) => generate::interpolate(&arguments),
        Some(Command::Score(arguments)) => score::run(&arguments),
    }
}
