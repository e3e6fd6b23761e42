//! Proving the chain in Rust: the log is streamed out of Postgres (binary
//! COPY, one pass, nothing held but the previous entry) and every hash is
//! recomputed here. The canonical encoding is the one the database's trigger
//! writes with (`grace_log_entry_hash`, migration V2): each field as its UTF-8
//! byte length, `:`, the bytes and `,` — seq, recorded_at in microseconds since
//! the Unix epoch, actor, action, resource, subsystem, payload, result,
//! prev_hash — hashed with SHA-256 and written as lower-case hex. Hashing here
//! instead of in SQL string concatenation is what makes a full proof fast.

use super::{ChainBreak, ChainVerdict, MAX_LISTED_BREAKS};
use chrono::{DateTime, Utc};
use futures::{pin_mut, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

/// The prev_hash of the first entry.
pub const GENESIS_PREV_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry's fields, as hashed.
pub struct EntryFields<'a> {
    pub seq: i64,
    pub recorded_at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub subsystem: &'a str,
    pub payload: &'a str,
    pub result: &'a str,
    pub prev_hash: &'a str,
}

impl EntryFields<'_> {
    /// The entry's hash under the canonical encoding, as lower-case hex,
    /// written into `out`, allocating nothing: the verifier runs this once per
    /// entry, millions of times.
    pub fn hash_hex<'o>(&self, out: &'o mut [u8; 64]) -> &'o [u8] {
        let mut hasher = Sha256::new();
        let mut numbers = itoa::Buffer::new();
        let mut field = |value: &[u8]| {
            hasher.update(numbers.format(value.len()).as_bytes());
            hasher.update(b":");
            hasher.update(value);
            hasher.update(b",");
        };
        let mut seq = itoa::Buffer::new();
        field(seq.format(self.seq).as_bytes());
        let mut micros = itoa::Buffer::new();
        field(micros.format(self.recorded_at.timestamp_micros()).as_bytes());
        for value in [self.actor, self.action, self.resource, self.subsystem, self.payload, self.result, self.prev_hash]
        {
            field(value.as_bytes());
        }
        hex::encode_to_slice(hasher.finalize(), out).expect("64 hex digits hold a SHA-256");
        out
    }
}

/// A log entry's columns as binary COPY moves them, in this order (its rows
/// are read and written by position): the verifier reads them, bulk loaders
/// write them.
pub const COLUMNS: &str =
    "seq, recorded_at, actor, action, resource, subsystem, payload, result, prev_hash, entry_hash";
pub const TYPES: [Type; 10] = [
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];
const SEQ: usize = 0;
const RECORDED_AT: usize = 1;
const ACTOR: usize = 2;
const ACTION: usize = 3;
const RESOURCE: usize = 4;
const SUBSYSTEM: usize = 5;
const PAYLOAD: usize = 6;
const RESULT: usize = 7;
const PREV_HASH: usize = 8;
const ENTRY_HASH: usize = 9;

/// Checks the entries with seq in `from..=to`: seq runs without gaps, each
/// prev_hash is the entry before's entry_hash (the entry before `from`
/// anchors the first link, and seq 1 links to zeros), and each entry_hash
/// recomputes from the entry's fields. Each entry reports its first problem.
pub async fn verify_range(client: &Client, from: i64, to: i64) -> Result<ChainVerdict, tokio_postgres::Error> {
    // COPY takes no parameters; both bounds are integers.
    let sql = format!(
        "COPY (SELECT {COLUMNS} FROM immutable_log WHERE seq BETWEEN {} AND {to} ORDER BY seq) TO STDOUT (FORMAT binary)",
        (from - 1).max(1)
    );
    let rows = BinaryCopyOutStream::new(client.copy_out(&sql).await?, &TYPES);
    pin_mut!(rows);
    let mut verdict = ChainVerdict { entries: 0, broken: 0, breaks: Vec::new() };
    let mut before: Option<(i64, String)> = None;
    while let Some(row) = rows.try_next().await? {
        let seq: i64 = row.try_get(SEQ)?;
        let entry_hash: &str = row.try_get(ENTRY_HASH)?;
        if seq >= from {
            verdict.entries += 1;
            let fields = EntryFields {
                seq,
                recorded_at: row.try_get(RECORDED_AT)?,
                actor: row.try_get(ACTOR)?,
                action: row.try_get(ACTION)?,
                resource: row.try_get(RESOURCE)?,
                subsystem: row.try_get(SUBSYSTEM)?,
                payload: row.try_get(PAYLOAD)?,
                result: row.try_get(RESULT)?,
                prev_hash: row.try_get(PREV_HASH)?,
            };
            if let Some(problem) = problem(&fields, entry_hash, before.as_ref(), from) {
                verdict.broken += 1;
                if verdict.breaks.len() < MAX_LISTED_BREAKS {
                    verdict.breaks.push(ChainBreak { seq, problem });
                }
            }
        }
        // One buffer for the whole stream: nothing is allocated per entry.
        match &mut before {
            Some((before_seq, before_hash)) => {
                *before_seq = seq;
                before_hash.clear();
                before_hash.push_str(entry_hash);
            }
            None => before = Some((seq, entry_hash.to_owned())),
        }
    }
    Ok(verdict)
}

