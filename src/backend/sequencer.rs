//! The log sequencer: the one process that chains committed events onto the
//! immutable log's hash chain, in batches.
//!
//! Requests never wait for the chain; they commit events with no `log_seq`
//! (the outbox is the pending events). Exactly one
//! sequencer works at a time: each replica runs this loop, and only the one
//! holding a session-level advisory lock sequences (the others stand by, and
//! take over when the leader's session ends). After each batch it NOTIFYs the
//! Trigger Mesh. On shutdown the leader drains the outbox before it stops, so
//! a clean stop leaves zero log lag.

use crate::configuration::DatabaseUrl;
use crate::db::DbError;
use std::time::Duration;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// The advisory lock that elects the leader.
const LEADER_LOCK_KEY: &str = "grace.sequencer";
/// Entries per batch: big enough to amortize a round trip, small enough that a
/// batch commits quickly.
const BATCH_SIZE: i32 = 500;
/// How long the leader waits when the outbox was empty.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// How often a standby tries to become leader.
const STANDBY_POLL: Duration = Duration::from_millis(500);
/// How long a stop may spend draining the outbox.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `stop`, then drains if leader. Database failures are logged and
/// retried with backoff; the chain resumes where it stopped because its tail
/// lives in the database.
pub async fn run(url: DatabaseUrl, stop: CancellationToken) {
    crate::db::keep_running("log sequencer", &stop, || lead(&url, &stop)).await;
}

async fn lead(url: &DatabaseUrl, stop: &CancellationToken) -> Result<(), DbError> {
    let client = crate::db::connect(url).await?;
    loop {
        let leader: bool = client
            .query_one("SELECT pg_try_advisory_lock(hashtext($1)) AS leader", &[&LEADER_LOCK_KEY])
            .await?
            .try_get("leader")?;
        if leader {
            break;
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(STANDBY_POLL) => {}
        }
    }
    tracing::info!("log sequencer is the leader");
    loop {
        let moved = sequence_batch(&client).await?;
        if moved == BATCH_SIZE {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while sequence_batch(&client).await? > 0 {}
        Ok::<_, DbError>(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => tracing::warn!("log sequencer stopped before the outbox was drained"),
    }
    Ok(())
}

/// Chains one batch and announces it to the Trigger Mesh in the same
/// transaction (NOTIFY is delivered on commit). Returns how many it moved.
async fn sequence_batch(client: &Client) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT b.sequenced, CASE WHEN b.sequenced > 0 THEN pg_notify($2, b.last_seq::text) END AS notified
               FROM grace_sequence_outbox($1) AS b",
            &[&BATCH_SIZE, &crate::backend::mesh::CHANNEL],
        )
        .await?;
    row.try_get("sequenced")
}

/// Events committed but not yet on the chain (the sequencer's queue).
pub async fn log_lag(client: &impl tokio_postgres::GenericClient) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one("SELECT count(*) AS lag FROM action_events WHERE log_seq IS NULL AND actor IS NOT NULL", &[])
        .await?
        .try_get("lag")
}
