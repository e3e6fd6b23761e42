//! Consistency condition C7 for a load run: every write is judged by how it
//! ended for the client (the outcome model of Jepsen's checkers):
//! acknowledged — stored exactly once; refused definitely — not stored;
//! indeterminate (no answer) — stored at most once, counted. So a write lost
//! after its acknowledgement (missing), one stored twice (duplicated), and one
//! stored that was refused or never sent (unacknowledged) each fail the run,
//! while a write committed by a replica that died before it answered does not.
//! Counts and digests are compared first; the keys the workers uploaded with
//! their outcomes then say how many of each, and which.
//!
//! Every key names its run and worker (`<run>/<worker>/…`), so the
//! run's rows are found by key, and rows written by a worker that was lost
//! (and so uploaded nothing) are counted apart, as unverifiable.

use super::status::ShareStatus;
use super::ControlError;
use futures::TryStreamExt;
use grace_loadtests::{combine_digests, KeyDigest};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use uuid::Uuid;

/// How many keys of each kind of violation a report names.
pub(super) const SAMPLE: i64 = 5;

/// Where a check finds the run's stored writes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stored<'a> {
    /// The Grace backend's chat and task rows of the run's mission.
    Bundled,
    /// One proof's keys, copied from the service's database into
    /// `pg_temp.stored_keys` (see `service_proofs`); judged against the
    /// outcomes of that proof's writes only (the proof names each key's
    /// third part: `<run>/<worker>/<proof>/…`).
    Copied { proof: &'a str },
}

