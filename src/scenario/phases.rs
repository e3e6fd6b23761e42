//! The phases (docs/design.md, "The scenario"): 1–7 of one iteration, each a
//! function that does its work through the backend's API, checks the outcome
//! — where it matters, in Postgres — and returns its criteria; and 8, the
//! reports. A phase that cannot finish returns an error, which the runner
//! records as that phase's failure.

use crate::api::actions::{DecisionBody, ErrorReportBody};
use crate::api::admin::{FaultKind, FaultRequest};
use crate::api::missions::NewMission;
use crate::client::{BackendClient, ClientError};
use crate::configuration::DatabaseUrl;
use crate::control::coordinator::{self, LoadOutcome};
use crate::control::plan::LoadPlan;
use crate::control::ControlError;
use crate::immutable_log::anchors::AnchorFile;
use crate::immutable_log::checkpoint::ChainHead;
use crate::immutable_log::{self, ChainSettings, ProofError};
use crate::report::Thresholds;
use crate::report::{Criterion, MissionCounts, ScenarioReport};
use crate::specification::{
    decide_tier, ApprovalStatus, ConfidencePath, ContractStatus, Decision, EventKind, MissionCounter, Severity,
    SnapshotStatus, Tier, DEFAULT_POLICY,
};
use crate::verify::{self, ConsistencyCheck};
use std::path::Path;
use std::time::Duration;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a phase could not finish.
#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error("database: {}", crate::db::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("log chain: {0}")]
    Chain(#[from] ProofError),
    #[error("skipped: {0}")]
    Skipped(String),
}

/// What a phase did and found.
#[derive(Default)]
pub struct PhaseResult {
    pub criteria: Vec<Criterion>,
    pub notes: Vec<String>,
}

impl PhaseResult {
    fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.criteria.push(Criterion::new(name, passed, detail));
    }

    /// A criterion an earlier phase's failure left unjudged.
    fn skip(&mut self, name: &str, why: &str) {
        self.criteria.push(Criterion::skipped(name, why));
    }
}

/// The confidences phase 2 reports each error type at: high, medium, low.
const CONFIDENCES: [f64; 3] = [0.9, 0.65, 0.3];

/// An error report as the scenario sends it.
fn error_report(mission: Uuid, error_type: &str, confidence: f64, key: String) -> ErrorReportBody {
    ErrorReportBody {
        mission_id: mission,
        error_type: error_type.to_string(),
        message: format!("{error_type} seen by the scenario"),
        severity: Severity::High,
        confidence,
        idempotency_key: key,
    }
}

/// How the scenario decides: a decision with its reason.
fn decision(approve: bool) -> DecisionBody {
    let decision = if approve { Decision::Approve } else { Decision::Reject };
    DecisionBody { decision, reason: Some("decided by the scenario".into()) }
}

/// Phase 1: a mission with a known id.
pub async fn mission_setup(api: &BackendClient, mission: Uuid, name: &str) -> Result<PhaseResult, PhaseError> {
    let mut result = PhaseResult::default();
    let goal = "prove the backend keeps its promises".to_string();
    api.create_mission(&NewMission { id: Some(mission), name: name.to_string(), goal }).await?;
    let stored = api.mission(mission).await?;
    result.check(
        "mission created with its id",
        stored.id == mission && stored.total_actions == 0,
        // Quoted, as the report has always shown the answer's JSON string.
        format!("GET /api/missions/{mission} answered {:?}", stored.status),
    );
    result.notes.push(format!("mission {mission} ({name})"));
    Ok(result)
}

/// Phase 2: all six error types at high, medium and low confidence.
pub async fn error_injection(api: &BackendClient, mission: Uuid) -> Result<PhaseResult, PhaseError> {
    let mut result = PhaseResult::default();
    let mut wrong = Vec::new();
    let (mut executed, mut held) = (0, 0);
    for rule in DEFAULT_POLICY {
        for confidence in CONFIDENCES {
            let path = ConfidencePath::of(confidence);
            let key = format!("scenario/{mission}/{}/{path}", rule.error_type);
            let receipt = api.report_error(&error_report(mission, rule.error_type, confidence, key)).await?;
            let tier = decide_tier(rule.error_type, Some(rule.tier), confidence).tier;
            let status_ok = match tier {
                Tier::Auto => receipt.status == ContractStatus::Verified,
                _ => receipt.status == ContractStatus::AwaitingApproval && receipt.approval_id.is_some(),
            };
            if tier == Tier::Auto {
                executed += 1;
            } else {
                held += 1;
            }
            if receipt.tier != tier || receipt.confidence_path != path || !status_ok {
                wrong.push(format!(
                    "{} at {confidence}: {} ({}), expected {tier} ({path})",
                    rule.error_type,
                    receipt.status,
                    receipt.tier.level(),
                ));
            }
        }
    }
    let reported = DEFAULT_POLICY.len() * CONFIDENCES.len();
    result.check(
        "every error got its tier and path",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{reported} errors: {executed} executed at tier 1, {held} held for approval")
        } else {
            wrong.join("; ")
        },
    );
    Ok(result)
}

