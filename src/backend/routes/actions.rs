//! The action pipeline's API: reporting errors, reading contracts, deciding
//! approvals. The pipeline itself lives in `backend::pipeline`.

use crate::api::actions::{
    Approval, Benchmark, ContractDetail, ContractEvent, ContractReceipt, DecisionBody, DecisionOutcome,
    ErrorReportBody, Snapshot, REPLAYED_HEADER,
};
use crate::backend::auth::Caller;
use crate::backend::domain::{bounded_text, Confidence, ErrorType, IdempotencyKey, Severity};
use crate::backend::error::{ApiError, ErrorBody};
use crate::backend::extract::{parse_id, ApiJson, ApiQuery};
use crate::backend::pipeline::{self, ErrorReport};
use crate::backend::state::AppState;
use crate::spec::{ApprovalStatus, Role, DECIDING_ROLES};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

impl TryFrom<ErrorReportBody> for ErrorReport {
    type Error = ApiError;

    fn try_from(body: ErrorReportBody) -> Result<Self, ApiError> {
        Ok(Self {
            mission_id: body.mission_id,
            error_type: ErrorType::parse(&body.error_type)?,
            message: bounded_text("message", &body.message, 4000)?,
            severity: Severity::parse(&body.severity)?,
            confidence: Confidence::parse(body.confidence)?,
            idempotency_key: IdempotencyKey::parse(&body.idempotency_key)?,
        })
    }
}

/// Reports an error. Answers 202 with the contract it became; a retry with the
/// same idempotency key answers with the same contract and writes nothing.
#[utoipa::path(post, path = "/api/errors", tag = "actions", request_body = ErrorReportBody,
    security(("bearer" = [])),
    responses((status = 202, body = ContractReceipt), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn report_error(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ErrorReportBody>,
) -> Result<(StatusCode, HeaderMap, Json<ContractReceipt>), ApiError> {
    caller.require(&[Role::Operator])?;
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

fn approval_from_row(row: &tokio_postgres::Row, offset: usize) -> Approval {
    Approval {
        id: row.get(offset),
        contract_id: row.get(offset + 1),
        mission_id: row.get(offset + 2),
        tier: row.get(offset + 3),
        status: row.get(offset + 4),
        requested_by: row.get(offset + 5),
        decided_by: row.get(offset + 6),
        reason: row.get(offset + 7),
        requested_at: row.get(offset + 8),
        decided_at: row.get(offset + 9),
    }
}

/// A contract with everything it produced: snapshot, approval, benchmarks, events.
#[utoipa::path(get, path = "/api/contracts/{id}", tag = "actions", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "contract id")),
    responses((status = 200, body = ContractDetail), (status = 404, body = ErrorBody)))]
pub async fn contract(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ContractDetail>, ApiError> {
    let id = parse_id("contract", &id)?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT c.id, c.mission_id, c.error_type, c.error_message, c.severity, c.action_type, c.policy_tier,
                        c.tier, c.confidence, c.confidence_path, c.escalation_reason, c.expected_effect,
                        c.baseline_state, c.status, c.verification_result, c.contract_digest, c.created_at,
                        c.decided_at, c.executed_at, c.verified_at,
                        s.id, s.state, s.manifest_hash, s.status, s.restored_at,
                        {APPROVAL_COLUMNS}
                   FROM action_contracts c
                   LEFT JOIN safe_hold_snapshots s ON s.id = c.snapshot_id
                   LEFT JOIN approval_requests a ON a.contract_id = c.id
                  WHERE c.id = $1"
            ),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("contract", id))?;
    let benchmarks = client
        .query(
            "SELECT id, kind, metrics, passed, drift_detected FROM benchmark_runs WHERE contract_id = $1
              ORDER BY created_at, id",
            &[&id],
        )
        .await?;
    let events = client
        .query(
            "SELECT id, event_type, log_seq, payload, created_at FROM action_events WHERE contract_id = $1 ORDER BY id",
            &[&id],
        )
        .await?;
    let snapshot_id: Option<Uuid> = row.get(20);
    let approval_id: Option<Uuid> = row.get(25);
    Ok(Json(ContractDetail {
        id: row.get(0),
        mission_id: row.get(1),
        error_type: row.get(2),
        error_message: row.get(3),
        severity: row.get(4),
        action_type: row.get(5),
        policy_tier: row.get(6),
        tier: row.get(7),
        confidence: row.get(8),
        confidence_path: row.get(9),
        escalation_reason: row.get(10),
        expected_effect: row.get(11),
        baseline_state: row.get(12),
        status: row.get(13),
        verification_result: row.get(14),
        contract_digest: row.get(15),
        created_at: row.get(16),
        decided_at: row.get(17),
        executed_at: row.get(18),
        verified_at: row.get(19),
        snapshot: snapshot_id.map(|id| Snapshot {
            id,
            state: row.get(21),
            manifest_hash: row.get(22),
            status: row.get(23),
            restored_at: row.get(24),
        }),
        approval: approval_id.map(|_| approval_from_row(&row, 25)),
        benchmarks: benchmarks
            .iter()
            .map(|r| Benchmark {
                id: r.get(0),
                kind: r.get(1),
                metrics: r.get(2),
                passed: r.get(3),
                drift_detected: r.get(4),
            })
            .collect(),
        events: events
            .iter()
            .map(|r| ContractEvent {
                id: r.get(0),
                event_type: r.get(1),
                log_seq: r.get(2),
                payload: r.get(3),
                created_at: r.get(4),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFilter {
    pub mission_id: Option<Uuid>,
    pub status: Option<ApprovalStatus>,
}

#[utoipa::path(get, path = "/api/approvals", tag = "actions", security(("bearer" = [])),
    params(ApprovalFilter),
    responses((status = 200, body = Vec<Approval>), (status = 422, body = ErrorBody)))]
pub async fn approvals(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(filter): ApiQuery<ApprovalFilter>,
) -> Result<Json<Vec<Approval>>, ApiError> {
    let rows = state
        .pool
        .get()
        .await?
        .query(
            &format!(
                "SELECT {APPROVAL_COLUMNS} FROM approval_requests a JOIN action_contracts c ON c.id = a.contract_id
                  WHERE ($1::uuid IS NULL OR c.mission_id = $1) AND ($2::text IS NULL OR a.status = $2)
                  ORDER BY a.requested_at, a.id"
            ),
            &[&filter.mission_id, &filter.status],
        )
        .await?;
    Ok(Json(rows.iter().map(|r| approval_from_row(r, 0)).collect()))
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
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<DecisionOutcome>, ApiError> {
    caller.require(DECIDING_ROLES)?;
    let id = parse_id("approval", &id)?;
    let reason = body.reason.as_deref().map(|r| bounded_text("reason", r, 2000)).transpose()?;
    Ok(Json(pipeline::decide(&state, id, body.decision, reason, &caller).await?))
}
