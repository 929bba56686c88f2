//! The binary end to end on small made-up corpora: a repeated sentence must be learned almost
//! perfectly (greedy generation reproduces it), then generate, perplexity, resume, BPE, a
//! Chinese corpus, determinism, and every bad input the issue lists.

use std::{collections::BTreeMap, path::Path, process::Output};

mod common;

use common::{assert_failure, assert_success, path, run, stdout, text, train, write, SENTENCE};

/// Runs `perplexity` on `corpus` and returns what it printed, the loss per token and per
/// character.
fn perplexity_of(checkpoint: &Path, corpus: &Path) -> (String, f64, f64) {
    let output = run(&[
        "perplexity",
        "--checkpoint",
        path(checkpoint),
        "--corpus",
        path(corpus),
    ]);
    assert_success(&output);
    let printed = stdout(&output);
    let per_token = number_after(&printed, "loss", "loss");
    let per_char = number_after(&printed, "  ", "");
    (printed, per_token, per_char)
}

/// The recipe a checkpoint records (its `recipe` metadata entry, as JSON).
fn recipe(checkpoint: &Path) -> serde_json::Value {
    serde_json::from_str(&metadata(checkpoint)["recipe"]).unwrap()
}

/// The number after `label` in the line of `output` that starts with `line_start`.
fn number_after(output: &str, line_start: &str, label: &str) -> f64 {
    let line = output
        .lines()
        .find(|line| line.starts_with(line_start))
        .unwrap_or_else(|| panic!("no line starting with {line_start:?} in:\n{output}"));
    let rest = &line[line
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line}"))
        + label.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

fn metadata(checkpoint: &Path) -> BTreeMap<String, String> {
    dl_nn::Checkpoint::load(checkpoint).unwrap().metadata
}

/// `generate` greedily from `prompt`.
fn generate_greedy(checkpoint: &Path, prompt: &str, length: usize, engine: &str) -> Output {
    run(&[
        "generate",
        "--checkpoint",
        path(checkpoint),
        "--prompt",
        prompt,
        "--length",
        &length.to_string(),
        "--temperature",
        "0",
        "--engine",
        engine,
    ])
}

#[test]
fn learns_a_repeated_sentence_then_generates_and_scores_it() {
    let directory = tempfile::tempdir().unwrap();
    let corpus_text = SENTENCE.repeat(120);
    let corpus = write(directory.path(), "sentence.txt", &corpus_text);
    let checkpoint = directory.path().join("out/model.safetensors");
    let output = train(&corpus, &checkpoint, &["--steps", "150"]);
    assert_success(&output);
    let printed = stdout(&output);
    let validation_loss = number_after(&printed, "validation (", "loss");
    assert!(
        validation_loss < 0.1,
        "validation loss {validation_loss}:\n{printed}"
    );

    // Everything beside the checkpoint.
    let history = std::fs::read_to_string(checkpoint.with_extension("csv")).unwrap();
    assert_eq!(
        history.lines().count(),
        4,
        "a header and 3 rounds of 50 steps:\n{history}"
    );
    assert!(
        std::fs::metadata(checkpoint.with_extension("png"))
            .unwrap()
            .len()
            > 1000
    );
    assert!(dl_train::optimizer_state_path(&checkpoint).is_file());
    let metadata = metadata(&checkpoint);
    assert_eq!(metadata["app"], "text-gen");
    let recipe = recipe(&checkpoint);
    assert_eq!(recipe["tokenizer_kind"], "char");
    assert_eq!(recipe["config"]["hidden"], 48);
    assert_eq!(metadata["global_step"], "150");
    let tokenizer = dl_data::Tokenizer::from_json(&metadata["tokenizer"]).unwrap();
    assert_eq!(tokenizer.vocab_size(), 28);

    // Greedy generation from the sentence's start continues the sentence, with either engine.
    let expected = format!("{}\n", &corpus_text[..9 + 90]);
    for engine in ["fast", "candle"] {
        let output = generate_greedy(&checkpoint, "the quick", 90, engine);
        assert_success(&output);
        assert_eq!(stdout(&output), expected, "engine {engine}");
        assert!(text(&output).contains("chars/s"), "{}", text(&output));
    }

    let (printed, per_token, per_char) = perplexity_of(&checkpoint, &corpus);
    let perplexity = number_after(&printed, "perplexity", "perplexity");
    assert!(per_token < 0.1, "{printed}");
    // Character model: one token per character.
    assert!((per_char - per_token).abs() < 1e-3, "{printed}");
    assert!((perplexity - per_token.exp()).abs() < 1e-2, "{printed}");
}

#[test]
fn same_seed_gives_the_same_checkpoint_bytes_and_the_same_text() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(directory.path(), "sentence.txt", SENTENCE.repeat(60));
    let first = directory.path().join("first.safetensors");
    let second = directory.path().join("second.safetensors");
    for out in [&first, &second] {
        assert_success(&train(&corpus, out, &["--steps", "30", "--dropout", "0.2"]));
    }
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    let other_seed = directory.path().join("other.safetensors");
    assert_success(&train(
        &corpus,
        &other_seed,
        &["--steps", "30", "--seed", "7"],
    ));
    assert_ne!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&other_seed).unwrap()
    );

    let sample = |seed: &str| {
        let output = run(&[
            "generate",
            "--checkpoint",
            path(&first),
            "--prompt",
            "the",
            "--length",
            "200",
            "--temperature",
            "1.0",
            "--seed",
            seed,
        ]);
        assert_success(&output);
        stdout(&output)
    };
    assert_eq!(sample("3"), sample("3"));
    assert_ne!(sample("3"), sample("4"));
    let greedy = || stdout(&generate_greedy(&first, "the", 100, "fast"));
    assert_eq!(greedy(), greedy());
}

