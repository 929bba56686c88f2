//! Character vocabularies, byte-level BPE, the JSON envelope and streaming decoding.

mod common;

use std::path::Path;

use dl_data::{CharVocabulary, DataError, Tokenizer};

/// A made-up English corpus of about 6 KB: a few sentences, repeated.
fn english_corpus() -> String {
    let sentences = [
        "the network learns from the data.\n",
        "the model predicts the next token of the text.\n",
        "a neural network is a stack of layers, trained by gradient descent.\n",
        "training the network takes time, and the loss goes down.\n",
    ];
    sentences.concat().repeat(30)
}

fn trained_bpe() -> Tokenizer {
    Tokenizer::train_bpe(&english_corpus(), 300).unwrap()
}

/// Text the BPE never saw: new words, accents, Chinese, emoji, tabs and several spaces.
const UNSEEN: &str = "Zebras juggle at dawn — naïve café!\n深度学习实践。🦀🦓\tcols  two  spaces\n";

fn tokenizer_message(error: DataError) -> String {
    assert!(matches!(error, DataError::Tokenizer(_)), "{error:?}");
    error.to_string()
}

// ---- character vocabulary ----

#[test]
fn char_vocabulary_is_the_sorted_distinct_characters() {
    let vocabulary = CharVocabulary::from_text("banana bread").unwrap();
    assert_eq!(vocabulary.characters(), [' ', 'a', 'b', 'd', 'e', 'n', 'r']);
    assert_eq!(vocabulary.len(), 7);
    assert_eq!(vocabulary.id('a'), Some(1));
    assert_eq!(vocabulary.character(6), Some('r'));
    assert_eq!(vocabulary.id('z'), None);
    assert_eq!(vocabulary.encode("bean").unwrap(), [2, 4, 1, 5]);
}

#[test]
fn chinese_text_round_trips_through_a_char_vocabulary() {
    let corpus = "深度学习实践。".repeat(20);
    let vocabulary = CharVocabulary::from_text(&corpus).unwrap();
    assert_eq!(vocabulary.len(), 7);
    // Sorted by code point: 。U+3002 < 习 U+4E60 < 学 U+5B66 < 实 U+5B9E < 度 U+5EA6 < 深 U+6DF1 < 践 U+8DF5.
    assert_eq!(
        vocabulary.characters(),
        ['。', '习', '学', '实', '度', '深', '践']
    );
    let ids = vocabulary.encode(&corpus).unwrap();
    assert_eq!(ids.len(), 140);
    assert_eq!(ids[..7], [5, 4, 2, 1, 3, 6, 0]);
    assert_eq!(vocabulary.decode(&ids).unwrap(), corpus);
}

#[test]
fn unknown_characters_are_listed_once_each() {
    let vocabulary = CharVocabulary::from_text("abc").unwrap();
    let message = tokenizer_message(vocabulary.encode("abé字cé字é").unwrap_err());
    assert!(
        message.contains("characters not in the vocabulary: 'é', '字'"),
        "{message}"
    );
    assert_eq!(message.matches("'é'").count(), 1, "{message}");

    // Many unknown characters: ten listed, the rest counted.
    let message = tokenizer_message(vocabulary.encode("ABCDEFGHIJKLMNOP").unwrap_err());
    assert!(message.contains("'J', and 6 more"), "{message}");
    assert!(!message.contains("'K'"), "{message}");
}

#[test]
fn decoding_an_id_outside_the_vocabulary_fails() {
    let vocabulary = CharVocabulary::from_text("abc").unwrap();
    assert_eq!(vocabulary.decode(&[2, 0]).unwrap(), "ca");
    let message = tokenizer_message(vocabulary.decode(&[0, 3]).unwrap_err());
    assert!(
        message.contains("token id 3") && message.contains("3 characters"),
        "{message}"
    );
}

#[test]
fn a_vocabulary_needs_sorted_distinct_characters() {
    assert!(CharVocabulary::from_text("").is_err());
    assert!(CharVocabulary::from_characters(vec!['b', 'a']).is_err());
    assert!(CharVocabulary::from_characters(vec!['a', 'a']).is_err());
    assert!(CharVocabulary::from_characters(vec!['a', 'b']).is_ok());
}

// ---- byte-level BPE ----

#[test]
fn bpe_round_trips_the_corpus_and_unseen_text_exactly() {
    let tokenizer = trained_bpe();
    assert_eq!(tokenizer.kind(), "bpe");
    let corpus = english_corpus();
    for text in [corpus.as_str(), UNSEEN, "", " ", "\n\n\n"] {
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(tokenizer.decode(&ids).unwrap(), text);
    }
}

