//! Missions: what every contract, chat and task belongs to.

use crate::api::missions::{ContractSummary, Mission, NewMission};
use crate::backend::auth::Caller;
use crate::backend::domain::bounded_text;
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::extract::{parse_id, ApiJson};
use crate::backend::state::AppState;
use crate::db::rows::FromRow;
use crate::specification::Role;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tokio_postgres::Row;
use uuid::Uuid;

pub const MISSION_COLUMNS: &str = "id, name, goal, status, total_actions, completed_actions, failed_actions, \
     rolled_back_actions, progress_ratio, confidence, created_at, updated_at";

impl FromRow for Mission {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            goal: row.try_get("goal")?,
            status: row.try_get("status")?,
            total_actions: row.try_get("total_actions")?,
            completed_actions: row.try_get("completed_actions")?,
            failed_actions: row.try_get("failed_actions")?,
            rolled_back_actions: row.try_get("rolled_back_actions")?,
            progress_ratio: row.try_get("progress_ratio")?,
            confidence: row.try_get("confidence")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl FromRow for ContractSummary {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            error_type: row.try_get("error_type")?,
            action_type: row.try_get("action_type")?,
            tier: row.try_get("tier")?,
            confidence: row.try_get("confidence")?,
            confidence_path: row.try_get("confidence_path")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// Creates a mission. Repeating a creation with the same id and name returns
/// the existing mission (200); the same id with another name is a 409.
#[utoipa::path(post, path = "/api/missions", tag = "missions", request_body = NewMission,
    security(("bearer" = [])),
    responses((status = 201, body = Mission), (status = 200, body = Mission, description = "already existed"),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewMission>,
) -> Result<(StatusCode, Json<Mission>), ApiError> {
    caller.require(&[Role::Operator])?;
    let name = bounded_text("name", &body.name, 200)?;
    let id = body.id.unwrap_or_else(Uuid::new_v4);
    state.faults.chaos(Some(id), "request")?;
    let client = state.pool.get().await?;
    let inserted = client
        .query_opt(
            &format!(
                "INSERT INTO missions (id, name, goal) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING RETURNING {MISSION_COLUMNS}"
            ),
            &[&id, &name, &body.goal],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok((StatusCode::CREATED, Json(Mission::from_row(&row)?)));
    }
    let existing = fetch(&**client, id).await?;
    if existing.name == name {
        Ok((StatusCode::OK, Json(existing)))
    } else {
        Err(ApiError::Conflict(format!("mission {id} already exists with another name")))
    }
}

pub async fn fetch(client: &impl tokio_postgres::GenericClient, id: Uuid) -> Result<Mission, ApiError> {
    let row = client
        .query_opt(&format!("SELECT {MISSION_COLUMNS} FROM missions WHERE id = $1"), &[&id])
        .await?
        .ok_or_else(|| ApiError::not_found("mission", id))?;
    Ok(Mission::from_row(&row)?)
}

#[utoipa::path(get, path = "/api/missions/{id}", tag = "missions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "mission id")),
    responses((status = 200, body = Mission), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Mission>, ApiError> {
    let id = parse_id("mission", &id)?;
    Ok(Json(fetch(&**state.pool.get().await?, id).await?))
}

#[utoipa::path(get, path = "/api/missions/{id}/contracts", tag = "missions", operation_id = "mission_contracts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "mission id")),
    responses((status = 200, body = Vec<ContractSummary>), (status = 404, body = ErrorBody)))]
pub async fn contracts(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<ContractSummary>>, ApiError> {
    let id = parse_id("mission", &id)?;
    let client = state.pool.get().await?;
    fetch(&**client, id).await?;
    let rows = client
        .query(
            "SELECT id, error_type, action_type, tier, confidence, confidence_path, status, created_at
               FROM action_contracts WHERE mission_id = $1 ORDER BY created_at, id",
            &[&id],
        )
        .await?;
    Ok(Json(rows.iter().map(ContractSummary::from_row).collect::<Result<_, _>>()?))
}
