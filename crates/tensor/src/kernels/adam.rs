//! The Adam / AdamW update (course §3, gradient descent with per-weight step sizes) as one
//! in-place pass over each parameter: for every element, with gradient g, weight θ and the
//! moments m and v,
//!
//! ```text
//! g ← g + λθ                          (Adam: L2 weight decay)
//! θ ← θ(1 − ηλ)                       (AdamW: decoupled weight decay)
//! m ← β1 m + (1 − β1) g
//! v ← β2 v + (1 − β2) g²
//! θ ← θ − (η / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
//! ```
//!
//! Written with tensor operations (as `dl-optim` does off the CPU) the step makes about ten
//! temporaries per parameter; here θ is updated in place (a Candle in-place op on the
//! variable's own storage) and m, v are plain vectors updated in the same loop. Every
//! operation is the one the tensor path performs, in the same order and the same precision
//! (the constants are converted from `f64` to the element type exactly as Candle's `affine`
//! does), so both paths give the same numbers.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::slices::{row_major, tensor_from, with_row_major};
use super::{dispatch_real, worth_parallel, Real};

/// The hyper-parameters of one Adam step of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// The learning rate η.
    pub learning_rate: f64,
    /// The first-moment decay β1.
    pub beta1: f64,
    /// The second-moment decay β2.
    pub beta2: f64,
    /// The ε added to √v̂.
    pub epsilon: f64,
    /// The weight decay λ.
    pub weight_decay: f64,
    /// True for AdamW's decoupled decay θ ← θ(1 − ηλ), false for Adam's L2 term g + λθ.
    pub decoupled_weight_decay: bool,
    /// The step number t of this parameter, from 1.
    pub step: u64,
}

/// The first and second moments (m, v) of one parameter, kept on the CPU as plain vectors in
/// the parameter's dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum AdamMoments {
    /// Moments of an `f32` parameter.
    F32 {
        /// m.
        exp_avg: Vec<f32>,
        /// v.
        exp_avg_sq: Vec<f32>,
    },
    /// Moments of an `f64` parameter.
    F64 {
        /// m.
        exp_avg: Vec<f64>,
        /// v.
        exp_avg_sq: Vec<f64>,
    },
}

impl AdamMoments {
    /// Zero moments for `len` elements of `dtype` (`f32` or `f64`).
    pub fn zeros(dtype: DType, len: usize) -> Result<Self> {
        match dtype {
            DType::F32 => Ok(Self::F32 {
                exp_avg: vec![0.; len],
                exp_avg_sq: vec![0.; len],
            }),
            DType::F64 => Ok(Self::F64 {
                exp_avg: vec![0.; len],
                exp_avg_sq: vec![0.; len],
            }),
            other => Err(candle_core::Error::UnsupportedDTypeForOp(other, "dl-adam").bt()),
        }
    }

    /// The moments held by two tensors (a saved optimizer state), converted to `dtype`.
    pub fn from_tensors(exp_avg: &Tensor, exp_avg_sq: &Tensor, dtype: DType) -> Result<Self> {
        let read = |tensor: &Tensor| {
            tensor
                .to_device(&candle_core::Device::Cpu)?
                .to_dtype(dtype)?
                .flatten_all()
        };
        let (exp_avg, exp_avg_sq) = (read(exp_avg)?, read(exp_avg_sq)?);
        dispatch_real!(dtype, "dl-adam", |T| {
            let exp_avg = with_row_major::<T, _>(&exp_avg, |data| Ok(data.to_vec()))?;
            let exp_avg_sq = with_row_major::<T, _>(&exp_avg_sq, |data| Ok(data.to_vec()))?;
            Ok(T::wrap(exp_avg, exp_avg_sq))
        })
    }

    /// The moments as two CPU tensors of `shape` (to save them).
    pub fn to_tensors(&self, shape: &Shape) -> Result<(Tensor, Tensor)> {
        match self {
            Self::F32 {
                exp_avg,
                exp_avg_sq,
            } => Ok((
                tensor_from(exp_avg.clone(), shape.clone())?,
                tensor_from(exp_avg_sq.clone(), shape.clone())?,
            )),
            Self::F64 {
                exp_avg,
                exp_avg_sq,
            } => Ok((
                tensor_from(exp_avg.clone(), shape.clone())?,
                tensor_from(exp_avg_sq.clone(), shape.clone())?,
            )),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::F32 { exp_avg, .. } => exp_avg.len(),
            Self::F64 { exp_avg, .. } => exp_avg.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Self::F32 { .. } => DType::F32,
            Self::F64 { .. } => DType::F64,
        }
    }
}

