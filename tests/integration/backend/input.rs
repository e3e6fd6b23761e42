//! Bad input and wrong roles: the right status, the JSON error body naming the
//! problem, and nothing written.

use super::app::TestApp;
use grace::specification::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// Rows in every table a bad request could have touched.
async fn row_counts(app: &TestApp) -> Vec<i64> {
    let row = app
        .database
        .client()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM missions), (SELECT count(*) FROM action_contracts),
                    (SELECT count(*) FROM action_events), (SELECT count(*) FROM chat_messages),
                    (SELECT count(*) FROM tasks), (SELECT count(*) FROM approval_requests),
                    -- log entries, chained or waiting (the sequencer moves them from one to the other)
                    (SELECT count(*) FROM immutable_log) + (SELECT count(*) FROM action_events WHERE log_seq IS NULL),
                    (SELECT count(*) FROM managed_resources), (SELECT count(*) FROM benchmark_runs),
                    -- what the missions' counters hold
                    (SELECT coalesce(sum(contracts + events + chat_messages + tasks), 0)::bigint FROM mission_stats)",
            &[],
        )
        .await
        .unwrap();
    (0..10).map(|i| row.get(i)).collect()
}

async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    match field {
        Some(field) => assert_eq!(body["error"]["field"], field, "{body}"),
        None => assert!(body["error"].get("field").is_none(), "{body}"),
    }
}

