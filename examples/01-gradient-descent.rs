//! Course §3.1 "梯度下降算法": fit the line y = 2x + 1 to noisy points by gradient descent,
//! first with gradients derived by hand, then with dl-optim's `Sgd`, and check that both take
//! exactly the same path.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release -p dl-examples --example 01-gradient-descent
//! ```
//!
//! The model is ŷ = w·x + b, the loss the mean squared error
//!
//! ```text
//! L(w, b) = (1/N) Σᵢ (w·xᵢ + b − yᵢ)²
//! ∂L/∂w   = (2/N) Σᵢ (w·xᵢ + b − yᵢ)·xᵢ
//! ∂L/∂b   = (2/N) Σᵢ (w·xᵢ + b − yᵢ)
//! ```
//!
//! and each step moves both parameters against their gradient, w ← w − η ∂L/∂w,
//! b ← b − η ∂L/∂b ("沿着损失函数梯度的反方向更新参数").

use dl_autograd::Gradients;
use dl_optim::{Optimizer, Sgd, SgdConfig};
use dl_tensor::{Device, SeededRng, Tensor, Var};

/// The line the data comes from.
const TRUE_W: f64 = 2.0;
const TRUE_B: f64 = 1.0;
/// Number of points, their spread on the x axis and the standard deviation of the noise on y.
const POINTS: usize = 40;
const X_RANGE: (f64, f64) = (0.0, 2.0);
const NOISE: f64 = 0.1;
/// The learning rate η and the number of full-batch steps.
const LEARNING_RATE: f64 = 0.1;
const STEPS: usize = 300;
const REPORT_EVERY: usize = 30;
/// Where both runs start.
const START: (f64, f64) = (0.0, 0.0);
/// The largest difference between the two trajectories that counts as "the same".
const TOLERANCE: f64 = 1e-9;

/// (w, b, loss) before every step and after the last one.
type Trajectory = Vec<(f64, f64, f64)>;

/// Noisy samples of y = 2x + 1, with x evenly spread and seeded Gaussian noise on y.
fn make_data(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SeededRng::new(seed);
    let (low, high) = X_RANGE;
    let xs: Vec<f64> = (0..POINTS)
        .map(|index| low + (high - low) * index as f64 / (POINTS - 1) as f64)
        .collect();
    let ys = xs
        .iter()
        .map(|&x| TRUE_W * x + TRUE_B + NOISE * f64::from(rng.normal()))
        .collect();
    (xs, ys)
}

/// The loss and its two partial derivatives, by the formulas in the header.
fn loss_and_gradients(w: f64, b: f64, xs: &[f64], ys: &[f64]) -> (f64, f64, f64) {
    let count = xs.len() as f64;
    let (mut loss, mut d_w, mut d_b) = (0.0, 0.0, 0.0);
    for (&x, &y) in xs.iter().zip(ys) {
        let residual = w * x + b - y;
        loss += residual * residual / count;
        d_w += 2.0 * residual * x / count;
        d_b += 2.0 * residual / count;
    }
    (loss, d_w, d_b)
}

/// Plain gradient descent with hand-derived gradients; returns (w, b, loss) before every step
/// and after the last.
fn descend_by_hand(xs: &[f64], ys: &[f64], learning_rate: f64, steps: usize) -> Trajectory {
    let (mut w, mut b) = START;
    let mut trajectory = Vec::with_capacity(steps + 1);
    for _ in 0..steps {
        let (loss, d_w, d_b) = loss_and_gradients(w, b, xs, ys);
        trajectory.push((w, b, loss));
        w -= learning_rate * d_w;
        b -= learning_rate * d_b;
    }
    let (loss, _, _) = loss_and_gradients(w, b, xs, ys);
    trajectory.push((w, b, loss));
    trajectory
}

/// The same descent with Candle computing the gradients and `Sgd` applying the update.
fn descend_with_sgd(xs: &[f64], ys: &[f64]) -> Result<Trajectory, Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let inputs = Tensor::new(xs, &device)?;
    let targets = Tensor::new(ys, &device)?;
    let w = Var::new(START.0, &device)?;
    let b = Var::new(START.1, &device)?;
    let mut optimizer = Sgd::new(SgdConfig::new(LEARNING_RATE))?;
    let mut trajectory = Vec::with_capacity(STEPS + 1);
    for step in 0..=STEPS {
        let predictions = inputs
            .broadcast_mul(w.as_tensor())?
            .broadcast_add(b.as_tensor())?;
        let loss = predictions.sub(&targets)?.sqr()?.mean_all()?;
        trajectory.push((
            w.as_tensor().to_scalar::<f64>()?,
            b.as_tensor().to_scalar::<f64>()?,
            loss.to_scalar::<f64>()?,
        ));
        if step < STEPS {
            optimizer.step(&Gradients::compute(&loss, [("w", &w), ("b", &b)])?)?;
        }
    }
    Ok(trajectory)
}

