//! The consistency conditions C1–C7 of docs/design.md — what "nothing lost" means —
//! checked as SQL against any Grace database: the scenario's phase 7, and
//! `grace verify --mission ID` on its own (e.g. against staging). What is
//! correct comes from the `specification`, never from the backend's
//! code. Each check reports how much it looked at, how many violations it
//! found and a few offending ids, so a failure says where to look.

use crate::control::status::RunStatus;
use crate::control::{acked_writes, ControlError};
use crate::db::references;
use crate::db::schema::{self, ForeignKey, LOG};
use crate::immutable_log::ChainProof;
use crate::specification::{
    contract_digest, required_events, ApprovalStatus, BenchmarkKind, ConfidencePath, ContractStatus, EventKind,
    MissionCounter, SnapshotStatus, Tier,
};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use uuid::Uuid;

/// How many offending ids a check names.
const EXAMPLES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyCheck {
    /// `C1` … `C7`.
    pub id: String,
    pub name: String,
    pub passed: bool,
    /// How many things were checked (rows, contracts, keys).
    pub checked: u64,
    pub violations: u64,
    /// The first offenders, each saying what is wrong with it.
    pub examples: Vec<String>,
    /// How it was proven, when that is not simply "every row was read"
    /// (C1: which keys Postgres enforces; C6: from where the chain was re-hashed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub basis: String,
}

impl ConsistencyCheck {
    fn new(id: &str, name: &str, checked: u64, offenders: Vec<String>) -> Self {
        Self::counted(id, name, checked, offenders.len() as u64, offenders)
    }

    fn counted(id: &str, name: &str, checked: u64, violations: u64, mut examples: Vec<String>) -> Self {
        examples.truncate(EXAMPLES);
        Self {
            id: id.into(),
            name: name.into(),
            passed: violations == 0,
            checked,
            violations,
            examples,
            basis: String::new(),
        }
    }

    fn based_on(self, basis: String) -> Self {
        Self { basis, ..self }
    }
}

impl std::fmt::Display for ConsistencyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        write!(f, "{mark} {} {}: {} checked, {} violations", self.id, self.name, self.checked, self.violations)?;
        if !self.basis.is_empty() {
            write!(f, " — {}", self.basis)?;
        }
        for example in &self.examples {
            write!(f, "\n    {example}")?;
        }
        Ok(())
    }
}

/// Runs C1–C7 for `mission` (C1 and C6 look at the whole database: a
/// dangling reference or a broken chain anywhere breaks every promise; `chain`
/// is the proof of the log the caller just ran; `full` scans every reference
/// even where Postgres enforces it). The first of `clients` runs the checks;
/// the reference scans are shared among all of them, a table at a time.
pub async fn verify_mission(
    clients: &[Client],
    mission: Uuid,
    chain: &ChainProof,
    full: bool,
) -> Result<Vec<ConsistencyCheck>, VerifyError> {
    let client = &clients[0];
    let within = |check: &'static str| move |cause: ControlError| VerifyError { check, cause };
    Ok(vec![
        no_orphans(clients, LogProven::by(chain).head, full).await.map_err(within("C1 no orphans"))?,
        event_completeness(client, mission).await.map_err(within("C2 event completeness"))?,
        tier_artifacts(client, mission).await.map_err(within("C3 tier artifacts"))?,
        approvals(client, mission).await.map_err(within("C4 approvals"))?,
        mission_counters(client, mission).await.map_err(within("C5 mission counters"))?,
        log_chain(client, mission, chain).await.map_err(within("C6 log chain"))?,
        acknowledged_writes(client, mission).await.map_err(within("C7 acknowledged writes"))?,
    ])
}

/// A consistency condition that could not be checked (as opposed to one that
/// failed): which one, and what went wrong on the way.
#[derive(Debug, thiserror::Error)]
#[error("{check} could not be checked: {cause}")]
pub struct VerifyError {
    /// The condition, as the report names it (`C3 tier artifacts`).
    pub check: &'static str,
    #[source]
    pub cause: ControlError,
}

/// Whether the mission exists, so `grace verify` can refuse an unknown id.
pub async fn mission_exists(client: &Client, mission: Uuid) -> Result<bool, tokio_postgres::Error> {
    Ok(client.query_opt("SELECT 1 FROM missions WHERE id = $1", &[&mission]).await?.is_some())
}

