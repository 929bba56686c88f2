//! The element-wise arithmetic of an LSTM step's gates (course §5.2), one row at a time, written
//! so that the compiler turns each loop into SIMD instructions:
//!
//! ```text
//! forward:  i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)
//!           c' = f ⊙ c + i ⊙ g        h' = o ⊙ tanh(c')
//! backward: δc = ∂L/∂c' + ∂L/∂h' ⊙ o ⊙ (1 − tanh²c')
//!           ∂L/∂a_i = δc ⊙ g ⊙ i(1 − i)    ∂L/∂a_f = δc ⊙ c ⊙ f(1 − f)
//!           ∂L/∂a_g = δc ⊙ i ⊙ (1 − g²)    ∂L/∂a_o = ∂L/∂h' ⊙ tanh c' ⊙ o(1 − o)
//!           ∂L/∂c = δc ⊙ f
//! ```
//!
//! Two things make that possible. The exponential is [`Real::fast_exp`], a polynomial without
//! branches or library calls (in `f32`; `f64`, used by gradient checks, keeps the library's).
//! And on x86-64 the loops are compiled a second time for AVX2 + FMA and chosen at run time
//! when the processor has them (Rust's default target only assumes SSE2): 8 lanes instead of 4.
//! In a 100-step character model this arithmetic took a third of the training time with the
//! C library's `expf`.

use super::Real;

/// σ(x) = 1 / (1 + e^(−x)).
#[inline(always)]
pub(crate) fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).fast_exp())
}

/// tanh x = 1 − 2 / (e^(2x) + 1): one exponential. Near 0 it loses relative but not absolute
/// precision (within a few units of the last place of 1, about 1e-7 in f32), which is all an
/// LSTM's products can see. Large |x| gives ±1.
#[inline(always)]
pub(crate) fn tanh<T: Real>(x: T) -> T {
    let two = T::one() + T::one();
    T::one() - two / ((two * x).fast_exp() + T::one())
}

/// The forward pass of one row: from the pre-activations `gates` (4H, order i, f, g, o) and
/// the previous cell `cell` (H), writes h' and c' and keeps i, f, g, o, tanh c' in `saved`
/// (5H) for backward.
pub(crate) fn forward_row<T: Real>(
    gates: &[T],
    cell: &[T],
    new_hidden: &mut [T],
    new_cell: &mut [T],
    saved: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the processor has AVX2 and FMA (checked just above).
        unsafe { forward_row_avx2(gates, cell, new_hidden, new_cell, saved) };
        return;
    }
    forward_row_portable(gates, cell, new_hidden, new_cell, saved);
}

