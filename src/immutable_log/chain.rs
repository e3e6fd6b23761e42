//! Proving the chain in Rust: the log is streamed out of Postgres (binary
//! COPY, one pass, nothing held but the previous entry) and every hash is
//! recomputed here. The canonical encoding is the database's
//! (`grace_log_entry_hash`, migration V2; it checks every appended entry with
//! it, V18) and the appender's (`append`): each field as its UTF-8
//! byte length, `:`, the bytes and `,` — seq, recorded_at in microseconds since
//! the Unix epoch, actor, action, resource, subsystem, payload, result,
//! prev_hash — hashed with SHA-256 and written as lower-case hex. Hashing here
//! instead of in SQL string concatenation is what makes a full proof fast.

use super::{ChainBreak, ChainVerdict, MAX_LISTED_BREAKS};
use futures::{pin_mut, TryStreamExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::error::Error;
use tokio_postgres::binary_copy::{BinaryCopyOutRow, BinaryCopyOutStream};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Client;

/// The prev_hash of the first entry.
pub const GENESIS_PREV_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry's fields, as hashed: the text fields as their UTF-8 bytes,
/// recorded_at in microseconds since the Unix epoch.
pub struct EntryFields<'a> {
    pub seq: i64,
    pub recorded_at_micros: i64,
    pub actor: &'a [u8],
    pub action: &'a [u8],
    pub resource: &'a [u8],
    pub subsystem: &'a [u8],
    pub payload: &'a [u8],
    pub result: &'a [u8],
    pub prev_hash: &'a [u8],
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
        field(micros.format(self.recorded_at_micros).as_bytes());
        for value in [self.actor, self.action, self.resource, self.subsystem, self.payload, self.result, self.prev_hash]
        {
            field(value);
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

/// Column `column` of a row as text bytes ([`TextBytes`]).
fn text(row: &BinaryCopyOutRow, column: usize) -> Result<&[u8], tokio_postgres::Error> {
    row.try_get::<TextBytes>(column).map(|TextBytes(bytes)| bytes)
}

/// A text column's bytes as PostgreSQL sent them (UTF-8, its client
/// encoding): the hash is over bytes, and checking the UTF-8 of every field
/// again was 8% of a proof's CPU.
struct TextBytes<'a>(&'a [u8]);

impl<'a> FromSql<'a> for TextBytes<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(TextBytes(raw))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }
}

/// A timestamptz as microseconds since the Unix epoch, straight from its
/// binary form (microseconds since 2000-01-01), without a calendar on the way.
pub(super) struct UnixMicros(pub(super) i64);

impl<'a> FromSql<'a> for UnixMicros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
        let micros = i64::from_be_bytes(raw.try_into()?);
        Ok(UnixMicros(micros.checked_add(POSTGRES_EPOCH_MICROS).ok_or("timestamp out of range")?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

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
    let mut before: Option<(i64, Vec<u8>)> = None;
    while let Some(row) = rows.try_next().await? {
        let (fields, entry_hash) = entry(&row)?;
        if fields.seq >= from {
            verdict.entries += 1;
            verdict.note(fields.seq, problem(&fields, entry_hash, before.as_ref(), from));
        }
        // One buffer for the whole stream: nothing is allocated per entry.
        match &mut before {
            Some((before_seq, before_hash)) => {
                *before_seq = fields.seq;
                before_hash.clear();
                before_hash.extend_from_slice(entry_hash);
            }
            None => before = Some((fields.seq, entry_hash.to_vec())),
        }
    }
    Ok(verdict)
}

/// Checks the entries `seqs` (a spot-check of a stretch already proven):
/// each is there, links to the entry before it, and recomputes to its
/// entry_hash — what [`verify_range`] checks, entry by entry.
pub async fn verify_entries(client: &Client, seqs: &BTreeSet<i64>) -> Result<ChainVerdict, tokio_postgres::Error> {
    let mut verdict = ChainVerdict { entries: 0, broken: 0, breaks: Vec::new() };
    if seqs.is_empty() {
        return Ok(verdict);
    }
    // Each entry and the one before it; COPY takes no parameters, and these are integers.
    let wanted: BTreeSet<i64> = seqs.iter().flat_map(|seq| [seq - 1, *seq]).filter(|seq| *seq >= 1).collect();
    let list: Vec<String> = wanted.iter().map(i64::to_string).collect();
    let sql = format!(
        "COPY (SELECT {COLUMNS} FROM immutable_log WHERE seq IN ({}) ORDER BY seq) TO STDOUT (FORMAT binary)",
        list.join(",")
    );
    let rows = BinaryCopyOutStream::new(client.copy_out(&sql).await?, &TYPES);
    pin_mut!(rows);
    let mut before: Option<(i64, Vec<u8>)> = None;
    let mut found = BTreeSet::new();
    while let Some(row) = rows.try_next().await? {
        let (fields, entry_hash) = entry(&row)?;
        if seqs.contains(&fields.seq) {
            found.insert(fields.seq);
            verdict.entries += 1;
            let adjacent = before.as_ref().filter(|(seq, _)| *seq == fields.seq - 1);
            verdict.note(fields.seq, problem(&fields, entry_hash, adjacent, fields.seq));
        }
        before = Some((fields.seq, entry_hash.to_vec()));
    }
    for missing in seqs.difference(&found) {
        verdict.note(*missing, Some("the entry is missing".into()));
    }
    verdict.breaks.sort_by_key(|b| b.seq);
    Ok(verdict)
}

/// A log row as hashed, and its stored entry_hash.
fn entry<'r>(row: &'r BinaryCopyOutRow) -> Result<(EntryFields<'r>, &'r [u8]), tokio_postgres::Error> {
    let UnixMicros(recorded_at_micros) = row.try_get(RECORDED_AT)?;
    let fields = EntryFields {
        seq: row.try_get(SEQ)?,
        recorded_at_micros,
        actor: text(row, ACTOR)?,
        action: text(row, ACTION)?,
        resource: text(row, RESOURCE)?,
        subsystem: text(row, SUBSYSTEM)?,
        payload: text(row, PAYLOAD)?,
        result: text(row, RESULT)?,
        prev_hash: text(row, PREV_HASH)?,
    };
    Ok((fields, text(row, ENTRY_HASH)?))
}

