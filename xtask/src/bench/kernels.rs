//! How much the fast CPU kernels of `dl_tensor::kernels` save: each layer's forward and
//! backward pass, the Adam step and a whole training step of the course's CNN (§5.1), timed
//! with the kernels and with plain Candle operations (`kernels::set_enabled(false)`, what
//! `DL_PLAIN_CANDLE=1` does).
//!
//! ```text
//! cargo xtask bench kernels                      # everything
//! cargo xtask bench kernels conv                 # names containing "conv"
//! cargo xtask bench --threads 1 kernels
//! cargo xtask bench kernels --kernels-only conv  # to profile
//! ```
//!
//! Each line is the median of several runs after one warm-up run; the machine's load average
//! is printed beside the results, since other programs running at the same time slow every
//! number down.

use anyhow::Result;
use dl_autograd::Gradients;
use dl_models::{ImageModel, ImageRecipe};
use dl_nn::{
    cross_entropy, Conv2d, Conv2dConfig, Layer, Lstm, LstmConfig, MaxPool2d, Mode, Sequential,
    VarStore,
};
use dl_optim::{Adam, AdamConfig, Optimizer};
use dl_tensor::{kernels, DType, Device, SeededRng, Tensor, Var};

use super::measure::median_time;

/// The median of `runs` timings of `work` after one warm-up run, in milliseconds.
fn median_ms(runs: usize, mut work: impl FnMut() -> Result<()>) -> Result<f64> {
    work()?;
    Ok(median_time(runs, work)? * 1e3)
}

/// The load average of the last minute, from `/proc/loadavg` (empty elsewhere).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

/// The timed work of a benchmark, run once per timing.
type Work = Box<dyn FnMut() -> Result<()>>;

/// One benchmark: a name and a function that builds its state and returns the timed work.
struct Benchmark {
    name: String,
    runs: usize,
    build: Box<dyn Fn() -> Result<Work>>,
}

fn normal(rng: &mut SeededRng, shape: &[usize]) -> Result<Tensor> {
    Ok(rng.normal_tensor(shape, 0.0, 1.0, &Device::Cpu)?)
}

/// A convolution layer's forward and backward pass; `input_gradient` makes the input a
/// variable (a hidden layer) rather than data (the first layer).
fn conv_benchmark(
    batch: usize,
    image: [usize; 3],
    filters: usize,
    config: Conv2dConfig,
    input_gradient: bool,
) -> Benchmark {
    let [channels, height, width] = image;
    Benchmark {
        name: format!(
            "conv {channels}->{filters} k{} s{} p{} on {height}x{width}{}, batch {batch}",
            config.kernel_size,
            config.stride,
            config.padding,
            if input_gradient { " (+input grad)" } else { "" }
        ),
        runs: if batch > 32 { 11 } else { 21 },
        build: Box::new(move || {
            let store = VarStore::new(&Device::Cpu, DType::F32, 1);
            let layer = Conv2d::new(&store.root().sub("conv"), channels, filters, config)?;
            let input = normal(&mut SeededRng::new(2), &[batch, channels, height, width])?;
            let input = if input_gradient {
                Var::from_tensor(&input)?.as_tensor().clone()
            } else {
                input
            };
            Ok(Box::new(move || {
                let output = layer.forward(&input, Mode::Train)?;
                output.sum_all()?.backward()?;
                Ok(())
            }))
        }),
    }
}

