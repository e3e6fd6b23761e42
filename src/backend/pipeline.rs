//! The action pipeline: an error becomes a contract, and the contract moves
//! through its states exactly as docs/design.md's pipeline says.
//!
//! Tier 1: contract → execute → smoke verification → verified | failed.
//! Tier 2+: contract → snapshot → approval request → (approved) execute the
//! stored contract → regression benchmark → verified | violated → restore the
//! snapshot → rolled_back; (rejected) → rejected + a manual-remediation task.
//!
//! Each operation is one transaction holding every state change together with
//! its events (the log's outbox): it commits whole or not at all. Chaos
//! faults strike between steps, before the next step writes; the transaction
//! then rolls back and `with_retries` runs the operation again.

use super::auth::Caller;
use super::domain::{Confidence, ErrorType, IdempotencyKey};
use super::error::ApiError;
use super::events::{self, NewEvent};
use super::faults::with_retries;
use super::policy::Rule;
use super::prepared::Prepared;
use super::state::AppState;
use super::tally::{self, MissionTally};
use crate::api::actions::{ContractReceipt, DecisionOutcome};
use crate::db::rows::FromRow;
use crate::specification::policy::ESCALATION_ACTION;
use crate::specification::{
    contract_digest, decide_tier, deciders, ApprovalStatus, BenchmarkKind, ConfidencePath, ContractStatus, Decision,
    EventKind, Severity, SnapshotStatus, Tier, TierDecision,
};
use deadpool_postgres::Transaction;
use serde_json::{json, Value};
use std::sync::LazyLock;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

type Param<'a> = &'a (dyn ToSql + Sync);

/// An error report, parsed.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub mission_id: Uuid,
    pub error_type: ErrorType,
    pub message: String,
    pub severity: Severity,
    pub confidence: Confidence,
    pub idempotency_key: IdempotencyKey,
}

impl FromRow for ContractReceipt {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            contract_id: row.try_get("contract_id")?,
            mission_id: row.try_get("mission_id")?,
            tier: row.try_get("tier")?,
            confidence_path: row.try_get("confidence_path")?,
            status: row.try_get("status")?,
            escalation_reason: row.try_get("escalation_reason")?,
            approval_id: row.try_get("approval_id")?,
        })
    }
}

/// The state of the resource an action manages before it acts, and what the
/// action changes. Every contract gets its own resource, so "restored equals the
/// snapshot" stays checkable after the fact (C3).
fn baseline_state(action_type: &str) -> Value {
    json!({ "action_type": action_type, "level": 10, "revision": 0 })
}

fn expected_effect() -> Value {
    json!({ "level": 15, "revision": 1 })
}

/// Submits an error report. A known idempotency key returns its contract and
/// writes nothing.
#[tracing::instrument(name = "submit_error", level = "debug", skip_all, fields(mission = %report.mission_id))]
pub async fn submit_error(state: &AppState, report: &ErrorReport) -> Result<(ContractReceipt, bool), ApiError> {
    state.faults.chaos(Some(report.mission_id), "request")?;
    with_retries(&state.breaker, move || async move {
        // No look-up of the key first: a new key is the common case, and a
        // replayed one is caught by the contract's ON CONFLICT, which then
        // writes nothing.
        let mut client = state.pool.get().await?;
        for _ in 0..RULE_READS {
            let terms = ContractTerms::of(state.policy.rule(report.error_type.as_str()), report);
            // A tier-1 contract is written whole by one statement, which needs
            // no transaction around it — unless faults are on: then a sabotage
            // taken for it must be given back if that statement fails.
            let written = if terms.decision.tier == Tier::Auto && !state.faults.enabled() {
                create_contract(state, &client, report, terms).await?
            } else {
                let tx = client.transaction().await?;
                let written = create_contract(state, &tx, report, terms).await?;
                if let Written::Contract(_) = written {
                    tx.commit().await?;
                }
                written
            };
            match written {
                Written::Contract(receipt) => return Ok((receipt, true)),
                // The key was taken, by a retry of this report or by another one.
                Written::KeyTaken => return Ok((replayed_receipt(&client, report).await?, false)),
                Written::RuleChanged => state.policy.reload(&**client).await?,
            }
        }
        Err(ApiError::Unexpected(format!("the tier policy changed {RULE_READS} times while deciding one report")))
    })
    .await
}

