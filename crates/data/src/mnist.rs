//! MNIST and Fashion-MNIST (course §5.1, image classification): 70,000 grey 28×28 images of
//! handwritten digits (or of clothes), 60,000 for training and 10,000 for testing, each with its
//! class 0–9.
//!
//! The four IDX files of a dataset are looked for in `DATA_DIR/mnist/` (or
//! `DATA_DIR/fashion-mnist/`), gzip-compressed (`train-images-idx3-ubyte.gz`) or not
//! (`train-images-idx3-ubyte`). Every check a damaged download could fail is made — magic
//! numbers, 28×28 images, as many labels as images, labels 0–9 — and its error names the file.
//! The directory is only read, so it may be read-only or shared.
//!
//! ```no_run
//! use dl_data::{resolve_data_dir, Mnist};
//! let mnist = Mnist::load(&resolve_data_dir(None))?;
//! assert_eq!(mnist.train.images.dims(), &[60_000, 1, 28, 28]); // f32 in 0..1
//! assert_eq!(mnist.test.labels.dims(), &[10_000]); // u32 in 0..=9
//! # Ok::<(), dl_data::DataError>(())
//! ```

use std::path::{Path, PathBuf};

use dl_tensor::{DType, Device, Tensor};

use crate::error::{DataError, Result};
use crate::idx::{read_idx, IdxArray};

/// Height and width of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;

/// Number of classes in MNIST and Fashion-MNIST.
pub const CLASS_COUNT: usize = 10;

/// Mean pixel value of the MNIST training images (scaled to 0..1), for normalisation.
pub const MNIST_MEAN: f32 = 0.1307;

/// Standard deviation of the MNIST training pixels (scaled to 0..1), for normalisation.
pub const MNIST_STD: f32 = 0.3081;

/// Magic number of an IDX file of unsigned bytes in 3 dimensions (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of unsigned bytes in 1 dimension (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The file names of the four parts, without `.gz`.
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A set of labelled images: the training or the test part of a dataset.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// The images, (N, 1, 28, 28) f32 in 0..1 (pixel / 255), unless normalised.
    pub images: Tensor,
    /// The class of each image, (N) u32.
    pub labels: Tensor,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.dims().first().copied().unwrap_or(0)
    }

    /// Whether the set has no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many images each class has: element `c` counts the labels equal to `c`. The vector
    /// has [`CLASS_COUNT`] elements, or more if a label is larger.
    pub fn label_counts(&self) -> Result<Vec<usize>> {
        let labels = self
            .labels
            .flatten_all()?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        let mut counts = vec![0usize; CLASS_COUNT];
        for label in labels {
            let label = label as usize;
            if label >= counts.len() {
                counts.resize(label + 1, 0);
            }
            counts[label] += 1;
        }
        Ok(counts)
    }

    /// The images standardised as (x − mean) / std, labels unchanged. For MNIST use
    /// [`MNIST_MEAN`] and [`MNIST_STD`], which centre the training pixels on 0 with spread 1.
    /// Augment (see [`crate::Augmenter`]) before normalising: it fills with 0, the background
    /// of an image in 0..1.
    pub fn normalised(&self, mean: f32, std: f32) -> Result<ImageSet> {
        if !mean.is_finite() || !std.is_finite() || std <= 0.0 {
            return Err(DataError::config(
                "normalisation",
                format!("mean {mean} and std {std}: both must be finite and std positive"),
            ));
        }
        Ok(ImageSet {
            images: self
                .images
                .affine(1.0 / f64::from(std), -f64::from(mean) / f64::from(std))?,
            labels: self.labels.clone(),
        })
    }

    /// The images with the given indices, in that order (one `index_select` per tensor).
    pub fn select(&self, indices: &[usize]) -> Result<ImageSet> {
        let ids: Vec<u32> = indices
            .iter()
            .map(|&index| u32::try_from(index))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| DataError::config("indices", "an index does not fit in u32"))?;
        let ids = Tensor::from_vec(ids, indices.len(), self.images.device())?;
        Ok(ImageSet {
            images: self.images.index_select(&ids, 0)?,
            labels: self
                .labels
                .index_select(&ids.to_device(self.labels.device())?, 0)?,
        })
    }

    /// The same set on another device (a GPU, say).
    pub fn to_device(&self, device: &Device) -> Result<ImageSet> {
        Ok(ImageSet {
            images: self.images.to_device(device)?,
            labels: self.labels.to_device(device)?,
        })
    }
}

/// A dataset's training and test sets.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// 60,000 images for training (and validation, if split off).
    pub train: ImageSet,
    /// 10,000 images for the final test.
    pub test: ImageSet,
}

impl Mnist {
    /// Loads MNIST from `data_dir/mnist/`; see the module documentation.
    pub fn load(data_dir: &Path) -> Result<Mnist> {
        ImageDataset::Mnist.load(data_dir)
    }
}

/// Fashion-MNIST: MNIST's format and sizes, with ten kinds of clothing instead of digits.
#[derive(Debug, Clone, Copy)]
pub struct FashionMnist;

impl FashionMnist {
    /// Loads Fashion-MNIST from `data_dir/fashion-mnist/`; see the module documentation.
    pub fn load(data_dir: &Path) -> Result<Mnist> {
        ImageDataset::FashionMnist.load(data_dir)
    }
}

