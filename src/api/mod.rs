//! The backend's HTTP API as types: every body it accepts or answers with, in
//! one place that both sides read — the backend serializes them (and documents
//! them in its OpenAPI document), the client (`client`) deserializes them. A
//! field renamed here is renamed for both, and no caller reads the API as
//! untyped JSON.
//!
//! One file per route group, as under `backend::routes`.

pub mod actions;
pub mod admin;
pub mod log;
pub mod missions;
pub mod service;
pub mod traffic;
