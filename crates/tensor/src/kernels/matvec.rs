//! A matrix laid out for products with one vector at a time: what generating text needs, a
//! batch of one, one step at a time, where a general matrix product's fixed costs weigh as much
//! as its arithmetic. Rows are stored in blocks of [`BLOCK`], each block column after column, so
//! a product streams through memory once and keeps 64 running sums in vector registers. Plain
//! loops: the caller compiles them for the instruction set it chose (see
//! `dl_nn::LstmInference`). (`packed_gemm.rs` packs W_hh for matrix-matrix products in
//! training; this is its matrix-vector counterpart.)

/// Rows per block of a [`MatVecMatrix`]: 64 running sums fill eight AVX2 registers.
pub const BLOCK: usize = 64;

/// A matrix laid out for products with vectors: rows in blocks of [`BLOCK`] (the last one padded
/// with zero rows), each block stored column after column.
#[derive(Debug, Clone)]
pub struct MatVecMatrix {
    rows: usize,
    columns: usize,
    /// `values[(block · columns + column) · BLOCK + lane]` = W[block · BLOCK + lane, column].
    values: Vec<f32>,
}

impl MatVecMatrix {
    /// Packs a row-major `rows × columns` matrix.
    pub fn new(row_major: &[f32], rows: usize, columns: usize) -> Self {
        let blocks = rows.div_ceil(BLOCK);
        let mut values = vec![0f32; blocks * columns * BLOCK];
        for (row, row_values) in row_major.chunks_exact(columns).enumerate() {
            let (block, lane) = (row / BLOCK, row % BLOCK);
            for (column, &value) in row_values.iter().enumerate() {
                values[(block * columns + column) * BLOCK + lane] = value;
            }
        }
        Self {
            rows,
            columns,
            values,
        }
    }

    /// Rows of the matrix (outputs of a product).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the matrix (inputs of a product).
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// `output[r] = start[r] + Σ_c W[r, c] · vector[c]`, where `start` is `bias` when given, else
    /// what `output` holds; the sum runs over the columns in order.
    #[inline(always)]
    pub fn multiply_add(&self, vector: &[f32], bias: Option<&[f32]>, output: &mut [f32]) {
        for (block, block_values) in self.values.chunks_exact(self.columns * BLOCK).enumerate() {
            let mut sums = [0f32; BLOCK];
            for (column, &value) in block_values.chunks_exact(BLOCK).zip(vector) {
                for (sum, &weight) in sums.iter_mut().zip(column) {
                    *sum += weight * value;
                }
            }
            let first = block * BLOCK;
            let rows = first..self.rows.min(first + BLOCK);
            for (row, sum) in rows.zip(sums) {
                output[row] = bias.map_or(output[row], |bias| bias[row]) + sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_products_match_the_definition() {
        // 70 rows: one full block of 64 and a padded one.
        let (rows, columns) = (70, 5);
        let matrix: Vec<f32> = (0..rows * columns)
            .map(|index| ((index * 37 % 11) as f32 - 5.0) * 0.25)
            .collect();
        let vector = [1.0, -2.0, 0.5, 3.0, -1.5];
        let bias: Vec<f32> = (0..rows).map(|row| row as f32).collect();
        let packed = MatVecMatrix::new(&matrix, rows, columns);
        let mut with_bias = vec![f32::NAN; rows];
        packed.multiply_add(&vector, Some(&bias), &mut with_bias);
        let mut accumulated = vec![10f32; rows];
        packed.multiply_add(&vector, None, &mut accumulated);
        for row in 0..rows {
            let product: f32 = (0..columns)
                .map(|column| matrix[row * columns + column] * vector[column])
                .sum();
            assert_eq!(with_bias[row], bias[row] + product, "row {row}");
            assert_eq!(accumulated[row], 10.0 + product, "row {row}");
        }
    }
}