impl ChainVerdict {
    /// Counts `problem` of entry `seq`, if any; lists the first few.
    fn note(&mut self, seq: i64, problem: Option<String>) {
        if let Some(problem) = problem {
            self.broken += 1;
            if self.breaks.len() < MAX_LISTED_BREAKS {
                self.breaks.push(ChainBreak { seq, problem });
            }
        }
    }
}

/// What is wrong with one entry, given the entry before it (when fetched).
fn problem(entry: &EntryFields<'_>, entry_hash: &[u8], before: Option<&(i64, Vec<u8>)>, from: i64) -> Option<String> {
    let expected_seq = before.map_or(1, |(seq, _)| seq + 1);
    if entry.seq != expected_seq && (before.is_some() || from <= 1) {
        return Some(format!("seq {} found where {expected_seq} was expected", entry.seq));
    }
    match before {
        Some((_, hash)) if entry.prev_hash != hash => {
            return Some("prev_hash does not match the entry before it".into());
        }
        None if entry.seq == 1 && entry.prev_hash != GENESIS_PREV_HASH.as_bytes() => {
            return Some("prev_hash does not match the entry before it".into());
        }
        None if entry.seq > 1 => return Some("the entry before it is missing".into()),
        _ => {}
    }
    let mut recomputed = [0u8; 64];
    (entry.hash_hex(&mut recomputed) != entry_hash).then(|| "entry_hash does not match the entry's contents".into())
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
            recorded_at_micros: 1_780_000_000_123_456,
            actor: b"grace-pipeline",
            action: b"agentic.contract_created",
            resource: b"contract/x",
            subsystem: b"agentic",
            payload: br#"{"n":1}"#,
            result: b"ok",
            prev_hash: prev_hash.as_bytes(),
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
        assert_eq!(problem(&first, first_hash.as_bytes(), None, 1), None);
        assert_eq!(problem(&first, b"0", None, 1).unwrap(), "entry_hash does not match the entry's contents");
        let before = (1, first_hash.clone().into_bytes());
        let second = entry(2, &first_hash);
        assert_eq!(problem(&second, second.hash().as_bytes(), Some(&before), 1), None);
        let unlinked = entry(2, GENESIS_PREV_HASH);
        assert_eq!(
            problem(&unlinked, unlinked.hash().as_bytes(), Some(&before), 1).unwrap(),
            "prev_hash does not match the entry before it"
        );
        let skipped = entry(3, &first_hash);
        assert_eq!(
            problem(&skipped, skipped.hash().as_bytes(), Some(&before), 1).unwrap(),
            "seq 3 found where 2 was expected"
        );
        assert_eq!(problem(&second, second.hash().as_bytes(), None, 2).unwrap(), "the entry before it is missing");
    }

    #[test]
    fn a_timestamptz_counts_from_the_postgres_epoch() {
        let micros = |raw: i64| UnixMicros::from_sql(&Type::TIMESTAMPTZ, &raw.to_be_bytes()).unwrap().0;
        // 2000-01-01T00:00:00Z, then 2026-05-28T20:26:40.123456Z.
        assert_eq!(micros(0), 946_684_800_000_000);
        assert_eq!(micros(1_780_000_000_123_456 - 946_684_800_000_000), 1_780_000_000_123_456);
        assert!(UnixMicros::from_sql(&Type::TIMESTAMPTZ, &i64::MAX.to_be_bytes()).is_err());
    }
}
