//! Postgres going away under a running backend: requests fail fast with a 503
//! and a JSON error, and everything resumes by itself when it is back — the
//! pool reconnects, the mesh bridge relistens, the sequencer continues the chain.

use super::app::TestApp;
use crate::helpers::{eventually, TestDatabase};
use grace::client::ClientError;
use grace::db::private::PrivatePostgres;
use grace::specification::Role;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Far above the backend's own deadline: exceeding it means a request hung.
const NO_HANG: Duration = Duration::from_secs(20);

#[tokio::test]
async fn requests_fail_fast_while_the_database_is_gone_and_resume_when_it_is_back() {
    let mut cluster = PrivatePostgres::start().await.unwrap();
    let app = TestApp::spawn_on(TestDatabase::migrated_on(cluster.url()).await, true).await;
    let mission = app.create_mission().await;
    app.accepted_error(mission, "timeout", 0.9).await;
    app.wait_for_zero_log_lag().await;

    cluster.pause();
    for _ in 0..3 {
        let started = Instant::now();
        let response =
            tokio::time::timeout(NO_HANG, app.report_error(mission, "timeout", 0.9, &uuid::Uuid::new_v4().to_string()))
                .await
                .expect("a request while the database is down answers instead of hanging");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
        assert_eq!(body["error"]["message"], "the database is unavailable; retry later", "no internals: {body}");
        assert!(started.elapsed() < NO_HANG);
    }
    match app.client.health().await {
        Err(ClientError::Unhealthy { status, health, .. }) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(health.status, "degraded");
        }
        other => panic!("a backend without its database is unhealthy, not {other:?}"),
    }

    cluster.resume().await.unwrap();
    let receipt = eventually("traffic resuming", Duration::from_secs(30), || async {
        let response = app.report_error(mission, "timeout", 0.9, &uuid::Uuid::new_v4().to_string()).await;
        match response.status() {
            StatusCode::ACCEPTED => Some(response.json::<Value>().await.unwrap()),
            _ => None,
        }
    })
    .await;
    assert_eq!(receipt["status"], "verified");
    app.wait_for_zero_log_lag().await;
    let ping: Value = app.post("/api/mesh/ping", Role::Operator, &Value::Null).await.json().await.unwrap();
    assert!(ping["log_seq"].as_i64().is_some(), "the mesh bridge reconnected: {ping}");
    let verdict = app.get_json("/api/log/verify").await;
    assert_eq!(verdict["valid"], true, "the chain resumed where it stopped: {verdict}");
    assert_eq!(app.get_json(&format!("/api/missions/{mission}")).await["total_actions"], 2);
    app.stop().await;
}
