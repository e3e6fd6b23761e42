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

/// The one status a task change may set (`TaskChange::status`), as a schema.
fn only_cancelled() -> utoipa::openapi::schema::Object {
    use crate::specification::TaskStatus;
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([TaskStatus::Cancelled.as_str()]))
        .build()
}
