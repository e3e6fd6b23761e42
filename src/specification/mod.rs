//! The specification: what "correct" means for the Grace backend, written once
//! and read by both sides — the backend, which must behave so, and the
//! validator (`verify`, `scenario`), which checks that it did. The validator
//! never asks the backend's implementation what is right; both ask this module.
//!
//! - [`policy`]: autonomy tiers, the shipped error-type policy, confidence
//!   paths, how they decide a contract's tier and which benchmark verifies it.
//! - [`roles`]: the roles a token can have, and who may decide an approval of
//!   each tier.
//! - [`status`]: the states of contracts, approvals, tasks and snapshots, and
//!   which mission counter a contract's final state moves (C5).
//! - [`events`]: every event's name, and the exact sequence of events each
//!   tier and final status requires (C2).
//! - [`contract`]: the digest that pins a contract's terms between writing and
//!   execution (C4).

pub mod contract;
pub mod events;
pub mod policy;
pub mod roles;
pub mod status;

pub use contract::contract_digest;
pub use events::{required_events, EventKind};
pub use policy::{decide_tier, BenchmarkKind, ConfidencePath, Tier, TierDecision, DEFAULT_POLICY};
pub use roles::{deciders, Role, DECIDING_ROLES};
pub use status::{ApprovalStatus, ContractStatus, Decision, MissionCounter, Severity, SnapshotStatus, TaskStatus};