/// How many times a report is decided again after its rule changed under it.
const RULE_READS: usize = 3;

/// The contract a reused key made: the same report answers with it; another
/// report under the same key is a conflict (as for chat and tasks).
async fn replayed_receipt(client: &impl Prepared, report: &ErrorReport) -> Result<ContractReceipt, ApiError> {
    let row = client
        .opt(
            "SELECT c.id AS contract_id, c.mission_id, c.tier, c.confidence_path, c.status, c.escalation_reason,
                    a.id AS approval_id,
                    (c.mission_id, c.error_type, c.error_message, c.severity, c.confidence) = ($2, $3, $4, $5, $6)
                      AS same_report
               FROM action_contracts c LEFT JOIN approval_requests a ON a.contract_id = c.id
              WHERE c.idempotency_key = $1",
            &[
                &report.idempotency_key.as_str(),
                &report.mission_id,
                &report.error_type.as_str(),
                &report.message,
                &report.severity.as_str(),
                &report.confidence.value(),
            ],
        )
        .await?
        .ok_or_else(|| ApiError::Unexpected("idempotent contract vanished".into()))?;
    if !row.try_get::<_, bool>("same_report")? {
        return Err(ApiError::Conflict("idempotency_key was already used for a different error report".into()));
    }
    Ok(ContractReceipt::from_row(&row)?)
}

/// A contract's terms as stored: what execution acts on.
struct StoredContract {
    id: Uuid,
    mission: Uuid,
    error_type: String,
    action_type: String,
    tier: i16,
    path: ConfidencePath,
    effect: Value,
    baseline: Value,
    digest: String,
    resource: Uuid,
    snapshot: Option<Uuid>,
}

impl FromRow for StoredContract {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            mission: row.try_get("mission_id")?,
            error_type: row.try_get("error_type")?,
            action_type: row.try_get("action_type")?,
            tier: row.try_get("tier")?,
            path: row.try_get("confidence_path")?,
            effect: row.try_get("expected_effect")?,
            baseline: row.try_get("baseline_state")?,
            digest: row.try_get("contract_digest")?,
            resource: row.try_get("resource_id")?,
            snapshot: row.try_get("snapshot_id")?,
        })
    }
}

/// What one operation records besides its state changes: its events and its
/// mission counter changes, written together as the operation's last
/// statement, so its counter slot is locked only briefly.
#[derive(Default)]
struct Pending {
    events: Vec<NewEvent>,
    tally: MissionTally,
}

impl Pending {
    fn event(&mut self, kind: EventKind, contract: &StoredContract, payload: Value) -> &mut NewEvent {
        self.events.push(NewEvent::for_contract(kind, contract.mission, contract.id, payload));
        self.events.last_mut().expect("just pushed")
    }

    async fn write(self, tx: &impl Prepared, mission: Uuid) -> Result<(), ApiError> {
        self.tally.write(tx, mission, &self.events).await
    }
}

/// What the tier policy says of a report: its tier and the action it takes.
struct ContractTerms {
    decision: TierDecision,
    /// Whether the policy has a rule for the error type (else it escalates).
    has_rule: bool,
    action_type: String,
}

impl ContractTerms {
    /// The terms under `rule` (the policy's rule for the report's error type,
    /// if it has one).
    fn of(rule: Option<Rule>, report: &ErrorReport) -> Self {
        let (policy_tier, action_type) = match rule {
            Some(Rule { tier, action_type }) => (Some(tier), action_type),
            None => (None, ESCALATION_ACTION.to_string()),
        };
        let decision = decide_tier(report.error_type.as_str(), policy_tier, report.confidence.value());
        Self { decision, has_rule: policy_tier.is_some(), action_type }
    }
}

