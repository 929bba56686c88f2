//! `text-gen generate`: the course's `model.predict(start_string)` as a loop — feed the prompt,
//! then repeatedly sample a token from the model's prediction, print it, and feed it back.
//!
//! Two engines run the same model: [`FastEngine`] copies the weights into plain vectors
//! (`dl_nn::LstmInference`) for one sequence on the CPU, [`CandleEngine`] steps the tensor
//! model (`Lstm::step`) on any device. Text is printed as it is produced, through the
//! tokenizer's streaming decoder (a byte-level BPE token may hold half a character).

use std::{
    io::Write,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use dl_data::Tokenizer;
use dl_models::{load_language_model, TextModel};
use dl_nn::{DenseInference, LstmInference, LstmState};
use dl_tensor::{Device, DeviceChoice, SeededRng, Tensor};

use crate::{
    cli::{Engine, GenerateArgs},
    sampling::{Sampler, Sampling},
};

/// A model that reads one token at a time and returns its next-token logits.
pub trait StepModel {
    /// Forgets the text read so far.
    fn reset(&mut self) -> Result<()>;
    /// Reads `token`; returns the logits of the token that follows it.
    fn feed(&mut self, token: u32) -> Result<&[f32]>;
}

/// The plain-Rust engine: embedding row → [`LstmInference`] → [`DenseInference`].
pub struct FastEngine {
    embedding: Vec<f32>,
    embedding_dim: usize,
    lstm: LstmInference,
    head: DenseInference,
    logits: Vec<f32>,
}

impl FastEngine {
    /// Copies the weights of `model` (from any device) to the host.
    pub fn new(model: &TextModel) -> Result<Self> {
        let (embedding, lstm, head) = model.parts();
        let head = DenseInference::new(head)?;
        Ok(Self {
            embedding: embedding
                .weight()
                .as_tensor()
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?,
            embedding_dim: embedding.embedding_dim(),
            lstm: LstmInference::new(lstm)?,
            logits: vec![0.0; head.out_features()],
            head,
        })
    }
}

impl StepModel for FastEngine {
    fn reset(&mut self) -> Result<()> {
        self.lstm.reset();
        Ok(())
    }

    fn feed(&mut self, token: u32) -> Result<&[f32]> {
        let start = token as usize * self.embedding_dim;
        let Some(row) = self.embedding.get(start..start + self.embedding_dim) else {
            bail!("token id {token} is outside the model's vocabulary");
        };
        let hidden = self.lstm.step(row)?;
        self.head.forward(hidden, &mut self.logits)?;
        Ok(&self.logits)
    }
}

/// The tensor engine: [`TextModel::step`] with Candle, on the model's device.
pub struct CandleEngine<'a> {
    model: &'a TextModel,
    device: Device,
    state: LstmState,
    logits: Vec<f32>,
}

impl<'a> CandleEngine<'a> {
    /// Steps `model`, whose weights live on `device`.
    pub fn new(model: &'a TextModel, device: &Device) -> Result<Self> {
        Ok(Self {
            model,
            device: device.clone(),
            state: model.zero_state(1)?,
            logits: Vec::new(),
        })
    }
}

impl StepModel for CandleEngine<'_> {
    fn reset(&mut self) -> Result<()> {
        self.state = self.model.zero_state(1)?;
        Ok(())
    }

    fn feed(&mut self, token: u32) -> Result<&[f32]> {
        let ids = Tensor::new(&[token], &self.device)?;
        let (logits, state) = self.model.step(&ids, &self.state)?;
        // Detached: otherwise every state would keep the graph of all the steps before it
        // (the weights are trainable variables), growing memory and, when dropped, the stack.
        self.state = state.detach();
        self.logits = logits.squeeze(0)?.to_vec1::<f32>()?;
        Ok(&self.logits)
    }
}

/// What one generation produced.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Characters generated (after the prompt).
    pub characters: usize,
    /// Tokens sampled.
    pub tokens: usize,
    /// Time spent reading the prompt and generating.
    pub elapsed: Duration,
}

/// The token ids of a prompt, or an error naming what the vocabulary lacks.
pub fn encode_prompt(tokenizer: &Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        bail!("--prompt is empty: the model needs at least one token to continue");
    }
    let ids = tokenizer.encode(prompt).with_context(|| {
        format!("the prompt {prompt:?} cannot be encoded with the model's vocabulary")
    })?;
    if ids.is_empty() {
        bail!("the prompt {prompt:?} encodes to no tokens");
    }
    Ok(ids)
}

