//! dl-serve: a trained classifier behind a web page and a JSON API (course §8, 可解释性).
//!
//! > 深度学习模型通常是一个黑盒，难以解释其决策过程。
//! > *Deep models are usually black boxes whose decisions are hard to explain.*
//!
//! The page lets a person draw a digit and see, while drawing, the three most probable classes
//! and the saliency map of the method they choose ([`dl_explain::Method`]); the API gives
//! programs the same answers. Images go through the same preparation as `mnist-classifier
//! predict` ([`dl_data::decode_digit`]).
//!
//! | module | holds |
//! |---|---|
//! | `input.rs` | the three body formats ([`digit_from_body`]) |
//! | `model.rs` | prediction and explanation of one image ([`ServedModel`]) |
//! | `handlers.rs` | the endpoints |
//! | `router.rs` | routes, [`Limits`], JSON errors, shutdown ([`router`], [`serve`]) |
//! | `page.html` | the drawing page |
//! | `load.rs` | a load test of a running server ([`run_load_test`]) |
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dl_serve::{router, serve, shutdown_signal, Limits, ServedModel};
//! use dl_tensor::Device;
//!
//! let device = Device::Cpu;
//! let classifier = dl_compress::load_classifier("checkpoints/mnist-cnn.safetensors".as_ref(), &device)?;
//! let (app, _handle) = router(ServedModel::new(classifier, device), Limits::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, app, shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```

mod error;
mod handlers;
mod input;
mod limits;
mod load;
mod model;
mod router;

pub use error::ApiError;
pub use input::{digit_from_body, PIXELS, SIDE};
pub use limits::Limits;
pub use load::{run_load_test, LoadReport, LoadTest};
pub use model::{Explanation, MethodInfo, ModelInfo, Prediction, RankedClass, ServedModel};
pub use router::{router, serve, shutdown_signal, ServerHandle};
