//! Chaos: injected faults fail requests and pipeline steps before they write,
//! so whatever was acknowledged is stored exactly once and nothing is partial.

use super::app::TestApp;
use crate::helpers::eventually;
use grace::specification::{required_events, ContractStatus, Role, Tier};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

#[tokio::test]
async fn chaos_at_half_rate_leaves_no_partial_rows_and_stores_every_acknowledged_write_once() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    app.set_fault(Some(mission), json!({ "chaos": { "rate": 0.5 } })).await;

    let (mut acked, mut injected, mut refused) = (BTreeSet::new(), 0, 0);
    let error_types = ["timeout", "permission_denied", "database_locked", "dependency_unavailable"];
    for n in 0..160 {
        let key = format!("chaos-{n}");
        let response = match n % 3 {
            0 => app.report_error(mission, error_types[n / 3 % 4], 0.9, &key).await,
            1 => {
                app.post(
                    "/api/chat",
                    Role::Operator,
                    &json!({ "mission_id": mission, "session_id": "chaos",
                        "message": format!("message {n}"), "idempotency_key": key }),
                )
                .await
            }
            _ => {
                app.post(
                    "/api/tasks",
                    Role::Operator,
                    &json!({ "mission_id": mission, "title": format!("task {n}"),
                        "idempotency_key": key }),
                )
                .await
            }
        };
        let status = response.status();
        if status.is_success() {
            acked.insert(key);
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "only injected faults may fail");
            let injected_fault = response.headers().get("x-grace-fault").is_some_and(|v| v == "injected");
            let body: Value = response.json().await.unwrap();
            assert!(
                injected_fault || body["error"]["code"] == "circuit_open",
                "a failure is an injected fault or the open breaker: {body}"
            );
            if injected_fault {
                injected += 1
            } else {
                refused += 1
            }
        }
    }
    assert!(
        injected > 10 && acked.len() > 20,
        "chaos at 0.5 both injects and lets through: {injected} injected, {refused} refused, {} acked",
        acked.len()
    );

    app.set_fault(Some(mission), json!({ "chaos": { "rate": 0.0 } })).await;
    let client = app.database.client().await;
    // The task runner keeps writing (task.completed events) until every
    // submitted task is done; only then can the log lag stay at zero.
    eventually("the runner completing every submitted task", std::time::Duration::from_secs(10), || async {
        let queued: i64 = client
            .query_one("SELECT count(*) FROM tasks WHERE kind = 'submitted' AND status = 'queued'", &[])
            .await
            .unwrap()
            .get(0);
        (queued == 0).then_some(())
    })
    .await;
    app.wait_for_zero_log_lag().await;
    let stored = app.stored_write_keys().await;
    assert_eq!(stored, acked, "stored exactly the acknowledged writes");

    // Nothing partial: every contract has its complete event sequence and
    // artifacts, every chat message its reply, every event its log entry.
    let contracts = client.query("SELECT id, tier, status FROM action_contracts", &[]).await.unwrap();
    for row in &contracts {
        let (id, tier, status): (Uuid, i16, String) = (row.get(0), row.get(1), row.get(2));
        let events: Vec<String> = client
            .query("SELECT event_type FROM action_events WHERE contract_id = $1 ORDER BY id", &[&id])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let expected: Vec<&str> =
            required_events(Tier::from_level(tier).unwrap(), status.parse::<ContractStatus>().unwrap())
                .unwrap()
                .iter()
                .map(|k| k.name())
                .collect();
        assert_eq!(events, expected, "contract {id} ({status})");
    }
    let orphans = client
        .query_one(
            "SELECT (SELECT count(*) FROM chat_messages u WHERE role = 'user'
                      AND NOT EXISTS (SELECT 1 FROM chat_messages a WHERE a.reply_to = u.id)),
                    (SELECT count(*) FROM action_events WHERE log_seq IS NULL),
                    (SELECT count(*) FROM action_contracts c WHERE tier > 1
                      AND (snapshot_id IS NULL OR NOT EXISTS (SELECT 1 FROM approval_requests a WHERE a.contract_id = c.id))),
                    (SELECT total_actions FROM mission_progress WHERE mission_id = $1) - (SELECT count(*) FROM action_contracts)",
            &[&mission],
        )
        .await
        .unwrap();
    let orphans: Vec<i64> = (0..4).map(|i| orphans.get::<_, i64>(i)).collect();
    assert_eq!(
        orphans,
        [0, 0, 0, 0],
        "unreplied chats, unlogged events, tier 2+ without artifacts, miscounted mission"
    );
    assert_eq!(app.get_json("/api/log/verify").await["valid"], true);
}

#[tokio::test]
async fn injected_faults_are_retried_inside_the_pipeline() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    // At this rate most tier-1 operations meet at least one injected step
    // fault. Requests fail only when the request gate or every retry fails, so
    // many more faults are injected than requests fail: the rest were retried.
    app.set_fault(Some(mission), json!({ "chaos": { "rate": 0.25 } })).await;
    let mut acked = 0;
    for n in 0..60 {
        if app.report_error(mission, "timeout", 0.9, &format!("retry-{n}")).await.status().is_success() {
            acked += 1;
        }
    }
    let faults: Value = app.get("/api/admin/faults", Role::Admin).await.json().await.unwrap();
    let injected = faults["injected_total"].as_u64().unwrap();
    let failed = 60 - acked;
    assert!(
        injected > failed,
        "more faults were injected ({injected}) than requests failed ({failed}): the rest were retried away"
    );
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_and_closes_after_its_cooldown() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let receipt = app.accepted_error(mission, "permission_denied", 0.9).await;
    let approval = receipt["approval_id"].as_str().unwrap();
    // Every pipeline step fails: each decision exhausts its retries.
    app.set_fault(Some(mission), json!({ "chaos": { "rate": 1.0 } })).await;
    for _ in 0..5 {
        let response = app.decide(approval, Role::Approver, "approve").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["x-grace-fault"], "injected");
    }
    let refused = app.decide(approval, Role::Approver, "approve").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "circuit_open");

    app.set_fault(Some(mission), json!({ "chaos": { "rate": 0.0 } })).await;
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    let approved = app.decide(approval, Role::Approver, "approve").await;
    assert_eq!(approved.status(), StatusCode::OK, "the breaker closed after its cooldown");
    assert_eq!(app.get_json(&format!("/api/missions/{mission}")).await["completed_actions"], 1);
}
