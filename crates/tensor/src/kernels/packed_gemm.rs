//! The matrix products of a recurrent layer's time steps (course §5.2): at every step a few
//! rows (the hidden states of one thread's block of the batch) are multiplied by the same weight
//! matrix, C (m x n) += A (m x k) · B (k x n), with m = 16 or 32 and k, n the hidden size or four
//! times it, a hundred times per sequence.
//!
//! A general matrix library rearranges ("packs") B into its own layout at every call, and at
//! these shapes the rearranging costs about as much as the arithmetic. B does not change during
//! a sequence, so here it is packed once per sequence ([`PackedMatrix::new`]) into panels of 16
//! columns, each panel's k rows of 16 numbers stored one after the other. A step then reads each
//! panel front to back: for every k, two AVX registers of B are multiplied by the value a[i][k]
//! of each of 4 rows of A and added into 8 registers that hold a 4 x 16 tile of C until k ends.
//! Read row by row in place instead, a power-of-two row length (4·256 numbers = 4 KiB) makes
//! every row of B land in the same few cache sets, which evict each other.
//!
//! The AVX2 + FMA path is taken for `f32` on x86-64 processors that have them; elsewhere (and in
//! `f64`, which only gradient checks use) the same panels are read by plain loops. The tests
//! compare both with the general [`super::gemm::matmul_into`].

use super::gemm::MatrixRef;
use super::Real;

/// Columns per panel: two AVX registers of eight `f32`.
const PANEL: usize = 16;

/// A k x n matrix stored as ⌈n / 16⌉ panels of k x 16 numbers, row after row within a panel;
/// the last panel's missing columns are zeros.
#[derive(Debug, Clone)]
pub(crate) struct PackedMatrix<T> {
    panels: Vec<T>,
    rows: usize,
    columns: usize,
}

impl<T: Real> PackedMatrix<T> {
    /// Packs `matrix` (any strides).
    pub(crate) fn new(matrix: MatrixRef<'_, T>) -> Self {
        let (rows, columns) = (matrix.rows(), matrix.columns());
        let mut panels = vec![T::zero(); columns.div_ceil(PANEL) * rows * PANEL];
        for (index, panel) in panels.chunks_exact_mut((rows * PANEL).max(1)).enumerate() {
            let first = index * PANEL;
            for (row, values) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (offset, value) in values.iter_mut().take(columns - first).enumerate() {
                    *value = matrix.get(row, first + offset);
                }
            }
        }
        Self {
            panels,
            rows,
            columns,
        }
    }

    /// Panel `index`: columns 16·index .. 16·index + 16, k rows of 16.
    fn panel(&self, index: usize) -> &[T] {
        &self.panels[index * self.rows * PANEL..(index + 1) * self.rows * PANEL]
    }
}

/// `destination = lhs · rhs`, or `destination += lhs · rhs` when `accumulate`, with the
/// destination a row-major `lhs.rows` x `rhs.columns` matrix, on the calling thread.
///
/// Panics when the shapes do not match or `lhs` reaches outside its slice.
pub(crate) fn matmul_packed_into<T: Real>(
    destination: &mut [T],
    lhs: MatrixRef<'_, T>,
    rhs: &PackedMatrix<T>,
    accumulate: bool,
) {
    let (m, k, n) = (lhs.rows(), lhs.columns(), rhs.columns);
    assert_eq!(rhs.rows, k, "packed gemm: inner dimensions differ");
    assert_eq!(destination.len(), m * n, "packed gemm: destination size");
    assert!(
        lhs.within_extent(),
        "packed gemm: lhs reaches outside its slice"
    );
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && lhs.column_stride() == 1
        && has_avx2_fma()
    {
        // SAFETY: T is f32 (the type ids are equal), so each cast views f32 values as f32.
        let (destination, lhs_data, panels) = unsafe {
            (
                std::slice::from_raw_parts_mut(
                    destination.as_mut_ptr().cast::<f32>(),
                    destination.len(),
                ),
                std::slice::from_raw_parts(lhs.data().as_ptr().cast::<f32>(), lhs.data().len()),
                std::slice::from_raw_parts(rhs.panels.as_ptr().cast::<f32>(), rhs.panels.len()),
            )
        };
        let operands = avx2::Operands {
            lhs: lhs_data,
            lhs_stride: lhs.row_stride(),
            rows: m,
            inner: k,
            panels,
            columns: n,
        };
        // SAFETY: the processor has AVX2 and FMA (checked above); `lhs` has unit column stride
        // and lies inside its slice (checked above), the panels hold ⌈n / 16⌉·k·16 values by
        // construction, and the destination holds m·n (checked above).
        unsafe { avx2::matmul(destination, &operands, accumulate) };
        return;
    }
    portable(destination, lhs, rhs, accumulate);
}

