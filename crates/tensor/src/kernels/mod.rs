//! Fast CPU kernels: the operations that dominate training on a CPU, written as Candle custom
//! ops so that they plug into Candle's autograd like any built-in operation.
//!
//! Candle's CPU backend is general rather than fast for the shapes a small CNN or LSTM trains
//! with: its convolution backward computes the weight gradient with a strided convolution and
//! always computes the input gradient (even of the first layer, whose input is data), its
//! max-pool backward is wrong (see `dl-nn`'s `pool.rs`), a cross-entropy is five operations
//! with a temporary each, and an Adam step allocates about ten temporaries per parameter. Each
//! file here replaces one of those with a direct loop or a matrix product:
//!
//! | file | what | used by |
//! |---|---|---|
//! | [`bias`] | y = x + b for every row, backward sums the gradient's rows in one sweep | `dl_nn::Lstm::step`'s input projection (`linear` has it built in) |
//! | [`conv2d`] | convolution as im2col + matrix product, input gradient only when needed, optionally with its ReLU | `dl_nn::Conv2d` (and `Sequential`'s conv + ReLU stages) |
//! | [`lstm_sequence`] | a whole LSTM layer over a sequence (input projection, recurrence, backward through time) without per-step tensors, one block of the batch per thread; also over token ids through W_ih Eᵀ | `dl_nn::Lstm::forward_sequence`, `dl_nn::Lstm::forward_embedded` |
//! | [`max_pool2d`] | max pooling that remembers each window's winner, backward scatters to it | `dl_nn::MaxPool2d` |
//! | [`cross_entropy`] | log-softmax + mean negative log-likelihood in one pass, backward (softmax − one-hot)/N | `dl_nn::cross_entropy` |
//! | [`adam`] | one in-place pass over (θ, g, m, v) per parameter | `dl_optim::Adam`, `AdamW` |
//! | [`batch_norm`] | batch normalisation with the batch's statistics, per-channel sums over contiguous runs | `dl_nn::BatchNorm` in training |
//! | [`linear`] | y = x Wᵀ + b in one operation, ∂L/∂W from one product in W's layout | `dl_nn::Dense` |
//! | [`lstm_cell`] | the gate arithmetic of one LSTM time step, forward and backward | `dl_nn::Lstm` |
//! | [`leaky_relu`] | leaky ReLU in one pass, backward masked by the output's sign | `dl_nn::Activation::LeakyRelu` (a GAN's discriminator) |
//! | [`conv_transpose2d`] | transposed convolution as the adjoint of [`conv2d`]: col2im forward, im2col backward | `dl_nn::ConvTranspose2d` (a DCGAN's generator) |
//! | [`fast_math`] | e^x, σ and tanh as vectorisable polynomials | `gate_math`, `dl_nn::LstmInference` |
//! | [`matvec`] | a matrix packed in 64-row blocks for matrix-vector products | `dl_nn::LstmInference`, `DenseInference` |
//! | [`int8`] | exact u8 × i8 matrix products (AVX-512 VNNI, AVX2 or plain Rust) with a fused dequantize / requantize epilogue, and im2col on u8 | post-training-quantized inference (course §8) |
//! | `packed_gemm` | W_hh packed once per sequence for the recurrence's matrix products | [`lstm_sequence`] |
//!
//! The kernels run on the CPU in `f32` and `f64` (`f64` so that `dl_autograd::check_gradients`
//! can check them); on a GPU, or in another dtype, the callers use Candle's own operations.
//! Work is spread over the batch with rayon (the thread pool Candle itself uses), so
//! `RAYON_NUM_THREADS` limits both; small pieces of work stay on the calling thread.
//!
//! The functions here (`conv2d::conv2d`, …) always take the fast path when the tensors allow it
//! (see [`is_supported`]); the switch below is for their callers in `dl-nn` and `dl-optim`.
//!
//! # Switching back to plain Candle
//!
//! Every caller asks [`enabled`] first, so the plain Candle path stays one switch away, for
//! comparison or to rule the kernels out when hunting a bug: call [`set_enabled`]`(false)`, or
//! set the environment variable `DL_PLAIN_CANDLE=1` before the program starts.
//!
//! ```
//! use dl_tensor::kernels;
//!
//! kernels::set_enabled(false); // from here on, dl-nn and dl-optim use Candle's operations
//! assert!(!kernels::enabled());
//! kernels::set_enabled(true);
//! ```
//!
//! `cargo xtask bench kernels` times each kernel against the plain path.

