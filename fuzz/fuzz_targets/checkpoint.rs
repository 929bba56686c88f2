//! Fuzz target: any bytes read as a checkpoint and rebuilt into a model (the recipe parsed, the
//! sizes checked against the stored tensors, the weights loaded) yield a model or an error,
//! never a panic, an abort or an allocation of the sizes a lying header claims.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    if let Ok(checkpoint) = dl_nn::Checkpoint::from_bytes(bytes, path) {
        let _ = dl_models::from_checkpoint(path, checkpoint, &dl_tensor::Device::Cpu);
    }
});
