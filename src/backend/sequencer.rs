//! The log sequencer: the one process that chains committed events onto the
//! immutable log's hash chain, in batches.
//!
//! Requests never wait for the chain; they commit events with no `log_seq`
//! (the outbox is the pending events). Exactly one
//! sequencer works at a time: each replica runs this loop, and only the one
//! holding a session-level advisory lock sequences (the others stand by, and
//! take over when the leader's session ends). It links each batch's entries
//! itself (`immutable_log::append_all`), which the database checks, and marks
//! each event with its entry's seq; then it NOTIFYs the Trigger Mesh. On
//! shutdown the leader drains the outbox before it stops, so a clean stop
//! leaves zero log lag.

use crate::configuration::DatabaseUrl;
use crate::db::{DbError, During};
use crate::immutable_log::{self, LogEntry};
use std::time::Duration;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// The advisory lock that elects the leader.
const LEADER_LOCK_KEY: &str = "grace.sequencer";
/// Entries per batch: big enough to amortize a round trip, small enough that a
/// batch commits quickly.
const BATCH_SIZE: i64 = 500;
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
    let mut client = crate::db::connect(url).await?;
    client.batch_execute(SESSION).await.during("setting up the sequencer's session")?;
    loop {
        let leader: bool = client
            .query_one("SELECT pg_try_advisory_lock(hashtext($1)) AS leader", &[&LEADER_LOCK_KEY])
            .await
            .and_then(|row| row.try_get("leader"))
            .during("the sequencer's bid to lead")?;
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
        let moved = sequence_batch(&mut client).await.during("chaining a batch of events")?;
        if moved == BATCH_SIZE {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while sequence_batch(&mut client).await.during("chaining the last events")? > 0 {}
        Ok::<_, DbError>(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => tracing::warn!("log sequencer stopped before the outbox was drained"),
    }
    Ok(())
}

/// The sequencer's session settings. The queue must be read in id order from
/// action_events_pending_idx, stopping after a batch. On a young database (no
/// ANALYZE yet) PostgreSQL estimated a few hundred pending events and chose a
/// bitmap scan of all of them and a sort: a cost that grows with the backlog,
/// so the sequencer fell further behind the more it lagged (55,000 events
/// behind after 20 s of scripts/bench-backend's tier-1 load on a fresh
/// cluster). None of its statements wants a bitmap scan.
pub const SESSION: &str = "SET enable_bitmapscan = off";

/// The oldest pending events, locked, as the log entries they become: who
/// acted, on what, with what result, and a payload carrying the event's
/// identity and content, so the chain alone tells what happened even without
/// the events table (jsonb's text form: the same event always renders alike).
pub const PENDING: &str =
    "SELECT id, actor, event_type AS action, resource, split_part(event_type, '.', 1) AS subsystem,
        jsonb_build_object('event_type', event_type, 'mission_id', mission_id, 'contract_id', contract_id,
                           'approval_id', approval_id, 'payload', payload)::text AS payload,
        result
   FROM action_events
  WHERE log_seq IS NULL AND actor IS NOT NULL
  ORDER BY id
  LIMIT $1
    FOR UPDATE SKIP LOCKED";

/// Chains one batch, oldest event first, links each event to its entry and
/// announces the batch to the Trigger Mesh, in one transaction (NOTIFY is
/// delivered on commit). Returns how many it moved.
async fn sequence_batch(client: &mut Client) -> Result<i64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let pending = tx.query(PENDING, &[&BATCH_SIZE]).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let ids = pending.iter().map(|row| row.try_get("id")).collect::<Result<Vec<i64>, _>>()?;
    let entries = pending
        .iter()
        .map(|row| {
            Ok(LogEntry {
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                resource: row.try_get("resource")?,
                subsystem: row.try_get("subsystem")?,
                payload: row.try_get("payload")?,
                result: row.try_get("result")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let seqs = immutable_log::append_all(&tx, &entries).await?;
    let last_seq = seqs.end().to_string();
    let seqs: Vec<i64> = seqs.collect();
    tx.execute(
        "WITH linked AS (
            UPDATE action_events e SET log_seq = l.seq FROM unnest($1::bigint[], $2::bigint[]) AS l (id, seq)
             WHERE e.id = l.id)
         SELECT pg_notify($3, $4)",
        &[&ids, &seqs, &crate::backend::mesh::CHANNEL, &last_seq],
    )
    .await?;
    tx.commit().await?;
    Ok(pending.len() as i64)
}

/// Events committed but not yet on the chain (the sequencer's queue).
pub async fn log_lag(client: &impl tokio_postgres::GenericClient) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one("SELECT count(*) AS lag FROM action_events WHERE log_seq IS NULL AND actor IS NOT NULL", &[])
        .await?
        .try_get("lag")
}
