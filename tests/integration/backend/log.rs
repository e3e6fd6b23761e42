//! The immutable log through the API, and shutdown leaving no log lag.

use super::app::TestApp;
use crate::helpers::TestDatabase;
use grace::specification::Role;
use reqwest::StatusCode;

#[tokio::test]
async fn log_verify_finds_a_row_altered_behind_the_triggers_back() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    for _ in 0..3 {
        app.accepted_error(mission, "timeout", 0.9).await;
    }
    app.wait_for_zero_log_lag().await;
    assert_eq!(app.get_json("/api/log/verify").await["valid"], true);
    let page = app.get_json("/api/log?after_seq=2&limit=2").await;
    assert_eq!(page.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 4]);

    crate::helpers::tamper_with_log(
        &app.database.client().await,
        "UPDATE immutable_log SET result = 'forged' WHERE seq = 5",
    )
    .await;
    let verdict = app.get_json("/api/log/verify?from=1").await;
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["breaks"][0]["seq"], 5);
    // With no range, only what is new since the last proof is re-hashed: the
    // edit sits under the checkpoint the first call left (a full proof, or the
    // anchors outside the database, are what find it).
    let incremental = app.get_json("/api/log/verify").await;
    assert_eq!(
        (&incremental["entries"], &incremental["start"]["after"]),
        (&0.into(), &"checkpoint".into()),
        "{incremental}"
    );
    assert_eq!(app.get_json("/api/log/verify?from=6").await["valid"], true, "the entries after it still link");
    assert_eq!(app.get("/api/log/verify?from=0", Role::Operator).await.status(), 422);
    let too_far = app.get("/api/log/verify?from=1&to=200001", Role::Operator).await;
    assert_eq!(too_far.status(), 422, "one call re-hashes at most 200,000 entries");
    assert_eq!(too_far.json::<serde_json::Value>().await.unwrap()["error"]["field"], "to");
}

#[tokio::test]
async fn a_graceful_stop_drains_the_outbox() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    for _ in 0..20 {
        app.accepted_error(mission, "validation_error", 0.9).await;
    }
    let database = app.database.same_database();
    app.stop().await;
    let client = database.client().await;
    let pending: i64 = grace::backend::sequencer::log_lag(&client).await.unwrap();
    assert_eq!(pending, 0, "every committed event is chained by the time the server has stopped");
    assert!(grace::immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap().holds());
}

#[tokio::test]
async fn metrics_expose_requests_actions_mesh_log_lag_pool_and_memory() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    app.accepted_error(mission, "timeout", 0.9).await;
    app.accepted_error(mission, "permission_denied", 0.9).await;
    app.get(&format!("/api/contracts/{}", uuid::Uuid::new_v4()), Role::Operator).await;
    let text = app.client.scrape().await.unwrap();
    for expected in [
        r#"grace_http_requests_total{method="POST",route="/api/errors",status="202"} 2"#,
        r#"grace_http_requests_total{method="GET",route="/api/contracts/{id}",status="404"} 1"#,
        r#"grace_http_request_duration_seconds_count{route="/api/errors"} 2"#,
        r#"grace_actions_total{tier="1",outcome="verified"} 1"#,
        r#"grace_actions_total{tier="2",outcome="awaiting_approval"} 1"#,
        "grace_mesh_dropped_total 0",
        "grace_mesh_refused_total 0",
        "grace_mesh_queue_depth ",
        "grace_log_lag ",
        "grace_db_pool_size ",
        "grace_circuit_breaker_open 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let memory: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .expect("memory is reported")
        .parse()
        .unwrap();
    assert!(memory > 1_000_000.0, "{memory}");
}

#[tokio::test]
async fn event_streams_are_capped_per_token_with_a_429_counted_in_metrics() {
    let app = TestApp::spawn().await;
    let cap = grace::backend::mesh::MAX_SUBSCRIPTIONS_PER_TOKEN;
    let mut open = Vec::new();
    for _ in 0..cap {
        let stream = app.get("/api/events/stream", Role::Operator).await;
        assert_eq!(stream.status(), StatusCode::OK);
        open.push(stream);
    }
    let refused = app.get("/api/events/stream", Role::Operator).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    assert_eq!(
        app.get("/api/events/stream", Role::Approver).await.status(),
        StatusCode::OK,
        "another token has its own share"
    );
    assert!(app.client.scrape().await.unwrap().contains("grace_mesh_refused_total 1"));

    drop(open.pop());
    crate::helpers::eventually("a closed stream frees its place", std::time::Duration::from_secs(5), || async {
        let stream = app.get("/api/events/stream", Role::Operator).await;
        (stream.status() == StatusCode::OK).then_some(stream)
    })
    .await;
}

