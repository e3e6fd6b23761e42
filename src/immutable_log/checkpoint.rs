//! Where the last proof of the chain ended, inside the database
//! (`log_checkpoints`, migration V9): the next verification re-hashes only the
//! entries after it, so its cost follows what is new, not what is stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, GenericClient};

/// An entry of the chain named by its place and its hash: what a proof ends
/// at, what a checkpoint or an anchor records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub entry_hash: String,
}

/// A checkpoint as stored, with the hash the log holds today at its seq
/// (`None` when the entry is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub head: ChainHead,
    pub verified_at: DateTime<Utc>,
    pub verified_by: String,
    pub log_hash: Option<String>,
}

impl Checkpoint {
    /// Whether the log still holds the entry this checkpoint proved.
    pub fn matches_log(&self) -> bool {
        self.log_hash.as_deref() == Some(self.head.entry_hash.as_str())
    }
}

/// The log's last entry, if it has any.
pub async fn log_head(client: &impl GenericClient) -> Result<Option<ChainHead>, tokio_postgres::Error> {
    let row = client.query_opt("SELECT seq, entry_hash FROM immutable_log ORDER BY seq DESC LIMIT 1", &[]).await?;
    row.map(|row| Ok(ChainHead { seq: row.try_get("seq")?, entry_hash: row.try_get("entry_hash")? })).transpose()
}

/// The hash the log holds at `seq`, if it holds that entry.
pub async fn hash_at(client: &Client, seq: i64) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client.query_opt("SELECT entry_hash FROM immutable_log WHERE seq = $1", &[&seq]).await?;
    row.map(|row| row.try_get("entry_hash")).transpose()
}

/// The newest checkpoint.
pub async fn latest(client: &Client) -> Result<Option<Checkpoint>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT c.seq, c.entry_hash, c.verified_at, c.verified_by, l.entry_hash AS log_hash
               FROM log_checkpoints c LEFT JOIN immutable_log l ON l.seq = c.seq
              ORDER BY c.seq DESC LIMIT 1",
            &[],
        )
        .await?;
    row.map(|row| {
        Ok(Checkpoint {
            head: ChainHead { seq: row.try_get("seq")?, entry_hash: row.try_get("entry_hash")? },
            verified_at: row.try_get("verified_at")?,
            verified_by: row.try_get("verified_by")?,
            log_hash: row.try_get("log_hash")?,
        })
    })
    .transpose()
}

/// Records that the chain was proven up to `head`. The first proof of a head
/// stays; later ones of the same head add nothing.
pub async fn record(client: &Client, head: &ChainHead, verified_by: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO log_checkpoints (seq, entry_hash, verified_by) VALUES ($1, $2, $3)
             ON CONFLICT (seq) DO NOTHING",
            &[&head.seq, &head.entry_hash, &verified_by],
        )
        .await?;
    Ok(())
}
