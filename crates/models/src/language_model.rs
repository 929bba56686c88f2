//! The course's text model (§5.2, 文本生成): Embedding → LSTM (Hochreiter & Schmidhuber 1997) →
//! Dense, as in its Keras code
//!
//! ```python
//! tf.keras.layers.Embedding(vocab_size, embedding_dim),
//! tf.keras.layers.LSTM(128),
//! tf.keras.layers.Dense(vocab_size, activation='softmax')
//! ```
//!
//! with two differences that make it a language model rather than a one-shot classifier: the
//! LSTM returns its hidden state at *every* step (Keras' `return_sequences=True`), so each
//! position predicts the next token, and the Dense layer outputs logits (the softmax is inside
//! the cross-entropy loss, and in the sampler at generation time).

use dl_data::Tokenizer;
use dl_nn::{Dense, Dropout, Embedding, Layer, Lstm, LstmConfig, LstmState, Mode, VarStore};
use dl_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The sizes of a [`TextModel`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TextModelConfig {
    /// Number of token ids (the tokenizer's vocabulary).
    pub vocab_size: usize,
    /// Length of each token's embedding vector.
    pub embedding: usize,
    /// LSTM hidden (and cell) state size.
    pub hidden: usize,
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Dropout between LSTM layers and on the last LSTM layer's output, in training only.
    pub dropout: f32,
}

/// The largest hidden or embedding size the zoo builds (a recipe or a flag asking for more is
/// refused before anything is allocated): an LSTM layer of 4,096 holds 4 × 4,096² weights per
/// matrix, 256 MiB, and training keeps three more copies (the gradient, Adam's two moments).
pub const MAX_WIDTH: usize = 4_096;
/// The most stacked LSTM layers the zoo builds.
pub const MAX_LAYERS: usize = 64;
/// The largest vocabulary the zoo builds.
pub const MAX_VOCABULARY: usize = 1 << 20;

impl TextModelConfig {
    /// Checks every size against the zoo's bounds ([`MAX_WIDTH`], [`MAX_LAYERS`],
    /// [`MAX_VOCABULARY`]) and the dropout against [0, 1); the error names the setting by its
    /// command-line flag.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let sizes = [
            ("--vocab-size (vocab_size)", self.vocab_size, MAX_VOCABULARY),
            ("--embedding", self.embedding, MAX_WIDTH),
            ("--hidden", self.hidden, MAX_WIDTH),
            ("--layers", self.layers, MAX_LAYERS),
        ];
        for (name, value, most) in sizes {
            if value == 0 || value > most {
                return Err(format!(
                    "{name} is {value}: it must be between 1 and {most}"
                ));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "--dropout is {}: it must be in [0, 1)",
                self.dropout
            ));
        }
        Ok(())
    }

    /// Every parameter's name and shape, as [`TextModel::new`] creates them (PyTorch's names).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let gates = 4 * self.hidden;
        let mut shapes = vec![(
            "embedding.weight".to_string(),
            vec![self.vocab_size, self.embedding],
        )];
        for layer in 0..self.layers {
            let input = if layer == 0 {
                self.embedding
            } else {
                self.hidden
            };
            shapes.push((format!("lstm.weight_ih_l{layer}"), vec![gates, input]));
            shapes.push((format!("lstm.weight_hh_l{layer}"), vec![gates, self.hidden]));
            shapes.push((format!("lstm.bias_ih_l{layer}"), vec![gates]));
            shapes.push((format!("lstm.bias_hh_l{layer}"), vec![gates]));
        }
        shapes.push((
            "head.weight".to_string(),
            vec![self.vocab_size, self.hidden],
        ));
        shapes.push(("head.bias".to_string(), vec![self.vocab_size]));
        shapes
    }
}

/// Token ids `(batch, steps)` → next-token logits `(batch, steps, vocab_size)`.
#[derive(Debug)]
pub struct TextModel {
    embedding: Embedding,
    lstm: Lstm,
    output_dropout: Dropout,
    head: Dense,
}

impl TextModel {
    /// Creates the weights in `store` under the names `embedding.weight`,
    /// `lstm.weight_ih_l0`, ..., `head.weight`, `head.bias` (PyTorch's names).
    pub fn new(store: &VarStore, config: TextModelConfig) -> dl_nn::Result<Self> {
        let root = store.root();
        let embedding =
            Embedding::new(&root.sub("embedding"), config.vocab_size, config.embedding)?;
        let lstm = Lstm::new(
            &root.sub("lstm"),
            LstmConfig::new(config.embedding, config.hidden)
                .num_layers(config.layers)
                .dropout(config.dropout),
        )?;
        let output_dropout = Dropout::new(config.dropout, root.sub("output_dropout").fork_rng())?;
        let head = Dense::new(&root.sub("head"), config.hidden, config.vocab_size)?;
        Ok(Self {
            embedding,
            lstm,
            output_dropout,
            head,
        })
    }

    /// The layers, for the fast inference path.
    pub fn parts(&self) -> (&Embedding, &Lstm, &Dense) {
        (&self.embedding, &self.lstm, &self.head)
    }