/// What writing a contract came to.
enum Written {
    Contract(ContractReceipt),
    /// Another report took its idempotency key first.
    KeyTaken,
    /// The rule it was decided by is no longer the policy's: nothing written.
    RuleChanged,
}

/// The CTEs writing a new contract (`contract`: none on a known key, nor if
/// the rule it was decided by is no longer the policy's), its resource and,
/// when `$21` names one, its benchmark. Parameters `$1..$24`. The contract
/// goes first: the other rows are written only with it (the foreign keys are
/// checked at the end of the statement). A text or number stored in a column
/// whose rule is a domain (V21) is cast to the domain's base type: uncast, it
/// would take the domain's type, which a `&str` or an `f64` does not match (the
/// specification's enums do: `db::rows`).
const CONTRACT_CTES: &str = "rule AS (
        SELECT CASE WHEN $24::boolean
                    THEN EXISTS (SELECT FROM tier_policy WHERE error_type = $4 AND tier = $8 AND action_type = $7)
                    ELSE NOT EXISTS (SELECT FROM tier_policy WHERE error_type = $4) END AS current),
     contract AS (
        INSERT INTO action_contracts (id, mission_id, resource_id, idempotency_key, error_type, error_message,
            severity, action_type, policy_tier, tier, confidence, confidence_path, escalation_reason,
            expected_effect, baseline_state, contract_digest, status, verification_result, executed_at,
            verified_at)
        SELECT $1, $2, $16, $3::text, $4::text, $5, $6::text, $7, $8::smallint, $9::smallint, $10::float8, $11,
               $12, $13, $14, $15::text, $19, $20,
               CASE WHEN $21::text IS NOT NULL THEN now() END, CASE WHEN $21::text IS NOT NULL THEN now() END
         WHERE (SELECT current FROM rule)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id),
     resource AS (
        INSERT INTO managed_resources (id, mission_id, name, state)
        SELECT $16, $2, $17::text, $14::jsonb || $18::jsonb FROM contract),
     benchmark AS (
        INSERT INTO benchmark_runs (contract_id, kind, metrics, passed, drift_detected)
        SELECT id, $21, $22, $23, NOT $23 FROM contract WHERE $21::text IS NOT NULL)";

/// How many parameters `CONTRACT_CTES` takes.
const CONTRACT_PARAMS: usize = 24;

/// The values `CONTRACT_CTES` writes, named, bound in its parameters' order.
struct ContractWrite<'a> {
    id: Uuid,
    mission: Uuid,
    idempotency_key: &'a str,
    error_type: &'a str,
    message: &'a str,
    severity: &'a str,
    action_type: &'a str,
    policy_tier: Tier,
    tier: i16,
    confidence: f64,
    path: ConfidencePath,
    escalation_reason: &'a Option<String>,
    effect: &'a Value,
    baseline: &'a Value,
    digest: &'a str,
    resource: Uuid,
    resource_name: String,
    /// What the execution changed on the resource (nothing when held).
    resource_change: Value,
    /// As stored: the execution's verdict, or planned until approved.
    status: ContractStatus,
    verification_result: Option<&'a Value>,
    benchmark: Option<BenchmarkKind>,
    metrics: Option<&'a Value>,
    passed: Option<bool>,
    /// Whether the policy had a rule for the error type when it was decided.
    has_rule: bool,
}