#[test]
fn bpe_merges_frequent_words_into_single_tokens() {
    let tokenizer = trained_bpe();
    let corpus = english_corpus();
    let ids = tokenizer.encode(&corpus).unwrap();
    // Each byte starts as one token; 44 merges (300 − 256) shrink the corpus to about half
    // (measured: 3,090 tokens for 6,180 bytes), because they go to the most frequent words.
    assert!(
        ids.len() * 10 < corpus.len() * 6,
        "{} tokens for {} bytes",
        ids.len(),
        corpus.len()
    );
    for word in [" the", " network", " the network"] {
        let expected = word.split(' ').count() - 1;
        assert_eq!(tokenizer.encode(word).unwrap().len(), expected, "{word:?}");
    }
    // An unseen character costs one token per UTF-8 byte: 字 is three bytes.
    assert_eq!(tokenizer.encode("字").unwrap().len(), 3);
}

#[test]
fn bpe_honours_the_requested_vocabulary_size() {
    let tokenizer = trained_bpe();
    assert!(
        (256..=300).contains(&tokenizer.vocab_size()),
        "{}",
        tokenizer.vocab_size()
    );
    // Every id the encoder produces fits the embedding table.
    let ids = tokenizer.encode(UNSEEN).unwrap();
    assert!(ids.iter().all(|&id| (id as usize) < tokenizer.vocab_size()));

    // A small corpus runs out of pairs to merge long before 5000 tokens.
    let small = Tokenizer::train_bpe("tiny corpus", 5000).unwrap();
    assert!(small.vocab_size() < 300, "{}", small.vocab_size());

    let error = Tokenizer::train_bpe("text", 255).unwrap_err();
    assert!(matches!(error, DataError::Config { .. }), "{error:?}");
    assert!(Tokenizer::train_bpe("", 300).is_err());
}

#[test]
fn bpe_training_is_reproducible() {
    // Same corpus, same vocabulary: a rerun must not change the ids a checkpoint was trained on.
    assert_eq!(
        trained_bpe().to_json().unwrap(),
        trained_bpe().to_json().unwrap()
    );
}

#[test]
fn bpe_rejects_ids_outside_its_vocabulary() {
    let tokenizer = trained_bpe();
    let out_of_range = tokenizer.vocab_size() as u32 + 10;
    let message = tokenizer_message(tokenizer.decode(&[0, out_of_range]).unwrap_err());
    assert!(message.contains(&out_of_range.to_string()), "{message}");
}

// ---- JSON envelope and files ----

#[test]
fn bpe_json_round_trip_gives_the_same_ids() {
    let tokenizer = trained_bpe();
    let json = tokenizer.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["kind"], "bpe");
    assert_eq!(value["data"]["model"]["type"], "BPE");

    let restored = Tokenizer::from_json(&json).unwrap();
    assert_eq!(restored.kind(), "bpe");
    assert_eq!(restored.vocab_size(), tokenizer.vocab_size());
    for text in [english_corpus().as_str(), UNSEEN] {
        assert_eq!(
            restored.encode(text).unwrap(),
            tokenizer.encode(text).unwrap()
        );
    }
    assert_eq!(restored.to_json().unwrap(), json);
}

#[test]
fn char_json_round_trip_keeps_every_character() {
    let corpus = "say \"hi\"\n\t\\ 深度 🦀";
    let tokenizer = Tokenizer::char_level(corpus).unwrap();
    let restored = Tokenizer::from_json(&tokenizer.to_json().unwrap()).unwrap();
    assert_eq!(restored.kind(), "char");
    assert_eq!(restored.vocab_size(), tokenizer.vocab_size());
    assert_eq!(
        restored.encode(corpus).unwrap(),
        tokenizer.encode(corpus).unwrap()
    );
}