/// C1: every FOREIGN KEY of the data model exists, and every reference
/// resolves. A key Postgres enforces in every session — validated, its
/// triggers enabled ALWAYS (migration V10), so neither a trigger switched off
/// nor `session_replication_role = replica` lets an orphan through — has no
/// orphan to find, and its rows are not read unless `scan_all`. Every other
/// key gets every row of its table scanned: one deployed without the
/// constraint, or with it switched off for a while, can hold orphans from any
/// time. Only a superuser can get past an ALWAYS trigger unseen (switching it
/// off and on again); `--full` scans every row for that case too (`grace
/// verify --full` and `grace health --full`). `log_head`: the log's chain was
/// proven contiguous from genesis to this seq (see [`LogProven`]).
pub async fn no_orphans(
    clients: &[Client],
    log_head: Option<i64>,
    scan_all: bool,
) -> Result<ConsistencyCheck, ControlError> {
    let client = &clients[0];
    let expected = schema::expected_foreign_keys();
    let present = schema::present_foreign_keys(client).await?;
    let unenforced = schema::unenforced_foreign_keys(client).await?;
    let missing: Vec<&ForeignKey> = expected.iter().filter(|fk| !present.contains(fk)).collect();
    let mut offenders: Vec<String> = missing.iter().map(|fk| format!("FOREIGN KEY missing: {fk}")).collect();
    let scanned: Vec<&ForeignKey> =
        expected.iter().filter(|fk| scan_all || missing.contains(fk) || unenforced.contains(fk)).collect();
    let scan = references::ReferenceScan::total(references::scan_references(clients, &scanned, log_head).await?);
    let (references, orphans) = (scan.references, scan.orphans);
    offenders.extend(scan.examples);
    let proven = expected.len() - missing.len() - expected.iter().filter(|fk| unenforced.contains(fk)).count();
    let mut basis = format!(
        "{proven} of {} foreign keys enforced by Postgres in every session (validated, triggers ALWAYS); \
         {} scanned row by row ({references} references)",
        expected.len(),
        scanned.len()
    );
    if let (Some(head), true) = (log_head, scanned.iter().any(|fk| fk.references == LOG)) {
        basis.push_str(&format!(
            "; references to the log checked against the chain proven contiguous from genesis to seq {head}"
        ));
    }
    let checked = proven as u64 + references;
    let violations = missing.len() as u64 + orphans;
    Ok(ConsistencyCheck::counted("C1", "no orphans", checked, violations, offenders).based_on(basis))
}

/// What the chain proof says of the log's seqs: when it re-hashed from
/// genesis and held, every seq from 1 to `head` exists exactly once — so a
/// reference in that range resolves without a join (only one past the head,
/// appended since, is looked up).
#[derive(Debug, Clone, Copy)]
struct LogProven {
    head: Option<i64>,
}

impl LogProven {
    fn by(chain: &ChainProof) -> Self {
        let from_genesis = chain.start == crate::immutable_log::ProofStart::Genesis && chain.remaining == 0;
        let head = chain.head.as_ref().filter(|_| from_genesis && chain.verdict.holds()).map(|head| head.seq);
        Self { head }
    }
}

/// C2: each contract's events are exactly the sequence its status requires,
/// in order, with nothing after the terminal one.
async fn event_completeness(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let rows = client
        .query(
            "SELECT c.id, c.tier, c.status,
                    array(SELECT e.event_type::text FROM action_events e WHERE e.contract_id = c.id
                           ORDER BY e.id) AS events
               FROM action_contracts c WHERE c.mission_id = $1 ORDER BY c.created_at",
            &[&mission],
        )
        .await?;
    let mut offenders = Vec::new();
    for row in &rows {
        let (id, tier, status, events): (Uuid, i16, String, Vec<String>) =
            (row.try_get("id")?, row.try_get("tier")?, row.try_get("status")?, row.try_get("events")?);
        // Read as text: a database deployed some other way may hold states the
        // specification does not know, and that is a finding, not an error.
        let required = Tier::from_level(tier)
            .zip(status.parse::<ContractStatus>().ok())
            .and_then(|(tier, status)| required_events(tier, status));
        match required {
            None => offenders.push(format!("contract {id}: left in status {status}")),
            Some(required) => {
                let required: Vec<&str> = required.into_iter().map(EventKind::name).collect();
                if events != required {
                    offenders.push(format!("contract {id} ({status}): events {events:?}, required {required:?}"));
                }
            }
        }
    }
    Ok(ConsistencyCheck::new("C2", "event completeness", rows.len() as u64, offenders))
}