#[test]
fn resuming_continues_the_rounds_and_matches_an_uninterrupted_run() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(directory.path(), "sentence.txt", SENTENCE.repeat(60));
    // Two layers with dropout: the resumed run must also continue the dropout generators.
    let settings = [
        "--eval-every",
        "20",
        "--schedule",
        "constant",
        "--layers",
        "2",
        "--dropout",
        "0.3",
    ];
    let whole = directory.path().join("whole.safetensors");
    let mut arguments = settings.to_vec();
    arguments.extend(["--steps", "40"]);
    assert_success(&train(&corpus, &whole, &arguments));

    let parts = directory.path().join("parts.safetensors");
    let mut arguments = settings.to_vec();
    arguments.extend(["--steps", "20"]);
    assert_success(&train(&corpus, &parts, &arguments));
    let mut arguments = settings.to_vec();
    arguments.extend(["--steps", "40", "--resume", path(&parts)]);
    let output = train(&corpus, &parts, &arguments);
    assert_success(&output);
    assert!(stdout(&output).contains("resuming"), "{}", text(&output));
    let history = std::fs::read_to_string(parts.with_extension("csv")).unwrap();
    let rounds: Vec<&str> = history
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap())
        .collect();
    assert_eq!(rounds, ["1", "2"], "{history}");
    // Weights, optimizer moments, data windows, dropout generators and step count all carried
    // over.
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&parts).unwrap()
    );

    // Nothing left to do is an error, not a silent no-op.
    let output = train(&corpus, &parts, &arguments);
    assert_failure(&output, "already trained 2 rounds");
}

#[test]
fn bpe_tokenizers_train_and_generate() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(
        directory.path(),
        "prose.txt",
        "It was the best of times, it was the worst of times, it was the age of wisdom.\n"
            .repeat(50),
    );
    let checkpoint = directory.path().join("bpe.safetensors");
    let output = train(
        &corpus,
        &checkpoint,
        &["--tokenizer", "bpe", "--vocab-size", "300", "--steps", "60"],
    );
    assert_success(&output);
    assert!(
        stdout(&output).contains("bpe tokenizer"),
        "{}",
        text(&output)
    );
    assert_eq!(recipe(&checkpoint)["tokenizer_kind"], "bpe");

    // Generation streams whole characters: the prompt and exactly --length more.
    let output = run(&[
        "generate",
        "--checkpoint",
        path(&checkpoint),
        "--prompt",
        "it was",
        "--length",
        "80",
        "--temperature",
        "0.5",
    ]);
    assert_success(&output);
    let printed = stdout(&output);
    assert!(printed.starts_with("it was"), "{printed}");
    let generated = printed.strip_suffix('\n').unwrap();
    assert_eq!(generated.chars().count(), 6 + 80, "{printed}");
    // A byte-level BPE encodes any text, even characters it never saw.
    let output = generate_greedy(&checkpoint, "字", 10, "fast");
    assert_success(&output);

    let (printed, per_token, per_char) = perplexity_of(&checkpoint, &corpus);
    // Several characters per token: fewer nats per character than per token.
    assert!(per_char < per_token, "{printed}");

    // A tokenizer file given by path (here a BPE saved by dl-data).
    let tokenizer_file = directory.path().join("tokenizer.json");
    let saved =
        dl_data::Tokenizer::train_bpe(&std::fs::read_to_string(&corpus).unwrap(), 270).unwrap();
    saved.save(&tokenizer_file).unwrap();
    let output = train(
        &corpus,
        &directory.path().join("file.safetensors"),
        &["--tokenizer", path(&tokenizer_file), "--steps", "10"],
    );
    assert_success(&output);
    let expected = format!("vocabulary of {}", saved.vocab_size());
    assert!(stdout(&output).contains(&expected), "{}", text(&output));
}

