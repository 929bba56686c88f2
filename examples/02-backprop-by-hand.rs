//! Course §3.2 "反向传播算法": backpropagation by hand, step by step, then the same gradients
//! from Candle's backward pass, side by side.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release -p dl-examples --example 02-backprop-by-hand
//! ```
//!
//! The network: 2 inputs → 3 hidden units with a sigmoid → 1 linear output, trained with the
//! mean squared error over two examples,
//!
//! ```text
//! z1 = W1 x + b1      a1 = σ(z1)      z2 = W2 a1 + b2 = ŷ      L = (1/N) Σₙ (ŷₙ − yₙ)²
//! ```
//!
//! The chain rule, applied from the loss back to the first layer (what "backpropagation"
//! means), gives
//!
//! ```text
//! ∂L/∂z2 = 2(ŷ − y)/N
//! ∂L/∂W2 = Σₙ ∂L/∂z2 · a1ᵀ          ∂L/∂b2 = Σₙ ∂L/∂z2
//! ∂L/∂a1 = W2ᵀ ∂L/∂z2
//! ∂L/∂z1 = ∂L/∂a1 ⊙ σ(z1)(1 − σ(z1))
//! ∂L/∂W1 = Σₙ ∂L/∂z1 · xᵀ           ∂L/∂b1 = Σₙ ∂L/∂z1
//! ```
//!
//! Part 1 computes these in plain `f64` code and prints every intermediate value. Part 2 builds
//! the same network from Candle variables and asks `Gradients::compute` (Candle's backward)
//! for the same numbers. The program fails if any pair differs by more than 1e-9.

use dl_autograd::{check_gradients, GradientCheck, Gradients};
use dl_tensor::{Device, Tensor, Var};

const INPUTS: usize = 2;
const HIDDEN: usize = 3;

/// Two training examples (x₁, x₂) and their targets y.
const EXAMPLES: [[f64; INPUTS]; 2] = [[0.5, -1.0], [1.5, 2.0]];
const TARGETS: [f64; 2] = [0.25, -0.5];

/// Fixed starting weights, so the hand computation can be followed (and repeated) exactly.
const W1: [[f64; INPUTS]; HIDDEN] = [[0.2, -0.4], [0.7, 0.1], [-0.3, 0.5]];
const B1: [f64; HIDDEN] = [0.1, -0.2, 0.05];
const W2: [f64; HIDDEN] = [0.6, -0.8, 0.3];
const B2: f64 = 0.1;

/// The largest difference between hand and Candle gradients that counts as agreement.
const TOLERANCE: f64 = 1e-9;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn format_vector(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|value| format!("{value:+.6}")).collect();
    format!("[{}]", parts.join(", "))
}

/// The gradients of every parameter, flattened row by row, in the order W1, b1, W2, b2.
struct ParameterGradients {
    w1: [[f64; INPUTS]; HIDDEN],
    b1: [f64; HIDDEN],
    w2: [f64; HIDDEN],
    b2: f64,
}

/// Part 1: forward and backward pass in plain f64, printing every step. Returns (loss, gradients).
fn by_hand() -> (f64, ParameterGradients) {
    let count = EXAMPLES.len() as f64;
    let mut loss = 0.0;
    let mut gradients = ParameterGradients {
        w1: [[0.0; INPUTS]; HIDDEN],
        b1: [0.0; HIDDEN],
        w2: [0.0; HIDDEN],
        b2: 0.0,
    };
    for (index, (x, &y)) in EXAMPLES.iter().zip(&TARGETS).enumerate() {
        println!("example {}: x = {}, y = {y:+}", index + 1, format_vector(x));

        // Forward pass.
        let z1: Vec<f64> = (0..HIDDEN)
            .map(|unit| W1[unit][0] * x[0] + W1[unit][1] * x[1] + B1[unit])
            .collect();
        let a1: Vec<f64> = z1.iter().map(|&z| sigmoid(z)).collect();
        let z2: f64 = (0..HIDDEN).map(|unit| W2[unit] * a1[unit]).sum::<f64>() + B2;
        let error = z2 - y;
        loss += error * error / count;
        println!("  forward   z1 = W1·x + b1       = {}", format_vector(&z1));
        println!("            a1 = σ(z1)           = {}", format_vector(&a1));
        println!("            z2 = W2·a1 + b2 = ŷ  = {z2:+.6}   (ŷ − y = {error:+.6})");

        // Backward pass: the chain rule, one layer at a time.
        let d_z2 = 2.0 * error / count;
        let d_w2: Vec<f64> = a1.iter().map(|&a| d_z2 * a).collect();
        let d_a1: Vec<f64> = W2.iter().map(|&w| w * d_z2).collect();
        let sigmoid_slope: Vec<f64> = a1.iter().map(|&a| a * (1.0 - a)).collect();
        let d_z1: Vec<f64> = d_a1
            .iter()
            .zip(&sigmoid_slope)
            .map(|(d, s)| d * s)
            .collect();
        println!("  backward  dL/dz2 = 2(ŷ − y)/N        = {d_z2:+.6}");
        println!(
            "            dL/dW2 = dL/dz2 · a1ᵀ      = {}",
            format_vector(&d_w2)
        );
        println!("            dL/db2 = dL/dz2            = {d_z2:+.6}");
        println!(
            "            dL/da1 = W2ᵀ · dL/dz2      = {}",
            format_vector(&d_a1)
        );
        println!(
            "            σ'(z1) = a1 ⊙ (1 − a1)     = {}",
            format_vector(&sigmoid_slope)
        );
        println!(
            "            dL/dz1 = dL/da1 ⊙ σ'(z1)   = {}",
            format_vector(&d_z1)
        );
        for unit in 0..HIDDEN {
            let row = [d_z1[unit] * x[0], d_z1[unit] * x[1]];
            println!(
                "            dL/dW1[{unit}] = dL/dz1[{unit}] · xᵀ = {}",
                format_vector(&row)
            );
            gradients.w1[unit][0] += row[0];
            gradients.w1[unit][1] += row[1];
            gradients.b1[unit] += d_z1[unit];
            gradients.w2[unit] += d_w2[unit];
        }
        println!("            dL/db1 = dL/dz1");
        gradients.b2 += d_z2;
    }
    println!("loss L = {loss:.12}");
    println!("gradients are summed over the examples (the 1/N is already inside dL/dz2)\n");
    (loss, gradients)
}

