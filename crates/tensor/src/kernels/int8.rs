//! Exact int8 matrix products for post-training-quantized inference (course §8 模型小型化, model
//! compression): the integer-arithmetic-only inference of Jacob et al. 2018, "Quantization and
//! Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", run on the CPU's
//! 8-bit dot-product instruction, Intel's AVX-512 VNNI `vpdpbusd` (64 u8 × i8 products summed
//! four at a time into 16 i32 lanes, in one instruction).
//!
//! ```text
//! activations   a = s_a · (q_a − z_a)            q_a u8; one scale s_a and zero point z_a
//! weights       w[n][k] = s_w[n] · q_w[n][k]     q_w i8 in [−127, 127]; a scale per output
//! accumulators  acc[i][n] = Σ_k (q_a[i][k] − z_a) · q_w[n][k]
//!                         = Σ_k q_a[i][k] · q_w[n][k] − z_a · Σ_k q_w[n][k]     exact, in i32
//! epilogue      y[i][n] = (s_a · s_w[n]) · acc[i][n] + b[n], then ReLU if asked, then either
//!               f32 y, or the next layer's input q = sat_u8(round_half_even(y / s) + z)
//! ```
//!
//! The column sums `Σ_k q_w[n][k]` are computed once, when the weights are packed, so the inner
//! loop multiplies the stored bytes as they are. In f32 the epilogue is exactly the formula
//! above, operation by operation: the multiplier `s_a · s_w[n]` rounded to f32 first, then one
//! rounded product with acc (itself rounded to f32), then one rounded sum with `b[n]` (no bias is
//! a zero bias, which changes nothing: y is never −0), never a fused multiply-add. ReLU turns
//! every y that is not > 0 (NaN included) into 0. Requantizing divides by s (a correctly rounded
//! division, not a product with 1/s), rounds half to even (what the vector instructions do in
//! their default mode), adds z and saturates to 0..=255 (NaN → 0); [`quantize_u8`] uses the
//! same function. The weights exclude −128 (a symmetric range: −q_w is a weight whenever q_w
//! is), so |q_w| ≤ 127, and `in_features` is at most [`MAX_IN_FEATURES`]: no sum can leave i32
//! however the inputs are chosen.
//!
//! # Layout and backends
//!
//! [`PackedInt8Weights`] stores W in blocks of 16 output channels, and in each block the inputs
//! in groups of 4: a block's group g is the 64 bytes `[channel 0: k 4g..4g+4][channel 1]…`, one
//! `vpdpbusd` operand, so the AVX-512 kernel multiplies it by four input bytes of a row broadcast
//! to every lane. Channels past `out_features` and inputs past `in_features` are zero weights;
//! the last group of a row whose length is not a multiple of 4 is read with zero bytes after
//! its end (any value would do, their weights are zero).
//!
//! | [`Backend`] | inner kernel | tile (rows × channels) |
//! |---|---|---|
//! | `avx512-vnni` | `_mm512_dpbusd_epi32`, 4 inputs per instruction | 4 × 64, 16 zmm accumulators |
//! | `avx2` | bytes widened to i16 (`_mm256_cvtepu8_epi16` / `_mm256_cvtepi8_epi16`), `_mm256_madd_epi16`: exact, unlike `_mm256_maddubs_epi16`, which saturates | 2 × 16 |
//! | `portable` | plain Rust | 1 × 16 |
//!
//! [`matmul`] takes the best one the CPU has (checked once, at the first call);
//! [`matmul_with_backend`] forces one. All of them compute the same integers and pass them to
//! the same epilogue code, so their outputs are identical bit for bit. Rows are spread over
//! rayon's threads when a product has enough work (a few million multiply-adds); smaller ones
//! run on the calling thread.
//!
//! ```
//! use dl_tensor::kernels::int8::{self, Activations, Output, PackedInt8Weights};
//!
//! // W = [[1, -2], [3, 4]] (2 outputs, 2 inputs), scales 0.5 and 0.25.
//! let weights = PackedInt8Weights::new(&[1, -2, 3, 4], 2, 2, vec![0.5, 0.25])?;
//! // One row, a = 0.1 · (q − 10): q = [12, 20] means a = [0.2, 1.0].
//! let input = Activations { values: &[12, 20], rows: 1, scale: 0.1, zero_point: 10 };
//! let mut y = [0f32; 2];
//! int8::matmul(input, &weights, Some(&[1.0, 0.0]), false, Output::F32(&mut y))?;
//! // acc = [2·1 + 10·(−2), 2·3 + 10·4] = [−18, 46]; y = [0.05·(−18) + 1, 0.025·46]
//! assert_eq!(y, [0.1f32 * 0.5 * -18.0 + 1.0, 0.1f32 * 0.25 * 46.0]);
//! # Ok::<(), dl_tensor::TensorError>(())
//! ```

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::{Result, TensorError};

/// The largest `in_features` a product accepts: with it, |Σ_k (q_a − z_a) · q_w| ≤ 255 · 127 ·
/// `in_features` stays within i32.
pub const MAX_IN_FEATURES: usize = i32::MAX as usize / (255 * 127);

/// Output channels per packed block: the 16 i32 lanes of one 512-bit register.
const LANES: usize = 16;
/// Inputs per group: the four bytes `vpdpbusd` sums into each lane.
const GROUP: usize = 4;
/// Bytes of one group of one block.
const BLOCK_BYTES: usize = LANES * GROUP;
/// The largest tile of sums any kernel produces (the AVX-512 one's 4 × 64).
const MAX_TILE: usize = 4 * 64;
/// Multiply-adds below which a product stays on the calling thread.
const PARALLEL_WORK: usize = 1 << 22;
/// Rows per parallel task are a multiple of this, so that every task is made of whole tiles.
const TASK_ROWS: usize = 4;