impl<'a> ContractWrite<'a> {
    fn of(
        report: &'a ErrorReport,
        decision: &'a TierDecision,
        has_rule: bool,
        contract: &'a StoredContract,
        execution: Option<&'a Execution>,
    ) -> Self {
        Self {
            id: contract.id,
            mission: contract.mission,
            idempotency_key: report.idempotency_key.as_str(),
            error_type: report.error_type.as_str(),
            message: &report.message,
            severity: report.severity.as_str(),
            action_type: &contract.action_type,
            policy_tier: decision.policy_tier,
            tier: contract.tier,
            confidence: report.confidence.value(),
            path: decision.path,
            escalation_reason: &decision.escalation_reason,
            effect: &contract.effect,
            baseline: &contract.baseline,
            digest: &contract.digest,
            resource: contract.resource,
            resource_name: format!("{}/{}", contract.action_type, contract.id),
            resource_change: execution.map_or_else(|| json!({}), |_| contract.effect.clone()),
            status: execution.map_or(ContractStatus::Planned, |e| e.status),
            verification_result: execution.map(|e| &e.result),
            benchmark: execution.map(|e| e.benchmark),
            metrics: execution.map(|e| &e.metrics),
            passed: execution.map(|e| e.passed),
            has_rule,
        }
    }

    /// `$1..$24` of `CONTRACT_CTES`.
    fn params(&self) -> [Param<'_>; CONTRACT_PARAMS] {
        [
            &self.id,
            &self.mission,
            &self.idempotency_key,
            &self.error_type,
            &self.message,
            &self.severity,
            &self.action_type,
            &self.policy_tier,
            &self.tier,
            &self.confidence,
            &self.path,
            self.escalation_reason,
            self.effect,
            self.baseline,
            &self.digest,
            &self.resource,
            &self.resource_name,
            &self.resource_change,
            &self.status,
            &self.verification_result,
            &self.benchmark,
            &self.metrics,
            &self.passed,
            &self.has_rule,
        ]
    }
}

/// How a statement that writes a contract answers: the contract's id, if it
/// wrote it, and whether its rule was current.
const CONTRACT_WRITTEN: &str = "SELECT c.id, r.current AS rule_current FROM rule r LEFT JOIN contract c ON true";

/// Why a statement ending in `CONTRACT_WRITTEN` wrote no contract, if it did not.
fn unwritten(row: Row) -> Result<Option<Written>, tokio_postgres::Error> {
    Ok(match (row.try_get::<_, Option<Uuid>>("id")?, row.try_get::<_, bool>("rule_current")?) {
        (Some(_), _) => None,
        (None, true) => Some(Written::KeyTaken),
        (None, false) => Some(Written::RuleChanged),
    })
}

/// A contract to be held for approval: written alone.
pub(crate) static CONTRACT: LazyLock<String> = LazyLock::new(|| format!("WITH {CONTRACT_CTES} {CONTRACT_WRITTEN}"));

/// A tier-1 contract, as its execution left it, with its events and counts:
/// the whole operation in one statement (the tally's parameters follow the
/// contract's), which writes nothing on a known key.
pub(crate) static EXECUTED_CONTRACT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {CONTRACT_CTES}, {} {CONTRACT_WRITTEN}",
        tally::ctes(CONTRACT_PARAMS + 1, Some("EXISTS (SELECT FROM contract)"))
    )
});

