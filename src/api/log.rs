//! The immutable log and the Trigger Mesh, seen from outside: log entries,
//! chain verification, the mesh ping.

use crate::immutable_log::{ChainBreak, ChainVerdict};
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
}

impl From<ChainVerdict> for ChainReport {
    fn from(v: ChainVerdict) -> Self {
        Self { valid: v.holds(), entries: v.entries, broken: v.broken, breaks: v.breaks }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PingResult {
    pub event_id: i64,
    pub log_seq: i64,
    pub round_trip_ms: f64,
}
