//! The training settings a checkpoint records beside its recipe, as one JSON metadata entry
//! (`training`), so that `evaluate` can say how a model was trained.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cli::TrainArgs;

/// How a model was trained (besides its recipe and schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSettings {
    /// Seed of initialisation, shuffling, dropout and augmentation.
    pub seed: u64,
    /// Examples per gradient step.
    pub batch_size: usize,
    /// The base learning rate η.
    pub learning_rate: f64,
    /// The optimizer's name.
    pub optimizer: String,
    /// The weight decay λ.
    pub weight_decay: f64,
    /// Whether the training images were augmented.
    pub augment: bool,
    /// Whether the model learned randomly permuted labels (`--shuffle-labels`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shuffled_labels: bool,
}

impl TrainingSettings {
    /// The settings of a `train` command.
    pub fn of(arguments: &TrainArgs) -> Self {
        Self {
            seed: arguments.seed(),
            batch_size: arguments.batch_size,
            learning_rate: arguments.learning_rate,
            optimizer: format!("{:?}", arguments.optimizer).to_lowercase(),
            weight_decay: arguments.weight_decay,
            augment: arguments.augment,
            shuffled_labels: arguments.shuffle_labels,
        }
    }

    /// The settings recorded in `metadata`: the `training` entry, or the separate entries of a
    /// checkpoint written before it (`None` when neither is there).
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Option<Self> {
        if let Some(json) = metadata.get(dl_train::TRAINING_KEY) {
            return serde_json::from_str(json).ok();
        }
        let field = |key: &str| metadata.get(key);
        Some(Self {
            seed: field("seed")?.parse().ok()?,
            batch_size: field("batch_size")?.parse().ok()?,
            learning_rate: field("learning_rate")?.parse().ok()?,
            optimizer: field("optimizer")?.clone(),
            weight_decay: field("weight_decay")
                .and_then(|value| value.parse().ok())
                .unwrap_or(0.0),
            augment: field("augment").is_some_and(|value| value == "true"),
            shuffled_labels: false,
        })
    }
}