/// Phase 3: approve two of every three pending requests, reject the third.
pub async fn approvals(api: &BackendClient, db: &Client, mission: Uuid) -> Result<PhaseResult, PhaseError> {
    let mut result = PhaseResult::default();
    let pending = api.approvals(mission, Some(ApprovalStatus::Pending)).await?;
    let mut wrong = Vec::new();
    let (mut approved, mut rejected) = (0, 0);
    for (i, approval) in pending.iter().enumerate() {
        let approve = i % 3 != 2;
        let outcome = api.decide(approval.id, approval.tier, &decision(approve)).await?;
        if approve {
            approved += 1;
            if outcome.contract_status != ContractStatus::Verified {
                wrong.push(format!("approved contract {} ended {}", outcome.contract_id, outcome.contract_status));
            }
        } else {
            rejected += 1;
            let fallback = match outcome.fallback_task_id {
                Some(task) => db
                    .query_opt(
                        "SELECT 1 FROM tasks WHERE id = $1 AND kind = 'manual_remediation' AND contract_id = $2",
                        &[&task, &outcome.contract_id],
                    )
                    .await?
                    .is_some(),
                None => false,
            };
            if outcome.contract_status != ContractStatus::Rejected || !fallback {
                wrong.push(format!("rejected contract {} has no manual-remediation task", outcome.contract_id));
            }
        }
    }
    result.check("there were requests to decide", !pending.is_empty(), format!("{} pending", pending.len()));
    result.check(
        "approved executed, rejected fell back",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{approved} approved and verified, {rejected} rejected with a remediation task")
        } else {
            wrong.join("; ")
        },
    );
    // The executed contract is the stored one: written before the decision,
    // its terms still hashing to the digest taken when it was written.
    let rebuilt = verify::rebuilt_contracts(db, mission).await?;
    result.check(
        "approved contracts are the ones stored before the decision",
        rebuilt.is_empty(),
        match rebuilt.first() {
            None => "0 rebuilt".to_string(),
            Some(first) => format!("{} rebuilt, e.g. contract {first}", rebuilt.len()),
        },
    );
    Ok(result)
}

/// Phase 4: a sabotaged verification of a tier-2 action must roll back.
pub async fn forced_rollback(api: &BackendClient, db: &Client, mission: Uuid) -> Result<PhaseResult, PhaseError> {
    let mut result = PhaseResult::default();
    let counter = "SELECT rolled_back_actions FROM mission_progress WHERE mission_id = $1";
    let before: i32 = db.query_one(counter, &[&mission]).await?.try_get("rolled_back_actions")?;
    let sabotage = FaultKind::SabotageVerification { count: 1 };
    api.set_fault(&FaultRequest { mission_id: Some(mission), kind: sabotage }).await?;
    let key = format!("scenario/{mission}/rollback");
    let receipt = api.report_error(&error_report(mission, "permission_denied", 0.9, key)).await?;
    let approval = receipt
        .approval_id
        .ok_or_else(|| PhaseError::Skipped(format!("contract {} asked for no approval", receipt.contract_id)))?;
    let outcome = api.decide(approval, receipt.tier, &decision(true)).await?;
    result.check(
        "violated and rolled back",
        outcome.contract_status == ContractStatus::RolledBack,
        format!("contract {} ended {}", receipt.contract_id, outcome.contract_status),
    );
    let lag_zero = api.await_zero_log_lag(Duration::from_secs(20)).await?;
    let row = db
        .query_one(
            "SELECT s.status = $2 AS restored, r.state = s.state AS state_equal,
                    EXISTS (SELECT 1 FROM action_events e JOIN immutable_log l ON l.seq = e.log_seq
                             WHERE e.contract_id = c.id AND e.event_type = $3) AS logged
               FROM action_contracts c
               JOIN safe_hold_snapshots s ON s.id = c.snapshot_id
               JOIN managed_resources r ON r.id = c.resource_id
              WHERE c.id = $1",
            &[&receipt.contract_id, &SnapshotStatus::Restored, &EventKind::RollbackCompleted.name()],
        )
        .await?;
    let (restored, state_equal, logged): (bool, bool, bool) =
        (row.try_get("restored")?, row.try_get("state_equal")?, row.try_get("logged")?);
    result.check(
        "snapshot restored",
        restored && state_equal,
        format!("marked restored: {restored}; state equal: {state_equal}"),
    );
    let after: i32 = db.query_one(counter, &[&mission]).await?.try_get("rolled_back_actions")?;
    result.check("counted on the mission", after == before + 1, format!("rolled_back_actions {before} → {after}"));
    result.check(
        "rollback in the immutable log",
        logged && lag_zero,
        format!("logged: {logged}; log lag zero: {lag_zero}"),
    );
    Ok(result)
}

