//! The service endpoints' bodies: health, and who a token is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers and the mesh runs, else `degraded`.
    pub status: String,
    /// `ok` or what is wrong.
    pub database: String,
    pub mesh: MeshHealth,
    /// Events committed but not yet chained into the immutable log; null while
    /// the database is unavailable.
    pub log_lag: Option<i64>,
    pub version: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeshHealth {
    pub started: bool,
    pub subscribers: i64,
    pub dropped: u64,
    pub last_seq: i64,
}

/// Who a bearer token is, as the backend knows it: what a client checks before
/// it relies on a token (a wrong one is a configuration error, found before
/// any load instead of as failed criteria later).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    /// `operator`, `approver`, `governance` or `admin`.
    pub role: String,
    /// The token's stable, non-secret name: its role and the first hex digits
    /// of its hash (as recorded in `decided_by` and the log's actor).
    pub identity: String,
}
