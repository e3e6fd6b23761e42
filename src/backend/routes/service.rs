//! The endpoints for probes and scrapers, open without a token — health and
//! Prometheus metrics — and `whoami`, which any token may call to learn its
//! role. They read state; they change nothing.

use crate::api::service::{Health, Identity, MeshHealth};
use crate::backend::auth::Caller;
use crate::backend::error::ApiError;
use crate::backend::sequencer;
use crate::backend::state::AppState;
use crate::backend::telemetry::ScrapeSnapshot;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

#[utoipa::path(get, path = "/api/health", tag = "service",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let lag = async { Ok::<_, ApiError>(sequencer::log_lag(&**state.pool.get().await?).await?) };
    let (database, log_lag) = match lag.await {
        Ok(lag) => ("ok".to_string(), Some(lag)),
        Err(e) => (e.to_string(), None),
    };
    let (subscribers, _) = state.mesh.load();
    let mesh = MeshHealth {
        started: state.mesh.is_started(),
        subscribers,
        dropped: state.mesh.dropped(),
        last_seq: state.mesh.last_seq(),
    };
    let healthy = log_lag.is_some() && mesh.started;
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let health = Health {
        status: if healthy { "ok" } else { "degraded" }.into(),
        database,
        mesh,
        log_lag,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    (status, Json(health))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.pool.status();
    let (mesh_subscribers, mesh_queue_depth) = state.mesh.load();
    let log_lag = match state.pool.get().await {
        Ok(client) => sequencer::log_lag(&**client).await.unwrap_or(-1),
        Err(_) => -1,
    };
    let snapshot = ScrapeSnapshot {
        mesh_queue_depth,
        mesh_dropped: state.mesh.dropped(),
        mesh_refused: state.mesh.refused(),
        mesh_subscribers,
        log_lag,
        pool_size: pool.size as i64,
        pool_available: pool.available as i64,
        pool_waiting: pool.waiting as i64,
        faults_injected: state.faults.injected(),
        breaker_open: state.breaker.is_open(),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.telemetry.render(snapshot))
}

/// Who the bearer token is: any known token may ask (401 otherwise).
#[utoipa::path(get, path = "/api/whoami", tag = "service", security(("bearer" = [])),
    responses((status = 200, body = Identity)))]
pub async fn whoami(caller: Caller) -> Json<Identity> {
    Json(Identity { role: caller.role.to_string(), identity: caller.identity })
}
