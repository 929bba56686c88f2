//! dl-models: the project's model zoo and "checkpoint → ready model", so that the apps, the
//! bench, and what builds on trained models (an ensemble, a GAN's scorer, pruning, saliency)
//! share one definition of every network.
//!
//! | file | what | course |
//! |---|---|---|
//! | `image_classifier.rs` | [`ImageModel`]: logreg, mlp, course-cnn, lenet5, cnn; [`ImageRecipe`] | §5.1 图像分类 |
//! | `gan.rs` | [`Gan`]: DCGAN and MLP generator + discriminator, optionally conditional; [`GanRecipe`] | §2.3 生成对抗网络 |
//! | `language_model.rs` | [`TextModel`]: Embedding → LSTM → Dense; [`TextRecipe`] | §5.2 文本生成 |
//! | `recipe.rs` | [`Recipe`]: the checkpoint's `recipe` JSON entry (and the older format) | |
//! | `load.rs` | [`load`], [`load_image_classifier`], [`load_language_model`] | |
//!
//! ```
//! use dl_models::{ImageModel, ImageRecipe};
//! use dl_nn::VarStore;
//! use dl_tensor::{DType, Device};
//!
//! let store = VarStore::new(&Device::Cpu, DType::F32, 42);
//! let recipe = ImageRecipe::new(ImageModel::CourseCnn, dl_data::ImageDataset::Mnist);
//! let model = recipe.build(&store)?;
//! assert_eq!(store.parameter_count(), 693_962); // as Keras counts the course's CNN
//! # let _ = model;
//! # Ok::<(), dl_models::ModelsError>(())
//! ```

mod error;
mod gan;
mod image_classifier;
mod language_model;
mod load;
mod recipe;

pub use error::{ModelsError, Result};
pub use gan::{
    images_to_bytes, Discriminator, Gan, GanModel, GanRecipe, Generator, DISCRIMINATOR_PREFIX,
    EMA_DECAY, GAN_CLASSES, GENERATOR_EMA_PREFIX, GENERATOR_PREFIX, MAX_GAN_WIDTH,
};
pub use image_classifier::{ImageModel, ImageRecipe, LayerWidths, IMAGE_SHAPE, MAX_WIDTH_FACTOR};
pub use language_model::{
    TextModel, TextModelConfig, TextRecipe, MAX_LAYERS, MAX_VOCABULARY, MAX_WIDTH,
};
pub use load::{
    checkpoint_file, from_checkpoint, gan_recipe, language_model_recipe, load, load_gan,
    load_image_classifier, load_language_model, Loaded, LoadedGan, LoadedImageClassifier,
    LoadedLanguageModel, LoadedModel,
};
pub use recipe::{
    Recipe, APP_KEY, ENSEMBLE_KEY, GAN_APP, IMAGE_CLASSIFIER_APP, LANGUAGE_MODEL_APP,
    LANGUAGE_MODEL_ARCHITECTURE, RECIPE_KEY, TOKENIZER_KEY,
};
