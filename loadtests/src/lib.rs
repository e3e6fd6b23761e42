//! goose scenarios against the Grace backend, usable two ways: as a library
//! (`grace worker` registers them on its own `GooseAttack`) and as a plain goose
//! binary with goose's own CLI and reports (`cargo run -p grace-loadtests -- --help`).
//!
//! Requests are named by route template, never by id, so goose's statistics stay
//! one row per endpoint. Transactions check the response *content*, not only the
//! status, and fail with a message saying what was wrong.

use goose::prelude::*;

/// Reads `GET /api/health`, the cheapest endpoint: a reachability and overhead probe.
pub fn health_scenario() -> Scenario {
    scenario!("Health").register_transaction(transaction!(read_health).set_name("GET /api/health"))
}

async fn read_health(user: &mut GooseUser) -> TransactionResult {
    let mut goose = user.get_named("/api/health", "GET /api/health").await?;
    let Ok(response) = goose.response else {
        // goose has already recorded the transport error as a failure.
        return Ok(());
    };
    let status = response.status();
    match response.json::<serde_json::Value>().await {
        Ok(body) if status.is_success() && body.get("status").and_then(|s| s.as_str()) == Some("ok") => Ok(()),
        Ok(body) => {
            let detail = format!("health answered {status} with {body}");
            user.set_failure(&detail, &mut goose.request, None, None)
        }
        Err(e) => {
            let detail = format!("health answered {status} with a body that is not JSON: {e}");
            user.set_failure(&detail, &mut goose.request, None, None)
        }
    }
}
