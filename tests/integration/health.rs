//! `grace health` through the real binary: exit codes and what it names.

use crate::helpers::{closed_port, run_grace, TestDatabase};

#[tokio::test]
async fn health_passes_on_a_bootstrapped_database() {
    let database = TestDatabase::bootstrapped().await;
    let ran = run_grace(&["health", "--database-url", &database.url.to_string()]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let lines: Vec<&str> = ran.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 7, "{}", ran.stdout);
    for line in &lines[..6] {
        assert!(line.starts_with('✓'), "{line}");
    }
    assert!(lines[6].starts_with("– backend"), "{}", lines[6]);
    assert!(ran.stdout.contains("✓ log chain verifies: 1 entries"), "{}", ran.stdout);

    let ran = run_grace(&["health", "--json", "--database-url", &database.url.to_string()]).await;
    let checklist: serde_json::Value = serde_json::from_str(&ran.stdout).expect("--json prints JSON");
    assert_eq!(checklist["checks"][0]["name"], "database reachable");
    assert_eq!(checklist["checks"][0]["outcome"], "pass");
}

#[tokio::test]
async fn health_names_a_dropped_foreign_key_and_exits_1() {
    let database = TestDatabase::bootstrapped().await;
    database
        .client()
        .await
        .batch_execute("ALTER TABLE action_events DROP CONSTRAINT action_events_contract_id_fkey")
        .await
        .unwrap();
    let ran = run_grace(&["health", "--database-url", &database.url.to_string()]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert!(
        ran.stdout
            .contains("✗ foreign keys present: missing: public.action_events.contract_id → public.action_contracts"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("✓ tables present"), "other checks still run: {}", ran.stdout);
}

#[tokio::test]
async fn health_reports_a_disabled_append_only_trigger_and_a_broken_chain() {
    let database = TestDatabase::bootstrapped().await;
    database
        .client()
        .await
        .batch_execute(
            "ALTER TABLE immutable_log DISABLE TRIGGER immutable_log_append_only;
             UPDATE immutable_log SET result = 'forged' WHERE seq = 1;",
        )
        .await
        .unwrap();
    let ran = run_grace(&["health", "--database-url", &database.url.to_string()]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert!(
        ran.stdout.contains("✗ immutable_log append-only: trigger missing or disabled: immutable_log_append_only"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("✗ log chain verifies: 1 of 1 entries broken — seq 1: entry_hash"), "{}", ran.stdout);
}

#[tokio::test]
async fn health_on_an_unmigrated_database_says_to_bootstrap() {
    let database = TestDatabase::empty().await;
    let ran = run_grace(&["health", "--database-url", &database.url.to_string()]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert!(ran.stdout.contains("✗ migrations current: pending V1__missions_and_contracts"), "{}", ran.stdout);
    assert!(ran.stdout.contains("(run `grace bootstrap`)"), "{}", ran.stdout);
    assert!(ran.stdout.contains("✗ tables present: missing: public.tier_policy"), "{}", ran.stdout);
}

#[tokio::test]
async fn health_against_a_closed_port_exits_3_without_printing_the_password() {
    let port = closed_port();
    let url = format!("postgres://grace:s3cret-pw@127.0.0.1:{port}/grace");
    for args in [vec!["health", "--database-url", &url], vec!["health"]] {
        let mut command = crate::helpers::grace();
        command.args(&args).env("DATABASE_URL", &url);
        let ran: crate::helpers::Ran = command.output().await.unwrap().into();
        assert_eq!(ran.code, Some(3), "{}", ran.all_output());
        assert!(!ran.all_output().contains("s3cret-pw"), "password leaked: {}", ran.all_output());
        assert!(
            ran.stdout.contains(&format!("✗ database reachable: database unreachable at 127.0.0.1:{port}")),
            "{}",
            ran.stdout
        );
        assert!(ran.stdout.contains("postgres://grace:***@"), "{}", ran.stdout);
    }
}

#[tokio::test]
async fn health_checks_a_running_backend_its_mesh_and_its_log_lag() {
    let app = crate::backend::TestApp::spawn().await;
    let token = app.token(grace::specification::Role::Operator).to_string();
    let url = app.database.url.to_string();
    let ran = run_grace(&["health", "--database-url", &url, "--backend", &app.address, "--token", &token]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    assert!(ran.stdout.contains("✓ backend reachable"), "{}", ran.stdout);
    assert!(ran.stdout.contains("✓ mesh round trip: ping delivered in"), "{}", ran.stdout);
    assert!(ran.stdout.contains("✓ log lag zero"), "{}", ran.stdout);
    assert!(!ran.all_output().contains(&token), "the token is never printed");

    let ran = run_grace(&["health", "--database-url", &url, "--backend", &app.address]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    assert!(ran.stdout.contains("– mesh round trip: no --token given"), "{}", ran.stdout);

    let closed = format!("http://127.0.0.1:{}", closed_port());
    let ran = run_grace(&["health", "--database-url", &url, "--backend", &closed]).await;
    assert_eq!(ran.code, Some(3), "{}", ran.all_output());
    assert!(ran.stdout.contains("✗ backend reachable"), "{}", ran.stdout);

    let ran = run_grace(&["health", "--database-url", &url, "--backend", "ftp://example"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
}
