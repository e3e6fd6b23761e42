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
use super::checkpoint::ChainHead;
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

/// The chain's end as entries are linked onto it, one after the other: each
/// gets the next seq and, as prev_hash, the entry_hash of the one before it
/// (64 zeros before the first entry of the log).
pub struct ChainLinker {
    seq: i64,
    entry_hash: String,
}

/// One entry's chain fields.
pub struct Link {
    pub seq: i64,
    pub prev_hash: String,
    pub entry_hash: String,
}

impl ChainLinker {
    /// Links onto the entry `head` (none: an empty log).
    pub fn after(head: Option<ChainHead>) -> Self {
        match head {
            Some(ChainHead { seq, entry_hash }) => Self { seq, entry_hash },
            None => Self { seq: 0, entry_hash: GENESIS_PREV_HASH.to_string() },
        }
    }

    /// Links `entry`, recorded at `recorded_at_micros` (since the Unix epoch).
    pub fn link(&mut self, entry: &LogEntry<'_>, recorded_at_micros: i64) -> Link {
        let seq = self.seq + 1;
        let mut hex = [0u8; 64];
        let fields = EntryFields {
            seq,
            recorded_at_micros,
            actor: entry.actor.as_bytes(),
            action: entry.action.as_bytes(),
            resource: entry.resource.as_bytes(),
            subsystem: entry.subsystem.as_bytes(),
            payload: entry.payload.as_bytes(),
            result: entry.result.as_bytes(),
            prev_hash: self.entry_hash.as_bytes(),
        };
        let entry_hash = String::from_utf8(fields.hash_hex(&mut hex).to_vec()).expect("hex is ASCII");
        self.seq = seq;
        let prev_hash = std::mem::replace(&mut self.entry_hash, entry_hash.clone());
        Link { seq, prev_hash, entry_hash }
    }
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
    let head = tail_seq.zip(tail_hash).map(|(seq, entry_hash)| ChainHead { seq, entry_hash });
    let mut linker = ChainLinker::after(head);
    let links: Vec<Link> = entries.iter().map(|entry| linker.link(entry, recorded_at_micros)).collect();
    let link_column = |field: fn(&Link) -> &str| links.iter().map(field).collect::<Vec<&str>>();
    let column = |field: fn(&LogEntry<'e>) -> &'e str| entries.iter().map(field).collect::<Vec<&str>>();
    tx.execute(
        "INSERT INTO immutable_log (seq, recorded_at, actor, action, resource, subsystem, payload, result, prev_hash,
                                    entry_hash)
         SELECT seq, $2, actor, action, resource, subsystem, payload, result, prev_hash, entry_hash
           FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                       $9::text[], $10::text[])
                AS e (seq, actor, action, resource, subsystem, payload, result, prev_hash, entry_hash)",
        &[
            &links.iter().map(|link| link.seq).collect::<Vec<i64>>(),
            &recorded_at,
            &column(|e| e.actor),
            &column(|e| e.action),
            &column(|e| e.resource),
            &column(|e| e.subsystem),
            &column(|e| e.payload),
            &column(|e| e.result),
            &link_column(|link| &link.prev_hash),
            &link_column(|link| &link.entry_hash),
        ],
    )
    .await?;
    Ok(seqs)
}