fn benchmarks() -> Vec<Benchmark> {
    let mut all = Vec::new();
    for batch in [32, 128] {
        all.push(conv_benchmark(
            batch,
            [1, 28, 28],
            32,
            Conv2dConfig::new(3),
            false,
        ));
    }
    for batch in [32, 128] {
        all.push(conv_benchmark(
            batch,
            [32, 13, 13],
            64,
            Conv2dConfig::new(3).padding(1),
            true,
        ));
    }
    all.push(conv_benchmark(
        32,
        [6, 28, 28],
        16,
        Conv2dConfig::new(5).stride(2).padding(2),
        true,
    ));
    for batch in [32, 128] {
        all.push(Benchmark {
            name: format!("max-pool 2x2 of 32x26x26, batch {batch}"),
            runs: 21,
            build: Box::new(move || {
                let input =
                    Var::from_tensor(&normal(&mut SeededRng::new(3), &[batch, 32, 26, 26])?)?;
                let pool = MaxPool2d::new(2)?;
                Ok(Box::new(move || {
                    pool.forward(input.as_tensor(), Mode::Train)?
                        .sum_all()?
                        .backward()?;
                    Ok(())
                }))
            }),
        });
    }
    for batch in [32, 128] {
        all.push(Benchmark {
            name: format!("cross-entropy of {batch}x10 logits"),
            runs: 101,
            build: Box::new(move || {
                let logits = Var::from_tensor(&normal(&mut SeededRng::new(4), &[batch, 10])?)?;
                let labels: Vec<u32> = (0..batch as u32).map(|index| index % 10).collect();
                let labels = Tensor::from_vec(labels, batch, &Device::Cpu)?;
                Ok(Box::new(move || {
                    cross_entropy(logits.as_tensor(), &labels)?.backward()?;
                    Ok(())
                }))
            }),
        });
    }
    all.push(Benchmark {
        name: "LSTM cell step (gates after W_hh h), 32x256".into(),
        runs: 201,
        build: Box::new(|| {
            let mut rng = SeededRng::new(8);
            let input_part = Var::from_tensor(&normal(&mut rng, &[32, 1024])?)?;
            let recurrent = Var::from_tensor(&normal(&mut rng, &[32, 1024])?)?;
            let cell = Var::from_tensor(&normal(&mut rng, &[32, 256])?)?;
            Ok(Box::new(move || {
                let (a, r, c) = (
                    input_part.as_tensor(),
                    recurrent.as_tensor(),
                    cell.as_tensor(),
                );
                // The kernel or Candle's operations, as `kernels::set_enabled` says.
                let (new_hidden, new_cell) = dl_nn::lstm_cell_update(a, r, c)?;
                new_hidden.add(&new_cell)?.sum_all()?.backward()?;
                Ok(())
            }))
        }),
    });
    all.push(Benchmark {
        name: "LSTM 64->256, 64 steps, batch 32 (text-gen)".into(),
        runs: 11,
        build: Box::new(|| {
            let store = VarStore::new(&Device::Cpu, DType::F32, 6);
            let lstm = Lstm::new(&store.root().sub("lstm"), LstmConfig::new(64, 256))?;
            let input = normal(&mut SeededRng::new(7), &[32, 64, 64])?;
            Ok(Box::new(move || {
                lstm.forward(&input, Mode::Train)?.sum_all()?.backward()?;
                Ok(())
            }))
        }),
    });
    all.push(Benchmark {
        name: "Adam step, course CNN (693,962 parameters)".into(),
        runs: 31,
        build: Box::new(|| {
            let (store, model) = course_cnn()?;
            let (images, labels) = batch_of(32)?;
            let loss = cross_entropy(&model.forward(&images, Mode::Train)?, &labels)?;
            let variables = store.trainable_variables();
            let gradients = Gradients::compute(
                &loss,
                variables.iter().map(|(name, var)| (name.as_str(), var)),
            )?;
            let mut optimizer = Adam::new(AdamConfig::default())?;
            Ok(Box::new(move || {
                optimizer.step(&gradients)?;
                Ok(())
            }))
        }),
    });
    for batch in [32, 128] {
        all.push(Benchmark {
            name: format!("train step, course CNN, batch {batch}"),
            runs: if batch > 32 { 11 } else { 21 },
            build: Box::new(move || {
                let (store, model) = course_cnn()?;
                let (images, labels) = batch_of(batch)?;
                let variables = store.trainable_variables();
                let mut optimizer = Adam::new(AdamConfig::default())?;
                Ok(Box::new(move || {
                    let loss = cross_entropy(&model.forward(&images, Mode::Train)?, &labels)?;
                    let gradients = Gradients::compute(
                        &loss,
                        variables.iter().map(|(name, var)| (name.as_str(), var)),
                    )?;
                    optimizer.step(&gradients)?;
                    Ok(())
                }))
            }),
        });
    }
    all
}

/// The course's CNN from the zoo: Conv2d(32, 3x3, relu) → MaxPool(2) → Flatten →
/// Dense(128, relu) → Dense(10).
fn course_cnn() -> Result<(VarStore, Sequential)> {
    let store = VarStore::new(&Device::Cpu, DType::F32, 42);
    let model =
        ImageRecipe::new(ImageModel::CourseCnn, dl_data::ImageDataset::Mnist).build(&store)?;
    Ok((store, model))
}

/// Random images and labels.
fn batch_of(batch: usize) -> Result<(Tensor, Tensor)> {
    let mut rng = SeededRng::new(5);
    let images = rng.uniform_tensor((batch, 1, 28, 28), 0.0, 1.0, &Device::Cpu)?;
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
    Ok((images, Tensor::from_vec(labels, batch, &Device::Cpu)?))
}

/// Times the benchmarks whose names contain one of `filters` (all for none), with plain Candle
/// and with the kernels (only the kernels with `kernels_only`, for profiling).
pub fn run(filters: &[String], kernels_only: bool) -> Result<()> {
    println!(
        "rayon threads: {}  (set RAYON_NUM_THREADS to change)",
        dl_tensor::candle_core::utils::get_num_threads()
    );
    println!(
        "{:<58} {:>10} {:>10} {:>8}  load",
        "median of the forward + backward pass", "plain ms", "kernels ms", "speed-up"
    );
    for benchmark in benchmarks() {
        if !filters.is_empty() && !filters.iter().any(|filter| benchmark.name.contains(filter)) {
            continue;
        }
        let mut timings = [0.0; 2];
        for (timing, enabled) in timings.iter_mut().zip([false, true]) {
            if kernels_only && !enabled {
                continue;
            }
            kernels::set_enabled(enabled);
            let work = (benchmark.build)()?;
            *timing = median_ms(benchmark.runs, work)?;
        }
        println!(
            "{:<58} {:>10.3} {:>10.3} {:>7.1}x  {}",
            benchmark.name,
            timings[0],
            timings[1],
            timings[0] / timings[1],
            load_average()
        );
    }
    Ok(())
}