/// A batch of quantized activations: `rows` rows of `in_features` bytes each, row-major, where
/// byte q stands for the real value `scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy)]
pub struct Activations<'a> {
    /// The bytes, `rows · in_features` of them.
    pub values: &'a [u8],
    /// Number of rows (the batch, or a convolution's output positions).
    pub rows: usize,
    /// The real value of one step of q (finite, > 0).
    pub scale: f32,
    /// The byte that stands for a real 0.
    pub zero_point: u8,
}

/// Where [`matmul`] writes its `rows × out_features` results, row-major.
#[derive(Debug)]
pub enum Output<'a> {
    /// The real values y.
    F32(&'a mut [f32]),
    /// y quantized for the next layer: `sat_u8(round_half_even(y / scale) + zero_point)`.
    U8 {
        /// The quantized values.
        out: &'a mut [u8],
        /// The next layer's input scale (finite, > 0).
        scale: f32,
        /// The next layer's input zero point.
        zero_point: u8,
    },
}

/// An int8 weight matrix W (out, in), the layout of a `Dense` layer's weight and of a
/// convolution's weight (out, C, kh, kw) flattened to (out, C·kh·kw), packed once for
/// [`matmul`], with one scale per output channel.
#[derive(Debug, Clone)]
pub struct PackedInt8Weights {
    out_features: usize,
    in_features: usize,
    scales: Vec<f32>,
    /// `Σ_k q_w[n][k]` for every output channel.
    column_sums: Vec<i32>,
    /// `packed[(block · groups + g) · 64 + lane · 4 + j]` = W[16 · block + lane][4g + j], zero
    /// outside W.
    packed: Vec<i8>,
}

impl PackedInt8Weights {
    /// Packs `weights`, W (`out_features`, `in_features`) row-major, whose row n is scaled by
    /// `scales[n]`. An error if a length is wrong, a weight is −128, a scale is not finite and
    /// positive, or `in_features` exceeds [`MAX_IN_FEATURES`].
    pub fn new(
        weights: &[i8],
        out_features: usize,
        in_features: usize,
        scales: Vec<f32>,
    ) -> Result<Self> {
        const OPERATION: &str = "PackedInt8Weights::new";
        if in_features > MAX_IN_FEATURES {
            return Err(bad_input(
                OPERATION,
                format!("in_features {in_features} exceeds {MAX_IN_FEATURES}, the most whose sums are sure to fit in i32"),
            ));
        }
        let expected = checked_product(OPERATION, &[out_features, in_features])?;
        if weights.len() != expected {
            return Err(bad_input(
                OPERATION,
                format!("{} weights given, expected out_features · in_features = {out_features} · {in_features} = {expected}", weights.len()),
            ));
        }
        if scales.len() != out_features {
            return Err(bad_input(
                OPERATION,
                format!(
                    "{} scales given, expected one per output channel ({out_features})",
                    scales.len()
                ),
            ));
        }
        if let Some(index) = weights.iter().position(|&weight| weight == i8::MIN) {
            return Err(bad_input(
                OPERATION,
                format!(
                    "weight {index} (output {}, input {}) is -128; symmetric weights lie in [-127, 127]",
                    index / in_features,
                    index % in_features
                ),
            ));
        }
        if let Some(channel) = scales.iter().position(|&scale| !is_valid_scale(scale)) {
            return Err(bad_input(
                OPERATION,
                format!(
                    "scale {} of output channel {channel} is not finite and positive",
                    scales[channel]
                ),
            ));
        }
        let groups = in_features.div_ceil(GROUP);
        let mut packed = vec![0i8; out_features.div_ceil(LANES) * groups * BLOCK_BYTES];
        for (channel, row) in weights.chunks_exact(in_features.max(1)).enumerate() {
            let (block, lane) = (channel / LANES, channel % LANES);
            for (group, values) in row.chunks(GROUP).enumerate() {
                let start = (block * groups + group) * BLOCK_BYTES + lane * GROUP;
                packed[start..start + values.len()].copy_from_slice(values);
            }
        }
        let column_sums = (0..out_features)
            .map(|channel| {
                weights[channel * in_features..(channel + 1) * in_features]
                    .iter()
                    .map(|&weight| i32::from(weight))
                    .sum()
            })
            .collect();
        Ok(Self {
            out_features,
            in_features,
            scales,
            column_sums,
            packed,
        })
    }

    /// Rows of W: the product's output channels.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Columns of W: the product's inputs per row.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// The scale of each output channel.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Groups of [`GROUP`] inputs per packed row.
    fn groups(&self) -> usize {
        self.in_features.div_ceil(GROUP)
    }
}

/// The instruction sets a product can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// AVX-512 with VNNI: `vpdpbusd`.
    Avx512Vnni,
    /// AVX2: bytes widened to 16 bits, `vpmaddwd`.
    Avx2,
    /// Plain Rust, on any CPU.
    Portable,
}

impl Backend {
    /// Every backend, fastest first.
    pub const ALL: [Backend; 3] = [Backend::Avx512Vnni, Backend::Avx2, Backend::Portable];

