//! Course §4.1 "神经元模型": one neuron, y = σ(w₁x₁ + w₂x₂ + b), learns the logic gates AND and
//! OR by plain gradient descent, and fails at XOR.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release -p dl-examples --example 03-neuron
//! ```
//!
//! The loss is binary cross-entropy, computed from the weighted sum z (before the sigmoid) for
//! numerical stability. Its gradient with respect to z is simply (σ(z) − y)/N, so the update
//! w ← w − η ∂L/∂w pushes each weight in proportion to how wrong the output was and how large
//! its input was. The gradients come from Candle's backward pass (`Gradients::compute`); the
//! update is written out here, one `Var::set` per parameter, so nothing is hidden in an
//! optimizer.

use dl_autograd::Gradients;
use dl_nn::{binary_cross_entropy_with_logits, Activation, Neuron, VarStore};
use dl_tensor::{DType, Device, Tensor, Var};

/// The step size η of gradient descent.
const LEARNING_RATE: f64 = 2.0;
/// Full-batch gradient-descent steps per gate.
const STEPS: usize = 1500;
/// How often the loss is printed.
const REPORT_EVERY: usize = 300;

/// The four input pairs of a two-input truth table.
const INPUTS: [[f32; 2]; 4] = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];

/// The mean binary cross-entropy of the neuron's outputs against `targets`.
fn loss_of(neuron: &Neuron, inputs: &Tensor, targets: &Tensor) -> dl_nn::Result<Tensor> {
    binary_cross_entropy_with_logits(&neuron.weighted_sum(inputs)?, targets)
}

/// w ← w − η g for one parameter.
fn descend(variable: &Var, gradient: &Tensor) -> dl_nn::Result<()> {
    let updated = variable
        .as_tensor()
        .sub(&gradient.affine(LEARNING_RATE, 0.0)?)?;
    variable.set(&updated)?;
    Ok(())
}

/// How close to 0.5 an output must be to count as no decision at all.
const UNDECIDED: f32 = 0.01;

/// Prints the truth table: inputs, wanted output, the neuron's output y and its decision (1 when
/// y > 0.5, 0 when y < 0.5, `?` when y is within 0.01 of 0.5). Returns how many rows the
/// decision gets right.
fn print_truth_table(neuron: &Neuron, inputs: &Tensor, targets: &[f32]) -> dl_nn::Result<usize> {
    let outputs: Vec<f32> = neuron.forward(inputs)?.to_vec1()?;
    println!("    x1  x2 | target |      y   | decision");
    let mut correct = 0;
    for ((pair, &target), &output) in INPUTS.iter().zip(targets).zip(&outputs) {
        let decision = if (output - 0.5).abs() < UNDECIDED {
            None
        } else {
            Some(f32::from(u8::from(output > 0.5)))
        };
        let right = decision == Some(target);
        correct += usize::from(right);
        println!(
            "    {:>2}  {:>2} | {:>6} | {:>8.4} | {:>8} {}",
            pair[0],
            pair[1],
            target,
            output,
            decision.map_or("?".to_string(), |value| value.to_string()),
            if right { "ok" } else { "WRONG" }
        );
    }
    Ok(correct)
}

fn print_parameters(neuron: &Neuron) -> dl_nn::Result<()> {
    // Values that round to zero are printed as +0.000, not -0.000.
    let tidy = |value: f32| if value.abs() < 5e-4 { 0.0 } else { value };
    let weights: Vec<f32> = neuron.weights().as_tensor().to_vec1()?;
    let weights: Vec<f32> = weights.into_iter().map(tidy).collect();
    let bias = tidy(neuron.bias().as_tensor().to_scalar()?);
    println!(
        "    w = [{:+.3}, {:+.3}], b = {:+.3}; decision line {:+.3}·x1 {:+.3}·x2 {:+.3} = 0",
        weights[0], weights[1], bias, weights[0], weights[1], bias
    );
    Ok(())
}

/// Trains `neuron` on the gate whose outputs are `targets`, printing the table before and after.
fn train_gate(
    neuron: &Neuron,
    gate: &str,
    targets: [f32; 4],
    device: &Device,
) -> dl_nn::Result<usize> {
    let inputs = Tensor::new(&INPUTS, device)?;
    let target_tensor = Tensor::new(&targets, device)?;
    println!("=== {gate} ===");
    println!("  before training:");
    print_parameters(neuron)?;
    print_truth_table(neuron, &inputs, &targets)?;

    for step in 0..=STEPS {
        let loss = loss_of(neuron, &inputs, &target_tensor)?;
        if step % REPORT_EVERY == 0 {
            println!("  step {step:>4}: loss {:.5}", loss.to_scalar::<f32>()?);
        }
        if step == STEPS {
            break;
        }
        let gradients = Gradients::compute(
            &loss,
            [("weight", neuron.weights()), ("bias", neuron.bias())],
        )?;
        for variable in [neuron.weights(), neuron.bias()] {
            let gradient = gradients
                .of(variable)
                .expect("the loss depends on every parameter");
            descend(variable, gradient)?;
        }
    }

    println!("  after {STEPS} steps of gradient descent (η = {LEARNING_RATE}):");
    print_parameters(neuron)?;
    let correct = print_truth_table(neuron, &inputs, &targets)?;
    println!("  {correct}/4 rows right\n");
    Ok(correct)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let store = VarStore::new(&device, DType::F32, 41);
    let neuron = Neuron::new(&store.root().sub("neuron"), 2, Activation::Sigmoid)?;
    println!("One neuron: y = sigmoid(w1·x1 + w2·x2 + b), loss = binary cross-entropy\n");

    let and = train_gate(&neuron, "AND", [0.0, 0.0, 0.0, 1.0], &device)?;
    // The same neuron, retrained: its AND weights are the starting point, and the table
    // printed "before" shows AND failing at OR.
    let or = train_gate(&neuron, "OR", [0.0, 1.0, 1.0, 1.0], &device)?;
    let xor = train_gate(
        &neuron,
        "XOR (expected to fail)",
        [0.0, 1.0, 1.0, 0.0],
        &device,
    )?;

    println!("Why XOR is impossible for one neuron:");
    println!("  The neuron says 1 exactly when w1·x1 + w2·x2 + b > 0, i.e. on one side of a straight line.");
    println!("  XOR needs b < 0 (0,0 → 0), w2 + b > 0 (0,1 → 1), w1 + b > 0 (1,0 → 1) and w1 + w2 + b < 0 (1,1 → 0).");
    println!("  Adding the middle two gives w1 + w2 + 2b > 0, so w1 + w2 + b > −b > 0, contradicting the");
    println!(
        "  last: no line separates XOR's ones from its zeros. Gradient descent settles at w ≈ 0,"
    );
    println!("  b ≈ 0, y ≈ 0.5 everywhere (the loss stops at ln 2 ≈ 0.693, a coin toss).");
    println!(
        "  A hidden layer fixes this: cargo run --release -p dl-examples --example 05-xor-mlp"
    );

    if and != 4 || or != 4 {
        return Err(format!(
            "the neuron should learn AND and OR perfectly, got {and}/4 and {or}/4"
        )
        .into());
    }
    if xor == 4 {
        return Err("a single neuron cannot compute XOR, yet all four rows came out right".into());
    }
    Ok(())
}
