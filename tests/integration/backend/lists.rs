//! The lists that grow with a mission come in keyset pages: every row once,
//! in order, whatever the page size; a bad cursor or size is a 422 naming it.

use super::app::TestApp;
use grace::specification::Role;
use reqwest::StatusCode;
use serde_json::Value;

/// Every page of `path` (which ends in a query), `limit` rows at a time, as the ids in order.
async fn every_page(app: &TestApp, path: &str, limit: usize) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    loop {
        let after = ids.last().map(|id| format!("&after={id}")).unwrap_or_default();
        let page = app.get_json(&format!("{path}&limit={limit}{after}")).await;
        let page: Vec<String> = page.as_array().unwrap().iter().map(|row| row["id"].as_str().unwrap().into()).collect();
        assert!(page.len() <= limit, "{page:?}");
        let last = page.len() < limit;
        ids.extend(page);
        if last {
            return ids;
        }
    }
}

async fn refused(app: &TestApp, path: &str, field: &str) {
    let response = app.get(path, Role::Operator).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], field, "{path}: {body}");
}

#[tokio::test]
async fn contracts_and_approvals_come_in_pages_with_every_row_once_in_order() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    for _ in 0..5 {
        app.accepted_error(mission, "permission_denied", 0.9).await;
    }
    let contracts = format!("/api/missions/{mission}/contracts?");
    let all = app.get_json(&contracts).await;
    let all: Vec<String> = all.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().into()).collect();
    assert_eq!(all.len(), 5);
    for limit in [1, 2, 5, 7] {
        assert_eq!(every_page(&app, &contracts, limit).await, all, "pages of {limit}");
    }

    let approvals = format!("/api/approvals?mission_id={mission}&status=pending");
    let pending = every_page(&app, &approvals, 1000).await;
    assert_eq!(pending.len(), 5);
    assert_eq!(every_page(&app, &approvals, 2).await, pending);
    assert_eq!(every_page(&app, "/api/approvals?status=pending", 3).await, pending, "no other mission has any");

    refused(&app, &format!("{contracts}limit=0"), "limit").await;
    refused(&app, &format!("{approvals}&limit=1001"), "limit").await;
    // A page after a row that does not exist names nothing: 404, like any id.
    let other_mission = app.create_mission().await;
    for after in [uuid::Uuid::new_v4().to_string(), all[0].clone()] {
        let path = format!("/api/missions/{other_mission}/contracts?after={after}");
        assert_eq!(app.get(&path, Role::Operator).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let path = format!("{approvals}&after={}", uuid::Uuid::new_v4());
    assert_eq!(app.get(&path, Role::Operator).await.status(), StatusCode::NOT_FOUND, "{path}");
}