    /// Its name: "avx512-vnni", "avx2" or "portable".
    pub fn name(self) -> &'static str {
        match self {
            Backend::Avx512Vnni => "avx512-vnni",
            Backend::Avx2 => "avx2",
            Backend::Portable => "portable",
        }
    }

    /// Whether this CPU can run it.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Backend::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest backend this CPU can run, found once.
    pub fn best() -> Backend {
        static BEST: OnceLock<Backend> = OnceLock::new();
        *BEST.get_or_init(|| {
            Backend::ALL
                .into_iter()
                .find(|backend| backend.is_available())
                .unwrap_or(Backend::Portable)
        })
    }
}

/// The name of the backend [`matmul`] uses on this CPU: "avx512-vnni", "avx2" or "portable".
pub fn backend() -> &'static str {
    Backend::best().name()
}

/// Y = dequantize(A) · dequantize(W)ᵀ + bias, optionally through ReLU, written to `output` as
/// f32 or requantized to u8 (see the module documentation for the exact arithmetic), with the
/// fastest [`Backend`] this CPU has.
///
/// `input` has `in_features` bytes per row; `bias`, when given, one value per output channel;
/// `output` room for `rows · out_features` values. Wrong lengths or a scale that is not finite
/// and positive are errors.
pub fn matmul(
    input: Activations<'_>,
    weights: &PackedInt8Weights,
    bias: Option<&[f32]>,
    relu: bool,
    output: Output<'_>,
) -> Result<()> {
    matmul_with_backend(Backend::best(), input, weights, bias, relu, output)
}

/// [`matmul`] on the given backend: an error if this CPU cannot run it. The results are the
/// same on every backend, bit for bit.
pub fn matmul_with_backend(
    backend: Backend,
    input: Activations<'_>,
    weights: &PackedInt8Weights,
    bias: Option<&[f32]>,
    relu: bool,
    output: Output<'_>,
) -> Result<()> {
    const OPERATION: &str = "int8 matmul";
    check_product(OPERATION, backend, input, weights)?;
    if !is_valid_scale(input.scale) {
        return Err(bad_input(
            OPERATION,
            format!("input scale {} is not finite and positive", input.scale),
        ));
    }
    let bias = match bias {
        Some(bias) if bias.len() != weights.out_features => {
            return Err(bad_input(
                OPERATION,
                format!(
                    "{} bias values given, expected one per output channel ({})",
                    bias.len(),
                    weights.out_features
                ),
            ))
        }
        Some(bias) => bias.to_vec(),
        None => vec![0.0; weights.out_features],
    };
    let affine = Affine {
        correction: corrections(input.zero_point, weights),
        multipliers: weights
            .scales
            .iter()
            .map(|&scale| input.scale * scale)
            .collect(),
        bias,
        relu,
    };
    match output {
        Output::F32(out) => {
            check_output_length(OPERATION, out.len(), input.rows, weights)?;
            run(backend, input, weights, &ToF32(affine), out);
        }
        Output::U8 {
            out,
            scale,
            zero_point,
        } => {
            check_output_length(OPERATION, out.len(), input.rows, weights)?;
            if !is_valid_scale(scale) {
                return Err(bad_input(
                    OPERATION,
                    format!("output scale {scale} is not finite and positive"),
                ));
            }
            let store = ToU8 {
                affine,
                scale,
                zero_point: f32::from(zero_point),
            };
            run(backend, input, weights, &store, out);
        }
    }
    Ok(())
}

/// The exact accumulators `acc[i][n] = Σ_k (q_a[i][k] − z_a) · q_w[n][k]` of a product on the
/// given backend, before the epilogue (`input.scale` plays no part): `out` holds `rows ·
/// out_features` of them, row-major. For tests and for callers with their own epilogue.
pub fn accumulators(
    backend: Backend,
    input: Activations<'_>,
    weights: &PackedInt8Weights,
    out: &mut [i32],
) -> Result<()> {
    const OPERATION: &str = "int8 accumulators";
    check_product(OPERATION, backend, input, weights)?;
    check_output_length(OPERATION, out.len(), input.rows, weights)?;
    let store = ToI32 {
        correction: corrections(input.zero_point, weights),
    };
    run(backend, input, weights, &store, out);
    Ok(())
}

/// The accumulators by their definition, a plain triple loop: `acc[i][n] = Σ_k (a[i][k] −
/// zero_point) · w[n][k]` for `a` (`rows`, `in_features`) and unpacked `weights`
/// (`out_features`, `in_features`), both row-major. An error if a length is wrong.
pub fn reference_accumulators(
    a: &[u8],
    rows: usize,
    zero_point: u8,
    weights: &[i8],
    out_features: usize,
    in_features: usize,
) -> Result<Vec<i32>> {
    const OPERATION: &str = "reference_accumulators";
    if a.len() != checked_product(OPERATION, &[rows, in_features])?
        || weights.len() != checked_product(OPERATION, &[out_features, in_features])?
    {
        return Err(bad_input(
            OPERATION,
            format!("{} activations and {} weights given, expected {rows} · {in_features} and {out_features} · {in_features}", a.len(), weights.len()),
        ));
    }
    let mut acc = Vec::with_capacity(rows * out_features);
    for i in 0..rows {
        for n in 0..out_features {
            let mut sum = 0i32;
            for k in 0..in_features {
                let activation = i32::from(a[i * in_features + k]) - i32::from(zero_point);
                sum += activation * i32::from(weights[n * in_features + k]);
            }
            acc.push(sum);
        }
    }
    Ok(acc)
}

