//! The hash-chained immutable log: appending an entry and proving the chain.
//!
//! Postgres keeps the chain (see `migrations/V2__events_and_immutable_log.sql`):
//! an insert gets its seq, prev_hash and entry_hash from a trigger, and the
//! canonical encoding is the SQL function `grace_log_entry_hash`. Proving it
//! streams the entries out and recomputes every hash in Rust ([`chain`]), from
//! where the last proof ended ([`checkpoint`], and this machine's
//! [`anchors`]), in parallel ranges when there is much to prove ([`proof`]).

pub mod anchors;
pub mod chain;
pub mod checkpoint;
pub mod proof;

pub use chain::verify_range;
pub use proof::{prove, prove_database, ChainProof, ChainReader, ChainSettings, ProofError, ProofOptions, ProofStart};

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

/// An entry to append. The chain fields are assigned by the database.
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub subsystem: &'a str,
    pub payload: &'a serde_json::Value,
    pub result: &'a str,
}

/// Appends one entry and returns its seq. Appends serialize on the chain's lock
/// until the surrounding transaction commits.
pub async fn append(client: &impl GenericClient, entry: &LogEntry<'_>) -> Result<i64, tokio_postgres::Error> {
    // serde_json renders maps with sorted keys and no whitespace: the payload's
    // text, which is what gets hashed, is canonical.
    let payload = entry.payload.to_string();
    let row = client
        .query_one(
            "INSERT INTO immutable_log (actor, action, resource, subsystem, payload, result)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            &[&entry.actor, &entry.action, &entry.resource, &entry.subsystem, &payload, &entry.result],
        )
        .await?;
    row.try_get("seq")
}

/// How many chain problems a verification lists; the count covers all of them.
const MAX_LISTED_BREAKS: usize = 10;

/// One place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainVerdict {
    pub entries: i64,
    pub broken: i64,
    /// The first breaks, in seq order.
    pub breaks: Vec<ChainBreak>,
}

impl ChainVerdict {
    pub fn holds(&self) -> bool {
        self.broken == 0
    }
}
