//! Two `grace serve` replicas on one database: both serve, their Trigger Mesh
//! events reach each other, and the immutable log stays one valid chain.

use super::app::TestApp;
use grace::specification::Role;
use serde_json::Value;
use std::time::Duration;

/// Reads Server-Sent Events until `count` have arrived; returns their types.
async fn read_events(mut response: reqwest::Response, count: usize) -> Vec<String> {
    let mut buffer = String::new();
    let mut types = Vec::new();
    while types.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("events keep arriving")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(line) = frame.lines().find(|l| l.starts_with("event:")) {
                types.push(line["event:".len()..].trim().to_string());
            }
        }
    }
    types
}

#[tokio::test]
async fn two_replicas_share_one_mesh_and_one_valid_chain() {
    let first = TestApp::spawn().await;
    let second = first.replica().await;
    let mission = first.create_mission().await;

    let stream =
        second.get(&format!("/api/events/stream?pattern=agentic.*&mission_id={mission}"), Role::Operator).await;
    assert_eq!(stream.status(), 200);
    let listening = tokio::spawn(read_events(stream, 3));

    // A tier 1 action on the first replica: three agentic events.
    let receipt = first.accepted_error(mission, "timeout", 0.9).await;
    assert_eq!(receipt["status"], "verified");
    let seen = listening.await.unwrap();
    assert_eq!(seen, ["agentic.contract_created", "agentic.action_executing", "agentic.verification_passed"]);

    // Both replicas take traffic at once.
    let writes = (0..40).map(|n| {
        let app = if n % 2 == 0 { &first } else { &second };
        async move { app.accepted_error(mission, "database_locked", 0.9).await }
    });
    futures::future::join_all(writes).await;
    let ping: Value = second.post("/api/mesh/ping", Role::Operator, &Value::Null).await.json().await.unwrap();
    assert!(ping["round_trip_ms"].as_f64().unwrap() > 0.0);

    first.wait_for_zero_log_lag().await;
    let verdict = first.get_json("/api/log/verify").await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    let client = first.database.client().await;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM action_events), (SELECT count(*) FROM immutable_log),
                    (SELECT count(DISTINCT log_seq) FROM action_events)",
            &[],
        )
        .await
        .unwrap();
    let (events, entries, distinct): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(events, distinct, "every event has its own log entry");
    assert_eq!(entries, events + 1, "plus the bootstrap entry: nothing chained twice");
    assert_eq!(first.get_json(&format!("/api/missions/{mission}")).await["total_actions"], 41);
}

#[tokio::test]
async fn faults_set_on_one_replica_are_injected_by_both_and_a_sabotage_is_used_once() {
    use crate::helpers::eventually;
    use serde_json::json;
    let first = TestApp::spawn().await;
    let second = first.replica().await;
    let (mission, other) = (first.create_mission().await, first.create_mission().await);
    let chat = |app: &TestApp, key: String| {
        let body = json!({ "mission_id": mission, "session_id": "s", "message": "hello", "idempotency_key": key });
        let request = app.request(reqwest::Method::POST, "/api/chat", Role::Operator).json(&body);
        async move { request.send().await.unwrap() }
    };

    // Chaos set on the first is injected by the second (it hears of it within moments).
    first.set_fault(None, json!({ "chaos": { "rate": 1.0 } })).await;
    let refused = eventually("the second replica injecting chaos", Duration::from_secs(5), || async {
        let response = chat(&second, uuid::Uuid::new_v4().to_string()).await;
        (response.status() == 503).then_some(response)
    })
    .await;
    assert_eq!(refused.headers()["x-grace-fault"], "injected");
    let seen: Value = second.get("/api/admin/faults", Role::Admin).await.json().await.unwrap();
    assert_eq!(seen["chaos"]["*"], 1.0, "{seen}");

    // Cleared on the second, the first stops.
    let cleared =
        second.request(reqwest::Method::DELETE, "/api/admin/faults?all=true", Role::Admin).send().await.unwrap();
    assert_eq!(cleared.status(), 200);
    eventually("the first replica no longer injecting", Duration::from_secs(5), || async {
        (chat(&first, uuid::Uuid::new_v4().to_string()).await.status() == 201).then_some(())
    })
    .await;

    // One sabotage, set on the second, for one mission: whichever replica
    // verifies first uses it, the other's verification passes, and another
    // mission is untouched. (The first may have injected chaos above, before
    // it heard of the clearing: count from here.)
    let injected = |faults: &Value| faults["injected_total"].as_u64().unwrap();
    let before = injected(&first.get("/api/admin/faults", Role::Admin).await.json().await.unwrap());
    second.set_fault(Some(mission), json!({ "sabotage_verification": { "count": 1 } })).await;
    assert_eq!(first.accepted_error(other, "database_locked", 0.9).await["status"], "verified");
    assert_eq!(first.accepted_error(mission, "database_locked", 0.9).await["status"], "failed");
    assert_eq!(second.accepted_error(mission, "database_locked", 0.9).await["status"], "verified");
    let left: Value = first.get("/api/admin/faults", Role::Admin).await.json().await.unwrap();
    assert_eq!(left["sabotage"][mission.to_string()], 0, "{left}");
    assert_eq!(injected(&left), before + 1, "the first replica used the sabotage: {left}");
}
