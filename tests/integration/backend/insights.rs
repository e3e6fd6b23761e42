//! The read models the load hits (metric summary, verification stats) come
//! from counters the writes keep; these tests hold them against a recount of
//! the rows themselves — after concurrent mixed traffic, after chaos rolled
//! transactions back, and on a database written before the counters existed.

use super::app::TestApp;
use crate::helpers::TestDatabase;
use futures::future::join_all;
use grace::specification::Role;
use serde_json::{json, Value};
use tokio_postgres::Client;
use uuid::Uuid;

/// The summary and the stats counted from the rows, the way they were read
/// before the counters (`None`: every mission).
async fn recount(client: &Client, mission: Option<Uuid>) -> (Value, Value) {
    let summary = client
        .query_one(
            "WITH c AS (SELECT * FROM action_contracts WHERE $1::uuid IS NULL OR mission_id = $1),
                  window_ AS (SELECT greatest(extract(epoch FROM max(created_at) - min(created_at)), 1) AS seconds FROM c)
             SELECT jsonb_build_object(
                'mission_id', $1::uuid,
                'contracts', (SELECT count(*) FROM c),
                'by_status', coalesce((SELECT jsonb_object_agg(status, n) FROM
                                (SELECT status, count(*) AS n FROM c GROUP BY status) s), '{}'),
                'by_tier', coalesce((SELECT jsonb_object_agg(tier, n) FROM
                                (SELECT tier, count(*) AS n FROM c GROUP BY tier) t), '{}'),
                'action_rate_per_second', (SELECT count(*) FROM c) / (SELECT seconds FROM window_),
                'rollback_frequency', coalesce((SELECT count(*) FILTER (WHERE status = 'rolled_back')::float8
                                       / nullif(count(*) FILTER (WHERE executed_at IS NOT NULL), 0) FROM c), 0),
                'confidence_trend', coalesce((SELECT jsonb_agg(jsonb_build_object('minute', minute, 'avg_confidence', avg_c)
                                                ORDER BY minute)
                                                FROM (SELECT date_trunc('minute', created_at) AS minute,
                                                             avg(confidence) AS avg_c FROM c GROUP BY 1) m), '[]'),
                'chat_messages', (SELECT count(*) FROM chat_messages WHERE $1::uuid IS NULL OR mission_id = $1),
                'tasks', (SELECT count(*) FROM tasks WHERE $1::uuid IS NULL OR mission_id = $1),
                'events', (SELECT count(*) FROM action_events WHERE $1::uuid IS NULL OR mission_id = $1))",
            &[&mission],
        )
        .await
        .unwrap()
        .get(0);
    let stats = client
        .query_one(
            "WITH c AS (SELECT id, status FROM action_contracts WHERE $1::uuid IS NULL OR mission_id = $1)
             SELECT jsonb_build_object(
                'contracts', (SELECT count(*) FROM c),
                'verified', (SELECT count(*) FROM c WHERE status = 'verified'),
                'rolled_back', (SELECT count(*) FROM c WHERE status = 'rolled_back'),
                'snapshots', (SELECT count(*) FROM safe_hold_snapshots WHERE contract_id IN (SELECT id FROM c)),
                'snapshots_restored', (SELECT count(*) FROM safe_hold_snapshots
                                        WHERE status = 'restored' AND contract_id IN (SELECT id FROM c)),
                'benchmarks', (SELECT count(*) FROM benchmark_runs WHERE contract_id IN (SELECT id FROM c)),
                'benchmarks_failed', (SELECT count(*) FROM benchmark_runs
                                       WHERE NOT passed AND contract_id IN (SELECT id FROM c)),
                'approvals', (SELECT count(*) FROM approval_requests WHERE contract_id IN (SELECT id FROM c)))",
            &[&mission],
        )
        .await
        .unwrap()
        .get(0);
    (summary, stats)
}

