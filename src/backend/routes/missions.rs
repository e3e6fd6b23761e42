//! Missions: what every contract, chat and task belongs to.

use crate::api::missions::{ContractSummary, Mission, NewMission};
use crate::backend::auth::Caller;
use crate::backend::domain::bounded_text;
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::extract::{parse_id, ApiJson};
use crate::backend::state::AppState;
use crate::spec::Role;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tokio_postgres::Row;
use uuid::Uuid;

pub const MISSION_COLUMNS: &str = "id, name, goal, status, total_actions, completed_actions, failed_actions, \
     rolled_back_actions, progress_ratio, confidence, created_at, updated_at";

impl From<&Row> for Mission {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            name: row.get(1),
            goal: row.get(2),
            status: row.get(3),
            total_actions: row.get(4),
            completed_actions: row.get(5),
            failed_actions: row.get(6),
            rolled_back_actions: row.get(7),
            progress_ratio: row.get(8),
            confidence: row.get(9),
            created_at: row.get(10),
            updated_at: row.get(11),
        }
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
        return Ok((StatusCode::CREATED, Json(Mission::from(&row))));
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
    Ok(Mission::from(&row))
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
    Ok(Json(
        rows.iter()
            .map(|r| ContractSummary {
                id: r.get(0),
                error_type: r.get(1),
                action_type: r.get(2),
                tier: r.get(3),
                confidence: r.get(4),
                confidence_path: r.get(5),
                status: r.get(6),
                created_at: r.get(7),
            })
            .collect(),
    ))
}
