//! Grace: a Postgres-backed, distributed load tester and production-scenario
//! validator, and the backend it validates (see `../shared/DESIGN.md` in the
//! project's shared folder and the README).
//!
//! # Layout
//! The backend under test and what it shares with this tool are the crate
//! `grace-backend` (`backend/`), re-exported here under their own names:
//! [`api`], [`backend`], [`bootstrap`], [`configuration`], [`db`],
//! [`immutable_log`], [`specification`] (see that crate's list). Here:
//! - [`cli`]: the `grace` command line; parses options into domain types and
//!   maps outcomes to exit codes.
//! - [`client`]: the one client of the backend's HTTP API (timeout, retries,
//!   tokens, typed answers).
//! - [`control`]: distributed load through Postgres — `grace worker`,
//!   `grace load`, merged results and the acknowledged-writes check (C7).
//! - [`console`]: stdout for results, quiet when its reader has gone.
//! - [`health`]: `grace health`, the fitness checklist.
//! - [`scenario`]: `grace scenario`, the 8 phases — the main job.
//! - [`report`]: the scenario's reports (JSON, HTML, JUnit), what is computed
//!   over a run (aggregates, trends, the verdict), `grace report`.
//! - [`shutdown`]: turning SIGINT/SIGTERM into one cancellation token.
//! - [`verify`]: the consistency conditions C1–C7, as SQL (`grace verify`).

pub mod cli;
pub mod client;
pub mod console;
pub mod control;
pub mod health;
pub mod report;
pub mod scenario;
pub mod shutdown;
pub mod verify;

pub use grace_backend::{api, backend, bootstrap, configuration, db, immutable_log, specification};
