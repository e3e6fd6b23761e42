//! Grace: a Postgres-backed, distributed load tester and production-scenario
//! validator, and the backend it validates (see `docs/design.md` and the
//! README).
//!
//! # Layout
//! - [`api`]: the backend's HTTP API as types, shared by the backend and its client.
//! - [`backend`]: the system under test, `grace serve` (its own module list).
//! - [`cli`]: the `grace` command line; parses options into domain types and
//!   maps outcomes to exit codes.
//! - [`client`]: the one client of the backend's HTTP API (timeout, retries,
//!   tokens, typed answers).
//! - [`control`]: distributed load through Postgres — `grace worker`,
//!   `grace load`, merged results and the acknowledged-writes check (C7).
//! - [`console`]: stdout for results, quiet when its reader has gone.
//! - [`configuration`]: settings parsed at the edge (the redacting
//!   `DatabaseUrl`, `BackendUrl`, `Tokens` by role).
//! - [`db`]: connecting, embedded migrations, the expected schema, rows read
//!   by name, and the private PostgreSQL started when no database is configured.
//! - [`bootstrap`]: `grace bootstrap`, which migrates and seeds, idempotently.
//! - [`health`]: `grace health`, the fitness checklist.
//! - [`immutable_log`]: appending to and verifying the hash-chained log.
//! - [`scenario`]: `grace scenario`, the 8 phases — the main job.
//! - [`report`]: the scenario's reports (JSON, HTML, JUnit), what is computed
//!   over a run (aggregates, trends, the verdict), `grace report`.
//! - [`shutdown`]: turning SIGINT/SIGTERM into one cancellation token.
//! - [`specification`]: what "correct" means — tiers, roles, statuses, required events,
//!   the contract digest — read by the backend and the validator alike.
//! - [`verify`]: the consistency conditions C1–C7, as SQL (`grace verify`).

pub mod api;
pub mod backend;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod configuration;
pub mod console;
pub mod control;
pub mod db;
pub mod health;
pub mod immutable_log;
pub mod report;
pub mod scenario;
pub mod shutdown;
pub mod specification;
pub mod verify;