/// The network's loss built from Candle variables: the same formulas as tensor operations.
fn candle_loss(
    inputs: &Tensor,
    targets: &Tensor,
    parameters: &[(&str, &Var); 4],
) -> dl_tensor::candle_core::Result<Tensor> {
    let [(_, w1), (_, b1), (_, w2), (_, b2)] = parameters;
    let z1 = inputs
        .matmul(&w1.as_tensor().t()?)?
        .broadcast_add(b1.as_tensor())?; // (N, 3)
    let a1 = z1.neg()?.exp()?.affine(1.0, 1.0)?.recip()?; // σ(z) = 1 / (1 + e^(−z))
    let z2 = a1
        .matmul(&w2.as_tensor().t()?)?
        .broadcast_add(b2.as_tensor())?; // (N, 1)
    z2.squeeze(1)?.sub(targets)?.sqr()?.mean_all()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("Part 1: backpropagation by hand (2 → 3 sigmoid → 1, mean squared error)\n");
    let (hand_loss, hand) = by_hand();

    println!("Part 2: the same network in Candle, gradients from backward()\n");
    let device = Device::Cpu;
    let inputs = Tensor::new(&EXAMPLES, &device)?;
    let targets = Tensor::new(&TARGETS, &device)?;
    let w1 = Var::new(&W1, &device)?;
    let b1 = Var::new(&B1, &device)?;
    let w2 = Var::new(&[W2], &device)?; // (1, 3)
    let b2 = Var::new(&[B2], &device)?; // (1)
    let parameters = [("W1", &w1), ("b1", &b1), ("W2", &w2), ("b2", &b2)];
    let loss = candle_loss(&inputs, &targets, &parameters)?;
    let gradients = Gradients::compute(&loss, parameters)?;

    let candle_loss_value = loss.to_scalar::<f64>()?;
    println!(
        "{:<12} | {:>16} | {:>16} | {:>9}",
        "quantity", "by hand", "Candle", "|diff|"
    );
    println!("{}", "-".repeat(64));
    let mut worst: f64 = (hand_loss - candle_loss_value).abs();
    println!(
        "{:<12} | {hand_loss:>16.12} | {candle_loss_value:>16.12} | {worst:>9.1e}",
        "L"
    );
    let hand_by_name: [(&str, Vec<f64>); 4] = [
        ("W1", hand.w1.iter().flatten().copied().collect()),
        ("b1", hand.b1.to_vec()),
        ("W2", hand.w2.to_vec()),
        ("b2", vec![hand.b2]),
    ];
    for (name, hand_values) in &hand_by_name {
        let gradient = gradients
            .get(name)
            .ok_or_else(|| format!("Candle computed no gradient for {name}"))?;
        let columns = gradient.dims().last().copied().unwrap_or(1);
        let candle_values: Vec<f64> = gradient.flatten_all()?.to_vec1()?;
        for (element, (hand_value, candle_value)) in
            hand_values.iter().zip(&candle_values).enumerate()
        {
            let difference = (hand_value - candle_value).abs();
            worst = worst.max(difference);
            let label = if gradient.rank() == 2 {
                format!("dL/d{name}[{},{}]", element / columns, element % columns)
            } else {
                format!("dL/d{name}[{element}]")
            };
            println!(
                "{label:<12} | {hand_value:>16.12} | {candle_value:>16.12} | {difference:>9.1e}"
            );
        }
    }
    println!("\nlargest difference {worst:.1e} (tolerance {TOLERANCE:.0e})");

    // A third, independent opinion: central finite differences of the loss.
    let report = check_gradients(
        &parameters,
        || candle_loss(&inputs, &targets, &parameters),
        &GradientCheck::default(),
    )?;
    println!("finite-difference check of Candle's gradients: {report}");

    if worst > TOLERANCE {
        return Err(format!(
            "hand-derived and Candle gradients differ by {worst:.3e}, more than {TOLERANCE:.0e}"
        )
        .into());
    }
    println!("hand-derived gradients and Candle's backward agree.");
    Ok(())
}
