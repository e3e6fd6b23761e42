//! The consistency conditions C1–C7 of DESIGN.md — what "nothing lost" means —
//! checked as SQL against any Grace database: the scenario's phase 7, and
//! `grace verify --mission ID` on its own (e.g. against staging). Each check
//! reports how much it looked at, how many violations it found and a few
//! offending ids, so a failure says where to look.

use crate::backend::events::EventKind;
use crate::backend::pipeline::{contract_digest, required_events};
use crate::control::{acked_writes, ControlError};
use crate::db::schema;
use crate::immutable_log;
use crate::policy::Tier;
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
}

impl ConsistencyCheck {
    fn new(id: &str, name: &str, checked: u64, offenders: Vec<String>) -> Self {
        Self::counted(id, name, checked, offenders.len() as u64, offenders)
    }

    fn counted(id: &str, name: &str, checked: u64, violations: u64, mut examples: Vec<String>) -> Self {
        examples.truncate(EXAMPLES);
        Self { id: id.into(), name: name.into(), passed: violations == 0, checked, violations, examples }
    }
}

impl std::fmt::Display for ConsistencyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        write!(f, "{mark} {} {}: {} checked, {} violations", self.id, self.name, self.checked, self.violations)?;
        for example in &self.examples {
            write!(f, "\n    {example}")?;
        }
        Ok(())
    }
}

/// Runs C1–C7 for `mission` (C1 and C6 look at the whole database: a
/// dangling reference or a broken chain anywhere breaks every promise).
pub async fn verify_mission(client: &Client, mission: Uuid) -> Result<Vec<ConsistencyCheck>, ControlError> {
    Ok(vec![
        no_orphans(client).await?,
        event_completeness(client, mission).await?,
        tier_artifacts(client, mission).await?,
        approvals(client, mission).await?,
        mission_counters(client, mission).await?,
        log_chain(client, mission).await?,
        acknowledged_writes(client, mission).await?,
    ])
}

/// Whether the mission exists, so `grace verify` can refuse an unknown id.
pub async fn mission_exists(client: &Client, mission: Uuid) -> Result<bool, tokio_postgres::Error> {
    Ok(client.query_opt("SELECT 1 FROM missions WHERE id = $1", &[&mission]).await?.is_some())
}

/// C1: every FOREIGN KEY of the data model exists, and every reference
/// resolves (a database deployed without the constraints can hold orphans).
async fn no_orphans(client: &Client) -> Result<ConsistencyCheck, ControlError> {
    let expected = schema::expected_foreign_keys();
    let present = schema::present_foreign_keys(client).await?;
    let mut offenders: Vec<String> =
        expected.iter().filter(|fk| !present.contains(fk)).map(|fk| format!("FOREIGN KEY missing: {fk}")).collect();
    let mut rows_checked = 0u64;
    let mut orphans = 0u64;
    for fk in &expected {
        let key = if fk.references == "public.immutable_log" { "seq" } else { "id" };
        let row = client
            .query_one(
                &format!(
                    "WITH dangling AS (
                        SELECT t.{column} AS value FROM {table} t
                         WHERE t.{column} IS NOT NULL
                           AND NOT EXISTS (SELECT 1 FROM {referenced} r WHERE r.{key} = t.{column}))
                     SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM dangling),
                            array(SELECT DISTINCT value::text FROM dangling LIMIT {EXAMPLES})",
                    table = fk.table,
                    column = fk.column,
                    referenced = fk.references,
                ),
                &[],
            )
            .await?;
        rows_checked += row.get::<_, i64>(0) as u64;
        let dangling: i64 = row.get(1);
        orphans += dangling as u64;
        for value in row.get::<_, Vec<String>>(2) {
            offenders.push(format!("{}.{} = {value} refers to no row of {}", fk.table, fk.column, fk.references));
        }
    }
    let missing_constraints = expected.iter().filter(|fk| !present.contains(fk)).count() as u64;
    Ok(ConsistencyCheck::counted("C1", "no orphans", rows_checked, missing_constraints + orphans, offenders))
}