#[test]
fn a_chinese_corpus_works_in_char_mode() {
    let directory = tempfile::tempdir().unwrap();
    let sentence = "深度学习是人工智能的一个分支。循环神经网络擅长处理序列数据。";
    let corpus = write(directory.path(), "chinese.txt", sentence.repeat(150));
    let checkpoint = directory.path().join("chinese.safetensors");
    let output = train(
        &corpus,
        &checkpoint,
        &["--steps", "150", "--sample-length", "30"],
    );
    assert_success(&output);
    // The course's English prompt is not in this vocabulary: the sample starts from the corpus.
    assert!(
        stdout(&output).contains("starts from the corpus instead"),
        "{}",
        text(&output)
    );
    let output = generate_greedy(&checkpoint, "深度学习", 26, "fast");
    assert_success(&output);
    let expected: String = sentence.repeat(2).chars().take(4 + 26).collect();
    assert_eq!(stdout(&output), format!("{expected}\n"));
}

#[test]
fn a_temperature_sweep_prints_one_block_per_temperature_and_sample() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(directory.path(), "sentence.txt", SENTENCE.repeat(40));
    let checkpoint = directory.path().join("model.safetensors");
    // --epochs counts passes over the training text: 1620 tokens / (16 × 24) per step, twice,
    // is 8.4, so 9 steps.
    let output = train(&corpus, &checkpoint, &["--epochs", "2"]);
    assert_success(&output);
    assert!(
        stdout(&output).contains("9 steps of 16 windows × 24 tokens (2.13 passes"),
        "{}",
        text(&output)
    );
    let output = run(&[
        "generate",
        "--checkpoint",
        path(&checkpoint),
        "--prompt",
        "the",
        "--length",
        "40",
        "--temperature",
        "0.2,0.5,1.0",
        "--samples",
        "2",
        "--top-k",
        "10",
        "--top-p",
        "0.9",
    ]);
    assert_success(&output);
    let printed = stdout(&output);
    assert_eq!(printed.matches("----- temperature").count(), 6, "{printed}");
    for header in [
        "----- temperature 0.2, sample 1 of 2 -----",
        "----- temperature 1, sample 2 of 2 -----",
    ] {
        assert!(printed.contains(header), "{printed}");
    }
    assert!(
        text(&output).contains("generated 240 characters"),
        "{}",
        text(&output)
    );
}

#[test]
fn bad_corpora_are_clear_errors() {
    let directory = tempfile::tempdir().unwrap();
    let out = directory.path().join("model.safetensors");
    let empty = write(directory.path(), "empty.txt", "");
    assert_failure(&train(&empty, &out, &[]), "the corpus is empty");
    let short = write(directory.path(), "short.txt", "hello");
    assert_failure(
        &train(&short, &out, &[]),
        "a window of sequence length 24 needs 25",
    );
    let binary = write(directory.path(), "binary.txt", b"abc\xffdef");
    assert_failure(
        &train(&binary, &out, &[]),
        "not valid UTF-8 at byte offset 3",
    );
    let missing = directory.path().join("missing.txt");
    assert_failure(&train(&missing, &out, &[]), "missing.txt");
    // Enough for training, too little left at the end for one validation window.
    let tight = write(directory.path(), "tight.txt", SENTENCE.repeat(3));
    assert_failure(&train(&tight, &out, &[]), "the validation part");
    let corpus = write(directory.path(), "sentence.txt", SENTENCE.repeat(20));
    for (flags, expected) in [
        (
            &["--validation-fraction", "1.5"][..],
            "--validation-fraction must be in [0, 1)",
        ),
        (&["--tokenizer", "nowhere.json"][..], "no such file"),
        (&["--steps", "0"][..], "--steps must be positive"),
        (&["--dropout", "1"][..], "--dropout must be in [0, 1)"),
        (
            &["--vocab-size", "100", "--tokenizer", "bpe"][..],
            "smaller than the 256 byte tokens",
        ),
        (
            &["--early-stopping", "2", "--validation-fraction", "0"][..],
            "--early-stopping watches the validation loss",
        ),
        (
            &[
                "--tokenizer",
                "hub:someone/some-model",
                "--data-dir",
                path(directory.path()),
            ][..],
            "not in the Hub cache",
        ),
    ] {
        assert_failure(&train(&corpus, &out, flags), expected);
    }
    assert!(!out.exists(), "no checkpoint is written for bad input");
}

