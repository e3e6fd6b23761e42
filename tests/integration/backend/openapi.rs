//! The OpenAPI document describes the API the server actually routes.

use super::app::TestApp;
use serde_json::Value;

#[tokio::test]
async fn the_served_openapi_document_covers_every_route() {
    let app = TestApp::spawn().await;
    let document: Value =
        app.anonymous(reqwest::Method::GET, "/api/openapi.json").send().await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut operations: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    operations.sort();
    let mut routed = vec![
        "GET /api/health",
        "GET /metrics",
        "GET /api/whoami",
        "POST /api/missions",
        "GET /api/missions/{id}",
        "GET /api/missions/{id}/contracts",
        "POST /api/errors",
        "GET /api/contracts/{id}",
        "GET /api/approvals",
        "POST /api/approvals/{id}/decision",
        "POST /api/chat",
        "POST /api/tasks",
        "GET /api/tasks/{id}",
        "PATCH /api/tasks/{id}",
        "GET /api/metrics/summary",
        "GET /api/verification/stats",
        "GET /api/verification/contracts",
        "GET /api/verification/snapshots",
        "GET /api/verification/benchmarks",
        "GET /api/log",
        "GET /api/log/verify",
        "GET /api/events/stream",
        "POST /api/mesh/ping",
        "GET /api/admin/faults",
        "POST /api/admin/faults",
        "DELETE /api/admin/faults",
    ];
    routed.sort();
    assert_eq!(operations, routed);
    // Every routed operation answers something other than "no such route".
    for operation in &routed {
        let (method, path) = operation.split_once(' ').unwrap();
        let path = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let response = app.anonymous(method.parse().unwrap(), &path).send().await.unwrap();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["error"]["message"].as_str().map(|m| m.starts_with("route ")),
            Some(true),
            "{operation} is not routed"
        );
    }
}