/// Quantizes `values` to `out`: `sat_u8(round_half_even(v / scale) + zero_point)` (NaN → 0), the
/// rounding of [`matmul`]'s u8 output. An error if the lengths differ or `scale` is not finite
/// and positive.
pub fn quantize_u8(values: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) -> Result<()> {
    const OPERATION: &str = "quantize_u8";
    if values.len() != out.len() {
        return Err(bad_input(
            OPERATION,
            format!("{} values but room for {} bytes", values.len(), out.len()),
        ));
    }
    if !is_valid_scale(scale) {
        return Err(bad_input(
            OPERATION,
            format!("scale {scale} is not finite and positive"),
        ));
    }
    let zero_point = f32::from(zero_point);
    #[cfg(target_arch = "x86_64")]
    if Backend::Avx2.is_available() {
        // SAFETY: the CPU has AVX2.
        unsafe { quantize_avx2(values, scale, zero_point, out) };
        return Ok(());
    }
    quantize_slice(values, scale, zero_point, out);
    Ok(())
}

/// The scale and zero point of u8 activations covering [min(`min`, 0), max(`max`, 0)], 0
/// included so that it is represented exactly (by the zero point): scale = (hi − lo) / 255,
/// zero point = round(−lo / scale). Every value in the range quantizes within scale / 2 of itself
/// (give or take the rounding of the scale to f32).
/// An all-zero range gives scale 1 and zero point 0. An error if `min` or `max` is not finite,
/// or `min` > `max`.
pub fn choose_u8_scale(min: f32, max: f32) -> Result<(f32, u8)> {
    if !min.is_finite() || !max.is_finite() || min > max {
        return Err(bad_input(
            "choose_u8_scale",
            format!("the range [{min}, {max}] is not a finite interval"),
        ));
    }
    let (low, high) = (min.min(0.0), max.max(0.0));
    if low == high {
        return Ok((1.0, 0));
    }
    // Divided before subtracting, so that [-f32::MAX, f32::MAX] does not overflow; at least the
    // smallest normal number, so that a tiny range does not round the scale to 0.
    let scale = (high / 255.0 - low / 255.0).max(f32::MIN_POSITIVE);
    Ok((scale, (-low / scale).round() as u8))
}

/// The im2col matrix of one image (C, H, W) of u8 activations for a square `kernel`: one row
/// per output position (out_h · out_w of them, row-major), one column per (c, ky, kx) in that
/// order, the layout of a convolution weight (out, C, k, k) flattened, so that the convolution
/// is [`matmul`] of this matrix with that weight. Positions outside the image read
/// `pad_value` (pass the zero point, so padding stands for a real 0). Returns (the matrix,
/// out_h, out_w), with out_h = (H + 2·padding − kernel) / stride + 1 and likewise out_w.
/// An error if the image does not hold C·H·W bytes, the kernel or the stride is 0, or the
/// kernel is larger than the padded image.
pub fn im2col_u8(
    image: &[u8],
    (channels, height, width): (usize, usize, usize),
    kernel: usize,
    stride: usize,
    padding: usize,
    pad_value: u8,
) -> Result<(Vec<u8>, usize, usize)> {
    const OPERATION: &str = "im2col_u8";
    let expected = checked_product(OPERATION, &[channels, height, width])?;
    if image.len() != expected {
        return Err(bad_input(
            OPERATION,
            format!(
                "the image holds {} bytes, expected C · H · W = {channels} · {height} · {width} = {expected}",
                image.len()
            ),
        ));
    }
    let (padded_height, padded_width) = (
        height.saturating_add(padding.saturating_mul(2)),
        width.saturating_add(padding.saturating_mul(2)),
    );
    if kernel == 0 || stride == 0 || kernel > padded_height || kernel > padded_width {
        return Err(bad_input(
            OPERATION,
            format!("kernel {kernel} with stride {stride} does not fit a {height} × {width} image padded by {padding}"),
        ));
    }
    let out_height = (padded_height - kernel) / stride + 1;
    let out_width = (padded_width - kernel) / stride + 1;
    let taps = checked_product(OPERATION, &[channels, kernel, kernel])?;
    let mut columns = vec![pad_value; checked_product(OPERATION, &[out_height, out_width, taps])?];
    let plane_size = height * width;
    for (position, row) in columns.chunks_exact_mut(taps).enumerate() {
        let (out_y, out_x) = (position / out_width, position % out_width);
        // The window's first column in the padded image, and whether its `kernel` columns all
        // lie inside the image (then each kernel row is one copy).
        let first_x = out_x * stride;
        let inside = first_x >= padding && first_x - padding + kernel <= width;
        for (channel, taps_of_channel) in row.chunks_exact_mut(kernel * kernel).enumerate() {
            let plane = &image[channel * plane_size..][..plane_size];
            for (ky, taps_of_row) in taps_of_channel.chunks_exact_mut(kernel).enumerate() {
                // Row y of the image; a row in the padding keeps `pad_value`.
                let Some(y) = (out_y * stride + ky)
                    .checked_sub(padding)
                    .filter(|&y| y < height)
                else {
                    continue;
                };
                let image_row = &plane[y * width..][..width];
                if inside {
                    // A plain loop: for a 3-wide kernel it beats a call to memcpy.
                    for (tap, &value) in taps_of_row.iter_mut().zip(&image_row[first_x - padding..])
                    {
                        *tap = value;
                    }
                } else {
                    for (kx, tap) in taps_of_row.iter_mut().enumerate() {
                        if let Some(x) = (first_x + kx).checked_sub(padding).filter(|&x| x < width)
                        {
                            *tap = image_row[x];
                        }
                    }
                }
            }
        }
    }
    Ok((columns, out_height, out_width))
}

