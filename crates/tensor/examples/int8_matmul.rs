//! Throughput of the int8 product (`dl_tensor::kernels::int8::matmul`, course §8 model
//! compression) against the f32 one the `Dense` layer uses (`kernels::linear::linear`), at the
//! course CNN's shapes: its dense layer over a batch of 1000 and of 1, and its first
//! convolution as im2col over one image. Both get the same bias; the int8 product writes f32.
//!
//! ```text
//! cargo run --release -p dl-tensor --example int8_matmul
//! ```
//!
//! GOP/s counts a multiply-add as two operations; each figure is the median of 15 samples.

use std::time::{Duration, Instant};

use dl_tensor::kernels::int8::{self, Activations, Output, PackedInt8Weights};
use dl_tensor::kernels::linear::linear;
use dl_tensor::{Device, SeededRng, Tensor};

/// Samples per measurement.
const SAMPLES: usize = 15;
/// Each sample repeats the product for at least this long.
const SAMPLE_TIME: Duration = Duration::from_millis(20);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "int8 backend: {}, rayon threads: {}",
        int8::backend(),
        rayon::current_num_threads()
    );
    println!(
        "{:>6} {:>6} {:>6} | {:>12} {:>12} | {:>7}",
        "m", "k", "n", "f32 GOP/s", "int8 GOP/s", "speedup"
    );
    let mut rng = SeededRng::new(8);
    for (rows, inputs, outputs) in [(1000, 5408, 128), (1, 5408, 128), (676, 9, 32)] {
        let activations: Vec<u8> = (0..rows * inputs).map(|_| rng.below(256) as u8).collect();
        let weights: Vec<i8> = (0..outputs * inputs)
            .map(|_| rng.below(255) as i8 - 127)
            .collect();
        let bias: Vec<f32> = (0..outputs).map(|_| rng.normal()).collect();

        let packed = PackedInt8Weights::new(&weights, outputs, inputs, vec![0.01; outputs])?;
        let input = Activations {
            values: &activations,
            rows,
            scale: 0.02,
            zero_point: 128,
        };
        let mut output = vec![0f32; rows * outputs];
        let int8_time = median_time(|| {
            int8::matmul(input, &packed, Some(&bias), true, Output::F32(&mut output))
                .expect("shapes checked above");
        });

        let to_f32 =
            |values: Vec<f32>, shape: (usize, usize)| Tensor::from_vec(values, shape, &Device::Cpu);
        let x = to_f32(
            activations.iter().map(|&q| f32::from(q)).collect(),
            (rows, inputs),
        )?;
        let w = to_f32(
            weights.iter().map(|&q| f32::from(q)).collect(),
            (outputs, inputs),
        )?;
        let b = Tensor::from_vec(bias, outputs, &Device::Cpu)?;
        let f32_time = median_time(|| {
            linear(&x, &w, &b).expect("shapes checked above");
        });

        let gop = 2.0 * (rows * inputs * outputs) as f64 / 1e9;
        println!(
            "{rows:>6} {inputs:>6} {outputs:>6} | {:>12.1} {:>12.1} | {:>6.2}x",
            gop / f32_time,
            gop / int8_time,
            f32_time / int8_time
        );
    }
    Ok(())
}

/// The median over [`SAMPLES`] samples of the seconds one call of `work` takes, each sample
/// averaging as many calls as fill [`SAMPLE_TIME`] (after one warm-up call).
fn median_time(mut work: impl FnMut()) -> f64 {
    work();
    let start = Instant::now();
    work();
    let once = start.elapsed().max(Duration::from_nanos(100));
    let calls = (SAMPLE_TIME.as_secs_f64() / once.as_secs_f64()).ceil() as usize;
    let mut times: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                work();
            }
            start.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[SAMPLES / 2]
}
