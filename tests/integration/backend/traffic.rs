//! Chat and tasks: idempotent writes, deterministic replies, the task runner.

use super::app::TestApp;
use crate::helpers::eventually;
use grace::specification::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn a_retried_write_returns_the_first_answer_and_stores_once() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;

    let first = app.report_error(mission, "timeout", 0.9, "error-key").await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = app.report_error(mission, "timeout", 0.9, "error-key").await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    let chat =
        json!({ "mission_id": mission, "session_id": "s1", "message": "status?", "idempotency_key": "chat-key" });
    let first_chat = app.post("/api/chat", Role::Operator, &chat).await;
    assert_eq!(first_chat.status(), StatusCode::CREATED);
    let first_chat: Value = first_chat.json().await.unwrap();
    let again_chat = app.post("/api/chat", Role::Operator, &chat).await;
    assert_eq!(again_chat.status(), StatusCode::OK);
    assert_eq!(again_chat.json::<Value>().await.unwrap(), first_chat);
    let mut reused = chat.clone();
    reused["message"] = json!("something else");
    assert_eq!(app.post("/api/chat", Role::Operator, &reused).await.status(), StatusCode::CONFLICT);

    let task = json!({ "mission_id": mission, "title": "rebuild index", "payload": {"table": "t"}, "idempotency_key": "task-key" });
    let first_task: Value = app.post("/api/tasks", Role::Operator, &task).await.json().await.unwrap();
    let again_task = app.post("/api/tasks", Role::Operator, &task).await;
    assert_eq!(again_task.status(), StatusCode::ACCEPTED);
    assert_eq!(again_task.json::<Value>().await.unwrap()["id"], first_task["id"]);

    let client = app.database.client().await;
    let counts = client
        .query_one(
            "SELECT (SELECT count(*) FROM action_contracts WHERE idempotency_key = 'error-key'),
                    (SELECT count(*) FROM chat_messages), (SELECT count(*) FROM tasks WHERE idempotency_key = 'task-key')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1), counts.get::<_, i64>(2)), (1, 2, 1));
}

#[tokio::test]
async fn concurrent_retries_of_one_key_store_one_contract() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let attempts = (0..8).map(|_| app.report_error(mission, "permission_denied", 0.9, "raced-key"));
    let mut receipts = Vec::new();
    for response in futures::future::join_all(attempts).await {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        receipts.push(response.json::<Value>().await.unwrap());
    }
    assert!(receipts.iter().all(|r| r["contract_id"] == receipts[0]["contract_id"]));
    let stored: i64 =
        app.database.client().await.query_one("SELECT count(*) FROM action_contracts", &[]).await.unwrap().get(0);
    assert_eq!(stored, 1);
    assert_eq!(app.get_json(&format!("/api/missions/{mission}")).await["total_actions"], 1);
}

#[tokio::test]
async fn the_chat_reply_is_built_from_the_missions_live_state() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    app.accepted_error(mission, "timeout", 0.9).await;
    let chat =
        json!({ "mission_id": mission, "session_id": "s", "message": "how are we doing?", "idempotency_key": "c1" });
    let reply: Value = app.post("/api/chat", Role::Operator, &chat).await.json().await.unwrap();
    assert_eq!(
        reply["reply"],
        "Mission test mission is active: 1 actions, 1 verified, 0 failed or rejected, 0 rolled back; 100% done. \
         You said: \"how are we doing?\""
    );
}

#[tokio::test]
async fn the_runner_completes_submitted_tasks_and_only_queued_tasks_change() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let task = json!({ "mission_id": mission, "title": "compact", "idempotency_key": "runner-1" });
    let submitted: Value = app.post("/api/tasks", Role::Operator, &task).await.json().await.unwrap();
    assert_eq!(submitted["status"], "queued");
    let id = submitted["id"].as_str().unwrap();
    let done = eventually("the runner completing the task", Duration::from_secs(10), || async {
        let task = app.get_json(&format!("/api/tasks/{id}")).await;
        (task["status"] == "completed").then_some(task)
    })
    .await;
    assert_eq!(done["attempts"], 1);
    assert!(done["result"]["completed_by"].as_str().unwrap().starts_with("runner-"));

    let cancel = |id: String| {
        app.request(reqwest::Method::PATCH, &format!("/api/tasks/{id}"), Role::Operator)
            .json(&json!({ "status": "cancelled" }))
            .send()
    };
    assert_eq!(cancel(id.to_string()).await.unwrap().status(), StatusCode::CONFLICT, "a completed task cannot change");

    // A manual-remediation task waits for a human (the runner leaves it queued),
    // so it can still be cancelled.
    let tier3 = app.accepted_error(mission, "dependency_unavailable", 0.9).await;
    let rejected: Value =
        app.decide(tier3["approval_id"].as_str().unwrap(), Role::Governance, "reject").await.json().await.unwrap();
    let fallback = rejected["fallback_task_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled = cancel(fallback).await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "cancelled");
}
