//! Embedding (course §5.2, the text model's first layer): a lookup table that turns each token
//! id into a learned vector, row `id` of a `(vocabulary, dimension)` matrix. It is a Dense layer
//! applied to a one-hot vector, computed without building the one-hot vector.

use dl_tensor::{DType, Tensor, Var};

use crate::{Init, Layer, Mode, NnError, Path, Result};

/// A table of `vocabulary_size` learned vectors of length `embedding_dim`.
#[derive(Debug, Clone)]
pub struct Embedding {
    name: String,
    weight: Var,
}

impl Embedding {
    /// Creates `path.weight`, drawn from N(0, 1) as PyTorch's `nn.Embedding`.
    pub fn new(path: &Path, vocabulary_size: usize, embedding_dim: usize) -> Result<Self> {
        if vocabulary_size == 0 || embedding_dim == 0 {
            return Err(NnError::config(
                format!("embedding '{}'", path.prefix()),
                format!("vocabulary_size ({vocabulary_size}) and embedding_dim ({embedding_dim}) must be positive"),
            ));
        }
        Ok(Self {
            name: path.prefix().to_string(),
            weight: path.var(
                "weight",
                (vocabulary_size, embedding_dim),
                Init::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
            )?,
        })
    }

    /// The table, `(vocabulary_size, embedding_dim)`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// Number of rows (distinct token ids).
    pub fn vocabulary_size(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Length of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// The token ids `input` as `u32`, same shape, once checked: integers, each inside the
    /// vocabulary; otherwise an error naming the layer and the offending id.
    pub(crate) fn checked_ids(&self, input: &Tensor) -> Result<Tensor> {
        if input.dtype().is_float() {
            return Err(NnError::shape(
                &self.name,
                format!("expected integer token ids, got {:?} values", input.dtype()),
            ));
        }
        let ids = input.to_dtype(DType::U32)?;
        if ids.elem_count() > 0 {
            let largest = ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
            if largest >= self.vocabulary_size() {
                return Err(NnError::shape(
                    &self.name,
                    format!(
                        "token id {largest} is outside the vocabulary of {} entries",
                        self.vocabulary_size()
                    ),
                ));
            }
        }
        Ok(ids)
    }
}

impl Layer for Embedding {
    /// Looks up token ids of any shape and integer type; appends a dimension of length
    /// `embedding_dim`. An id outside the vocabulary is an error naming it.
    fn forward(&self, input: &Tensor, _mode: Mode) -> Result<Tensor> {
        let ids = self.checked_ids(input)?.flatten_all()?;
        let rows = self.weight.as_tensor().embedding(&ids)?;
        let mut shape = input.dims().to_vec();
        shape.push(self.embedding_dim());
        Ok(rows.reshape(shape)?)
    }

    fn kind(&self) -> &'static str {
        "Embedding"
    }
}
