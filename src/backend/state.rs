//! What every handler and background task of one server shares. Cheap to
//! clone: everything is behind an `Arc` (the pool is one already).

use super::faults::{CircuitBreaker, Faults};
use super::mesh::TriggerMesh;
use super::policy::TierPolicy;
use super::telemetry::Telemetry;
use super::verification::Baselines;
use crate::configuration::Tokens;
use deadpool_postgres::Pool;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub tokens: Arc<Tokens>,
    pub faults: Arc<Faults>,
    pub breaker: Arc<CircuitBreaker>,
    pub mesh: Arc<TriggerMesh>,
    pub telemetry: Arc<Telemetry>,
    pub baselines: Arc<Baselines>,
    pub policy: Arc<TierPolicy>,
}
