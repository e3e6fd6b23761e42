//! Request extractors that fail the API's way. axum's own `Json`, `Query` and
//! `Path` reject with plain-text bodies; these reject with the JSON error body,
//! the right status (400 malformed, 408 too slow, 413 too large, 415 not JSON,
//! 422 invalid), and the name of the offending field.

use super::domain::FieldError;
use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;
use uuid::Uuid;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How long a client may take to send its body. Shorter than the request
/// deadline, so a slow sender is told 408 (its fault), not 503 (ours).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A JSON body deserialized into `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(request, state))
            .await
            .map_err(|_| ApiError::RequestTimeout(BODY_READ_TIMEOUT))?
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit: BODY_LIMIT }
                } else {
                    ApiError::MalformedJson(e.body_text())
                }
            })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                ApiError::InvalidField(field_error(&path, &inner.to_string()))
            } else {
                ApiError::MalformedJson(inner.to_string())
            }
        })?;
        deserializer.end().map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        Ok(Self(value))
    }
}

/// Query parameters deserialized into `T`; a bad one is a 422 naming it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Self)
            .map_err(|e| ApiError::InvalidField(field_error(&e.path().to_string(), &e.into_inner().to_string())))
    }
}

/// serde reports a missing or unknown field at the enclosing path and names the
/// field only in its message ("missing field `name`"); take it from there.
fn field_error(path: &str, message: &str) -> FieldError {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.find(prefix).map(|at| &message[at + prefix.len()..]))
        .and_then(|rest| rest.split('`').next());
    let field = match (path, named) {
        (".", Some(name)) => name.to_string(),
        // An unknown field is already the last segment of the path.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => path.to_string(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_string(),
    };
    FieldError::new(field, message.to_string())
}

/// The id segment of a request's path. axum's `Path` answers an id that
/// percent-decodes to something other than UTF-8 with a plain-text 400; such
/// an id names nothing, like any other that is not a UUID, so it is kept as
/// the replacement character and found missing (404 JSON) by [`parse_id`].
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id =
            Path::<String>::from_request_parts(parts, state).await.map_or_else(|_| "\u{FFFD}".to_string(), |p| p.0);
        Ok(Self(id))
    }
}

/// An id from the path. One that is not a UUID names nothing that exists.
pub fn parse_id(what: &'static str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_from_path_or_message() {
        assert_eq!(field_error(".", "missing field `name` at line 1 column 2").field, "name");
        assert_eq!(field_error("kind", "missing field `count`").field, "kind.count");
        assert_eq!(field_error("surprise", "unknown field `surprise`, expected `name`").field, "surprise");
        assert_eq!(field_error("confidence", "invalid type: string \"x\", expected f64").field, "confidence");
    }
}