/// Reads `prompt_ids` and generates `length` characters, passing each piece of text to `emit`
/// as soon as it is complete.
pub fn generate(
    engine: &mut dyn StepModel,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    length: usize,
    sampling: &Sampling,
    rng: &mut SeededRng,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Generation> {
    let started = Instant::now();
    engine.reset()?;
    let mut logits: Vec<f32> = Vec::new();
    for &id in prompt_ids {
        logits.clear();
        logits.extend_from_slice(engine.feed(id)?);
    }
    let mut sampler = Sampler::default();
    let mut decoder = tokenizer.streaming_decoder();
    let mut characters = 0;
    let mut tokens = 0;
    // A model can emit byte tokens that never complete a character: stop after enough tokens.
    let token_limit = 4 * length + 64;
    while characters < length && tokens < token_limit {
        let id = sampler.sample(&logits, sampling, rng)?;
        tokens += 1;
        if let Some(piece) = decoder.step(id)? {
            let piece = take_characters(&piece, length - characters);
            characters += piece.chars().count();
            emit(piece)?;
        }
        if characters < length {
            logits.clear();
            logits.extend_from_slice(engine.feed(id)?);
        }
    }
    if characters < length {
        let rest = decoder.finish()?;
        let rest = take_characters(&rest, length - characters);
        characters += rest.chars().count();
        emit(rest)?;
    }
    Ok(Generation {
        characters,
        tokens,
        elapsed: started.elapsed(),
    })
}

/// The first `count` characters of `text`.
fn take_characters(text: &str, count: usize) -> &str {
    match text.char_indices().nth(count) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Writes to stdout and flushes, so each piece appears as it is generated.
pub fn print_flushed(piece: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(piece.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Runs `generate`.
pub fn run(arguments: &GenerateArgs) -> Result<()> {
    if arguments.temperature.is_empty() {
        bail!("--temperature needs a value, e.g. 0.8 or 0.2,0.5,1.0");
    }
    let settings: Vec<Sampling> = arguments
        .temperature
        .iter()
        .map(|&temperature| Sampling {
            temperature,
            top_k: arguments.sampling.top_k,
            top_p: arguments.sampling.top_p,
        })
        .collect();
    for sampling in &settings {
        sampling.validate()?;
    }
    if arguments.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let device = match arguments.engine {
        Engine::Fast => Device::Cpu,
        Engine::Candle => arguments.device.parse::<DeviceChoice>()?.resolve()?,
    };
    let loaded = load_language_model(&arguments.checkpoint, &device)?;
    let tokenizer = &loaded.recipe.tokenizer;
    let prompt_ids = encode_prompt(tokenizer, &arguments.prompt)?;
    let mut engine: Box<dyn StepModel> = match arguments.engine {
        Engine::Fast => Box::new(FastEngine::new(&loaded.model)?),
        Engine::Candle => Box::new(CandleEngine::new(&loaded.model, &device)?),
    };
    let sweep = settings.len() > 1 || arguments.samples > 1;
    let (mut characters, mut tokens, mut elapsed) = (0, 0, Duration::ZERO);
    for sampling in &settings {
        for sample in 0..arguments.samples {
            if sweep {
                println!(
                    "----- temperature {}{}, sample {} of {} -----",
                    sampling.temperature,
                    if sampling.temperature == 0.0 {
                        " (greedy)"
                    } else {
                        ""
                    },
                    sample + 1,
                    arguments.samples
                );
            }
            let mut rng = SeededRng::new(arguments.sampling.seed.wrapping_add(sample as u64));
            print_flushed(&arguments.prompt)?;
            let generation = generate(
                engine.as_mut(),
                tokenizer,
                &prompt_ids,
                arguments.length,
                sampling,
                &mut rng,
                &mut print_flushed,
            )?;
            println!();
            if sweep {
                println!();
            }
            characters += generation.characters;
            tokens += generation.tokens;
            elapsed += generation.elapsed;
        }
    }
    eprintln!(
        "generated {characters} characters ({tokens} tokens) in {:.3} s: {:.0} chars/s ({} engine)",
        elapsed.as_secs_f64(),
        characters as f64 / elapsed.as_secs_f64().max(1e-9),
        match arguments.engine {
            Engine::Fast => "fast CPU",
            Engine::Candle => "candle",
        }
    );
    Ok(())
}
