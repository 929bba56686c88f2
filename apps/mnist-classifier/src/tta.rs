//! Test-time augmentation: classify each image as it is and shifted by one pixel up, down, left
//! and right (zeros fill the edge), and average the five predicted distributions. The same small
//! translations that `train --augment` teaches the model to ignore; whether averaging over them
//! helps is measured, not assumed (docs/ensembles.md).

use anyhow::Result;
use dl_nn::{Layer, Mode};
use dl_tensor::Tensor;

/// The (row, column) shifts of the five views.
const SHIFTS: [(isize, isize); 5] = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)];

/// `images` (N, C, H, W) moved by `rows` and `columns` pixels, zeros filling what comes in.
fn shifted(images: &Tensor, rows: isize, columns: isize) -> Result<Tensor> {
    let (height, width) = (images.dim(2)?, images.dim(3)?);
    let padded = images.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    Ok(padded
        .narrow(2, (1 - rows) as usize, height)?
        .narrow(3, (1 - columns) as usize, width)?)
}

/// The class probabilities of `images`: of the images alone, or with `augment` the mean over the
/// five shifted views.
pub fn probabilities(model: &dyn Layer, images: &Tensor, augment: bool) -> Result<Tensor> {
    if !augment {
        return Ok(dl_nn::softmax(&model.forward(images, Mode::Eval)?)?);
    }
    let mut sum: Option<Tensor> = None;
    for (rows, columns) in SHIFTS {
        let view = dl_nn::softmax(&model.forward(&shifted(images, rows, columns)?, Mode::Eval)?)?;
        sum = Some(match sum {
            Some(sum) => (sum + view)?,
            None => view,
        });
    }
    let sum = sum.expect("five views");
    Ok((sum / SHIFTS.len() as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dl_tensor::Device;

    #[test]
    fn a_shift_moves_pixels_and_fills_zeros() -> Result<()> {
        // 3 x 3: 1 2 3 / 4 5 6 / 7 8 9
        let image = Tensor::arange(1f32, 10.0, &Device::Cpu)?.reshape((1, 1, 3, 3))?;
        let down: Vec<f32> = shifted(&image, 1, 0)?.flatten_all()?.to_vec1()?;
        assert_eq!(down, [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let left: Vec<f32> = shifted(&image, 0, -1)?.flatten_all()?.to_vec1()?;
        assert_eq!(left, [2.0, 3.0, 0.0, 5.0, 6.0, 0.0, 8.0, 9.0, 0.0]);
        let same: Vec<f32> = shifted(&image, 0, 0)?.flatten_all()?.to_vec1()?;
        assert_eq!(same, (1..10).map(|value| value as f32).collect::<Vec<_>>());
        Ok(())
    }
}
