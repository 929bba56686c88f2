//! dl-nn: the building blocks of neural networks, as the course introduces them.
//!
//! - The [`Neuron`], y = f(Σ wᵢxᵢ + b), and its [`Activation`] functions.
//! - Layers: [`Dense`], [`Conv2d`], [`ConvTranspose2d`], [`MaxPool2d`], [`Flatten`], [`Dropout`], [`BatchNorm`],
//!   [`Embedding`] and the LSTM, each implementing [`Layer`]; [`LstmInference`] and
//!   [`DenseInference`] run a trained LSTM and output layer fast, one token at a time.
//! - [`Sequential`], a stack of layers built like the course's Keras code, with a Keras-style
//!   [`Sequential::summary`].
//! - Losses and metrics (and the quality of generated samples: Inception Score, Fréchet
//!   distance), ensembles of classifiers ([`combine`], with their calibration and diversity; [`EnsembleModel`]
//!   runs several as one layer),
//!   and safetensors checkpoints whose tensor names follow PyTorch's.
//!
//! All weights live in a [`VarStore`], initialised from a seeded generator so that the same seed
//! gives the same model.
//!
//! ```
//! use dl_nn::{Activation, Sequential, VarStore};
//! use dl_tensor::{DType, Device};
//!
//! // The course's CNN for MNIST (§5.1).
//! let store = VarStore::new(&Device::Cpu, DType::F32, 0);
//! let model = Sequential::builder(&store.root(), &[1, 28, 28])
//!     .conv2d(32, 3, Activation::Relu)?
//!     .max_pool2d(2)?
//!     .flatten()?
//!     .dense(128, Activation::Relu)?
//!     .dense(10, Activation::Softmax)?
//!     .build();
//! assert_eq!(model.parameter_count(), 693_962);
//! # Ok::<(), dl_nn::NnError>(())
//! ```

mod activation;
mod batch_norm;
mod checkpoint;
mod conv;
mod conv_transpose;
mod dense;
mod dropout;
mod embedding;
mod ensemble;
mod ensemble_model;
mod error;
mod flatten;
mod init;
mod layer;
mod loss;
mod lstm;
mod lstm_inference;
mod metrics;
mod neuron;
mod pool;
mod random_states;
mod sample_quality;
mod sequential;
mod store;
mod structure;

pub use activation::{log_softmax, softmax, Activation};
pub use batch_norm::{BatchNorm, BatchNormConfig};
pub use checkpoint::{load_checkpoint, save_checkpoint, save_tensors, Checkpoint};
pub use conv::{Conv2d, Conv2dConfig};
pub use conv_transpose::{ConvTranspose2d, ConvTranspose2dConfig};
pub use dense::Dense;
pub use dl_tensor::accuracy;
pub use dl_tensor::{encode_safetensors, write_atomically};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use ensemble::{
    combine, expected_calibration_error, negative_log_likelihood, oracle_accuracy,
    pairwise_disagreement, Combined, EnsembleMethod,
};
pub use ensemble_model::{EnsembleModel, VOTE_SMOOTHING};
pub use error::{NnError, Result};
pub use flatten::Flatten;
pub use init::Init;
pub use layer::{Layer, Mode};
pub use loss::{binary_cross_entropy_with_logits, cross_entropy, mse, Loss};
pub use lstm::{cell_update as lstm_cell_update, Lstm, LstmConfig, LstmState};
pub use lstm_inference::{DenseInference, LstmInference};
pub use metrics::ConfusionMatrix;
pub use neuron::Neuron;
pub use pool::MaxPool2d;
pub use random_states::{random_states_metadata, restore_random_states, RANDOM_STATES_KEY};
pub use sample_quality::{
    class_histogram, confident_share, frechet_distance, inception_score, kl_to_uniform,
    FeatureStatistics, InceptionScore,
};
pub use sequential::{Sequential, SequentialBuilder, StageView};
pub use store::{Parameter, Path, VarStore};
pub use structure::LayerStructure;