#[test]
fn malformed_json_is_an_error() {
    let bpe_data = serde_json::from_str::<serde_json::Value>(&trained_bpe().to_json().unwrap())
        .unwrap()["data"]
        .to_string();
    let cases = [
        "not json".to_string(),
        r#"{"kind": "char"}"#.to_string(),
        r#"{"kind": "morse", "data": {}}"#.to_string(),
        r#"{"kind": "char", "data": {"characters": ""}}"#.to_string(),
        r#"{"kind": "char", "data": {"characters": "ba"}}"#.to_string(),
        r#"{"kind": "bpe", "data": {"model": 3}}"#.to_string(),
        format!(r#"{{"kind": "char", "data": {bpe_data}}}"#),
        format!(r#"{{"kind": "unigram", "data": {bpe_data}}}"#),
    ];
    for json in cases {
        let error = Tokenizer::from_json(&json).unwrap_err();
        assert!(
            matches!(error, DataError::Tokenizer(_)),
            "{json}: {error:?}"
        );
    }
}

#[test]
fn a_tokenizer_json_saved_by_hugging_face_loads_from_file() {
    let directory = tempfile::tempdir().unwrap();
    let tokenizer = trained_bpe();
    let Tokenizer::HuggingFace(hugging_face) = &tokenizer else {
        panic!("train_bpe returned {}", tokenizer.kind());
    };
    let path = directory.path().join("tokenizer.json");
    hugging_face.save(&path, true).unwrap();

    let loaded = Tokenizer::from_file(&path).unwrap();
    assert_eq!(loaded.kind(), "bpe");
    assert_eq!(
        loaded.encode(UNSEEN).unwrap(),
        tokenizer.encode(UNSEEN).unwrap()
    );

    // `save` and `from_file` also round-trip a character vocabulary (as its envelope).
    let characters = Tokenizer::char_level("abc字").unwrap();
    let path = directory.path().join("chars.json");
    characters.save(&path).unwrap();
    assert_eq!(
        Tokenizer::from_file(&path)
            .unwrap()
            .encode("字cab")
            .unwrap(),
        [3, 2, 0, 1]
    );
}

#[test]
fn a_bad_tokenizer_file_error_names_the_file() {
    let directory = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("garbage.json", "{ not json"),
        ("other.json", r#"{"vocab": [1, 2]}"#),
    ] {
        let path = directory.path().join(name);
        std::fs::write(&path, content).unwrap();
        let message = tokenizer_message(Tokenizer::from_file(&path).unwrap_err());
        assert!(message.contains(name), "{message}");
    }
    let error = Tokenizer::from_file(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
    assert!(matches!(error, DataError::Io { .. }), "{error:?}");
}

// ---- streaming decoding ----

#[test]
fn streaming_chinese_token_by_token_reproduces_the_text() {
    let tokenizer = trained_bpe();
    let text = "深度学习实践。";
    let ids = tokenizer.encode(text).unwrap();
    // The English BPE never saw these characters: three byte tokens each.
    assert_eq!(ids.len(), 3 * text.chars().count());

    let mut decoder = tokenizer.streaming_decoder();
    let mut printed = String::new();
    let mut waits = 0;
    for &id in &ids {
        match decoder.step(id).unwrap() {
            Some(chunk) => {
                assert!(!chunk.contains(char::REPLACEMENT_CHARACTER), "{chunk:?}");
                printed.push_str(&chunk);
            }
            None => waits += 1,
        }
    }
    assert_eq!(printed, text);
    assert_eq!(waits, 2 * text.chars().count()); // two of every three bytes wait for the third
    assert_eq!(decoder.finish().unwrap(), "");
}

#[test]
fn streaming_any_text_equals_decoding_it_whole() {
    let tokenizer = trained_bpe();
    for text in [UNSEEN, english_corpus().as_str()] {
        let ids = tokenizer.encode(text).unwrap();
        let mut decoder = tokenizer.streaming_decoder();
        let mut printed = String::new();
        for &id in &ids {
            printed.extend(decoder.step(id).unwrap());
        }
        printed.push_str(&decoder.finish().unwrap());
        assert_eq!(printed, text);
    }
}

#[test]
fn streaming_holds_back_an_incomplete_character_until_finish() {
    let tokenizer = trained_bpe();
    let ids = tokenizer.encode("a字").unwrap();
    let mut decoder = tokenizer.streaming_decoder();
    assert_eq!(decoder.step(ids[0]).unwrap().as_deref(), Some("a"));
    assert_eq!(decoder.step(ids[1]).unwrap(), None);
    assert_eq!(decoder.step(ids[2]).unwrap(), None);
    // The third byte never comes: what was pending is printed as a replacement character.
    assert_eq!(decoder.finish().unwrap(), "\u{FFFD}");
}

#[test]
fn streaming_a_char_vocabulary_prints_every_token_at_once() {
    let tokenizer = Tokenizer::char_level("深度学习").unwrap();
    let mut decoder = tokenizer.streaming_decoder();
    let ids = tokenizer.encode("学习深度").unwrap();
    let printed: Vec<Option<String>> = ids.iter().map(|&id| decoder.step(id).unwrap()).collect();
    let expected: Vec<Option<String>> = "学习深度".chars().map(|c| Some(c.to_string())).collect();
    assert_eq!(printed, expected);
    // A bad id is an error and leaves the decoder usable.
    assert!(decoder.step(99).is_err());
    assert_eq!(decoder.step(ids[0]).unwrap().as_deref(), Some("学"));
}

#[test]
fn tiny_shakespeare_bpe_compresses_and_round_trips() {
    let Some(text) = common::tiny_shakespeare() else {
        return;
    };
    let started = std::time::Instant::now();
    let tokenizer = Tokenizer::train_bpe(&text, 1000).unwrap();
    let trained = started.elapsed();
    let ids = tokenizer.encode(&text).unwrap();
    println!(
        "Tiny Shakespeare: BPE vocab {} trained in {trained:.2?}; {} tokens for {} bytes",
        tokenizer.vocab_size(),
        ids.len(),
        text.len()
    );
    assert_eq!(tokenizer.vocab_size(), 1000);
    // 744 merges on English text shrink it to well under half its bytes.
    assert!(ids.len() * 2 < text.len());
    assert_eq!(tokenizer.decode(&ids).unwrap(), text);
}