/// The same product with plain loops over the panels.
fn portable<T: Real>(
    destination: &mut [T],
    lhs: MatrixRef<'_, T>,
    rhs: &PackedMatrix<T>,
    accumulate: bool,
) {
    let (m, k, n) = (lhs.rows(), lhs.columns(), rhs.columns);
    for index in 0..n.div_ceil(PANEL) {
        let panel = rhs.panel(index);
        let first = index * PANEL;
        let width = PANEL.min(n - first);
        for row in 0..m {
            let mut sums = [T::zero(); PANEL];
            for (inner, values) in panel.chunks_exact(PANEL).enumerate().take(k) {
                let a = lhs.get(row, inner);
                for (sum, &b) in sums.iter_mut().zip(values) {
                    *sum += a * b;
                }
            }
            let out = &mut destination[row * n + first..row * n + first + width];
            for (out, &sum) in out.iter_mut().zip(&sums) {
                *out = if accumulate { *out + sum } else { sum };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The `f32` product with AVX2 + FMA, tile by tile.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{__m256, _mm256_storeu_ps};
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps};

    use super::PANEL;

    /// Rows of C one tile covers.
    const TILE_ROWS: usize = 6;

    /// A (rows x inner, row i at `lhs[i·lhs_stride..]`) and the panels of B (inner x columns).
    pub(super) struct Operands<'a> {
        pub(super) lhs: &'a [f32],
        pub(super) lhs_stride: usize,
        pub(super) rows: usize,
        pub(super) inner: usize,
        pub(super) panels: &'a [f32],
        pub(super) columns: usize,
    }

    /// C = A·B or C += A·B into `destination` (rows x columns, row-major).
    ///
    /// # Safety
    /// The processor has AVX2 and FMA; A's rows lie inside `lhs`; `panels` holds
    /// ⌈columns / 16⌉·inner·16 values; `destination` holds rows·columns.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn matmul(
        destination: &mut [f32],
        operands: &Operands<'_>,
        accumulate: bool,
    ) {
        let Operands {
            rows,
            inner,
            columns,
            ..
        } = *operands;
        for index in 0..columns.div_ceil(PANEL) {
            let panel = &operands.panels[index * inner * PANEL..(index + 1) * inner * PANEL];
            let mut row = 0;
            while row + TILE_ROWS <= rows {
                tile::<TILE_ROWS>(destination, operands, panel, (row, index), accumulate);
                row += TILE_ROWS;
            }
            // The last rows, fewer than a tile.
            let corner = (row, index);
            match rows - row {
                5 => tile::<5>(destination, operands, panel, corner, accumulate),
                4 => tile::<4>(destination, operands, panel, corner, accumulate),
                3 => tile::<3>(destination, operands, panel, corner, accumulate),
                2 => tile::<2>(destination, operands, panel, corner, accumulate),
                1 => tile::<1>(destination, operands, panel, corner, accumulate),
                _ => {}
            }
        }
    }

    /// One tile of C: rows `row..row + ROWS` of A times panel `index`, written (or added) into
    /// the destination; `corner` is (row, index).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn tile<const ROWS: usize>(
        destination: &mut [f32],
        operands: &Operands<'_>,
        panel: &[f32],
        (row, index): (usize, usize),
        accumulate: bool,
    ) {
        let sums = sums::<ROWS>(operands, panel, row);
        store(destination, operands.columns, index, row, &sums, accumulate);
    }

    /// Rows `row..row + ROWS` of A times one panel: ROWS x 16 sums in registers.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn sums<const ROWS: usize>(
        operands: &Operands<'_>,
        panel: &[f32],
        row: usize,
    ) -> [[__m256; 2]; ROWS] {
        let mut sums = [[_mm256_setzero_ps(); 2]; ROWS];
        // The first element of each row of the tile; each row has `inner` elements.
        let starts: [&[f32]; ROWS] = std::array::from_fn(|r| {
            &operands.lhs[(row + r) * operands.lhs_stride..][..operands.inner]
        });
        for (inner, values) in panel.chunks_exact(PANEL).enumerate() {
            // SAFETY: `values` is 16 f32, read as two groups of 8; `inner` < operands.inner,
            // the length of every row slice in `starts`.
            unsafe {
                let low = _mm256_loadu_ps(values.as_ptr());
                let high = _mm256_loadu_ps(values.as_ptr().add(8));
                for (start, sum) in starts.iter().zip(sums.iter_mut()) {
                    let a = _mm256_set1_ps(*start.get_unchecked(inner));
                    sum[0] = _mm256_fmadd_ps(a, low, sum[0]);
                    sum[1] = _mm256_fmadd_ps(a, high, sum[1]);
                }
            }
        }
        sums
    }

    /// Writes (or adds) a tile's sums into rows `row..` of panel `index`'s columns.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn store<const ROWS: usize>(
        destination: &mut [f32],
        columns: usize,
        index: usize,
        row: usize,
        sums: &[[__m256; 2]; ROWS],
        accumulate: bool,
    ) {
        let first = index * PANEL;
        let width = PANEL.min(columns - first);
        for (r, sum) in sums.iter().enumerate() {
            let mut values = [0f32; PANEL];
            // SAFETY: `values` holds 16 f32, written as two groups of 8.
            unsafe {
                _mm256_storeu_ps(values.as_mut_ptr(), sum[0]);
                _mm256_storeu_ps(values.as_mut_ptr().add(8), sum[1]);
            }
            let start = (row + r) * columns + first;
            for (out, value) in destination[start..start + width].iter_mut().zip(values) {
                *out = if accumulate { *out + value } else { value };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::matmul_into;
    use super::*;

    /// Numbers in [−1, 1) from a fixed sequence, so that every product differs.
    fn numbers<T: Real>(count: usize, seed: u32) -> Vec<T> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                T::from_f64(f64::from(state % 2000) / 1000.0 - 1.0)
            })
            .collect()
    }

    fn compare<T: Real>(tolerance: f64) {
        let shapes = [
            (1, 1, 1),
            (3, 5, 17),
            (4, 7, 32),
            (5, 128, 512),
            (16, 33, 45),
            (7, 2, 100),
            (16, 256, 64),
        ];
        for (m, k, n) in shapes {
            for accumulate in [false, true] {
                // A with 3 spare numbers after each row (a strided view, as in the LSTM) and B
                // read transposed from a (n, k) array, as W_hh is.
                let a = numbers::<T>(m * (k + 3), 1);
                let b = numbers::<T>(n * k, 2);
                let lhs = MatrixRef::strided(&a, m, k, k + 3);
                let rhs = MatrixRef::row_major(&b, n, k).t();
                let start = numbers::<T>(m * n, 3);
                let mut packed = start.clone();
                matmul_packed_into(&mut packed, lhs, &PackedMatrix::new(rhs), accumulate);
                let mut general = start.clone();
                matmul_into(&mut general, lhs, rhs, accumulate, 1);
                let mut plain = start;
                portable(&mut plain, lhs, &PackedMatrix::new(rhs), accumulate);
                for (index, ((x, y), z)) in packed.iter().zip(&general).zip(&plain).enumerate() {
                    let (x, y, z) = (x.to_f64(), y.to_f64(), z.to_f64());
                    let bound = tolerance * (1.0 + y.abs()) * k as f64;
                    assert!(
                        (x - y).abs() <= bound && (z - y).abs() <= bound,
                        "({m}, {k}, {n}) accumulate {accumulate}: element {index} is {x} \
                         (plain loops {z}), the general product gives {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn packed_products_match_the_general_product_in_f32() {
        compare::<f32>(1e-6);
    }

    #[test]
    fn packed_products_match_the_general_product_in_f64() {
        compare::<f64>(1e-14);
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_shapes_are_refused() {
        let a = [1f32; 6];
        let mut out = [0f32; 4];
        let packed = PackedMatrix::new(MatrixRef::row_major(&a, 2, 3));
        matmul_packed_into(&mut out, MatrixRef::row_major(&a, 2, 3), &packed, false);
    }
}
