//! The fused CPU Adam kernel (`dl_tensor::kernels::adam`) against the tensor-operation path it
//! replaces: the same weights and the same saved moments after every step, for Adam with L2
//! decay, AdamW and plain Adam, in f32 and f64, and when a run switches from one path to the
//! other mid-way (the moments move between tensors and the kernel's vectors).
//!
//! This file holds a single test on purpose: it turns the kernels off and on, a process-wide
//! switch, which would disturb other tests running at the same time in the same binary.

mod common;

use common::{gradient_at, gradients, TestResult};
use dl_optim::{Adam, AdamConfig, AdamW, Optimizer};
use dl_tensor::{kernels, DType, Device, Tensor, Var};

/// A large variable (more elements than one parallel chunk of the kernel) and a small one.
struct Model {
    weight: Var,
    bias: Var,
}

const WEIGHT_SIZE: usize = 70_001;

impl Model {
    fn new(dtype: DType) -> Self {
        let weight: Vec<f64> = (0..WEIGHT_SIZE)
            .map(|index| (index as f64 * 0.37).cos())
            .collect();
        let weight = Tensor::from_vec(weight, WEIGHT_SIZE, &Device::Cpu).unwrap();
        let bias = Tensor::new(&[0.25f64, -0.75, 0.0], &Device::Cpu).unwrap();
        Self {
            weight: Var::from_tensor(&weight.to_dtype(dtype).unwrap()).unwrap(),
            bias: Var::from_tensor(&bias.to_dtype(dtype).unwrap()).unwrap(),
        }
    }

    /// Step `step`; the bias gets no gradient at step 2.
    fn step(&self, optimizer: &mut dyn Optimizer, step: usize) {
        let weight_gradient = gradient_at(step, WEIGHT_SIZE);
        let bias_gradient = gradient_at(step + 7, 3);
        optimizer
            .step(&gradients(&[
                ("weight", &self.weight, Some(weight_gradient.as_slice())),
                (
                    "bias",
                    &self.bias,
                    (step != 2).then_some(bias_gradient.as_slice()),
                ),
            ]))
            .unwrap();
    }

    /// The weights, then every saved state tensor (sorted by name), as f64.
    fn snapshot(&self, optimizer: &dyn Optimizer) -> Vec<f64> {
        let flat = |tensor: &Tensor| -> Vec<f64> {
            tensor
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let mut values = flat(self.weight.as_tensor());
        values.extend(flat(self.bias.as_tensor()));
        let state = optimizer.state().unwrap();
        for tensor in state.tensors.values() {
            values.extend(flat(tensor));
        }
        values
    }
}

/// Builds a fresh optimizer.
type MakeOptimizer = fn() -> Box<dyn Optimizer>;

/// Runs 7 steps, with the kernels on for the steps where `fused(step)` is true, and returns
/// the snapshot after each step.
fn run(make: MakeOptimizer, dtype: DType, fused: impl Fn(usize) -> bool) -> Vec<Vec<f64>> {
    let model = Model::new(dtype);
    let mut optimizer = make();
    (1..=7)
        .map(|step| {
            kernels::set_enabled(fused(step));
            model.step(optimizer.as_mut(), step);
            model.snapshot(optimizer.as_ref())
        })
        .collect()
}

#[test]
fn the_fused_kernel_matches_the_tensor_path() -> TestResult {
    let optimizers: [(&str, MakeOptimizer); 3] = [
        ("adam with L2 decay", || {
            Box::new(
                Adam::new(AdamConfig::default().learning_rate(0.01).weight_decay(0.1)).unwrap(),
            )
        }),
        ("adamw", || {
            Box::new(AdamW::new(AdamConfig::adamw().learning_rate(0.01)).unwrap())
        }),
        ("adam", || {
            Box::new(Adam::new(AdamConfig::default()).unwrap())
        }),
    ];
    for (name, make) in optimizers {
        for dtype in [DType::F32, DType::F64] {
            let plain = run(make, dtype, |_| false);
            // Every operation is the tensor path's, in the same order and precision: equal
            // numbers (== also equates 0 and −0, the one difference a skipped `+ 0` can make).
            for (what, fused) in [
                ("fused", run(make, dtype, |_| true)),
                ("fused then plain", run(make, dtype, |step| step <= 3)),
                ("plain then fused", run(make, dtype, |step| step > 3)),
            ] {
                for (step, (expected, actual)) in plain.iter().zip(&fused).enumerate() {
                    assert_eq!(expected.len(), actual.len());
                    if let Some(index) = (0..expected.len()).find(|&i| expected[i] != actual[i]) {
                        panic!(
                            "{name} {dtype:?} {what}, step {}: value {index} is {}, the tensor path gives {}",
                            step + 1,
                            actual[index],
                            expected[index]
                        );
                    }
                }
            }
        }
    }
    kernels::set_enabled(true);
    Ok(())
}
