//! dl-data: the data side of the course's projects — MNIST images (§5.1) and text corpora
//! (§5.2) — read, checked, tokenized, batched reproducibly and, when missing, downloaded and
//! verified.
//!
//! Nothing here panics on bad input: a truncated IDX file, invalid UTF-8 or an empty corpus is a
//! [`DataError`] that names the file and what is wrong.

mod augment;
mod data_dir;
mod digit_image;
mod download;
mod error;
mod hub;
mod idx;
mod loader;
mod manifest;
mod mnist;
mod text;
mod text_loader;
mod tokenizer;

pub use augment::{warp_batch, AffineTransform, AugmentConfig, Augmenter};
pub use data_dir::{resolve_data_dir, DATA_DIR_VARIABLE};
pub use digit_image::{
    decode_digit, load_digit, prepare as prepare_digit, MAX_PIXELS, SIDE as DIGIT_SIDE,
};
pub use download::{
    download_dataset, download_dataset_from, ensure_dataset, ensure_dataset_from, DownloadOptions,
    DownloadReport, FileOutcome, FileReport, Source,
};
pub use error::{DataError, Result};
pub use hub::{
    hub_cache_dir, hub_file, is_hub_spec, tokenizer_spec, HubFile, HubOptions, HUB_PREFIX,
    TOKENIZER_FILE,
};
pub use idx::{
    parse_idx, read_idx, IdxArray, IDX_UNSIGNED_BYTE, MAX_IDX_DIMENSIONS, MAX_IDX_ELEMENTS,
};
pub use loader::{split_validation, BatchLoader, EpochBatches};
pub use manifest::{verify_file, DatasetEntry, FileEntry, Manifest, BUILTIN_MANIFEST};
pub use mnist::{
    FashionMnist, ImageDataset, ImageSet, Mnist, CLASS_COUNT, IMAGE_SIDE, MNIST_MEAN, MNIST_STD,
};
pub use text::{corpus_from_bytes, read_corpus, split_train_validation};
pub use text_loader::{RandomWindowBatches, SequentialWindowBatches, TextWindows};
pub use tokenizer::{CharVocabulary, StreamingDecoder, Tokenizer};
