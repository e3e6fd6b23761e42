//! The action pipeline's API: reporting errors, reading contracts, deciding
//! approvals. The pipeline itself lives in `backend::pipeline`.

use crate::api::actions::{
    Approval, Benchmark, ContractDetail, ContractEvent, ContractReceipt, DecisionBody, DecisionOutcome,
    ErrorReportBody, Snapshot, REPLAYED_HEADER,
};
use crate::backend::auth::{Admitted, Caller, Deciders, Operators};
use crate::backend::domain::{bounded_text, Confidence, ErrorType, IdempotencyKey};
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::extract::{parse_id, ApiJson, ApiQuery, PathId};
use crate::backend::pipeline::{self, ErrorReport};
use crate::backend::prepared::Prepared;
use crate::backend::routes::paging::{page_limit, Filters};
use crate::backend::state::AppState;
use crate::db::rows::FromRow;
use crate::specification::ApprovalStatus;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde::Deserialize;
use tokio_postgres::Row;
use utoipa::IntoParams;
use uuid::Uuid;

impl TryFrom<ErrorReportBody> for ErrorReport {
    type Error = ApiError;

    fn try_from(body: ErrorReportBody) -> Result<Self, ApiError> {
        Ok(Self {
            mission_id: body.mission_id,
            error_type: ErrorType::parse(&body.error_type)?,
            message: bounded_text("message", &body.message, 4000)?,
            severity: body.severity,
            confidence: Confidence::parse(body.confidence)?,
            idempotency_key: IdempotencyKey::parse(&body.idempotency_key)?,
        })
    }
}

/// Reports an error. Answers 202 with the contract it became; a retry with the
/// same idempotency key answers with the same contract and writes nothing.
#[utoipa::path(post, path = "/api/errors", tag = "actions", request_body = ErrorReportBody,
    security(("bearer" = [])),
    responses((status = 202, body = ContractReceipt), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn report_error(
    State(state): State<AppState>,
    _caller: Admitted<Operators>,
    ApiJson(body): ApiJson<ErrorReportBody>,
) -> Result<(StatusCode, HeaderMap, Json<ContractReceipt>), ApiError> {
    let report = ErrorReport::try_from(body)?;
    let (receipt, created) = pipeline::submit_error(&state, &report).await?;
    Ok((StatusCode::ACCEPTED, replay_headers(!created), Json(receipt)))
}

pub fn replay_headers(replayed: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    headers
}

const APPROVAL_COLUMNS: &str = "a.id, a.contract_id, c.mission_id, a.tier, a.status, a.requested_by, a.decided_by, \
     a.reason, a.requested_at, a.decided_at";

impl FromRow for Approval {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            contract_id: row.try_get("contract_id")?,
            mission_id: row.try_get("mission_id")?,
            tier: row.try_get("tier")?,
            status: row.try_get("status")?,
            requested_by: row.try_get("requested_by")?,
            decided_by: row.try_get("decided_by")?,
            reason: row.try_get("reason")?,
            requested_at: row.try_get("requested_at")?,
            decided_at: row.try_get("decided_at")?,
        })
    }
}

impl FromRow for Benchmark {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            metrics: row.try_get("metrics")?,
            passed: row.try_get("passed")?,
            drift_detected: row.try_get("drift_detected")?,
        })
    }
}

impl FromRow for ContractEvent {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            event_type: row.try_get("event_type")?,
            log_seq: row.try_get("log_seq")?,
            payload: row.try_get("payload")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A contract with everything it produced: snapshot, approval, benchmarks, events.
#[utoipa::path(get, path = "/api/contracts/{id}", tag = "actions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "contract id")),
    responses((status = 200, body = ContractDetail), (status = 404, body = ErrorBody)))]
