//! The hash-chained immutable log: appending an entry and proving the chain.
//!
//! Postgres keeps the chain (see `migrations/V2__events_and_immutable_log.sql`):
//! an insert gets its seq, prev_hash and entry_hash from a trigger, and the
//! canonical encoding is the SQL function `grace_log_entry_hash`. Verification
//! recomputes every hash inside the database with that same function, so it is
//! one query however long the log is, and works against any Grace database.

use serde::Serialize;
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
    Ok(row.get(0))
}

/// How many chain problems a verification lists; the count covers all of them.
const MAX_LISTED_BREAKS: i64 = 10;

/// One place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    let rows = client
        .query(
            "WITH checked AS (
                SELECT seq,
                       CASE
                         WHEN seq <> row_number() OVER w
                           THEN 'seq ' || seq || ' found where ' || row_number() OVER w || ' was expected'
                         WHEN prev_hash <> coalesce(lag(entry_hash) OVER w, repeat('0', 64))
                           THEN 'prev_hash does not match the entry before it'
                         WHEN entry_hash <> grace_log_entry_hash(seq, recorded_at, actor, action, resource,
                                                                  subsystem, payload, result, prev_hash)
                           THEN 'entry_hash does not match the entry''s contents'
                       END AS problem
                  FROM immutable_log
                WINDOW w AS (ORDER BY seq)
             )
             SELECT (SELECT count(*) FROM immutable_log),
                    (SELECT count(*) FROM checked WHERE problem IS NOT NULL),
                    seq, problem
               FROM (SELECT 0) AS always
               LEFT JOIN LATERAL (SELECT seq, problem FROM checked WHERE problem IS NOT NULL
                                   ORDER BY seq LIMIT $1) AS first_breaks ON true",
            &[&MAX_LISTED_BREAKS],
        )
        .await?;
    let first = rows.first().expect("the query always returns a row");
    Ok(ChainVerdict {
        entries: first.get(0),
        broken: first.get(1),
        breaks: rows
            .iter()
            .filter_map(|r| Some(ChainBreak { seq: r.get::<_, Option<i64>>(2)?, problem: r.get(3) }))
            .collect(),
    })
}
