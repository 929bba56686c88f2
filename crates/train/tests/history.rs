//! Reading a training history back: what the fuzzer found (see fuzz/fuzz_targets/history.rs)
//! stays fixed.

use std::path::Path;

use dl_train::History;

/// The fixed columns of every history.
const HEADER: &str = "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,learning_rate,seconds,examples_per_second";

#[test]
fn metric_names_that_would_not_read_back_are_refused() {
    // Found by fuzzing: a carriage return, a NUL or a repeated name in a metric's column name
    // read as a history that did not write back to the same text.
    for names in [",d_los\r,d_loss", ",d\0x", ",g_loss,g_loss", ",", ",a b"] {
        let text = format!("{HEADER}{names}\n1,1.2,,,,2e-4,3.0,100.0,0.9,0.6\n");
        let error = History::from_csv(&text, Path::new("fuzz.csv")).unwrap_err();
        assert!(
            error.to_string().contains("unexpected header columns"),
            "{error}"
        );
    }
}

#[test]
fn a_history_with_metrics_reads_back_as_written() {
    let text = format!("{HEADER},D(x),g_loss\n1,1.200000,,,,2e-4,3.000,100.0,0.900000,0.600000\n");
    let history = History::from_csv(&text, Path::new("gan.csv")).unwrap();
    assert_eq!(history.epochs[0].metrics["D(x)"], 0.9);
    assert_eq!(history.to_csv(), text);
}
