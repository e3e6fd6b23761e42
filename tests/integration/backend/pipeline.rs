//! The action pipeline: tiers, confidence paths, approvals, rollback.

use super::app::TestApp;
use grace::specification::{required_events, ContractStatus, Role, Tier};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

/// The event types of a contract, in order.
async fn event_types(app: &TestApp, contract: &str) -> Vec<String> {
    let detail = app.get_json(&format!("/api/contracts/{contract}")).await;
    detail["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect()
}

async fn assert_events_complete(app: &TestApp, contract: &str) {
    let detail = app.get_json(&format!("/api/contracts/{contract}")).await;
    let tier = Tier::from_level(detail["tier"].as_i64().unwrap() as i16).unwrap();
    let status = detail["status"].as_str().unwrap();
    let expected: Vec<&str> =
        required_events(tier, status.parse::<ContractStatus>().unwrap()).unwrap().iter().map(|k| k.name()).collect();
    assert_eq!(event_types(app, contract).await, expected, "{tier} {status}");
}

#[tokio::test]
async fn every_error_type_gets_its_tier_on_every_confidence_path() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let policy = [
        ("database_locked", 1),
        ("validation_error", 1),
        ("timeout", 1),
        ("permission_denied", 2),
        ("resource_exhausted", 2),
        ("dependency_unavailable", 3),
        ("never_heard_of_it", 3),
    ];
    for (error_type, policy_tier) in policy {
        for (confidence, path) in [(0.95, "high"), (0.65, "medium"), (0.2, "low")] {
            let receipt = app.accepted_error(mission, error_type, confidence).await;
            let escalated = if path == "low" { (policy_tier + 1).min(3) } else { policy_tier };
            assert_eq!(receipt["tier"], escalated, "{error_type} at {confidence}");
            assert_eq!(receipt["confidence_path"], path);
            let expected_status = if escalated == 1 { "verified" } else { "awaiting_approval" };
            assert_eq!(receipt["status"], expected_status, "{error_type} at {confidence}");
            let reason = receipt["escalation_reason"].as_str().unwrap_or("");
            assert_eq!(reason.contains("unknown error type"), error_type == "never_heard_of_it", "{reason}");
            assert_eq!(reason.contains("low confidence"), path == "low" && policy_tier < 3, "{reason}");

            let contract = receipt["contract_id"].as_str().unwrap();
            assert_events_complete(&app, contract).await;
            let detail = app.get_json(&format!("/api/contracts/{contract}")).await;
            if escalated == 1 {
                let kind = if path == "medium" { "regression" } else { "smoke" };
                assert_eq!(detail["benchmarks"][0]["kind"], kind, "medium confidence verifies with regression");
                assert!(detail["snapshot"].is_null(), "tier 1 takes no snapshot");
            } else {
                assert_eq!(detail["snapshot"]["status"], "active");
                assert_eq!(detail["approval"]["status"], "pending");
                assert_eq!(detail["approval"]["tier"], escalated);
            }
        }
    }
    let mission = app.get_json(&format!("/api/missions/{mission}")).await;
    assert_eq!(mission["total_actions"], 21);
    assert_eq!(mission["completed_actions"], 6, "three tier-1 types at high and medium confidence");
}

