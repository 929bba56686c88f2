//! Fuzz target: any bytes read as a classifier file of any precision — an int8 checkpoint, a
//! compact model file, an ensemble bundle of those, or a float checkpoint (the recipe parsed, the
//! architecture rebuilt, every tensor and coded weight checked) — yield a model or an error,
//! never a panic, an abort or an allocation of the sizes a lying header claims. A model that
//! loads also runs one image.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.int8");
    let device = dl_tensor::Device::Cpu;
    if let Ok(loaded) = dl_compress::classifier_from_bytes(path, bytes, &device) {
        let image = dl_tensor::Tensor::zeros((1, 1, 28, 28), dl_tensor::DType::F32, &device)
            .expect("a zero image");
        let _ = loaded.layer().forward(&image, dl_nn::Mode::Eval);
    }
});
