//! The adversarial training step of a GAN (course §2.3; Goodfellow et al. 2014, Algorithm 1, with the non-saturating
//! generator loss of §3), as a [`TrainStep`] the trainer drives:
//!
//! ```text
//! D:  minimise  BCE(D(x), 1) + BCE(D(G(z)), 0)       on a real batch x and fresh noise z
//! G:  minimise  BCE(D(G(z)), 1)                       (= −log D(G(z)), "non-saturating")
//! ```
//!
//! The minimax game of the paper, min_G max_D E log D(x) + E log(1 − D(G(z))), gives G almost
//! no gradient early on, when D rejects its samples with confidence; maximising log D(G(z))
//! instead has the same fixed point and strong gradients there. Each step updates D once (its
//! loss does not reach G: the fake batch is detached) and then G once, with an optimizer each.
//! Optionally the real targets are smoothed (1 → 0.9, one-sided label smoothing, Salimans et
//! al. 2016) and G's weights are averaged over the steps (an exponential moving average,
//! Yazıcı et al. 2019), the averaged copy being what generates.

use crate::{StepOptimizer, StepOptimizerMut, StepOutput, TrainStep, TrainingResult};
use dl_autograd::Gradients;
use dl_models::{Gan, DISCRIMINATOR_PREFIX, GENERATOR_PREFIX};
use dl_nn::{binary_cross_entropy_with_logits, Mode};
use dl_optim::{Adam, AdamConfig, Optimizer};
use dl_tensor::{DType, Tensor, Var};

/// The optimizer name of the generator (its state file is `<run>.generator.safetensors`).
pub const GENERATOR_OPTIMIZER: &str = "generator";
/// The optimizer name of the discriminator.
pub const DISCRIMINATOR_OPTIMIZER: &str = "discriminator";

/// The hyper-parameters of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSettings {
    /// Adam's learning rate for G.
    pub generator_learning_rate: f64,
    /// Adam's learning rate for D.
    pub discriminator_learning_rate: f64,
    /// Adam's β₁ (DCGAN: 0.5).
    pub beta1: f64,
    /// The target of real images in D's loss: 1, or 0.9 with one-sided label smoothing.
    pub real_target: f64,
}

/// What one epoch's steps measured, for the failure watch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpochMeans {
    /// D's loss.
    pub discriminator_loss: f64,
    /// G's loss.
    pub generator_loss: f64,
    /// Batches seen.
    pub batches: usize,
}

/// A generator and a discriminator the step can train: `dl_models::Gan` for images, or any
/// pair (the tests train one on points of the plane).
pub trait AdversarialPair {
    /// G: samples from noise (and labels, when conditional).
    fn generate(
        &self,
        noise: &Tensor,
        labels: Option<&Tensor>,
        mode: Mode,
    ) -> dl_nn::Result<Tensor>;
    /// D: one logit per sample, `(N, 1)`.
    fn discriminate(
        &self,
        samples: &Tensor,
        labels: Option<&Tensor>,
        mode: Mode,
    ) -> dl_nn::Result<Tensor>;
    /// `batch` noise vectors, from the pair's own seeded generator.
    fn noise(&self, batch: usize) -> dl_nn::Result<Tensor>;
    /// `batch` random class labels for a conditional pair; `None` for an unconditional one.
    fn random_labels(&self, batch: usize) -> dl_nn::Result<Option<Tensor>>;
    /// G's trainable variables.
    fn generator_variables(&self) -> Vec<(String, Var)>;
    /// D's trainable variables.
    fn discriminator_variables(&self) -> Vec<(String, Var)>;
    /// Called after every update of G (a moving average of its weights follows here).
    fn after_generator_step(&self) -> dl_nn::Result<()> {
        Ok(())
    }
}

impl AdversarialPair for Gan {
    fn generate(
        &self,
        noise: &Tensor,
        labels: Option<&Tensor>,
        mode: Mode,
    ) -> dl_nn::Result<Tensor> {
        self.generator().generate(noise, labels, mode)
    }