/// The error for bad input to `operation`.
fn bad_input(operation: &'static str, problem: String) -> TensorError {
    TensorError::BadInput { operation, problem }
}

/// Whether `scale` can scale quantized values: finite and > 0.
fn is_valid_scale(scale: f32) -> bool {
    scale.is_finite() && scale > 0.0
}

/// The product of `dimensions`, or an error if it overflows.
fn checked_product(operation: &'static str, dimensions: &[usize]) -> Result<usize> {
    dimensions
        .iter()
        .try_fold(1usize, |product, &dimension| product.checked_mul(dimension))
        .ok_or_else(|| bad_input(operation, format!("the sizes {dimensions:?} overflow")))
}

/// Checks that `backend` runs here and that `input` fits `weights`.
fn check_product(
    operation: &'static str,
    backend: Backend,
    input: Activations<'_>,
    weights: &PackedInt8Weights,
) -> Result<()> {
    if !backend.is_available() {
        return Err(bad_input(
            operation,
            format!("the {} backend does not run on this CPU", backend.name()),
        ));
    }
    let expected = checked_product(operation, &[input.rows, weights.in_features])?;
    if input.values.len() != expected {
        return Err(bad_input(
            operation,
            format!(
                "the activations hold {} bytes, expected rows · in_features = {} · {} = {expected}",
                input.values.len(),
                input.rows,
                weights.in_features
            ),
        ));
    }
    Ok(())
}

/// Checks that an output of `length` values holds `rows · out_features` of them.
fn check_output_length(
    operation: &'static str,
    length: usize,
    rows: usize,
    weights: &PackedInt8Weights,
) -> Result<()> {
    // rows · in_features did not overflow, and out_features · in_features neither; this can.
    let expected = checked_product(operation, &[rows, weights.out_features])?;
    if length != expected {
        return Err(bad_input(
            operation,
            format!(
                "the output has room for {length} values, expected rows · out_features = {rows} · {} = {expected}",
                weights.out_features
            ),
        ));
    }
    Ok(())
}

/// `z_a · Σ_k q_w[n][k]` for every output channel: what the raw sums Σ_k q_a · q_w exceed the
/// accumulators by.
fn corrections(zero_point: u8, weights: &PackedInt8Weights) -> Vec<i32> {
    weights
        .column_sums
        .iter()
        .map(|&sum| i32::from(zero_point) * sum)
        .collect()
}

/// `sat_u8(round_half_even(value / scale) + zero_point)`, NaN → 0.
#[inline(always)]
// Not `clamp`, which keeps a NaN; `max` turns it into 0, as the conversion below needs.
#[allow(clippy::manual_clamp)]
fn quantize(value: f32, scale: f32, zero_point: f32) -> u8 {
    let q = ((value / scale).round_ties_even() + zero_point)
        .max(0.0)
        .min(255.0);
    // SAFETY: q is an integer in 0..=255. Unlike `as`, which would give the same result, the
    // unchecked conversion is one vector instruction.
    unsafe { q.to_int_unchecked::<i32>() as u8 }
}

/// [`quantize`] over a slice (`out` as long as `values`).
#[inline(always)]
fn quantize_slice(values: &[f32], scale: f32, zero_point: f32, out: &mut [u8]) {
    for (out, &value) in out.iter_mut().zip(values) {
        *out = quantize(value, scale, zero_point);
    }
}

/// [`quantize_slice`] compiled for AVX2, where the rounding is one vector instruction.
///
/// # Safety
///
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(values: &[f32], scale: f32, zero_point: f32, out: &mut [u8]) {
    quantize_slice(values, scale, zero_point, out);
}

/// What becomes of the raw sums Σ_k q_a · q_w of a tile: the zero-point correction and the
/// output's own arithmetic. Shared by every backend, so they all round alike.
trait Epilogue: Sync {
    /// The output's element type.
    type Element: Send;
    /// Writes one row's outputs for columns `first_column..first_column + out.len()` from their
    /// raw sums (`sums` as long as `out`).
    fn store(&self, sums: &[i32], first_column: usize, out: &mut [Self::Element]);
}

/// The exact accumulators.
struct ToI32 {
    correction: Vec<i32>,
}

impl Epilogue for ToI32 {
    type Element = i32;

    #[inline(always)]
    fn store(&self, sums: &[i32], first_column: usize, out: &mut [i32]) {
        let correction = &self.correction[first_column..][..out.len()];
        for ((out, &sum), &correction) in out.iter_mut().zip(sums).zip(correction) {
            *out = sum - correction;
        }
    }
}

/// `y = (s_a · s_w[n]) · acc + b[n]`, then ReLU if asked.
struct Affine {
    correction: Vec<i32>,
    multipliers: Vec<f32>,
    bias: Vec<f32>,
    relu: bool,
}

impl Affine {
    /// Writes `finish(y)` for one row's columns `first_column..first_column + out.len()` from
    /// their raw sums.
    #[inline(always)]
    fn apply<T>(
        &self,
        sums: &[i32],
        first_column: usize,
        out: &mut [T],
        finish: impl Fn(f32) -> T,
    ) {
        let columns = first_column..first_column + out.len();
        let parameters = self.correction[columns.clone()]
            .iter()
            .zip(&self.multipliers[columns.clone()])
            .zip(&self.bias[columns]);
        for ((out, &sum), ((&correction, &multiplier), &bias)) in
            out.iter_mut().zip(sums).zip(parameters)
        {
            let y = multiplier * (sum - correction) as f32 + bias;
            *out = finish(if !self.relu || y > 0.0 { y } else { 0.0 });
        }
    }
}

