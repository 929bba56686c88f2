//! Behaviour of checkpoints: an exact round trip (buffers and metadata included), a file that is
//! plain safetensors, clear errors (naming the file and the tensor) for every kind of damaged or
//! mismatched file, and atomic writes.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use dl_nn::{
    load_checkpoint, save_checkpoint, save_tensors, Activation, Checkpoint, Dense, Layer, Mode,
    NnError, Sequential, VarStore,
};
use dl_tensor::{DType, Device, SeededRng, Tensor};
use safetensors::SafeTensors;

/// A model with every kind of variable: convolution and dense weights, batch-norm scales and
/// the running-statistics buffers, and the I64 batch counter.
fn model(seed: u64) -> Sequential {
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    Sequential::builder(&store.root(), &[1, 6, 6])
        .conv2d(3, 3, Activation::Relu)
        .unwrap()
        .batch_norm()
        .unwrap()
        .max_pool2d(2)
        .unwrap()
        .flatten()
        .unwrap()
        .dense(4, Activation::Softmax)
        .unwrap()
        .build()
}

/// Runs two training passes so that the batch-norm buffers leave their initial 0, 1 and 0.
fn train_a_little(model: &Sequential) {
    for seed in 0..2 {
        let x = SeededRng::new(seed)
            .normal_tensor((4, 1, 6, 6), 0.5, 2.0, &Device::Cpu)
            .unwrap();
        model.forward(&x, Mode::Train).unwrap();
    }
}

/// The metadata the tests save with their checkpoints.
fn metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("architecture".to_string(), "conv-bn-dense".to_string()),
        ("epochs".to_string(), "3".to_string()),
        ("vocabulary".to_string(), "[\"a\", \"b\"]".to_string()),
    ])
}

/// Every variable of a store as (name, dtype, shape, values as f64 bits or i64).
fn contents(store: &VarStore) -> Vec<(String, DType, Vec<usize>, Vec<u64>)> {
    store
        .parameters()
        .into_iter()
        .map(|parameter| {
            let tensor = parameter.var.as_tensor().flatten_all().unwrap();
            let values = if tensor.dtype() == DType::I64 {
                tensor
                    .to_vec1::<i64>()
                    .unwrap()
                    .into_iter()
                    .map(|value| value as u64)
                    .collect()
            } else {
                tensor
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    .into_iter()
                    .map(f64::to_bits)
                    .collect()
            };
            (
                parameter.name,
                parameter.var.dtype(),
                parameter.var.dims().to_vec(),
                values,
            )
        })
        .collect()
}

/// The elements of an f32 tensor, in row-major order.
fn f32_values(tensor: &Tensor) -> Vec<f32> {
    tensor.flatten_all().unwrap().to_vec1().unwrap()
}

/// A store holding one dense layer per (name, inputs, outputs) of `layers`.
fn dense_store(dtype: DType, layers: &[(&str, usize, usize)], seed: u64) -> VarStore {
    let store = VarStore::new(&Device::Cpu, dtype, seed);
    for &(name, inputs, outputs) in layers {
        Dense::new(&store.root().sub(name), inputs, outputs).unwrap();
    }
    store
}