/// The read model equals the recount: counts exactly, ratios and averages to
/// the last few digits (they are divided in another order).
fn assert_same(read: &Value, recounted: &Value, what: &str) {
    let (read, recounted) = (read.as_object().unwrap(), recounted.as_object().unwrap());
    assert_eq!(read.keys().collect::<Vec<_>>(), recounted.keys().collect::<Vec<_>>(), "{what}");
    for (key, expected) in recounted {
        let actual = &read[key];
        match key.as_str() {
            "action_rate_per_second" | "rollback_frequency" => {
                let (a, e) = (actual.as_f64().unwrap(), expected.as_f64().unwrap());
                assert!((a - e).abs() <= 1e-9 * e.abs().max(1.0), "{what} {key}: {a} read, {e} recounted");
            }
            "confidence_trend" => {
                let (actual, expected) = (actual.as_array().unwrap(), expected.as_array().unwrap());
                assert_eq!(actual.len(), expected.len(), "{what} {key}");
                for (a, e) in actual.iter().zip(expected) {
                    assert_eq!(a["minute"], e["minute"], "{what} {key}");
                    let (a, e) = (a["avg_confidence"].as_f64().unwrap(), e["avg_confidence"].as_f64().unwrap());
                    assert!((a - e).abs() < 1e-9, "{what} {key}: {a} read, {e} recounted");
                }
            }
            _ => assert_eq!(actual, expected, "{what} {key}"),
        }
    }
}

async fn assert_read_models_equal_recounts(app: &TestApp, missions: &[Uuid]) {
    let client = app.database.client().await;
    for mission in missions.iter().map(Some).chain([None]) {
        let query = mission.map_or_else(String::new, |m| format!("?mission_id={m}"));
        let (summary, stats) = recount(&client, mission.copied()).await;
        assert_same(&app.get_json(&format!("/api/metrics/summary{query}")).await, &summary, "summary");
        assert_same(&app.get_json(&format!("/api/verification/stats{query}")).await, &stats, "stats");
        if let Some(mission) = mission {
            assert_progress_equals_recount(app, &client, *mission).await;
        }
    }
}

/// The mission's progress as the API shows it, against its contracts counted
/// the way the specification counts them.
async fn assert_progress_equals_recount(app: &TestApp, client: &Client, mission: Uuid) {
    let row = client
        .query_one(
            "SELECT count(*)::int AS total_actions,
                    count(*) FILTER (WHERE status = 'verified')::int AS completed_actions,
                    count(*) FILTER (WHERE status IN ('failed', 'rejected'))::int AS failed_actions,
                    count(*) FILTER (WHERE status = 'rolled_back')::int AS rolled_back_actions,
                    count(*) FILTER (WHERE status IN ('verified', 'failed', 'rejected', 'rolled_back'))::float8
                      / greatest(count(*), 1) AS progress_ratio,
                    avg(confidence) AS confidence
               FROM action_contracts WHERE mission_id = $1",
            &[&mission],
        )
        .await
        .unwrap();
    let response = app.get(&format!("/api/missions/{mission}"), Role::Operator).await;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        assert_eq!(row.get::<_, i32>("total_actions"), 0, "contracts of mission {mission}, which does not exist");
        return;
    }
    let read: Value = response.json().await.unwrap();
    for counter in ["total_actions", "completed_actions", "failed_actions", "rolled_back_actions"] {
        assert_eq!(read[counter], row.get::<_, i32>(counter), "mission {mission} {counter}");
    }
    let progress: f64 = row.get("progress_ratio");
    assert!((read["progress_ratio"].as_f64().unwrap() - progress).abs() < 1e-9, "{read} progress {progress}");
    match row.get::<_, Option<f64>>("confidence") {
        Some(confidence) => {
            assert!((read["confidence"].as_f64().unwrap() - confidence).abs() < 1e-9, "{read} confidence {confidence}")
        }
        None => assert!(read["confidence"].is_null(), "{read}"),
    }
}

/// A user's worth of everything the API writes: errors of every tier and
/// path, decisions both ways, chat and tasks.
async fn mixed_work(app: &TestApp, mission: Uuid, user: usize) {
    for (n, (error_type, confidence)) in [
        ("timeout", 0.9),
        ("validation_error", 0.6),
        ("permission_denied", 0.9),
        ("resource_exhausted", 0.3),
        ("dependency_unavailable", 0.9),
        ("disk_on_fire", 0.7),
    ]
    .into_iter()
    .enumerate()
    {
        let response = app.report_error(mission, error_type, confidence, &format!("{mission}/{user}/error/{n}")).await;
        if let Ok(receipt) = response.json::<Value>().await {
            if let Some(approval) = receipt["approval_id"].as_str() {
                let decision = if n % 2 == 0 { "approve" } else { "reject" };
                let _ = app.decide(approval, Role::Governance, decision).await;
            }
        }
        let chat = json!({ "mission_id": mission, "session_id": format!("user-{user}"), "message": "progress?",
                           "idempotency_key": format!("{mission}/{user}/chat/{n}") });
        let _ = app.post("/api/chat", Role::Operator, &chat).await;
        let task = json!({ "mission_id": mission, "title": "reindex", "idempotency_key": format!("{mission}/{user}/task/{n}") });
        let _ = app.post("/api/tasks", Role::Operator, &task).await;
    }
}