/// Writes the contract and runs it as far as its tier allows without a human,
/// on `db`: a transaction, or for a tier-1 contract (whose every row one
/// statement writes) with faults off, a pooled connection. `None` when
/// another request with the same key won the race.
#[tracing::instrument(name = "contract", level = "debug", skip_all, fields(mission = %report.mission_id))]
async fn create_contract(
    state: &AppState,
    db: &impl Prepared,
    report: &ErrorReport,
    terms: ContractTerms,
) -> Result<Written, ApiError> {
    let ContractTerms { decision, has_rule, action_type } = terms;
    let mission = report.mission_id;
    let confidence = report.confidence.value();
    let id = Uuid::new_v4();
    let baseline = baseline_state(&action_type);
    let effect = expected_effect();
    let tier = decision.tier.level();
    let digest = contract_digest(report.error_type.as_str(), &action_type, tier, &effect, &baseline);
    let mut contract = StoredContract {
        id,
        mission,
        error_type: report.error_type.as_str().to_string(),
        action_type,
        tier,
        path: decision.path,
        effect,
        baseline,
        digest,
        resource: Uuid::new_v4(),
        snapshot: None,
    };
    let mut pending = Pending::default();
    pending.event(
        EventKind::ContractCreated,
        &contract,
        json!({
            "error_type": contract.error_type,
            "action_type": contract.action_type,
            "tier": tier,
            "policy_tier": decision.policy_tier.level(),
            "confidence": confidence,
            "confidence_path": decision.path,
            "escalation_reason": decision.escalation_reason,
        }),
    );
    pending.tally.created = Some((decision.tier, confidence));
    // Tier 1 runs without a human, and its verification's verdict is known
    // before anything is written: the contract, its resource, its benchmark,
    // its events and counts are stored as they end, by one statement.
    let (status, approval_id) = if decision.tier == Tier::Auto {
        let kind = BenchmarkKind::verifying(decision.tier, contract.path);
        let execution = verify(state, db, &contract, kind).await?;
        let status = executed(&contract, &execution, &mut pending);
        pending.tally.moved = Some((None, status));
        let write = ContractWrite::of(report, &decision, has_rule, &contract, Some(&execution));
        if let Some(unwritten) = write_executed(db, &write, &pending).await? {
            return Ok(unwritten);
        }
        execution.sabotage_used(state);
        (status, None)
    } else {
        let status = ContractStatus::AwaitingApproval;
        pending.tally.moved = Some((None, status));
        let write = ContractWrite::of(report, &decision, has_rule, &contract, None);
        let written = db.one(&CONTRACT, &write.params()).await.map_err(|e| mission_not_found(e, mission))?;
        if let Some(unwritten) = unwritten(written)? {
            return Ok(unwritten);
        }
        let approval = hold_for_approval(state, db, &mut contract, decision.tier, &mut pending).await?;
        pending.write(db, mission).await?;
        (status, Some(approval))
    };
    state.telemetry.record_action(tier, status);
    Ok(Written::Contract(ContractReceipt {
        contract_id: id,
        mission_id: mission,
        tier: decision.tier,
        confidence_path: decision.path,
        status,
        escalation_reason: decision.escalation_reason,
        approval_id,
    }))
}

/// A tier-1 contract as its execution left it, with its events and counts, in
/// one statement; why it wrote nothing, if it did not.
async fn write_executed(
    db: &impl Prepared,
    write: &ContractWrite<'_>,
    pending: &Pending,
) -> Result<Option<Written>, ApiError> {
    let tally = pending.tally.values(write.mission, &pending.events);
    let params: Vec<Param<'_>> = write.params().into_iter().chain(tally.params()).collect();
    let written = db.one(&EXECUTED_CONTRACT, &params).await.map_err(|e| mission_not_found(e, write.mission))?;
    Ok(unwritten(written)?)
}

/// The mission's FOREIGN KEY proves it exists (a violation is its 404)
/// without locking its row; its counters are updated last.
fn mission_not_found(e: tokio_postgres::Error, mission: Uuid) -> ApiError {
    match e.code() {
        Some(&SqlState::FOREIGN_KEY_VIOLATION) => ApiError::not_found("mission", mission),
        _ => e.into(),
    }
}

