//! `cargo xtask`: the project's chores, run from the workspace root.
//!
//! Commands arrive with the issues that need them (`download-data`, `bench`); today it lists
//! what exists so that the alias works from a clean clone.

use anyhow::Result;
use clap::Parser;

/// The project's chores.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
enum Command {
    /// Print the workspace's crates and where their docs live.
    Layout,
}

fn main() -> Result<()> {
    match Command::parse() {
        Command::Layout => {
            println!("crates/tensor    dl-tensor    tensors, devices, seeded RNG");
            println!("crates/autograd  dl-autograd  gradients, gradient checking, clipping");
            println!("crates/nn        dl-nn        neuron, activations, layers, losses, checkpoints");
            println!("crates/optim     dl-optim     optimizers, schedules, the training loop");
            println!("docs/README.md   the course, concept by concept");
        }
    }
    Ok(())
}
