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
    let checks = verify::verify_mission(&client, mission, &chain, full).await.unwrap();
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
