//! mnist-gan: a generative adversarial network that learns to write digits (course §2.3,
//! 生成对抗网络 — "能够生成新的数据样本"), scored by our own classifier.
//!
//! | module | what |
//! |---|---|
//! | [`step`] | one training step: D on real and fake, then G with the non-saturating loss |
//! | [`generation`] | seeded samples, chosen digits, latent walks |
//! | [`quality`] | Inception Score, Fréchet distance, class histogram, copies; failure diagnosis |
//! | [`samples`] | PNG grids, the GIF of the epochs, IDX files |
//!
//! The networks themselves are `dl_models::Gan` (DCGAN or MLP, optionally conditional).

pub mod generation;
pub mod quality;
pub mod samples;
pub mod step;