/// What is wrong with one entry, given the entry before it (when fetched).
fn problem(entry: &EntryFields<'_>, entry_hash: &str, before: Option<&(i64, String)>, from: i64) -> Option<String> {
    let expected_seq = before.map_or(1, |(seq, _)| seq + 1);
    if entry.seq != expected_seq && (before.is_some() || from <= 1) {
        return Some(format!("seq {} found where {expected_seq} was expected", entry.seq));
    }
    match before {
        Some((_, hash)) if entry.prev_hash != hash => {
            return Some("prev_hash does not match the entry before it".into());
        }
        None if entry.seq == 1 && entry.prev_hash != GENESIS_PREV_HASH => {
            return Some("prev_hash does not match the entry before it".into());
        }
        None if entry.seq > 1 => return Some("the entry before it is missing".into()),
        _ => {}
    }
    let mut recomputed = [0u8; 64];
    (entry.hash_hex(&mut recomputed) != entry_hash.as_bytes())
        .then(|| "entry_hash does not match the entry's contents".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl EntryFields<'_> {
        fn hash(&self) -> String {
            let mut hex = [0u8; 64];
            String::from_utf8(self.hash_hex(&mut hex).to_vec()).expect("hex is ASCII")
        }
    }

    fn entry(seq: i64, prev_hash: &str) -> EntryFields<'_> {
        EntryFields {
            seq,
            recorded_at: DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap(),
            actor: "grace-pipeline",
            action: "agentic.contract_created",
            resource: "contract/x",
            subsystem: "agentic",
            payload: r#"{"n":1}"#,
            result: "ok",
            prev_hash,
        }
    }

    #[test]
    fn the_encoding_is_length_prefixed_fields_in_order() {
        // Computed by hand from the encoding the migration's SQL function writes.
        let mut expected = Sha256::new();
        expected.update(format!(
            "1:1,16:1780000000123456,14:grace-pipeline,24:agentic.contract_created,10:contract/x,7:agentic,7:{},2:ok,64:{},",
            r#"{"n":1}"#, GENESIS_PREV_HASH
        ));
        assert_eq!(entry(1, GENESIS_PREV_HASH).hash(), hex::encode(expected.finalize()));
    }

    #[test]
    fn each_entry_reports_its_first_problem() {
        let first = entry(1, GENESIS_PREV_HASH);
        let first_hash = first.hash();
        assert_eq!(problem(&first, &first_hash, None, 1), None);
        assert_eq!(problem(&first, "0", None, 1).unwrap(), "entry_hash does not match the entry's contents");
        let before = (1, first_hash.clone());
        let second = entry(2, &first_hash);
        assert_eq!(problem(&second, &second.hash(), Some(&before), 1), None);
        let unlinked = entry(2, GENESIS_PREV_HASH);
        assert_eq!(
            problem(&unlinked, &unlinked.hash(), Some(&before), 1).unwrap(),
            "prev_hash does not match the entry before it"
        );
        let skipped = entry(3, &first_hash);
        assert_eq!(problem(&skipped, &skipped.hash(), Some(&before), 1).unwrap(), "seq 3 found where 2 was expected");
        assert_eq!(problem(&second, &second.hash(), None, 2).unwrap(), "the entry before it is missing");
    }
}
