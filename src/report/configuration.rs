//! The options a scenario ran with, as its report shows them: no tokens, and
//! the database URL without its password. The scenario fills it in; the report
//! keeps it so that two runs can be told apart (and compared fairly).

use crate::control::plan::LoadProfile;
use crate::control::threshold::Threshold;
use serde::{Deserialize, Serialize};

/// Phase 6's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub max_avg_ms: f64,
    pub max_latency_ms: f64,
    /// A fraction: 0.1 is 10%.
    pub max_error_rate: f64,
    /// `--threshold` criteria, k6-style (absent from reports of runs without).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<Threshold>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfiguration {
    pub backend: String,
    /// Whether the scenario started the backend itself.
    pub bundled_backend: bool,
    /// Redacted: `postgres://user:***@host:port/db`.
    pub database: String,
    /// The load phase's.
    #[serde(flatten)]
    pub profile: LoadProfile,
    pub expect_workers: Option<u32>,
    pub iterations: u32,
    pub chaos: bool,
    pub chaos_rate: Option<f64>,
    pub thresholds: Thresholds,
    pub out: String,
}

#[cfg(test)]
mod tests {
    #[test]
    fn it_serializes_to_the_keys_reports_have_always_had() {
        let configuration = crate::report::tests::configuration();
        // As a JSON value (how the report holds it), its keys are sorted.
        let json = serde_json::to_value(&configuration).unwrap().to_string();
        assert_eq!(
            json,
            r#"{"backend":"http://127.0.0.1:1","bundled_backend":true,"chaos":false,"chaos_rate":null,"database":"postgres://grace:***@127.0.0.1:5432/grace","expect_workers":null,"iterations":1,"out":"grace-reports","rate":null,"run_time_secs":3,"thresholds":{"max_avg_ms":500.0,"max_error_rate":0.1,"max_latency_ms":2000.0},"users":10}"#
        );
    }
}
