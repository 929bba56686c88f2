//! mnist-gan: a generative adversarial network that learns to write digits (course §2.3,
//! 生成对抗网络 — "能够生成新的数据样本"), scored by our own classifier.
//!
//! | module | what |
//! |---|---|
//! | [`generation`] | seeded samples, chosen digits, latent walks |
//! | [`quality`] | Inception Score, Fréchet distance, class histogram, copies; failure diagnosis |
//! | [`samples`] | PNG grids, the GIF of the epochs, IDX files |
//!
//! The networks are `dl_models::Gan` (DCGAN or MLP, optionally conditional); the training
//! step is `dl_train::GanStep`.

pub mod generation;
pub mod quality;
pub mod samples;
