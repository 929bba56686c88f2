//! Fuzz target, the checkpoint writer's round trip: tensors and metadata made from the input
//! (names, shapes, values, metadata text) are encoded as this project writes checkpoints and
//! read back the same, bit for bit.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use dl_tensor::{Device, Tensor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // Each piece: a name length, a name, a row count, a column count, then the values.
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    let mut rest = bytes;
    while let [name_length, more @ ..] = rest {
        let name_length = usize::from(*name_length % 16);
        let Some((name, more)) = more.split_at_checked(name_length) else { break };
        let [rows, columns, more @ ..] = more else { break };
        let (rows, columns) = (usize::from(*rows % 8), usize::from(*columns % 8));
        let Some((values, more)) = more.split_at_checked(rows * columns * 4) else { break };
        let name = String::from_utf8_lossy(name).into_owned();
        let values: Vec<f32> = values
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
            .collect();
        let tensor = Tensor::from_vec(values, (rows, columns), &Device::Cpu).unwrap();
        metadata.insert(format!("note.{name}"), name.chars().rev().collect::<String>());
        tensors.insert(name, tensor);
        rest = more;
    }
    let list: Vec<(String, Tensor)> = tensors.clone().into_iter().collect();
    let Ok(encoded) = dl_tensor::encode_safetensors(&list, &metadata) else {
        return;
    };
    let read = dl_nn::Checkpoint::from_bytes(&encoded, Path::new("fuzz.safetensors"))
        .expect("what was written reads back");
    assert_eq!(read.metadata, metadata);
    assert_eq!(read.tensors.len(), tensors.len());
    for (name, tensor) in &tensors {
        let back = &read.tensors[name];
        assert_eq!(back.dims(), tensor.dims());
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(back), bits(tensor), "{name}");
    }
});
