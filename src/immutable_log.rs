//! The hash-chained immutable log: appending an entry and proving the chain.
//!
//! Postgres keeps the chain (see `migrations/V2__events_and_immutable_log.sql`):
//! an insert gets its seq, prev_hash and entry_hash from a trigger, and the
//! canonical encoding is the SQL function `grace_log_entry_hash`. Verification
//! recomputes every hash inside the database with that same function, so it is
//! one query however long the log is, and works against any Grace database.

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
const MAX_LISTED_BREAKS: i64 = 10;

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

/// Checks that seq runs 1..n without gaps, each prev_hash is its predecessor's
/// entry_hash, and each entry_hash recomputes from the entry's fields.
pub async fn verify(client: &impl GenericClient) -> Result<ChainVerdict, tokio_postgres::Error> {
    verify_range(client, 1, i64::MAX).await
}

/// The same checks for the entries with seq in `from..=to`; the entry before
/// `from` anchors the first link.
pub async fn verify_range(
    client: &impl GenericClient,
    from: i64,
    to: i64,
) -> Result<ChainVerdict, tokio_postgres::Error> {
    let rows = client
        .query(
            "WITH linked AS (
                SELECT seq, prev_hash, entry_hash,
                       lag(seq) OVER w AS before_seq, lag(entry_hash) OVER w AS before_hash,
                       grace_log_entry_hash(seq, recorded_at, actor, action, resource, subsystem, payload, result,
                                            prev_hash) AS recomputed
                  FROM immutable_log
                 WHERE seq BETWEEN greatest($1::bigint - 1, 1) AND $2::bigint
                WINDOW w AS (ORDER BY seq)
             ),
             checked AS (
                SELECT seq,
                       CASE
                         WHEN seq <> coalesce(before_seq, 0) + 1 AND (before_seq IS NOT NULL OR $1::bigint <= 1)
                           THEN 'seq ' || seq || ' found where ' || (coalesce(before_seq, 0) + 1) || ' was expected'
                         WHEN prev_hash <> coalesce(before_hash, CASE WHEN seq = 1 THEN repeat('0', 64) END)
                           THEN 'prev_hash does not match the entry before it'
                         WHEN before_hash IS NULL AND seq > 1
                           THEN 'the entry before it is missing'
                         WHEN entry_hash <> recomputed
                           THEN 'entry_hash does not match the entry''s contents'
                       END AS problem
                  FROM linked WHERE seq >= $1::bigint
             )
             SELECT (SELECT count(*) FROM checked) AS entries,
                    (SELECT count(*) FROM checked WHERE problem IS NOT NULL) AS broken,
                    seq, problem
               FROM (SELECT 0) AS always
               LEFT JOIN LATERAL (SELECT seq, problem FROM checked WHERE problem IS NOT NULL
                                   ORDER BY seq LIMIT $3) AS first_breaks ON true",
            &[&from, &to, &MAX_LISTED_BREAKS],
        )
        .await?;
    let first = rows.first().expect("the query always returns a row");
    let mut breaks = Vec::new();
    for row in &rows {
        if let Some(seq) = row.try_get::<_, Option<i64>>("seq")? {
            breaks.push(ChainBreak { seq, problem: row.try_get("problem")? });
        }
    }
    Ok(ChainVerdict { entries: first.try_get("entries")?, broken: first.try_get("broken")?, breaks })
}
