//! Read models over the pipeline: the metric summary and the verification
//! reads the load sends (and operators use to see what happened). Each costs
//! the same at any data size: counts come from counters the writes keep
//! (migration V8), lists are the latest few rows by an index.

use crate::backend::auth::Caller;
use crate::backend::error::ApiError;
use crate::backend::extract::ApiQuery;
use crate::backend::prepared::Prepared;
use crate::backend::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use std::sync::LazyLock;
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MissionScope {
    /// Limit to one mission; all missions when absent.
    pub mission_id: Option<Uuid>,
}

/// A list's scope: a mission, or all, and how many of the latest rows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LatestRows {
    /// Limit to one mission; all missions when absent.
    pub mission_id: Option<Uuid>,
    /// Rows to return (1-500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

impl LatestRows {
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
    let row = state.pool.get().await?.one(sql, params).await?;
    Ok(Json(row.try_get("document")?))
}

/// A read in two shapes: one mission's (`$1` is the mission) or every
/// mission's. Two statements rather than `$1 IS NULL OR mission_id = $1`,
/// which stops the planner from using the mission's index once a cached
/// statement goes generic.
pub(crate) struct Shapes {
    mission: String,
    all: String,
}

impl Shapes {
    /// Both shapes: one mission's, then every mission's.
    pub(crate) fn both(&self) -> [&str; 2] {
        [&self.mission, &self.all]
    }

    /// `template` made into each shape: `{scope}` becomes its WHERE clause (on
    /// a table aliased `scoped`), `{mission}` its mission, and
    /// `{missionless_events}` the events of no mission it counts; every
    /// mission's shape has no mission parameter, so its `$2` is `$1`.
    fn new(template: &str) -> Self {
        let mission = template
            .replace("{scope}", "WHERE scoped.mission_id = $1")
            .replace("{mission}", "$1::uuid")
            .replace("{missionless_events}", "0");
        let all = template
            .replace("{scope}", "")
            .replace("{mission}", "NULL::uuid")
            .replace("{missionless_events}", "(SELECT count(*) FROM action_events WHERE mission_id IS NULL)")
            .replace("$2", "$1");
        Self { mission, all }
    }

    /// The statement for `scope`, with its parameters after the mission's.
    async fn document(
        &self,
        state: &AppState,
        scope: Option<Uuid>,
        rest: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Json<Value>, ApiError> {
        match scope {
            Some(mission) => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    std::iter::once(&mission as _).chain(rest.iter().copied()).collect();
                json_document(state, &self.mission, &params).await
            }
            None => json_document(state, &self.all, rest).await,
        }
    }
}

/// The counters of `mission_stats` (kept by the writes themselves, see
/// migration V8) summed over their slots: what both read models start from.
const COUNTERS: &str = "counters AS (
    SELECT coalesce(sum(contracts), 0) AS contracts, coalesce(sum(planned), 0) AS planned,
           coalesce(sum(awaiting_approval), 0) AS awaiting_approval, coalesce(sum(executing), 0) AS executing,
           coalesce(sum(verified), 0) AS verified, coalesce(sum(violated), 0) AS violated,
           coalesce(sum(rolled_back), 0) AS rolled_back, coalesce(sum(failed), 0) AS failed,
           coalesce(sum(rejected), 0) AS rejected, coalesce(sum(tier_1), 0) AS tier_1,
           coalesce(sum(tier_2), 0) AS tier_2, coalesce(sum(tier_3), 0) AS tier_3,
           coalesce(sum(executed), 0) AS executed, coalesce(sum(snapshots), 0) AS snapshots,
           coalesce(sum(snapshots_restored), 0) AS snapshots_restored, coalesce(sum(benchmarks), 0) AS benchmarks,
           coalesce(sum(benchmarks_failed), 0) AS benchmarks_failed, coalesce(sum(approvals), 0) AS approvals,
           coalesce(sum(chat_messages), 0) AS chat_messages, coalesce(sum(tasks), 0) AS tasks,
           coalesce(sum(events), 0) AS events, min(first_contract_at) AS first_at, max(last_contract_at) AS last_at
      FROM mission_stats scoped {scope})";

pub(crate) static SUMMARY: LazyLock<Shapes> = LazyLock::new(|| {
    Shapes::new(&format!(
        "WITH {COUNTERS},
              minutes AS (SELECT minute, sum(contracts) AS contracts, sum(confidence_sum) AS confidence_sum
                            FROM mission_confidence_minutes scoped {{scope}} GROUP BY minute)
         SELECT jsonb_build_object(
            'mission_id', {{mission}},
            'contracts', c.contracts,
            'by_status', (SELECT coalesce(jsonb_object_agg(status, n), '{{}}') FROM (VALUES
                            ('planned', c.planned), ('awaiting_approval', c.awaiting_approval),
                            ('executing', c.executing), ('verified', c.verified), ('violated', c.violated),
                            ('rolled_back', c.rolled_back), ('failed', c.failed), ('rejected', c.rejected))
                            AS by_status(status, n) WHERE n > 0),
            'by_tier', (SELECT coalesce(jsonb_object_agg(tier, n), '{{}}') FROM (VALUES
                          (1, c.tier_1), (2, c.tier_2), (3, c.tier_3)) AS by_tier(tier, n) WHERE n > 0),
            'action_rate_per_second', c.contracts / greatest(extract(epoch FROM c.last_at - c.first_at), 1),
            'rollback_frequency', coalesce(c.rolled_back::float8 / nullif(c.executed, 0), 0),
            'confidence_trend', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                              'minute', minute, 'avg_confidence', confidence_sum / contracts::float8)
                                              ORDER BY minute) FROM minutes), '[]'),
            'chat_messages', c.chat_messages,
            'tasks', c.tasks,
            -- For every mission, the events of none (mesh pings) count too.
            'events', c.events + {{missionless_events}}
         ) AS document FROM counters c"
    ))
});