#[test]
fn bad_generation_inputs_and_checkpoints_are_clear_errors() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(directory.path(), "sentence.txt", SENTENCE.repeat(40));
    let checkpoint = directory.path().join("model.safetensors");
    assert_success(&train(&corpus, &checkpoint, &["--steps", "10"]));
    let generate = |checkpoint: &Path, extra: &[&str]| {
        let mut arguments = vec![
            "generate",
            "--checkpoint",
            path(checkpoint),
            "--length",
            "10",
        ];
        arguments.extend_from_slice(extra);
        run(&arguments)
    };

    // The sentence has every lower-case letter, but no capitals and no '!'.
    let output = generate(&checkpoint, &["--prompt", "Xylophone!"]);
    assert_failure(&output, "characters not in the vocabulary: 'X', '!'");
    assert_failure(
        &generate(&checkpoint, &["--prompt", "The meaning of life is"]),
        "characters not in the vocabulary: 'T'",
    );
    assert_failure(
        &generate(&checkpoint, &["--prompt", ""]),
        "--prompt is empty",
    );
    assert_failure(
        &generate(&checkpoint, &["--temperature", "-1"]),
        "--temperature must be 0 (greedy) or positive, got -1",
    );
    assert_failure(
        &generate(&checkpoint, &["--temperature", "0.5,-0.2"]),
        "got -0.2",
    );
    for top_p in ["0", "1.5", "-0.3"] {
        assert_failure(
            &generate(&checkpoint, &["--top-p", top_p]),
            "--top-p must be in (0, 1]",
        );
    }
    assert_failure(
        &generate(&checkpoint, &["--top-k", "0"]),
        "--top-k must be at least 1",
    );
    assert_failure(
        &generate(&checkpoint, &["--samples", "0"]),
        "--samples must be at least 1",
    );

    // Files that are not text-gen checkpoints.
    let missing = directory.path().join("missing.safetensors");
    assert_failure(&generate(&missing, &[]), "cannot read");
    let bytes = std::fs::read(&checkpoint).unwrap();
    let truncated = write(
        directory.path(),
        "truncated.safetensors",
        &bytes[..bytes.len() / 2],
    );
    assert_failure(&generate(&truncated, &[]), "not a valid safetensors file");
    let garbage = write(directory.path(), "garbage.safetensors", "just some text");
    assert_failure(&generate(&garbage, &[]), "not a valid safetensors file");
    let other = directory.path().join("other.safetensors");
    let tensor =
        dl_tensor::Tensor::zeros(3, dl_tensor::DType::F32, &dl_tensor::Device::Cpu).unwrap();
    dl_nn::save_tensors(
        &other,
        &[("weight".to_string(), tensor)],
        &BTreeMap::from([("app".to_string(), "mnist-classifier".to_string())]),
    )
    .unwrap();
    assert_failure(&generate(&other, &[]), "is not a text-gen checkpoint");
    let output = run(&[
        "perplexity",
        "--checkpoint",
        path(&other),
        "--corpus",
        path(&corpus),
    ]);
    assert_failure(&output, "is not a text-gen checkpoint");
    let output = train(
        &corpus,
        &directory.path().join("x.safetensors"),
        &["--resume", path(&other)],
    );
    assert_failure(&output, "is not a text-gen checkpoint");

    // Perplexity of a text with characters the vocabulary lacks.
    let foreign = write(directory.path(), "foreign.txt", "the quick brown fox, 42!");
    let output = run(&[
        "perplexity",
        "--checkpoint",
        path(&checkpoint),
        "--corpus",
        path(&foreign),
    ]);
    assert_failure(
        &output,
        "characters not in the vocabulary: ',', '4', '2', '!'",
    );
}

#[test]
fn a_time_limit_stops_after_the_round_that_reaches_it() {
    let directory = tempfile::tempdir().unwrap();
    let corpus = write(directory.path(), "sentence.txt", SENTENCE.repeat(40));
    let checkpoint = directory.path().join("model.safetensors");
    // A limit far shorter than one round: the first round is the last.
    let output = train(
        &corpus,
        &checkpoint,
        &[
            "--steps",
            "100",
            "--eval-every",
            "10",
            "--time-limit",
            "0.0001",
        ],
    );
    assert_success(&output);
    let printed = stdout(&output);
    assert!(printed.contains("stopping after round 1"), "{printed}");
    assert!(printed.contains("stopped by --time-limit"), "{printed}");
    assert_eq!(metadata(&checkpoint)["global_step"], "10");
}
