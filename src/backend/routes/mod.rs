//! The HTTP surface: which path goes to which handler and the middleware every
//! request passes (metrics, a deadline, a body limit, a panic turned into a
//! 500). The OpenAPI document is in `openapi`.

pub mod actions;
pub mod admin;
pub mod insights;
pub mod log;
pub mod missions;
pub mod openapi;
pub mod paging;
pub mod service;
pub mod traffic;

use super::error::ApiError;
use super::extract::BODY_LIMIT;
use super::state::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::FutureExt;
use std::time::{Duration, Instant};

/// No request may hang longer than this, even when the database stops
/// answering mid-query: the client gets a 503 and can retry.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/health", get(service::health))
        .route("/metrics", get(service::metrics))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/whoami", get(service::whoami))
        .route("/api/missions", post(missions::create))
        .route("/api/missions/{id}", get(missions::get))
        .route("/api/missions/{id}/contracts", get(missions::contracts))
        .route("/api/errors", post(actions::report_error))
        .route("/api/contracts/{id}", get(actions::contract))
        .route("/api/approvals", get(actions::approvals))
        .route("/api/approvals/{id}/decision", post(actions::decide))
        .route("/api/chat", post(traffic::chat))
        .route("/api/tasks", post(traffic::submit_task))
        .route("/api/tasks/{id}", get(traffic::task).patch(traffic::change_task))
        .route("/api/metrics/summary", get(insights::summary))
        .route("/api/verification/stats", get(insights::stats))
        .route("/api/verification/contracts", get(insights::contracts))
        .route("/api/verification/snapshots", get(insights::snapshots))
        .route("/api/verification/benchmarks", get(insights::benchmarks))
        .route("/api/log", get(log::entries))
        .route("/api/log/verify", get(log::verify))
        .route("/api/events/stream", get(log::stream))
        .route("/api/mesh/ping", post(log::ping))
        .route("/api/admin/faults", get(admin::list).post(admin::set).delete(admin::clear))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(answer_panics))
        .layer(middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

async fn unknown_route(request: Request) -> ApiError {
    ApiError::not_found("route", request.uri().path())
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} is not allowed on {}", request.method(), request.uri().path()))
}

/// The last resort: a handler that panics answers 500 JSON instead of
/// dropping the connection (and the panic is logged). Ten lines, so not worth
/// tower-http for its CatchPanicLayer.
async fn answer_panics(request: Request, next: Next) -> Response {
    match std::panic::AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::Unexpected(format!("a handler panicked: {what}")).into_response()
        }
    }
}

/// Counts and times every request by route template (never by id, so the
/// label set stays small), and enforces the deadline. Event streams are
/// long-lived by design and exempt from the deadline.
async fn measure(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = if route == "/api/events/stream" {
        next.run(request).await
    } else {
        match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::DatabaseUnavailable(format!("no answer within {REQUEST_DEADLINE:?}")).into_response(),
        }
    };
    state.telemetry.record_request(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_handler_that_panics_answers_500_json_without_its_message() {
        async fn boom() -> &'static str {
            panic!("boom: table secret_things")
        }
        let app = Router::new().route("/boom", get(boom)).layer(middleware::from_fn(answer_panics));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let response = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "internal", "{body}");
        assert!(!body.to_string().contains("secret_things"), "{body}");
        // The server is still serving.
        assert_eq!(reqwest::get(format!("http://{addr}/boom")).await.unwrap().status(), 500);
    }
}
