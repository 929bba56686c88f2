//! Reading tensors as plain slices: the kernels loop over `&[T]` in row-major order, whatever
//! the strides of the tensor they were given (a transposed view, a broadcast gradient).

use std::borrow::Cow;

use candle_core::{bail, CpuStorage, Device, Layout, Result, Shape, Storage, Tensor, WithDType};

/// The elements of `storage` seen through `layout`, in row-major order: borrowed when the
/// layout is contiguous, gathered into a new vector otherwise.
pub(crate) fn row_major<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<Cow<'a, [T]>> {
    let data = storage.as_slice::<T>()?;
    if let Some((start, end)) = layout.contiguous_offsets() {
        return Ok(Cow::Borrowed(&data[start..end]));
    }
    let mut gathered = Vec::with_capacity(layout.shape().elem_count());
    gather(
        data,
        layout.dims(),
        layout.stride(),
        layout.start_offset(),
        &mut gathered,
    );
    Ok(Cow::Owned(gathered))
}

/// Appends the elements of the strided array at `offset` to `out`, last dimension fastest.
fn gather<T: Copy>(data: &[T], dims: &[usize], stride: &[usize], offset: usize, out: &mut Vec<T>) {
    match dims {
        [] => out.push(data[offset]),
        [length] => out.extend((0..*length).map(|index| data[offset + index * stride[0]])),
        [length, inner @ ..] => {
            for index in 0..*length {
                gather(data, inner, &stride[1..], offset + index * stride[0], out);
            }
        }
    }
}

/// Runs `f` on the elements of a CPU tensor in row-major order (without copying when the tensor
/// is contiguous).
pub(crate) fn with_row_major<T: WithDType, R>(
    tensor: &Tensor,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(&row_major::<T>(cpu, layout)?),
        _ => bail!("dl-tensor kernels: expected a CPU tensor"),
    }
}

/// A new CPU tensor (outside any computation graph) holding `data` with shape `shape`.
pub(crate) fn tensor_from<T: WithDType, S: Into<Shape>>(data: Vec<T>, shape: S) -> Result<Tensor> {
    Tensor::from_vec(data, shape.into(), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transposed_view_is_read_in_row_major_order() -> Result<()> {
        // [[0, 1, 2], [3, 4, 5]] transposed is [[0, 3], [1, 4], [2, 5]].
        let tensor = Tensor::arange(0f32, 6., &Device::Cpu)?
            .reshape((2, 3))?
            .t()?;
        let values = with_row_major::<f32, _>(&tensor, |data| Ok(data.to_vec()))?;
        assert_eq!(values, [0., 3., 1., 4., 2., 5.]);
        Ok(())
    }
}
