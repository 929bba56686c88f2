//! mnist-classifier: the course's first project (§5.1, 图像分类) as a command-line tool.
//!
//! `cargo run --release -p mnist-classifier` trains the course's CNN on MNIST with the course's
//! settings (Adam, learning rate 1e-3, batch 32, 5 epochs; the rate annealed to 0 along a
//! cosine, which `--schedule constant` turns off), evaluates it on the 10,000 test images and
//! saves `checkpoints/mnist-cnn.safetensors`; `evaluate`, `predict` and `summary`
//! use and describe such checkpoints.

mod cli;
mod data;
mod ensemble;
mod evaluate;
mod explain;
mod figure;
mod inputs;
mod measure;
mod predict;
mod prune;
mod quantize;
mod search;
mod serve;
mod settings;
mod train;
mod tta;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, TrainArgs};

/// mimalloc makes Candle's many short-lived tensors cheaper (1.5x faster CNN training here).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let threads = cli.threads;
    if let Some(Command::Serve(arguments)) = &cli.command {
        // A server waits on the network: it must not hold one of the compute threads while it
        // does, so it runs beside the pool rather than on it.
        let outcome = dl_tensor::threads::configure(threads)
            .map_err(anyhow::Error::from)
            .and_then(|plan| serve::run(arguments, plan.compute_threads));
        if let Err(error) = outcome {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
        return;
    }
    dl_tensor::threads::run_program(threads, || run(cli));
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train::run(&TrainArgs::default()),
        Some(Command::Train(arguments)) => train::run(&arguments),
        Some(Command::Evaluate(arguments)) => evaluate::run(&arguments),
        Some(Command::Predict(arguments)) => predict::run(&arguments),
        Some(Command::Prune(arguments)) => prune::run(&arguments),
        Some(Command::Quantize(arguments)) => quantize::run(&arguments),
        Some(Command::Explain(arguments)) => explain::run(&arguments),
        Some(Command::Serve(_)) => unreachable!("main runs serve beside the compute pool"),
        Some(Command::Ensemble(arguments)) => ensemble::run(&arguments),
        Some(Command::Search(arguments)) => {
            let threads = rayon::current_num_threads();
            search::run(&arguments, threads)
        }
        Some(Command::Summary(arguments)) => {
            let store = dl_nn::VarStore::new(&dl_tensor::Device::Cpu, dl_tensor::DType::F32, 0);
            let dropout = arguments
                .dropout
                .unwrap_or(arguments.model.default_dropout());
            let model = match cli::layer_widths(arguments.model, arguments.widths.as_deref())? {
                Some(widths) => {
                    arguments
                        .model
                        .build_with_widths(&store, dropout, widths.as_slice())?
                }
                None => arguments.model.build(&store, dropout)?,
            };
            println!(
                "{} — {}",
                arguments.model,
                model_description(arguments.model)
            );
            print!("{}", model.summary());
            Ok(())
        }
    }
}

fn model_description(model: dl_models::ImageModel) -> String {
    use clap::ValueEnum;
    model
        .to_possible_value()
        .and_then(|value| value.get_help().map(ToString::to_string))
        .unwrap_or_default()
}
