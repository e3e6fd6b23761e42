//! Fault injection's bodies (admins only; see `backend::faults`).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// The mission the fault applies to; every mission when absent.
    pub mission_id: Option<Uuid>,
    pub kind: FaultKind,
}

/// What an admin can switch on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    SabotageVerification {
        #[schema(minimum = 1, maximum = 1_000_000)]
        #[serde(deserialize_with = "whole_number")]
        count: u32,
    },
    Chaos {
        #[schema(minimum = 0.0, maximum = 1.0)]
        rate: f64,
    },
}

/// A count written as JSON Schema counts integers: `3` or `3.0` (what some
/// clients send for a whole number), but not `3.5`.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = number.as_u64().map(|n| n as f64).or_else(|| number.as_f64()).filter(|n| n.fract() == 0.0);
    match whole {
        Some(n) if (0.0..=f64::from(u32::MAX)).contains(&n) => Ok(n as u32),
        _ => Err(serde::de::Error::custom(format!("expected a whole number from 0 to {}, got {number}", u32::MAX))),
    }
}

/// The faults in force, as the admin API reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FaultsView {
    pub enabled: bool,
    /// Remaining sabotaged verifications by mission (`"*"` for any mission).
    pub sabotage: HashMap<String, u32>,
    /// Chaos rate by mission (`"*"` for every request).
    pub chaos: HashMap<String, f64>,
    /// Faults injected by the replica that answered, since it started.
    pub injected_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_a_whole_number_however_it_is_written() {
        for (body, count) in
            [(r#"{"sabotage_verification":{"count":3}}"#, 3), (r#"{"sabotage_verification":{"count":65535.0}}"#, 65535)]
        {
            let kind: FaultKind = serde_json::from_str(body).unwrap();
            assert_eq!(kind, FaultKind::SabotageVerification { count });
        }
        for body in [
            r#"{"sabotage_verification":{"count":2.5}}"#,
            r#"{"sabotage_verification":{"count":-1}}"#,
            r#"{"sabotage_verification":{"count":"3"}}"#,
        ] {
            assert!(serde_json::from_str::<FaultKind>(body).is_err(), "{body}");
        }
    }
}
