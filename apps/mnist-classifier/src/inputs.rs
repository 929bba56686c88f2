//! The images `predict` and `explain` work on: image files (any size and colour, prepared as
//! MNIST's digits are) and test images by number. A file that cannot be read is an error of its
//! own entry, so the others are still processed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use dl_data::ImageDataset;
use dl_tensor::{Device, Tensor};

use crate::{cli::DataArgs, data::load_images};

/// One image to classify or explain.
pub struct Input {
    /// How it is called in messages: the file, or `test image N`.
    pub name: String,
    /// The prepared image (1, 28, 28), or why it could not be prepared.
    pub image: Result<Tensor>,
    /// Its label, for a test image.
    pub label: Option<u32>,
}

/// The image files `images` and the test images numbered `index` (of `dataset`, loaded from
/// `data` unless offline), on `device`.
pub fn gather_inputs(
    images: &[PathBuf],
    index: &[usize],
    data: &DataArgs,
    dataset: ImageDataset,
    offline: bool,
    device: &Device,
) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in images {
        let image = dl_data::load_digit(path)
            .map_err(anyhow::Error::from)
            .and_then(|pixels| Ok(Tensor::from_vec(pixels, (1, 28, 28), device)?));
        inputs.push(Input {
            name: path.display().to_string(),
            image,
            label: None,
        });
    }
    if index.is_empty() {
        return Ok(inputs);
    }
    let data = DataArgs {
        dataset: dataset.into(),
        ..data.clone()
    };
    let test = load_images(&data, offline)?.test;
    for &index in index {
        let name = format!("test image {index}");
        if index >= test.len() {
            let problem = match test.len() {
                0 => anyhow::anyhow!("the test set is empty: there is no test image {index}"),
                count => anyhow::anyhow!("there are only {count} test images (0..={})", count - 1),
            };
            inputs.push(Input {
                name,
                image: Err(problem),
                label: None,
            });
            continue;
        }
        let label = test
            .labels
            .get(index)
            .and_then(|label| label.to_scalar::<u32>())
            .context("reading the test label")?;
        let image = test
            .images
            .get(index)
            .and_then(|image| image.to_device(device))
            .map_err(anyhow::Error::from);
        inputs.push(Input {
            name,
            image,
            label: Some(label),
        });
    }
    Ok(inputs)
}
