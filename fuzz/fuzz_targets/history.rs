//! Fuzz target: any text read as a training history yields `Ok` or `Err`, never a panic; a
//! history that reads writes back to CSV that reads as the same history (a round trip).
#![no_main]

use std::path::Path;

use dl_train::History;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new("fuzz.csv");
    if let Ok(history) = History::from_csv(text, path) {
        let written = history.to_csv();
        let again = History::from_csv(&written, path).expect("a written history reads back");
        assert_eq!(again.to_csv(), written);
    }
});
