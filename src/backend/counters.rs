//! The counters a mission's read models come from (migrations V8, V15): the
//! slotted `mission_stats` that the mission's progress (`mission_progress`:
//! `total_actions`, `completed_actions`…, checked by C5), the summary and the
//! verification stats read. No write updates the mission row itself, so
//! writers of one mission never queue on it.
//! Every write adds its counts in a statement it runs anyway — the pipeline's
//! closing tally (`tally`), the event recorder, chat and task writes — so a write that
//! rolls back takes its counts with it and a read never counts rows.

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