    /// The all-zero LSTM state for `batch` sequences.
    pub fn zero_state(&self, batch: usize) -> dl_nn::Result<LstmState> {
        self.lstm.zero_state(batch)
    }

    /// Logits `(batch, steps, vocab)` for token ids `(batch, steps)`, starting from `state`
    /// (zeros when `None`), and the final state, to continue the text where it stopped.
    // ANCHOR: language-model-forward
    pub fn forward_with_state(
        &self,
        ids: &Tensor,
        state: Option<&LstmState>,
        mode: Mode,
    ) -> dl_nn::Result<(Tensor, LstmState)> {
        let (outputs, state) = self
            .lstm
            .forward_embedded(&self.embedding, ids, state, mode)?;
        let outputs = self.output_dropout.forward(&outputs, mode)?;
        Ok((self.head.forward(&outputs, mode)?, state))
    }
    // ANCHOR_END: language-model-forward

    /// One step of generation with Candle: token ids `(batch,)` → logits `(batch, vocab)`.
    pub fn step(&self, ids: &Tensor, state: &LstmState) -> dl_nn::Result<(Tensor, LstmState)> {
        let embedded = self.embedding.forward(ids, Mode::Eval)?;
        let (hidden, state) = self.lstm.step(&embedded, state)?;
        Ok((self.head.forward(&hidden, Mode::Eval)?, state))
    }
}

impl Layer for TextModel {
    fn forward(&self, input: &Tensor, mode: Mode) -> dl_nn::Result<Tensor> {
        Ok(self.forward_with_state(input, None, mode)?.0)
    }

    fn kind(&self) -> &'static str {
        "TextModel"
    }

    /// The dropout between LSTM layers, then the one before the head.
    fn random_states(&self) -> Vec<[u64; 4]> {
        let mut states = self.lstm.random_states();
        states.extend(self.output_dropout.random_states());
        states
    }

    fn set_random_states(&self, states: &[[u64; 4]]) -> dl_nn::Result<()> {
        let inner = self.lstm.random_states().len();
        if states.len() != inner + 1 {
            return Err(dl_nn::NnError::config(
                "TextModel",
                format!(
                    "expected {} random generator states, got {}: the checkpoint is from another model",
                    inner + 1,
                    states.len()
                ),
            ));
        }
        self.lstm.set_random_states(&states[..inner])?;
        self.output_dropout.set_random_states(&states[inner..])
    }
}

/// Everything needed to rebuild a trained language model and read and write its text: the
/// sizes (the checkpoint's `recipe` entry) and the tokenizer (its `tokenizer` entry).
#[derive(Debug, Clone)]
pub struct TextRecipe {
    /// The model's sizes.
    pub config: TextModelConfig,
    /// The tokenizer it was trained with.
    pub tokenizer: Tokenizer,
}

impl TextRecipe {
    /// Builds the network, with fresh weights drawn from `store`'s seed.
    pub fn build(&self, store: &VarStore) -> dl_nn::Result<TextModel> {
        TextModel::new(store, self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dl_tensor::{DType, Device};

    fn config() -> TextModelConfig {
        TextModelConfig {
            vocab_size: 7,
            embedding: 4,
            hidden: 5,
            layers: 2,
            dropout: 0.0,
        }
    }

    #[test]
    fn shapes_and_pytorch_names() {
        let store = VarStore::new(&Device::Cpu, DType::F32, 1);
        let model = TextModel::new(&store, config()).unwrap();
        let ids = Tensor::new(&[[0u32, 1, 2], [3, 4, 6]], &Device::Cpu).unwrap();
        let logits = model.forward(&ids, Mode::Eval).unwrap();
        assert_eq!(logits.dims(), &[2, 3, 7]);
        let names = store.names();
        assert_eq!(names[0], "embedding.weight");
        assert_eq!(names[1], "lstm.weight_ih_l0");
        assert_eq!(names[names.len() - 2..], ["head.weight", "head.bias"]);
        // 7×4 + layer 0: 20×4 + 20×5 + 2×20 + layer 1: 20×5 + 20×5 + 2×20 + head 5×7 + 7.
        assert_eq!(store.parameter_count(), 28 + 220 + 240 + 42);
    }

    #[test]
    fn steps_continue_the_sequence() {
        let store = VarStore::new(&Device::Cpu, DType::F32, 2);
        let model = TextModel::new(&store, config()).unwrap();
        let ids = [3u32, 1, 4, 1, 5];
        let whole = model
            .forward(&Tensor::new(&[ids], &Device::Cpu).unwrap(), Mode::Eval)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let mut state = model.zero_state(1).unwrap();
        for (position, &id) in ids.iter().enumerate() {
            let (logits, next) = model
                .step(&Tensor::new(&[id], &Device::Cpu).unwrap(), &state)
                .unwrap();
            state = next;
            let expected = whole.get(position).unwrap().to_vec1::<f32>().unwrap();
            let actual = logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap();
            for (a, e) in actual.iter().zip(&expected) {
                assert!((a - e).abs() < 1e-5, "{actual:?} vs {expected:?}");
            }
        }
    }
}