/// Tier 2+: snapshot the resource, then ask for approval.
#[tracing::instrument(name = "approval", level = "debug", skip_all, fields(contract = %contract.id))]
async fn hold_for_approval(
    state: &AppState,
    tx: &impl Prepared,
    contract: &mut StoredContract,
    tier: Tier,
    pending: &mut Pending,
) -> Result<Uuid, ApiError> {
    state.faults.chaos(Some(contract.mission), "snapshot")?;
    state.faults.chaos(Some(contract.mission), "approval_request")?;
    let row = tx
        .one(
            "WITH snapshot AS (
                INSERT INTO safe_hold_snapshots (contract_id, state, manifest_hash)
                SELECT $1, state, encode(sha256(convert_to(state::text, 'UTF8')), 'hex')
                  FROM managed_resources WHERE id = $2
                RETURNING id, manifest_hash),
             approval AS (
                INSERT INTO approval_requests (contract_id, tier, requested_by) VALUES ($1, $3, $4) RETURNING id),
             held AS (
                UPDATE action_contracts SET snapshot_id = (SELECT id FROM snapshot), status = $5
                 WHERE id = $1)
             SELECT snapshot.id AS snapshot_id, snapshot.manifest_hash, approval.id AS approval_id
               FROM snapshot, approval",
            &[&contract.id, &contract.resource, &tier, &events::PIPELINE_ACTOR, &ContractStatus::AwaitingApproval],
        )
        .await?;
    let (snapshot, manifest_hash, approval): (Uuid, String, Uuid) =
        (row.try_get("snapshot_id")?, row.try_get("manifest_hash")?, row.try_get("approval_id")?);
    contract.snapshot = Some(snapshot);
    pending.tally.snapshots += 1;
    pending.tally.approvals += 1;
    pending.event(
        EventKind::SnapshotTaken,
        contract,
        json!({ "snapshot_id": snapshot, "manifest_hash": manifest_hash }),
    );
    let needs: Vec<&str> = deciders(tier).iter().map(|r| r.as_str()).collect();
    pending
        .event(EventKind::ApprovalRequested, contract, json!({ "tier": tier.level(), "needs": needs }))
        .approval_id = Some(approval);
    Ok(approval)
}

/// A verification's outcome. The benchmark's verdict depends only on the
/// contract and the sabotage, so it is known before anything of the execution
/// is written: execution, the benchmark run and the contract's final state go
/// to the database in one statement.
struct Execution {
    benchmark: BenchmarkKind,
    metrics: Value,
    passed: bool,
    /// Verified, failed (nothing to restore) or violated (to roll back).
    status: ContractStatus,
    /// The contract's `verification_result`.
    result: Value,
    sabotaged: bool,
}

impl Execution {
    /// Counts a sabotage this execution took as injected by this replica, once
    /// every write of the operation succeeded (an injected fault or an error
    /// before then rolls the transaction back, and the sabotage with it).
    fn sabotage_used(&self, state: &AppState) {
        if self.sabotaged {
            state.faults.sabotage_used();
        }
    }
}

/// Refuses a contract changed since it was written, lets chaos strike, takes
/// a pending sabotage and runs the contract's benchmark.
#[tracing::instrument(name = "verification", level = "debug", skip_all, fields(contract = %contract.id))]
async fn verify(
    state: &AppState,
    db: &impl Prepared,
    contract: &StoredContract,
    benchmark: BenchmarkKind,
) -> Result<Execution, ApiError> {
    let recomputed = contract_digest(
        &contract.error_type,
        &contract.action_type,
        contract.tier,
        &contract.effect,
        &contract.baseline,
    );
    if recomputed != contract.digest {
        return Err(ApiError::Conflict(format!(
            "contract {} changed since it was written; refusing to execute",
            contract.id
        )));
    }
    state.faults.chaos(Some(contract.mission), "execute")?;
    state.faults.chaos(Some(contract.mission), "verify")?;
    let sabotaged = state.faults.take_sabotage(db, contract.mission).await?;
    let verdict = state.baselines.run(benchmark, contract.id, sabotaged);
    let result = json!({ "benchmark": benchmark, "passed": verdict.passed, "drift": verdict.drift,
                         "sabotaged": sabotaged });
    let status = match (verdict.passed, contract.snapshot) {
        (true, _) => ContractStatus::Verified,
        (false, None) => ContractStatus::Failed,
        (false, Some(_)) => ContractStatus::Violated,
    };
    Ok(Execution { benchmark, metrics: verdict.metrics, passed: verdict.passed, status, result, sabotaged })
}

/// An execution the transaction has written: its counts and its events.
/// Returns the status it ended in.
fn executed(contract: &StoredContract, execution: &Execution, pending: &mut Pending) -> ContractStatus {
    pending.tally.executed = true;
    pending.tally.benchmarks += 1;
    pending.tally.benchmarks_failed += i64::from(!execution.passed);
    pending.event(
        EventKind::ActionExecuting,
        contract,
        json!({ "action_type": contract.action_type, "effect": contract.effect }),
    );
    let (kind, result) = match execution.status {
        ContractStatus::Verified => (EventKind::VerificationPassed, "ok"),
        ContractStatus::Failed => (EventKind::VerificationFailed, execution.status.as_str()),
        _ => (EventKind::VerificationViolated, execution.status.as_str()),
    };
    pending.event(kind, contract, execution.result.clone()).result = result;
    execution.status
}

