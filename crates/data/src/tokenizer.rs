//! Tokenizers (course §5.2, text generation): text becomes a sequence of integer ids for the
//! Embedding layer, and generated ids become text again.
//!
//! Two granularities:
//! - [`CharVocabulary`]: one id per distinct character of the corpus (65 for Tiny Shakespeare,
//!   thousands for Chinese). Small and transparent, but it cannot encode a character it never saw.
//! - byte-level BPE ([`Tokenizer::train_bpe`], Hugging Face `tokenizers`): starts from the 256
//!   bytes and merges the most frequent adjacent pairs into new tokens until the vocabulary is
//!   full, so frequent words become one token and *any* text, emoji included, still encodes.
//!
//! A [`Tokenizer`] serialises to a small JSON envelope (`{"kind": "char", "data": ...}`) that fits
//! in a checkpoint's metadata, so a generator decodes with exactly the vocabulary it trained with.
//! Ids produced one at a time are turned into text by a [`StreamingDecoder`], which waits for
//! the remaining bytes of a character split across byte-level tokens.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::{
    models::{
        bpe::{BpeTrainer, BPE},
        TrainerWrapper,
    },
    pre_tokenizers::byte_level::ByteLevel,
    ModelWrapper,
};

use crate::{DataError, Result};

/// How many distinct unknown characters an encoding error lists.
const LISTED_UNKNOWN_CHARACTERS: usize = 10;

/// One id per distinct character, ids in the order of the sorted characters.
///
/// ```
/// use dl_data::CharVocabulary;
///
/// let vocabulary = CharVocabulary::from_text("hello world")?;
/// assert_eq!(vocabulary.characters(), [' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
/// let ids = vocabulary.encode("hello")?;
/// assert_eq!(ids, [3, 2, 4, 4, 5]); // 'h' is the 4th character in sorted order, so id 3
/// assert_eq!(vocabulary.decode(&ids)?, "hello");
/// assert!(vocabulary.encode("help").is_err()); // 'p' never appeared in the corpus
/// # Ok::<(), dl_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharVocabulary {
    /// Sorted and distinct; the id of a character is its index here.
    characters: Vec<char>,
}

impl CharVocabulary {
    /// The vocabulary of a corpus: its distinct characters (any Unicode), sorted.
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] when the text is empty.
    pub fn from_text(corpus: &str) -> Result<Self> {
        let mut characters: Vec<char> = corpus.chars().collect();
        characters.sort_unstable();
        characters.dedup();
        Self::from_characters(characters)
    }

    /// A vocabulary from its characters, which must be non-empty, sorted and distinct (as
    /// [`CharVocabulary::characters`] returns them).
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] when they are empty, unsorted or repeated.
    pub fn from_characters(characters: Vec<char>) -> Result<Self> {
        if characters.is_empty() {
            return Err(DataError::Tokenizer(
                "a character vocabulary needs at least one character; the text is empty".into(),
            ));
        }
        if let Some(pair) = characters.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(DataError::Tokenizer(format!(
                "character vocabulary not sorted and distinct: {:?} comes before {:?}",
                pair[0], pair[1]
            )));
        }
        Ok(Self { characters })
    }

    /// The characters, sorted; the id of a character is its index.
    pub fn characters(&self) -> &[char] {
        &self.characters
    }

    /// The number of characters (the embedding's vocabulary size).
    pub fn len(&self) -> usize {
        self.characters.len()
    }

    /// Always false: a vocabulary has at least one character.
    pub fn is_empty(&self) -> bool {
        self.characters.is_empty()
    }

    /// The id of a character, if it is in the vocabulary.
    pub fn id(&self, character: char) -> Option<u32> {
        self.characters
            .binary_search(&character)
            .ok()
            .map(|index| index as u32)
    }

    /// The character of an id, if the id is in range.
    pub fn character(&self, id: u32) -> Option<char> {
        self.characters.get(id as usize).copied()
    }

    /// The ids of the characters of `text`.
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] listing the distinct characters (up to ten) that are not in the
    /// vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len());
        let mut unknown: Vec<char> = Vec::new();
        let mut unknown_count = 0;
        for character in text.chars() {
            match self.id(character) {
                Some(id) => ids.push(id),
                None if !unknown.contains(&character) => {
                    unknown_count += 1;
                    if unknown.len() < LISTED_UNKNOWN_CHARACTERS {
                        unknown.push(character);
                    }
                }
                None => {}
            }
        }
        if unknown.is_empty() {
            return Ok(ids);
        }
        let mut listed: Vec<String> = unknown.iter().map(|c| format!("{c:?}")).collect();
        if unknown_count > unknown.len() {
            listed.push(format!("and {} more", unknown_count - unknown.len()));
        }
        Err(DataError::Tokenizer(format!(
            "characters not in the vocabulary: {}; a character vocabulary only knows its training \
             corpus's characters (use a byte-level BPE tokenizer to encode any text)",
            listed.join(", ")
        )))
    }

    /// The text of a sequence of ids.
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] naming the first id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .map(|&id| {
                self.character(id).ok_or_else(|| {
                    DataError::Tokenizer(format!(
                        "token id {id} is out of range for a character vocabulary of {} characters",
                        self.len()
                    ))
                })
            })
            .collect()
    }
}

