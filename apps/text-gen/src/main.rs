//! text-gen: the course's second project (§5.2, 文本生成) as a command-line tool.
//!
//! `cargo run --release -p text-gen` trains a character-level LSTM (Embedding → LSTM → Dense) on
//! Tiny Shakespeare for 7,200 steps (within a nine-minute limit; measured times are in
//! docs/performance.md), saves `checkpoints/text-gen.safetensors` (weights, tokenizer and
//! configuration in one file) and prints 500 characters generated from the
//! course's prompt, "The meaning of life is". `train`, `generate` and `perplexity` do each part
//! with every setting exposed; `search` tunes the hyper-parameters (course §8).

mod cli;
mod data;
mod generate;
mod perplexity;
mod sampling;
mod search;
mod train;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};

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
        None => {
            let mut arguments = cli.train;
            arguments.time_limit = arguments.time_limit.or(Some(cli::DEFAULT_RUN_MINUTES));
            train::run(&arguments)
        }
        Some(Command::Train(arguments)) => train::run(&arguments),
        Some(Command::Generate(arguments)) => generate::run(&arguments),
        Some(Command::Perplexity(arguments)) => perplexity::run(&arguments),
        Some(Command::Search(arguments)) => search::run(&arguments, rayon::current_num_threads()),
    }
}
