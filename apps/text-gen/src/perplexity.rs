//! `text-gen perplexity`: how surprised the model is by a text.
//!
//! The loss of a language model on a text is the mean of −ln p(next token) over its tokens, in
//! nats per token; perplexity = exp(nats per token) is the number of equally likely tokens the
//! model is, on average, choosing between. Nats per *character* (total nats / characters)
//! compares a character model with a BPE model, whose tokens hold several characters each.
//!
//! Every token but the first is predicted exactly once. The text is cut into `streams`
//! contiguous pieces read side by side as one batch, each in chunks of `seq_len` tokens with the
//! LSTM state carried from chunk to chunk, so every prediction (but the first of each stream)
//! sees all the text before it in its stream, as in generation.

use anyhow::{bail, Result};
use dl_nn::{log_softmax, LstmState, Mode};
use dl_tensor::{DType, Device, DeviceChoice, Tensor};

use dl_models::{load_language_model, TextModel};

use crate::{cli::PerplexityArgs, data};

/// The total loss over a token sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Σ −ln p(token | the text before it) over the predicted tokens.
    pub total_nats: f64,
    /// Tokens predicted (all but the first).
    pub predictions: usize,
}

impl Score {
    /// Mean loss per predicted token.
    pub fn nats_per_token(&self) -> f64 {
        self.total_nats / self.predictions.max(1) as f64
    }
}

/// Sums −ln p over `targets` for `logits` `(batch, steps, vocab)` and targets `(batch, steps)`.
fn sum_of_losses(logits: &Tensor, targets: &Tensor) -> Result<f64> {
    let vocabulary = logits.dim(2)?;
    let rows = targets.elem_count();
    let log_probabilities = log_softmax(&logits.reshape((rows, vocabulary))?)?;
    let picked = log_probabilities.gather(&targets.reshape((rows, 1))?, 1)?;
    Ok(-picked.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?)
}

/// Scores `ids` with `model` as described in the module documentation.
pub fn score(
    model: &TextModel,
    ids: &[u32],
    streams: usize,
    seq_len: usize,
    device: &Device,
) -> Result<Score> {
    if ids.len() < 2 {
        bail!(
            "the text has {} token(s): at least 2 are needed (one to read, one to predict)",
            ids.len()
        );
    }
    if streams == 0 || seq_len == 0 {
        bail!("--streams and --seq-len must be positive");
    }
    let predictions = ids.len() - 1;
    let streams = streams.min(predictions);
    let stream_length = predictions / streams;
    let mut total_nats = 0.0;
    let mut state: Option<LstmState> = None;
    let mut position = 0;
    while position < stream_length {
        let steps = seq_len.min(stream_length - position);
        let mut inputs = Vec::with_capacity(streams * steps);
        let mut targets = Vec::with_capacity(streams * steps);
        for stream in 0..streams {
            let start = stream * stream_length + position;
            inputs.extend_from_slice(&ids[start..start + steps]);
            targets.extend_from_slice(&ids[start + 1..start + steps + 1]);
        }
        let inputs = Tensor::from_vec(inputs, (streams, steps), device)?;
        let targets = Tensor::from_vec(targets, (streams, steps), device)?;
        let (logits, next) = model.forward_with_state(&inputs, state.as_ref(), Mode::Eval)?;
        total_nats += sum_of_losses(&logits, &targets)?;
        // Detached: the previous chunks' graphs are not needed and would stay in memory.
        state = Some(next.detach());
        position += steps;
    }
    // The tokens left over by the division continue the last stream, from its state.
    let covered = streams * stream_length;
    if covered < predictions {
        let last_state = state.map(|state| -> Result<LstmState> {
            Ok(LstmState {
                hidden: state.hidden.narrow(1, streams - 1, 1)?.contiguous()?,
                cell: state.cell.narrow(1, streams - 1, 1)?.contiguous()?,
            })
        });
        let last_state = last_state.transpose()?;
        let steps = predictions - covered;
        let inputs = Tensor::from_slice(&ids[covered..predictions], (1, steps), device)?;
        let targets = Tensor::from_slice(&ids[covered + 1..], (1, steps), device)?;
        let (logits, _) = model.forward_with_state(&inputs, last_state.as_ref(), Mode::Eval)?;
        total_nats += sum_of_losses(&logits, &targets)?;
    }
    Ok(Score {
        total_nats,
        predictions,
    })
}

/// The number of characters whose tokens are predicted: all of `text` but its first token's.
pub fn predicted_characters(
    tokenizer: &dl_data::Tokenizer,
    text: &str,
    ids: &[u32],
) -> Result<usize> {
    let first = tokenizer.decode(&ids[..1])?;
    Ok(text
        .chars()
        .count()
        .saturating_sub(first.chars().count())
        .max(1))
}

/// Runs `perplexity`.
pub fn run(arguments: &PerplexityArgs) -> Result<()> {
    let device = arguments.device.parse::<DeviceChoice>()?.resolve()?;
    let loaded = load_language_model(&arguments.checkpoint, &device)?;
    let tokenizer = &loaded.recipe.tokenizer;
    let text = data::read_text(&arguments.corpus)?;
    let ids = data::encode(tokenizer, &text, &arguments.corpus)?;
    let score = score(
        &loaded.model,
        &ids,
        arguments.streams,
        arguments.seq_len,
        &device,
    )?;
    let characters = predicted_characters(tokenizer, &text, &ids)?;
    let per_token = score.nats_per_token();
    println!(
        "{}: {} characters, {} tokens ({} tokenizer); {} predicted in {} streams with the state carried across chunks of {} tokens",
        arguments.corpus.display(),
        text.chars().count(),
        ids.len(),
        tokenizer.kind(),
        score.predictions,
        arguments.streams.min(score.predictions),
        arguments.seq_len
    );
    let trained = |key: &str| loaded.metadata.get(key).map_or("?", String::as_str);
    println!(
        "model {}: hidden {}, {} layer(s), trained {} steps (validation loss {})",
        arguments.checkpoint.display(),
        trained("hidden"),
        trained("layers"),
        trained("global_step"),
        trained("validation_loss")
    );
    println!("loss       {per_token:.4} nats/token");
    println!(
        "           {:.4} nats/char ({:.4} bits/char)",
        score.total_nats / characters as f64,
        score.total_nats / characters as f64 / std::f64::consts::LN_2
    );
    println!("perplexity {:.3} (per token)", per_token.exp());
    Ok(())
}