pub async fn contract(
    State(state): State<AppState>,
    _caller: Caller,
    PathId(id): PathId,
) -> Result<Json<ContractDetail>, ApiError> {
    let id = parse_id("contract", &id)?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT c.id, c.mission_id, c.error_type, c.error_message, c.severity, c.action_type, c.policy_tier,
                    c.tier, c.confidence, c.confidence_path, c.escalation_reason, c.expected_effect,
                    c.baseline_state, c.status, c.verification_result, c.contract_digest, c.created_at,
                    c.decided_at, c.executed_at, c.verified_at,
                    s.id AS snapshot_id, s.state AS snapshot_state, s.manifest_hash AS snapshot_manifest_hash,
                    s.status AS snapshot_status, s.restored_at AS snapshot_restored_at
               FROM action_contracts c
               LEFT JOIN safe_hold_snapshots s ON s.id = c.snapshot_id
              WHERE c.id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("contract", id))?;
    // Issued together: one connection pipelines them in one round trip.
    let approval_sql = format!(
        "SELECT {APPROVAL_COLUMNS} FROM approval_requests a JOIN action_contracts c ON c.id = a.contract_id
          WHERE a.contract_id = $1"
    );
    let by_contract: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&id];
    let (approval, benchmarks, events) = tokio::try_join!(
        client.query_opt(&approval_sql, by_contract),
        client.query(
            "SELECT id, kind, metrics, passed, drift_detected FROM benchmark_runs WHERE contract_id = $1
              ORDER BY created_at, id",
            by_contract,
        ),
        client.query(
            "SELECT id, event_type, log_seq, payload, created_at FROM action_events WHERE contract_id = $1 ORDER BY id",
            by_contract,
        ),
    )?;
    let snapshot = match row.try_get::<_, Option<Uuid>>("snapshot_id")? {
        None => None,
        Some(id) => Some(Snapshot {
            id,
            state: row.try_get("snapshot_state")?,
            manifest_hash: row.try_get("snapshot_manifest_hash")?,
            status: row.try_get("snapshot_status")?,
            restored_at: row.try_get("snapshot_restored_at")?,
        }),
    };
    Ok(Json(ContractDetail {
        id: row.try_get("id")?,
        mission_id: row.try_get("mission_id")?,
        error_type: row.try_get("error_type")?,
        error_message: row.try_get("error_message")?,
        severity: row.try_get("severity")?,
        action_type: row.try_get("action_type")?,
        policy_tier: row.try_get("policy_tier")?,
        tier: row.try_get("tier")?,
        confidence: row.try_get("confidence")?,
        confidence_path: row.try_get("confidence_path")?,
        escalation_reason: row.try_get("escalation_reason")?,
        expected_effect: row.try_get("expected_effect")?,
        baseline_state: row.try_get("baseline_state")?,
        status: row.try_get("status")?,
        verification_result: row.try_get("verification_result")?,
        contract_digest: row.try_get("contract_digest")?,
        created_at: row.try_get("created_at")?,
        decided_at: row.try_get("decided_at")?,
        executed_at: row.try_get("executed_at")?,
        verified_at: row.try_get("verified_at")?,
        snapshot,
        approval: approval.as_ref().map(Approval::from_row).transpose()?,
        benchmarks: benchmarks.iter().map(Benchmark::from_row).collect::<Result<_, _>>()?,
        events: events.iter().map(ContractEvent::from_row).collect::<Result<_, _>>()?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFilter {
    pub mission_id: Option<Uuid>,
    pub status: Option<ApprovalStatus>,
    /// The last approval of the previous page (pages are in request order);
    /// one that does not exist is a 404.
    pub after: Option<Uuid>,
    /// Approvals per page (1-1000, default 100); a shorter page is the last.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/approvals", tag = "actions", security(("bearer" = [])),
    params(ApprovalFilter),
    responses((status = 200, body = Vec<Approval>), (status = 404, body = ErrorBody, description = "`after` names no approval")))]
pub async fn approvals(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(filter): ApiQuery<ApprovalFilter>,
) -> Result<Json<Vec<Approval>>, ApiError> {
    let limit = page_limit(filter.limit)?;
    let (sql, params) = Filters::default()
        .and("c.mission_id = $?", filter.mission_id.as_ref())
        .and("a.status = $?", filter.status.as_ref())
        .and(
            "(a.requested_at, a.id) > (SELECT requested_at, id FROM approval_requests WHERE id = $?)",
            filter.after.as_ref(),
        )
        .statement(
            &format!(
                "SELECT {APPROVAL_COLUMNS} FROM approval_requests a JOIN action_contracts c ON c.id = a.contract_id
                  WHERE {{where}} ORDER BY a.requested_at, a.id LIMIT {{limit}}"
            ),
            &limit,
        );
    let client = state.pool.get().await?;
    let rows = client.all(&sql, &params).await?;
    if let (true, Some(after)) = (rows.is_empty(), filter.after) {
        if client.query_opt("SELECT 1 FROM approval_requests WHERE id = $1", &[&after]).await?.is_none() {
            return Err(ApiError::not_found("approval", after));
        }
    }
    Ok(Json(rows.iter().map(Approval::from_row).collect::<Result<_, _>>()?))
}

/// Decides a pending approval: approvers decide tier 2, governance tier 2 and 3.
/// Approve executes the stored contract; reject opens a manual-remediation task.
#[utoipa::path(post, path = "/api/approvals/{id}/decision", tag = "actions", request_body = DecisionBody,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "approval id")),
    responses((status = 200, body = DecisionOutcome), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    caller: Admitted<Deciders>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<DecisionOutcome>, ApiError> {
    let id = parse_id("approval", &id)?;
    let reason = body.reason.as_deref().map(|r| bounded_text("reason", r, 2000)).transpose()?;
    Ok(Json(pipeline::decide(&state, id, body.decision, reason, &caller).await?))
}
