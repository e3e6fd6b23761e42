//! Missions: what every contract, chat and task belongs to.

use crate::api::missions::{ContractSummary, Mission, NewMission};
use crate::backend::auth::{Admitted, Caller, Operators};
use crate::backend::domain::{bounded_text, optional_text};
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::extract::{parse_id, ApiJson, ApiQuery, PathId};
use crate::backend::prepared::Prepared;
use crate::backend::routes::paging::{page_limit, Filters};
use crate::backend::state::AppState;
use crate::db::rows::FromRow;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use tokio_postgres::Row;
use utoipa::IntoParams;
use uuid::Uuid;

/// A mission as the API shows it: its row and its progress.
const MISSION: &str = "SELECT m.id, m.name, m.goal, m.status, p.total_actions, p.completed_actions, p.failed_actions,
            p.rolled_back_actions, p.progress_ratio, p.confidence, m.created_at, m.updated_at
       FROM missions m JOIN mission_progress p ON p.mission_id = m.id";

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
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _caller: Admitted<Operators>,
    ApiJson(body): ApiJson<NewMission>,
) -> Result<(StatusCode, Json<Mission>), ApiError> {
    let name = bounded_text("name", &body.name, 200)?;
    let goal = optional_text("goal", &body.goal, 4000)?;
    let id = body.id.unwrap_or_else(Uuid::new_v4);
    state.faults.chaos(Some(id), "request")?;
    let client = state.pool.get().await?;
    let inserted = client
        .execute(
            "INSERT INTO missions (id, name, goal) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            &[&id, &name, &goal],
        )
        .await?;
    let existing = fetch(&**client, id).await?;
    if inserted == 1 {
        Ok((StatusCode::CREATED, Json(existing)))
    } else if existing.name == name {
        Ok((StatusCode::OK, Json(existing)))
    } else {
        Err(ApiError::Conflict(format!("mission {id} already exists with another name")))
    }
}

pub async fn fetch(client: &impl tokio_postgres::GenericClient, id: Uuid) -> Result<Mission, ApiError> {
    let row = client
        .query_opt(&format!("{MISSION} WHERE m.id = $1"), &[&id])
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
    PathId(id): PathId,
) -> Result<Json<Mission>, ApiError> {
    let id = parse_id("mission", &id)?;
    Ok(Json(fetch(&**state.pool.get().await?, id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContractPage {
    /// The last contract of the previous page (pages are in creation order);
    /// one that is not this mission's is a 404.
    pub after: Option<Uuid>,
    /// Contracts per page (1-1000, default 100); a shorter page is the last.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/missions/{id}/contracts", tag = "missions", operation_id = "mission_contracts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "mission id"), ContractPage),
    responses((status = 200, body = Vec<ContractSummary>), (status = 404, body = ErrorBody, description = "no such mission, or `after` names no contract of it")))]
pub async fn contracts(
    State(state): State<AppState>,
    _caller: Caller,
    PathId(id): PathId,
    ApiQuery(page): ApiQuery<ContractPage>,
) -> Result<Json<Vec<ContractSummary>>, ApiError> {
    let id = parse_id("mission", &id)?;
    let limit = page_limit(page.limit)?;
    let client = state.pool.get().await?;
    fetch(&**client, id).await?;
    let (sql, params) = Filters::default()
        .and("mission_id = $?", Some(&id))
        .and("(created_at, id) > (SELECT created_at, id FROM action_contracts WHERE id = $?)", page.after.as_ref())
        .statement(
            "SELECT id, error_type, action_type, tier, confidence, confidence_path, status, created_at
               FROM action_contracts WHERE {where} ORDER BY created_at, id LIMIT {limit}",
            &limit,
        );
    let rows = client.all(&sql, &params).await?;
    if let (true, Some(after)) = (rows.is_empty(), page.after) {
        let exists = "SELECT 1 FROM action_contracts WHERE id = $1 AND mission_id = $2";
        if client.query_opt(exists, &[&after, &id]).await?.is_none() {
            return Err(ApiError::not_found("contract in this mission", after));
        }
    }
    Ok(Json(rows.iter().map(ContractSummary::from_row).collect::<Result<_, _>>()?))
}
