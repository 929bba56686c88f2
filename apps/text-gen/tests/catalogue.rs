//! text-gen's part of the catalogue of bad inputs, listed in `catalogue.toml` (mnist-classifier's
//! holds the rest): flags
//! out of range or too large to allocate, corpora and outputs that collide, and checkpoints whose
//! metadata lies about their sizes, holds NaN weights or belongs to another program. Each must
//! end with a non-zero status and a message naming the thing, never a panic or an abort.

#[path = "../../mnist-classifier/tests/common/catalogue.rs"]
mod catalogue;
mod common;

use std::collections::BTreeMap;

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

    let cases = catalogue::read(include_str!("catalogue.toml"));
    let places = BTreeMap::from([
        ("dir", dir.to_str().unwrap().to_string()),
        ("corpus", path(&corpus).to_string()),
        ("out", at("out.safetensors")),
    ]);
    catalogue::check(BINARY, &cases, &places);
}