/// Phase 5: the distributed load.
pub async fn concurrent_load(
    db_url: &DatabaseUrl,
    plan: &LoadPlan,
    shutdown: &CancellationToken,
) -> Result<(PhaseResult, LoadOutcome), PhaseError> {
    let mut result = PhaseResult::default();
    let outcome = coordinator::run(db_url, plan, shutdown).await?;
    let load = &outcome.result;
    result.check(
        "every worker finished",
        load.lost_workers.is_empty(),
        if load.lost_workers.is_empty() {
            crate::console::counted(load.workers.len() as u64, "worker", "workers")
        } else {
            format!("lost: {}", load.lost_workers.join(", "))
        },
    );
    result.check("requests were made", load.total.requests > 0, format!("{} requests", load.total.requests));
    if let Some(interruption) = load.interruption() {
        result.check("the load ran its full time", false, interruption);
    }
    if let Some(rate) = &load.rate_reached {
        result.check("target rate reached", rate.passed, rate.to_string());
    }
    let mut note = format!(
        "{} users, {} requests, {:.1} req/s, {} failures ({} injected faults)",
        load.profile.users,
        load.total.requests,
        load.total.requests_per_second,
        load.total.failures,
        load.injected_faults
    );
    if let Some(overall) = load.latency.first() {
        note.push_str(&format!(
            "; p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            overall.p50_ms, overall.p95_ms, overall.p99_ms
        ));
    }
    result.notes.push(note);
    Ok((result, outcome))
}

/// Phase 6: thresholds from the merged histograms, and the mission's telemetry.
pub async fn telemetry(
    db: &Client,
    mission: Uuid,
    load: Option<&LoadOutcome>,
    thresholds: &Thresholds,
    chaos: bool,
) -> Result<(PhaseResult, MissionCounts), PhaseError> {
    let mut result = PhaseResult::default();
    match load.and_then(|l| l.result.latency.first().map(|overall| (l, overall))) {
        Some((load, overall)) => {
            result.check(
                "average latency",
                overall.mean_ms < thresholds.max_avg_ms,
                format!("{:.1} ms (limit {} ms)", overall.mean_ms, thresholds.max_avg_ms),
            );
            result.check(
                "maximum latency",
                overall.max_ms < thresholds.max_latency_ms,
                format!("{:.1} ms (limit {} ms)", overall.max_ms, thresholds.max_latency_ms),
            );
            let total = &load.result.total;
            let counted_apart = if chaos { load.result.injected_faults.min(total.failures) } else { 0 };
            let rate = (total.failures - counted_apart) as f64 / total.requests.max(1) as f64;
            let apart = if chaos { format!(", {counted_apart} injected faults counted apart") } else { String::new() };
            result.check(
                "error rate",
                rate < thresholds.max_error_rate,
                format!("{:.2}% (limit {:.2}%){apart}", rate * 100.0, thresholds.max_error_rate * 100.0),
            );
            for criterion in &thresholds.criteria {
                let check = criterion.judge(&load.result);
                result.check(&format!("threshold {}", check.threshold), check.passed, check.measurement());
            }
        }
        None => result.skip("latency measured", "phase 5 left no load result to judge"),
    }
    let counts = mission_counts(db, mission).await?;
    result.notes.push(format!(
        "{:.1} actions/min, rollback frequency {:.2}, confidence {}",
        counts.action_rate_per_minute,
        counts.rollback_frequency,
        trend(&counts.confidence_trend)
    ));
    Ok((result, counts))
}

