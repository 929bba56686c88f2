//! Fuzz target: any bytes as a corpus (UTF-8 checked, a character tokenizer built and used) and
//! as a tokenizer file (JSON read, then used) yield `Ok` or `Err`, never a panic; a corpus's
//! character tokenizer encodes it and decodes back to the same text.
#![no_main]

use std::path::Path;

use dl_data::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = dl_data::corpus_from_bytes(bytes.to_vec(), Path::new("fuzz.txt")) {
        if let Ok(tokenizer) = Tokenizer::char_level(&text) {
            let ids = tokenizer.encode(&text).expect("a corpus's own characters encode");
            assert_eq!(tokenizer.decode(&ids).unwrap(), text);
        }
    }
    if let Ok(json) = std::str::from_utf8(bytes) {
        if let Ok(tokenizer) = Tokenizer::from_json(json) {
            if let Ok(ids) = tokenizer.encode("The meaning of life is") {
                let _ = tokenizer.decode(&ids);
            }
        }
    }
});
