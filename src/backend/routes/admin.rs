//! Fault injection, for admins only, and only on a server started with
//! `--enable-faults`. See `backend::faults`.

use crate::api::admin::{FaultKind, FaultRequest, FaultsView};
use crate::backend::auth::{Admins, Admitted};
use crate::backend::domain::FieldError;
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::extract::{ApiJson, ApiQuery};

use crate::backend::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

#[utoipa::path(post, path = "/api/admin/faults", tag = "admin", request_body = FaultRequest, security(("bearer" = [])),
    responses((status = 200, body = FaultsView), (status = 403, body = ErrorBody)))]
pub async fn set(
    State(state): State<AppState>,
    _caller: Admitted<Admins>,
    ApiJson(request): ApiJson<FaultRequest>,
) -> Result<Json<FaultsView>, ApiError> {
    match request.kind {
        FaultKind::Chaos { rate } if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) => {
            Err(FieldError::new("kind.chaos.rate", "must be from 0 to 1").into())
        }
        FaultKind::SabotageVerification { count } if !(1..=1_000_000).contains(&count) => {
            Err(FieldError::new("kind.sabotage_verification.count", "must be from 1 to 1000000").into())
        }
        kind => {
            let client = state.pool.get().await?;
            Ok(Json(state.faults.set(&client, request.mission_id, &kind).await?))
        }
    }
}

#[utoipa::path(get, path = "/api/admin/faults", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = FaultsView), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _caller: Admitted<Admins>) -> Result<Json<FaultsView>, ApiError> {
    let client = state.pool.get().await?;
    Ok(Json(state.faults.view(&client).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClearScope {
    /// Clear this mission's faults; the global ones when absent.
    pub mission_id: Option<Uuid>,
    /// Clear every fault of every scope.
    #[serde(default)]
    pub all: bool,
}

#[utoipa::path(delete, path = "/api/admin/faults", tag = "admin", security(("bearer" = [])), params(ClearScope),
    responses((status = 200, body = FaultsView), (status = 403, body = ErrorBody)))]
pub async fn clear(
    State(state): State<AppState>,
    _caller: Admitted<Admins>,
    ApiQuery(scope): ApiQuery<ClearScope>,
) -> Result<Json<FaultsView>, ApiError> {
    let client = state.pool.get().await?;
    Ok(Json(state.faults.clear(&client, scope.mission_id, scope.all).await?))
}
