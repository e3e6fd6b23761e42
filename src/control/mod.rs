//! Distributed load, with Postgres as the control plane (docs/design.md,
//! "Distributed load through Postgres"): goose 0.19 has no manager/worker
//! mode, so workers and the coordinator meet in the `control` schema.
//!
//! - [`worker`]: `grace worker` — registers, heartbeats every second, waits
//!   for a share of a run, runs it with goose ([`share`]), uploads what it saw.
//! - [`coordinator`]: `grace load` and the scenario's load phase — creates a
//!   run, waits for its workers, splits the users, announces the start on the
//!   database clock, marks silent workers lost, and merges the uploads.
//! - [`plan`]: what a run is asked to do (users, time, workers, backend).
//! - [`status`]: what a worker, a run and a share of it can be.
//! - [`progress`]: live progress while it runs, merged from the workers' heartbeats.
//! - [`metrics`]: a worker's own numbers for Prometheus (`--metrics-listen`).
//! - [`goose_page`]: goose's own HTML report of a share, named alike wherever it is
//!   written and made to read offline.
//! - [`connection`]: the control plane as one process reaches it, through database
//!   restarts.
//! - [`clock`]: one clock for a run, the database's: each worker's offset from
//!   it, measured with every heartbeat, and its timeline put on it.
//! - [`readiness`]: waiting, bounded, for PostgreSQL and the backends when a
//!   run starts together with them (`--wait-for-services`).
//! - [`result`]: the merged result, its percentiles taken from merged
//!   histograms, never averaged.
//! - [`threshold`]: k6-style pass/fail criteria on a run (`p95<300ms`).
//! - [`acked_writes`]: consistency condition C7 — the writes the workers saw
//!   acknowledged are exactly the rows stored.
//! - [`service_proofs`]: a workload's proofs on the service's own database —
//!   C7 per kind of write, and C1 on its foreign keys.

pub mod acked_writes;
pub mod clock;
pub mod connection;
pub mod coordinator;
pub mod goose_page;
mod metrics;
pub mod plan;
pub mod progress;
pub mod readiness;
pub mod result;
pub mod service_proofs;
mod share;
pub mod status;
pub mod threshold;
pub mod worker;

use crate::client::{BackendClient, ClientError};
use crate::db::DbError;
use crate::specification::Role;
use grace_loadtests::workload::WorkloadSource;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// The NOTIFY channel runs are announced on: every idle worker listens.
const RUNS_CHANNEL: &str = "grace_control";
/// The NOTIFY channel a share's upload is told on: only coordinators
/// listen. Apart from the runs' so that W uploads wake one coordinator, not
/// W listening workers each (W² wake-ups in PostgreSQL: at 200 workers the
/// end of a run spent seconds of its CPU on them).
const UPLOADS_CHANNEL: &str = "grace_control_uploads";
/// How often a worker says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long past a run's end a worker may still upload: then the coordinator
/// counts a worker that has not as lost, and the worker, still unable to
/// reach the control plane, gives up too.
pub const UPLOAD_ALLOWANCE: Duration = Duration::from_secs(60);

/// How long an upload of `outcomes` write outcomes may take: the allowance,
/// and a second per 50,000 keys more (a COPY moves ~200k keys/s on 2 cores;
/// an hour's soak at 2,600 requests/s leaves 5.7M).
pub fn upload_allowance(outcomes: usize) -> Duration {
    UPLOAD_ALLOWANCE + Duration::from_secs((outcomes / 50_000) as u64)
}
/// How far ahead of the database clock a run's start is announced, so every
/// worker has heard of it before it begins.
const START_LEAD: Duration = Duration::from_secs(2);

/// What a run asks of its workers, stored in `control.runs.config`. It holds
/// no secret: each process brings its own token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The backend, as the coordinator reaches it (a worker may override it).
    pub backend: String,
    /// Every backend the users are spread over, `backend` first, when there
    /// are several; empty otherwise.
    #[serde(default)]
    pub backends: Vec<String>,
    /// The mission the load is tagged with, on a Grace backend.
    pub mission_id: Option<Uuid>,
    /// The whole run's, across all workers.
    #[serde(flatten)]
    pub profile: plan::LoadProfile,
    /// The traffic: the workers compile it themselves.
    pub workload: WorkloadSource,
    /// Each worker keeps goose's own metrics and uploads goose's HTML report
    /// (`--goose-report`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub goose_report: bool,
}

