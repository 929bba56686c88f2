//! Fuzz target: any bytes read as an optimizer state and loaded into each optimizer yield `Ok`
//! or `Err`, never a panic; a state that loads saves again to bytes that read back the same.
#![no_main]

use std::path::Path;

use dl_optim::{Adam, AdamConfig, Optimizer, OptimizerState, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.optimizer.safetensors");
    let Ok(state) = OptimizerState::from_bytes(bytes, path) else {
        return;
    };
    let mut optimizers: [Box<dyn Optimizer>; 3] = [
        Box::new(Adam::new(AdamConfig::default()).unwrap()),
        Box::new(Sgd::new(SgdConfig::new(0.1)).unwrap()),
        Box::new(RmsProp::new(RmsPropConfig::default()).unwrap()),
    ];
    for optimizer in &mut optimizers {
        if optimizer.load_state(&state).is_ok() {
            let saved = optimizer.state().unwrap().to_bytes().unwrap();
            let again = OptimizerState::from_bytes(&saved, path).unwrap();
            assert_eq!(again.values, optimizer.state().unwrap().values);
        }
    }
});
