//! Fuzz target: any text read as a dataset manifest (TOML) yields `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = dl_data::Manifest::from_toml(text);
    }
});