/// Waits until the background work a mixed workload leaves has ended.
async fn settle(app: &TestApp, client: &Client) {
    // The task runner completes submitted tasks in the background, each with
    // an event in the same transaction: let it finish, or an event can land
    // between recount and read. (Fallback tasks wait for a person.)
    let unsettled = "SELECT count(*) FROM tasks WHERE status = 'queued' AND kind = 'submitted'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while client.query_one(unsettled, &[]).await.unwrap().get::<_, i64>(0) > 0 {
        assert!(std::time::Instant::now() < deadline, "the task runner did not settle every task within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.wait_for_zero_log_lag().await;
}

/// Without faults, a tier-1 contract is written by one statement outside any
/// transaction: its counts must still equal a recount.
#[tokio::test]
async fn read_models_equal_a_recount_after_concurrent_mixed_work_without_faults() {
    let app = TestApp::spawn_on(TestDatabase::migrated().await, false).await;
    let missions = [app.create_mission().await, app.create_mission().await];
    join_all((0..6).flat_map(|user| missions.map(|mission| mixed_work(&app, mission, user)))).await;
    let client = app.database.client().await;
    settle(&app, &client).await;
    let tier_1: i64 = client
        .query_one("SELECT count(*) FROM action_contracts WHERE tier = 1 AND status = 'verified'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(tier_1 > 0, "the workload wrote tier-1 contracts");
    assert_read_models_equal_recounts(&app, &[missions[0], missions[1], Uuid::new_v4()]).await;
    // Every counter slot the backend wrote (the task runner's among them) is
    // one a live session of its pool holds alone.
    let unclaimed: Vec<i16> = client
        .query(
            "SELECT DISTINCT slot::smallint FROM mission_stats
              WHERE slot NOT IN (SELECT objid::bigint FROM pg_locks
                                  WHERE locktype = 'advisory' AND classid = grace_stats_slot_lock_class())",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(unclaimed, Vec::<i16>::new(), "slots written by no claiming session");
}

#[tokio::test]
async fn no_two_live_sessions_hold_the_same_counter_slot() {
    async fn slot(client: &Client) -> i16 {
        client.query_one("SELECT grace_stats_slot()", &[]).await.unwrap().get(0)
    }
    async fn claim(client: &Client) -> i16 {
        client.query_one("SELECT grace_claim_stats_slot()", &[]).await.unwrap().get(0)
    }
    let database = TestDatabase::migrated().await;
    let sessions = join_all((0..20).map(|_| database.client())).await;
    let mut claimed = Vec::new();
    for session in &sessions {
        let held = claim(session).await;
        assert_eq!(slot(session).await, held, "a session writes the slot it claimed");
        claimed.push(held);
    }
    let mut distinct = claimed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), claimed.len(), "{claimed:?}");

    // A claim made in a transaction that rolls back is still the session's:
    // claiming again finds it instead of taking a second slot.
    let late = database.client().await;
    late.batch_execute("BEGIN; SELECT grace_claim_stats_slot(); ROLLBACK").await.unwrap();
    let kept = claim(&late).await;
    assert!(!claimed.contains(&kept), "{kept} is another session's");
    let held: i64 = late
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                AND classid = grace_stats_slot_lock_class()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 1, "one slot per session");

    // A session's slot is free again once it ends.
    let first = claimed[0];
    drop(sessions);
    let next = database.client().await;
    crate::helpers::eventually("the ended sessions' slots to be free", std::time::Duration::from_secs(10), || async {
        let free: bool = next
            .query_one("SELECT pg_try_advisory_lock(grace_stats_slot_lock_class(), $1::int)", &[&i32::from(first)])
            .await
            .unwrap()
            .get(0);
        free.then_some(())
    })
    .await;
}

