//! dl-compress: making a trained network small and fast (course §8, 模型小型化: 模型压缩、
//! 模型剪枝 — how deep learning reaches phones and embedded boards).
//!
//! - **Pruning** removes weights. [`prune_by_magnitude`] zeroes those of smallest |w|, per layer
//!   or with one global threshold (Han et al. 2015); [`MaskedOptimizer`] fine-tunes the rest
//!   while keeping the removed ones at exactly zero, optionally pruning gradually along a
//!   [`PruningSchedule`] (Zhu & Gupta 2017). [`StructuredPlan`] removes whole filters and units
//!   by L2 norm, so the model really shrinks (Li et al. 2017).
//! - **Quantization** stores weights as int8 and runs inference on integers:
//!   [`QuantizedModel::calibrate`] measures each layer's input range on training images and
//!   quantizes the weights per output channel (Jacob et al. 2018); [`save_int8`] writes it as
//!   safetensors.
//! - **Coding**: [`save_compact`] stores a pruned int8 model as bitmasks or zero-run lengths with
//!   its non-zero values, zstd-compressed (Deep Compression, Han et al. 2016);
//!   [`load_classifier`] reads a classifier file of any precision.
//! - **Ensembles**: [`save_ensemble`] bundles several classifier checkpoints in one file, which
//!   [`load_classifier`] reads as one model.
//!
//! Everything works on any [`dl_nn::Sequential`] model whose layers are Dense and Conv2D (plus
//! pooling, flattening, dropout, activations, and batch normalisation, folded into the layer before
//! it for int8).
//!
//! ```
//! use dl_compress::{measured_sparsity, prunable_weights, prune_by_magnitude, PrunableSelection, PruneScope, Sparsity};
//! use dl_nn::{Activation, Sequential, VarStore};
//! use dl_tensor::{DType, Device};
//!
//! let store = VarStore::new(&Device::Cpu, DType::F32, 0);
//! let model = Sequential::builder(&store.root(), &[1, 28, 28])
//!     .conv2d(32, 3, Activation::Relu)?
//!     .max_pool2d(2)?
//!     .flatten()?
//!     .dense(128, Activation::Relu)?
//!     .dense(10, Activation::Softmax)?
//!     .build();
//! let weights = prunable_weights(&model, PrunableSelection::default())?;
//! prune_by_magnitude(&weights, Sparsity::new(0.9)?.into(), PruneScope::Global)?;
//! let (_, sparsity) = measured_sparsity(&weights)?;
//! assert!((sparsity - 0.9).abs() < 1e-6);
//! # Ok::<(), dl_compress::CompressError>(())
//! ```

mod calibration;
mod classifier_file;
mod compact;
mod ensemble_file;
mod error;
mod int8_file;
mod magnitude;
mod masked_optimizer;
mod masks;
mod quantized;
mod schedule;
mod sparsity;
mod structured;

pub use calibration::{Calibration, RangeObserver};
pub use classifier_file::{
    classifier_from_bytes, int8_classifier_from_bytes, load_classifier, ClassifierFile,
    LoadedInt8Classifier,
};
pub use compact::{
    compact_metadata, decode_compact, encode_compact, is_compact, save_compact, WeightEncoding,
    COMPACT_MAGIC,
};
pub use ensemble_file::{
    encode_ensemble, is_ensemble, save_ensemble, EnsembleMember, LoadedEnsemble,
};
pub use error::{CompressError, Result};
pub use int8_file::{
    decode_int8, encode_int8, is_int8, load_int8, read_metadata, save_int8, INT8_FORMAT,
    QUANTIZATION_KEY,
};
pub use magnitude::{magnitude_masks, prune_by_magnitude, PruneScope};
pub use masked_optimizer::MaskedOptimizer;
pub use masks::{
    measured_sparsity, prunable_weights, PrunableSelection, PrunableWeight, PruningMasks,
    VariableSparsity,
};
pub use quantized::{QuantizedKind, QuantizedLayer, QuantizedModel};
pub use schedule::PruningSchedule;
pub use sparsity::{PruneAmount, Sparsity};
pub use structured::StructuredPlan;
