//! The backend's vocabulary, parsed at the request boundary. A request body is
//! deserialized into a plain DTO, then converted into these types; a value that
//! does not parse becomes a 422 naming its field, and nothing past the handler
//! ever sees a raw string or an out-of-range number.

use crate::specification::ConfidencePath;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A field that failed to parse, and why. Turned into a 422 by the API layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A snake_case identifier such as `database_locked`: what the policy is keyed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorType(String);

impl ErrorType {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let valid = (1..=63).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err(FieldError::new("error_type", "must be 1-63 characters of a-z, 0-9 and _, starting with a letter"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How sure the detector is, in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Confidence(f64);

impl Confidence {
    pub fn parse(value: f64) -> Result<Self, FieldError> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(FieldError::new("confidence", format!("must be a number from 0 to 1, got {value}")))
        }
    }

    pub fn value(self) -> f64 {
        self.0
    }

    /// Its band: the specification's confidence path.
    pub fn path(self) -> ConfidencePath {
        ConfidencePath::of(self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            "critical" => Ok(Self::Critical),
            _ => Err(FieldError::new("severity", "must be one of low, medium, high, critical")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// The client's key for a write; a retry with the same key writes nothing new.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let valid = (1..=200).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_graphic());
        if valid {
            Ok(Self(raw.to_string()))
        } else {
            Err(FieldError::new("idempotency_key", "must be 1-200 printable ASCII characters without spaces"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text with a length bound, for messages, titles and names.
pub fn bounded_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, FieldError> {
    let length = raw.chars().count();
    if raw.trim().is_empty() {
        Err(FieldError::new(field, "must not be empty"))
    } else if length > max_chars {
        Err(FieldError::new(field, format!("must be at most {max_chars} characters, got {length}")))
    } else {
        Ok(raw.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_confidence_is_refused() {
        for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            assert_eq!(Confidence::parse(bad).unwrap_err().field, "confidence");
        }
    }

    #[test]
    fn error_types_and_keys_are_parsed_strictly() {
        assert!(ErrorType::parse("database_locked").is_ok());
        for bad in ["", "Database", "9lives", "drop table", &"a".repeat(64)] {
            assert!(ErrorType::parse(bad).is_err(), "{bad}");
        }
        assert!(IdempotencyKey::parse("run-1/w-2/u-3/17").is_ok());
        for bad in ["", "has space", &"k".repeat(201)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad}");
        }
    }
}
