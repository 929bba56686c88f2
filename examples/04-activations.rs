//! Course §4.2 "激活函数": the activation functions f in y = f(Σ wᵢxᵢ + b), their values and
//! their derivatives, and softmax.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release -p dl-examples --example 04-activations
//! ```
//!
//! For every x in −3, −2, …, 3 the table shows f(x), the derivative f'(x) from the closed form
//! in `Activation::derivative`, and the derivative Candle's backward pass computes for the same
//! function (the gradient of Σ f(xᵢ) with respect to each xᵢ is f'(xᵢ)). The two agree to
//! rounding everywhere except where they legitimately differ, and the program says why.

use dl_autograd::Gradients;
use dl_nn::{softmax, Activation};
use dl_tensor::{Device, Tensor, Var};

/// The activations the course names (sigmoid, ReLU, tanh) and two modern variants.
const ACTIVATIONS: [(Activation, &str); 5] = [
    (
        Activation::Sigmoid,
        "sigmoid  f(x) = 1 / (1 + e^(−x))            f'(x) = f(x)(1 − f(x))",
    ),
    (
        Activation::Relu,
        "ReLU     f(x) = max(0, x)                     f'(x) = 1 if x > 0, else 0",
    ),
    (
        Activation::Tanh,
        "tanh     f(x) = (e^x − e^(−x)) / (e^x + e^(−x)) f'(x) = 1 − f(x)²",
    ),
    (
        Activation::LeakyRelu(0.25),
        "leaky ReLU (α = 0.25) f(x) = x if x > 0, else αx   f'(x) = 1 or α",
    ),
    (
        Activation::Gelu,
        "GELU (tanh approximation)  f(x) = 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))",
    ),
];

/// Differences above this are flagged and explained.
const TOLERANCE: f64 = 1e-9;

/// f'(x) at every element of `points` from Candle's backward pass.
fn backward_derivative(activation: Activation, points: &Var) -> dl_nn::Result<Vec<f64>> {
    let total = activation.apply(points.as_tensor())?.sum_all()?;
    let gradients = Gradients::compute(&total, [("x", points)])?;
    let gradient = gradients
        .get("x")
        .expect("every output depends on its input");
    Ok(gradient.to_vec1()?)
}

/// Why a flagged row differs, for the activation and point at hand.
fn explain(activation: Activation, x: f64) -> &'static str {
    match activation {
        Activation::Relu if x == 0.0 => {
            "kink: no derivative at 0; closed form takes 0, Candle's relu takes 1"
        }
        Activation::LeakyRelu(_) if x == 0.0 => {
            "kink: closed form takes α; Candle's max(x, αx) sees a tie and splits it, (1 + α)/2"
        }
        Activation::Gelu => "Candle's GELU backward uses constants rounded to 6 digits",
        _ => "unexpected",
    }
}

fn print_activation_table(
    activation: Activation,
    title: &str,
    device: &Device,
) -> dl_nn::Result<()> {
    let xs: Vec<f64> = (-3..=3).map(f64::from).collect();
    let points = Var::new(xs.as_slice(), device)?;
    let values: Vec<f64> = activation.apply(points.as_tensor())?.to_vec1()?;
    let closed_form: Vec<f64> = activation.derivative(points.as_tensor())?.to_vec1()?;
    let backward = backward_derivative(activation, &points)?;

    println!("{title}");
    println!("     x |     f(x)    | f'(x) closed form | f'(x) backward |  difference");
    for (index, &x) in xs.iter().enumerate() {
        let difference = (closed_form[index] - backward[index]).abs();
        let note = if difference > TOLERANCE {
            format!("  <- {}", explain(activation, x))
        } else {
            String::new()
        };
        println!(
            "  {x:>4} | {:>11.6} | {:>17.9} | {:>14.9} | {difference:>11.2e}{note}",
            values[index], closed_form[index], backward[index]
        );
    }
    println!();
    Ok(())
}

fn print_softmax(device: &Device) -> dl_nn::Result<()> {
    println!("softmax  s_i = e^(x_i) / Σ_j e^(x_j): scores → probabilities (all > 0, sum 1)");
    for scores in [
        [1.0f64, 2.0, 3.0],
        [1001.0, 1002.0, 1003.0],
        [-1.0, 0.0, 5.0],
    ] {
        let probabilities: Vec<f64> = softmax(&Tensor::new(&scores, device)?)?.to_vec1()?;
        let sum: f64 = probabilities.iter().sum();
        println!(
            "  softmax({:?}) = [{}]  (sum {sum:.6})",
            scores,
            probabilities
                .iter()
                .map(|p| format!("{p:.6}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("  Adding the same number to every score changes nothing (rows 1 and 2): the code subtracts");
    println!("  the largest score before e^x, so e^1003 never overflows.");
    let scores = Tensor::new(&[1.0f64, 2.0, 3.0], device)?;
    match Activation::Softmax.derivative(&scores) {
        Ok(_) => println!("  (unexpected: softmax returned an elementwise derivative)"),
        Err(error) => println!("  Activation::Softmax.derivative refuses: {error}"),
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    println!(
        "Activation functions and their derivatives (f64), closed form next to Candle's backward\n"
    );
    for (activation, title) in ACTIVATIONS {
        print_activation_table(activation, title, &device)?;
    }
    println!(
        "Note how the sigmoid's slope is at most 0.25 and tanh's at most 1, and both vanish for"
    );
    println!(
        "large |x| (saturation): the gradient reaching early layers shrinks, which is why ReLU is"
    );
    println!("the usual choice for hidden layers.\n");
    print_softmax(&device)?;
    Ok(())
}
