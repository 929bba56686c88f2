//! The switch between the fast kernels and plain Candle: `DL_PLAIN_CANDLE=1` turns the kernels
//! off when the program starts, and `kernels::set_enabled` overrides it either way.
//!
//! A single test in its own binary: the switch and the environment are process-wide.

use dl_tensor::kernels;
use dl_tensor::{DType, Device, Tensor};

#[test]
fn the_environment_variable_and_set_enabled_choose_the_path() {
    // Read once, at the first question: set it before anything asks.
    std::env::set_var(kernels::PLAIN_CANDLE_VARIABLE, "1");
    assert!(
        !kernels::enabled(),
        "DL_PLAIN_CANDLE=1 turns the kernels off"
    );
    let cpu_f32 = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
    assert!(!kernels::applies_to(&[&cpu_f32]));
    assert!(
        kernels::is_supported(&[&cpu_f32]),
        "supported, only switched off"
    );

    kernels::set_enabled(true);
    assert!(kernels::enabled());
    assert!(kernels::applies_to(&[&cpu_f32]));
    // Other dtypes, and mixed dtypes, are never for the kernels.
    let cpu_f16 = cpu_f32.to_dtype(DType::F16).unwrap();
    let cpu_f64 = cpu_f32.to_dtype(DType::F64).unwrap();
    assert!(!kernels::applies_to(&[&cpu_f16]));
    assert!(!kernels::applies_to(&[&cpu_f32, &cpu_f64]));
    assert!(kernels::applies_to(&[&cpu_f64, &cpu_f64]));

    kernels::set_enabled(false);
    assert!(!kernels::enabled());
}