/// C3: tier 2+ contracts that executed have one snapshot and the benchmark
/// the specification verifies them with; rolled-back ones have their snapshot
/// restored and their resource back in the snapshot's state.
async fn tier_artifacts(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let executed: Vec<ContractStatus> = ContractStatus::ALL.iter().copied().filter(|s| s.executed()).collect();
    let rows = client
        .query(
            "SELECT c.id, c.tier, c.confidence_path, c.status,
                    (SELECT count(*) FROM safe_hold_snapshots s WHERE s.contract_id = c.id) AS snapshots,
                    array(SELECT b.kind::text FROM benchmark_runs b WHERE b.contract_id = c.id) AS benchmarks,
                    s.status AS snapshot_status, r.state = s.state AS state_restored
               FROM action_contracts c
               LEFT JOIN safe_hold_snapshots s ON s.id = c.snapshot_id
               LEFT JOIN managed_resources r ON r.id = c.resource_id
              WHERE c.mission_id = $1 AND c.tier > 1 AND c.status = ANY($2)",
            &[&mission, &executed],
        )
        .await?;
    let mut offenders = Vec::new();
    for row in &rows {
        let (id, tier, path, status): (Uuid, Tier, ConfidencePath, ContractStatus) =
            (row.try_get("id")?, row.try_get("tier")?, row.try_get("confidence_path")?, row.try_get("status")?);
        let (snapshots, benchmarks): (i64, Vec<String>) = (row.try_get("snapshots")?, row.try_get("benchmarks")?);
        let (snapshot_status, state_restored): (Option<String>, Option<bool>) =
            (row.try_get("snapshot_status")?, row.try_get("state_restored")?);
        let benchmark = BenchmarkKind::verifying(tier, path);
        let rolled_back = status == ContractStatus::RolledBack;
        if snapshots != 1 {
            offenders.push(format!("contract {id} ({status}): {snapshots} snapshots, not 1"));
        } else if !benchmarks.iter().any(|kind| kind == benchmark.as_str()) {
            offenders.push(format!("contract {id} ({status}): no {benchmark} benchmark"));
        } else if rolled_back && snapshot_status.as_deref() != Some(SnapshotStatus::Restored.as_str()) {
            offenders.push(format!("contract {id}: rolled back but its snapshot is not marked restored"));
        } else if rolled_back && state_restored != Some(true) {
            offenders.push(format!("contract {id}: rolled back but its resource differs from the snapshot"));
        }
    }
    Ok(ConsistencyCheck::new("C3", "tier artifacts", rows.len() as u64, offenders))
}

/// C4: every tier 2+ contract has an approval request; a decision carries who
/// and when and has its logged event; an approved contract is the one written
/// before the decision (its terms still hash to the digest taken then).
async fn approvals(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let decisions: Vec<&str> = EventKind::DECISIONS.iter().map(|k| k.name()).collect();
    let rows = client
        .query(
            "SELECT c.id AS contract_id, a.id AS approval_id, a.status,
                    a.decided_by IS NOT NULL AND a.decided_at IS NOT NULL AS who_and_when,
                    EXISTS (SELECT 1 FROM action_events e
                             WHERE e.approval_id = a.id AND e.log_seq IS NOT NULL AND e.event_type = ANY($2)) AS logged
               FROM action_contracts c
               LEFT JOIN approval_requests a ON a.contract_id = c.id
              WHERE c.mission_id = $1 AND c.tier > 1",
            &[&mission, &decisions],
        )
        .await?;
    let mut offenders = Vec::new();
    for row in &rows {
        let contract: Uuid = row.try_get("contract_id")?;
        let Some(approval) = row.try_get::<_, Option<Uuid>>("approval_id")? else {
            offenders.push(format!("contract {contract}: tier 2+ without an approval request"));
            continue;
        };
        let status: String = row.try_get("status")?;
        if status == ApprovalStatus::Pending.as_str() {
            continue;
        }
        let (who_and_when, logged): (bool, bool) = (row.try_get("who_and_when")?, row.try_get("logged")?);
        if !who_and_when {
            offenders.push(format!("approval {approval}: {status} without who and when"));
        } else if !logged {
            offenders.push(format!("approval {approval}: {status} without a logged decision event"));
        }
    }
    for contract in rebuilt_contracts(client, mission).await? {
        offenders.push(format!("contract {contract}: what executed is not the contract approved"));
    }
    Ok(ConsistencyCheck::new("C4", "approvals", rows.len() as u64, offenders))
}