/// The real outputs.
struct ToF32(Affine);

impl Epilogue for ToF32 {
    type Element = f32;

    #[inline(always)]
    fn store(&self, sums: &[i32], first_column: usize, out: &mut [f32]) {
        self.0.apply(sums, first_column, out, |y| y);
    }
}

/// The outputs requantized to u8.
struct ToU8 {
    affine: Affine,
    scale: f32,
    zero_point: f32,
}

impl Epilogue for ToU8 {
    type Element = u8;

    #[inline(always)]
    fn store(&self, sums: &[i32], first_column: usize, out: &mut [u8]) {
        let (scale, zero_point) = (self.scale, self.zero_point);
        self.affine
            .apply(sums, first_column, out, |y| quantize(y, scale, zero_point));
    }
}

/// Runs the product of `input` and `weights` into `out` (`rows · out_features` elements) on
/// `backend`, a share of the rows per rayon task when the product is large enough. The lengths
/// have been checked and `backend` is available.
fn run<E: Epilogue>(
    backend: Backend,
    input: Activations<'_>,
    weights: &PackedInt8Weights,
    epilogue: &E,
    out: &mut [E::Element],
) {
    let (k, n) = (weights.in_features, weights.out_features);
    if input.rows == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let work = input.rows.saturating_mul(n).saturating_mul(k.max(1));
    if threads > 1 && work >= PARALLEL_WORK && input.rows >= 2 * TASK_ROWS {
        // A few tasks per thread, so that a thread slowed by others still finishes in time.
        let task_rows = input.rows.div_ceil(4 * threads).next_multiple_of(TASK_ROWS);
        out.par_chunks_mut(task_rows * n)
            .enumerate()
            .for_each(|(task, out)| {
                let (first, rows) = (task * task_rows, out.len() / n);
                let values = &input.values[first * k..(first + rows) * k];
                run_rows(backend, values, rows, weights, epilogue, out);
            });
    } else {
        run_rows(backend, input.values, input.rows, weights, epilogue, out);
    }
}

/// Runs the product of `rows` rows of `values` on `backend`, on this thread.
fn run_rows<E: Epilogue>(
    backend: Backend,
    values: &[u8],
    rows: usize,
    weights: &PackedInt8Weights,
    epilogue: &E,
    out: &mut [E::Element],
) {
    match backend {
        // SAFETY: the callers checked that the backend is available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512Vnni => unsafe { x86::drive_vnni(values, rows, weights, epilogue, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => unsafe { x86::drive_avx2(values, rows, weights, epilogue, out) },
        // SAFETY: plain Rust runs on any CPU (elsewhere than x86-64, every backend comes here,
        // the others being unavailable).
        _ => unsafe { drive::<Portable, E>(values, rows, weights, epilogue, out) },
    }
}

/// One backend's register-blocked inner kernel.
trait TileKernel {
    /// Rows of A per tile.
    const ROWS: usize;
    /// Output channels per tile, a multiple of [`LANES`].
    const COLUMNS: usize;

    /// Sets `sums[r · COLUMNS + c] = Σ_k a[r][k] · W[c][k]` for the first `rows` (1..=ROWS) rows
    /// of `a` (`k` bytes each, one after the other) and the `blocks` (1..=COLUMNS / 16) packed
    /// blocks at the start of `panel`.
    ///
    /// # Safety
    ///
    /// The CPU must have the backend's instruction-set extensions.
    unsafe fn tile(
        a: &[u8],
        k: usize,
        rows: usize,
        panel: &[i8],
        blocks: usize,
        sums: &mut [i32; MAX_TILE],
    );
}

/// The product over all rows with kernel `K`, tile by tile: for every ROWS rows, every
/// COLUMNS output channels in turn, the whole K loop, then the epilogue. Inlined into each
/// backend's entry point, so that the epilogue is compiled for its instruction set.
///
/// # Safety
///
/// The CPU must have `K`'s instruction-set extensions.
#[inline(always)]
unsafe fn drive<K: TileKernel, E: Epilogue>(
    values: &[u8],
    rows: usize,
    weights: &PackedInt8Weights,
    epilogue: &E,
    out: &mut [E::Element],
) {
    let (k, n) = (weights.in_features, weights.out_features);
    let block_size = weights.groups() * BLOCK_BYTES;
    let mut sums = [0i32; MAX_TILE];
    for first_row in (0..rows).step_by(K::ROWS) {
        let tile_rows = K::ROWS.min(rows - first_row);
        let tile = &values[first_row * k..(first_row + tile_rows) * k];
        let out_rows = &mut out[first_row * n..(first_row + tile_rows) * n];
        for first_column in (0..n).step_by(K::COLUMNS) {
            let width = K::COLUMNS.min(n - first_column);
            let panel = &weights.packed[first_column / LANES * block_size..];
            K::tile(tile, k, tile_rows, panel, width.div_ceil(LANES), &mut sums);
            for (row_sums, out_row) in sums.chunks_exact(K::COLUMNS).zip(out_rows.chunks_mut(n)) {
                epilogue.store(
                    &row_sums[..width],
                    first_column,
                    &mut out_row[first_column..first_column + width],
                );
            }
        }
    }
}

/// The plain-Rust kernel: one row, one block of 16 channels.
struct Portable;

impl TileKernel for Portable {
    const ROWS: usize = 1;
    const COLUMNS: usize = LANES;