#[tokio::test]
async fn read_models_equal_a_recount_after_concurrent_mixed_work_and_chaos_rollbacks() {
    let app = TestApp::spawn().await;
    let (calm, chaotic) = (app.create_mission().await, app.create_mission().await);
    // Every step of the chaotic mission fails at 30%: requests are refused,
    // and pipeline transactions roll back part-way and are retried.
    app.set_fault(Some(chaotic), json!({ "chaos": { "rate": 0.3 } })).await;
    // The calm mission's verifications all fail: tier 1 fails, tier 2+ is
    // violated and restored from its snapshot.
    app.set_fault(Some(calm), json!({ "sabotage_verification": { "count": 100 } })).await;
    join_all((0..6).flat_map(|user| [mixed_work(&app, calm, user), mixed_work(&app, chaotic, user)])).await;
    app.set_fault(Some(chaotic), json!({ "chaos": { "rate": 0.0 } })).await;
    let client = app.database.client().await;
    settle(&app, &client).await;

    let injected: i64 = client
        .query_one("SELECT count(*) FROM action_contracts WHERE mission_id = $1", &[&chaotic])
        .await
        .unwrap()
        .get(0);
    assert!(injected < 36, "chaos refused some of the chaotic mission's errors ({injected} of 36 stored)");
    let restored: i64 = client
        .query_one("SELECT count(*) FROM safe_hold_snapshots WHERE status = 'restored'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(restored >= 1, "sabotaged verifications rolled back");
    assert_read_models_equal_recounts(&app, &[calm, chaotic, Uuid::new_v4()]).await;
}

#[tokio::test]
async fn a_database_written_before_the_counters_is_counted_when_it_migrates() {
    let database = TestDatabase::empty().await;
    let mut client = database.client().await;
    grace::db::migrations::apply_through(&mut client, 7).await.unwrap();
    let mission = Uuid::new_v4();
    client
        .batch_execute(&format!(
            "INSERT INTO missions (id, name) VALUES ('{mission}', 'before the counters');
             INSERT INTO action_contracts (id, mission_id, idempotency_key, error_type, error_message, severity,
                 action_type, policy_tier, tier, confidence, confidence_path, expected_effect, baseline_state, status,
                 contract_digest, executed_at, created_at)
             VALUES ('00000000-0000-0000-0000-000000000001', '{mission}', 'old-1', 'timeout', 'm', 'high',
                     'raise_timeout', 1, 1, 0.9, 'high', '{{}}', '{{}}', 'verified', '', now(), now() - interval '3 minutes'),
                    ('00000000-0000-0000-0000-000000000002', '{mission}', 'old-2', 'permission_denied', 'm', 'high',
                     'grant_scoped_permission', 2, 3, 0.3, 'low', '{{}}', '{{}}', 'rolled_back', '', now(), now());
             INSERT INTO safe_hold_snapshots (contract_id, state, manifest_hash, status, restored_at)
             VALUES ('00000000-0000-0000-0000-000000000002', '{{}}', repeat('a', 64), 'restored', now());
             INSERT INTO benchmark_runs (contract_id, kind, metrics, passed, drift_detected)
             VALUES ('00000000-0000-0000-0000-000000000001', 'smoke', '{{}}', true, false),
                    ('00000000-0000-0000-0000-000000000002', 'regression', '{{}}', false, true);
             INSERT INTO approval_requests (contract_id, tier, status, requested_by, decided_by, decided_at)
             VALUES ('00000000-0000-0000-0000-000000000002', 3, 'approved', 'p', 'g', now());
             INSERT INTO chat_messages (id, mission_id, session_id, role, content, idempotency_key)
             VALUES ('00000000-0000-0000-0000-00000000000a', '{mission}', 's', 'user', 'hi', 'old-chat');
             INSERT INTO chat_messages (mission_id, session_id, role, content, reply_to)
             VALUES ('{mission}', 's', 'assistant', 'hello', '00000000-0000-0000-0000-00000000000a');
             -- Cancelled, so the task runner does not complete it (and count an event) mid-comparison.
             INSERT INTO tasks (mission_id, title, idempotency_key, status) VALUES ('{mission}', 't', 'old-task', 'cancelled');
             INSERT INTO action_events (event_type, mission_id) VALUES ('chat.exchanged', '{mission}'),
                                                                       ('mesh.ping', NULL);"
        ))
        .await
        .unwrap();
    grace::db::migrations::apply(&mut client).await.unwrap();
    let app = TestApp::spawn_on(database, false).await;
    assert_read_models_equal_recounts(&app, &[mission]).await;
    // And the counters go on from there.
    app.accepted_error(mission, "timeout", 0.9).await;
    assert_read_models_equal_recounts(&app, &[mission]).await;
    let summary = app.get_json(&format!("/api/metrics/summary?mission_id={mission}")).await;
    assert_eq!(summary["contracts"], 3);
    assert_eq!(summary["by_status"], json!({ "rolled_back": 1, "verified": 2 }));
}