/// A tokenizer a model trains and generates with: character-level, or a Hugging Face tokenizer
/// (the byte-level BPE of [`Tokenizer::train_bpe`], or any `tokenizer.json`).
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// One id per character.
    Char(CharVocabulary),
    /// A Hugging Face `tokenizers` tokenizer (boxed: it is much larger than a vocabulary).
    HuggingFace(Box<tokenizers::Tokenizer>),
}

/// The JSON form of a [`Tokenizer`]: `{"kind": "char" | "bpe" | ..., "data": ...}`.
#[derive(Serialize, Deserialize)]
struct Envelope {
    kind: String,
    data: serde_json::Value,
}

/// The `data` of a character vocabulary's envelope.
#[derive(Serialize, Deserialize)]
struct CharData {
    /// All characters, sorted, as one string.
    characters: String,
}

/// Turns a Hugging Face error into ours, with what was being done.
fn hugging_face_error(doing: &str, error: impl std::fmt::Display) -> DataError {
    DataError::Tokenizer(format!("{doing}: {error}"))
}

impl Tokenizer {
    /// A character-level tokenizer built from a corpus (see [`CharVocabulary::from_text`]).
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] when the corpus is empty.
    pub fn char_level(corpus: &str) -> Result<Self> {
        Ok(Self::Char(CharVocabulary::from_text(corpus)?))
    }

    /// Trains a byte-level BPE tokenizer on `corpus` with at most `vocab_size` tokens.
    ///
    /// The vocabulary starts with the 256 byte symbols, so any text encodes, and grows by merging
    /// the most frequent adjacent pair of tokens (within GPT-2's pre-tokenized words) until it
    /// has `vocab_size` tokens or no pair is left. No special tokens are added.
    ///
    /// ```
    /// use dl_data::Tokenizer;
    ///
    /// let corpus = "the cat sat on the mat. ".repeat(50);
    /// let tokenizer = Tokenizer::train_bpe(&corpus, 300)?;
    /// let ids = tokenizer.encode("the cat")?;
    /// assert_eq!(ids.len(), 2); // "the" and " cat" are frequent: one token each
    /// assert_eq!(tokenizer.decode(&tokenizer.encode("a new word: 字")?)?, "a new word: 字");
    /// # Ok::<(), dl_data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::Config`] when `vocab_size` is under 256 (one token per byte);
    /// [`DataError::Tokenizer`] when the corpus is empty or training fails.
    pub fn train_bpe(corpus: &str, vocab_size: usize) -> Result<Self> {
        let alphabet = ByteLevel::alphabet();
        if vocab_size < alphabet.len() {
            return Err(DataError::config(
                "BPE vocabulary size",
                format!(
                    "{vocab_size} is smaller than the {} byte tokens a byte-level BPE starts with; \
                     use at least {}",
                    alphabet.len(),
                    alphabet.len()
                ),
            ));
        }
        if corpus.is_empty() {
            return Err(DataError::Tokenizer(
                "cannot train a BPE tokenizer on empty text".into(),
            ));
        }
        // No prefix space: decoding must give back exactly the text that was encoded.
        let byte_level = ByteLevel::default().add_prefix_space(false);
        let mut tokenizer = tokenizers::Tokenizer::new(BPE::default());
        tokenizer
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level));
        let mut trainer: TrainerWrapper = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .show_progress(false)
            .initial_alphabet(alphabet.into_iter().collect())
            .build()
            .into();
        tokenizer
            .train(&mut trainer, corpus.split_inclusive('\n'))
            .map_err(|error| hugging_face_error("training the BPE tokenizer", error))?;
        Ok(Self::HuggingFace(Box::new(tokenizer)))
    }

    /// Loads a tokenizer file: a Hugging Face `tokenizer.json`, or the envelope written by
    /// [`Tokenizer::save`] / [`Tokenizer::to_json`].
    ///
    /// # Errors
    /// [`DataError::Io`] when the file cannot be read, [`DataError::Tokenizer`] naming the file
    /// when it is not a tokenizer.
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|error| DataError::io(path, error))?;
        let value: serde_json::Value = serde_json::from_str(&json).map_err(|error| {
            DataError::Tokenizer(format!("{}: not a JSON file: {error}", path.display()))
        })?;
        let is_envelope = value.get("kind").is_some() && value.get("data").is_some();
        let loaded = if is_envelope {
            Self::from_json(&json)
        } else {
            serde_json::from_value::<tokenizers::Tokenizer>(value)
                .map(|tokenizer| Self::HuggingFace(Box::new(tokenizer)))
                .map_err(|error| hugging_face_error("not a Hugging Face tokenizer.json", error))
        };
        loaded.map_err(|error| DataError::Tokenizer(format!("{}: {error}", path.display())))
    }

    /// Writes the tokenizer to a file: a Hugging Face tokenizer as its standard `tokenizer.json`
    /// (loadable in Python with `tokenizers.Tokenizer.from_file`), a character vocabulary as its
    /// [`Tokenizer::to_json`] envelope. [`Tokenizer::from_file`] reads both.
    ///
    /// # Errors
    /// [`DataError::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = match self {
            Self::Char(_) => self.to_json()?,
            Self::HuggingFace(tokenizer) => tokenizer
                .to_string(true)
                .map_err(|error| hugging_face_error("serialising the tokenizer", error))?,
        };
        std::fs::write(path, json).map_err(|error| DataError::io(path, error))
    }

    /// What kind of tokenizer this is: "char", or the Hugging Face model ("bpe", "wordpiece",
    /// "wordlevel", "unigram").
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Char(_) => "char",
            Self::HuggingFace(tokenizer) => match tokenizer.get_model() {
                ModelWrapper::BPE(_) => "bpe",
                ModelWrapper::WordPiece(_) => "wordpiece",
                ModelWrapper::WordLevel(_) => "wordlevel",
                ModelWrapper::Unigram(_) => "unigram",
            },
        }
    }

    /// The number of token ids (the Embedding layer's vocabulary size and the output layer's
    /// width).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Char(vocabulary) => vocabulary.len(),
            Self::HuggingFace(tokenizer) => tokenizer.get_vocab_size(true),
        }
    }

    /// The token ids of `text` (no special tokens added).
    ///
    /// # Errors
    /// [`DataError::Tokenizer`]: characters a character vocabulary does not know, or a failure of
    /// the Hugging Face tokenizer.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Self::Char(vocabulary) => vocabulary.encode(text),
            Self::HuggingFace(tokenizer) => tokenizer
                .encode(text, false)
                .map(|encoding| encoding.get_ids().to_vec())
                .map_err(|error| hugging_face_error("encoding", error)),
        }
    }

    /// The text of a sequence of ids. A byte-level tokenizer writes U+FFFD for bytes that do not
    /// form valid UTF-8 (say, a character cut in half at the end).
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] naming the first id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Self::Char(vocabulary) => vocabulary.decode(ids),
            Self::HuggingFace(tokenizer) => {
                if let Some(id) = ids.iter().find(|&&id| tokenizer.id_to_token(id).is_none()) {
                    return Err(DataError::Tokenizer(format!(
                        "token id {id} is not in the vocabulary of {} tokens",
                        self.vocab_size()
                    )));
                }
                tokenizer
                    .decode(ids, false)
                    .map_err(|error| hugging_face_error("decoding", error))
            }
        }
    }

    /// A decoder for ids that arrive one at a time, as a generator samples them.
    pub fn streaming_decoder(&self) -> StreamingDecoder<'_> {
        StreamingDecoder::new(self)
    }

    /// The tokenizer as a JSON envelope `{"kind": ..., "data": ...}`, small enough for a
    /// checkpoint's metadata; [`Tokenizer::from_json`] reads it back.
    ///
    /// ```
    /// use dl_data::Tokenizer;
    ///
    /// let tokenizer = Tokenizer::char_level("深度学习实践。")?;
    /// let json = tokenizer.to_json()?;
    /// assert_eq!(json, r#"{"kind":"char","data":{"characters":"。习学实度深践"}}"#);
    /// let restored = Tokenizer::from_json(&json)?;
    /// assert_eq!(restored.encode("深度学习")?, tokenizer.encode("深度学习")?);
    /// # Ok::<(), dl_data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] when the Hugging Face tokenizer cannot be serialised.
    pub fn to_json(&self) -> Result<String> {
        let data = match self {
            Self::Char(vocabulary) => serde_json::to_value(CharData {
                characters: vocabulary.characters().iter().collect(),
            }),
            Self::HuggingFace(tokenizer) => serde_json::to_value(tokenizer),
        }
        .map_err(|error| hugging_face_error("serialising the tokenizer", error))?;
        let envelope = Envelope {
            kind: self.kind().to_owned(),
            data,
        };
        serde_json::to_string(&envelope)
            .map_err(|error| hugging_face_error("serialising the tokenizer", error))
    }

    /// Reads the envelope written by [`Tokenizer::to_json`].
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] when the JSON is malformed, its kind unknown, or its data not a
    /// tokenizer of that kind.
    pub fn from_json(json: &str) -> Result<Self> {
        let envelope: Envelope = serde_json::from_str(json).map_err(|error| {
            DataError::Tokenizer(format!(
                "not a tokenizer envelope {{\"kind\": ..., \"data\": ...}}: {error}"
            ))
        })?;
        let tokenizer = match envelope.kind.as_str() {
            "char" => {
                let data: CharData = serde_json::from_value(envelope.data).map_err(|error| {
                    DataError::Tokenizer(format!("bad character vocabulary: {error}"))
                })?;
                Self::Char(CharVocabulary::from_characters(
                    data.characters.chars().collect(),
                )?)
            }
            "bpe" | "wordpiece" | "wordlevel" | "unigram" => {
                let tokenizer: tokenizers::Tokenizer = serde_json::from_value(envelope.data)
                    .map_err(|error| {
                        DataError::Tokenizer(format!("bad {} tokenizer: {error}", envelope.kind))
                    })?;
                Self::HuggingFace(Box::new(tokenizer))
            }
            other => {
                return Err(DataError::Tokenizer(format!(
                    "unknown tokenizer kind '{other}' (expected char, bpe, wordpiece, wordlevel \
                     or unigram)"
                )))
            }
        };
        if tokenizer.kind() != envelope.kind {
            return Err(DataError::Tokenizer(format!(
                "the envelope says '{}' but its data is a '{}' tokenizer",
                envelope.kind,
                tokenizer.kind()
            )));
        }
        Ok(tokenizer)
    }
}