/// Executes an approved contract, verifies it with a benchmark, and ends in
/// verified or rolled_back. Returns the final status.
#[tracing::instrument(name = "execution", level = "debug", skip_all, fields(contract = %contract.id))]
async fn execute_and_verify(
    state: &AppState,
    tx: &Transaction<'_>,
    contract: &StoredContract,
    benchmark: BenchmarkKind,
    pending: &mut Pending,
) -> Result<ContractStatus, ApiError> {
    let execution = verify(state, tx, contract, benchmark).await?;
    tx.run(
        "WITH executed AS (
            UPDATE managed_resources SET state = state || $2, updated_at = now() WHERE id = $1),
         benchmark AS (
            INSERT INTO benchmark_runs (contract_id, kind, metrics, passed, drift_detected)
            VALUES ($3, $4, $5, $6, NOT $6))
         UPDATE action_contracts SET status = $7, verification_result = $8, executed_at = now(), verified_at = now()
          WHERE id = $3",
        &[
            &contract.resource,
            &contract.effect,
            &contract.id,
            &execution.benchmark,
            &execution.metrics,
            &execution.passed,
            &execution.status,
            &execution.result,
        ],
    )
    .await?;
    let status = match executed(contract, &execution, pending) {
        ContractStatus::Violated => {
            roll_back(state, tx, contract, pending).await?;
            ContractStatus::RolledBack
        }
        status => status,
    };
    execution.sabotage_used(state);
    Ok(status)
}

/// Verification was violated: restore the resource from the snapshot.
#[tracing::instrument(name = "rollback", level = "debug", skip_all, fields(contract = %contract.id))]
async fn roll_back(
    state: &AppState,
    tx: &Transaction<'_>,
    contract: &StoredContract,
    pending: &mut Pending,
) -> Result<(), ApiError> {
    state.faults.chaos(Some(contract.mission), "restore")?;
    let restored: Value = tx
        .one(
            "WITH snapshot AS (
                UPDATE safe_hold_snapshots SET status = $4, restored_at = now() WHERE id = $2 RETURNING state),
             contract AS (
                UPDATE action_contracts SET status = $5 WHERE id = $3)
             UPDATE managed_resources r SET state = snapshot.state, updated_at = now()
               FROM snapshot WHERE r.id = $1 RETURNING r.state",
            &[
                &contract.resource,
                &contract.snapshot,
                &contract.id,
                &SnapshotStatus::Restored,
                &ContractStatus::RolledBack,
            ],
        )
        .await?
        .try_get("state")?;
    pending.tally.snapshots_restored += 1;
    pending.event(
        EventKind::RollbackCompleted,
        contract,
        json!({ "snapshot_id": contract.snapshot, "restored_state": restored }),
    );
    Ok(())
}

/// Decides a pending approval. Approve executes the stored contract; reject
/// marks it rejected and opens a manual-remediation task on its mission.
#[tracing::instrument(name = "decide", level = "debug", skip_all, fields(approval = %approval))]
pub async fn decide(
    state: &AppState,
    approval: Uuid,
    decision: Decision,
    reason: Option<String>,
    caller: &Caller,
) -> Result<DecisionOutcome, ApiError> {
    let reason = reason.as_deref();
    with_retries(&state.breaker, move || async move {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        let outcome = decide_in(state, &tx, approval, decision, reason, caller).await?;
        tx.commit().await?;
        Ok(outcome)
    })
    .await
}

