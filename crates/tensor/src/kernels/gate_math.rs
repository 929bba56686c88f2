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
//! Two things make that possible. The exponential is [`Real::fast_exp`]
//! (`fast_math.rs`), a polynomial without branches or library calls (in `f32`; `f64`, used by
//! gradient checks, keeps the library's).
//! And on x86-64 the loops are compiled a second time for AVX2 + FMA and chosen at run time
//! when the processor has them (Rust's default target only assumes SSE2): 8 lanes instead of 4.
//! In a 100-step character model this arithmetic took a third of the training time with the
//! C library's `expf`.

use super::fast_math::{sigmoid, tanh};
use super::Real;

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