/// The backward pass of one row: from the saved activations (5H), the previous cell (H) and the
/// gradients reaching h' and c' (H each), writes ∂L/∂a (4H) and ∂L/∂c (H).
pub(crate) fn backward_row<T: Real>(
    saved: &[T],
    cell: &[T],
    hidden_grad: &[T],
    new_cell_grad: &[T],
    gates_grad: &mut [T],
    cell_grad: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the processor has AVX2 and FMA (checked just above).
        unsafe {
            backward_row_avx2(
                saved,
                cell,
                hidden_grad,
                new_cell_grad,
                gates_grad,
                cell_grad,
            )
        };
        return;
    }
    backward_row_portable(
        saved,
        cell,
        hidden_grad,
        new_cell_grad,
        gates_grad,
        cell_grad,
    );
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_row_avx2<T: Real>(
    gates: &[T],
    cell: &[T],
    new_hidden: &mut [T],
    new_cell: &mut [T],
    saved: &mut [T],
) {
    forward_row_portable(gates, cell, new_hidden, new_cell, saved);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_row_avx2<T: Real>(
    saved: &[T],
    cell: &[T],
    hidden_grad: &[T],
    new_cell_grad: &[T],
    gates_grad: &mut [T],
    cell_grad: &mut [T],
) {
    backward_row_portable(
        saved,
        cell,
        hidden_grad,
        new_cell_grad,
        gates_grad,
        cell_grad,
    );
}

#[inline(always)]
fn forward_row_portable<T: Real>(
    gates: &[T],
    cell: &[T],
    new_hidden: &mut [T],
    new_cell: &mut [T],
    saved: &mut [T],
) {
    let h = cell.len();
    let (gates, saved) = (&gates[..4 * h], &mut saved[..5 * h]);
    let (new_hidden, new_cell) = (&mut new_hidden[..h], &mut new_cell[..h]);
    let (i_saved, rest) = saved.split_at_mut(h);
    let (f_saved, rest) = rest.split_at_mut(h);
    let (g_saved, rest) = rest.split_at_mut(h);
    let (o_saved, tanh_saved) = rest.split_at_mut(h);
    // Each gate in its own loop over contiguous values: the shape a vectoriser wants.
    for (out, &a) in i_saved.iter_mut().zip(&gates[..h]) {
        *out = sigmoid(a);
    }
    for (out, &a) in f_saved.iter_mut().zip(&gates[h..2 * h]) {
        *out = sigmoid(a);
    }
    for (out, &a) in g_saved.iter_mut().zip(&gates[2 * h..3 * h]) {
        *out = tanh(a);
    }
    for (out, &a) in o_saved.iter_mut().zip(&gates[3 * h..]) {
        *out = sigmoid(a);
    }
    for k in 0..h {
        let c = f_saved[k] * cell[k] + i_saved[k] * g_saved[k];
        let tanh_cell = tanh(c);
        new_cell[k] = c;
        tanh_saved[k] = tanh_cell;
        new_hidden[k] = o_saved[k] * tanh_cell;
    }
}

#[inline(always)]
fn backward_row_portable<T: Real>(
    saved: &[T],
    cell: &[T],
    hidden_grad: &[T],
    new_cell_grad: &[T],
    gates_grad: &mut [T],
    cell_grad: &mut [T],
) {
    let h = cell.len();
    let one = T::one();
    let (saved, gates_grad) = (&saved[..5 * h], &mut gates_grad[..4 * h]);
    let (hidden_grad, new_cell_grad, cell_grad) =
        (&hidden_grad[..h], &new_cell_grad[..h], &mut cell_grad[..h]);
    let (i, rest) = saved.split_at(h);
    let (f, rest) = rest.split_at(h);
    let (g, rest) = rest.split_at(h);
    let (o, tanh_cell) = rest.split_at(h);
    let (grad_i, rest) = gates_grad.split_at_mut(h);
    let (grad_f, rest) = rest.split_at_mut(h);
    let (grad_g, grad_o) = rest.split_at_mut(h);
    for k in 0..h {
        let delta = new_cell_grad[k] + hidden_grad[k] * o[k] * (one - tanh_cell[k] * tanh_cell[k]);
        grad_i[k] = delta * g[k] * i[k] * (one - i[k]);
        grad_f[k] = delta * cell[k] * f[k] * (one - f[k]);
        grad_g[k] = delta * i[k] * (one - g[k] * g[k]);
        grad_o[k] = hidden_grad[k] * tanh_cell[k] * o[k] * (one - o[k]);
        cell_grad[k] = delta * f[k];
    }
}

/// e^x in `f32` to within 2 units in the last place, with no branch and no library call, so
/// that a loop of it vectorises: x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r from a degree-7
/// polynomial (the Cephes `expf` coefficients, whose last one rounds to ½ in f32), times 2^n built in the exponent bits. Inputs
/// are clamped to [−87.3, 88.3]: beyond them e^x is below the smallest normal number or above
/// the largest, and the result saturates (to about 1e−38 and 2e38) instead of 0 and ∞. NaN
/// gives NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HIGH is exact for the n that occur.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer (SSE2 has no round).
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2_E + ROUNDER) - ROUNDER;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let r2 = r * r;
    let polynomial =
        ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 1.666_666_5e-1)
            * r
            + 0.5;
    let e_r = polynomial * r2 + r + 1.0;
    let two_to_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e_r * two_to_n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_exponential_is_within_two_ulp_of_the_library() {
        let mut worst = 0f64;
        for step in -87_000..=88_000 {
            let x = step as f32 * 1e-3 + 0.000_37;
            let exact = (x as f64).exp();
            let error = ((exp_f32(x) as f64 - exact) / exact).abs();
            worst = worst.max(error);
        }
        // One unit in the last place of an f32 is 2⁻²³ ≈ 1.19e-7 relative.
        assert!(worst < 2.0 * 1.2e-7, "worst relative error {worst:e}");
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(1000.0).is_finite() && exp_f32(1000.0) > 1e38);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn sigmoid_and_tanh_match_their_definitions_in_f32() {
        for step in -2000..=2000 {
            let x = step as f32 * 0.01;
            let sigmoid_exact = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - sigmoid_exact).abs() < 2e-7, "σ({x})");
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7,
                "tanh({x})"
            );
        }
        assert_eq!(sigmoid(-200f32), 0.0f32.max(sigmoid(-200f32)));
        assert!((tanh(50f32) - 1.0).abs() < 1e-7 && (tanh(-50f32) + 1.0).abs() < 1e-7);
    }
}
