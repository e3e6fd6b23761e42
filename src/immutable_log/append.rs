//! Appending to the chain: the writer links its entries, the database checks
//! the links.
//!
//! Building the chain in a row trigger cost PostgreSQL a PL/pgSQL call, a read
//! of the tail and a hash per entry; here the tail is read once per batch,
//! seq, prev_hash and entry_hash are computed in Rust ([`EntryFields`], the
//! encoding the verifier proves with), and the batch is one INSERT, which the
//! database refuses whole if any entry does not chain (migration V18). The
//! chain's advisory lock, held until the transaction ends, makes appenders
//! take turns, so the tail read here is still the tail at the insert.

use super::chain::{EntryFields, UnixMicros, GENESIS_PREV_HASH};
use chrono::{DateTime, Utc};
use std::ops::RangeInclusive;
use tokio_postgres::Transaction;

/// Taken by every appender (and bulk loader) before it reads the tail.
pub const CHAIN_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('grace.immutable_log.chain'))";

/// An entry's contents; the chain fields are computed when it is appended.
#[derive(Debug, Clone, Copy)]
pub struct LogEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub subsystem: &'a str,
    /// JSON text, hashed byte for byte as given: render it canonically
    /// (serde_json's `to_string`: sorted keys, no whitespace; or jsonb's text).
    pub payload: &'a str,
    pub result: &'a str,
}

/// Appends one entry and returns its seq.
pub async fn append(tx: &Transaction<'_>, entry: &LogEntry<'_>) -> Result<i64, tokio_postgres::Error> {
    Ok(*append_all(tx, std::slice::from_ref(entry)).await?.start())
}

/// Appends `entries` in order, in one statement, and returns their seqs. All
/// of them are recorded at the database's clock (never before the tail). The
/// chain stays locked for other appenders until `tx` ends.
pub async fn append_all<'e>(
    tx: &Transaction<'_>,
    entries: &[LogEntry<'e>],
) -> Result<RangeInclusive<i64>, tokio_postgres::Error> {
    tx.batch_execute(CHAIN_LOCK).await?;
    let tail = tx
        .query_one(
            "SELECT t.seq, t.entry_hash, t.recorded_at, clock_timestamp() AS now
               FROM (VALUES (1)) AS one (n)
               LEFT JOIN LATERAL (SELECT seq, entry_hash, recorded_at FROM immutable_log ORDER BY seq DESC LIMIT 1)
                 AS t ON true",
            &[],
        )
        .await?;
    let tail_seq: Option<i64> = tail.try_get("seq")?;
    let tail_hash: Option<String> = tail.try_get("entry_hash")?;
    let tail_recorded_at: Option<UnixMicros> = tail.try_get("recorded_at")?;
    let UnixMicros(now) = tail.try_get("now")?;
    // A clock stepped back must not record an entry before the one it follows.
    let recorded_at_micros = tail_recorded_at.map_or(now, |UnixMicros(tail)| tail.max(now));
    let recorded_at = DateTime::<Utc>::from_timestamp_micros(recorded_at_micros).expect("a PostgreSQL timestamp");

    let first = tail_seq.unwrap_or(0) + 1;
    let seqs = first..=first + entries.len() as i64 - 1;
    let mut prev_hashes = Vec::with_capacity(entries.len());
    let mut entry_hashes = Vec::with_capacity(entries.len());
    let mut prev_hash = tail_hash.unwrap_or_else(|| GENESIS_PREV_HASH.to_string());
    let mut hex = [0u8; 64];
    for (seq, entry) in seqs.clone().zip(entries) {
        let fields = EntryFields {
            seq,
            recorded_at_micros,
            actor: entry.actor.as_bytes(),
            action: entry.action.as_bytes(),
            resource: entry.resource.as_bytes(),
            subsystem: entry.subsystem.as_bytes(),
            payload: entry.payload.as_bytes(),
            result: entry.result.as_bytes(),
            prev_hash: prev_hash.as_bytes(),
        };
        let entry_hash = String::from_utf8(fields.hash_hex(&mut hex).to_vec()).expect("hex is ASCII");
        prev_hashes.push(std::mem::replace(&mut prev_hash, entry_hash.clone()));
        entry_hashes.push(entry_hash);
    }
    let column = |field: fn(&LogEntry<'e>) -> &'e str| entries.iter().map(field).collect::<Vec<&str>>();
    tx.execute(
        "INSERT INTO immutable_log (seq, recorded_at, actor, action, resource, subsystem, payload, result, prev_hash,
                                    entry_hash)
         SELECT seq, $2, actor, action, resource, subsystem, payload, result, prev_hash, entry_hash
           FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::text[], $10::text[])
                AS e (seq, actor, action, resource, subsystem, payload, result, prev_hash, entry_hash)",
        &[
            &seqs.clone().collect::<Vec<i64>>(),
            &recorded_at,
            &column(|e| e.actor),
            &column(|e| e.action),
            &column(|e| e.resource),
            &column(|e| e.subsystem),
            &column(|e| e.payload),
            &column(|e| e.result),
            &prev_hashes,
            &entry_hashes,
        ],
    )
    .await?;
    Ok(seqs)
}
