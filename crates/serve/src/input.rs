//! The digit in a request's body, in one of three forms chosen by its `Content-Type`:
//!
//! | Content-Type | body | preparation |
//! |---|---|---|
//! | `image/png`, `image/jpeg` | an image file of any size and colour | as `predict` prepares a file: ink found, cropped, scaled to 20 x 20 and centred by mass in 28 x 28 ([`dl_data::decode_digit`]) |
//! | `application/octet-stream` | 784 bytes, row by row, 0 = background, 255 = ink | none: already an MNIST image |
//! | `application/json` | `{"pixels": [784 numbers in 0..=1]}` | none |
//!
//! The result is always 784 values in [0, 1], white ink on black, like MNIST's images.

use std::path::Path;

use axum::http::StatusCode;
use serde::Deserialize;

use crate::ApiError;

/// The side of the images the models read.
pub const SIDE: usize = 28;
/// The pixels of one image.
pub const PIXELS: usize = SIDE * SIDE;

/// The content types the API reads, for messages.
const ACCEPTED: &str = "image/png, image/jpeg, application/octet-stream (784 bytes) or application/json ({\"pixels\": [784 numbers in 0..=1]})";

/// A JSON body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PixelsBody {
    pixels: Vec<f64>,
}

/// The prepared 28 x 28 image in `body`, read as `content_type` says.
pub fn digit_from_body(content_type: Option<&str>, body: &[u8]) -> Result<Vec<f32>, ApiError> {
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    let Some(media_type) = media_type.filter(|value| !value.is_empty()) else {
        return Err(unsupported("no Content-Type"));
    };
    if body.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the body is empty: send the digit as {ACCEPTED}"
        )));
    }
    match media_type.as_str() {
        "image/png" | "image/jpeg" | "image/jpg" => {
            dl_data::decode_digit(body, Path::new("the uploaded image"))
                .map_err(|error| ApiError::bad_request(format!("{error}")))
        }
        "application/octet-stream" => {
            if body.len() != PIXELS {
                return Err(ApiError::bad_request(format!(
                    "raw pixels must be exactly {PIXELS} bytes (28 x 28, row by row, 0 = background), not {}; send an image file as image/png instead",
                    body.len()
                )));
            }
            Ok(body.iter().map(|&byte| f32::from(byte) / 255.0).collect())
        }
        "application/json" => {
            let parsed: PixelsBody = serde_json::from_slice(body).map_err(|error| {
                ApiError::bad_request(format!(
                    "the JSON body must be {{\"pixels\": [{PIXELS} numbers in 0..=1]}}: {error}"
                ))
            })?;
            if parsed.pixels.len() != PIXELS {
                return Err(ApiError::bad_request(format!(
                    "\"pixels\" must hold {PIXELS} numbers (28 x 28, row by row), not {}",
                    parsed.pixels.len()
                )));
            }
            if let Some(position) = parsed
                .pixels
                .iter()
                .position(|value| !(0.0..=1.0).contains(value))
            {
                return Err(ApiError::bad_request(format!(
                    "pixel {position} is {}: every pixel must lie in 0..=1 (0 = background, 1 = ink)",
                    parsed.pixels[position]
                )));
            }
            Ok(parsed.pixels.iter().map(|&value| value as f32).collect())
        }
        other => Err(unsupported(&format!("Content-Type {other}"))),
    }
}

/// 415 for a body of another type.
fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "{what}: send the digit as {ACCEPTED}, e.g. curl -H 'Content-Type: image/png' --data-binary @digit.png"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_are_scaled_and_json_pixels_kept() {
        let mut bytes = vec![0u8; PIXELS];
        bytes[5] = 255;
        bytes[6] = 51;
        let image = digit_from_body(Some("application/octet-stream"), &bytes).unwrap();
        assert_eq!((image[5], image[6], image[7]), (1.0, 0.2, 0.0));
        let mut pixels = vec![0.0; PIXELS];
        pixels[3] = 0.5;
        let body = serde_json::to_vec(&serde_json::json!({ "pixels": pixels })).unwrap();
        let image = digit_from_body(Some("Application/JSON; charset=utf-8"), &body).unwrap();
        assert_eq!(image[3], 0.5);
    }

    #[test]
    fn every_bad_body_is_a_4xx_that_says_what_to_send() {
        let cases: [(Option<&str>, &[u8], u16, &str); 8] = [
            (None, b"x", 415, "no Content-Type"),
            (Some("text/plain"), b"x", 415, "image/png"),
            (Some("image/png"), b"", 400, "empty"),
            (Some("image/png"), b"not an image", 400, "uploaded image"),
            (
                Some("application/octet-stream"),
                &[0; 10],
                400,
                "exactly 784 bytes",
            ),
            (
                Some("application/json"),
                b"{\"pixels\": [0.5]}",
                400,
                "784 numbers",
            ),
            (
                Some("application/json"),
                b"{\"pixel\": []}",
                400,
                "unknown field",
            ),
            (Some("application/json"), b"[1, 2", 400, "JSON body"),
        ];
        for (content_type, body, status, expected) in cases {
            let error = digit_from_body(content_type, body).unwrap_err();
            assert_eq!(error.status.as_u16(), status, "{content_type:?}: {error}");
            assert!(
                error.message.contains(expected),
                "{content_type:?}: {error}"
            );
        }
        let mut pixels = vec![0.0; PIXELS];
        pixels[9] = 1.5;
        let body = serde_json::to_vec(&serde_json::json!({ "pixels": pixels })).unwrap();
        let error = digit_from_body(Some("application/json"), &body).unwrap_err();
        assert!(error.message.contains("pixel 9 is 1.5"), "{error}");
    }
}
