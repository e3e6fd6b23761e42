//! The service endpoints' bodies: health.

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
