//! A catalogue of bad inputs — files, flags and paths, listed in `catalogue.toml` — each of which
//! must end the program with a non-zero status and a message that names the thing and the
//! trouble, never a panic. This test makes the files the cases name. (text-gen's catalogue is
//! in its tests; together they hold more than sixty cases.)

mod common;

use std::{collections::BTreeMap, path::Path};

use common::{catalogue, synthetic_data, text, train, write_set, BINARY};
use dl_data::Tokenizer;
use dl_models::{Recipe, TextModelConfig, TextRecipe};
use dl_nn::VarStore;
use dl_tensor::{DType, Device};

/// The weights of `store` saved at `path` with `metadata`.
fn save(path: &Path, store: &VarStore, metadata: &BTreeMap<String, String>) {
    dl_nn::save_checkpoint(path, store, metadata).unwrap();
}

/// A PNG file's bytes announcing `width` × `height` grey pixels, with (far too little) pixel
/// data: enough for a reader of its header.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        bytes.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        bytes.extend(kind);
        bytes.extend(data);
        bytes.extend(crc.sum().to_be_bytes());
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend(height.to_be_bytes());
    header.extend([8, 0, 0, 0, 0]); // 8-bit grey, deflate, no filter method, not interlaced
    chunk(b"IHDR", &header);
    // An empty deflate stream: the pixel data is never reached.
    chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    bytes
}

#[test]
fn every_bad_input_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let data = synthetic_data(dir);
    let good = dir.join("good.safetensors");
    let output = train(&data, &good, &["--model", "logreg", "--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let at = |name: &str| dir.join(name).to_str().unwrap().to_string();

    // Data with no training image, and fewer than one batch.
    let empty_set = dir.join("empty-set");
    std::fs::create_dir_all(empty_set.join("mnist")).unwrap();
    write_set(&empty_set.join("mnist"), "train", 0);
    write_set(&empty_set.join("mnist"), "t10k", 0);

    // Damaged and foreign checkpoints.
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(at("truncated.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(at("notes.safetensors"), "these are my notes").unwrap();
    std::fs::write(at("notes.txt"), "these are my notes").unwrap();
    let foreign = VarStore::new(&Device::Cpu, DType::F32, 0);
    dl_nn::Dense::new(&foreign.root().sub("dense"), 784, 10).unwrap();
    save(
        dir.join("foreign.safetensors").as_path(),
        &foreign,
        &BTreeMap::new(),
    );
    let good_checkpoint = dl_nn::Checkpoint::load(&good).unwrap();
    let mut mismatched = good_checkpoint.metadata.clone();
    mismatched.insert(
        "recipe".into(),
        serde_json::to_string(&serde_json::json!({
            "task": "image-classifier", "model": "mlp", "dropout": 0.0, "dataset": "mnist"
        }))
        .unwrap(),
    );
    save(
        dir.join("mismatched.safetensors").as_path(),
        &foreign,
        &mismatched,
    );
    let mut bad_recipe = good_checkpoint.metadata.clone();
    bad_recipe.insert("recipe".into(), "{not json".into());
    save(
        dir.join("bad-recipe.safetensors").as_path(),
        &foreign,
        &bad_recipe,
    );
    let mut nan = good_checkpoint.tensors.clone();
    let weight = nan.get_mut("dense.weight").unwrap();
    *weight = (weight.clone() * f64::NAN).unwrap();
    let tensors: Vec<_> = nan.into_iter().collect();
    dl_nn::save_tensors(at("nan.safetensors"), &tensors, &good_checkpoint.metadata).unwrap();
    let text_store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let tokenizer = Tokenizer::char_level("abc").unwrap();
    let text_recipe = TextRecipe {
        config: TextModelConfig {
            vocab_size: tokenizer.vocab_size(),
            embedding: 4,
            hidden: 4,
            layers: 1,
            dropout: 0.0,
        },
        tokenizer,
    };
    text_recipe.build(&text_store).unwrap();
    save(
        dir.join("text.safetensors").as_path(),
        &text_store,
        &Recipe::LanguageModel(text_recipe).metadata().unwrap(),
    );

    // Images that cannot be classified.
    image::GrayImage::new(40, 40)
        .save(dir.join("blank.png"))
        .unwrap();
    std::fs::write(at("huge.png"), png_header(23_000, 23_000)).unwrap();
    std::fs::write(
        at("arithmetic.jpg"),
        [
            0xFF, 0xD8, 0xFF, 0xC9, 0x00, 0x0B, 8, 0, 28, 0, 28, 1, 1, 0x11, 0,
        ],
    )
    .unwrap();
    let mut png = Vec::new();
    image::GrayImage::from_fn(28, 28, |x, _| image::Luma([(x * 9) as u8]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(at("truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(at("words.png"), "not an image").unwrap();
    // Files beside an --out that are not ours.
    std::fs::write(at("taken.safetensors"), "someone's file").unwrap();
    std::fs::write(at("mine.csv"), "name,score\nada,3\n").unwrap();

    // Compressed models: pruned and int8 files made by the program itself, and an "int8" file
    // whose weights are floats and whose scales are missing.
    for (command, file) in [("prune", "pruned"), ("quantize", "int8")] {
        let out = at(&format!("{file}.safetensors"));
        let mut arguments = vec![command, "--offline", "--checkpoint", good.to_str().unwrap()];
        arguments.extend(["--data-dir", data.to_str().unwrap(), "--out", &out]);
        if command == "prune" {
            arguments.extend(["--sparsity", "0.5", "--fine-tune-epochs", "0"]);
        }
        let output = std::process::Command::new(BINARY)
            .args(&arguments)
            .output()
            .unwrap();
        assert!(output.status.success(), "{command}: {}", text(&output));
    }
    let mut fake = dl_nn::Checkpoint::load(&good).unwrap().metadata;
    fake.insert("quantization".into(), "{}".into());
    let logreg_store = VarStore::new(&Device::Cpu, DType::F32, 0);
    dl_models::ImageRecipe::new(dl_models::ImageModel::Logreg, dl_data::ImageDataset::Mnist)
        .build(&logreg_store)
        .unwrap();
    save(
        dir.join("fake-int8.safetensors").as_path(),
        &logreg_store,
        &fake,
    );

    let cases = catalogue::read(include_str!("catalogue.toml"));
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let places = BTreeMap::from([
        ("data", data.to_str().unwrap().to_string()),
        ("dir", dir.to_str().unwrap().to_string()),
        ("good", good.to_str().unwrap().to_string()),
        ("out", at("out.safetensors")),
        ("empty_set", empty_set.to_str().unwrap().to_string()),
    ]);
    catalogue::check(BINARY, &cases, &places);
}