#[tokio::test]
async fn events_waiting_in_the_old_outbox_are_chained_after_the_events_became_the_outbox() {
    let database = TestDatabase::empty().await;
    let mut client = database.client().await;
    grace::db::migrations::apply_through(&mut client, 13).await.unwrap();
    let mission = uuid::Uuid::new_v4();
    // One event waiting in the outbox, one that never had an outbox entry (no
    // log entry to wait for: a C6 breach, which the migration must not hide).
    client
        .batch_execute(&format!(
            "INSERT INTO missions (id, name) VALUES ('{mission}', 'before V14');
             INSERT INTO action_events (event_type, mission_id, payload)
             VALUES ('chat.exchanged', '{mission}', '{{\"n\": 1}}'), ('chat.exchanged', '{mission}', '{{\"n\": 2}}');
             INSERT INTO log_outbox (event_id, actor, action, resource, subsystem, payload, result)
             SELECT min(id), 'operator-7', 'chat.exchanged', 'chat/m1', 'chat', '{{}}', 'ok' FROM action_events;"
        ))
        .await
        .unwrap();
    grace::db::migrations::apply(&mut client).await.unwrap();
    assert_eq!(grace::backend::sequencer::log_lag(&client).await.unwrap(), 1);

    let app = TestApp::spawn_on(database, false).await;
    app.wait_for_zero_log_lag().await;
    let entries = client
        .query(
            "SELECT l.actor, l.action, l.resource, l.subsystem, l.result, l.payload::jsonb AS payload
               FROM immutable_log l JOIN action_events e ON e.log_seq = l.seq ORDER BY l.seq",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "only the event that waited in the outbox is chained");
    let entry = &entries[0];
    let fields: Vec<String> = (0..5).map(|i| entry.get(i)).collect();
    assert_eq!(fields, ["operator-7", "chat.exchanged", "chat/m1", "chat", "ok"]);
    let payload: serde_json::Value = entry.get("payload");
    assert_eq!(
        payload,
        serde_json::json!({ "event_type": "chat.exchanged", "mission_id": mission, "contract_id": null,
                            "approval_id": null, "payload": { "n": 1 } })
    );
    let unchained: i64 =
        client.query_one("SELECT count(*) FROM action_events WHERE log_seq IS NULL", &[]).await.unwrap().get(0);
    assert_eq!(unchained, 1, "the event with no outbox entry stays without a log entry");
    assert!(grace::immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap().holds());
}

/// The sequencer's queue is read in id order from its partial index and the
/// read stops after a batch, whatever the backlog — also on a young database
/// that was never analyzed, where PostgreSQL once fetched the whole backlog
/// and sorted it for every batch.
#[tokio::test]
async fn the_sequencer_reads_a_batch_of_its_queue_without_fetching_the_backlog() {
    use grace::backend::sequencer;
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    client
        .batch_execute(
            "INSERT INTO action_events (event_type, payload, actor, resource, result)
             SELECT 'mesh.ping', '{}', 'test', 'r/' || n, 'ok' FROM generate_series(1, 20000) AS n",
        )
        .await
        .unwrap();
    client.batch_execute(sequencer::SESSION).await.unwrap();
    let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", sequencer::PENDING);
    let plan: serde_json::Value = client.query_one(&explain, &[&500_i64]).await.unwrap().get(0);
    let plan = plan.to_string();
    assert!(plan.contains("\"Index Name\":\"action_events_pending_idx\""), "{plan}");
    assert!(!plan.contains("Bitmap") && !plan.contains("\"Sort\""), "{plan}");
    // An ordered read that stops: the scan returned the batch, not the 20,000.
    assert!(plan.contains("\"Node Type\":\"Index Scan\""), "{plan}");
    assert!(plan.contains("\"Actual Rows\":500,"), "{plan}");
    assert!(!plan.contains("\"Actual Rows\":20000"), "{plan}");
}
