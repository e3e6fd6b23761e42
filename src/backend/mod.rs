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

pub use startup::{default_pool_size, Application, ServeSettings, StartupError};

/// The statements the backend assembles from parts at first use (the
/// counters' fragment, the events' CTEs, a template made into its shapes),
/// by name: `tests/integration/statements.rs` prepares them against the
/// schema along with the statements the source spells whole.
#[doc(hidden)]
pub fn assembled_statements() -> Vec<(&'static str, &'static str)> {
    use routes::insights;
    let mut statements = vec![
        ("routes::traffic::CHAT", routes::traffic::CHAT.as_str()),
        ("routes::traffic::SUBMIT_TASK", routes::traffic::SUBMIT_TASK.as_str()),
        ("events::RECORD", events::RECORD.as_str()),
        ("tally::APPLY", tally::APPLY.as_str()),
        ("pipeline::CONTRACT", pipeline::CONTRACT.as_str()),
        ("pipeline::EXECUTED_CONTRACT", pipeline::EXECUTED_CONTRACT.as_str()),
    ];
    for (name, shapes) in [
        ("routes::insights::SUMMARY", &*insights::SUMMARY),
        ("routes::insights::STATS", &*insights::STATS),
        ("routes::insights::CONTRACTS", &*insights::CONTRACTS),
        ("routes::insights::SNAPSHOTS", &*insights::SNAPSHOTS),
        ("routes::insights::BENCHMARKS", &*insights::BENCHMARKS),
    ] {
        statements.extend(shapes.both().map(|sql| (name, sql)));
    }
    statements
}