/// Turns ids that arrive one at a time into text that can be printed at once.
///
/// With a byte-level tokenizer one token may hold half a character: "字" is three bytes, and a
/// BPE that never saw it encodes it as three one-byte tokens. Decoding each token alone would
/// print three U+FFFD marks; the streaming decoder instead holds the pending ids back until
/// their bytes complete a character. It also decodes each new token next to the previous chunk,
/// so decoders that depend on their neighbours (a word-initial space) stay right.
///
/// ```
/// use dl_data::Tokenizer;
///
/// let tokenizer = Tokenizer::train_bpe(&"ab ".repeat(20), 260)?;
/// let ids = tokenizer.encode("ab 字")?; // "字" is unseen: three byte tokens
/// let mut decoder = tokenizer.streaming_decoder();
/// let mut printed = Vec::new();
/// for &id in &ids {
///     printed.push(decoder.step(id)?);
/// }
/// let last_three = &printed[printed.len() - 3..];
/// assert_eq!(last_three, [None, None, Some("字".to_string())]);
/// # Ok::<(), dl_data::DataError>(())
/// ```
#[derive(Debug)]
pub struct StreamingDecoder<'a> {
    tokenizer: &'a Tokenizer,
    /// The ids of the last printed chunk (context) followed by the ids not printed yet.
    ids: Vec<u32>,
    /// How many of `ids` are context, already printed.
    context_len: usize,
    /// The decoding of the context ids alone.
    context_text: String,
}