async fn decide_in(
    state: &AppState,
    tx: &Transaction<'_>,
    approval: Uuid,
    decision: Decision,
    reason: Option<&str>,
    caller: &Caller,
) -> Result<DecisionOutcome, ApiError> {
    let row = tx
        .opt(
            "SELECT a.status AS approval_status, a.tier AS approval_tier, c.id, c.mission_id, c.error_type,
                    c.action_type, c.tier, c.confidence_path, c.expected_effect, c.baseline_state, c.contract_digest,
                    c.resource_id, c.snapshot_id
               FROM approval_requests a JOIN action_contracts c ON c.id = a.contract_id
              WHERE a.id = $1 FOR UPDATE OF a, c",
            &[&approval],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("approval", approval))?;
    let (status, tier): (ApprovalStatus, Tier) = (row.try_get("approval_status")?, row.try_get("approval_tier")?);
    let contract = StoredContract::from_row(&row)?;
    caller.require(deciders(tier))?;
    if status != ApprovalStatus::Pending {
        return Err(ApiError::Conflict(format!("approval {approval} was already decided: {status}")));
    }
    state.faults.chaos(Some(contract.mission), "decision")?;
    let decided = decision.outcome();
    let kind = match decision {
        Decision::Approve => EventKind::ApprovalGranted,
        Decision::Reject => EventKind::ApprovalRejected,
    };
    tx.run(
        "WITH contract AS (UPDATE action_contracts SET decided_at = now() WHERE id = $5)
         UPDATE approval_requests SET status = $2, decided_by = $3, reason = $4, decided_at = now() WHERE id = $1",
        &[&approval, &decided, &caller.identity, &reason, &contract.id],
    )
    .await?;
    let mut pending = Pending::default();
    let decided_event = pending.event(kind, &contract, json!({ "decided_by": caller.identity, "reason": reason }));
    decided_event.actor = caller.identity.clone();
    decided_event.approval_id = Some(approval);

    let (contract_status, fallback_task_id) = match decision {
        Decision::Approve => {
            let benchmark = BenchmarkKind::verifying(tier, contract.path);
            (execute_and_verify(state, tx, &contract, benchmark, &mut pending).await?, None)
        }
        Decision::Reject => {
            let task = open_fallback(state, tx, &contract, reason, &mut pending).await?;
            (ContractStatus::Rejected, Some(task))
        }
    };
    pending.tally.moved = Some((Some(ContractStatus::AwaitingApproval), contract_status));
    pending.write(tx, contract.mission).await?;
    state.telemetry.record_action(tier.level(), contract_status);
    Ok(DecisionOutcome { approval_id: approval, contract_id: contract.id, decision, contract_status, fallback_task_id })
}

/// The graceful fallback of a rejection: the contract is rejected, and a human
/// gets a manual-remediation task on the mission.
#[tracing::instrument(name = "fallback", level = "debug", skip_all, fields(contract = %contract.id))]
async fn open_fallback(
    state: &AppState,
    tx: &Transaction<'_>,
    contract: &StoredContract,
    reason: Option<&str>,
    pending: &mut Pending,
) -> Result<Uuid, ApiError> {
    state.faults.chaos(Some(contract.mission), "fallback")?;
    let verdict = json!({ "rejected": true, "reason": reason });
    let task: Uuid = tx
        .one(
            "WITH rejected AS (
                UPDATE action_contracts SET status = $5, verification_result = $4, verified_at = now()
                 WHERE id = $2
                RETURNING id, error_type, action_type, error_message)
             INSERT INTO tasks (mission_id, contract_id, kind, title, payload, idempotency_key)
             SELECT $1, id, 'manual_remediation', 'Remediate by hand: ' || error_type || ' (' || action_type || ')',
                    jsonb_build_object('contract_id', id, 'error_message', error_message, 'reason', $3::text),
                    'fallback:' || id
               FROM rejected
             RETURNING id",
            &[&contract.mission, &contract.id, &reason, &verdict, &ContractStatus::Rejected],
        )
        .await?
        .try_get("id")?;
    pending.tally.tasks += 1;
    pending.event(EventKind::FallbackOpened, contract, json!({ "task_id": task }));
    Ok(task)
}