/// Access to the moment vectors of the matching variant of [`AdamMoments`].
trait MomentType: Real {
    fn wrap(exp_avg: Vec<Self>, exp_avg_sq: Vec<Self>) -> AdamMoments;
    fn unwrap(moments: &mut AdamMoments) -> Option<(&mut [Self], &mut [Self])>;
}

macro_rules! impl_moment_type {
    ($ty:ty, $variant:ident) => {
        impl MomentType for $ty {
            fn wrap(exp_avg: Vec<Self>, exp_avg_sq: Vec<Self>) -> AdamMoments {
                AdamMoments::$variant {
                    exp_avg,
                    exp_avg_sq,
                }
            }
            fn unwrap(moments: &mut AdamMoments) -> Option<(&mut [Self], &mut [Self])> {
                match moments {
                    AdamMoments::$variant {
                        exp_avg,
                        exp_avg_sq,
                    } => Some((exp_avg, exp_avg_sq)),
                    _ => None,
                }
            }
        }
    };
}
impl_moment_type!(f32, F32);
impl_moment_type!(f64, F64);

/// β^t for a step count t (saturating: β^t is 0 long before t exceeds `i32::MAX`).
fn powi(base: f64, exponent: u64) -> f64 {
    base.powi(i32::try_from(exponent).unwrap_or(i32::MAX))
}

/// The per-step constants, converted to the element type once.
#[derive(Debug, Clone, Copy)]
struct Constants<T> {
    /// λ when it is added to the gradient (Adam), else `None`.
    l2: Option<T>,
    /// 1 − ηλ when the decay is decoupled (AdamW), else `None`.
    decay: Option<T>,
    beta1: T,
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    /// 1/√(1 − β2^t).
    inverse_root_bias_correction2: T,
    epsilon: T,
    /// η/(1 − β1^t), or `None` when it is 0 (then θ is left alone).
    step_size: Option<T>,
}

impl<T: Real> Constants<T> {
    fn new(step: &AdamStep) -> Self {
        let decays = step.weight_decay != 0.0;
        let step_size = step.learning_rate / (1.0 - powi(step.beta1, step.step));
        Self {
            l2: (decays && !step.decoupled_weight_decay).then(|| T::from_f64(step.weight_decay)),
            decay: (decays && step.decoupled_weight_decay)
                .then(|| T::from_f64(1.0 - step.learning_rate * step.weight_decay)),
            beta1: T::from_f64(step.beta1),
            one_minus_beta1: T::from_f64(1.0 - step.beta1),
            beta2: T::from_f64(step.beta2),
            one_minus_beta2: T::from_f64(1.0 - step.beta2),
            inverse_root_bias_correction2: T::from_f64(
                1.0 / (1.0 - powi(step.beta2, step.step)).sqrt(),
            ),
            epsilon: T::from_f64(step.epsilon),
            step_size: (step_size != 0.0).then(|| T::from_f64(step_size)),
        }
    }

    /// Updates one element.
    #[inline]
    fn update(&self, theta: &mut T, gradient: T, m: &mut T, v: &mut T) {
        let gradient = match self.l2 {
            Some(weight_decay) => *theta * weight_decay + gradient,
            None => gradient,
        };
        let value = match self.decay {
            Some(factor) => *theta * factor,
            None => *theta,
        };
        *m = *m * self.beta1 + gradient * self.one_minus_beta1;
        *v = *v * self.beta2 + gradient * gradient * self.one_minus_beta2;
        if let Some(step_size) = self.step_size {
            let denominator = v.sqrt() * self.inverse_root_bias_correction2 + self.epsilon;
            *theta = value - *m / denominator * step_size;
        }
    }
}

/// The in-place op on the parameter's storage; the moments are borrowed for the call.
struct FusedAdam<'a> {
    step: AdamStep,
    moments: RefCell<&'a mut AdamMoments>,
}

/// One chunk of (((θ, g), m), v).
type Chunk<'a, T> = (((&'a mut [T], &'a [T]), &'a mut [T]), &'a mut [T]);

