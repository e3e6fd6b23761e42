//! The counters a mission's read models come from (migration V8): the
//! mission row's own (`total_actions`, `completed_actions`…, checked by C5)
//! and the slotted `mission_stats` the summary and verification stats read.
//! Every write adds its counts in a statement it runs anyway — the pipeline's
//! closing tally, the event recorder, chat and task writes — so a write that
//! rolls back takes its counts with it and a read never counts rows.

use super::error::ApiError;
use super::prepared::Prepared;
use crate::specification::{ContractStatus, MissionCounter, Tier};
use deadpool_postgres::Transaction;
use std::sync::LazyLock;
use uuid::Uuid;

/// A statement fragment (a data-modifying CTE's body) adding `rows` — a query
/// selecting `mission_id` and a column named after each of `counters` — to
/// those counters of `mission_stats`, in the writing session's slot. One
/// fragment for all of a statement's counts: two upserts of the same row in
/// one statement are refused.
pub fn adding_to(counters: &[&str], rows: &str) -> String {
    let columns = counters.join(", ");
    let sums: Vec<String> = counters.iter().map(|c| format!("{c} = s.{c} + excluded.{c}")).collect();
    format!(
        "INSERT INTO mission_stats AS s (mission_id, slot, {columns})
         SELECT mission_id, grace_stats_slot(), {columns} FROM ({rows}) AS counted
         ON CONFLICT (mission_id, slot) DO UPDATE SET {}",
        sums.join(", ")
    )
}

/// What one pipeline operation changes on its mission's counters.
#[derive(Debug, Default)]
pub struct MissionTally {
    /// A new contract: its tier and confidence.
    pub created: Option<(Tier, f64)>,
    /// The contract's status before (`None` for a new one) and after.
    pub moved: Option<(Option<ContractStatus>, ContractStatus)>,
    pub executed: bool,
    pub snapshots: i64,
    pub snapshots_restored: i64,
    pub benchmarks: i64,
    pub benchmarks_failed: i64,
    pub approvals: i64,
    pub tasks: i64,
}

/// The tally's statement: `mission_stats` (one upsert, a column per status
/// named as the specification spells it), the confidence minute, and the
/// mission row, whose lock is taken last so it is held only briefly.
static APPLY: LazyLock<String> = LazyLock::new(|| {
    // $1 mission, $2 new contract (0/1), $3 its confidence, $4-$6 the mission
    // row's completed/failed/rolled_back, $7-$9 tiers 1-3, $10 executed,
    // $11 snapshots, $12 restored, $13 benchmarks, $14 failed benchmarks,
    // $15 approvals, $16 tasks, then one delta per status.
    let statuses: Vec<&str> = ContractStatus::ALL.iter().map(|s| s.as_str()).collect();
    let status_params: Vec<String> = (0..statuses.len()).map(|i| format!("${}", 17 + i)).collect();
    let columns = [
        "contracts",
        "tier_1",
        "tier_2",
        "tier_3",
        "executed",
        "snapshots",
        "snapshots_restored",
        "benchmarks",
        "benchmarks_failed",
        "approvals",
        "tasks",
    ]
    .into_iter()
    .chain(statuses.iter().copied())
    .collect::<Vec<_>>();
    let values = ["$2::bigint", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15", "$16"]
        .into_iter()
        .map(String::from)
        .chain(status_params)
        .collect::<Vec<_>>();
    let sums: Vec<String> = columns.iter().map(|c| format!("{c} = s.{c} + excluded.{c}")).collect();
    format!(
        "WITH stats AS (
            INSERT INTO mission_stats AS s (mission_id, slot, {columns}, first_contract_at, last_contract_at)
            VALUES ($1, grace_stats_slot(), {values},
                    CASE WHEN $2 = 1 THEN now() END, CASE WHEN $2 = 1 THEN now() END)
            ON CONFLICT (mission_id, slot) DO UPDATE SET {sums},
                first_contract_at = least(s.first_contract_at, excluded.first_contract_at),
                last_contract_at = greatest(s.last_contract_at, excluded.last_contract_at)),
         minute AS (
            INSERT INTO mission_confidence_minutes AS m (mission_id, minute, contracts, confidence_sum)
            SELECT $1, date_trunc('minute', now()), 1, $3 WHERE $2 = 1
            ON CONFLICT (mission_id, minute) DO UPDATE SET
                contracts = m.contracts + 1, confidence_sum = m.confidence_sum + excluded.confidence_sum)
         UPDATE missions
            SET total_actions = total_actions + $2,
                confidence = CASE WHEN $2 = 1
                                  THEN (coalesce(confidence, 0) * total_actions + $3) / (total_actions + 1)
                                  ELSE confidence END,
                completed_actions = completed_actions + $4,
                failed_actions = failed_actions + $5,
                rolled_back_actions = rolled_back_actions + $6,
                progress_ratio = (completed_actions + failed_actions + rolled_back_actions + $4 + $5 + $6)::float8
                                 / greatest(total_actions + $2, 1),
                updated_at = now()
          WHERE id = $1",
        columns = columns.join(", "),
        values = values.join(", "),
        sums = sums.join(", "),
    )
});

impl MissionTally {
    pub async fn apply(&self, tx: &Transaction<'_>, mission: Uuid) -> Result<(), ApiError> {
        let created = i64::from(self.created.is_some());
        let confidence = self.created.map_or(0.0, |(_, confidence)| confidence);
        let tier = |level: Tier| i64::from(self.created.is_some_and(|(tier, _)| tier == level));
        // The mission row counts final statuses; a contract reaches one once.
        let ended = self.moved.and_then(|(_, to)| to.counter());
        let counter = |which: MissionCounter| i32::from(ended == Some(which));
        let counters =
            [counter(MissionCounter::Completed), counter(MissionCounter::Failed), counter(MissionCounter::RolledBack)];
        let counts = [
            tier(Tier::Auto),
            tier(Tier::Approver),
            tier(Tier::Governance),
            i64::from(self.executed),
            self.snapshots,
            self.snapshots_restored,
            self.benchmarks,
            self.benchmarks_failed,
            self.approvals,
            self.tasks,
        ];
        let status_deltas = ContractStatus::ALL.iter().map(|status| match self.moved {
            Some((from, to)) => i64::from(to == *status) - i64::from(from == Some(*status)),
            None => 0,
        });
        let counts: Vec<i64> = counts.into_iter().chain(status_deltas).collect();
        let mut params: Vec<Param<'_>> = vec![&mission, &created, &confidence];
        params.extend(counters.iter().map(|c| c as Param<'_>));
        params.extend(counts.iter().map(|c| c as Param<'_>));
        tx.run(&APPLY, &params).await?;
        Ok(())
    }
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
