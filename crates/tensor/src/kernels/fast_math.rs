//! Fast, vectorisable elementary functions: the one home of the exponential, σ and tanh that
//! the LSTM kernels (`gate_math.rs`) and the plain-Rust inference path (`dl_nn::LstmInference`)
//! share. The C library's `expf` is a call the compiler cannot vectorise; this one is a
//! polynomial the compiler turns into SIMD instructions (Cody & Waite's argument reduction,
//! Cephes' coefficients).

use super::Real;

/// σ(x) = 1 / (1 + e^(−x)).
#[inline(always)]
pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).fast_exp())
}

/// tanh x = 1 − 2 / (e^(2x) + 1): one exponential. Near 0 it loses relative but not absolute
/// precision (within a few units of the last place of 1, about 1e-7 in f32), which is all an
/// LSTM's products can see. Large |x| gives ±1.
#[inline(always)]
pub fn tanh<T: Real>(x: T) -> T {
    let two = T::one() + T::one();
    T::one() - two / ((two * x).fast_exp() + T::one())
}

/// e^x in `f32` to within 2 units in the last place, with no branch and no library call, so
/// that a loop of it vectorises: x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r from a degree-7
/// polynomial (the Cephes `expf` coefficients, whose last one rounds to ½ in f32), times 2^n built in the exponent bits. Inputs
/// are clamped to [−87.3, 88.3]: beyond them e^x is below the smallest normal number or above
/// the largest, and the result saturates (to about 1e−38 and 2e38) instead of 0 and ∞. NaN
/// gives NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HIGH is exact for the n that occur.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer (SSE2 has no round).
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2_E + ROUNDER) - ROUNDER;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let r2 = r * r;
    let polynomial =
        ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 1.666_666_5e-1)
            * r
            + 0.5;
    let e_r = polynomial * r2 + r + 1.0;
    let two_to_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e_r * two_to_n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_exponential_is_within_two_ulp_of_the_library() {
        let mut worst = 0f64;
        for step in -87_000..=88_000 {
            let x = step as f32 * 1e-3 + 0.000_37;
            let exact = (x as f64).exp();
            let error = ((exp_f32(x) as f64 - exact) / exact).abs();
            worst = worst.max(error);
        }
        // One unit in the last place of an f32 is 2⁻²³ ≈ 1.19e-7 relative.
        assert!(worst < 2.0 * 1.2e-7, "worst relative error {worst:e}");
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(1000.0).is_finite() && exp_f32(1000.0) > 1e38);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn sigmoid_and_tanh_match_their_definitions_in_f32() {
        for step in -2000..=2000 {
            let x = step as f32 * 0.01;
            let sigmoid_exact = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - sigmoid_exact).abs() < 2e-7, "σ({x})");
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7,
                "tanh({x})"
            );
        }
        assert_eq!(sigmoid(-200f32), 0.0f32.max(sigmoid(-200f32)));
        assert!((tanh(50f32) - 1.0).abs() < 1e-7 && (tanh(-50f32) + 1.0).abs() < 1e-7);
    }
}
