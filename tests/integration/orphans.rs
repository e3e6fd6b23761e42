//! C1 without reading every row: a key Postgres enforces in every session is
//! proven by the catalog; a key anyone could have slipped past is scanned.

use crate::helpers::TestDatabase;
use grace::verify::{self, ConsistencyCheck};
use uuid::Uuid;

async fn c1(database: &TestDatabase, full: bool) -> ConsistencyCheck {
    let client = database.client().await;
    let chain = database.chain_proof().await;
    let mission: Uuid =
        client.query_one("INSERT INTO missions (name) VALUES ('orphans') RETURNING id", &[]).await.unwrap().get(0);
    let checks = verify::verify_mission(std::slice::from_ref(&client), mission, &chain, full).await.unwrap();
    checks.into_iter().find(|check| check.id == "C1").unwrap()
}

#[tokio::test]
async fn enforced_keys_are_proven_by_postgres_and_a_key_switched_off_is_scanned() {
    let database = TestDatabase::bootstrapped().await;
    let keys = grace::db::schema::expected_foreign_keys().len();
    let check = c1(&database, false).await;
    assert!(check.passed, "{check}");
    assert!(check.basis.starts_with(&format!("{keys} of {keys} foreign keys enforced")), "{check}");
    assert!(check.basis.contains("0 scanned row by row"), "{check}");

    // session_replication_role = replica does not skip an ALWAYS trigger.
    let client = database.client().await;
    let ghost = Uuid::new_v4();
    let refused = client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL session_replication_role = replica;
             INSERT INTO action_events (event_type, mission_id, actor, resource, result)
             VALUES ('test.orphan', '{ghost}', 'test', 'mission/{ghost}', 'ok'); COMMIT;"
        ))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("foreign key") || format!("{refused:?}").contains("foreign key"),
        "{refused:?}"
    );
    client.batch_execute("ROLLBACK").await.unwrap();

    // Switching the triggers off and on again leaves them ORIGIN-only: that
    // table's keys are scanned from then on, and the orphan is named.
    crate::helpers::plant_orphan_event(&client, ghost).await;
    let check = c1(&database, false).await;
    assert!(!check.passed, "{check}");
    // action_events' four keys.
    assert!(check.basis.starts_with(&format!("{} of {keys} foreign keys enforced", keys - 4)), "{check}");
    assert!(check.basis.contains("4 scanned row by row"), "{check}");
    assert!(check.examples.iter().any(|e| e.contains(&ghost.to_string())), "{check}");

    let full = c1(&database, true).await;
    assert!(full.basis.contains(&format!("{keys} scanned row by row")), "{full}");
}

#[tokio::test]
async fn a_full_scan_checks_log_references_against_the_proven_chain_and_joins_them_when_it_is_broken() {
    let database = TestDatabase::bootstrapped().await;
    let client = database.client().await;
    let head: i64 = client.query_one("SELECT max(seq) FROM immutable_log", &[]).await.unwrap().get(0);
    let mission: Uuid =
        client.query_one("INSERT INTO missions (name) VALUES ('refs') RETURNING id", &[]).await.unwrap().get(0);
    let plant = |log_seq: i64| {
        format!(
            "INSERT INTO action_events (event_type, mission_id, actor, resource, result, log_seq)
             VALUES ('test.orphan', '{mission}', 'test', 'mission/{mission}', 'ok', {log_seq});"
        )
    };
    let beyond = head + 1000;
    client
        .batch_execute(&format!(
            "ALTER TABLE action_events DISABLE TRIGGER ALL; {} {} ALTER TABLE action_events ENABLE TRIGGER ALL;",
            plant(0),
            plant(beyond)
        ))
        .await
        .unwrap();
    let named = |check: &ConsistencyCheck, seq: i64| {
        check.examples.iter().any(|e| e.starts_with(&format!("public.action_events.log_seq = {seq} refers to no row")))
    };

    // The chain proven from genesis: seqs 1..=head all exist, so a reference
    // is checked by its value; one before the start and one past the head are
    // both orphans.
    client.batch_execute("DELETE FROM log_checkpoints").await.unwrap();
    let check = c1(&database, true).await;
    assert!(!check.passed, "{check}");
    assert_eq!(check.violations, 2, "{check}");
    assert!(named(&check, 0) && named(&check, beyond), "{check}");
    assert!(check.basis.contains(&format!("checked against the chain proven contiguous from genesis to seq {head}")));

    // A superuser removes the first entry: the chain no longer proves the
    // seqs, so the references are joined to the log — and the one that
    // pointed at the removed entry is an orphan too.
    client
        .batch_execute(&format!(
            "ALTER TABLE action_events DISABLE TRIGGER ALL; {} ALTER TABLE action_events ENABLE TRIGGER ALL;
             ALTER TABLE immutable_log DISABLE TRIGGER ALL; DELETE FROM immutable_log WHERE seq = 1;
             ALTER TABLE immutable_log ENABLE TRIGGER ALL; DELETE FROM log_checkpoints;",
            plant(1)
        ))
        .await
        .unwrap();
    let check = c1(&database, true).await;
    assert_eq!(check.violations, 3, "{check}");
    assert!(named(&check, 0) && named(&check, 1) && named(&check, beyond), "{check}");
    assert!(!check.basis.contains("checked against the chain"), "{check}");
}

#[tokio::test]
async fn a_condition_that_cannot_be_checked_is_named_with_what_the_database_said() {
    let database = TestDatabase::bootstrapped().await;
    let client = database.client().await;
    let chain = database.chain_proof().await;
    let mission: Uuid =
        client.query_one("INSERT INTO missions (name) VALUES ('unreadable') RETURNING id", &[]).await.unwrap().get(0);
    // The catalog still answers (C1 reads only it here); the tables no longer resolve.
    client.batch_execute("CREATE SCHEMA nothing_here; SET search_path = nothing_here").await.unwrap();
    let err = verify::verify_mission(std::slice::from_ref(&client), mission, &chain, false).await.unwrap_err();
    assert_eq!(err.check, "C2 event completeness");
    let said = err.to_string();
    assert!(said.starts_with("C2 event completeness could not be checked: "), "{said}");
    assert!(said.contains("does not exist"), "{said}");
}
