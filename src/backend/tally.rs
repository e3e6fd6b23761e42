//! A pipeline operation's closing statement: its events and what it changes
//! on its mission's counters (`counters`), written together as the
//! operation's last statement (or as the last CTEs of its only one), so its
//! counter slot is locked only briefly and the events' count goes in the same
//! upsert as the rest.

use super::error::ApiError;
use super::events::{self, NewEvent};
use super::prepared::Prepared;
use crate::specification::{ContractStatus, Tier};
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

/// How many parameters the tally takes.
pub const PARAMS: usize = 21 + ContractStatus::ALL.len();

/// The tally as CTEs of a statement whose other CTEs come before them: the
/// events (`input`, `event`; see `events::input`), the confidence minute
/// (`minute`) and `mission_stats` (`stats`: one upsert, a column per status
/// named as the specification spells it, the events counted there too), both
/// in the writing session's slot. Its parameters are numbered from `$first`
/// (the events, then the mission, whether a contract is new (0/1), its
/// confidence, tiers 1-3, executed, snapshots, restored, benchmarks, failed
/// benchmarks, approvals, tasks, then one delta per status: `TallyValues`'
/// order). Nothing is recorded unless `only_if` holds, when one is given.
pub fn ctes(first: usize, only_if: Option<&str>) -> String {
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
    let p = |n: usize| format!("${}", first + n - 1);
    let (mission, created, confidence) = (p(9), p(10), p(11));
    let values =
        [format!("{created}::bigint")].into_iter().chain((12..=21 + statuses.len()).map(p)).collect::<Vec<_>>();
    let sums: Vec<String> = columns.iter().map(|c| format!("{c} = s.{c} + excluded.{c}")).collect();
    let and_only_if = only_if.map_or(String::new(), |condition| format!("AND {condition}"));
    format!(
        "{input},
         {stored},
         minute AS (
            INSERT INTO mission_confidence_minutes AS m (mission_id, minute, slot, contracts, confidence_sum)
            SELECT {mission}, date_trunc('minute', now()), grace_stats_slot(), 1, {confidence}::float8
             WHERE {created}::bigint = 1 {and_only_if}
            ON CONFLICT (mission_id, minute, slot) DO UPDATE SET
                contracts = m.contracts + 1, confidence_sum = m.confidence_sum + excluded.confidence_sum),
         stats AS (
            INSERT INTO mission_stats AS s (mission_id, slot, {columns}, events, confidence_sum, first_contract_at,
                                            last_contract_at)
            SELECT {mission}, grace_stats_slot(), {values}, (SELECT count(*) FROM event), {confidence},
                   CASE WHEN {created} = 1 THEN now() END, CASE WHEN {created} = 1 THEN now() END
             WHERE true {and_only_if}
            ON CONFLICT (mission_id, slot) DO UPDATE SET {sums}, events = s.events + excluded.events,
                confidence_sum = s.confidence_sum + excluded.confidence_sum,
                first_contract_at = least(s.first_contract_at, excluded.first_contract_at),
                last_contract_at = greatest(s.last_contract_at, excluded.last_contract_at))",
        input = events::input(first, only_if),
        stored = events::STORED,
        columns = columns.join(", "),
        values = values.join(", "),
        sums = sums.join(", "),
    )
}

/// The tally on its own: an operation's closing statement.
pub(crate) static APPLY: LazyLock<String> = LazyLock::new(|| format!("WITH {} SELECT", ctes(1, None)));

/// A tally's parameters, owned, for `ctes`.
pub struct TallyValues<'a> {
    events: events::Columns<'a>,
    mission: Uuid,
    created: i64,
    confidence: f64,
    counts: Vec<i64>,
}

impl TallyValues<'_> {
    /// The `PARAMS` parameters, in `ctes`' order.
    pub fn params(&self) -> Vec<Param<'_>> {
        let mut params: Vec<Param<'_>> = self.events.params().to_vec();
        params.extend([&self.mission as Param<'_>, &self.created, &self.confidence]);
        params.extend(self.counts.iter().map(|c| c as Param<'_>));
        debug_assert_eq!(params.len(), PARAMS);
        params
    }
}

impl MissionTally {
    /// This tally's parameters, with the operation's `events` (all of them of
    /// `mission`).
    pub fn values<'a>(&self, mission: Uuid, events: &'a [NewEvent]) -> TallyValues<'a> {
        debug_assert!(events.iter().all(|e| e.mission_id == Some(mission)));
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
        TallyValues {
            events: events::Columns::of(events),
            mission,
            created: i64::from(self.created.is_some()),
            confidence: self.created.map_or(0.0, |(_, confidence)| confidence),
            counts: counts.into_iter().chain(status_deltas).collect(),
        }
    }

    /// Writes the operation's `events` (all of them of `mission`) and this
    /// tally, in one statement.
    pub async fn write(&self, tx: &impl Prepared, mission: Uuid, events: &[NewEvent]) -> Result<(), ApiError> {
        tx.run(&APPLY, &self.values(mission, events).params()).await?;
        Ok(())
    }
}
