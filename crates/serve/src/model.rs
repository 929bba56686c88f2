//! The served model: one prepared image in, the prediction (and the explanation) out. Everything
//! here is synchronous and runs on the compute threads; [`crate::router`] puts it behind HTTP.

use dl_compress::ClassifierFile;
use dl_explain::{display_scale, Method};
use dl_nn::{Layer, Mode, Sequential};
use dl_tensor::{Device, Tensor};
use serde::Serialize;

use crate::{input::SIDE, ApiError};

/// How many classes an answer ranks.
const TOP: usize = 3;

/// A classifier (of any precision) ready to answer requests.
pub struct ServedModel {
    classifier: ClassifierFile,
    device: Device,
}

/// A class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedClass {
    /// The class's number.
    pub class: usize,
    /// Its name (the digit, or the garment for Fashion-MNIST).
    pub name: String,
    /// Its softmax probability.
    pub probability: f32,
}

/// The answer of `POST /api/predict`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The predicted class (the most probable one).
    pub class: usize,
    /// Its name.
    pub name: String,
    /// The probability of every class, in class order.
    pub probabilities: Vec<f32>,
    /// The three most probable classes, most probable first.
    pub top: Vec<RankedClass>,
}

/// The answer of `POST /api/explain`: the prediction, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The prediction, as `/api/predict` gives it.
    #[serde(flatten)]
    pub prediction: Prediction,
    /// The method's key (`saliency`, `ig`, ...).
    pub method: &'static str,
    /// The class explained: the predicted one unless the request named a `target`.
    pub explained_class: u32,
    /// The prepared input the model saw, 28 x 28 row by row in [0, 1].
    pub input: Vec<f32>,
    /// The attribution of every pixel, as the method computed it (signed for gradient x input
    /// and Integrated Gradients).
    pub attribution: Vec<f32>,
    /// |attribution| scaled to [0, 1] for display (divided by its 99th percentile).
    pub display: Vec<f32>,
    /// Integrated Gradients' |Σ attributions − (S(x) − S(baseline))|; absent for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness_error: Option<f32>,
}

/// What `GET /api/info` says about the served model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The architecture (`cnn`, `mlp`, ...).
    pub model: String,
    /// The dataset it was trained on.
    pub dataset: &'static str,
    /// `float` or `int8`.
    pub precision: &'static str,
    /// The class names, in class order.
    pub classes: Vec<String>,
    /// The methods that can explain this model (none for an int8 model).
    pub methods: Vec<MethodInfo>,
}

/// An explanation method the page can offer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodInfo {
    /// Its key, for `?method=`.
    pub key: &'static str,
    /// Its name for people.
    pub title: &'static str,
}

impl ServedModel {
    /// Serves `classifier`, computing on `device`.
    pub fn new(classifier: ClassifierFile, device: Device) -> Self {
        Self { classifier, device }
    }

    /// The class names.
    fn names(&self) -> [&'static str; 10] {
        self.classifier.recipe().dataset.class_names()
    }

    /// The float model, which explanations need.
    fn float_model(&self) -> Result<&Sequential, ApiError> {
        match &self.classifier {
            ClassifierFile::Float(loaded) => Ok(&loaded.model),
            ClassifierFile::Int8(_) => Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "this server runs an int8 model, which has no gradients to explain: /api/predict works; serve the float checkpoint it was quantized from to explain",
            )),
            ClassifierFile::Ensemble(_) => Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "this server runs an ensemble, whose explanation would mix its members': /api/predict works; serve one member's checkpoint to explain",
            )),
        }
    }

    /// Describes the model.
    pub fn info(&self) -> ModelInfo {
        let methods = match &self.classifier {
            ClassifierFile::Float(loaded) => Method::ALL
                .into_iter()
                .filter(|method| method.supports(&loaded.model))
                .map(|method| MethodInfo {
                    key: method.key(),
                    title: method.title(),
                })
                .collect(),
            ClassifierFile::Int8(_) | ClassifierFile::Ensemble(_) => Vec::new(),
        };
        ModelInfo {
            model: self.classifier.description(),
            dataset: self.classifier.recipe().dataset.name(),
            precision: self.classifier.precision(),
            classes: self.names().map(String::from).to_vec(),
            methods,
        }
    }

    /// The image (784 values) as a batch of one, (1, 1, 28, 28).
    fn batch(&self, image: &[f32]) -> Result<Tensor, ApiError> {
        Tensor::from_slice(image, (1, 1, SIDE, SIDE), &self.device).map_err(model_error)
    }

    /// Classifies one prepared image.
    pub fn predict(&self, image: &[f32]) -> Result<Prediction, ApiError> {
        let batch = self.batch(image)?;
        self.prediction(self.classifier.layer(), &batch)
    }

    fn prediction(&self, model: &dyn Layer, batch: &Tensor) -> Result<Prediction, ApiError> {
        let logits = model.forward(batch, Mode::Eval).map_err(model_error)?;
        let probabilities: Vec<f32> = dl_nn::softmax(&logits)
            .and_then(|probabilities| Ok(probabilities.flatten_all()?.to_vec1()?))
            .map_err(model_error)?;
        let names = self.names();
        let mut ranked: Vec<RankedClass> = probabilities
            .iter()
            .enumerate()
            .map(|(class, &probability)| RankedClass {
                class,
                name: names.get(class).copied().unwrap_or("?").to_string(),
                probability,
            })
            .collect();
        ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        ranked.truncate(TOP);
        let best = ranked
            .first()
            .cloned()
            .ok_or_else(|| ApiError::internal("the model gave no class scores"))?;
        Ok(Prediction {
            class: best.class,
            name: best.name,
            probabilities,
            top: ranked,
        })
    }

    /// Classifies one prepared image and explains the class `target` (the predicted class by
    /// default) with `method`.
    pub fn explain(
        &self,
        image: &[f32],
        method: Method,
        target: Option<u32>,
    ) -> Result<Explanation, ApiError> {
        let model = self.float_model()?;
        if !method.supports(model) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{} needs a convolution and this {} has none: choose saliency, ig or occlusion",
                    method.title(),
                    self.classifier.recipe().model
                ),
            ));
        }
        let batch = self.batch(image)?;
        let prediction = self.prediction(model, &batch)?;
        let classes = prediction.probabilities.len();
        let explained_class = match target {
            Some(target) if target as usize >= classes => {
                return Err(ApiError::bad_request(format!(
                    "target {target}: the model has {classes} classes (0 to {})",
                    classes - 1
                )))
            }
            Some(target) => target,
            None => prediction.class as u32,
        };
        let attribution = method
            .attribute(model, &batch, &[explained_class])
            .map_err(model_error)?;
        let attribution_values: Vec<f32> = attribution
            .map
            .flatten_all()
            .and_then(|map| map.to_vec1())
            .map_err(model_error)?;
        Ok(Explanation {
            prediction,
            method: method.key(),
            explained_class,
            input: image.to_vec(),
            display: display_scale(&attribution_values),
            attribution: attribution_values,
            completeness_error: attribution
                .completeness_error
                .and_then(|errors| errors.first().copied()),
        })
    }
}

/// A failure of the model itself: the server's fault, not the request's.
fn model_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("the model failed: {error}"))
}
