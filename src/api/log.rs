//! The immutable log and the Trigger Mesh, seen from outside: log entries,
//! chain verification, the mesh ping.

use crate::immutable_log::checkpoint::ChainHead;
use crate::immutable_log::{ChainBreak, ChainProof, ChainVerdict, ProofStart, SpotCheck};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogEntryView {
    pub seq: i64,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub subsystem: String,
    /// Canonical JSON text, exactly as hashed.
    pub payload: String,
    pub result: String,
    pub prev_hash: String,
    pub entry_hash: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainReport {
    pub valid: bool,
    pub entries: i64,
    pub broken: i64,
    /// The first breaks, each with its seq and what is wrong.
    #[schema(value_type = Vec<Object>)]
    pub breaks: Vec<ChainBreak>,
    /// Where re-hashing started, when no range was asked for: `genesis`, or
    /// after the last checkpoint the log still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub start: Option<ProofStart>,
    /// The entry the proof reached (the log's head when it began, unless the
    /// per-call bound stopped it earlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub head: Option<ChainHead>,
    /// Newer entries left for the next call, when the bound stopped this one.
    #[serde(default)]
    pub remaining: i64,
    /// The random spot-check of the entries proven before `start`: how many
    /// were checked, of how many (`checked` / `proven` is the chance this
    /// call caught an edit of one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub spot_check: Option<SpotCheck>,
}

impl From<ChainVerdict> for ChainReport {
    fn from(v: ChainVerdict) -> Self {
        Self {
            valid: v.holds(),
            entries: v.entries,
            broken: v.broken,
            breaks: v.breaks,
            start: None,
            head: None,
            remaining: 0,
            spot_check: None,
        }
    }
}

impl From<ChainProof> for ChainReport {
    fn from(proof: ChainProof) -> Self {
        Self {
            start: Some(proof.start),
            head: proof.head,
            remaining: proof.remaining,
            spot_check: proof.spot_check,
            ..proof.verdict.into()
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PingResult {
    pub event_id: i64,
    pub log_seq: i64,
    pub round_trip_ms: f64,
}
