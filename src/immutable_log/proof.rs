//! One proof of the chain: where it may start (genesis, or the newest head
//! that a checkpoint or this machine's anchor names and the log still holds),
//! the ranges it re-hashes in parallel, and the checkpoint it leaves when the
//! chain holds. A checkpoint or an anchor the log no longer matches is a
//! break in itself, and the proof then goes back to genesis to say what else
//! is wrong.
//!
//! What came before the starting point is not re-hashed, so an edit there
//! (by whoever can switch the log's guards off) would be invisible to every
//! incremental proof by construction. Each incremental proof therefore also
//! spot-checks `sample` entries of that stretch, drawn at random: an edit of
//! one entry there is caught by one proof with probability sample / proven
//! (the proof says it), and by r proofs with 1 − (1 − sample/proven)^r.
//! `--full` stays the audit.

use super::anchors::{Anchor, AnchorError, AnchorFile};
use super::chain::{verify_entries, verify_range};
use super::checkpoint::{self, ChainHead};
use super::{ChainBreak, ChainVerdict, MAX_LISTED_BREAKS};
use crate::configuration::DatabaseUrl;
use crate::db::{self, DbError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_postgres::Client;

/// A connection the chain can be read through: a client of its own or one
/// borrowed from a pool.
pub trait ChainReader: Send + Sync + 'static {
    fn client(&self) -> &Client;
}

impl ChainReader for Client {
    fn client(&self) -> &Client {
        self
    }
}

impl ChainReader for deadpool_postgres::Object {
    fn client(&self) -> &Client {
        self
    }
}

/// Below this many entries a range is not worth another connection.
const MIN_PARALLEL_RANGE: i64 = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct ProofOptions<'a> {
    /// Re-hash from genesis whatever the checkpoints say.
    pub full: bool,
    /// This machine's anchor for the database, and where it came from.
    pub anchor: Option<(&'a Anchor, &'a str)>,
    /// Who proves it, as the checkpoint records.
    pub verified_by: &'a str,
    /// The most entries one proof may re-hash; a longer stretch is proven up
    /// to there and checkpointed, and the next proof goes on from it (so a
    /// request's cost stays bounded however much is new). `None`: no bound.
    pub max_entries: Option<i64>,
    /// Entries of the stretch already proven to spot-check, drawn at random
    /// (an incremental proof's; a full one re-hashes them all).
    pub sample: u64,
}

/// Entries an incremental proof spot-checks unless told otherwise: at a 1M-entry
/// log, 0.1% of it per proof, in one indexed read of 2,000 rows.
pub const DEFAULT_SAMPLE: u64 = 1_000;

/// The spot-check of the stretch already proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotCheck {
    /// Entries spot-checked.
    pub checked: u64,
    /// Entries proven before this proof's start, which they were drawn from.
    pub proven: i64,
}

impl SpotCheck {
    /// The chance that this proof catches an edit of one entry among `proven`.
    pub fn detection_probability(&self) -> f64 {
        if self.proven <= 0 {
            return 1.0;
        }
        (self.checked as f64 / self.proven as f64).min(1.0)
    }
}

impl std::fmt::Display for SpotCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let percent = 100.0 * self.detection_probability();
        // Small chances keep their digits: 1,000 of 4.9M is 0.020%, not 0.0%.
        let decimals = if percent >= 1.0 { 1 } else { 3 };
        write!(
            f,
            "spot-checked {} of the {} proven before (an edit of one of them is caught by this proof with \
             probability {percent:.decimals$}%)",
            self.checked,
            crate::console::counted(self.proven.max(0) as u64, "entry", "entries"),
        )
    }
}

/// Where a proof started re-hashing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "after", rename_all = "snake_case")]
pub enum ProofStart {
    Genesis,
    Checkpoint { seq: i64, verified_at: DateTime<Utc>, verified_by: String },
    Anchor { seq: i64, verified_at: DateTime<Utc> },
}

