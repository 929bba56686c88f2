//! `dl_tensor::threads::configure`: which thread counts win, and that they reach the variables
//! Rayon and Candle read. One test function, because the environment is shared by the whole
//! test process.

use dl_tensor::threads::{configure, CANDLE_VARIABLE, RAYON_VARIABLE};

#[test]
fn the_flag_beats_the_variable_which_beats_the_default() {
    std::env::remove_var(RAYON_VARIABLE);
    std::env::remove_var(CANDLE_VARIABLE);
    let default = configure(None).unwrap();
    assert!(default.compute_threads >= 1);
    assert_eq!(default.source, "the physical cores");
    assert_eq!(
        default.elementwise_threads, 1,
        "Candle's pool stays on the calling thread"
    );
    assert_eq!(
        std::env::var(RAYON_VARIABLE).unwrap(),
        default.compute_threads.to_string()
    );
    assert_eq!(std::env::var(CANDLE_VARIABLE).unwrap(), "1");

    std::env::set_var(RAYON_VARIABLE, "5");
    let from_variable = configure(None).unwrap();
    assert_eq!(from_variable.compute_threads, 5);
    assert!(from_variable.source.contains(RAYON_VARIABLE));

    let from_flag = configure(Some(3)).unwrap();
    assert_eq!(
        (from_flag.compute_threads, from_flag.source.as_str()),
        (3, "--threads")
    );
    assert_eq!(std::env::var(RAYON_VARIABLE).unwrap(), "3");

    // A zero or unreadable value is ignored, as Rayon and Candle ignore it.
    std::env::set_var(RAYON_VARIABLE, "0");
    std::env::set_var(CANDLE_VARIABLE, "four");
    let ignored = configure(Some(0)).unwrap();
    assert_eq!(ignored.source, "the physical cores");
    assert_eq!(ignored.elementwise_threads, 1);

    std::env::set_var(CANDLE_VARIABLE, "4");
    let candle = configure(Some(2)).unwrap();
    assert_eq!(candle.elementwise_threads, 4);
    assert_eq!(
        candle.to_string(),
        "2 compute threads (--threads), 4 for Candle's element-wise operations"
    );
}
