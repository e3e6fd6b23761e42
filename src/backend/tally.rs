//! A pipeline operation's closing statement: its events and what it changes
//! on its mission's counters (`counters`), written together as the
//! operation's last statement, so its counter slot is locked only briefly
//! and the events' count goes in the same upsert as the rest.

use super::error::ApiError;
use super::events::{self, NewEvent};
use super::prepared::Prepared;
use crate::specification::{ContractStatus, Tier};
use deadpool_postgres::Transaction;
use std::sync::LazyLock;
use uuid::Uuid;

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

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// The tally's statement, with the operation's events: the events (`$1..$8`,
/// see `events::INPUT`), `mission_stats` (one upsert, a column per status
/// named as the specification spells it, the events counted there too) and
/// the confidence minute, both in the writing session's slot.
static APPLY: LazyLock<String> = LazyLock::new(|| {
    // $9 mission, $10 new contract (0/1), $11 its confidence, $12-$14 tiers
    // 1-3, $15 executed, $16 snapshots, $17 restored, $18 benchmarks, $19
    // failed benchmarks, $20 approvals, $21 tasks, then one delta per status.
    let statuses: Vec<&str> = ContractStatus::ALL.iter().map(|s| s.as_str()).collect();
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
    let values = ["$10::bigint".to_string()]
        .into_iter()
        .chain((12..=21 + statuses.len()).map(|i| format!("${i}")))
        .collect::<Vec<_>>();
    let sums: Vec<String> = columns.iter().map(|c| format!("{c} = s.{c} + excluded.{c}")).collect();
    format!(
        "WITH {input},
         {stored},
         minute AS (
            INSERT INTO mission_confidence_minutes AS m (mission_id, minute, slot, contracts, confidence_sum)
            SELECT $9, date_trunc('minute', now()), grace_stats_slot(), 1, $11::float8 WHERE $10::bigint = 1
            ON CONFLICT (mission_id, minute, slot) DO UPDATE SET
                contracts = m.contracts + 1, confidence_sum = m.confidence_sum + excluded.confidence_sum)
         INSERT INTO mission_stats AS s (mission_id, slot, {columns}, events, confidence_sum, first_contract_at,
                                         last_contract_at)
         VALUES ($9, grace_stats_slot(), {values}, (SELECT count(*) FROM event), $11,
                 CASE WHEN $10 = 1 THEN now() END, CASE WHEN $10 = 1 THEN now() END)
         ON CONFLICT (mission_id, slot) DO UPDATE SET {sums}, events = s.events + excluded.events,
             confidence_sum = s.confidence_sum + excluded.confidence_sum,
             first_contract_at = least(s.first_contract_at, excluded.first_contract_at),
             last_contract_at = greatest(s.last_contract_at, excluded.last_contract_at)",
        input = *events::INPUT,
        stored = events::STORED,
        columns = columns.join(", "),
        values = values.join(", "),
        sums = sums.join(", "),
    )
});

impl MissionTally {
    /// Writes the operation's `events` (all of them of `mission`) and this
    /// tally, in one statement.
    pub async fn write(&self, tx: &Transaction<'_>, mission: Uuid, events: &[NewEvent]) -> Result<(), ApiError> {
        debug_assert!(events.iter().all(|e| e.mission_id == Some(mission)));
        let created = i64::from(self.created.is_some());
        let confidence = self.created.map_or(0.0, |(_, confidence)| confidence);
        let tier = |level: Tier| i64::from(self.created.is_some_and(|(tier, _)| tier == level));
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
        let columns = events::Columns::of(events);
        let mut params: Vec<Param<'_>> = columns.params().to_vec();
        params.extend([&mission as Param<'_>, &created, &confidence]);
        params.extend(counts.iter().map(|c| c as Param<'_>));
        tx.run(&APPLY, &params).await?;
        Ok(())
    }
}
