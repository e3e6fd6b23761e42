//! Consistency condition C7 for a load run: the chat messages and tasks stored
//! for the run are exactly the writes its workers saw acknowledged — none
//! missing (an acknowledged write lost), none extra (a write stored twice, or
//! stored without the client being told). Counts and digests are compared
//! first; the keys the workers uploaded then say how many are missing or extra,
//! and which.
//!
//! Every key names its run and worker (`<run>/<worker>/u<user>/<n>`), so the
//! run's rows are found by key, and rows written by a worker that was lost
//! (and so uploaded nothing) are counted apart, as unverifiable.

use super::ControlError;
use futures::TryStreamExt;
use grace_loadtests::{combine_digests, KeyDigest};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use uuid::Uuid;

/// How many missing or extra keys a report names.
const SAMPLE: i64 = 5;

/// The stored client writes of run `$1` by workers whose upload is in, as `key`.
const STORED: &str = "
    run AS (SELECT mission_id FROM control.runs WHERE id = $1),
    done AS (SELECT worker_id::text AS worker FROM control.run_workers WHERE run_id = $1 AND status = 'done'),
    written AS (
        SELECT c.idempotency_key AS key FROM chat_messages c, run
         WHERE c.mission_id = run.mission_id AND c.role = 'user' AND split_part(c.idempotency_key, '/', 1) = $1::text
        UNION ALL
        SELECT t.idempotency_key FROM tasks t, run
         WHERE t.mission_id = run.mission_id AND t.kind = 'submitted' AND split_part(t.idempotency_key, '/', 1) = $1::text),
    stored AS (SELECT key FROM written WHERE split_part(key, '/', 2) IN (SELECT worker FROM done))";

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
    /// Stored but never acknowledged.
    pub extra: u64,
    pub missing_sample: Vec<String>,
    pub extra_sample: Vec<String>,
    /// Rows written by workers that were lost; nothing to compare them with.
    pub unverifiable: u64,
    pub passed: bool,
}

#[cfg(test)]
impl AckedWritesCheck {
    /// A check that held over nothing: for tests of what is built around it.
    pub(crate) fn of_nothing() -> Self {
        Self {
            acknowledged: 0,
            stored: 0,
            acknowledged_digest: "0".repeat(64),
            stored_digest: "0".repeat(64),
            missing: 0,
            extra: 0,
            missing_sample: vec![],
            extra_sample: vec![],
            unverifiable: 0,
            passed: true,
        }
    }
}

impl std::fmt::Display for AckedWritesCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.passed {
            write!(f, "{} acknowledged = {} stored, digests equal", self.acknowledged, self.stored)?;
        } else {
            write!(
                f,
                "{} acknowledged, {} stored: {} missing{}, {} extra{}",
                self.acknowledged,
                self.stored,
                self.missing,
                listed(&self.missing_sample),
                self.extra,
                listed(&self.extra_sample)
            )?;
            if self.missing == 0 && self.extra == 0 {
                write!(f, "; the uploaded keys disagree with the uploaded counts or digests")?;
            }
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

pub async fn check(client: &Client, run_id: Uuid) -> Result<AckedWritesCheck, ControlError> {
    let uploads = client
        .query(
            "SELECT res.acked_keys_count, res.acked_keys_digest FROM control.worker_results res
               JOIN control.run_workers rw ON rw.run_id = res.run_id AND rw.worker_id = res.worker_id
              WHERE res.run_id = $1 AND rw.status = 'done'",
            &[&run_id],
        )
        .await?;
    let mut acknowledged: i64 = 0;
    let mut digests: Vec<String> = Vec::new();
    for upload in &uploads {
        acknowledged += upload.try_get::<_, i64>("acked_keys_count")?;
        digests.push(upload.try_get("acked_keys_digest")?);
    }
    let acknowledged_digest = combine_digests(digests.iter().map(String::as_str))
        .map_err(|e| ControlError::Upload(format!("an acked-keys digest is not hex: {e}")))?;

    let stored_digest = stored_digest(client, run_id).await?;
    let row = client
        .query_one(
            &format!(
                "WITH {STORED},
                 acked AS (SELECT idempotency_key AS key FROM control.acked_writes WHERE run_id = $1),
                 -- Set differences (hashed), not NOT EXISTS: over CTEs that would be a nested loop.
                 missing AS (SELECT key FROM acked EXCEPT SELECT key FROM stored),
                 extra AS (SELECT key FROM stored EXCEPT SELECT key FROM acked)
                 SELECT (SELECT count(*) FROM stored) AS stored,
                        (SELECT count(*) FROM missing) AS missing,
                        (SELECT count(*) FROM extra) AS extra,
                        ARRAY(SELECT key FROM missing ORDER BY key LIMIT $2) AS missing_sample,
                        ARRAY(SELECT key FROM extra ORDER BY key LIMIT $2) AS extra_sample,
                        (SELECT count(*) FROM written) - (SELECT count(*) FROM stored) AS unverifiable"
            ),
            &[&run_id, &SAMPLE],
        )
        .await?;
    let (stored, missing, extra): (i64, i64, i64) =
        (row.try_get("stored")?, row.try_get("missing")?, row.try_get("extra")?);
    let passed = missing == 0 && extra == 0 && stored == acknowledged && stored_digest == acknowledged_digest;
    Ok(AckedWritesCheck {
        acknowledged: acknowledged as u64,
        stored: stored as u64,
        acknowledged_digest,
        stored_digest,
        missing: missing as u64,
        extra: extra as u64,
        missing_sample: row.try_get("missing_sample")?,
        extra_sample: row.try_get("extra_sample")?,
        unverifiable: row.try_get::<_, i64>("unverifiable")? as u64,
        passed,
    })
}

/// The digest of the stored keys, streamed so a big run is never held in memory.
async fn stored_digest(client: &Client, run_id: Uuid) -> Result<String, ControlError> {
    let rows = client.query_raw(&format!("WITH {STORED} SELECT key FROM stored"), [&run_id]).await?;
    futures::pin_mut!(rows);
    let mut digest = KeyDigest::default();
    while let Some(row) = rows.try_next().await? {
        digest.add(row.try_get("key")?);
    }
    Ok(digest.to_hex())
}
