//! fp32 matrix products through Candle's `matmul`, at the shapes `pytorch_baseline.py` uses: a
//! square 1024³ (the machine's practical peak) and the CNN's Dense(5408→128) layer at batch 32
//! and 128. A product of (m, k) by (k, n) costs 2·m·k·n floating-point operations; each timed
//! repeat runs enough products for about 2 GFLOP.

use anyhow::Result;
use dl_tensor::{Device, SeededRng};

use super::measure::{median_time, round_to, Measurement};
use super::{Bench, FRAMEWORK};

/// (m, k, n) of each product.
pub const SHAPES: [(usize, usize, usize); 3] =
    [(1024, 1024, 1024), (32, 5408, 128), (128, 5408, 128)];

/// One `gemm` result per shape.
pub fn run(bench: &mut Bench) -> Result<()> {
    let mut rng = SeededRng::new(0);
    for (m, k, n) in SHAPES {
        let a = rng.normal_tensor((m, k), 0.0, 1.0, &Device::Cpu)?;
        let b = rng.normal_tensor((k, n), 0.0, 1.0, &Device::Cpu)?;
        let flops = 2.0 * (m * k * n) as f64;
        let inner = if bench.settings.quick {
            1
        } else {
            ((2e9 / flops).ceil() as usize).max(1)
        };
        let products = || -> Result<()> {
            for _ in 0..inner {
                a.matmul(&b)?;
            }
            Ok(())
        };
        products()?; // warm-up
        let seconds = median_time(bench.settings.repeats(7), products)? / inner as f64;
        bench.emit(
            Measurement::new(FRAMEWORK, "gemm")
                .with("m", m)
                .with("k", k)
                .with("n", n)
                .with("gflops", round_to(flops / seconds / 1e9, 1)),
        )?;
    }
    Ok(())
}
