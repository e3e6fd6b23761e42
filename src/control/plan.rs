//! What a load run is asked to do, parsed at the edge: how much load, for how
//! long, on how many workers (`LoadShape`), against which backend and as whom
//! (`LoadPlan`). The coordinator carries it out; the merged result reports it.

use crate::client::BackendClient;
use crate::configuration::BackendUrl;
use grace_loadtests::Traffic;
use std::time::Duration;
use uuid::Uuid;

/// How much load, for how long, on how many workers.
#[derive(Debug, Clone)]
pub struct LoadShape {
    /// Users across all workers.
    pub users: u32,
    pub run_time: Duration,
    /// Open model: requests per second across all workers.
    pub rate: Option<f64>,
    /// Workers to wait for; `None` runs one in this process.
    pub expect_workers: Option<u32>,
    /// How long to wait for them.
    pub join_timeout: Duration,
    /// Silence after which a worker is lost.
    pub heartbeat_timeout: Duration,
}

/// What to run, parsed at the edge.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The backend, with an operator token (it creates the run's mission; the
    /// in-process worker loads with it).
    pub backend: BackendClient,
    /// Further replicas the load is spread over along with `backend`
    /// (replicas without a balancer; each transaction goes to the next in
    /// turn); usually none.
    pub replicas: Vec<BackendUrl>,
    pub shape: LoadShape,
    pub traffic: Traffic,
    /// The mission the load is tagged with; a fresh one when `None`.
    pub mission: Option<Uuid>,
}
