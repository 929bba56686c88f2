//! A catalogue of bad inputs — files, flags and paths — each of which must end the program with
//! a non-zero status and a message that names the thing and the trouble, never a panic.
//! (text-gen's own catalogue is in its tests; together they hold more than sixty cases.)

mod common;

use std::{collections::BTreeMap, path::Path};

use common::{
    catalogue::{case, check, Case},
    synthetic_data, text, train, write_set, BINARY,
};
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
    let d = data.to_str().unwrap();
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

    let good = good.to_str().unwrap().to_string();
    let out = at("out.safetensors");
    let train_with = |flags: &[&str]| -> Vec<String> {
        let mut arguments = vec!["train".to_string(), "--offline".into()];
        arguments.extend(flags.iter().map(|flag| flag.to_string()));
        for (flag, default) in [
            ("--data-dir", d),
            ("--out", out.as_str()),
            ("--model", "logreg"),
        ] {
            if !flags.contains(&flag) {
                arguments.extend([flag.to_string(), default.to_string()]);
            }
        }
        arguments
    };
    let evaluate = |checkpoint: &str| -> Vec<String> {
        [
            "evaluate",
            "--data-dir",
            d,
            "--offline",
            "--checkpoint",
            checkpoint,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let predict = |image: &str| -> Vec<String> {
        [
            "predict",
            "--data-dir",
            d,
            "--offline",
            "--checkpoint",
            &good,
            image,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let with = Case::new;
    let cases = vec![
        with(
            "zero epochs",
            train_with(&["--epochs", "0"]),
            &["--epochs must be positive"],
        ),
        with(
            "zero batch",
            train_with(&["--batch-size", "0"]),
            &["--batch-size"],
        ),
        with(
            "split ≥ 1",
            train_with(&["--validation-split", "1.5"]),
            &["--validation-split must be in [0, 1)"],
        ),
        with(
            "early stopping without validation",
            train_with(&["--early-stopping", "2"]),
            &["--validation-split"],
        ),
        with(
            "unknown schedule",
            train_with(&["--schedule", "sideways"]),
            &["sideways"],
        ),
        with(
            "unknown device",
            train_with(&["--device", "tpu"]),
            &["unknown device 'tpu'"],
        ),
        with(
            "negative learning rate",
            train_with(&["--learning-rate=-1"]),
            &["learning_rate"],
        ),
        with(
            "NaN learning rate",
            train_with(&["--learning-rate", "NaN"]),
            &["learning_rate"],
        ),
        with(
            "negative weight decay",
            train_with(&["--weight-decay=-1"]),
            &["weight_decay"],
        ),
        with(
            "dropout ≥ 1",
            train_with(&["--model", "mlp", "--dropout", "1.5"]),
            &["1.5"],
        ),
        with(
            "unknown model",
            train_with(&["--model", "resnet"]),
            &["resnet"],
        ),
        with(
            "unknown optimizer",
            train_with(&["--optimizer", "lion"]),
            &["lion"],
        ),
        with(
            "unknown dataset",
            train_with(&["--dataset", "imagenet"]),
            &["imagenet"],
        ),
        with(
            "too many threads",
            train_with(&["--threads", "100000"]),
            &["--threads 100000", "at most 1024"],
        ),
        with(
            "out not a checkpoint name",
            train_with(&["--out", &at("model.png")]),
            &["model.png", "must end in .safetensors"],
        ),
        with(
            "out under a file",
            train_with(&["--out", &format!("{}/model.safetensors", at("notes.txt"))]),
            &["notes.txt", "cannot write there"],
        ),
        with(
            "out is someone's file",
            train_with(&["--out", &at("taken.safetensors")]),
            &["taken.safetensors", "not a file this program wrote"],
        ),
        with(
            "out's history is someone's file",
            train_with(&["--out", &at("mine.safetensors")]),
            &["mine.csv", "not a file this program wrote"],
        ),
        with(
            "resume a missing file",
            train_with(&["--resume", &at("absent.safetensors")]),
            &["absent.safetensors", "cannot read"],
        ),
        with(
            "resume notes",
            train_with(&["--resume", &at("notes.safetensors")]),
            &["notes.safetensors", "not a valid safetensors file"],
        ),
        with(
            "resume a truncated file",
            train_with(&["--resume", &at("truncated.safetensors")]),
            &["truncated.safetensors"],
        ),
        with(
            "resume a language model",
            train_with(&["--resume", &at("text.safetensors")]),
            &["text.safetensors", "it holds a language model"],
        ),
        with(
            "resume a foreign checkpoint",
            train_with(&["--resume", &at("foreign.safetensors")]),
            &["foreign.safetensors", "not a mnist-classifier checkpoint"],
        ),
        with(
            "no training image",
            [
                "train",
                "--data-dir",
                empty_set.to_str().unwrap(),
                "--offline",
                "--out",
                &at("e.safetensors"),
            ]
            .map(str::to_string)
            .to_vec(),
            &["training set has 0 images"],
        ),
        with(
            "fewer images than a batch",
            train_with(&["--batch-size", "1000"]),
            &["400 images", "--batch-size 1000"],
        ),
        with(
            "no data",
            train_with(&["--data-dir", &at("nothing-here")]),
            &["nothing-here", "cargo xtask download-data"],
        ),
        with(
            "evaluate a missing file",
            evaluate(&at("absent.safetensors")),
            &["absent.safetensors", "cannot read"],
        ),
        with(
            "evaluate notes",
            evaluate(&at("notes.safetensors")),
            &["notes.safetensors", "not a valid safetensors file"],
        ),
        with(
            "evaluate a truncated file",
            evaluate(&at("truncated.safetensors")),
            &["truncated.safetensors"],
        ),
        with(
            "evaluate a foreign checkpoint",
            evaluate(&at("foreign.safetensors")),
            &["foreign.safetensors", "not a mnist-classifier checkpoint"],
        ),
        with(
            "evaluate a language model",
            evaluate(&at("text.safetensors")),
            &["text.safetensors", "it holds a language model"],
        ),
        with(
            "evaluate other weights",
            evaluate(&at("mismatched.safetensors")),
            &["mismatched.safetensors", "has shape"],
        ),
        with(
            "evaluate a broken recipe",
            evaluate(&at("bad-recipe.safetensors")),
            &["bad-recipe.safetensors", "'recipe' cannot be read"],
        ),
        with(
            "evaluate NaN weights",
            evaluate(&at("nan.safetensors")),
            &["nan.safetensors", "dense.weight", "NaN or infinite"],
        ),
        with(
            "evaluate with zero batch",
            [&evaluate(&good)[..], &["--batch-size".into(), "0".into()]].concat(),
            &["--batch-size must be positive"],
        ),
        with(
            "evaluate on a missing data dir",
            [
                "evaluate",
                "--data-dir",
                &at("nothing-here"),
                "--offline",
                "--checkpoint",
                &good,
            ]
            .map(str::to_string)
            .to_vec(),
            &["nothing-here"],
        ),
        with(
            "evaluate on an unknown device",
            [&evaluate(&good)[..], &["--device".into(), "tpu".into()]].concat(),
            &["unknown device 'tpu'"],
        ),
        with(
            "predict nothing",
            ["predict", "--checkpoint", &good]
                .map(str::to_string)
                .to_vec(),
            &["nothing to classify"],
        ),
        with(
            "predict a test image past the end",
            [
                "predict",
                "--data-dir",
                d,
                "--offline",
                "--checkpoint",
                &good,
                "--index",
                "100000",
            ]
            .map(str::to_string)
            .to_vec(),
            &["test image 100000", "only 100 test images (0..=99)"],
        ),
        with(
            "predict a missing image",
            predict(&at("absent.png")),
            &["absent.png", "No such file"],
        ),
        with(
            "predict a text file",
            predict(&at("words.png")),
            &["words.png", "not a readable PNG or JPEG"],
        ),
        with(
            "predict a blank image",
            predict(&at("blank.png")),
            &["blank.png", "blank"],
        ),
        with(
            "predict a huge image",
            predict(&at("huge.png")),
            &["huge.png", "23000 x 23000", "megapixels"],
        ),
        with(
            "predict an arithmetic JPEG",
            predict(&at("arithmetic.jpg")),
            &["arithmetic.jpg", "arithmetic-coded JPEG"],
        ),
        with(
            "predict a truncated PNG",
            predict(&at("truncated.png")),
            &["truncated.png", "not a readable PNG or JPEG"],
        ),
        with(
            "predict with a missing checkpoint",
            [
                "predict",
                "--checkpoint",
                &at("absent.safetensors"),
                "x.png",
            ]
            .map(str::to_string)
            .to_vec(),
            &["absent.safetensors"],
        ),
        with(
            "summary of an unknown model",
            ["summary", "--model", "vgg"].map(str::to_string).to_vec(),
            &["vgg"],
        ),
    ];
    let cases: Vec<Case> = cases
        .into_iter()
        .chain([case("unknown subcommand", &["fly"], &["fly"])])
        .collect();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    check(BINARY, &cases);
}
