//! Events: what every state change announces. An event is a row in
//! `action_events` plus a `log_outbox` entry, written in the transaction of the
//! change it describes, so a change without its event (or the reverse) cannot
//! commit. The sequencer later chains the outbox into the immutable log and the
//! Trigger Mesh publishes the events in log order.

use super::error::ApiError;
use deadpool_postgres::Transaction;
use serde_json::{json, Value};
use uuid::Uuid;

/// Every kind of event the backend emits. The name's prefix is its subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ContractCreated,
    SnapshotTaken,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalRejected,
    ActionExecuting,
    VerificationPassed,
    VerificationFailed,
    VerificationViolated,
    RollbackCompleted,
    FallbackOpened,
    ChatExchanged,
    TaskSubmitted,
    TaskUpdated,
    TaskCompleted,
    MeshPing,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::ContractCreated => "agentic.contract_created",
            Self::SnapshotTaken => "agentic.snapshot_taken",
            Self::ApprovalRequested => "agentic.approval_requested",
            Self::ApprovalGranted => "agentic.approval_granted",
            Self::ApprovalRejected => "agentic.approval_rejected",
            Self::ActionExecuting => "agentic.action_executing",
            Self::VerificationPassed => "agentic.verification_passed",
            Self::VerificationFailed => "agentic.verification_failed",
            Self::VerificationViolated => "agentic.verification_violated",
            Self::RollbackCompleted => "agentic.rollback_completed",
            Self::FallbackOpened => "agentic.fallback_opened",
            Self::ChatExchanged => "chat.exchanged",
            Self::TaskSubmitted => "task.submitted",
            Self::TaskUpdated => "task.updated",
            Self::TaskCompleted => "task.completed",
            Self::MeshPing => "mesh.ping",
        }
    }

    fn subsystem(self) -> &'static str {
        self.name().split('.').next().expect("event names have a prefix")
    }
}

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

/// Records events in order inside `tx`, each with its log outbox entry, and
/// returns their ids.
pub async fn record(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<Vec<i64>, ApiError> {
    let statement = tx
        .prepare_cached(
            "WITH event AS (
                INSERT INTO action_events (event_type, mission_id, contract_id, approval_id, payload)
                VALUES ($1, $2, $3, $4, $5) RETURNING id)
             INSERT INTO log_outbox (event_id, actor, action, resource, subsystem, payload, result)
             SELECT id, $6, $1, $7, $8, $9, $10 FROM event
             RETURNING event_id",
        )
        .await?;
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        // The log entry carries the event's identity and content, so the chain
        // alone tells what happened even without the events table.
        let log_payload = json!({
            "event_type": event.kind.name(),
            "mission_id": event.mission_id,
            "contract_id": event.contract_id,
            "approval_id": event.approval_id,
            "payload": event.payload,
        })
        .to_string();
        let row = tx
            .query_one(
                &statement,
                &[
                    &event.kind.name(),
                    &event.mission_id,
                    &event.contract_id,
                    &event.approval_id,
                    &event.payload,
                    &event.actor,
                    &event.resource,
                    &event.kind.subsystem(),
                    &log_payload,
                    &event.result,
                ],
            )
            .await?;
        ids.push(row.get(0));
    }
    Ok(ids)
}