    fn discriminate(
        &self,
        samples: &Tensor,
        labels: Option<&Tensor>,
        mode: Mode,
    ) -> dl_nn::Result<Tensor> {
        self.discriminator().score(samples, labels, mode)
    }

    fn noise(&self, batch: usize) -> dl_nn::Result<Tensor> {
        Gan::noise(self, batch)
    }

    fn random_labels(&self, batch: usize) -> dl_nn::Result<Option<Tensor>> {
        if self.recipe().conditional {
            Ok(Some(Gan::random_labels(self, batch)?))
        } else {
            Ok(None)
        }
    }

    fn generator_variables(&self) -> Vec<(String, Var)> {
        self.variables(GENERATOR_PREFIX)
    }

    fn discriminator_variables(&self) -> Vec<(String, Var)> {
        self.variables(DISCRIMINATOR_PREFIX)
    }

    fn after_generator_step(&self) -> dl_nn::Result<()> {
        self.update_average()
    }
}

/// What runs after every epoch: given the GAN and the epoch's means (samples, the watch for
/// failures).
pub type EpochHook<'a, P> = Box<dyn FnMut(&P, EpochMeans) -> TrainingResult<()> + 'a>;

/// The step: the GAN, an Adam optimizer per network, and the epoch's running means.
pub struct GanStep<'a, P: AdversarialPair = Gan> {
    epoch_hook: Option<EpochHook<'a, P>>,
    gan: &'a P,
    generator_variables: Vec<(String, Var)>,
    discriminator_variables: Vec<(String, Var)>,
    generator_optimizer: Adam,
    discriminator_optimizer: Adam,
    settings: StepSettings,
    epoch: EpochMeans,
}

fn adam(learning_rate: f64, beta1: f64) -> TrainingResult<Adam> {
    Ok(Adam::new(
        AdamConfig::default()
            .learning_rate(learning_rate)
            .betas(beta1, 0.999),
    )?)
}

