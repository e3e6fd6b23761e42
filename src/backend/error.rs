//! The API's one error type. Every failure a client can see is one of these, and
//! each renders as `{"error": {"code", "message", "field"?}}` with its status, so
//! clients (and the validator) can tell bad input, missing rights, injected
//! faults and an absent database apart without parsing prose.

use super::domain::FieldError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// Marks responses whose failure was injected on purpose, so they are counted
/// apart from genuine errors.
pub const FAULT_HEADER: &str = "x-grace-fault";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("expected a body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(Duration),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{}: {}", .0.field, .0.message)]
    InvalidField(FieldError),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("a bearer token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    #[error("this needs the {needed} role")]
    Forbidden { needed: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("fault injection is disabled; start the server with --enable-faults")]
    FaultsDisabled,
    #[error("injected fault: {0}")]
    InjectedFault(String),
    #[error("the action executor's circuit breaker is open; retry later")]
    CircuitOpen { retry_after: Duration },
    #[error("the database is unavailable: {0}")]
    DatabaseUnavailable(String),
    #[error("the Trigger Mesh did not deliver: {0}")]
    MeshUnavailable(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    AtCapacity(String),
    #[error("internal error: {0}")]
    Unexpected(String),
}

/// The wire form of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidField(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } | Self::FaultsDisabled => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::InjectedFault(_)
            | Self::CircuitOpen { .. }
            | Self::DatabaseUnavailable(_)
            | Self::MeshUnavailable(_)
            | Self::AtCapacity(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RequestTimeout(_) => "request_timeout",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::InvalidField(_) => "invalid_field",
            Self::NotFound { .. } => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::Conflict(_) => "conflict",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::FaultsDisabled => "faults_disabled",
            Self::InjectedFault(_) => "injected_fault",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::DatabaseUnavailable(_) => "database_unavailable",
            Self::MeshUnavailable(_) => "mesh_unavailable",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::AtCapacity(_) => "at_capacity",
            Self::Unexpected(_) => "internal",
        }
    }

    /// What was not found, naming at most the first 100 characters of the id
    /// asked for (a 20,000-character path segment is not echoed back whole).
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        let id = id.to_string();
        let id = match id.char_indices().nth(100) {
            Some((end, _)) => format!("{}…", &id[..end]),
            None => id,
        };
        Self::NotFound { what, id }
    }

    /// True for failures worth retrying in the executor: injected step faults
    /// and a database that went away for a moment.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::InjectedFault(_) | Self::DatabaseUnavailable(_))
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::InvalidField(e)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        if crate::db::connection_lost(&e) {
            Self::DatabaseUnavailable(e.to_string())
        } else {
            Self::Unexpected(format!("database: {}", crate::db::describe(&e)))
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        // Every pool failure (a timeout, a connection that could not be made or
        // recycled) means the database cannot be reached right now.
        Self::DatabaseUnavailable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // What went wrong inside stays in the server's log: a 5xx body never
        // carries the database's own words (table names, constraints, SQL).
        let message = match &self {
            Self::Unexpected(_) => {
                tracing::error!(error = %self, "request failed unexpectedly");
                "internal error; the server's log has the details".to_string()
            }
            Self::DatabaseUnavailable(_) => {
                tracing::warn!(error = %self, "request refused: database unavailable");
                "the database is unavailable; retry later".to_string()
            }
            _ => self.to_string(),
        };
        let field = match &self {
            Self::InvalidField(e) => Some(e.field.clone()),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code: self.code(), message, field } };
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::InjectedFault(_) => {
                headers.insert(FAULT_HEADER, HeaderValue::from_static("injected"));
            }
            Self::CircuitOpen { retry_after } => {
                // Rounded up: a client that waits this long finds the breaker closed.
                let seconds = (retry_after.as_secs_f64().ceil() as u64).max(1).to_string();
                headers
                    .insert(header::RETRY_AFTER, HeaderValue::from_str(&seconds).expect("digits are a valid header"));
            }
            Self::DatabaseUnavailable(_) | Self::TooManyRequests(_) | Self::AtCapacity(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