pub mod adam;
pub mod batch_norm;
pub mod bias;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod cross_entropy;
pub mod fast_math;
mod gate_math;
mod gemm;
pub mod int8;
pub mod leaky_relu;
pub mod linear;
pub mod lstm_cell;
pub mod lstm_sequence;
pub mod matvec;
pub mod max_pool2d;
mod packed_gemm;
mod slices;

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{DType, Tensor};

/// The environment variable that turns the kernels off when set to anything but `0` or empty.
pub const PLAIN_CANDLE_VARIABLE: &str = "DL_PLAIN_CANDLE";

const UNDECIDED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// Whether the fast kernels are used: true unless [`set_enabled`]`(false)` was called or the
/// program started with `DL_PLAIN_CANDLE=1`.
// ANCHOR: kernels-enabled
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let plain = std::env::var(PLAIN_CANDLE_VARIABLE)
                .is_ok_and(|value| !value.is_empty() && value != "0");
            // A concurrent `set_enabled` wins over the environment.
            let _ = STATE.compare_exchange(
                UNDECIDED,
                if plain { OFF } else { ON },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            STATE.load(Ordering::Relaxed) == ON
        }
    }
}
// ANCHOR_END: kernels-enabled

/// Turns the fast kernels on or off for the whole program (overriding `DL_PLAIN_CANDLE`).
pub fn set_enabled(enabled: bool) {
    STATE.store(if enabled { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether the kernels can run on these tensors: all on the CPU, all `f32` or all `f64`.
pub fn is_supported(tensors: &[&Tensor]) -> bool {
    let Some(first) = tensors.first() else {
        return false;
    };
    matches!(first.dtype(), DType::F32 | DType::F64)
        && tensors
            .iter()
            .all(|tensor| tensor.device().is_cpu() && tensor.dtype() == first.dtype())
}

/// Whether callers should use the kernels for these tensors: [`enabled`] and
/// [`is_supported`].
pub fn applies_to(tensors: &[&Tensor]) -> bool {
    enabled() && is_supported(tensors)
}

/// Whether `elements` elements of work are worth spreading over rayon's threads: only when
/// there is more than one thread and enough work (about 32k elements) to pay for handing it to
/// them; otherwise the kernel runs on the calling thread.
pub(crate) fn worth_parallel(elements: usize) -> bool {
    elements >= 1 << 15 && rayon::current_num_threads() > 1
}

/// The floating-point types the kernels are written for (`f32` and `f64`): Candle's element
/// trait plus the few functions of a real number the kernels need.
pub trait Real: candle_core::WithDType + std::ops::Neg<Output = Self> + num_like::Sealed {
    /// e^x.
    fn exp(self) -> Self;
    /// e^x computed so that a loop of it vectorises: in `f32` a polynomial within 2 units in the
    /// last place (`fast_math::exp_f32`), in `f64` the same as [`Real::exp`].
    fn fast_exp(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
    /// The larger of two values (the other one when `self` is NaN).
    fn max(self, other: Self) -> Self;
    /// The most negative value (the start of a running maximum).
    const NEG_INFINITY: Self;
    /// The elements of a CPU storage of this type, writable (for the in-place kernels).
    fn storage_mut(storage: &mut candle_core::CpuStorage) -> Option<&mut [Self]>;
}

mod num_like {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

macro_rules! impl_real {
    ($ty:ty, $variant:ident, $fast_exp:expr) => {
        impl Real for $ty {
            fn exp(self) -> Self {
                <$ty>::exp(self)
            }
            #[inline(always)]
            fn fast_exp(self) -> Self {
                $fast_exp(self)
            }
            fn sqrt(self) -> Self {
                <$ty>::sqrt(self)
            }
            fn max(self, other: Self) -> Self {
                <$ty>::max(self, other)
            }
            const NEG_INFINITY: Self = <$ty>::NEG_INFINITY;
            fn storage_mut(storage: &mut candle_core::CpuStorage) -> Option<&mut [Self]> {
                match storage {
                    candle_core::CpuStorage::$variant(data) => Some(data),
                    _ => None,
                }
            }
        }
    };
}
impl_real!(f32, F32, fast_math::exp_f32);
impl_real!(f64, F64, f64::exp);

/// Runs `$body` with `$T` bound to the element type of `$dtype` (`f32` or `f64`), or returns an
/// "unsupported dtype" error naming `$op`.
macro_rules! dispatch_real {
    ($dtype:expr, $op:expr, |$T:ident| $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $T = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $T = f64;
                $body
            }
            other => Err(candle_core::Error::UnsupportedDTypeForOp(other, $op).bt()),
        }
    };
}
pub(crate) use dispatch_real;
