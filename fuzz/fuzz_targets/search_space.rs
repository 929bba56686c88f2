//! Fuzz target: any text read as a search space (TOML) is a space or an error, never a panic;
//! a space's random samples lie in it, and its grid (when it has one) is finite.
#![no_main]

use dl_tune::{Direction, Sampler, SamplerKind, SearchSpace};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(space) = SearchSpace::from_toml(text) else {
        return;
    };
    for kind in [SamplerKind::Random, SamplerKind::Tpe] {
        let sampler = Sampler::new(kind, &space, 1).expect("random and TPE take any space");
        for trial in 0..3 {
            let config = sampler.sample(&space, trial, &[], Direction::Maximize).expect("a config");
            assert!(space.contains(&config), "{config:?}");
        }
    }
    if let Ok(grid) = Sampler::new(SamplerKind::Grid, &space, 1) {
        let size = grid.capacity().expect("a grid has a size");
        if let Some(config) = grid.sample(&space, 0, &[], Direction::Maximize) {
            assert!(size > 0 && space.contains(&config), "{config:?}");
        }
    }
});