impl Stored<'_> {
    /// The run's stored keys (`written`), and those of workers whose upload
    /// is in (`stored`); run `$1`.
    fn ctes(self) -> String {
        let written = match self {
            Stored::Bundled => {
                "WITH run AS (SELECT mission_id FROM control.runs WHERE id = $1)
                 SELECT c.idempotency_key AS key FROM chat_messages c, run
                  WHERE c.mission_id = run.mission_id AND c.role = 'user' AND split_part(c.idempotency_key, '/', 1) = $1::text
                 UNION ALL
                 SELECT t.idempotency_key FROM tasks t, run
                  WHERE t.mission_id = run.mission_id AND t.kind = 'submitted' AND split_part(t.idempotency_key, '/', 1) = $1::text"
            }
            Stored::Copied { .. } => "SELECT key FROM pg_temp.stored_keys",
        };
        let done = ShareStatus::Done;
        format!(
            "done AS (SELECT worker_id::text AS worker FROM control.run_workers WHERE run_id = $1 AND status = '{done}'),
             written AS ({written}),
             stored AS (SELECT key FROM written WHERE split_part(key, '/', 2) IN (SELECT worker FROM done))"
        )
    }

    /// The outcomes these writes are judged against: the run's (`$1`), of one proof only when copied.
    fn outcomes(self) -> String {
        let all = "SELECT idempotency_key AS key, outcome FROM control.write_outcomes WHERE run_id = $1";
        match self {
            Stored::Bundled => all.to_string(),
            // A proof's name is letters, digits, `_` and `-` (the workload's compiler says so).
            Stored::Copied { proof } => {
                format!("{all} AND split_part(idempotency_key, '/', 3) = '{}'", proof.replace('\'', "''"))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckedWritesCheck {
    /// Writes the workers saw acknowledged (the sum of their counts).
    pub acknowledged: u64,
    /// Rows stored for those workers' keys.
    pub stored: u64,
    pub acknowledged_digest: String,
    pub stored_digest: String,
    /// Acknowledged but not stored: acknowledged data lost.
    pub missing: u64,
    /// Keys stored more than once, whatever their outcome.
    #[serde(default)]
    pub duplicated: u64,
    /// Stored although refused definitely, or never sent as far as any
    /// worker knows.
    #[serde(default)]
    pub unacknowledged: u64,
    /// Writes that got no answer: each may be stored (at most once).
    #[serde(default)]
    pub indeterminate: u64,
    /// Of those, how many were stored.
    #[serde(default)]
    pub indeterminate_stored: u64,
    /// Writes refused definitely.
    #[serde(default)]
    pub refused: u64,
    pub missing_sample: Vec<String>,
    #[serde(default)]
    pub duplicated_sample: Vec<String>,
    #[serde(default)]
    pub unacknowledged_sample: Vec<String>,
    /// Rows written by workers that were lost; nothing to compare them with.
    pub unverifiable: u64,
    pub passed: bool,
}

impl AckedWritesCheck {
    /// Checks of disjoint sets of writes (one per kind) as one.
    pub fn sum<'a>(checks: impl IntoIterator<Item = &'a AckedWritesCheck>) -> Self {
        let checks: Vec<&AckedWritesCheck> = checks.into_iter().collect();
        let total = |field: fn(&AckedWritesCheck) -> u64| checks.iter().map(|c| field(c)).sum::<u64>();
        let digest = |field: fn(&AckedWritesCheck) -> &str| {
            combine_digests(checks.iter().map(|c| field(c))).expect("digests computed here are hex")
        };
        let sample = |field: fn(&AckedWritesCheck) -> &[String]| {
            checks.iter().flat_map(|c| field(c).iter().cloned()).take(SAMPLE as usize).collect::<Vec<_>>()
        };
        Self {
            acknowledged: total(|c| c.acknowledged),
            stored: total(|c| c.stored),
            acknowledged_digest: digest(|c| &c.acknowledged_digest),
            stored_digest: digest(|c| &c.stored_digest),
            missing: total(|c| c.missing),
            duplicated: total(|c| c.duplicated),
            unacknowledged: total(|c| c.unacknowledged),
            indeterminate: total(|c| c.indeterminate),
            indeterminate_stored: total(|c| c.indeterminate_stored),
            refused: total(|c| c.refused),
            missing_sample: sample(|c| &c.missing_sample),
            duplicated_sample: sample(|c| &c.duplicated_sample),
            unacknowledged_sample: sample(|c| &c.unacknowledged_sample),
            unverifiable: total(|c| c.unverifiable),
            passed: checks.iter().all(|c| c.passed),
        }
    }
}

#[cfg(test)]
impl AckedWritesCheck {
    /// A check that held over nothing: for tests of what is built around it.
    pub(crate) fn of_nothing() -> Self {
        Self::sum([])
    }
}

impl std::fmt::Display for AckedWritesCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} acknowledged, {} stored", self.acknowledged, self.stored)?;
        if self.passed {
            write!(f, ": every acknowledged write stored exactly once")?;
        } else {
            write!(
                f,
                ": {} missing{}, {} duplicated{}, {} stored without acknowledgement{}",
                self.missing,
                listed(&self.missing_sample),
                self.duplicated,
                listed(&self.duplicated_sample),
                self.unacknowledged,
                listed(&self.unacknowledged_sample)
            )?;
            if self.missing == 0 && self.duplicated == 0 && self.unacknowledged == 0 {
                write!(f, "; the uploaded keys disagree with the uploaded counts")?;
            }
        }
        if self.indeterminate > 0 {
            write!(f, "; indeterminate (no answer): stored {} of {}", self.indeterminate_stored, self.indeterminate)?;
        }
        if self.refused > 0 {
            write!(f, "; {} refused, none stored", self.refused)?;
        }
        if self.unverifiable > 0 {
            write!(f, " ({} rows by lost workers not verifiable)", self.unverifiable)?;
        }
        Ok(())
    }
}

fn listed(sample: &[String]) -> String {
    if sample.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {})", sample.join(", "))
    }
}

/// C7 on the Grace backend's tables: the keys uploaded as acknowledged must
/// be exactly those the workers counted (count and digest), and judged.
pub async fn check(client: &Client, run_id: Uuid) -> Result<AckedWritesCheck, ControlError> {
    let (counted, counted_digest) = counted(client, run_id).await?;
    let mut check = judge(client, run_id, Stored::Bundled).await?;
    check.passed &= check.acknowledged == counted && check.acknowledged_digest == counted_digest;
    Ok(check)
}

/// What the workers whose upload is in counted as acknowledged: how many
/// writes, and the digest of their keys.
pub(super) async fn counted(client: &Client, run_id: Uuid) -> Result<(u64, String), ControlError> {
    let uploads = client
        .query(
            "SELECT res.acked_keys_count, res.acked_keys_digest FROM control.worker_results res
               JOIN control.run_workers rw ON rw.run_id = res.run_id AND rw.worker_id = res.worker_id
              WHERE res.run_id = $1 AND rw.status = $2",
            &[&run_id, &ShareStatus::Done],
        )
        .await?;
    let mut acknowledged: i64 = 0;
    let mut digests: Vec<String> = Vec::new();
    for upload in &uploads {
        acknowledged += upload.try_get::<_, i64>("acked_keys_count")?;
        digests.push(upload.try_get("acked_keys_digest")?);
    }
    let digest = combine_digests(digests.iter().map(String::as_str))
        .map_err(|e| ControlError::Upload(format!("an acked-keys digest is not hex: {e}")))?;
    Ok((acknowledged as u64, digest))
}

