//! Fuzz target: any bytes read as an int8 checkpoint or a compact model file (the recipe parsed,
//! the architecture rebuilt, every tensor and coded weight checked) yield a model or an error,
//! never a panic, an abort or an allocation of the sizes a lying header claims. A model that
//! loads also runs one image.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.int8");
    if let Ok(Some(loaded)) = dl_compress::int8_classifier_from_bytes(path, bytes) {
        let image = dl_tensor::Tensor::zeros((1, 1, 28, 28), dl_tensor::DType::F32, &dl_tensor::Device::Cpu)
            .expect("a zero image");
        let _ = loaded.model.forward(&image);
    }
});