pub(crate) static STATS: LazyLock<Shapes> = LazyLock::new(|| {
    Shapes::new(&format!(
        "WITH {COUNTERS}
         SELECT jsonb_build_object(
            'contracts', c.contracts, 'verified', c.verified, 'rolled_back', c.rolled_back,
            'snapshots', c.snapshots, 'snapshots_restored', c.snapshots_restored,
            'benchmarks', c.benchmarks, 'benchmarks_failed', c.benchmarks_failed, 'approvals', c.approvals
         ) AS document FROM counters c"
    ))
});

/// Action rates, rollback frequency, confidence trend and counts, from
/// counters: it costs the same however much the mission holds.
#[utoipa::path(get, path = "/api/metrics/summary", tag = "insights", security(("bearer" = [])), params(MissionScope),
    responses((status = 200, body = Object)))]
pub async fn summary(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<MissionScope>,
) -> Result<Json<Value>, ApiError> {
    SUMMARY.document(&state, scope.mission_id, &[]).await
}

/// Counts of every verification artifact, from counters.
#[utoipa::path(get, path = "/api/verification/stats", tag = "insights", security(("bearer" = [])), params(MissionScope),
    responses((status = 200, body = Object)))]
pub async fn stats(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<MissionScope>,
) -> Result<Json<Value>, ApiError> {
    STATS.document(&state, scope.mission_id, &[]).await
}

/// The latest rows of a verification read: `shapes` take the mission and the
/// limit (`$2`, or `$1` for every mission's) and return one JSON array.
async fn latest(state: &AppState, scope: &LatestRows, shapes: &Shapes) -> Result<Json<Value>, ApiError> {
    let limit = scope.limit()?;
    shapes.document(state, scope.mission_id, &[&limit]).await
}

pub(crate) static CONTRACTS: LazyLock<Shapes> = LazyLock::new(|| {
    Shapes::new(
        "SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.created_at DESC), '[]') AS document FROM (
            SELECT id, mission_id, error_type, tier, status, verification_result, created_at
              FROM action_contracts scoped {scope} ORDER BY created_at DESC, id DESC LIMIT $2) c",
    )
});

pub(crate) static SNAPSHOTS: LazyLock<Shapes> = LazyLock::new(|| {
    Shapes::new(
        "SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.created_at DESC), '[]') AS document FROM (
            SELECT s.id, s.contract_id, s.manifest_hash, s.status, s.created_at, s.restored_at
              FROM safe_hold_snapshots s JOIN action_contracts scoped ON scoped.id = s.contract_id {scope}
             ORDER BY s.created_at DESC LIMIT $2) s",
    )
});

pub(crate) static BENCHMARKS: LazyLock<Shapes> = LazyLock::new(|| {
    Shapes::new(
        "SELECT coalesce(jsonb_agg(to_jsonb(b) ORDER BY b.created_at DESC), '[]') AS document FROM (
            SELECT b.id, b.contract_id, b.kind, b.metrics, b.passed, b.drift_detected, b.created_at
              FROM benchmark_runs b JOIN action_contracts scoped ON scoped.id = b.contract_id {scope}
             ORDER BY b.created_at DESC LIMIT $2) b",
    )
});

/// The latest contracts with their verification results.
#[utoipa::path(get, path = "/api/verification/contracts", tag = "insights", operation_id = "verification_contracts", security(("bearer" = [])),
    params(LatestRows), responses((status = 200, body = Vec<Value>, description = "the latest rows, newest first")))]
pub async fn contracts(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<LatestRows>,
) -> Result<Json<Value>, ApiError> {
    latest(&state, &scope, &CONTRACTS).await
}

/// The latest snapshots.
#[utoipa::path(get, path = "/api/verification/snapshots", tag = "insights", security(("bearer" = [])),
    params(LatestRows), responses((status = 200, body = Vec<Value>, description = "the latest rows, newest first")))]
pub async fn snapshots(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<LatestRows>,
) -> Result<Json<Value>, ApiError> {
    latest(&state, &scope, &SNAPSHOTS).await
}

/// The latest benchmark runs.
#[utoipa::path(get, path = "/api/verification/benchmarks", tag = "insights", security(("bearer" = [])),
    params(LatestRows), responses((status = 200, body = Vec<Value>, description = "the latest rows, newest first")))]
pub async fn benchmarks(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(scope): ApiQuery<LatestRows>,
) -> Result<Json<Value>, ApiError> {
    latest(&state, &scope, &BENCHMARKS).await
}