#[tokio::test]
async fn every_class_of_bad_input_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let before = row_counts(&app).await;
    let post_raw = |body: &'static str, content_type: &'static str| {
        app.request(reqwest::Method::POST, "/api/errors", Role::Operator)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    assert_error(
        post_raw("{\"mission_id\": ", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
        None,
    )
    .await;
    assert_error(
        post_raw("{}", "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
    )
    .await;
    let huge = json!({ "mission_id": mission, "error_type": "timeout", "message": "x".repeat(70_000), "severity": "high",
                       "confidence": 0.9, "idempotency_key": "huge" });
    assert_error(
        app.post("/api/errors", Role::Operator, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
    )
    .await;

    let valid = json!({ "mission_id": mission, "error_type": "timeout", "message": "slow", "severity": "high",
                        "confidence": 0.9, "idempotency_key": "k" });
    let invalid = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (invalid("confidence", json!(1.5)), "confidence"),
        (invalid("confidence", json!("high")), "confidence"),
        (invalid("severity", json!("apocalyptic")), "severity"),
        (invalid("error_type", json!("Not A Type")), "error_type"),
        (invalid("idempotency_key", json!("")), "idempotency_key"),
        (invalid("message", json!("   ")), "message"),
        (invalid("mission_id", json!("not-a-uuid")), "mission_id"),
        (invalid("surprise", json!(1)), "surprise"),
    ] {
        assert_error(
            app.post("/api/errors", Role::Operator, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some(field),
        )
        .await;
    }
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("severity");
    assert_error(
        app.post("/api/errors", Role::Operator, &missing).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("severity"),
    )
    .await;

    let unknown_mission = invalid("mission_id", json!(Uuid::new_v4()));
    assert_error(
        app.post("/api/errors", Role::Operator, &unknown_mission).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    )
    .await;
    let chat = json!({ "mission_id": Uuid::new_v4(), "session_id": "s", "message": "hi", "idempotency_key": "c" });
    assert_error(app.post("/api/chat", Role::Operator, &chat).await, StatusCode::NOT_FOUND, "not_found", None).await;
    let task = json!({ "mission_id": Uuid::new_v4(), "title": "t", "idempotency_key": "t" });
    assert_error(app.post("/api/tasks", Role::Operator, &task).await, StatusCode::NOT_FOUND, "not_found", None).await;
    assert_error(app.get("/api/contracts/not-a-uuid", Role::Operator).await, StatusCode::NOT_FOUND, "not_found", None)
        .await;
    assert_error(app.get("/api/no/such/route", Role::Operator).await, StatusCode::NOT_FOUND, "not_found", None).await;
    assert_error(
        app.get("/api/log?limit=0", Role::Operator).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("limit"),
    )
    .await;
    assert_error(
        app.get("/api/log?limit=abc", Role::Operator).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("limit"),
    )
    .await;

    assert_eq!(row_counts(&app).await, before, "no bad request wrote anything");
}

#[tokio::test]
async fn a_missing_token_is_401_and_a_wrong_role_is_403_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let tier3 = app.accepted_error(mission, "dependency_unavailable", 0.9).await;
    let before = row_counts(&app).await;
    let error = json!({ "mission_id": mission, "error_type": "timeout", "message": "m", "severity": "low",
                        "confidence": 0.9, "idempotency_key": "role-check" });

    let anonymous = app.anonymous(reqwest::Method::POST, "/api/errors").json(&error).send().await.unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized", None).await;
    let forged = app
        .anonymous(reqwest::Method::POST, "/api/errors")
        .bearer_auth("not-a-real-token-at-all")
        .json(&error)
        .send()
        .await
        .unwrap();
    assert_error(forged, StatusCode::UNAUTHORIZED, "unauthorized", None).await;
    assert_error(app.post("/api/errors", Role::Approver, &error).await, StatusCode::FORBIDDEN, "forbidden", None).await;

    let approval = tier3["approval_id"].as_str().unwrap();
    assert_error(app.decide(approval, Role::Operator, "approve").await, StatusCode::FORBIDDEN, "forbidden", None).await;
    assert_error(app.decide(approval, Role::Approver, "approve").await, StatusCode::FORBIDDEN, "forbidden", None).await;
    let faults = json!({ "kind": { "chaos": { "rate": 0.5 } } });
    assert_error(
        app.post("/api/admin/faults", Role::Operator, &faults).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    )
    .await;

    // The role is checked before the body is read: a body that would be a
    // 422 (or not even JSON) from the right role is a 403 from the wrong one.
    let malformed = [
        ("/api/errors".to_string(), Role::Approver, json!({ "mission_id": "nope" })),
        (format!("/api/approvals/{approval}/decision"), Role::Operator, json!({ "decision": "perhaps" })),
        ("/api/admin/faults".to_string(), Role::Operator, json!({ "kind": "everything" })),
        ("/api/chat".to_string(), Role::Admin, json!({})),
        ("/api/missions".to_string(), Role::Governance, json!({ "name": 7 })),
    ];
    for (path, role, body) in malformed {
        assert_error(app.post(&path, role, &body).await, StatusCode::FORBIDDEN, "forbidden", None).await;
    }
    let not_json = app.request(reqwest::Method::POST, "/api/tasks", Role::Approver).body("{{{").send().await.unwrap();
    assert_error(not_json, StatusCode::FORBIDDEN, "forbidden", None).await;

    assert_eq!(row_counts(&app).await, before);
    let detail = app.get_json(&format!("/api/contracts/{}", tier3["contract_id"].as_str().unwrap())).await;
    assert_eq!(detail["approval"]["status"], "pending");
    assert_eq!(app.get("/api/admin/faults", Role::Operator).await.status(), StatusCode::FORBIDDEN);
    let faults: Value = app.get("/api/admin/faults", Role::Admin).await.json().await.unwrap();
    assert_eq!(faults["chaos"], json!({}), "the refused fault was not set");
}

#[tokio::test]
async fn whoami_names_each_token_s_role_and_refuses_an_unknown_one() {
    let app = TestApp::spawn().await;
    for role in Role::ALL {
        let response = app.get("/api/whoami", role).await;
        assert_eq!(response.status(), StatusCode::OK);
        let identity: Value = response.json().await.unwrap();
        assert_eq!(identity["role"], role.as_str());
        let name = identity["identity"].as_str().unwrap();
        assert!(name.starts_with(&format!("{role}:")) && name.len() == role.as_str().len() + 9, "{name}");
        assert!(!name.contains(app.token(role)), "the identity is not the token");
    }
    let forged =
        app.anonymous(reqwest::Method::GET, "/api/whoami").bearer_auth("not-a-real-token-at-all").send().await.unwrap();
    assert_error(forged, StatusCode::UNAUTHORIZED, "unauthorized", None).await;
}

#[tokio::test]
async fn faults_are_refused_unless_the_server_enables_them() {
    let app = TestApp::spawn_on(crate::helpers::TestDatabase::migrated().await, false).await;
    let response = app.post("/api/admin/faults", Role::Admin, &json!({ "kind": { "chaos": { "rate": 0.5 } } })).await;
    assert_error(response, StatusCode::FORBIDDEN, "faults_disabled", None).await;
}

#[tokio::test]
async fn a_nul_character_in_any_text_field_is_a_422_naming_it_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let approval =
        app.accepted_error(mission, "permission_denied", 0.9).await["approval_id"].as_str().unwrap().to_string();
    let before = row_counts(&app).await;
    let nul = "a\u{0}b";
    let with = |body: Value, field: &str| {
        let mut body = body;
        body[field] = json!(nul);
        body
    };
    let error = json!({ "mission_id": mission, "error_type": "timeout", "message": "m", "severity": "high",
                        "confidence": 0.9, "idempotency_key": "nul-error" });
    let chat = json!({ "mission_id": mission, "session_id": "s", "message": "hi", "idempotency_key": "nul-chat" });
    let task = json!({ "mission_id": mission, "title": "t", "idempotency_key": "nul-task" });
    let decision = json!({ "decision": "approve", "reason": "ok" });
    let cases = [
        ("/api/missions", with(json!({ "name": "n" }), "name"), "name"),
        ("/api/missions", with(json!({ "name": "n" }), "goal"), "goal"),
        ("/api/errors", with(error.clone(), "message"), "message"),
        ("/api/chat", with(chat.clone(), "session_id"), "session_id"),
        ("/api/chat", with(chat.clone(), "message"), "message"),
        ("/api/tasks", with(task.clone(), "title"), "title"),
        (
            "/api/tasks",
            json!({ "mission_id": mission, "title": "t", "idempotency_key": "k1", "payload": { "x": nul } }),
            "payload",
        ),
        (
            "/api/tasks",
            json!({ "mission_id": mission, "title": "t", "idempotency_key": "k2", "payload": { nul: 1 } }),
            "payload",
        ),
        (
            "/api/tasks",
            json!({ "mission_id": mission, "title": "t", "idempotency_key": "k3", "payload": { "x": [[nul]] } }),
            "payload",
        ),
    ];
    for (path, body, field) in cases {
        assert_error(
            app.post(path, Role::Operator, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some(field),
        )
        .await;
    }
    let path = format!("/api/approvals/{approval}/decision");
    assert_error(
        app.post(&path, Role::Approver, &with(decision, "reason")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("reason"),
    )
    .await;
    assert_eq!(row_counts(&app).await, before);
}

#[tokio::test]
async fn a_task_payload_reads_back_as_sent_whatever_its_numbers() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let payload = json!({ "max": f64::MAX, "min": f64::MIN, "small": -1.5e-300, "int": 9007199254740993u64,
                          "nested": [{ "x": 0.1 }] });
    let task = json!({ "mission_id": mission, "title": "t", "idempotency_key": "numbers", "payload": payload });
    let created = app.post("/api/tasks", Role::Operator, &task).await;
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(app.get_json(&format!("/api/tasks/{id}")).await["payload"], payload);
}

#[tokio::test]
async fn an_error_key_reused_for_another_report_is_a_409_and_the_same_report_replays() {
    // Faults off, a tier-1 contract is written by one statement on its own;
    // on, in a transaction (a sabotage may be taken): a replay writes nothing either way.
    for enable_faults in [false, true] {
        replay_writes_nothing(TestApp::spawn_on(crate::helpers::TestDatabase::migrated().await, enable_faults).await)
            .await;
    }
}

async fn replay_writes_nothing(app: TestApp) {
    let mission = app.create_mission().await;
    let other_mission = app.create_mission().await;
    let report = json!({ "mission_id": mission, "error_type": "timeout", "message": "slow", "severity": "high",
                         "confidence": 0.9, "idempotency_key": "reused" });
    let first = app.post("/api/errors", Role::Operator, &report).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    // A replay writes nothing: no contract, resource, benchmark, event or count.
    let before = row_counts(&app).await;
    let again = app.post("/api/errors", Role::Operator, &report).await;
    assert_eq!((again.status(), again.headers().get("idempotent-replayed").is_some()), (StatusCode::ACCEPTED, true));
    assert_eq!(again.json::<Value>().await.unwrap()["contract_id"], first["contract_id"]);
    for (field, value) in [
        ("message", json!("slower")),
        ("mission_id", json!(other_mission)),
        ("confidence", json!(0.5)),
        ("severity", json!("low")),
    ] {
        let mut other = report.clone();
        other[field] = value;
        assert_error(app.post("/api/errors", Role::Operator, &other).await, StatusCode::CONFLICT, "conflict", None)
            .await;
    }
    assert_eq!(row_counts(&app).await, before);
}

#[tokio::test]
async fn a_body_that_stops_coming_is_a_408_not_a_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let before = row_counts(&app).await;
    let host = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /api/missions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        app.token(Role::Operator)
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The rest never comes; the server answers once its body timeout passes.
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), socket.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert_eq!(row_counts(&app).await, before);
}

