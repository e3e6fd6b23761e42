//! `grace bootstrap`: brings a database to the state Grace runs on — migrations
//! applied, tier policy and golden baseline seeded — and is safe to run any number
//! of times: rows that exist are left as they are (an operator may have tuned
//! them), and a run that adds nothing writes nothing, not even a log entry.

use crate::db::{migrations, DbError, During};
use crate::immutable_log::{self, LogEntry};
use crate::specification::DEFAULT_POLICY;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Client;

/// The golden baseline verification benchmarks are judged against: the metrics
/// a healthy system shows, and how far a run may drift from them and still pass.
/// Smoke runs after tier 1 actions; regression after tier 2+ and medium confidence.
/// Both kinds measure the same metrics; regression is the stricter judge.
fn golden_baselines() -> [(&'static str, serde_json::Value, f64); 2] {
    let healthy = json!({"p95_latency_ms": 250.0, "error_rate": 0.01, "throughput_rps": 100.0});
    [("smoke", healthy.clone(), 0.25), ("regression", healthy, 0.10)]
}

/// What one bootstrap did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BootstrapReport {
    pub migrations_applied: Vec<String>,
    pub policy_rules_added: Vec<String>,
    pub baselines_added: Vec<String>,
    /// The immutable log entry recording the seeding, when there was any.
    pub log_seq: Option<i64>,
    /// The application role granted its rights (`--app-role`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_role: Option<String>,
}

impl BootstrapReport {
    pub fn changed_anything(&self) -> bool {
        !(self.migrations_applied.is_empty() && self.policy_rules_added.is_empty() && self.baselines_added.is_empty())
    }
}

pub async fn bootstrap(client: &mut Client) -> Result<BootstrapReport, DbError> {
    let mut report = BootstrapReport { migrations_applied: migrations::apply(client).await?, ..Default::default() };

    let tx = client.transaction().await.during("starting the bootstrap's transaction")?;
    for rule in DEFAULT_POLICY {
        let added = tx
            .execute(
                "INSERT INTO tier_policy (error_type, tier, action_type, description) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (error_type) DO NOTHING",
                &[&rule.error_type, &rule.tier.level(), &rule.action_type, &rule.description],
            )
            .await
            .during("adding the default tier policy")?;
        if added == 1 {
            report.policy_rules_added.push(rule.error_type.to_string());
        }
    }
    for (kind, metrics, max_drift) in golden_baselines() {
        let added = tx
            .execute(
                "INSERT INTO benchmark_baselines (kind, metrics, max_drift) VALUES ($1, $2, $3)
                 ON CONFLICT (kind) DO NOTHING",
                &[&kind, &metrics, &max_drift],
            )
            .await
            .during("adding the golden benchmark baselines")?;
        if added == 1 {
            report.baselines_added.push(kind.to_string());
        }
    }
    if report.changed_anything() {
        let payload = json!({
            "migrations_applied": report.migrations_applied,
            "policy_rules_added": report.policy_rules_added,
            "baselines_added": report.baselines_added,
            "grace_version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        let entry = LogEntry {
            actor: "grace-bootstrap",
            action: "bootstrap.seeded",
            resource: "database",
            subsystem: "bootstrap",
            payload: &payload,
            result: "ok",
        };
        report.log_seq = Some(immutable_log::append(&tx, &entry).await.during("logging the bootstrap")?);
    }
    tx.commit().await.during("committing the bootstrap")?;
    Ok(report)
}