    unsafe fn tile(
        a: &[u8],
        k: usize,
        _rows: usize,
        panel: &[i8],
        _blocks: usize,
        sums: &mut [i32; MAX_TILE],
    ) {
        // Every product of a group separately (lane · 4 + j), summed in fours at the end: 64
        // independent sums, which the compiler vectorises.
        let mut products = [0i32; BLOCK_BYTES];
        let row = a[..k].chunks_exact(GROUP);
        let mut last = [0u8; GROUP];
        last[..row.remainder().len()].copy_from_slice(row.remainder());
        let groups = row.chain((!k.is_multiple_of(GROUP)).then_some(&last[..]));
        for (inputs, block) in groups.zip(panel.chunks_exact(BLOCK_BYTES)) {
            let inputs: [i32; GROUP] = std::array::from_fn(|j| i32::from(inputs[j]));
            for (sums, weights) in products
                .chunks_exact_mut(GROUP)
                .zip(block.chunks_exact(GROUP))
            {
                for ((sum, &weight), input) in sums.iter_mut().zip(weights).zip(inputs) {
                    *sum += input * i32::from(weight);
                }
            }
        }
        let lanes = products.chunks_exact(GROUP).map(|four| four.iter().sum());
        for (sum, lane) in sums.iter_mut().zip(lanes) {
            *sum = lane;
        }
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89, above the workspace's rust-version.
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod x86 {
    //! The AVX-512 VNNI and AVX2 kernels and their entry points.

    use std::arch::x86_64::*;

    use super::{
        drive, Epilogue, PackedInt8Weights, TileKernel, BLOCK_BYTES, GROUP, LANES, MAX_TILE,
    };

    /// [`drive`] with the AVX-512 VNNI kernel.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn drive_vnni<E: Epilogue>(
        values: &[u8],
        rows: usize,
        weights: &PackedInt8Weights,
        epilogue: &E,
        out: &mut [E::Element],
    ) {
        drive::<Vnni, E>(values, rows, weights, epilogue, out);
    }

    /// [`drive`] with the AVX2 kernel.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn drive_avx2<E: Epilogue>(
        values: &[u8],
        rows: usize,
        weights: &PackedInt8Weights,
        epilogue: &E,
        out: &mut [E::Element],
    ) {
        drive::<Avx2, E>(values, rows, weights, epilogue, out);
    }

    /// Checks what [`TileKernel::tile`] promises to read and write, so that the kernels' raw
    /// loads stay inside the slices.
    fn check_tile<K: TileKernel>(a: &[u8], k: usize, rows: usize, panel: &[i8], blocks: usize) {
        assert!((1..=K::ROWS).contains(&rows) && (1..=K::COLUMNS / LANES).contains(&blocks));
        assert!(a.len() >= rows * k && panel.len() >= blocks * k.div_ceil(GROUP) * BLOCK_BYTES);
    }

    /// The last group of inputs of each of `ROWS` rows of `k` bytes at `a`, as little-endian
    /// i32s whose bytes past the row are 0 (any value would do: their weights are 0); all 0
    /// when k is a multiple of 4. Read before the accumulators are live, which keeps them in
    /// registers.
    ///
    /// # Safety
    ///
    /// `a` must point to `ROWS · k` readable bytes.
    #[inline(always)]
    unsafe fn last_groups<const ROWS: usize>(a: *const u8, k: usize) -> [i32; ROWS] {
        let length = k % GROUP;
        let mut groups = [0i32; ROWS];
        if length == 0 {
            return groups;
        }
        for (row, group) in groups.iter_mut().enumerate() {
            let end = a.add((row + 1) * k);
            *group = if k >= GROUP {
                // The row's last four bytes, shifted down past the ones of the previous group.
                let bytes = end.sub(GROUP).cast::<u32>().read_unaligned();
                (u32::from_le(bytes) >> (8 * (GROUP - length))) as i32
            } else {
                let mut bytes = [0u8; GROUP];
                for (offset, byte) in bytes.iter_mut().enumerate().take(length) {
                    *byte = *end.sub(length - offset);
                }
                i32::from_le_bytes(bytes)
            };
        }
        groups
    }

    /// `vpdpbusd`: four rows by four blocks of 16 channels, 16 accumulators.
    struct Vnni;

    impl TileKernel for Vnni {
        const ROWS: usize = 4;
        const COLUMNS: usize = 4 * LANES;

        #[inline(always)]
        unsafe fn tile(
            a: &[u8],
            k: usize,
            rows: usize,
            panel: &[i8],
            blocks: usize,
            sums: &mut [i32; MAX_TILE],
        ) {
            check_tile::<Self>(a, k, rows, panel, blocks);
            let (a, panel, sums) = (a.as_ptr(), panel.as_ptr(), sums.as_mut_ptr());
            match rows {
                1 => vnni_blocks::<1>(a, k, panel, blocks, sums),
                2 => vnni_blocks::<2>(a, k, panel, blocks, sums),
                3 => vnni_blocks::<3>(a, k, panel, blocks, sums),
                _ => vnni_blocks::<4>(a, k, panel, blocks, sums),
            }
        }
    }

    /// [`vnni_tile`] for `ROWS` rows and `blocks` (1..=4) blocks.
    #[inline(always)]
    unsafe fn vnni_blocks<const ROWS: usize>(
        a: *const u8,
        k: usize,
        panel: *const i8,
        blocks: usize,
        sums: *mut i32,
    ) {
        match blocks {
            1 => vnni_tile::<ROWS, 1>(a, k, panel, sums),
            2 => vnni_tile::<ROWS, 2>(a, k, panel, sums),
            3 => vnni_tile::<ROWS, 3>(a, k, panel, sums),
            _ => vnni_tile::<ROWS, 4>(a, k, panel, sums),
        }
    }

