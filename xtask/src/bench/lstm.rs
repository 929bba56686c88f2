//! The character-level language model of the course's text generator (§5.2), as
//! `pytorch_baseline.py` defines it: Embedding(65→64), LSTM(64→H, one layer, batch-first),
//! Dense(H→65); batches of 32 windows of 100 characters, cross-entropy over every step, Adam with
//! learning rate 2e-3; H = 128 and 256. The text is 200,000 random characters (speed does not
//! depend on what they say).
//!
//! - `lstm_train`: characters (tokens) trained per second.
//! - `lstm_sample`: characters generated per second, one at a time from a batch of one, each
//!   drawn from the softmax of the last logits (multinomial), with [`Lstm::step`].

use anyhow::{Context, Result};
use dl_autograd::Gradients;
use dl_models::{TextModel, TextModelConfig};
use dl_nn::{cross_entropy, softmax, LstmState, Mode, VarStore};
use dl_optim::{Adam, AdamConfig, Optimizer};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};

use super::measure::{median_time, round_to, Measurement};
use super::{Bench, FRAMEWORK};

const VOCABULARY: usize = 65;
const EMBEDDING: usize = 64;
const BATCH: usize = 32;
const SEQUENCE: usize = 100;
const TEXT_LENGTH: usize = 200_000;

/// The zoo's language model (Embedding → LSTM → Dense, one layer, no dropout), with its
/// variables.
struct CharLstm {
    model: TextModel,
    variables: Vec<(String, Var)>,
}

impl CharLstm {
    fn new(hidden: usize) -> Result<Self> {
        let store = VarStore::new(&Device::Cpu, DType::F32, 0);
        let model = TextModel::new(
            &store,
            TextModelConfig {
                vocab_size: VOCABULARY,
                embedding: EMBEDDING,
                hidden,
                layers: 1,
                dropout: 0.0,
            },
        )?;
        Ok(Self {
            model,
            variables: store.trainable_variables(),
        })
    }

    /// Next-character logits `(batch, steps, 65)` for ids `(batch, steps)`.
    fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.model.forward_with_state(ids, None, Mode::Train)?.0)
    }

    /// One generation step: the logits `(1, 65)` after `token`, and the next state.
    fn step(&self, token: u32, state: &LstmState) -> Result<(Tensor, LstmState)> {
        let ids = Tensor::new(&[token], &Device::Cpu)?;
        Ok(self.model.step(&ids, state)?)
    }
}

/// A batch of random windows of `text`: inputs and the same windows shifted by one.
fn random_windows(text: &[u32], rng: &mut SeededRng) -> Result<(Tensor, Tensor)> {
    let mut inputs = Vec::with_capacity(BATCH * SEQUENCE);
    let mut targets = Vec::with_capacity(BATCH * SEQUENCE);
    for _ in 0..BATCH {
        let start = rng.below(text.len() - SEQUENCE - 1);
        inputs.extend_from_slice(&text[start..start + SEQUENCE]);
        targets.extend_from_slice(&text[start + 1..start + SEQUENCE + 1]);
    }
    Ok((
        Tensor::from_vec(inputs, (BATCH, SEQUENCE), &Device::Cpu)?,
        Tensor::from_vec(targets, (BATCH, SEQUENCE), &Device::Cpu)?,
    ))
}

/// `lstm_train` and `lstm_sample` for H = 128 and 256.
pub fn train_and_sample(bench: &mut Bench) -> Result<()> {
    let mut rng = SeededRng::new(7);
    let text: Vec<u32> = (0..TEXT_LENGTH)
        .map(|_| rng.below(VOCABULARY) as u32)
        .collect();
    let steps = (bench.settings.steps / 4).max(1);
    for hidden in [128usize, 256] {
        let model = CharLstm::new(hidden)?;
        let mut optimizer = Adam::new(AdamConfig::default().learning_rate(2e-3))?;
        let mut train = || -> Result<()> {
            for _ in 0..steps {
                let (inputs, targets) = random_windows(&text, &mut rng)?;
                let loss = cross_entropy(&model.logits(&inputs)?, &targets)?;
                let gradients = Gradients::compute(
                    &loss,
                    model
                        .variables
                        .iter()
                        .map(|(name, var)| (name.as_str(), var)),
                )?;
                optimizer.step(&gradients)?;
            }
            Ok(())
        };
        train()?; // warm-up
        let seconds = median_time(bench.settings.repeats(5), &mut train)? / steps as f64;
        bench.emit(
            Measurement::new(FRAMEWORK, "lstm_train")
                .with("hidden", hidden)
                .with(
                    "tokens_per_s",
                    round_to((BATCH * SEQUENCE) as f64 / seconds, 1),
                ),
        )?;

        let tokens = bench.settings.sample_tokens();
        let mut sampler = SeededRng::new(11);
        let sample = || -> Result<()> {
            let (mut token, mut state) = (0u32, model.model.zero_state(1)?);
            for _ in 0..tokens {
                let (logits, next) = model.step(token, &state)?;
                // Cut the graph each step (PyTorch's no_grad): generation needs no gradients.
                state = next.detach();
                let probabilities = softmax(&logits.squeeze(0)?)?.to_vec1::<f32>()?;
                token = sampler
                    .weighted_index(&probabilities)
                    .context("the softmax gave no valid probabilities")?
                    as u32;
            }
            Ok(())
        };
        // No warm-up, as in the baseline: the median of three absorbs the first.
        let seconds = median_time(bench.settings.repeats(3), sample)?;
        bench.emit(
            Measurement::new(FRAMEWORK, "lstm_sample")
                .with("hidden", hidden)
                .with("tokens_per_s", round_to(tokens as f64 / seconds, 1)),
        )?;
    }
    Ok(())
}