#[tokio::test]
async fn approving_executes_the_stored_contract_and_rejecting_opens_a_fallback_task() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let tier2 = app.accepted_error(mission, "permission_denied", 0.9).await;
    let tier3 = app.accepted_error(mission, "dependency_unavailable", 0.9).await;
    let before = app.get_json(&format!("/api/contracts/{}", tier2["contract_id"].as_str().unwrap())).await;

    let approved = app.decide(tier2["approval_id"].as_str().unwrap(), Role::Approver, "approve").await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["contract_status"], "verified");
    assert_eq!(approved["contract_id"], tier2["contract_id"], "the same contract, not a rebuilt one");
    let after = app.get_json(&format!("/api/contracts/{}", tier2["contract_id"].as_str().unwrap())).await;
    assert_eq!(after["contract_digest"], before["contract_digest"]);
    assert_eq!(after["expected_effect"], before["expected_effect"]);
    assert_eq!(after["benchmarks"][0]["kind"], "regression");
    assert!(after["approval"]["decided_by"].as_str().unwrap().starts_with("approver:"));
    assert_events_complete(&app, tier2["contract_id"].as_str().unwrap()).await;

    let rejected = app.decide(tier3["approval_id"].as_str().unwrap(), Role::Governance, "reject").await;
    assert_eq!(rejected.status(), StatusCode::OK);
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["contract_status"], "rejected");
    let task = app.get_json(&format!("/api/tasks/{}", rejected["fallback_task_id"].as_str().unwrap())).await;
    assert_eq!(task["kind"], "manual_remediation");
    assert_eq!(task["contract_id"], tier3["contract_id"]);
    assert_eq!(task["mission_id"], mission.to_string());
    assert_events_complete(&app, tier3["contract_id"].as_str().unwrap()).await;

    let again = app.decide(tier3["approval_id"].as_str().unwrap(), Role::Governance, "approve").await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "a decision is taken once");
    let mission = app.get_json(&format!("/api/missions/{mission}")).await;
    assert_eq!((mission["completed_actions"].as_i64(), mission["failed_actions"].as_i64()), (Some(1), Some(1)));
    assert_eq!(mission["progress_ratio"], 1.0);
}

#[tokio::test]
async fn a_sabotaged_verification_rolls_back_to_the_snapshot() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let receipt = app.accepted_error(mission, "resource_exhausted", 0.9).await;
    let contract = receipt["contract_id"].as_str().unwrap();
    app.set_fault(Some(mission), serde_json::json!({ "sabotage_verification": { "count": 1 } })).await;

    let outcome: Value =
        app.decide(receipt["approval_id"].as_str().unwrap(), Role::Approver, "approve").await.json().await.unwrap();
    assert_eq!(outcome["contract_status"], "rolled_back");
    let detail = app.get_json(&format!("/api/contracts/{contract}")).await;
    assert_eq!(detail["snapshot"]["status"], "restored");
    assert_eq!(detail["benchmarks"][0]["passed"], false);
    assert_eq!(detail["benchmarks"][0]["drift_detected"], true);
    assert_events_complete(&app, contract).await;

    // The resource the action changed is back to exactly the snapshot.
    let client = app.database.client().await;
    let row = client
        .query_one(
            "SELECT r.state = s.state, r.state->>'level' FROM action_contracts c
               JOIN managed_resources r ON r.id = c.resource_id JOIN safe_hold_snapshots s ON s.id = c.snapshot_id
              WHERE c.id = $1",
            &[&contract.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "restored state equals the snapshot");
    assert_eq!(row.get::<_, String>(1), "10");
    let mission_now = app.get_json(&format!("/api/missions/{mission}")).await;
    assert_eq!(mission_now["rolled_back_actions"], 1);

    // The rollback is on the immutable log, and the chain holds.
    app.wait_for_zero_log_lag().await;
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM action_events e JOIN immutable_log l ON l.seq = e.log_seq
              WHERE e.contract_id = $1 AND l.action = 'agentic.rollback_completed'",
            &[&contract.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);
    assert_eq!(app.get_json("/api/log/verify").await["valid"], true);

    // Only one verification was sabotaged: the next one passes.
    let next = app.accepted_error(mission, "timeout", 0.9).await;
    assert_eq!(next["status"], "verified");
}

#[tokio::test]
async fn a_sabotaged_tier_1_action_fails_without_anything_to_restore() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    app.set_fault(Some(mission), serde_json::json!({ "sabotage_verification": { "count": 1 } })).await;
    let receipt = app.accepted_error(mission, "database_locked", 0.9).await;
    assert_eq!(receipt["status"], "failed");
    assert_events_complete(&app, receipt["contract_id"].as_str().unwrap()).await;
    assert_eq!(app.get_json(&format!("/api/missions/{mission}")).await["failed_actions"], 1);
}

