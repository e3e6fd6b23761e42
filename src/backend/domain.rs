//! The backend's vocabulary, parsed at the request boundary. A request body is
//! deserialized into a plain DTO, then converted into these types; a value that
//! does not parse becomes a 422 naming its field, and nothing past the handler
//! ever sees a raw string or an out-of-range number.

use crate::specification::ConfidencePath;

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
    if raw.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    optional_text(field, raw, max_chars)
}

/// Free text that may be empty (a mission's goal), at most `max_chars`.
pub fn optional_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, FieldError> {
    let length = raw.chars().count();
    if raw.contains('\0') {
        Err(FieldError::new(field, NUL))
    } else if length > max_chars {
        Err(FieldError::new(field, format!("must be at most {max_chars} characters, got {length}")))
    } else {
        Ok(raw.to_string())
    }
}

/// Postgres stores no NUL character in `text` or `jsonb`: refused at the edge
/// rather than failing in the database.
const NUL: &str = "must not contain the NUL character (\\u0000)";

/// A JSON document Postgres can store: no NUL in any key or string. (Every
/// number serde_json accepts round-trips: jsonb writes it out in full decimal
/// and serde_json, with `float_roundtrip`, reads it back exactly.)
pub fn storable_json(field: &'static str, value: &serde_json::Value) -> Result<(), FieldError> {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Err(FieldError::new(field, NUL)),
        Value::Array(items) => items.iter().try_for_each(|item| storable_json(field, item)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            if key.contains('\0') {
                return Err(FieldError::new(field, NUL));
            }
            storable_json(field, item)
        }),
        _ => Ok(()),
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

    #[test]
    fn free_text_is_bounded_and_never_holds_nul() {
        let message = |result: Result<String, FieldError>| result.unwrap_err().message;
        assert_eq!(bounded_text("name", "ok", 5).unwrap(), "ok");
        assert_eq!(message(bounded_text("name", "  ", 5)), "must not be empty");
        assert_eq!(message(bounded_text("name", "toolong", 5)), "must be at most 5 characters, got 7");
        assert!(message(bounded_text("name", "a\0b", 5)).contains("NUL"));
        assert_eq!(optional_text("goal", "", 5).unwrap(), "");
        assert!(message(optional_text("goal", "\0", 5)).contains("NUL"));
    }

    #[test]
    fn json_is_storable_unless_a_key_or_string_holds_nul() {
        let nul = "a\0";
        assert!(storable_json("payload", &serde_json::json!({ "x": [1, "two", { "three": f64::MAX }] })).is_ok());
        for bad in [
            serde_json::json!({ "x": nul }),
            serde_json::json!({ nul: 1 }),
            serde_json::json!({ "x": [[{ "y": nul }]] }),
        ] {
            assert_eq!(storable_json("payload", &bad).unwrap_err().field, "payload", "{bad}");
        }
    }
}