    /// Σ over all groups of `ROWS` rows × `BLOCKS` blocks, the accumulators in zmm registers:
    /// per group, `BLOCKS` weight loads, `ROWS` broadcasts of four input bytes, and
    /// `ROWS · BLOCKS` `vpdpbusd`.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512 F, BW and VNNI; `a`, `panel` and `sums` must hold what
    /// [`check_tile`] checks.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn vnni_tile<const ROWS: usize, const BLOCKS: usize>(
        a: *const u8,
        k: usize,
        panel: *const i8,
        sums: *mut i32,
    ) {
        let (whole, groups) = (k / GROUP, k.div_ceil(GROUP));
        let last = last_groups::<ROWS>(a, k);
        let mut acc = [[_mm512_setzero_si512(); BLOCKS]; ROWS];
        for group in 0..whole {
            vnni_step(&mut acc, panel, groups, group, |row| {
                a.add(row * k + GROUP * group)
                    .cast::<i32>()
                    .read_unaligned()
            });
        }
        if whole < groups {
            vnni_step(&mut acc, panel, groups, whole, |row| last[row]);
        }
        for (row, acc) in acc.iter().enumerate() {
            for (block, &acc) in acc.iter().enumerate() {
                let at = sums.add(row * Vnni::COLUMNS + block * LANES);
                _mm512_storeu_si512(at.cast(), acc);
            }
        }
    }

    /// One group of [`vnni_tile`]: the group's weights of every block, then for every row its
    /// four inputs (`inputs(row)`) broadcast and multiplied into the row's accumulators.
    #[inline(always)]
    unsafe fn vnni_step<const ROWS: usize, const BLOCKS: usize>(
        acc: &mut [[__m512i; BLOCKS]; ROWS],
        panel: *const i8,
        groups: usize,
        group: usize,
        inputs: impl Fn(usize) -> i32,
    ) {
        let mut w = [_mm512_setzero_si512(); BLOCKS];
        for (block, w) in w.iter_mut().enumerate() {
            *w = _mm512_loadu_si512(panel.add((block * groups + group) * BLOCK_BYTES).cast());
        }
        for (row, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_epi32(inputs(row));
            for (acc, &w) in acc.iter_mut().zip(&w) {
                *acc = _mm512_dpbusd_epi32(*acc, x, w);
            }
        }
    }

    /// Widened to 16 bits, `vpmaddwd`: two rows by one block of 16 channels.
    struct Avx2;

    impl TileKernel for Avx2 {
        const ROWS: usize = 2;
        const COLUMNS: usize = LANES;

        #[inline(always)]
        unsafe fn tile(
            a: &[u8],
            k: usize,
            rows: usize,
            panel: &[i8],
            blocks: usize,
            sums: &mut [i32; MAX_TILE],
        ) {
            check_tile::<Self>(a, k, rows, panel, blocks);
            let (a, panel, sums) = (a.as_ptr(), panel.as_ptr(), sums.as_mut_ptr());
            match rows {
                1 => avx2_tile::<1>(a, k, panel, sums),
                _ => avx2_tile::<2>(a, k, panel, sums),
            }
        }
    }

    /// Σ over all groups of `ROWS` rows × 16 channels. Each quarter of a block's group (4
    /// channels × 4 inputs) is widened to 16 i16, the row's 4 inputs likewise (repeated 4
    /// times), and `vpmaddwd` adds adjacent products into 8 i32: channel c's inputs (0, 1) and
    /// (2, 3), added together at the end. Every product fits in i16 × i16 → i32 exactly.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2; `a`, `panel` and `sums` must hold what [`check_tile`] checks.
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_tile<const ROWS: usize>(
        a: *const u8,
        k: usize,
        panel: *const i8,
        sums: *mut i32,
    ) {
        let whole = k / GROUP;
        let last = last_groups::<ROWS>(a, k);
        let mut acc = [[_mm256_setzero_si256(); 4]; ROWS];
        for group in 0..whole {
            avx2_step(&mut acc, panel.add(group * BLOCK_BYTES), |row| {
                a.add(row * k + GROUP * group)
                    .cast::<i32>()
                    .read_unaligned()
            });
        }
        if whole * GROUP < k {
            avx2_step(&mut acc, panel.add(whole * BLOCK_BYTES), |row| last[row]);
        }
        for (row, acc) in acc.iter().enumerate() {
            for (quarter, &acc) in acc.iter().enumerate() {
                let mut halves = [0i32; 8];
                _mm256_storeu_si256(halves.as_mut_ptr().cast(), acc);
                for (channel, pair) in halves.chunks_exact(2).enumerate() {
                    *sums.add(row * LANES + 4 * quarter + channel) = pair[0] + pair[1];
                }
            }
        }
    }

    /// One group of [`avx2_tile`] from the group's 64 weight bytes at `block`.
    #[inline(always)]
    unsafe fn avx2_step<const ROWS: usize>(
        acc: &mut [[__m256i; 4]; ROWS],
        block: *const i8,
        inputs: impl Fn(usize) -> i32,
    ) {
        let mut w = [_mm256_setzero_si256(); 4];
        for (quarter, w) in w.iter_mut().enumerate() {
            *w = _mm256_cvtepi8_epi16(_mm_loadu_si128(block.add(16 * quarter).cast()));
        }
        for (row, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_cvtepu8_epi16(_mm_set1_epi32(inputs(row)));
            for (acc, &w) in acc.iter_mut().zip(&w) {
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(x, w));
            }
        }
    }
}