fn mean_of(tensor: &Tensor) -> TrainingResult<f64> {
    Ok(tensor
        .mean_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

fn gradients(loss: &Tensor, variables: &[(String, Var)]) -> TrainingResult<Gradients> {
    Ok(Gradients::compute(
        loss,
        variables.iter().map(|(name, var)| (name.as_str(), var)),
    )?)
}

impl<'a, P: AdversarialPair> GanStep<'a, P> {
    /// A step training `gan` with `settings`.
    pub fn new(gan: &'a P, settings: StepSettings) -> TrainingResult<Self> {
        Ok(Self {
            gan,
            generator_variables: gan.generator_variables(),
            discriminator_variables: gan.discriminator_variables(),
            generator_optimizer: adam(settings.generator_learning_rate, settings.beta1)?,
            discriminator_optimizer: adam(settings.discriminator_learning_rate, settings.beta1)?,
            settings,
            epoch: EpochMeans::default(),
            epoch_hook: None,
        })
    }

    /// Runs `hook` after every epoch.
    pub fn after_each_epoch(mut self, hook: EpochHook<'a, P>) -> Self {
        self.epoch_hook = Some(hook);
        self
    }

    /// The means of the epoch so far, and a fresh start for the next one.
    pub fn take_epoch_means(&mut self) -> EpochMeans {
        let mut means = std::mem::take(&mut self.epoch);
        if means.batches > 0 {
            means.discriminator_loss /= means.batches as f64;
            means.generator_loss /= means.batches as f64;
        }
        means
    }
}

impl<P: AdversarialPair> TrainStep for GanStep<'_, P> {
    /// `inputs` are real samples (images in [−1, 1]), `targets` their classes (read only by a
    /// conditional pair).
    fn train(&mut self, inputs: &Tensor, targets: &Tensor) -> TrainingResult<StepOutput> {
        let gan = self.gan;
        let batch = inputs.dim(0)?;
        let real = inputs;
        let noise = gan.noise(batch)?;
        let fake_labels = gan.random_labels(batch)?;
        let real_labels = fake_labels.is_some().then_some(targets);
        let fake = gan.generate(&noise, fake_labels.as_ref(), Mode::Train)?;

        // D: real samples towards the real target, detached fakes towards 0.
        let real_logits = gan.discriminate(real, real_labels, Mode::Train)?;
        let fake_logits = gan.discriminate(&fake.detach(), fake_labels.as_ref(), Mode::Train)?;
        let real_targets =
            Tensor::full(self.settings.real_target as f32, (batch, 1), real.device())?
                .to_dtype(real.dtype())?;
        let zeros = real_targets.zeros_like()?;
        let ones = real_targets.ones_like()?;
        // ANCHOR: gan-losses
        let discriminator_loss = (binary_cross_entropy_with_logits(&real_logits, &real_targets)?
            + binary_cross_entropy_with_logits(&fake_logits, &zeros)?)?;
        let d_loss = mean_of(&discriminator_loss)?;
        let d_real = mean_of(&dl_nn::Activation::Sigmoid.apply(&real_logits)?)?;
        let d_fake = mean_of(&dl_nn::Activation::Sigmoid.apply(&fake_logits)?)?;
        if !d_loss.is_finite() {
            return Ok(StepOutput {
                loss: d_loss,
                ..StepOutput::default()
            });
        }
        self.discriminator_optimizer.step(&gradients(
            &discriminator_loss,
            &self.discriminator_variables,
        )?)?;

        // G: fakes scored by the updated D, towards 1 (the non-saturating loss).
        let generated_logits = gan.discriminate(&fake, fake_labels.as_ref(), Mode::Train)?;
        let generator_loss = binary_cross_entropy_with_logits(&generated_logits, &ones)?;
        // ANCHOR_END: gan-losses
        let g_loss = mean_of(&generator_loss)?;
        if !g_loss.is_finite() {
            return Ok(StepOutput {
                loss: g_loss,
                ..StepOutput::default()
            });
        }
        self.generator_optimizer
            .step(&gradients(&generator_loss, &self.generator_variables)?)?;
        gan.after_generator_step()?;

        self.epoch.discriminator_loss += d_loss;
        self.epoch.generator_loss += g_loss;
        self.epoch.batches += 1;
        Ok(StepOutput {
            loss: d_loss + g_loss,
            targets: batch,
            examples: batch,
            correct: None,
            metrics: vec![
                ("d_loss", d_loss),
                ("g_loss", g_loss),
                ("d_real", d_real),
                ("d_fake", d_fake),
            ],
        })
    }

    fn end_epoch(&mut self, _monitored_loss: f64) -> TrainingResult<()> {
        let means = self.take_epoch_means();
        match self.epoch_hook.as_mut() {
            Some(hook) => hook(self.gan, means),
            None => Ok(()),
        }
    }

    fn learning_rate(&self) -> f64 {
        self.generator_optimizer.learning_rate()
    }

    fn optimizers(&self) -> Vec<StepOptimizer<'_>> {
        vec![
            StepOptimizer {
                name: GENERATOR_OPTIMIZER,
                optimizer: &self.generator_optimizer,
                schedule: None,
            },
            StepOptimizer {
                name: DISCRIMINATOR_OPTIMIZER,
                optimizer: &self.discriminator_optimizer,
                schedule: None,
            },
        ]
    }

    fn optimizers_mut(&mut self) -> Vec<StepOptimizerMut<'_>> {
        vec![
            StepOptimizerMut {
                name: GENERATOR_OPTIMIZER,
                optimizer: &mut self.generator_optimizer,
                schedule: None,
            },
            StepOptimizerMut {
                name: DISCRIMINATOR_OPTIMIZER,
                optimizer: &mut self.discriminator_optimizer,
                schedule: None,
            },
        ]
    }
}