impl<'a> StreamingDecoder<'a> {
    /// A decoder with nothing pending.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self {
            tokenizer,
            ids: Vec::new(),
            context_len: 0,
            context_text: String::new(),
        }
    }

    /// Adds one id; returns the new text it completes, or `None` while a character is still
    /// incomplete.
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] when the id is not in the vocabulary (the id is then dropped) or
    /// when the tokenizer's decoder changes text it already produced.
    pub fn step(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let text = match self.tokenizer.decode(&self.ids) {
            Ok(text) => text,
            Err(error) => {
                self.ids.pop();
                return Err(error);
            }
        };
        if text.len() <= self.context_text.len() || text.ends_with(char::REPLACEMENT_CHARACTER) {
            return Ok(None);
        }
        let Some(new_text) = text.strip_prefix(self.context_text.as_str()) else {
            return Err(DataError::Tokenizer(format!(
                "streaming decoding: token {id} changed the text already printed ({:?} became {:?})",
                self.context_text, text
            )));
        };
        let new_text = new_text.to_owned();
        self.ids.drain(..self.context_len);
        self.context_len = self.ids.len();
        self.context_text = self.tokenizer.decode(&self.ids)?;
        Ok(Some(new_text))
    }

    /// Ends the stream: the text of the ids still pending, with U+FFFD for an incomplete
    /// character (empty when nothing is pending).
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] when decoding fails.
    pub fn finish(self) -> Result<String> {
        let text = self.tokenizer.decode(&self.ids)?;
        Ok(text
            .strip_prefix(self.context_text.as_str())
            .unwrap_or(&text)
            .to_owned())
    }
}