/// Asserts a checkpoint error whose message names `file` and every one of `mentions`.
fn assert_checkpoint_error<T: std::fmt::Debug>(
    result: dl_nn::Result<T>,
    file: &Path,
    mentions: &[&str],
) {
    match result {
        Err(error @ NnError::Checkpoint { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&file.display().to_string()),
                "the message should name the file {}: {message}",
                file.display()
            );
            for mention in mentions {
                assert!(
                    message.contains(mention),
                    "the message should mention '{mention}': {message}"
                );
            }
        }
        other => panic!(
            "expected a checkpoint error for {}, got {other:?}",
            file.display()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Round trip and format
// ---------------------------------------------------------------------------------------------

#[test]
fn round_trip_restores_every_tensor_and_the_metadata() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("model.safetensors");
    let original = model(1);
    train_a_little(&original);
    save_checkpoint(&file, original.store(), &metadata()).unwrap();

    let restored = model(2);
    assert_ne!(contents(original.store()), contents(restored.store()));
    let read_metadata = load_checkpoint(&file, restored.store()).unwrap();
    assert_eq!(contents(original.store()), contents(restored.store()));
    for (key, value) in metadata() {
        assert_eq!(read_metadata.get(&key), Some(&value), "{key}");
    }
    assert_eq!(read_metadata.get("format").map(String::as_str), Some("pt"));

    // The buffers really were non-trivial and came back: the batch counter is 2 (I64).
    let tracked = restored
        .store()
        .get("batch_normalization.num_batches_tracked")
        .unwrap();
    assert_eq!(tracked.dtype(), DType::I64);
    assert_eq!(tracked.as_tensor().to_scalar::<i64>().unwrap(), 2);
    let running_var = f32_values(
        restored
            .store()
            .get("batch_normalization.running_var")
            .unwrap()
            .as_tensor(),
    );
    assert!(
        running_var.iter().all(|&value| value != 1.0),
        "{running_var:?}"
    );

    // Same weights, same predictions.
    let x = SeededRng::new(5)
        .normal_tensor((2, 1, 6, 6), 0.0, 1.0, &Device::Cpu)
        .unwrap();
    assert_eq!(
        f32_values(&original.predict(&x).unwrap()),
        f32_values(&restored.predict(&x).unwrap())
    );
}

#[test]
fn the_file_is_plain_safetensors_with_pytorch_names() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("model.safetensors");
    let original = model(3);
    train_a_little(&original);
    save_checkpoint(&file, original.store(), &metadata()).unwrap();

    let bytes = fs::read(&file).unwrap();
    let parsed = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = parsed.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut expected = original.store().names();
    expected.sort();
    assert_eq!(names, expected);
    let weight = parsed.tensor("conv2d.weight").unwrap();
    assert_eq!(weight.shape(), &[3, 1, 3, 3]);
    assert_eq!(weight.dtype(), safetensors::Dtype::F32);
    // The raw little-endian bytes are the weight's values.
    let stored: Vec<f32> = weight
        .data()
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect();
    let values = f32_values(original.store().get("conv2d.weight").unwrap().as_tensor());
    assert_eq!(stored, values);
    let counter = parsed
        .tensor("batch_normalization.num_batches_tracked")
        .unwrap();
    assert_eq!(counter.dtype(), safetensors::Dtype::I64);
    assert!(counter.shape().is_empty());
    assert_eq!(counter.data(), &2i64.to_le_bytes());

    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let header_metadata = header.metadata().clone().unwrap();
    assert_eq!(
        header_metadata.get("format").map(String::as_str),
        Some("pt")
    );
    assert_eq!(
        header_metadata.get("architecture").map(String::as_str),
        Some("conv-bn-dense")
    );
    assert_eq!(header_metadata.get("epochs").map(String::as_str), Some("3"));

    // Checkpoint::load gives the same tensors and metadata.
    let checkpoint = Checkpoint::load(&file).unwrap();
    assert_eq!(checkpoint.tensors.len(), expected.len());
    assert_eq!(checkpoint.metadata["architecture"], "conv-bn-dense");
    assert_eq!(checkpoint.tensors["conv2d.weight"].dims(), &[3, 1, 3, 3]);
}

#[test]
fn an_explicit_format_in_the_metadata_is_kept() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("tensors.safetensors");
    let tensors = vec![(
        "x".to_string(),
        Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap(),
    )];
    let metadata = BTreeMap::from([("format".to_string(), "np".to_string())]);
    save_tensors(&file, &tensors, &metadata).unwrap();
    let checkpoint = Checkpoint::load(&file).unwrap();
    assert_eq!(checkpoint.metadata["format"], "np");
    assert_eq!(
        checkpoint.tensors["x"].to_vec1::<f32>().unwrap(),
        vec![1.0, 2.0]
    );
}

// ---------------------------------------------------------------------------------------------
// Damaged files
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path().join("full.safetensors");
    let original = model(4);
    save_checkpoint(&source, original.store(), &metadata()).unwrap();
    let bytes = fs::read(&source).unwrap();
    let header_length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cuts = [
        0,
        1,
        7,
        8,
        8 + header_length / 2,
        8 + header_length,
        8 + header_length + 1,
        bytes.len() / 2,
        bytes.len() - 4,
        bytes.len() - 1,
    ];
    for cut in cuts {
        let file = directory.path().join(format!("cut_{cut}.safetensors"));
        fs::write(&file, &bytes[..cut]).unwrap();
        let store = model(5).store().clone();
        let before = contents(&store);
        assert_checkpoint_error(load_checkpoint(&file, &store), &file, &[]);
        // A failed load leaves the model as it was.
        assert_eq!(contents(&store), before, "cut at {cut}");
    }
}

