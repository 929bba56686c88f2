//! Finding the images: load them from the data directory, downloading them first (with
//! progress) when they are missing.

use anyhow::{Context, Result};
use dl_data::{ImageDataset, Mnist};

use crate::cli::{DataArgs, DatasetChoice};

impl DatasetChoice {
    /// The dl-data dataset behind the choice.
    pub fn dataset(self) -> ImageDataset {
        match self {
            Self::Mnist => ImageDataset::Mnist,
            Self::FashionMnist => ImageDataset::FashionMnist,
        }
    }
}

impl From<ImageDataset> for DatasetChoice {
    fn from(dataset: ImageDataset) -> Self {
        match dataset {
            ImageDataset::Mnist => Self::Mnist,
            ImageDataset::FashionMnist => Self::FashionMnist,
        }
    }
}

/// Loads the chosen dataset, downloading it first unless `offline`.
pub fn load_images(arguments: &DataArgs, offline: bool) -> Result<Mnist> {
    let data_dir = dl_data::resolve_data_dir(arguments.data_dir.as_deref());
    let dataset = arguments.dataset.dataset();
    dataset.load_or_download(&data_dir, offline).with_context(|| {
        format!(
            "{} could not be loaded from {} (to download it by hand: `cargo xtask download-data --dataset {} --mirror DIR_OR_URL --data-dir {}`)",
            dataset.name(),
            dataset.directory(&data_dir).display(),
            dataset.key(),
            data_dir.display()
        )
    })
}