/// C2: each contract's events are exactly the sequence its status requires,
/// in order, with nothing after the terminal one.
async fn event_completeness(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let rows = client
        .query(
            "SELECT c.id, c.tier, c.status,
                    array(SELECT e.event_type FROM action_events e WHERE e.contract_id = c.id ORDER BY e.id)
               FROM action_contracts c WHERE c.mission_id = $1 ORDER BY c.created_at",
            &[&mission],
        )
        .await?;
    let mut offenders = Vec::new();
    for row in &rows {
        let (id, tier, status, events): (Uuid, i16, String, Vec<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let required = Tier::from_level(tier).and_then(|tier| required_events(tier, &status));
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

/// C3: tier 2+ contracts that executed have one snapshot and a regression
/// benchmark; rolled-back ones have their snapshot restored and their resource
/// back in the snapshot's state.
async fn tier_artifacts(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let rows = client
        .query(
            "SELECT c.id, c.status,
                    (SELECT count(*) FROM safe_hold_snapshots s WHERE s.contract_id = c.id),
                    EXISTS (SELECT 1 FROM benchmark_runs b WHERE b.contract_id = c.id AND b.kind = 'regression'),
                    s.status, r.state = s.state
               FROM action_contracts c
               LEFT JOIN safe_hold_snapshots s ON s.id = c.snapshot_id
               LEFT JOIN managed_resources r ON r.id = c.resource_id
              WHERE c.mission_id = $1 AND c.tier > 1 AND c.status IN ('verified', 'violated', 'rolled_back')",
            &[&mission],
        )
        .await?;
    let mut offenders = Vec::new();
    for row in &rows {
        let (id, status, snapshots, regression): (Uuid, String, i64, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let (snapshot_status, state_restored): (Option<String>, Option<bool>) = (row.get(4), row.get(5));
        if snapshots != 1 {
            offenders.push(format!("contract {id} ({status}): {snapshots} snapshots, not 1"));
        } else if !regression {
            offenders.push(format!("contract {id} ({status}): no regression benchmark"));
        } else if status == "rolled_back" && snapshot_status.as_deref() != Some("restored") {
            offenders.push(format!("contract {id}: rolled back but its snapshot is not marked restored"));
        } else if status == "rolled_back" && state_restored != Some(true) {
            offenders.push(format!("contract {id}: rolled back but its resource differs from the snapshot"));
        }
    }
    Ok(ConsistencyCheck::new("C3", "tier artifacts", rows.len() as u64, offenders))
}

/// C4: every tier 2+ contract has an approval request; a decision carries who
/// and when and has its logged event; an approved contract is the one written
/// before the decision (its terms still hash to the digest taken then).
async fn approvals(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let rows = client
        .query(
            "SELECT c.id, a.id, a.status, a.decided_by IS NOT NULL AND a.decided_at IS NOT NULL,
                    EXISTS (SELECT 1 FROM action_events e
                             WHERE e.approval_id = a.id AND e.log_seq IS NOT NULL
                               AND e.event_type IN ('agentic.approval_granted', 'agentic.approval_rejected')),
                    c.created_at <= a.decided_at,
                    c.error_type, c.action_type, c.tier, c.expected_effect, c.baseline_state, c.contract_digest
               FROM action_contracts c
               LEFT JOIN approval_requests a ON a.contract_id = c.id
              WHERE c.mission_id = $1 AND c.tier > 1",
            &[&mission],
        )
        .await?;
    let mut offenders = Vec::new();
    for row in &rows {
        let contract: Uuid = row.get(0);
        let Some(approval) = row.get::<_, Option<Uuid>>(1) else {
            offenders.push(format!("contract {contract}: tier 2+ without an approval request"));
            continue;
        };
        let status: String = row.get(2);
        if status == "pending" {
            continue;
        }
        let (who_and_when, logged, before): (bool, bool, Option<bool>) = (row.get(3), row.get(4), row.get(5));
        if !who_and_when {
            offenders.push(format!("approval {approval}: {status} without who and when"));
        } else if !logged {
            offenders.push(format!("approval {approval}: {status} without a logged decision event"));
        } else if status == "approved" {
            let digest = contract_digest(row.get(6), row.get(7), row.get(8), &row.get(9), &row.get(10));
            if before != Some(true) || digest != row.get::<_, String>(11) {
                offenders.push(format!("contract {contract}: what executed is not the contract approved"));
            }
        }
    }
    Ok(ConsistencyCheck::new("C4", "approvals", rows.len() as u64, offenders))
}

/// C5: the mission's counters equal counts over its contracts.
async fn mission_counters(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let row = client
        .query_one(
            "SELECT m.total_actions, m.completed_actions, m.failed_actions, m.rolled_back_actions,
                    count(c.id)::int, (count(*) FILTER (WHERE c.status = 'verified'))::int,
                    (count(*) FILTER (WHERE c.status IN ('failed', 'rejected')))::int,
                    (count(*) FILTER (WHERE c.status = 'rolled_back'))::int
               FROM missions m LEFT JOIN action_contracts c ON c.mission_id = m.id
              WHERE m.id = $1 GROUP BY m.id",
            &[&mission],
        )
        .await?;
    let offenders = ["total_actions", "completed_actions", "failed_actions", "rolled_back_actions"]
        .iter()
        .enumerate()
        .filter_map(|(i, counter)| {
            let (stored, counted): (i32, i32) = (row.get(i), row.get(i + 4));
            (stored != counted).then(|| format!("mission {mission}: {counter} = {stored}, contracts say {counted}"))
        })
        .collect();
    Ok(ConsistencyCheck::new("C5", "mission counters", 4, offenders))
}

/// C6: the log's seq is contiguous and every hash recomputes; every event of
/// the mission has its log entry.
async fn log_chain(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let verdict = immutable_log::verify(client).await?;
    let mut examples: Vec<String> =
        verdict.breaks.iter().map(|b| format!("log seq {}: {}", b.seq, b.problem)).collect();
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE log_seq IS NULL),
                    array(SELECT id::text FROM action_events WHERE mission_id = $1 AND log_seq IS NULL ORDER BY id LIMIT 5)
               FROM action_events WHERE mission_id = $1",
            &[&mission],
        )
        .await?;
    let (events, unlogged): (i64, i64) = (row.get(0), row.get(1));
    examples.extend(row.get::<_, Vec<String>>(2).into_iter().map(|id| format!("event {id}: no log entry")));
    let checked = verdict.entries as u64 + events as u64;
    Ok(ConsistencyCheck::counted("C6", "log chain", checked, verdict.broken as u64 + unlogged as u64, examples))
}

/// C7: for every completed load run of the mission, the stored writes are
/// exactly those acknowledged.
async fn acknowledged_writes(client: &Client, mission: Uuid) -> Result<ConsistencyCheck, ControlError> {
    let runs = client
        .query(
            "SELECT id FROM control.runs WHERE mission_id = $1 AND status IN ('merging', 'completed') ORDER BY created_at",
            &[&mission],
        )
        .await?;
    let (mut checked, mut violations, mut examples) = (0, 0, Vec::new());
    for run in &runs {
        let run: Uuid = run.get(0);
        let check = acked_writes::check(client, run).await?;
        checked += check.acknowledged.max(check.stored);
        if !check.passed {
            violations += (check.missing + check.extra).max(1);
            examples.push(format!("load run {run}: {check}"));
        }
    }
    Ok(ConsistencyCheck::counted("C7", "acknowledged writes", checked, violations, examples))
}
