//! The states of the control plane's rows, spelled once (docs/design.md,
//! "Distributed load through Postgres"): what a worker, a run and a worker's
//! share of a run can be. Statements bind them as parameters rather than
//! spell them, so a state the schema's CHECK does not know cannot be written
//! from here, and one read back that is not among them is an error.

use crate::db::rows::stored_as_text;
use crate::specification::status::text_enum;

text_enum! {
    /// A `grace worker` process (`control.workers.status`).
    WorkerStatus, "worker status" {
        /// Registered and waiting for a share.
        Idle = "idle",
        /// Running a share.
        Running = "running",
        /// Silent past the heartbeat timeout, or no upload in time.
        Lost = "lost",
        /// Shut down cleanly.
        Stopped = "stopped",
    }
}

text_enum! {
    /// A run (`control.runs.status`): waiting → running → (stopping →)
    /// merging → completed, or failed.
    RunStatus, "run status" {
        /// Created, its workers not yet claimed.
        Waiting = "waiting",
        Running = "running",
        /// Interrupted: its workers end their load and upload what they have.
        Stopping = "stopping",
        Merging = "merging",
        Completed = "completed",
        Failed = "failed",
    }
}

text_enum! {
    /// A worker's share of a run (`control.run_workers.status`).
    ShareStatus, "share status" {
        /// Given to the worker, not yet claimed by it.
        Assigned = "assigned",
        Running = "running",
        /// Its results are uploaded.
        Done = "done",
        Lost = "lost",
    }
}

stored_as_text!(WorkerStatus, RunStatus, ShareStatus);

impl RunStatus {
    /// A run whose workers are (still) to run their shares.
    pub const UNDER_WAY: &'static [Self] = &[Self::Running, Self::Stopping];
}

impl ShareStatus {
    /// A share whose worker owes the run an upload.
    pub const OUTSTANDING: &'static [Self] = &[Self::Assigned, Self::Running];
}
