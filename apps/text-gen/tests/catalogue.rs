//! text-gen's part of the catalogue of bad inputs (mnist-classifier's holds the rest): flags
//! out of range or too large to allocate, corpora and outputs that collide, and checkpoints whose
//! metadata lies about their sizes, holds NaN weights or belongs to another program. Each must
//! end with a non-zero status and a message naming the thing, never a panic or an abort.

#[path = "../../mnist-classifier/tests/common/catalogue.rs"]
mod catalogue;
mod common;

use std::collections::BTreeMap;

use catalogue::{check, Case};
use common::{path, train, write, BINARY, SENTENCE};
use dl_nn::Checkpoint;

#[test]
fn every_bad_input_is_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let dir = directory.path();
    let corpus = write(dir, "sentence.txt", SENTENCE.repeat(20));
    let good = dir.join("good.safetensors");
    let output = train(&corpus, &good, &["--steps", "10", "--eval-every", "10"]);
    assert!(output.status.success(), "{}", common::text(&output));
    let at = |name: &str| dir.join(name).to_str().unwrap().to_string();

    write(dir, "empty.txt", "");
    write(dir, "latin1.txt", b"caf\xe9 au lait");
    write(dir, "model.csv", SENTENCE.repeat(20));
    // Checkpoints whose metadata does not describe their weights, or whose weights are NaN.
    let checkpoint = Checkpoint::load(&good).unwrap();
    let tensors: Vec<_> = checkpoint.tensors.clone().into_iter().collect();
    let recipe: serde_json::Value = serde_json::from_str(&checkpoint.metadata["recipe"]).unwrap();
    let with_config = |name: &str, key: &str, value: u64| {
        let mut lying = recipe.clone();
        lying["config"][key] = value.into();
        let mut metadata = checkpoint.metadata.clone();
        metadata.insert("recipe".into(), lying.to_string());
        dl_nn::save_tensors(dir.join(name), &tensors, &metadata).unwrap();
    };
    with_config("huge-hidden.safetensors", "hidden", 100_000_000);
    with_config("many-layers.safetensors", "layers", 1_000_000);
    with_config("wrong-hidden.safetensors", "hidden", 64);
    with_config("wrong-layers.safetensors", "layers", 3);
    let mut nan: BTreeMap<_, _> = checkpoint.tensors.clone();
    let head = nan.get_mut("head.weight").unwrap();
    *head = (head.clone() * f64::INFINITY).unwrap();
    let nan: Vec<_> = nan.into_iter().collect();
    dl_nn::save_tensors(dir.join("inf.safetensors"), &nan, &checkpoint.metadata).unwrap();

    let c = path(&corpus).to_string();
    let out = at("out.safetensors");
    let train_with = |flags: &[&str]| -> Vec<String> {
        let mut arguments = vec!["train".to_string(), "--offline".into()];
        arguments.extend(flags.iter().map(|flag| flag.to_string()));
        for (flag, default) in [("--corpus", c.as_str()), ("--out", out.as_str())] {
            if !flags.contains(&flag) {
                arguments.extend([flag.to_string(), default.to_string()]);
            }
        }
        arguments
    };
    let generate = |checkpoint: &str| -> Vec<String> {
        ["generate", "--checkpoint", checkpoint, "--prompt", "the"]
            .map(str::to_string)
            .to_vec()
    };
    let cases = vec![
        Case::new(
            "missing corpus",
            train_with(&["--corpus", &at("absent.txt")]),
            &["absent.txt"],
        ),
        Case::new(
            "empty corpus",
            train_with(&["--corpus", &at("empty.txt")]),
            &["empty.txt", "empty"],
        ),
        Case::new(
            "corpus not UTF-8",
            train_with(&["--corpus", &at("latin1.txt")]),
            &["latin1.txt", "byte offset 3"],
        ),
        Case::new(
            "hidden too large",
            train_with(&["--hidden", "100000000"]),
            &["--hidden 100000000 is too large"],
        ),
        Case::new(
            "too many layers",
            train_with(&["--layers", "1000000"]),
            &["--layers 1000000 is too large"],
        ),
        Case::new(
            "vocabulary too large",
            train_with(&["--tokenizer", "bpe", "--vocab-size", "100000000"]),
            &["--vocab-size 100000000 is too large"],
        ),
        Case::new(
            "tokens per step too many",
            train_with(&["--batch-size", "60000", "--seq-len", "60000"]),
            &["tokens a step"],
        ),
        Case::new(
            "zero layers",
            train_with(&["--layers", "0"]),
            &["--layers must be positive"],
        ),
        Case::new(
            "zero sequence",
            train_with(&["--seq-len", "0"]),
            &["--seq-len must be positive"],
        ),
        Case::new(
            "dropout 1",
            train_with(&["--dropout", "1"]),
            &["--dropout must be in [0, 1)"],
        ),
        Case::new(
            "validation fraction 1",
            train_with(&["--validation-fraction", "1"]),
            &["--validation-fraction"],
        ),
        Case::new(
            "zero epochs",
            train_with(&["--epochs", "0"]),
            &["--epochs must be positive"],
        ),
        Case::new(
            "zero steps",
            train_with(&["--steps", "0"]),
            &["--steps must be positive"],
        ),
        Case::new(
            "zero time limit",
            train_with(&["--time-limit", "0"]),
            &["--time-limit"],
        ),
        Case::new(
            "negative clip norm",
            train_with(&["--clip-norm=-1"]),
            &["--clip-norm"],
        ),
        Case::new(
            "negative temperature",
            train_with(&["--temperature=-1"]),
            &["--temperature must be 0 (greedy) or positive"],
        ),
        Case::new(
            "too many threads",
            train_with(&["--threads", "5000"]),
            &["--threads 5000", "at most 1024"],
        ),
        Case::new(
            "out over the corpus",
            train_with(&["--out", &c]),
            &["sentence.txt", "must end in .safetensors"],
        ),
        Case::new(
            "history over the corpus",
            train_with(&[
                "--corpus",
                &at("model.csv"),
                "--out",
                &at("model.safetensors"),
            ]),
            &["model.csv", "would overwrite its input"],
        ),
        Case::new(
            "tokenizer file missing",
            train_with(&["--tokenizer", &at("absent.json")]),
            &["absent.json"],
        ),
        Case::new(
            "generate: hidden 10^8 in the metadata",
            generate(&at("huge-hidden.safetensors")),
            &["huge-hidden.safetensors", "--hidden is 100000000"],
        ),
        Case::new(
            "generate: 10^6 layers in the metadata",
            generate(&at("many-layers.safetensors")),
            &["many-layers.safetensors", "--layers is 1000000"],
        ),
        Case::new(
            "generate: sizes unlike the weights",
            generate(&at("wrong-hidden.safetensors")),
            &["wrong-hidden.safetensors", "lstm.weight_ih_l0", "has shape"],
        ),
        Case::new(
            "generate: layers unlike the weights",
            generate(&at("wrong-layers.safetensors")),
            &["wrong-layers.safetensors", "lstm.weight_ih_l1", "lacks"],
        ),
        Case::new(
            "generate: infinite weights",
            generate(&at("inf.safetensors")),
            &["inf.safetensors", "head.weight", "NaN or infinite"],
        ),
        Case::new(
            "perplexity: infinite weights",
            [
                "perplexity",
                "--checkpoint",
                &at("inf.safetensors"),
                "--corpus",
                &c,
            ]
            .map(str::to_string)
            .to_vec(),
            &["inf.safetensors", "NaN or infinite"],
        ),
        Case::new(
            "resume: sizes unlike the weights",
            train_with(&["--resume", &at("wrong-hidden.safetensors")]),
            &["wrong-hidden.safetensors"],
        ),
    ];
    check(BINARY, &cases);
}
