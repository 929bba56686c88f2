//! Fuzz target: any bytes decoded as a digit image (PNG or JPEG) and prepared as MNIST input
//! yield 784 values in 0..1 or an error, never a panic or more memory than the decoder limits.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(pixels) = dl_data::decode_digit(bytes, Path::new("fuzz.png")) {
        assert_eq!(pixels.len(), 28 * 28);
        assert!(pixels.iter().all(|value| (0.0..=1.0).contains(value)));
    }
});