/// Judges the writes `stored` finds against the uploaded outcomes:
/// `acknowledged` and its digest are those of the uploaded keys.
pub(super) async fn judge(client: &Client, run_id: Uuid, stored: Stored<'_>) -> Result<AckedWritesCheck, ControlError> {
    let (ctes, outcomes) = (stored.ctes(), stored.outcomes());
    let stored_digest = digest_of(client, &format!("WITH {ctes} SELECT key FROM stored"), run_id).await?;
    let acknowledged_digest = digest_of(
        client,
        &format!("WITH outcomes AS ({outcomes}) SELECT key FROM outcomes WHERE outcome = 'acknowledged'"),
        run_id,
    )
    .await?;
    let query = format!(
        "WITH {ctes},
         outcomes AS ({outcomes}),
         copies AS (SELECT key, count(*) AS copies FROM stored GROUP BY key),
         -- One hashed full join: every key stored or settled, with both sides.
         judged AS MATERIALIZED (
            SELECT coalesce(c.key, o.key) AS key, coalesce(c.copies, 0) AS copies, o.outcome
              FROM copies c FULL JOIN outcomes o ON o.key = c.key)
         SELECT (SELECT count(*) FROM stored) AS stored,
                count(*) FILTER (WHERE outcome = 'acknowledged') AS acknowledged,
                count(*) FILTER (WHERE outcome = 'acknowledged' AND copies = 0) AS missing,
                count(*) FILTER (WHERE copies > 1) AS duplicated,
                count(*) FILTER (WHERE copies > 0 AND outcome IS DISTINCT FROM 'acknowledged'
                                                  AND outcome IS DISTINCT FROM 'indeterminate') AS unacknowledged,
                count(*) FILTER (WHERE outcome = 'indeterminate') AS indeterminate,
                count(*) FILTER (WHERE outcome = 'indeterminate' AND copies > 0) AS indeterminate_stored,
                count(*) FILTER (WHERE outcome = 'refused') AS refused,
                ARRAY(SELECT key FROM judged WHERE outcome = 'acknowledged' AND copies = 0
                       ORDER BY key LIMIT $2) AS missing_sample,
                ARRAY(SELECT key FROM judged WHERE copies > 1 ORDER BY key LIMIT $2) AS duplicated_sample,
                ARRAY(SELECT key FROM judged WHERE copies > 0 AND outcome IS DISTINCT FROM 'acknowledged'
                        AND outcome IS DISTINCT FROM 'indeterminate' ORDER BY key LIMIT $2)
                  AS unacknowledged_sample,
                (SELECT count(*) FROM written) - (SELECT count(*) FROM stored) AS unverifiable
           FROM judged"
    );
    let row = client.query_one(&query, &[&run_id, &SAMPLE]).await?;
    let count = |column: &str| row.try_get::<_, i64>(column).map(|n| n as u64);
    let (missing, duplicated, unacknowledged) = (count("missing")?, count("duplicated")?, count("unacknowledged")?);
    Ok(AckedWritesCheck {
        acknowledged: count("acknowledged")?,
        stored: count("stored")?,
        acknowledged_digest,
        stored_digest,
        missing,
        duplicated,
        unacknowledged,
        indeterminate: count("indeterminate")?,
        indeterminate_stored: count("indeterminate_stored")?,
        refused: count("refused")?,
        missing_sample: row.try_get("missing_sample")?,
        duplicated_sample: row.try_get("duplicated_sample")?,
        unacknowledged_sample: row.try_get("unacknowledged_sample")?,
        unverifiable: count("unverifiable")?,
        passed: missing == 0 && duplicated == 0 && unacknowledged == 0,
    })
}

/// The digest of the keys `query` (run `$1`) returns, streamed so a big run
/// is never held in memory.
async fn digest_of(client: &Client, query: &str, run_id: Uuid) -> Result<String, ControlError> {
    let rows = client.query_raw(query, [&run_id]).await?;
    futures::pin_mut!(rows);
    let mut digest = KeyDigest::default();
    while let Some(row) = rows.try_next().await? {
        digest.add(row.try_get("key")?);
    }
    Ok(digest.to_hex())
}
