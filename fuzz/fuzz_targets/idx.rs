//! Fuzz target: any bytes given to the IDX parser yield `Ok` or `Err`, never a panic, a hang
//! or an allocation beyond what the header announces; an `Ok` array is consistent, and writing
//! it back (`IdxArray::to_bytes`) reads as the same array (the writer's round trip).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(array) = dl_data::parse_idx(bytes, Path::new("fuzz.idx")) {
        assert!((1..=4).contains(&array.dims.len()));
        assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
        let written = array.to_bytes();
        assert_eq!(dl_data::parse_idx(&written, Path::new("written.idx")).unwrap(), array);
    }
});