impl ProofStart {
    /// The last entry taken as proven.
    fn seq(&self) -> i64 {
        match self {
            ProofStart::Genesis => 0,
            ProofStart::Checkpoint { seq, .. } | ProofStart::Anchor { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for ProofStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofStart::Genesis => write!(f, "from genesis"),
            ProofStart::Checkpoint { seq, verified_by, .. } => {
                write!(f, "after checkpoint seq {seq} (proven by {verified_by})")
            }
            ProofStart::Anchor { seq, .. } => write!(f, "after this machine's anchor seq {seq}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProof {
    /// The entries re-hashed this time and every break found, checkpoints and
    /// anchors included.
    pub verdict: ChainVerdict,
    pub start: ProofStart,
    /// The entry the proof reached: the log's last when it began, unless
    /// `max_entries` stopped it earlier.
    pub head: Option<ChainHead>,
    /// Entries after `head` left for the next proof (by `max_entries`).
    pub remaining: i64,
    /// The hash of seq 1, which names the log.
    pub genesis_hash: Option<String>,
    /// The spot-check of what came before `start` (incremental proofs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_check: Option<SpotCheck>,
}

impl ChainProof {
    /// What this proof re-hashed: how many entries, from where, up to which head.
    pub fn scope(&self) -> String {
        let head = self.head.as_ref().map_or("the log is empty".to_string(), |head| format!("head seq {}", head.seq));
        let remaining = if self.remaining > 0 {
            format!(" ({} newer entries left for the next proof)", self.remaining)
        } else {
            String::new()
        };
        let entries = crate::console::counted(self.verdict.entries.max(0) as u64, "entry", "entries");
        let spot_check = self.spot_check.as_ref().map_or(String::new(), |check| format!("; {check}"));
        format!("{entries} re-hashed {}; {head}{remaining}{spot_check}", self.start)
    }

    /// One line for a person: what was re-hashed from where, up to which
    /// head, and each break listed.
    pub fn summary(&self) -> String {
        let proven = self.scope();
        if self.verdict.holds() {
            return proven;
        }
        let breaks: Vec<String> = self.verdict.breaks.iter().map(|b| format!("seq {}: {}", b.seq, b.problem)).collect();
        format!("{} broken ({proven}) — {}", self.verdict.broken, breaks.join("; "))
    }

    /// The anchor to keep for this log, when the proof held.
    pub fn anchor(&self) -> Option<Anchor> {
        let (head, genesis_hash) = (self.head.clone()?, self.genesis_hash.clone()?);
        self.verdict.holds().then(|| Anchor { genesis_hash, head, verified_at: Utc::now() })
    }
}

/// Proves the chain up to its current head, reading through `readers` (the
/// first also answers the small queries and records the checkpoint; a full
/// proof splits the log into one range per reader).
pub async fn prove<R: ChainReader>(
    readers: &[Arc<R>],
    options: ProofOptions<'_>,
) -> Result<ChainProof, tokio_postgres::Error> {
    let client = readers[0].client();
    let log_head = checkpoint::log_head(client).await?;
    let genesis_hash = checkpoint::hash_at(client, 1).await?;
    let mut findings = Vec::new();
    let mut start = ProofStart::Genesis;
    if let Some((anchor, origin)) = options.anchor {
        let log_end = log_head.as_ref().map_or(0, |head| head.seq);
        match anchor.check(client, genesis_hash.as_deref(), log_end, origin).await? {
            Some(finding) => findings.push(finding),
            None => start = ProofStart::Anchor { seq: anchor.head.seq, verified_at: anchor.verified_at },
        }
    }
    if let Some(checkpoint) = checkpoint::latest(client).await? {
        if !checkpoint.matches_log() {
            findings.push(ChainBreak {
                seq: checkpoint.head.seq,
                problem: format!(
                    "the log no longer holds the entry checkpointed by {} at {}: it was rewritten or removed",
                    checkpoint.verified_by,
                    checkpoint.verified_at.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            });
        } else if checkpoint.head.seq > start.seq() {
            start = ProofStart::Checkpoint {
                seq: checkpoint.head.seq,
                verified_at: checkpoint.verified_at,
                verified_by: checkpoint.verified_by,
            };
        }
    }
    if options.full || !findings.is_empty() {
        start = ProofStart::Genesis;
    }
    let (head, remaining) = match (log_head, options.max_entries) {
        (Some(last), Some(max)) if last.seq - start.seq() > max => {
            let seq = start.seq() + max;
            let entry_hash = checkpoint::hash_at(client, seq).await?.unwrap_or_default();
            (Some(ChainHead { seq, entry_hash }), last.seq - seq)
        }
        (last, _) => (last, 0),
    };
    let mut verdict = match &head {
        Some(head) if head.seq > start.seq() => verify_in_ranges(readers, start.seq() + 1, head.seq).await?,
        _ => ChainVerdict { entries: 0, broken: 0, breaks: Vec::new() },
    };
    // The anchors' and checkpoints' findings, then the spot-check's.
    verdict.broken += findings.len() as i64;
    let spot_check = match start.seq() {
        0 => None,
        proven => {
            let seqs = random_entries(proven, options.sample);
            let checked = verify_entries(client, &seqs).await?;
            verdict.broken += checked.broken;
            findings.extend(checked.breaks);
            Some(SpotCheck { checked: seqs.len() as u64, proven })
        }
    };
    findings.append(&mut verdict.breaks);
    findings.sort_by_key(|finding| finding.seq);
    findings.truncate(MAX_LISTED_BREAKS);
    verdict.breaks = findings;
    if let (true, Some(head)) = (verdict.holds(), &head) {
        checkpoint::record(client, head, options.verified_by).await?;
    }
    Ok(ChainProof { verdict, start, head, remaining, genesis_hash, spot_check })
}

/// `sample` distinct seqs drawn at random from `1..=proven` (all of them
/// when there are no more).
fn random_entries(proven: i64, sample: u64) -> std::collections::BTreeSet<i64> {
    let proven = usize::try_from(proven).unwrap_or(usize::MAX);
    let sample = usize::try_from(sample).unwrap_or(usize::MAX).min(proven);
    rand::seq::index::sample(&mut rand::rng(), proven, sample).into_iter().map(|i| i as i64 + 1).collect()
}

/// Re-hashes `from..=to`, split into consecutive ranges read at once (each
/// range re-reads the entry before it, so the links between ranges are
/// checked too).
async fn verify_in_ranges<R: ChainReader>(
    readers: &[Arc<R>],
    from: i64,
    to: i64,
) -> Result<ChainVerdict, tokio_postgres::Error> {
    let entries = to - from + 1;
    let ranges = (entries / MIN_PARALLEL_RANGE).clamp(1, readers.len() as i64);
    let width = (entries + ranges - 1) / ranges;
    let tasks: Vec<_> = (0..ranges)
        .map(|n| {
            let reader = Arc::clone(&readers[n as usize]);
            let (first, last) = (from + n * width, (from + (n + 1) * width - 1).min(to));
            tokio::spawn(async move { verify_range(reader.client(), first, last).await })
        })
        .collect();
    let mut verdict = ChainVerdict { entries: 0, broken: 0, breaks: Vec::new() };
    for task in tasks {
        let part = task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        verdict.entries += part.entries;
        verdict.broken += part.broken;
        verdict.breaks.extend(part.breaks);
    }
    verdict.breaks.truncate(MAX_LISTED_BREAKS);
    Ok(verdict)
}

/// How a command proves a database's chain: from genesis or from where the
/// last proof ended, and whether it keeps this machine's anchor.
#[derive(Debug)]
pub struct ChainSettings {
    pub full: bool,
    pub anchors: Option<AnchorFile>,
    /// Entries of the stretch already proven to spot-check.
    pub sample: u64,
}

impl Default for ChainSettings {
    fn default() -> Self {
        Self { full: false, anchors: None, sample: DEFAULT_SAMPLE }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Anchors(#[from] AnchorError),
}

impl From<tokio_postgres::Error> for ProofError {
    fn from(source: tokio_postgres::Error) -> Self {
        Self::Database(DbError::Query { during: "reading the log for its proof", source })
    }
}

/// Proves the chain of the database at `url` as `verified_by`, over one
/// connection per core; checks this machine's anchor for it and, when the
/// chain holds, moves the anchor to the new head.
pub async fn prove_database(
    url: &DatabaseUrl,
    settings: &mut ChainSettings,
    verified_by: &str,
) -> Result<ChainProof, ProofError> {
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let mut clients = Vec::with_capacity(readers);
    for _ in 0..readers {
        clients.push(Arc::new(db::connect(url).await?));
    }
    let database = format!("{}/{}", url.endpoint(), url.database());
    let origin = settings.anchors.as_ref().map(|file| file.path().display().to_string());
    let anchor = settings.anchors.as_ref().and_then(|file| file.get(&database)).cloned();
    let options = ProofOptions {
        full: settings.full,
        anchor: anchor.as_ref().zip(origin.as_deref()),
        verified_by,
        max_entries: None,
        sample: settings.sample,
    };
    let proof = prove(&clients, options).await?;
    if let (Some(file), Some(anchor)) = (settings.anchors.as_mut(), proof.anchor()) {
        file.store(&database, anchor)?;
    }
    Ok(proof)
}