#[test]
fn bad_headers_are_errors() {
    let directory = tempfile::tempdir().unwrap();
    let store = model(6).store().clone();
    // A plausible header length followed by garbage instead of JSON.
    let garbage = directory.path().join("garbage.safetensors");
    let mut bytes = 24u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"this is not json at all!");
    bytes.extend_from_slice(&[0xFF; 16]);
    fs::write(&garbage, &bytes).unwrap();
    assert_checkpoint_error(load_checkpoint(&garbage, &store), &garbage, &[]);
    // A header claiming to be huge (more than the file, and more than memory).
    for claimed in [u64::MAX, 1 << 40, 1000] {
        let huge = directory.path().join(format!("huge_{claimed}.safetensors"));
        let mut bytes = claimed.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{\"__metadata__\":{}}");
        fs::write(&huge, &bytes).unwrap();
        assert_checkpoint_error(load_checkpoint(&huge, &store), &huge, &[]);
    }
    // Valid JSON whose tensor offsets point past the end of the data.
    let offsets = directory.path().join("offsets.safetensors");
    let header = br#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 8]);
    fs::write(&offsets, &bytes).unwrap();
    assert_checkpoint_error(Checkpoint::load(&offsets), &offsets, &[]);
}

#[test]
fn a_text_file_is_not_a_checkpoint() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("notes.txt");
    fs::write(
        &file,
        "epoch 1: loss 0.31, accuracy 0.91\nepoch 2: loss 0.12\n",
    )
    .unwrap();
    let store = model(7).store().clone();
    assert_checkpoint_error(load_checkpoint(&file, &store), &file, &[]);
    // An empty file too.
    let empty = directory.path().join("empty.safetensors");
    fs::write(&empty, b"").unwrap();
    assert_checkpoint_error(load_checkpoint(&empty, &store), &empty, &[]);
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("never_written.safetensors");
    let store = model(8).store().clone();
    assert_checkpoint_error(load_checkpoint(&file, &store), &file, &[]);
    // A directory is not a checkpoint either.
    assert_checkpoint_error(
        load_checkpoint(directory.path(), &store),
        directory.path(),
        &[],
    );
}

// ---------------------------------------------------------------------------------------------
// Checkpoints of another model
// ---------------------------------------------------------------------------------------------

/// The dense layers of a checkpoint test model: (name, inputs, outputs).
type Layers<'a> = &'a [(&'a str, usize, usize)];

/// Saves a dense model of `saved` (dtype, layers; seed 1) as `name` in a fresh directory, then
/// asserts that loading it into a dense model of `loading` (seed 2) fails with an error naming
/// the file and every one of `mentions`, and copies nothing into that model. Returns the
/// directory (kept alive), the file and the saved store.
fn assert_mismatch_is_named(
    name: &str,
    saved: (DType, Layers),
    loading: (DType, Layers),
    mentions: &[&str],
) -> (tempfile::TempDir, PathBuf, VarStore) {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join(name);
    let saved = dense_store(saved.0, saved.1, 1);
    save_checkpoint(&file, &saved, &BTreeMap::new()).unwrap();
    let loading = dense_store(loading.0, loading.1, 2);
    let before = contents(&loading);
    assert_checkpoint_error(load_checkpoint(&file, &loading), &file, mentions);
    // Nothing was copied, not even the tensors that did fit.
    assert_eq!(contents(&loading), before);
    (directory, file, saved)
}

#[test]
fn a_missing_tensor_is_named() {
    assert_mismatch_is_named(
        "small.safetensors",
        (DType::F32, &[("hidden", 4, 3)]),
        (DType::F32, &[("hidden", 4, 3), ("output", 3, 2)]),
        &["output.weight", "missing"],
    );
}

#[test]
fn an_extra_tensor_is_named() {
    assert_mismatch_is_named(
        "large.safetensors",
        (DType::F32, &[("hidden", 4, 3), ("output", 3, 2)]),
        (DType::F32, &[("hidden", 4, 3)]),
        &["output."],
    );
}

#[test]
fn a_wrong_shape_is_named_with_both_shapes() {
    assert_mismatch_is_named(
        "four_to_three.safetensors",
        (DType::F32, &[("hidden", 4, 3)]),
        (DType::F32, &[("hidden", 4, 2)]),
        &["hidden.weight", "[3, 4]", "[2, 4]"],
    );
}

#[test]
fn a_wrong_dtype_is_named() {
    let (_directory, file, saved) = assert_mismatch_is_named(
        "double.safetensors",
        (DType::F64, &[("hidden", 4, 3)]),
        (DType::F32, &[("hidden", 4, 3)]),
        &["hidden.weight", "F64", "F32"],
    );
    // The same file loads into an f64 model.
    let double = dense_store(DType::F64, &[("hidden", 4, 3)], 3);
    load_checkpoint(&file, &double).unwrap();
    assert_eq!(contents(&double), contents(&saved));
}

// ---------------------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------------------

/// Asserts that `directory` holds `name` and nothing else (no temporary file left behind).
fn assert_only_file(directory: &Path, name: &str) {
    let names: Vec<String> = fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![name]);
}

/// A store with one f32 dense layer "hidden" of 4 inputs and 3 outputs, drawn from `seed`.
fn hidden_store(seed: u64) -> VarStore {
    dense_store(DType::F32, &[("hidden", 4, 3)], seed)
}

#[test]
fn saving_leaves_no_temporary_file() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("model.safetensors");
    let store = hidden_store(1);
    save_checkpoint(&file, &store, &metadata()).unwrap();
    save_checkpoint(&file, &store, &metadata()).unwrap();
    assert_only_file(directory.path(), "model.safetensors");
}

