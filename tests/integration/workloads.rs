//! Workloads as data, through the real `grace load` against the real backend:
//! the default traffic is the bundled mission workload, proven by its proofs;
//! captures, polls, checks and feeders do what the file says, across
//! workers; a bad file is refused before anything is sent. Against a service
//! of its own: each user's cookies come back to it, and a redirect is an
//! answer, not followed.

use crate::backend::TestApp;
use crate::distributed_load::{load, spawn_worker, wait_for_workers};
use crate::helpers::{grace, Ran, TestDatabase};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Requests by name in a `grace load --json` result.
fn by_name(result: &Value) -> BTreeMap<String, u64> {
    result["latency"].as_array().unwrap()[1..]
        .iter()
        .map(|l| (l["name"].as_str().unwrap().to_string(), l["requests"].as_u64().unwrap()))
        .collect()
}

fn ran_well(ran: &Ran) -> Value {
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["acked_writes"]["passed"], true, "{}", result["acked_writes"]);
    result
}

#[tokio::test]
async fn the_default_traffic_is_the_bundled_mission_workload_and_its_proofs_hold() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await.to_string();
    let shape = ["--users", "10", "--rate", "60", "--run-time", "4s", "--mission", &mission];
    let default = ran_well(&load(&app, &shape).await);
    let file = ["--workload", concat!(env!("CARGO_MANIFEST_DIR"), "/workloads/mission.toml")];
    let named = ran_well(&load(&app, &[&shape[..], &file[..]].concat()).await);
    let requests = [
        "GET /api/metrics/summary",
        "GET /api/tasks/{id}",
        "GET /api/verification/benchmarks",
        "GET /api/verification/contracts",
        "GET /api/verification/snapshots",
        "GET /api/verification/stats",
        "POST /api/chat",
        "POST /api/tasks",
    ];
    for result in [&default, &named] {
        assert_eq!(by_name(result).keys().collect::<Vec<_>>(), requests, "every request, by its method and route");
        // C7 is the sum of the workload's two proofs, each read from the backend's database.
        let proofs = result["proofs"].as_array().unwrap();
        let names: Vec<&str> = proofs.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["chat", "tasks"]);
        for proof in proofs {
            let acknowledged = proof["acknowledged"].as_u64().unwrap();
            assert!(acknowledged > 5 && proof["stored"].as_u64() == Some(acknowledged), "{proof}");
        }
        let total: u64 = proofs.iter().map(|p| p["acknowledged"].as_u64().unwrap()).sum();
        assert_eq!(result["acked_writes"]["acknowledged"].as_u64(), Some(total));
    }
}

