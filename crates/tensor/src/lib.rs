//! dl-tensor: the numeric ground floor of dl-practice.
//!
//! Candle is the engine; this crate re-exports the Candle types every other crate and app uses
//! (so an app needs no direct `candle-core` import), chooses the device a program runs on from a
//! string such as `--device cuda:0`, and owns the seeded random generator that all
//! initialisation, dropout masks and shuffling draw from (Candle's own CPU generator cannot be
//! seeded, so runs would not repeat without it). It also holds the CPU kernels the layers use
//! for speed ([`kernels`]) and the thread defaults programs set first thing ([`threads`]).
//!
//! ```
//! use dl_tensor::{DeviceChoice, SeededRng, Tensor};
//!
//! let device = "cpu".parse::<DeviceChoice>()?.resolve()?;
//! let mut rng = SeededRng::new(42);
//! let weights: Tensor = rng.normal_tensor((2, 3), 0.0, 1.0, &device)?;
//! assert_eq!(weights.dims(), &[2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod atomic_file;
mod device;
mod error;
mod helpers;
pub mod kernels;
mod rank_correlation;
mod rng;
mod safetensors_file;
pub mod threads;

pub use atomic_file::{
    remove_stale_temporaries, rename_durably, write_atomically, FAULT_PAUSE_VARIABLE,
};
pub use candle_core;
pub use candle_core::{DType, Device, IndexOp, Module, ModuleT, Shape, Tensor, Var, D};
pub use device::DeviceChoice;
pub use error::{Result, TensorError};
pub use helpers::{accuracy, argmax, one_hot};
pub use rank_correlation::spearman;
pub use rng::SeededRng;
pub use safetensors_file::encode_safetensors;
