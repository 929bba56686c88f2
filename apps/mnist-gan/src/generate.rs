//! `mnist-gan generate` and `mnist-gan interpolate`: images from a saved generator.

use anyhow::Result;
use dl_tensor::Device;
use mnist_gan::{generation, samples};

use crate::cli::{GenerateArgs, InterpolateArgs};

fn device(name: &str) -> Result<Device> {
    Ok(name.parse::<dl_tensor::DeviceChoice>()?.resolve()?)
}

/// Runs `generate`.
pub fn run(arguments: &GenerateArgs) -> Result<()> {
    if arguments.count == 0 {
        anyhow::bail!("--count must be at least 1");
    }
    let gan = generation::load(&arguments.checkpoint, &device(&arguments.device)?)?;
    let images = generation::generate(&gan, arguments.count, arguments.seed, arguments.digit)?;
    samples::save_images(&images, &arguments.out)?;
    println!(
        "wrote {} {}image{} (seed {}) to {}",
        arguments.count,
        arguments
            .digit
            .map_or(String::new(), |digit| format!("'{digit}' ")),
        if arguments.count == 1 { "" } else { "s" },
        arguments.seed,
        arguments.out.display()
    );
    Ok(())
}

/// Runs `interpolate`.
pub fn interpolate(arguments: &InterpolateArgs) -> Result<()> {
    let gan = generation::load(&arguments.checkpoint, &Device::Cpu)?;
    let images = generation::interpolate(
        &gan,
        arguments.from,
        arguments.to,
        arguments.steps,
        arguments.digit,
    )?;
    if !arguments
        .out
        .to_string_lossy()
        .to_lowercase()
        .ends_with(".png")
    {
        anyhow::bail!("--out {} must end in .png", arguments.out.display());
    }
    samples::save_png(&samples::grid(&images, arguments.steps)?, &arguments.out)?;
    println!(
        "wrote a walk of {} images from seed {} to seed {} to {}",
        arguments.steps,
        arguments.from,
        arguments.to,
        arguments.out.display()
    );
    Ok(())
}