fn trend(values: &[f64]) -> String {
    match (values.first(), values.last()) {
        (Some(first), Some(last)) => format!("{first:.2} → {last:.2} over {} contracts", values.len()),
        _ => "no contracts".to_string(),
    }
}

/// What phase 7 found: the consistency conditions and the head its proof of
/// the chain reached.
#[derive(Debug, Default)]
pub struct Integrity {
    pub checks: Vec<ConsistencyCheck>,
    pub chain_head: Option<ChainHead>,
}

/// Phase 7: the consistency conditions, after the log caught up. With
/// `anchors`, the proof also checks and keeps this machine's anchor there.
pub async fn integrity(
    api: &BackendClient,
    db: &Client,
    db_url: &DatabaseUrl,
    anchors: Option<&Path>,
    mission: Uuid,
) -> Result<(PhaseResult, Integrity), PhaseError> {
    let mut result = PhaseResult::default();
    let lag_zero = api.await_zero_log_lag(Duration::from_secs(30)).await?;
    result.check("log lag reached zero", lag_zero, "every committed event chained before checking");
    let anchors = anchors.map(AnchorFile::load).transpose().map_err(ProofError::from)?;
    let mut settings = ChainSettings { anchors, ..ChainSettings::default() };
    let chain = immutable_log::prove_database(db_url, &mut settings, "grace scenario").await?;
    if let Some(head) = &chain.head {
        let kept = settings.anchors.as_ref().map_or_else(
            || "not anchored: the private database ends with the run".to_string(),
            |file| format!("anchored in {}", file.path().display()),
        );
        result.notes.push(format!("chain proven to seq {} (entry hash {}); {kept}", head.seq, head.entry_hash));
    }
    let checks = verify::verify_mission(std::slice::from_ref(db), mission, &chain, false).await?;
    for check in &checks {
        let detail = if check.examples.is_empty() {
            format!("{} checked, {} violations", check.checked, check.violations)
        } else {
            format!("{} checked, {} violations: {}", check.checked, check.violations, check.examples.join("; "))
        };
        result.check(&format!("{} {}", check.id, check.name), check.passed, detail);
    }
    Ok((result, Integrity { checks, chain_head: chain.head }))
}

