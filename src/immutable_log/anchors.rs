//! The heads this machine has proven, kept outside the database.
//!
//! Whoever owns the log can rewrite an entry and recompute every later hash,
//! checkpoints included: the chain then verifies. What they cannot rewrite is
//! a head already copied elsewhere. Like Certificate Transparency's signed
//! tree heads and immudb's client-side state, each verifier keeps the last head
//! it proved (seq and hash, with the log's first hash) in a local file, and
//! the next verification fails, naming the seq, when the log no longer holds
//! that head or is shorter than it.

use super::checkpoint::{self, ChainHead};
use super::ChainBreak;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio_postgres::Client;

/// What one database's log looked like when it was last proven here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The hash of seq 1: which log this is.
    pub genesis_hash: String,
    #[serde(flatten)]
    pub head: ChainHead,
    pub verified_at: DateTime<Utc>,
}

impl Anchor {
    /// What is wrong with the log against this anchor, if anything: its first
    /// entry (`genesis_hash`, as the log holds it) is another, it ends (at
    /// `log_end`) before the anchored head, or it holds another entry there.
    /// `origin` names where the anchor came from.
    pub async fn check(
        &self,
        client: &Client,
        genesis_hash: Option<&str>,
        log_end: i64,
        origin: &str,
    ) -> Result<Option<ChainBreak>, tokio_postgres::Error> {
        let proven = format!("the head proven on {} ({origin})", self.verified_at.format("%Y-%m-%d %H:%M:%S UTC"));
        if genesis_hash != Some(self.genesis_hash.as_str()) {
            return Ok(Some(ChainBreak {
                seq: 1,
                problem: format!("the log's first entry is not the one of {proven}: the log was replaced or rewritten from its start"),
            }));
        }
        Ok(match checkpoint::hash_at(client, self.head.seq).await? {
            Some(hash) if hash == self.head.entry_hash => None,
            Some(_) => Some(ChainBreak {
                seq: self.head.seq,
                problem: format!("entry_hash differs from {proven}: the log was rewritten at or before this entry"),
            }),
            None => Some(ChainBreak {
                seq: self.head.seq,
                problem: format!("the log ends at seq {log_end}, before {proven}: entries were removed"),
            }),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read the anchor file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the anchor file {path} is not a Grace anchor file: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write the anchor file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The anchor file's name in a reports directory.
pub const ANCHOR_FILE: &str = "anchors.json";

/// An anchor file: one anchor per database, keyed by its endpoint and name.
#[derive(Debug)]
pub struct AnchorFile {
    path: PathBuf,
    anchors: BTreeMap<String, Anchor>,
}

impl AnchorFile {
    /// Reads `path`; a file that does not exist yet holds no anchors.
    pub fn load(path: &Path) -> Result<Self, AnchorError> {
        let anchors = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| AnchorError::Parse { path: path.to_path_buf(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(AnchorError::Read { path: path.to_path_buf(), source }),
        };
        Ok(Self { path: path.to_path_buf(), anchors })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, database: &str) -> Option<&Anchor> {
        self.anchors.get(database)
    }

    /// Replaces `database`'s anchor and writes the file (whole, by rename, so
    /// a crash leaves the old file or the new one).
    pub fn store(&mut self, database: &str, anchor: Anchor) -> Result<(), AnchorError> {
        self.anchors.insert(database.to_string(), anchor);
        let write = || -> std::io::Result<()> {
            let dir = match self.path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            std::fs::create_dir_all(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer_pretty(&mut file, &self.anchors)?;
            file.persist(&self.path)?;
            Ok(())
        };
        write().map_err(|source| AnchorError::Write { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_anchor_reads_back_and_a_missing_file_holds_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/anchors.json");
        let mut file = AnchorFile::load(&path).unwrap();
        assert!(file.get("db").is_none());
        let anchor = Anchor {
            genesis_hash: "a".repeat(64),
            head: ChainHead { seq: 42, entry_hash: "b".repeat(64) },
            verified_at: DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
        };
        file.store("127.0.0.1:5432/grace", anchor.clone()).unwrap();
        assert_eq!(AnchorFile::load(&path).unwrap().get("127.0.0.1:5432/grace"), Some(&anchor));
    }

    #[test]
    fn a_file_that_is_not_an_anchor_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchors.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        let err = AnchorFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("anchors.json") && err.contains("not a Grace anchor file"), "{err}");
    }
}