#[tokio::test]
async fn an_id_that_is_not_utf8_is_a_404_in_json() {
    let app = TestApp::spawn().await;
    for path in ["/api/tasks/%FF%FE", "/api/missions/%C3%28/contracts", "/api/contracts/%80"] {
        let response = app.get(path, Role::Operator).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    // A long id is named, not echoed back whole.
    let response = app.get(&format!("/api/missions/{}", "a".repeat(20_000)), Role::Operator).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().len() < 1_000);
}

#[tokio::test]
async fn requests_hyper_cannot_parse_are_answered_in_json() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let host = app.address.trim_start_matches("http://");
    let many_headers: String = (0..150).map(|i| format!("X-{i}: a\r\n")).collect();
    let cases = [
        (format!("GET /{} HTTP/1.1\r\nHost: {host}\r\n\r\n", "a".repeat(70_000)), "414", "uri_too_long"),
        (
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n", "a".repeat(500_000)),
            "431",
            "headers_too_large",
        ),
        (format!("GET / HTTP/1.1\r\nHost: {host}\r\n{many_headers}\r\n"), "431", "headers_too_large"),
        (format!("G@T / HTTP/1.1\r\nHost: {host}\r\n\r\n"), "400", "malformed_request"),
        // After a request that parsed, on the same connection.
        (
            format!("GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\nGET /{} HTTP/1.1\r\n\r\n", "a".repeat(70_000)),
            "414",
            "uri_too_long",
        ),
    ];
    for (request, status, code) in cases {
        let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
        // The server may answer and close before it has read everything.
        let _ = socket.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        let refusal = answer.find(&format!("HTTP/1.1 {status} ")).unwrap_or_else(|| panic!("{status}: {answer}"));
        let (head, body) = answer[refusal..].split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: {e}: {body}"));
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    // A URI long but under the parser's limit reaches the router: a JSON 404.
    let response = app.get(&format!("/api/{}", "a".repeat(60_000)), Role::Operator).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
}
