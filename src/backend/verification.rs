//! Verification benchmarks: after an action executes, a benchmark measures the
//! system and compares it with the golden baseline (`benchmark_baselines`,
//! seeded by `grace bootstrap`). Drift beyond the baseline's allowance fails
//! the verification.
//!
//! The backend under test has no real system to measure, so a benchmark's
//! metrics are the baseline's, moved by a small deterministic amount derived
//! from the contract id (within every allowance); a sabotaged verification
//! triples the latency and error rate, far outside any allowance.

use super::error::ApiError;
use crate::specification::BenchmarkKind;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use tokio_postgres::GenericClient;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Baseline {
    metrics: Map<String, Value>,
    max_drift: f64,
}

/// The golden baselines, loaded once at start.
#[derive(Debug, Clone)]
pub struct Baselines {
    by_kind: HashMap<BenchmarkKind, Baseline>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchmarkVerdict {
    pub metrics: Value,
    /// The largest relative deviation of any metric from the baseline.
    pub drift: f64,
    pub passed: bool,
}

/// The natural jitter of a healthy benchmark: latency and errors ±4%,
/// throughput the inverse (under 4.2%), all inside the 10% regression allowance.
const JITTER: f64 = 0.04;
/// How much worse a sabotaged run looks.
const SABOTAGE_FACTOR: f64 = 3.0;

impl Baselines {
    pub async fn load(client: &impl GenericClient) -> Result<Self, ApiError> {
        let rows = client.query("SELECT kind, metrics, max_drift FROM benchmark_baselines", &[]).await?;
        let mut by_kind = HashMap::new();
        for row in rows {
            let metrics: Value = row.try_get("metrics")?;
            let Value::Object(metrics) = metrics else { continue };
            by_kind.insert(row.try_get("kind")?, Baseline { metrics, max_drift: row.try_get("max_drift")? });
        }
        for kind in BenchmarkKind::ALL {
            if !by_kind.contains_key(kind) {
                return Err(ApiError::Unexpected(format!("no {kind} baseline; run `grace bootstrap`")));
            }
        }
        Ok(Self { by_kind })
    }

    /// Runs a benchmark of `kind` for `contract`.
    pub fn run(&self, kind: BenchmarkKind, contract: Uuid, sabotaged: bool) -> BenchmarkVerdict {
        let baseline = &self.by_kind[&kind];
        // A value in [-1, 1] that is the same every time for this contract.
        let wobble = (contract.as_bytes()[0] as f64 / 127.5) - 1.0;
        let factor = if sabotaged { SABOTAGE_FACTOR } else { 1.0 + JITTER * wobble };
        let mut drift: f64 = 0.0;
        let mut metrics = Map::new();
        for (name, value) in &baseline.metrics {
            let Some(expected) = value.as_f64() else { continue };
            // Throughput gets worse downwards, everything else upwards.
            let measured = if name.starts_with("throughput") { expected / factor } else { expected * factor };
            if expected != 0.0 {
                drift = drift.max(((measured - expected) / expected).abs());
            }
            metrics.insert(name.clone(), Value::from(measured));
        }
        BenchmarkVerdict { metrics: Value::Object(metrics), drift, passed: drift <= baseline.max_drift }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn baselines() -> Baselines {
        let metrics = json!({"p95_latency_ms": 250.0, "error_rate": 0.01, "throughput_rps": 100.0});
        let Value::Object(metrics) = metrics else { unreachable!() };
        let by_kind = [(BenchmarkKind::Smoke, 0.25), (BenchmarkKind::Regression, 0.10)]
            .into_iter()
            .map(|(kind, max_drift)| (kind, Baseline { metrics: metrics.clone(), max_drift }))
            .collect();
        Baselines { by_kind }
    }

    #[test]
    fn healthy_runs_pass_every_baseline_and_sabotaged_runs_fail_them() {
        let baselines = baselines();
        for _ in 0..200 {
            let contract = Uuid::new_v4();
            for &kind in BenchmarkKind::ALL {
                let healthy = baselines.run(kind, contract, false);
                assert!(healthy.passed && healthy.drift < 0.05, "{healthy:?}");
                assert_eq!(healthy, baselines.run(kind, contract, false), "deterministic per contract");
                let sabotaged = baselines.run(kind, contract, true);
                assert!(!sabotaged.passed && sabotaged.drift >= 2.0, "{sabotaged:?}");
            }
        }
    }
}
