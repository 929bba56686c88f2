//! The compact format: pruned int8 models round-trip bit for bit through both weight codings
//! (including runs of more than 255 zeros), the file is far smaller than int8 safetensors for a
//! sparse model, and damaged files are refused with a message naming the problem.

use std::collections::BTreeMap;
use std::path::Path;

use dl_compress::{
    compact_metadata, decode_compact, encode_compact, encode_int8, prunable_weights,
    prune_by_magnitude, Calibration, PruneAmount, PruneScope, QuantizedModel, Sparsity,
};
use dl_nn::{Activation, Sequential, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn model(seed: u64) -> dl_nn::Result<(VarStore, Sequential)> {
    let store = VarStore::new(&Device::Cpu, DType::F32, seed);
    let model = Sequential::builder(&store.root(), &[1, 12, 12])
        .conv2d(6, 3, Activation::Relu)?
        .max_pool2d(2)?
        .flatten()?
        .dense(40, Activation::Relu)?
        .dense(4, Activation::Softmax)?
        .build();
    Ok((store, model))
}

fn images(count: usize, seed: u64) -> Tensor {
    let mut rng = SeededRng::new(seed);
    let values: Vec<f32> = (0..count * 144).map(|_| rng.uniform()).collect();
    Tensor::from_vec(values, (count, 1, 12, 12), &Device::Cpu).unwrap()
}

fn quantized(
    seed: u64,
    sparsity: f64,
) -> Result<(Sequential, QuantizedModel), Box<dyn std::error::Error>> {
    let (_store, model) = model(seed)?;
    let weights = prunable_weights(&model, Default::default())?;
    if sparsity > 0.0 {
        prune_by_magnitude(
            &weights,
            PruneAmount::Fraction(Sparsity::new(sparsity)?),
            PruneScope::Global,
        )?;
    }
    let quantized = QuantizedModel::calibrate(&model, &images(32, seed), Calibration::MinMax)?;
    Ok((model, quantized))
}

fn metadata() -> BTreeMap<String, String> {
    BTreeMap::from([("quantization".to_string(), "{}".to_string())])
}

#[test]
fn round_trips_bit_for_bit_at_every_sparsity() -> TestResult {
    let path = Path::new("model.dlc");
    for (seed, sparsity) in [(1, 0.0), (2, 0.5), (3, 0.9), (4, 0.995)] {
        let (architecture, model) = quantized(seed, sparsity)?;
        let bytes = encode_compact(&model, &metadata())?;
        let (decoded, read) = decode_compact(path, &bytes, &architecture)?;
        assert_eq!(read, metadata());
        assert_eq!(compact_metadata(path, &bytes)?, metadata());
        for (a, b) in decoded.layers().iter().zip(model.layers()) {
            assert_eq!(a.weights, b.weights, "sparsity {sparsity}");
            assert_eq!(a.weight_scales, b.weight_scales);
            assert_eq!(a.bias, b.bias);
            assert_eq!(
                (a.input_scale, a.input_zero_point),
                (b.input_scale, b.input_zero_point)
            );
        }
        let probe = images(5, 100);
        assert_eq!(
            decoded.forward(&probe)?.to_vec2::<f32>()?,
            model.forward(&probe)?.to_vec2::<f32>()?
        );
    }
    Ok(())
}

#[test]
fn long_zero_runs_are_bridged() -> TestResult {
    // 99.5% sparsity on a 40 x 600 dense weight leaves gaps far longer than 255.
    let (architecture, model) = quantized(5, 0.995)?;
    let dense = &model.layers()[1];
    let longest_run = dense
        .weights
        .split(|weight| *weight != 0)
        .map(<[i8]>::len)
        .max()
        .unwrap();
    assert!(longest_run > 255, "{longest_run}");
    let bytes = encode_compact(&model, &metadata())?;
    let (decoded, _) = decode_compact(Path::new("m.dlc"), &bytes, &architecture)?;
    assert_eq!(decoded.layers()[1].weights, dense.weights);
    Ok(())
}

#[test]
fn a_sparse_model_is_much_smaller_than_int8_safetensors() -> TestResult {
    let (_, model) = quantized(6, 0.95)?;
    let compact = encode_compact(&model, &metadata())?.len();
    let int8 = encode_int8(&model, &metadata())?.len();
    assert!(compact * 5 < int8, "compact {compact} bytes, int8 {int8}");
    Ok(())
}

#[test]
fn damaged_compact_files_are_refused() -> TestResult {
    let (architecture, model) = quantized(7, 0.9)?;
    let path = Path::new("damaged.dlc");
    let bytes = encode_compact(&model, &metadata())?;
    let error = |bytes: &[u8]| {
        decode_compact(path, bytes, &architecture)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert!(error(b"PK\x03\x04 zip").contains("DLCOMPCT"));
    assert!(error(&bytes[..bytes.len() - 7]).contains("decompress"));
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5A;
    assert!(error(&flipped).contains("damaged.dlc"));
    // A body written by hand: a header that promises more than the file holds.
    let recompress = |body: &[u8]| {
        let mut file = b"DLCOMPCT".to_vec();
        file.extend(zstd::bulk::compress(body, 3).unwrap());
        file
    };
    let header = br#"{"version":1,"metadata":{},"layers":[{"name":"conv2d","shape":[6,1,3,3],"encoding":"gaps","weight_bytes":4,"entries":2}]}"#;
    let mut body = (header.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(header);
    body.extend([60, 1, 0, 1]); // a gap past the 54 weights
    assert!(error(&recompress(&body)).contains("past the weight"));
    body.truncate(body.len() - 4);
    body.extend([0, 1, 0, 1]);
    assert!(error(&recompress(&body)).contains("ends inside the scales of 'conv2d'"));
    let future = br#"{"version":9,"metadata":{},"layers":[]}"#;
    let mut body = (future.len() as u32).to_le_bytes().to_vec();
    body.extend_from_slice(future);
    assert!(error(&recompress(&body)).contains("version 9"));
    let mut body = 1000u32.to_le_bytes().to_vec();
    body.extend_from_slice(b"{}");
    assert!(error(&recompress(&body)).contains("inside its header"));
    // another architecture
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let other = Sequential::builder(&store.root(), &[1, 12, 12])
        .flatten()?
        .dense(4, Activation::Softmax)?
        .build();
    let message = decode_compact(path, &bytes, &other)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(message.contains("expected layer 'dense'"), "{message}");
    Ok(())
}
