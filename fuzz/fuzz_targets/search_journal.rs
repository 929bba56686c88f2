//! Fuzz target: any bytes replayed as a search journal give its trials or an error naming the
//! line, never a panic; replayed trials are numbered in order and their reports are numbers.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(replay) = dl_tune::replay_journal(Path::new("fuzz.jsonl"), bytes) {
        assert!(replay.valid_bytes as usize <= bytes.len());
        for (index, trial) in replay.trials.iter().enumerate() {
            assert_eq!(trial.id, index);
            assert!(trial.reports.iter().all(|(_, value)| value.is_finite()));
        }
    }
});