/// The mission's numbers, from Postgres; statuses counted as the
/// specification's mission counters count them.
pub async fn mission_counts(db: &Client, mission: Uuid) -> Result<MissionCounts, tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM action_contracts WHERE mission_id = $1) AS contracts_created,
                    (SELECT count(*) FROM action_contracts WHERE mission_id = $1 AND status = ANY($2)) AS actions_completed,
                    (SELECT count(*) FROM action_contracts WHERE mission_id = $1 AND status = ANY($3)) AS actions_failed,
                    (SELECT count(*) FROM action_contracts WHERE mission_id = $1 AND status = $4) AS rejected,
                    (SELECT count(*) FROM action_contracts WHERE mission_id = $1 AND status = ANY($5)) AS rollbacks,
                    (SELECT count(*) FROM approval_requests a JOIN action_contracts c ON c.id = a.contract_id
                      WHERE c.mission_id = $1) AS approvals_requested,
                    (SELECT count(*) FROM approval_requests a JOIN action_contracts c ON c.id = a.contract_id
                      WHERE c.mission_id = $1 AND a.status = $6) AS approvals_granted,
                    (SELECT count(*) FROM approval_requests a JOIN action_contracts c ON c.id = a.contract_id
                      WHERE c.mission_id = $1 AND a.status = $7) AS approvals_rejected,
                    (SELECT count(*) FROM benchmark_runs b JOIN action_contracts c ON c.id = b.contract_id
                      WHERE c.mission_id = $1) AS benchmarks_run,
                    (SELECT count(*) FROM safe_hold_snapshots s JOIN action_contracts c ON c.id = s.contract_id
                      WHERE c.mission_id = $1) AS snapshots_created,
                    (SELECT count(*) FROM action_events WHERE mission_id = $1) AS events_persisted,
                    (SELECT count(*) FROM action_events e WHERE e.mission_id = $1
                       AND (e.log_seq IS NULL OR (e.contract_id IS NOT NULL
                            AND NOT EXISTS (SELECT 1 FROM action_contracts c WHERE c.id = e.contract_id))))
                      AS orphaned_events,
                    (SELECT count(*) FROM immutable_log) AS log_entries,
                    (SELECT extract(epoch FROM greatest(max(created_at) - min(created_at), interval '1 second'))::float8
                       FROM action_contracts WHERE mission_id = $1) AS seconds,
                    array(SELECT c.confidence::float8 FROM action_contracts c WHERE c.mission_id = $1
                           ORDER BY c.created_at)
                      AS confidences",
            &[
                &mission,
                &MissionCounter::Completed.statuses(),
                &MissionCounter::Failed.statuses(),
                &ContractStatus::Rejected,
                &MissionCounter::RolledBack.statuses(),
                &ApprovalStatus::Approved,
                &ApprovalStatus::Rejected,
            ],
        )
        .await?;
    let count = |column: &str| row.try_get::<_, i64>(column);
    let confidences: Vec<f64> = row.try_get("confidences")?;
    // The mission's running confidence after each contract: how it trends.
    let mut sum = 0.0;
    let confidence_trend = confidences
        .iter()
        .enumerate()
        .map(|(i, c)| {
            sum += c;
            (sum / (i + 1) as f64 * 1000.0).round() / 1000.0
        })
        .collect();
    let (created, completed, rollbacks) =
        (count("contracts_created")?, count("actions_completed")?, count("rollbacks")?);
    let seconds: Option<f64> = row.try_get("seconds")?;
    Ok(MissionCounts {
        contracts_created: created,
        actions_completed: completed,
        actions_failed: count("actions_failed")?,
        rejected: count("rejected")?,
        rollbacks,
        approvals_requested: count("approvals_requested")?,
        approvals_granted: count("approvals_granted")?,
        approvals_rejected: count("approvals_rejected")?,
        benchmarks_run: count("benchmarks_run")?,
        snapshots_created: count("snapshots_created")?,
        events_persisted: count("events_persisted")?,
        orphaned_events: count("orphaned_events")?,
        log_entries: count("log_entries")?,
        action_rate_per_minute: created as f64 / (seconds.unwrap_or(60.0) / 60.0),
        rollback_frequency: rollbacks as f64 / (completed + rollbacks).max(1) as f64,
        confidence_trend,
    })
}

/// Phase 8: every report file written into `dir`, and the JSON report read
/// back as the report it was written from.
pub fn reports(report: &ScenarioReport, dir: &Path, chaos: bool, goose_reports: &[(String, String)]) -> PhaseResult {
    let mut result = PhaseResult::default();
    let stem = report.file_stem();
    match report.write(dir, chaos, goose_reports) {
        Err(e) => result.check("reports written", false, format!("into {}: {e}", dir.display())),
        Ok(written) => {
            result.check(
                "reports written",
                true,
                format!(
                    "{} files: e2e_metrics_<mission>.json, {stem}.json and .html, junit.xml and {} goose report(s) in {}",
                    written.len(),
                    goose_reports.len(),
                    dir.display()
                ),
            );
            let path = dir.join(format!("{stem}.json"));
            let read_back = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str::<ScenarioReport>(&text).map_err(|e| e.to_string()));
            let (same, detail) = match read_back {
                Ok(again) if again == *report => (true, format!("{} parses back unchanged", path.display())),
                Ok(_) => (false, format!("{} parses back to a different report", path.display())),
                Err(e) => (false, format!("{}: {e}", path.display())),
            };
            result.check("the JSON report reads back as written", same, detail);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::report_with;

    #[test]
    fn the_report_phase_passes_when_its_files_are_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let report = report_with(1);
        let result = reports(&report, dir.path(), false, &[("goose.html".into(), "<html></html>".into())]);
        assert!(result.criteria.iter().all(|c| c.passed), "{:?}", result.criteria);
        assert_eq!(result.criteria.len(), 2);
        assert!(result.criteria[0].detail.starts_with("5 files: "), "{}", result.criteria[0].detail);
        assert!(dir.path().join("goose.html").exists());
    }

    #[test]
    fn the_report_phase_fails_saying_why_when_the_files_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("a-file");
        std::fs::write(&blocker, "not a directory").unwrap();
        let result = reports(&report_with(1), &blocker.join("reports"), false, &[]);
        assert_eq!(result.criteria.len(), 1);
        let written = &result.criteria[0];
        assert!(!written.passed);
        assert_eq!(written.name, "reports written");
        assert!(written.detail.contains("a-file/reports"), "{}", written.detail);
    }
}
