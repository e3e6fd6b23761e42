//! The Grace backend (`grace serve`): the system under test. An HTTP API over
//! Postgres that turns detected errors into agentic actions and keeps every
//! promise of docs/design.md's action pipeline checkable in the database.
//!
//! # Layout
//! - [`startup`]: build (bootstrap, pool, bind) and run with graceful shutdown.
//! - [`connections`]: how many client connections are held, and for how long;
//!   [`unparsable`]: JSON answers to requests hyper cannot parse.
//! - [`routes`]: the HTTP surface, middleware and the OpenAPI document.
//! - [`domain`]: request vocabulary parsed at the edge (`ErrorType`, `Confidence`…).
//! - [`pipeline`]: errors → contracts → snapshots, approvals, execution,
//!   verification, rollback; one transaction per operation.
//! - [`policy`]: the tier policy's rules, kept and checked by every contract's statement.
//! - [`verification`]: benchmarks against the golden baseline.
//! - [`events`]: recording events, which are the log's outbox.
//! - [`counters`]: the per-mission counters the read models come from; [`tally`]:
//!   a pipeline operation's events and counts, its closing statement.
//! - [`sequencer`]: the single leader that chains pending events into the log.
//! - [`mesh`]: the Trigger Mesh and its Postgres LISTEN/NOTIFY bridge.
//! - [`task_runner`]: completes queued tasks (`FOR UPDATE SKIP LOCKED`).
//! - [`faults`]: fault injection, retries with backoff, the circuit breaker.
//! - [`auth`]: roles by bearer token.
//! - [`telemetry`]: Prometheus metrics.
//! - [`error`], [`extract`], [`state`]: the API's error type, extractors and shared state.
//! - [`prepared`]: statements prepared once per connection.

pub mod auth;
pub mod connections;
pub mod counters;
pub mod domain;
pub mod error;
pub mod events;
pub mod extract;
pub mod faults;
pub mod mesh;
pub mod pipeline;
pub mod policy;
pub mod prepared;
pub mod routes;
pub mod sequencer;
pub mod startup;
pub mod state;
pub mod tally;
pub mod task_runner;
pub mod telemetry;
pub mod unparsable;
pub mod verification;

pub use startup::{Application, ServeSettings, StartupError};