#[tokio::test]
async fn captures_polls_checks_and_a_unique_feeder_split_across_two_workers_do_what_the_file_says() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..24).map(|n| format!("session-{n:02}\n")).collect();
    std::fs::write(dir.path().join("sessions.csv"), format!("session\n{rows}")).unwrap();
    let file = dir.path().join("w.toml");
    std::fs::write(
        &file,
        r#"
grace_backend = true

[headers]
Authorization = "Bearer {{token}}"

[[feeders]]
name = "sessions"
file = "sessions.csv"
unique = true

[[proofs]]
name = "chat"
query = "SELECT idempotency_key FROM chat_messages WHERE role = 'user' AND starts_with(idempotency_key, $1)"

[[proofs]]
name = "tasks"
query = "SELECT idempotency_key FROM tasks WHERE starts_with(idempotency_key, $1)"

[[scenarios]]
name = "talker"

[[scenarios.steps]]
method = "POST"
path = "/api/chat"
write = "chat"
json = { mission_id = "{{mission}}", session_id = "{{sessions.session}}", message = "hello", idempotency_key = "{{key}}" }

[[scenarios.steps]]
method = "POST"
path = "/api/tasks"
write = "tasks"
json = { mission_id = "{{mission}}", title = "poll me", idempotency_key = "{{key}}" }
capture = { task = "/id" }

[[scenarios.steps]]
path = "/api/tasks/{{task}}"
until = { pointer = "/status", equals = "completed" }
times = 100
every = "50ms"

[[scenarios.steps]]
name = "a task that is not there"
path = "/api/tasks/00000000-0000-0000-0000-000000000000"
status = [404]

[[scenarios.steps]]
name = "a check that fails"
path = "/api/health"
checks = [{ pointer = "/status", equals = "asleep" }]
"#,
    )
    .unwrap();
    let workers = [spawn_worker(&app, &["--once"]), spawn_worker(&app, &["--once"])];
    wait_for_workers(&app, 2).await;
    let args = ["--workload", file.to_str().unwrap(), "--users", "4", "--run-time", "6s", "--expect-workers", "2"];
    let result = ran_well(&load(&app, &args).await);
    for worker in workers {
        assert_eq!(worker.wait_with_output().await.unwrap().status.code(), Some(0));
    }
    // Every row went to one user once, across both workers: 24 messages, 24 sessions.
    let client = app.database.client().await;
    let run = result["run_id"].as_str().unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT session_id) FROM chat_messages
              WHERE role = 'user' AND starts_with(idempotency_key, $1)",
            &[&format!("{run}/")],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (24, 24));
    // Each poll read its own task (the id captured) until the runner had completed it.
    let names = by_name(&result);
    assert!(names["GET /api/tasks/{task}"] >= 24, "{names:?}");
    let polls_failed = result["errors"].as_array().unwrap().iter().any(|e| e["name"] == "GET /api/tasks/{task}");
    assert!(!polls_failed, "{}", result["errors"]);
    // The failing check is a failure of its request, with its message.
    let failed = result["errors"].as_array().unwrap().iter().find(|e| e["name"] == "GET a check that fails").unwrap();
    assert_eq!(failed["excerpt"], r#"/status to equal "asleep", but it is "ok""#, "{failed}");
    // Failures are counted as each step judges its answers: every 200 of the
    // failing check is one, no 404 the step expects is.
    let counted = |name: &str| {
        let summary = result["latency"].as_array().unwrap().iter().find(|l| l["name"] == name).unwrap();
        (summary["requests"].as_u64().unwrap(), summary["failures"].as_u64().unwrap())
    };
    let (checked, check_failures) = counted("GET a check that fails");
    assert!(checked > 0 && check_failures == checked, "{checked} requests, {check_failures} failed");
    assert_eq!(result["statuses"]["GET a check that fails"]["200"].as_u64(), Some(checked));
    let (missing, missing_failures) = counted("GET a task that is not there");
    assert!(missing > 0 && missing_failures == 0, "{missing} requests, {missing_failures} failed");
    assert_eq!(result["statuses"]["GET a task that is not there"]["404"].as_u64(), Some(missing));
    let by_name: u64 = result["latency"].as_array().unwrap()[1..].iter().map(|l| l["failures"].as_u64().unwrap()).sum();
    assert_eq!(result["total"]["failures"].as_u64(), Some(by_name));
    let exhausted = result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["excerpt"].as_str().is_some_and(|x| x.starts_with("feeder \"sessions\" has no row left")));
    assert!(exhausted, "the users stop when the rows run out: {}", result["errors"]);
}

#[tokio::test]
async fn a_bad_workload_exits_2_naming_file_line_and_column_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown-variable.toml", "[[scenarios]]\nname = \"s\"\n[[scenarios.steps]]\npath = \"/api/x/{{idd}}\"\n", ":4:8: unknown variable {{idd}}"),
        ("weight.toml", "[[scenarios]]\nname = \"s\"\nweight = 0\n[[scenarios.steps]]\npath = \"/\"\n", ":3:10: scenario \"s\" has weight 0"),
        ("pointer.toml", "[[scenarios]]\nname = \"s\"\n[[scenarios.steps]]\npath = \"/\"\ncapture = { id = \"id\" }\n", ":5:18: \"id\" is not a JSON pointer"),
        ("syntax.toml", "[[scenarios]\nname = \"s\"\n", ":1:"),
        ("env.toml", "[headers]\nX-Key = \"{{env.GRACE_TEST_NOT_SET}}\"\n[[scenarios]]\nname = \"s\"\n[[scenarios.steps]]\npath = \"/\"\n", "environment variable GRACE_TEST_NOT_SET is not set"),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let ran = load(&app, &["--workload", path, "--users", "1", "--run-time", "1s"]).await;
        assert_eq!(ran.code, Some(2), "{name}: {}", ran.all_output());
        assert!(
            ran.stderr.contains(&format!("{path}{expected}")) || ran.stderr.contains(expected),
            "{name}: {}",
            ran.stderr
        );
        let checked: Ran = grace().args(["workload", "check", path]).output().await.unwrap().into();
        assert_eq!(checked.code, Some(2), "{name}: {}", checked.all_output());
    }
    // Nothing was sent: no run was even created.
    let client = app.database.client().await;
    let runs: i64 = client.query_one("SELECT count(*) FROM control.runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0);
    let chats = app.get_json("/api/metrics/summary").await;
    assert_eq!(chats["chat_messages"], 0, "{chats}");

    // The example `grace workload init` prints is a valid workload, and the
    // schema is JSON Schema.
    let init: Ran = grace().args(["workload", "init"]).output().await.unwrap().into();
    let example = dir.path().join("example.toml");
    std::fs::write(&example, &init.stdout).unwrap();
    let checked: Ran = grace()
        .args(["workload", "check", example.to_str().unwrap()])
        .env("SHOP_TOKEN", "a-token")
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(checked.code, Some(0), "{}", checked.all_output());
    assert!(checked.stdout.contains("2 scenarios, 4 steps, 1 proofs, 0 feeders"), "{}", checked.stdout);
    let schema: Ran = grace().args(["workload", "schema"]).output().await.unwrap().into();
    let schema: Value = serde_json::from_str(&schema.stdout).unwrap();
    assert!(schema["$schema"].as_str().unwrap().contains("json-schema.org"), "{schema}");
    assert!(schema["properties"]["scenarios"].is_object(), "{schema}");
}

