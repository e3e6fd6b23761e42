//! The Grace backend under test (`grace serve`), and what it shares with the
//! tool that validates it: what "correct" means, the database and its
//! migrations, the configuration parsed at the edge, the immutable log. The
//! tool (crate `grace`) re-exports every module here under the same name, so
//! `grace::backend`, `grace::db` and the rest read as one house.
//!
//! It is a crate of its own so that it compiles while goose does: nothing here
//! needs the load generator.
//!
//! - [`api`]: the backend's HTTP API as types, shared by the backend and its client.
//! - [`backend`]: the system under test (its own module list).
//! - [`bootstrap`]: `grace bootstrap`, which migrates and seeds, idempotently.
//! - [`configuration`]: settings parsed at the edge (the redacting
//!   `DatabaseUrl`, `BackendUrl`, `Tokens` by role).
//! - [`db`]: connecting, embedded migrations, the expected schema, rows read
//!   by name, and the private PostgreSQL started when no database is configured.
//! - [`immutable_log`]: appending to and verifying the hash-chained log.
//! - [`specification`]: what "correct" means — tiers, roles, statuses, required
//!   events, the contract digest — read by the backend and the validator alike.

pub mod api;
pub mod backend;
pub mod bootstrap;
pub mod configuration;
pub mod db;
pub mod immutable_log;
pub mod specification;