/// Why load could not be run or judged.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("the backend at {url} is unreachable: {reason}")]
    BackendUnreachable { url: String, reason: String },
    /// The settings will not do (a token the backend refuses, say).
    #[error("{0}")]
    Configuration(String),
    #[error("the backend at {url} refused: {reason}")]
    BackendRefused { url: String, reason: String },
    #[error("expected {expected} workers, but {} joined within {}s{}", .joined.len(), .waited.as_secs(), named(.joined))]
    TooFewWorkers { expected: u32, joined: Vec<String>, waited: Duration },
    #[error("the workers that joined can take {capacity} users in all, fewer than the {users} asked for")]
    TooLittleCapacity { users: u32, capacity: u32 },
    #[error("goose could not run the load: {0}")]
    Goose(String),
    #[error("a worker's upload is unreadable: {0}")]
    Upload(String),
    /// A run announced in a form this worker does not read (a coordinator of
    /// another version of Grace).
    #[error("the run's configuration is not one this worker reads (is the coordinator another version?): {0}")]
    RunConfiguration(String),
    #[error("the control plane did not answer {what} within {}s; {consequence}", .waited.as_secs())]
    ControlPlaneLost { what: &'static str, waited: Duration, consequence: &'static str },
    /// The service's database (`--service-database-url`) could not be read.
    #[error("the service's database: {0}")]
    ServiceDatabase(String),
    #[error("interrupted")]
    Interrupted,
}

fn named(joined: &[String]) -> String {
    if joined.is_empty() {
        String::new()
    } else {
        format!(": {}", joined.join(", "))
    }
}

/// A statement of the control plane that failed. Run through
/// `ControlPlane::run`, it is named after the step it was part of.
impl From<tokio_postgres::Error> for ControlError {
    fn from(source: tokio_postgres::Error) -> Self {
        Self::Database(DbError::Query { during: "a control-plane statement", source })
    }
}

/// Checks what the load goes to before any load. A Grace backend
/// (`grace_backend`) must answer its health probe healthy (a 5xx is not
/// reachable: load against it would prove nothing) and take the operator
/// token as an operator's — a wrong token found now, not as a run of 401s;
/// any other service need only answer. Fails with `BackendUnreachable`, or
/// `Configuration` for the token.
pub async fn check_backend(backend: &BackendClient, grace_backend: bool) -> Result<(), ControlError> {
    let unreachable =
        |e: ClientError| ControlError::BackendUnreachable { url: backend.url().to_string(), reason: e.reason() };
    if !grace_backend {
        return backend.answers().await.map_err(unreachable);
    }
    backend.health().await.map_err(unreachable)?;
    match backend.check_tokens(&[Role::Operator]).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_configuration() => Err(ControlError::Configuration(format!("{}: {e}", backend.url()))),
        Err(e) => Err(unreachable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::plan::{LoadProfile, Stage};
    use super::RunConfig;
    use grace_loadtests::workload::WorkloadSource;
    use serde_json::json;

    fn workload() -> WorkloadSource {
        WorkloadSource { origin: "bundled:health".into(), text: "name = \"health\"".into(), files: Default::default() }
    }

    #[test]
    fn a_run_config_keeps_the_keys_workers_have_always_read() {
        let config = RunConfig {
            backend: "http://127.0.0.1:1".into(),
            backends: vec![],
            mission_id: None,
            profile: LoadProfile {
                users: 6,
                run_time_secs: 4,
                stages: vec![Stage { secs: 4, users: 6 }],
                rate: Some(2.5),
            },
            workload: workload(),
            goose_report: false,
        };
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            json,
            json!({
                "backend": "http://127.0.0.1:1", "backends": [], "mission_id": null,
                "users": 6, "run_time_secs": 4, "stages": [{"secs": 4, "users": 6}], "rate": 2.5,
                "workload": {"origin": "bundled:health", "text": "name = \"health\"", "files": {}}
            })
        );
        assert_eq!(serde_json::from_value::<RunConfig>(json).unwrap(), config);
    }

    #[test]
    fn a_run_config_written_before_the_profile_was_one_struct_still_reads() {
        let written = json!({
            "backend": "http://127.0.0.1:1", "backends": [], "mission_id": null,
            "users": 10, "run_time_secs": 30, "stages": [], "rate": null,
            "workload": {"origin": "bundled:health", "text": "name = \"health\"", "files": {}}
        });
        let config: RunConfig = serde_json::from_value(written).unwrap();
        assert_eq!(config.profile, LoadProfile { users: 10, run_time_secs: 30, stages: vec![], rate: None });
    }
}