#[tokio::test]
async fn an_approved_contract_whose_terms_changed_or_that_was_written_after_its_decision_is_named_rebuilt() {
    let app = TestApp::spawn().await;
    let mission = app.create_mission().await;
    let mut contracts = Vec::new();
    for _ in 0..2 {
        let receipt = app.accepted_error(mission, "permission_denied", 0.9).await;
        let approved = app.decide(receipt["approval_id"].as_str().unwrap(), Role::Approver, "approve").await;
        assert_eq!(approved.status(), StatusCode::OK);
        contracts.push(receipt["contract_id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    app.wait_for_zero_log_lag().await;
    let client = app.database.client().await;
    assert_eq!(grace::verify::rebuilt_contracts(&client, mission).await.unwrap(), Vec::<Uuid>::new());
    let chain = app.database.chain_proof().await;
    let c4 = |checks: Vec<grace::verify::ConsistencyCheck>| checks.into_iter().find(|c| c.id == "C4").unwrap();
    assert!(
        c4(grace::verify::verify_mission(std::slice::from_ref(&client), mission, &chain, false).await.unwrap()).passed
    );

    // Its terms edited after the fact: they no longer hash to the digest taken
    // when it was written, though it was written before the decision.
    client
        .execute(
            "UPDATE action_contracts SET expected_effect = '{\"level\": 99, \"revision\": 1}' WHERE id = $1",
            &[&contracts[0]],
        )
        .await
        .unwrap();
    assert_eq!(grace::verify::rebuilt_contracts(&client, mission).await.unwrap(), [contracts[0]]);
    // Written after its decision: the digest still matches, the order does not.
    client
        .execute("UPDATE action_contracts SET created_at = now() + interval '1 hour' WHERE id = $1", &[&contracts[1]])
        .await
        .unwrap();
    let mut rebuilt = grace::verify::rebuilt_contracts(&client, mission).await.unwrap();
    rebuilt.sort();
    let mut expected = contracts.clone();
    expected.sort();
    assert_eq!(rebuilt, expected);
    let check = c4(grace::verify::verify_mission(std::slice::from_ref(&client), mission, &chain, false).await.unwrap());
    assert!(!check.passed);
    assert!(
        check
            .examples
            .iter()
            .any(|e| e == &format!("contract {}: what executed is not the contract approved", contracts[0])),
        "{check}"
    );
}

/// The server keeps the tier policy, and each contract's statement checks the
/// rule it was decided by against the table: a rule an operator changes in
/// SQL decides the very next report, with faults off (one statement, no
/// transaction) and on (a transaction).
#[tokio::test]
async fn a_rule_changed_in_the_table_decides_the_next_report() {
    for enable_faults in [false, true] {
        let app = TestApp::spawn_on(crate::helpers::TestDatabase::migrated().await, enable_faults).await;
        let mission = app.create_mission().await;
        assert_eq!(app.accepted_error(mission, "timeout", 0.95).await["tier"], 1, "the seeded rule");
        let client = app.database.client().await;
        let decided =
            |receipt: &Value| (receipt["tier"].as_i64().unwrap(), receipt["status"].as_str().unwrap().to_string());

        client.batch_execute("UPDATE tier_policy SET tier = 2 WHERE error_type = 'timeout'").await.unwrap();
        let receipt = app.accepted_error(mission, "timeout", 0.95).await;
        assert_eq!(decided(&receipt), (2, "awaiting_approval".to_string()), "faults {enable_faults}: {receipt}");

        client.batch_execute("DELETE FROM tier_policy WHERE error_type = 'timeout'").await.unwrap();
        let receipt = app.accepted_error(mission, "timeout", 0.95).await;
        assert_eq!(decided(&receipt), (3, "awaiting_approval".to_string()), "faults {enable_faults}: {receipt}");
        assert!(receipt["escalation_reason"].as_str().unwrap().contains("unknown error type"), "{receipt}");

        client
            .batch_execute(
                "INSERT INTO tier_policy (error_type, tier, action_type, description)
                 VALUES ('timeout', 1, 'retry_with_backoff', 'back again')",
            )
            .await
            .unwrap();
        let receipt = app.accepted_error(mission, "timeout", 0.95).await;
        assert_eq!(decided(&receipt), (1, "verified".to_string()), "faults {enable_faults}: {receipt}");
        let contract = receipt["contract_id"].as_str().unwrap();
        assert_eq!(app.get_json(&format!("/api/contracts/{contract}")).await["action_type"], "retry_with_backoff");
        // Four reports, four contracts: a report decided under a stale rule wrote nothing.
        let contracts: i64 = client
            .query_one("SELECT count(*) FROM action_contracts WHERE mission_id = $1", &[&mission])
            .await
            .unwrap()
            .get(0);
        assert_eq!(contracts, 4);
    }
}
