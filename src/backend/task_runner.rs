//! The background task runner: claims queued tasks and completes them.
//!
//! Claims use `FOR UPDATE SKIP LOCKED`, so any number of runners (one per
//! replica) share the queue without waiting on each other or running a task
//! twice. Claiming, completing and the completion event commit together: a
//! runner that dies mid-batch leaves its tasks queued for the next one.
//! Manual-remediation tasks are for humans and are never claimed.

use super::events::{self, NewEvent};
use super::state::AppState;
use crate::specification::{EventKind, TaskStatus};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Tasks per transaction.
const BATCH: i64 = 50;
/// The pause when the queue was empty.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// The pause after a failure (the database away, say).
const ERROR_PAUSE: Duration = Duration::from_millis(500);

pub async fn run(state: AppState, stop: CancellationToken) {
    let runner = format!("runner-{}-{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..8]);
    while !stop.is_cancelled() {
        let pause = match complete_batch(&state, &runner).await {
            Ok(done) if done as i64 == BATCH => continue,
            Ok(_) => IDLE_POLL,
            Err(e) => {
                tracing::debug!(error = %e, "task runner could not claim tasks");
                ERROR_PAUSE
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

async fn complete_batch(state: &AppState, runner: &str) -> Result<usize, super::error::ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // Each completed task leaves a dead entry at the old end of tasks_queued_idx
    // until VACUUM. A plain index scan marks such entries dead and skips them
    // afterwards; the bitmap scan the planner picks for few queued rows reads
    // them all again on every claim (50 ms against 1.9 ms at 160k completed).
    tx.batch_execute("SET LOCAL enable_bitmapscan = off").await?;
    let rows = tx
        .query(
            "UPDATE tasks t
                SET status = $3, attempts = attempts + 1, claimed_by = $1,
                    started_at = coalesce(started_at, now()), completed_at = now(), updated_at = now(),
                    result = jsonb_build_object('completed_by', $1::text, 'payload_bytes', octet_length(t.payload::text))
              WHERE t.id IN (SELECT id FROM tasks WHERE status = $4 AND kind = 'submitted'
                              ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING t.id, t.mission_id, t.result",
            &[&runner, &BATCH, &TaskStatus::Completed, &TaskStatus::Queued],
        )
        .await?;
    let completed = rows
        .iter()
        .map(|row| {
            let task: Uuid = row.try_get("id")?;
            let result: serde_json::Value = row.try_get("result")?;
            Ok(NewEvent {
                kind: EventKind::TaskCompleted,
                actor: runner.to_string(),
                resource: format!("task/{task}"),
                mission_id: Some(row.try_get("mission_id")?),
                contract_id: None,
                approval_id: None,
                payload: json!({ "task_id": task, "result": result }),
                result: "ok",
            })
        })
        .collect::<Result<Vec<NewEvent>, tokio_postgres::Error>>()?;
    events::record(&tx, &completed).await?;
    tx.commit().await?;
    Ok(completed.len())
}
