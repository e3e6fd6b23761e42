//! Read models over the pipeline: the metric summary and the verification
//! reads the load sends (and operators use to see what happened).

use crate::backend::auth::Caller;
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::extract::ApiQuery;
use crate::backend::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MissionScope {
    /// Limit to one mission; all missions when absent.
    pub mission_id: Option<Uuid>,
    /// Rows to return from list endpoints (1-500, default 50).
    pub limit: Option<i64>,
}

impl MissionScope {
    fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=500).contains(&n) => Ok(n),
            Some(_) => Err(crate::backend::domain::FieldError::new("limit", "must be from 1 to 500").into()),
        }
    }
}

/// Runs a query whose single row has one column, `document`: a JSON document.
async fn json_document(
    state: &AppState,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Json<Value>, ApiError> {
    let row = state.pool.get().await?.query_one(sql, params).await?;
    Ok(Json(row.try_get("document")?))
}

/// The latest rows of a verification read: `sql` takes the mission ($1, or
/// null for all) and the limit ($2) and returns one JSON array.
async fn latest(state: &AppState, scope: &MissionScope, sql: &str) -> Result<Json<Value>, ApiError> {
    let limit = scope.limit()?;
    json_document(state, sql, &[&scope.mission_id, &limit]).await
}

/// Action rates, rollback frequency, confidence trend and counts.
#[utoipa::path(get, path = "/api/metrics/summary", tag = "insights", security(("bearer" = [])), params(MissionScope),
    responses((status = 200, body = Object), (status = 422, body = ErrorBody)))]
pub async fn summary(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<MissionScope>,
) -> Result<Json<Value>, ApiError> {
    json_document(
        &state,
        "WITH c AS (SELECT * FROM action_contracts WHERE $1::uuid IS NULL OR mission_id = $1),
              window_ AS (SELECT greatest(extract(epoch FROM max(created_at) - min(created_at)), 1) AS seconds FROM c)
         SELECT jsonb_build_object(
            'mission_id', $1::uuid,
            'contracts', (SELECT count(*) FROM c),
            'by_status', coalesce((SELECT jsonb_object_agg(status, n) FROM
                            (SELECT status, count(*) AS n FROM c GROUP BY status) s), '{}'),
            'by_tier', coalesce((SELECT jsonb_object_agg(tier, n) FROM
                            (SELECT tier, count(*) AS n FROM c GROUP BY tier) t), '{}'),
            'action_rate_per_second', (SELECT count(*) FROM c) / (SELECT seconds FROM window_),
            'rollback_frequency', coalesce((SELECT count(*) FILTER (WHERE status = 'rolled_back')::float8
                                                   / nullif(count(*) FILTER (WHERE executed_at IS NOT NULL), 0) FROM c), 0),
            'confidence_trend', coalesce((SELECT jsonb_agg(jsonb_build_object('minute', minute, 'avg_confidence', avg_c)
                                                            ORDER BY minute)
                                            FROM (SELECT date_trunc('minute', created_at) AS minute, avg(confidence) AS avg_c
                                                    FROM c GROUP BY 1) m), '[]'),
            'chat_messages', (SELECT count(*) FROM chat_messages WHERE $1::uuid IS NULL OR mission_id = $1),
            'tasks', (SELECT count(*) FROM tasks WHERE $1::uuid IS NULL OR mission_id = $1),
            'events', (SELECT count(*) FROM action_events WHERE $1::uuid IS NULL OR mission_id = $1)) AS document",
        &[&scope.mission_id],
    )
    .await
}

/// Counts of every verification artifact.
#[utoipa::path(get, path = "/api/verification/stats", tag = "insights", security(("bearer" = [])), params(MissionScope),
    responses((status = 200, body = Object)))]
pub async fn stats(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<MissionScope>,
) -> Result<Json<Value>, ApiError> {
    json_document(
        &state,
        "WITH c AS (SELECT id, status FROM action_contracts WHERE $1::uuid IS NULL OR mission_id = $1)
         SELECT jsonb_build_object(
            'contracts', (SELECT count(*) FROM c),
            'verified', (SELECT count(*) FROM c WHERE status = 'verified'),
            'rolled_back', (SELECT count(*) FROM c WHERE status = 'rolled_back'),
            'snapshots', (SELECT count(*) FROM safe_hold_snapshots WHERE contract_id IN (SELECT id FROM c)),
            'snapshots_restored', (SELECT count(*) FROM safe_hold_snapshots
                                    WHERE status = 'restored' AND contract_id IN (SELECT id FROM c)),
            'benchmarks', (SELECT count(*) FROM benchmark_runs WHERE contract_id IN (SELECT id FROM c)),
            'benchmarks_failed', (SELECT count(*) FROM benchmark_runs
                                   WHERE NOT passed AND contract_id IN (SELECT id FROM c)),
            'approvals', (SELECT count(*) FROM approval_requests WHERE contract_id IN (SELECT id FROM c))) AS document",
        &[&scope.mission_id],
    )
    .await
}

/// The latest contracts with their verification results.
#[utoipa::path(get, path = "/api/verification/contracts", tag = "insights", operation_id = "verification_contracts", security(("bearer" = [])),
    params(MissionScope), responses((status = 200, body = Object)))]
pub async fn contracts(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<MissionScope>,
) -> Result<Json<Value>, ApiError> {
    latest(
        &state,
        &scope,
        "SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.created_at DESC), '[]') AS document FROM (
            SELECT id, mission_id, error_type, tier, status, verification_result, created_at FROM action_contracts
             WHERE $1::uuid IS NULL OR mission_id = $1 ORDER BY created_at DESC LIMIT $2) c",
    )
    .await
}

/// The latest snapshots.
#[utoipa::path(get, path = "/api/verification/snapshots", tag = "insights", security(("bearer" = [])),
    params(MissionScope), responses((status = 200, body = Object)))]
pub async fn snapshots(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<MissionScope>,
) -> Result<Json<Value>, ApiError> {
    latest(
        &state,
        &scope,
        "SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.created_at DESC), '[]') AS document FROM (
            SELECT s.id, s.contract_id, s.manifest_hash, s.status, s.created_at, s.restored_at
              FROM safe_hold_snapshots s JOIN action_contracts c ON c.id = s.contract_id
             WHERE $1::uuid IS NULL OR c.mission_id = $1 ORDER BY s.created_at DESC LIMIT $2) s",
    )
    .await
}

/// The latest benchmark runs.
#[utoipa::path(get, path = "/api/verification/benchmarks", tag = "insights", security(("bearer" = [])),
    params(MissionScope), responses((status = 200, body = Object)))]
pub async fn benchmarks(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<MissionScope>,
) -> Result<Json<Value>, ApiError> {
    latest(
        &state,
        &scope,
        "SELECT coalesce(jsonb_agg(to_jsonb(b) ORDER BY b.created_at DESC), '[]') AS document FROM (
            SELECT b.id, b.contract_id, b.kind, b.metrics, b.passed, b.drift_detected, b.created_at
              FROM benchmark_runs b JOIN action_contracts c ON c.id = b.contract_id
             WHERE $1::uuid IS NULL OR c.mission_id = $1 ORDER BY b.created_at DESC LIMIT $2) b",
    )
    .await
}