/// What the cookie service saw: the session cookie of every `/me`, or
/// `None` for one sent without it.
type Sessions = Arc<Mutex<Vec<Option<String>>>>;

/// A service of the kind a browser session talks to: `/login?user=N` sets a
/// session cookie, `/me` answers 401 without it, `/moved` redirects to `/me`,
/// `/agent` says which User-Agent headers came.
async fn serve_cookie_service() -> (String, Sessions) {
    use axum::extract::Query;
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::routing::get;
    let seen = Sessions::default();
    let at_me = Arc::clone(&seen);
    let app = axum::Router::new()
        .route(
            "/login",
            get(|Query(query): Query<BTreeMap<String, String>>| async move {
                ([(header::SET_COOKIE, format!("session=u{}; Path=/", query["user"]))], "{}")
            }),
        )
        .route(
            "/me",
            get(move |headers: HeaderMap| async move {
                let session = headers
                    .get(header::COOKIE)
                    .and_then(|c| c.to_str().ok())
                    .and_then(|c| c.split("; ").find_map(|kv| kv.strip_prefix("session=")))
                    .map(str::to_string);
                at_me.lock().unwrap().push(session.clone());
                match session {
                    Some(s) => (StatusCode::OK, format!(r#"{{"session":"{s}"}}"#)),
                    None => (StatusCode::UNAUTHORIZED, "{}".to_string()),
                }
            }),
        )
        .route("/moved", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/me")], "") }))
        .route(
            "/agent",
            get(|headers: HeaderMap| async move {
                let agents: Vec<&str> =
                    headers.get_all(header::USER_AGENT).iter().filter_map(|a| a.to_str().ok()).collect();
                serde_json::json!({ "agents": agents }).to_string()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, seen)
}

#[tokio::test]
async fn each_user_s_cookies_come_back_to_it_a_redirect_is_an_answer_and_its_own_agent_wins() {
    let control = TestDatabase::migrated().await;
    let (address, seen) = serve_cookie_service().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("visit.toml");
    std::fs::write(
        &file,
        r#"
[[scenarios]]
name = "visitor"

[[scenarios.steps]]
path = "/login?user={{user}}"

[[scenarios.steps]]
path = "/me"
checks = [{ pointer = "/session", matches = "^u[0-3]$" }]

[[scenarios.steps]]
name = "a redirect"
path = "/moved"
status = [302]

[[scenarios.steps]]
name = "its own agent"
path = "/agent"
headers = { User-Agent = "probe/1" }
checks = [{ pointer = "/agents", equals = ["probe/1"] }]
"#,
    )
    .unwrap();
    let ran: Ran = grace()
        .args(["load", "--json", "--database-url", &control.url.to_string(), "--backend", &address])
        .args(["--workload", file.to_str().unwrap(), "--users", "4", "--run-time", "2s"])
        .env_remove("GRACE_TOKEN")
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["total"]["failures"].as_u64(), Some(0), "{}", result["errors"]);
    // Every /me carried the cookie its own user's login set: four users, four sessions.
    let seen = seen.lock().unwrap().clone();
    let sessions: BTreeSet<Option<String>> = seen.iter().cloned().collect();
    let expected: BTreeSet<Option<String>> = (0..4).map(|u| Some(format!("u{u}"))).collect();
    assert_eq!(sessions, expected);
    // The 302 was the answer: no /me was asked for by following it.
    let names = by_name(&result);
    assert_eq!(names["GET /me"], seen.len() as u64, "{names:?}");
    assert!(names["GET a redirect"] > 0);
    assert_eq!(result["statuses"]["GET a redirect"]["302"].as_u64(), Some(names["GET a redirect"]));
    // A step's own User-Agent replaced Grace's, not joined it (the check above).
    assert!(names["GET its own agent"] > 0, "{names:?}");
}