/// The datasets stored as MNIST is: same files, same shapes, ten classes. Serialised as its
/// [`ImageDataset::key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageDataset {
    /// Handwritten digits 0–9.
    Mnist,
    /// Zalando's clothing images.
    FashionMnist,
}

impl ImageDataset {
    /// The display name, e.g. "MNIST".
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST",
            Self::FashionMnist => "Fashion-MNIST",
        }
    }

    /// The key used by `cargo xtask download-data --dataset KEY` and as the directory name.
    pub fn key(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
        }
    }

    /// The names of the ten classes, by label.
    pub fn class_names(self) -> [&'static str; CLASS_COUNT] {
        match self {
            Self::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Self::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// The directory holding this dataset's files: `data_dir/KEY`.
    pub fn directory(self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.key())
    }

    /// Loads the training and test sets from [`ImageDataset::directory`].
    pub fn load(self, data_dir: &Path) -> Result<Mnist> {
        let directory = self.directory(data_dir);
        // Find all four files first, so a missing download is reported before any decoding.
        let paths = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
            .map(|name| self.find_file(&directory, name));
        let [train_images, train_labels, test_images, test_labels] = paths;
        Ok(Mnist {
            train: load_set(&train_images?, &train_labels?)?,
            test: load_set(&test_images?, &test_labels?)?,
        })
    }

    /// Loads the dataset from `data_dir`, first downloading it (with progress bars, after a
    /// line on standard error saying so) when a file is missing, unless `offline`: what every
    /// program that trains on these images does.
    pub fn load_or_download(self, data_dir: &Path, offline: bool) -> Result<Mnist> {
        match self.load(data_dir) {
            Err(DataError::Missing { .. }) if !offline => {}
            loaded => return loaded,
        }
        eprintln!(
            "{} is not in {}: downloading it (use --data-dir or $DL_DATA_DIR to point elsewhere)",
            self.name(),
            self.directory(data_dir).display()
        );
        let options = crate::DownloadOptions {
            progress: true,
            ..crate::DownloadOptions::default()
        };
        crate::ensure_dataset(self.key(), data_dir, &options)?;
        self.load(data_dir)
    }

    /// `directory/NAME.gz`, else `directory/NAME`, else the Missing error.
    fn find_file(self, directory: &Path, name: &str) -> Result<PathBuf> {
        let compressed = directory.join(format!("{name}.gz"));
        if compressed.is_file() {
            return Ok(compressed);
        }
        let raw = directory.join(name);
        if raw.is_file() {
            return Ok(raw);
        }
        Err(DataError::Missing {
            dataset: self.name().to_string(),
            key: self.key().to_string(),
            directory: directory.to_path_buf(),
            file: format!("{name}.gz"),
        })
    }
}

/// Reads an image file and its label file and checks them against each other.
fn load_set(images_path: &Path, labels_path: &Path) -> Result<ImageSet> {
    let images = read_idx(images_path)?;
    check_magic(&images, IMAGES_MAGIC, "images", images_path)?;
    if images.dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
        return Err(DataError::corrupt(
            images_path,
            format!(
                "images are {}×{}, expected {IMAGE_SIDE}×{IMAGE_SIDE}",
                images.dims[1], images.dims[2]
            ),
        ));
    }
    let labels = read_idx(labels_path)?;
    check_magic(&labels, LABELS_MAGIC, "labels", labels_path)?;
    let count = images.dims[0];
    if labels.dims[0] != count {
        return Err(DataError::corrupt(
            labels_path,
            format!(
                "{} labels, but {} has {count} images; the two files must come from the same release",
                labels.dims[0],
                images_path.display()
            ),
        ));
    }
    if let Some(index) = labels
        .data
        .iter()
        .position(|&label| usize::from(label) >= CLASS_COUNT)
    {
        return Err(DataError::corrupt(
            labels_path,
            format!(
                "label {} at index {index} is out of range 0..={}",
                labels.data[index],
                CLASS_COUNT - 1
            ),
        ));
    }

    // One pass from bytes to f32 through a 256-entry table; from_vec takes the buffer as is.
    let scale: [f32; 256] = std::array::from_fn(|value| value as f32 / 255.0);
    let pixels: Vec<f32> = images
        .data
        .iter()
        .map(|&value| scale[usize::from(value)])
        .collect();
    let classes: Vec<u32> = labels.data.iter().map(|&label| u32::from(label)).collect();
    Ok(ImageSet {
        images: Tensor::from_vec(pixels, (count, 1, IMAGE_SIDE, IMAGE_SIDE), &Device::Cpu)?,
        labels: Tensor::from_vec(classes, count, &Device::Cpu)?,
    })
}

/// Checks the magic number of an MNIST part, naming what the file should hold.
fn check_magic(array: &IdxArray, expected: u32, what: &str, path: &Path) -> Result<()> {
    if array.magic() == expected {
        return Ok(());
    }
    Err(DataError::corrupt(
        path,
        format!(
            "magic number 0x{:08x} ({} dimensions), expected 0x{expected:08x} for MNIST {what}; \
             is this the right file?",
            array.magic(),
            array.dims.len()
        ),
    ))
}