#[test]
fn saving_creates_missing_directories() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory
        .path()
        .join("runs")
        .join("mnist")
        .join("best.safetensors");
    let store = hidden_store(1);
    save_checkpoint(&file, &store, &metadata()).unwrap();
    assert!(file.is_file());
    assert_only_file(file.parent().unwrap(), "best.safetensors");
    let restored = hidden_store(2);
    load_checkpoint(&file, &restored).unwrap();
    assert_eq!(contents(&restored), contents(&store));
}

#[test]
fn saving_over_a_checkpoint_replaces_it() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("model.safetensors");
    let save_epoch = |store: &VarStore, epoch: &str| {
        let metadata = BTreeMap::from([("epoch".to_string(), epoch.to_string())]);
        save_checkpoint(&file, store, &metadata).unwrap();
    };
    let first = hidden_store(1);
    save_epoch(&first, "1");
    let second = hidden_store(2);
    save_epoch(&second, "2");
    let restored = hidden_store(3);
    let read_metadata = load_checkpoint(&file, &restored).unwrap();
    assert_eq!(read_metadata["epoch"], "2");
    assert_eq!(contents(&restored), contents(&second));
    assert_ne!(contents(&restored), contents(&first));
    assert_only_file(directory.path(), "model.safetensors");
}

#[test]
fn saving_where_a_directory_cannot_be_created_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    // A regular file stands where the parent directory should be.
    let blocker = directory.path().join("blocker");
    fs::write(&blocker, b"x").unwrap();
    let file = blocker.join("model.safetensors");
    let store = hidden_store(1);
    assert_checkpoint_error(save_checkpoint(&file, &store, &metadata()), &file, &[]);
}

#[test]
fn identical_models_and_metadata_give_identical_bytes() {
    // The safetensors crate writes its metadata map in hash order; our header is canonical
    // (sorted keys), so two saves of the same model are byte-identical across processes too.
    let directory = tempfile::tempdir().unwrap();
    let metadata: std::collections::BTreeMap<String, String> = (0..20)
        .map(|index| (format!("key{index}"), format!("value{index}")))
        .collect();
    let mut files = Vec::new();
    for name in ["a.safetensors", "b.safetensors"] {
        let store = dl_nn::VarStore::new(&dl_tensor::Device::Cpu, dl_tensor::DType::F32, 5);
        dl_nn::Dense::new(&store.root().sub("hidden"), 6, 4).unwrap();
        dl_nn::Dense::new(&store.root().sub("out"), 4, 2).unwrap();
        let path = directory.path().join(name);
        dl_nn::save_checkpoint(&path, &store, &metadata).unwrap();
        files.push(std::fs::read(&path).unwrap());
    }
    assert_eq!(files[0], files[1]);
    let header_length = u64::from_le_bytes(files[0][..8].try_into().unwrap()) as usize;
    assert_eq!(header_length % 8, 0, "the header is padded to 8 bytes");
    let header = std::str::from_utf8(&files[0][8..8 + header_length]).unwrap();
    let key3 = header.find("\"key3\"").unwrap();
    let key10 = header.find("\"key10\"").unwrap();
    assert!(key10 < key3, "metadata keys are sorted: {header}");
}
