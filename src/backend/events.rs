//! Events: what every state change announces. An event is a row in
//! `action_events`, written in the transaction of the change it describes, so
//! a change without its event (or the reverse) cannot commit. The events are
//! the log's outbox: one whose `log_seq` is NULL waits for the sequencer, which
//! chains it into the immutable log; the Trigger Mesh then publishes the events
//! in log order.

use super::counters;
use super::error::ApiError;
use super::prepared::Prepared;
use crate::specification::EventKind;
use deadpool_postgres::Transaction;
use serde_json::Value;
use std::sync::LazyLock;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// One event to record. `resource` names what changed (e.g. `contract/<id>`);
/// `actor` is who caused it (a caller's identity, or `grace-pipeline`).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub actor: String,
    pub resource: String,
    pub mission_id: Option<Uuid>,
    pub contract_id: Option<Uuid>,
    pub approval_id: Option<Uuid>,
    pub payload: Value,
    pub result: &'static str,
}

impl NewEvent {
    /// An event about a contract of a mission, caused by the pipeline itself.
    pub fn for_contract(kind: EventKind, mission_id: Uuid, contract_id: Uuid, payload: Value) -> Self {
        Self {
            kind,
            actor: PIPELINE_ACTOR.to_string(),
            resource: format!("contract/{contract_id}"),
            mission_id: Some(mission_id),
            contract_id: Some(contract_id),
            approval_id: None,
            payload,
            result: "ok",
        }
    }
}

/// The actor recorded for steps the pipeline takes on its own.
pub const PIPELINE_ACTOR: &str = "grace-pipeline";

/// The CTE storing the events of a CTE named `input` — columns `id` (drawn
/// with `NEXT_ID`), `event_type`, `mission_id`, `contract_id`, `approval_id`,
/// `payload`, `actor`, `resource`, `result` and `ord` — as `event`, returning
/// their ids. A statement that writes an event along with other rows (a chat
/// exchange) puts it after its own CTEs; its counts (`events` among them) go
/// in one `counters::adding_to`.
pub const STORED: &str = "event AS (
        INSERT INTO action_events (id, event_type, mission_id, contract_id, approval_id, payload, actor, resource,
                                   result)
        OVERRIDING SYSTEM VALUE
        SELECT id, event_type, mission_id, contract_id, approval_id, payload, actor, resource, result
          FROM input ORDER BY ord
        RETURNING id)";

/// An event's id, drawn in the statement that stores it, from the identity
/// column's sequence named as a constant: the statement's plan then holds the
/// sequence itself, where `pg_get_serial_sequence` searched the catalog again
/// for every event (14 µs a call, 0.5 µs for the constant). The schema test
/// `the_event_ids_sequence_is_the_one_named_here` keeps the name true.
pub const NEXT_ID: &str = "nextval('action_events_id_seq'::regclass)";

/// The CTE `input` of `STORED`: the events given as eight parameters from
/// `$first` on, one array per column (see `Columns`), in order — none of them
/// unless the condition `only_if` holds, when one is given.
pub fn input(first: usize, only_if: Option<&str>) -> String {
    let arrays: Vec<String> = ["text", "uuid", "uuid", "uuid", "jsonb", "text", "text", "text"]
        .iter()
        .enumerate()
        .map(|(i, element)| format!("${}::{element}[]", first + i))
        .collect();
    format!(
        "input AS (
        SELECT {NEXT_ID} AS id, t.*
          FROM unnest({})
               WITH ORDINALITY AS t(event_type, mission_id, contract_id, approval_id, payload, actor,
                                    resource, result, ord)
         {})",
        arrays.join(", "),
        only_if.map_or(String::new(), |condition| format!("WHERE {condition}"))
    )
}

/// Events as the parameters of `input`: a column each.
pub struct Columns<'a> {
    kinds: Vec<&'a str>,
    missions: Vec<Option<Uuid>>,
    contracts: Vec<Option<Uuid>>,
    approvals: Vec<Option<Uuid>>,
    payloads: Vec<&'a Value>,
    actors: Vec<&'a str>,
    resources: Vec<&'a str>,
    results: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    pub fn of(events: &'a [NewEvent]) -> Self {
        Self {
            kinds: events.iter().map(|e| e.kind.name()).collect(),
            missions: events.iter().map(|e| e.mission_id).collect(),
            contracts: events.iter().map(|e| e.contract_id).collect(),
            approvals: events.iter().map(|e| e.approval_id).collect(),
            payloads: events.iter().map(|e| &e.payload).collect(),
            actors: events.iter().map(|e| e.actor.as_str()).collect(),
            resources: events.iter().map(|e| e.resource.as_str()).collect(),
            results: events.iter().map(|e| e.result).collect(),
        }
    }

    /// The eight parameters, in `input`'s order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.kinds,
            &self.missions,
            &self.contracts,
            &self.approvals,
            &self.payloads,
            &self.actors,
            &self.resources,
            &self.results,
        ]
    }
}

/// The recording statement: the events and each mission's event count (see
/// `counters`), in one round trip.
pub(crate) static RECORD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {},
         {STORED},
         counted AS ({})
         SELECT id FROM event",
        input(1, None),
        counters::adding_to(
            &["events"],
            "SELECT mission_id, count(*) AS events FROM input WHERE mission_id IS NOT NULL GROUP BY mission_id"
        )
    )
});

/// Records events in order inside `tx`, in one statement however many there
/// are; returns their ids in order.
pub async fn record(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<Vec<i64>, ApiError> {
    if events.is_empty() {
        return Ok(vec![]);
    }
    // Ids are drawn in input order (the CTE is evaluated once), so event ids
    // and thus log order follow the order given here.
    let rows = tx.all(&RECORD, &Columns::of(events).params()).await?;
    let mut ids: Vec<i64> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}