/// The exact least-squares line through the points (the normal equations), the minimum that
/// gradient descent approaches.
fn least_squares(xs: &[f64], ys: &[f64]) -> (f64, f64) {
    let count = xs.len() as f64;
    let mean_x = xs.iter().sum::<f64>() / count;
    let mean_y = ys.iter().sum::<f64>() / count;
    let covariance: f64 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    let slope = covariance / variance;
    (slope, mean_y - slope * mean_x)
}

/// The largest eigenvalue of the loss's Hessian, (2/N)·[[Σx², Σx], [Σx, N]]: gradient descent
/// on this quadratic converges exactly when η < 2/λ.
fn largest_curvature(xs: &[f64]) -> f64 {
    let count = xs.len() as f64;
    let a = 2.0 * xs.iter().map(|x| x * x).sum::<f64>() / count;
    let b = 2.0 * xs.iter().sum::<f64>() / count;
    let d = 2.0;
    (a + d) / 2.0 + (((a - d) / 2.0).powi(2) + b * b).sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (xs, ys) = make_data(7);
    println!(
        "Fitting ŷ = w·x + b to {POINTS} points of y = {TRUE_W}x + {TRUE_B} + noise (σ = {NOISE}), x in [{}, {}]",
        X_RANGE.0, X_RANGE.1
    );
    println!(
        "gradient descent: η = {LEARNING_RATE}, {STEPS} full-batch steps from w = {}, b = {}\n",
        START.0, START.1
    );

    let by_hand = descend_by_hand(&xs, &ys, LEARNING_RATE, STEPS);
    let with_sgd = descend_with_sgd(&xs, &ys)?;

    println!(
        " {:>4} | {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10}",
        "step", "hand: w", "b", "loss", "Sgd: w", "b", "loss"
    );
    let mut largest_difference: f64 = 0.0;
    for (step, (hand, sgd)) in by_hand.iter().zip(&with_sgd).enumerate() {
        let difference = (hand.0 - sgd.0)
            .abs()
            .max((hand.1 - sgd.1).abs())
            .max((hand.2 - sgd.2).abs());
        largest_difference = largest_difference.max(difference);
        if step % REPORT_EVERY == 0 {
            println!(
                " {step:>4} | {:>10.6} {:>10.6} {:>10.6} | {:>10.6} {:>10.6} {:>10.6}",
                hand.0, hand.1, hand.2, sgd.0, sgd.1, sgd.2
            );
        }
    }
    let (w, b, loss) = by_hand[STEPS];
    let (best_w, best_b) = least_squares(&xs, &ys);
    println!("\nfinal: w = {w:.6}, b = {b:.6}, loss = {loss:.6}");
    println!("least-squares optimum of this noisy data: w = {best_w:.6}, b = {best_b:.6} (the true line is w = {TRUE_W}, b = {TRUE_B})");
    println!("largest difference between the hand-derived and the Sgd trajectory: {largest_difference:.1e}");

    println!("\nThe learning rate matters (same data, 40 steps by hand):");
    println!(
        "  (the loss is a bowl whose steepest curvature is λ = {:.3}; a step larger than 2/λ = {:.3}",
        largest_curvature(&xs),
        2.0 / largest_curvature(&xs)
    );
    println!(
        "  lands higher up the opposite wall than it started, so every step makes things worse)"
    );
    for learning_rate in [0.01, 0.1, 0.4, 0.5] {
        let (w, b, loss) = descend_by_hand(&xs, &ys, learning_rate, 40)[40];
        let verdict = if !loss.is_finite() || loss > 10.0 {
            "diverges: each step overshoots the minimum by more than it gains"
        } else if loss > 0.1 {
            "too small: still far from the minimum"
        } else {
            "converges"
        };
        println!("  η = {learning_rate:<4}  w = {w:>12.4}  b = {b:>12.4}  loss = {loss:>12.4e}  {verdict}");
    }

    if largest_difference > TOLERANCE {
        return Err(format!(
            "Sgd's trajectory departs from the hand-derived one by {largest_difference:.3e}"
        )
        .into());
    }
    if (w - best_w).abs() > 1e-3 || (b - best_b).abs() > 1e-3 {
        return Err(
            format!("gradient descent stopped at w = {w}, b = {b}, not at the optimum").into(),
        );
    }
    Ok(())
}
