//! The endpoints: the page, the model's description, prediction and explanation. The two that
//! run the model read the body, hand the work to a compute worker and answer its JSON.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, QueryRejection},
        Query, State,
    },
    http::{header::CONTENT_TYPE, HeaderMap, StatusCode},
    response::Html,
    Json,
};
use dl_explain::Method;
use serde::Deserialize;

use crate::{
    input::digit_from_body,
    model::{Explanation, ModelInfo, Prediction},
    router::Server,
    ApiError,
};

/// The page where a person draws a digit (static HTML and JavaScript, no build step).
pub async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// `GET /api/info`: the model, its classes and the methods that can explain it.
pub async fn info(State(server): State<Arc<Server>>) -> Json<ModelInfo> {
    Json(server.model.info())
}

/// `POST /api/predict`: the digit in the body, classified.
pub async fn predict(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Prediction>, ApiError> {
    let body = body.map_err(|rejection| body_error(&rejection, &server))?;
    let content_type = content_type(&headers);
    let prediction = server
        .compute(move |model| {
            let image = digit_from_body(content_type.as_deref(), &body)?;
            model.predict(&image)
        })
        .await?;
    Ok(Json(prediction))
}

/// The query of `/api/explain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// The method's key (saliency by default).
    method: Option<String>,
    /// The class to explain (the predicted one by default).
    target: Option<u32>,
}

/// `POST /api/explain?method=M&target=C`: the digit in the body, classified and explained.
pub async fn explain(
    State(server): State<Arc<Server>>,
    query: Result<Query<ExplainQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Explanation>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!(
            "{}: the parameters are method (one of {}) and target (a class number)",
            rejection.body_text(),
            Method::ALL.map(Method::key).join(", ")
        ))
    })?;
    let method = match query.method.as_deref() {
        None => Method::Saliency,
        Some(key) => key
            .parse::<Method>()
            .map_err(|error| ApiError::bad_request(error.to_string()))?,
    };
    let body = body.map_err(|rejection| body_error(&rejection, &server))?;
    let content_type = content_type(&headers);
    let explanation = server
        .compute(move |model| {
            let image = digit_from_body(content_type.as_deref(), &body)?;
            model.explain(&image, method, query.target)
        })
        .await?;
    Ok(Json(explanation))
}

/// The request's `Content-Type`, when it is readable text.
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// A body that could not be read: too large, or cut off.
fn body_error(rejection: &BytesRejection, server: &Server) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than this server's limit of {} bytes: send a smaller image (28 x 28 is all the model reads)",
                server.limits.max_body_bytes
            ),
        )
    } else {
        ApiError::new(
            rejection.status(),
            format!("the body could not be read: {}", rejection.body_text()),
        )
    }
}