/// Elements per rayon task: large enough that a task outweighs its scheduling.
const CHUNK: usize = 1 << 15;

impl FusedAdam<'_> {
    fn run<T: MomentType>(
        &self,
        parameter: &mut CpuStorage,
        parameter_layout: &Layout,
        gradient: &[T],
    ) -> Result<()> {
        let Some((start, end)) = parameter_layout.contiguous_offsets() else {
            candle_core::bail!("dl-adam: the parameter must be contiguous");
        };
        let Some(theta) = T::storage_mut(parameter) else {
            candle_core::bail!("dl-adam: the parameter's storage has an unexpected dtype");
        };
        let theta = &mut theta[start..end];
        let mut moments = self.moments.borrow_mut();
        let Some((m, v)) = T::unwrap(&mut moments) else {
            candle_core::bail!("dl-adam: moments of another dtype than the parameter");
        };
        if gradient.len() != theta.len() || m.len() != theta.len() {
            candle_core::bail!(
                "dl-adam: parameter of {} elements, gradient of {}, moments of {}",
                theta.len(),
                gradient.len(),
                m.len()
            );
        }
        let constants = Constants::<T>::new(&self.step);
        let update_chunk = |(((theta, gradient), m), v): Chunk<'_, T>| {
            for (((theta, &gradient), m), v) in theta.iter_mut().zip(gradient).zip(m).zip(v) {
                constants.update(theta, gradient, m, v);
            }
        };
        if !worth_parallel(theta.len()) {
            update_chunk((((theta, gradient), m), v));
        } else {
            theta
                .par_chunks_mut(CHUNK)
                .zip(gradient.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(update_chunk);
        }
        Ok(())
    }
}

impl InplaceOp2 for FusedAdam<'_> {
    fn name(&self) -> &'static str {
        "dl-adam"
    }

    fn cpu_fwd(
        &self,
        parameter: &mut CpuStorage,
        parameter_layout: &Layout,
        gradient: &CpuStorage,
        gradient_layout: &Layout,
    ) -> Result<()> {
        dispatch_real!(parameter.dtype(), "dl-adam", |T| {
            self.run::<T>(
                parameter,
                parameter_layout,
                &row_major(gradient, gradient_layout)?,
            )
        })
    }
}

/// One Adam/AdamW step of `parameter` (a variable's tensor, updated in place) with `gradient`,
/// updating `moments` too. Both tensors must be on the CPU, in the dtype of `moments`.
///
/// ```
/// use dl_tensor::kernels::adam::{adam_step, AdamMoments, AdamStep};
/// use dl_tensor::{DType, Device, Tensor, Var};
///
/// // First step: m̂ = g and v̂ = g², so the weight moves by η·g/(|g| + ε) ≈ η·sign(g).
/// let weight = Var::new(&[1.0f32, 1.0], &Device::Cpu)?;
/// let gradient = Tensor::new(&[1000.0f32, -0.5], &Device::Cpu)?;
/// let mut moments = AdamMoments::zeros(DType::F32, 2)?;
/// let step = AdamStep { learning_rate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
///                       weight_decay: 0.0, decoupled_weight_decay: false, step: 1 };
/// adam_step(weight.as_tensor(), &gradient, &mut moments, &step)?;
/// let after = weight.as_tensor().to_vec1::<f32>()?;
/// assert!((after[0] - 0.9).abs() < 1e-6 && (after[1] - 1.1).abs() < 1e-6);
/// # Ok::<(), dl_tensor::candle_core::Error>(())
/// ```
pub fn adam_step(
    parameter: &Tensor,
    gradient: &Tensor,
    moments: &mut AdamMoments,
    step: &AdamStep,
) -> Result<()> {
    if !super::is_supported(&[parameter, gradient]) || parameter.dtype() != moments.dtype() {
        candle_core::bail!(
            "dl-adam: needs a CPU parameter and gradient of the moments' dtype {:?}, got {:?} and {:?}",
            moments.dtype(),
            parameter.dtype(),
            gradient.dtype()
        );
    }
    if gradient.dims() != parameter.dims() {
        candle_core::bail!(
            "dl-adam: gradient of shape {:?} for a parameter of shape {:?}",
            gradient.dims(),
            parameter.dims()
        );
    }
    parameter.inplace_op2(
        gradient,
        &FusedAdam {
            step: *step,
            moments: RefCell::new(moments),
        },
    )
}
