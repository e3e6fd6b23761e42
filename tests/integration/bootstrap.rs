//! `grace bootstrap`: migrates and seeds, and a second run changes nothing.

use crate::helpers::{run_grace, TestDatabase};
use grace::bootstrap::bootstrap;
use grace::specification::DEFAULT_POLICY;
use tokio_postgres::Client;

/// Everything a bootstrap could change: row counts of every table it touches,
/// the log's length and head, and the migration history.
async fn fingerprint(client: &Client) -> Vec<String> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM refinery_schema_history),
                    (SELECT string_agg(error_type || tier || action_type || description, ',' ORDER BY error_type) FROM tier_policy),
                    (SELECT string_agg(kind || metrics::text || max_drift, ',' ORDER BY kind) FROM benchmark_baselines),
                    (SELECT count(*) FROM immutable_log),
                    (SELECT max(entry_hash) FILTER (WHERE seq = (SELECT max(seq) FROM immutable_log)) FROM immutable_log)",
            &[],
        )
        .await
        .unwrap();
    vec![
        row.get::<_, i64>(0).to_string(),
        row.get::<_, Option<String>>(1).unwrap_or_default(),
        row.get::<_, Option<String>>(2).unwrap_or_default(),
        row.get::<_, i64>(3).to_string(),
        row.get::<_, Option<String>>(4).unwrap_or_default(),
    ]
}

#[tokio::test]
async fn bootstrap_migrates_seeds_and_logs_then_a_second_run_changes_nothing() {
    let database = TestDatabase::empty().await;
    let mut client = database.client().await;

    let first = bootstrap(&mut client).await.unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count();
    assert_eq!(first.migrations_applied.len(), files, "every migration file, on an empty database");
    assert_eq!(first.policy_rules_added.len(), DEFAULT_POLICY.len());
    assert_eq!(first.baselines_added, ["smoke", "regression"]);
    assert_eq!(first.log_seq, Some(1));
    let after_first = fingerprint(&client).await;

    let second = bootstrap(&mut client).await.unwrap();
    assert!(!second.changed_anything(), "{second:?}");
    assert_eq!(second.log_seq, None);
    assert_eq!(fingerprint(&client).await, after_first);

    // Through the binary, too: it says so.
    let ran = run_grace(&["bootstrap", "--database-url", &database.url.to_string()]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    assert!(ran.stdout.contains("already bootstrapped: nothing changed"), "{}", ran.stdout);
    assert_eq!(fingerprint(&client).await, after_first);
}

#[tokio::test]
async fn the_seeded_policy_is_the_design_table() {
    let database = TestDatabase::bootstrapped().await;
    let client = database.client().await;
    let rows = client.query("SELECT error_type, tier FROM tier_policy ORDER BY tier, error_type", &[]).await.unwrap();
    let policy: Vec<(String, i16)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected = [
        ("database_locked", 1),
        ("timeout", 1),
        ("validation_error", 1),
        ("permission_denied", 2),
        ("resource_exhausted", 2),
        ("dependency_unavailable", 3),
    ];
    assert_eq!(policy, expected.map(|(t, n)| (t.to_string(), n)));
}

#[tokio::test]
async fn bootstrap_keeps_a_rule_an_operator_tuned() {
    let database = TestDatabase::bootstrapped().await;
    let mut client = database.client().await;
    client.execute("UPDATE tier_policy SET tier = 2 WHERE error_type = 'timeout'", &[]).await.unwrap();
    client.execute("DELETE FROM tier_policy WHERE error_type = 'validation_error'", &[]).await.unwrap();

    let report = bootstrap(&mut client).await.unwrap();
    assert_eq!(report.policy_rules_added, ["validation_error"]);
    let tier: i16 =
        client.query_one("SELECT tier FROM tier_policy WHERE error_type = 'timeout'", &[]).await.unwrap().get(0);
    assert_eq!(tier, 2);
    assert_eq!(report.log_seq, Some(2), "the re-seeding is logged after the first bootstrap's entry");
}