/// The approved contracts of `mission` that are not the contract stored before
/// the decision: written after it, or with terms that no longer hash to the
/// digest taken when they were written.
pub async fn rebuilt_contracts(client: &Client, mission: Uuid) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.id, c.created_at <= a.decided_at AS written_before, c.error_type, c.action_type, c.tier,
                    c.expected_effect, c.baseline_state, c.contract_digest
               FROM action_contracts c JOIN approval_requests a ON a.contract_id = c.id
              WHERE c.mission_id = $1 AND a.status = $2
              ORDER BY c.created_at, c.id",
            &[&mission, &ApprovalStatus::Approved],
        )
        .await?;
    let mut rebuilt = Vec::new();
    for row in &rows {
        let digest = contract_digest(
            row.try_get("error_type")?,
            row.try_get("action_type")?,
            row.try_get("tier")?,
            &row.try_get("expected_effect")?,
            &row.try_get("baseline_state")?,
        );
        let written_before: Option<bool> = row.try_get("written_before")?;
        if written_before != Some(true) || digest != row.try_get::<_, String>("contract_digest")? {
            rebuilt.push(row.try_get("id")?);
        }
    }
    Ok(rebuilt)
}

/// C5: the mission's counters equal counts over its contracts, counted the
/// way the specification says each final status counts.
async fn mission_counters(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let mut offenders = Vec::new();
    let total = client
        .query_one(
            "SELECT m.total_actions AS stored,
                    (SELECT count(*) FROM action_contracts c WHERE c.mission_id = m.mission_id)::int AS counted
               FROM mission_progress m WHERE m.mission_id = $1",
            &[&mission],
        )
        .await?;
    let mut compare = |counter: &str, row: &tokio_postgres::Row| -> Result<(), tokio_postgres::Error> {
        let (stored, counted): (i32, i32) = (row.try_get("stored")?, row.try_get("counted")?);
        if stored != counted {
            offenders.push(format!("mission {mission}: {counter} = {stored}, contracts say {counted}"));
        }
        Ok(())
    };
    compare("total_actions", &total)?;
    for counter in MissionCounter::ALL {
        let row = client
            .query_one(
                &format!(
                    "SELECT m.{column} AS stored,
                            (SELECT count(*) FROM action_contracts c
                              WHERE c.mission_id = m.mission_id AND c.status = ANY($2))::int AS counted
                       FROM mission_progress m WHERE m.mission_id = $1",
                    column = counter.column()
                ),
                &[&mission, &counter.statuses()],
            )
            .await?;
        compare(counter.column(), &row)?;
    }
    Ok(ConsistencyCheck::new("C5", "mission counters", 1 + MissionCounter::ALL.len() as u64, offenders))
}
/// C6: the log's seq is contiguous and every hash recomputes (from genesis,
/// or after the last proof the log still agrees with); every event of the
/// mission has its log entry.
async fn log_chain(client: &Client, mission: Uuid, chain: &ChainProof) -> Result<ConsistencyCheck, ControlError> {
    let verdict = &chain.verdict;
    let mut examples: Vec<String> =
        verdict.breaks.iter().map(|b| format!("log seq {}: {}", b.seq, b.problem)).collect();
    let row = client
        .query_one(
            "SELECT count(*) AS events, count(*) FILTER (WHERE log_seq IS NULL) AS unlogged,
                    array(SELECT id::text FROM action_events WHERE mission_id = $1 AND log_seq IS NULL ORDER BY id LIMIT 5)
                      AS examples
               FROM action_events WHERE mission_id = $1",
            &[&mission],
        )
        .await?;
    let (events, unlogged): (i64, i64) = (row.try_get("events")?, row.try_get("unlogged")?);
    examples
        .extend(row.try_get::<_, Vec<String>>("examples")?.into_iter().map(|id| format!("event {id}: no log entry")));
    let checked = verdict.entries as u64 + events as u64;
    let basis = chain.scope();
    Ok(ConsistencyCheck::counted("C6", "log chain", checked, verdict.broken as u64 + unlogged as u64, examples)
        .based_on(basis))
}

/// C7: for every completed load run of the mission, the stored writes are
/// exactly those acknowledged.
async fn acknowledged_writes(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let runs = client
        .query(
            "SELECT id FROM control.runs WHERE mission_id = $1 AND status = ANY($2) ORDER BY created_at",
            &[&mission, &[RunStatus::Merging, RunStatus::Completed].as_slice()],
        )
        .await?;
    let (mut checked, mut violations, mut examples) = (0, 0, Vec::new());
    for run in &runs {
        let run: Uuid = run.try_get("id")?;
        let check = acked_writes::check(client, run).await?;
        checked += check.acknowledged.max(check.stored);
        if !check.passed {
            violations += (check.missing + check.duplicated + check.unacknowledged).max(1);
            examples.push(format!("load run {run}: {check}"));
        }
    }
    Ok(ConsistencyCheck::counted("C7", "acknowledged writes", checked, violations, examples))
}
