//! Migrations and the schema they produce, checked against `grace::db::schema`.

use crate::helpers::TestDatabase;
use grace::db::{migrations, schema};

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_a_second_run_is_a_no_op() {
    let database = TestDatabase::empty().await;
    let mut client = database.client().await;

    let status = migrations::status(&mut client).await.unwrap();
    assert!(status.applied.is_empty());
    assert_eq!(status.pending.len(), 29, "{status:?}");

    let applied = migrations::apply(&mut client).await.unwrap();
    assert_eq!(
        applied,
        [
            "V1__missions_and_contracts",
            "V2__events_and_immutable_log",
            "V3__everyday_traffic",
            "V4__control_plane",
            "V5__pipeline_and_sequencer",
            "V6__acked_writes",
            "V7__scenario_runs",
            "V8__read_model_counters",
            "V9__log_checkpoints",
            "V10__foreign_keys_enforced_always",
            "V11__shared_faults",
            "V12__share_first_user",
            "V13__share_progress",
            "V14__events_are_the_outbox",
            "V15__mission_progress_in_slots",
            "V16__format_checks_without_bounded_repeats",
            "V17__log_hash_inlined",
            "V18__chain_checked_per_statement",
            "V19__indexes_without_nulls",
            "V20__linked_events_unique_without_nulls",
            "V21__column_rules_as_domains",
            "V22__chain_check_reads_one_entry_before",
            "V23__stats_slot_per_session",
            "V24__write_outcomes",
            "V25__upload_deadline",
            "V26__log_guards_always",
            "V27__stopping_runs",
            "V28__analyze_hot_tables_when_doubled",
            "V29__goose_metrics_only_when_kept"
        ]
    );
    assert!(migrations::apply(&mut client).await.unwrap().is_empty());
    let status = migrations::status(&mut client).await.unwrap();
    assert!(status.is_current(), "{status:?}");
    assert_eq!(status.applied, applied);
}

#[tokio::test]
async fn the_migrated_schema_is_exactly_the_expected_one() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;

    let mut expected_tables: Vec<String> = schema::TABLES.iter().map(ToString::to_string).collect();
    expected_tables.sort();
    assert_eq!(schema::present_tables(&client).await.unwrap(), expected_tables);

    let mut expected_keys = schema::expected_foreign_keys();
    expected_keys.sort();
    assert_eq!(schema::present_foreign_keys(&client).await.unwrap(), expected_keys);

    let mut triggers: Vec<String> = schema::IMMUTABLE_LOG_TRIGGERS.iter().map(ToString::to_string).collect();
    triggers.sort();
    assert_eq!(schema::always_immutable_log_triggers(&client).await.unwrap(), triggers);
}

#[tokio::test]
async fn every_foreign_key_has_an_index_leading_with_its_column() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    let unindexed: Vec<String> = client
        .query(
            "SELECT c.conrelid::regclass || '.' || a.attname
               FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
              WHERE c.contype = 'f'
                AND NOT EXISTS (SELECT 1 FROM pg_index i
                                 WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(unindexed.is_empty(), "foreign keys without an index: {unindexed:?}");
}

/// The contract columns the check tests vary; the rest of the row is valid.
struct ContractRow {
    tier: i16,
    confidence: f64,
    status: &'static str,
    error_type: String,
    digest: String,
}

impl Default for ContractRow {
    fn default() -> Self {
        Self { tier: 1, confidence: 0.9, status: "planned", error_type: "timeout".into(), digest: "a".repeat(64) }
    }
}

async fn insert_contract(
    client: &tokio_postgres::Client,
    mission: uuid::Uuid,
    row: &ContractRow,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO action_contracts (mission_id, idempotency_key, error_type, error_message, severity,
                 action_type, policy_tier, tier, confidence, confidence_path, expected_effect, baseline_state, status,
                 contract_digest)
             VALUES ($1, gen_random_uuid()::text, $2::text, 'slow', 'high', 'raise_timeout', 1, $3::smallint,
                     $4::float8, 'high', '{}', '{}', $5::text, $6::text)",
            &[&mission, &row.error_type, &row.tier, &row.confidence, &row.status, &row.digest],
        )
        .await
}

/// A write was `accepted`, or else refused by a CHECK constraint.
fn assert_checked(written: Result<u64, tokio_postgres::Error>, accepted: bool, what: &str) {
    match written {
        Ok(_) => assert!(accepted, "accepted {what}"),
        Err(e) => assert_eq!(
            (accepted, e.code()),
            (false, Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)),
            "{what}: {e}"
        ),
    }
}

async fn new_mission(client: &tokio_postgres::Client) -> uuid::Uuid {
    client.query_one("INSERT INTO missions (name) VALUES ('m') RETURNING id", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn check_constraints_refuse_out_of_range_values() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    let mission = new_mission(&client).await;
    let valid = ContractRow::default();
    assert_checked(insert_contract(&client, mission, &valid).await, true, "a valid contract");
    for (tier, confidence, status) in
        [(4, 0.9, "planned"), (0, 0.9, "planned"), (1, 1.5, "planned"), (1, -0.1, "planned"), (1, 0.9, "exploded")]
    {
        let row = ContractRow { tier, confidence, status, ..ContractRow::default() };
        assert_checked(insert_contract(&client, mission, &row).await, false, &format!("{tier} {confidence} {status}"));
    }
    let orphan = client
        .execute("INSERT INTO tasks (mission_id, title, idempotency_key) VALUES (gen_random_uuid(), 't', 'k1')", &[])
        .await
        .unwrap_err();
    assert_eq!(orphan.code(), Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION));
    client
        .execute("INSERT INTO tasks (mission_id, title, idempotency_key) VALUES ($1, 't', 'k1')", &[&mission])
        .await
        .unwrap();
    let twice = client
        .execute("INSERT INTO tasks (mission_id, title, idempotency_key) VALUES ($1, 't', 'k1')", &[&mission])
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION));
}

/// V16 rewrote the hash and identifier checks without bounded regex repeats;
/// they must accept and refuse exactly what the `{64}` / `{0,62}` forms did.
#[tokio::test]
async fn format_checks_accept_exactly_lowercase_hex_hashes_and_short_identifiers() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    let mission = new_mission(&client).await;
    let hex = |n: usize| "0123456789abcdef".chars().cycle().take(n).collect::<String>();
    let cases = [
        (hex(64), "timeout".to_string(), true),
        (String::new(), "timeout".to_string(), true),
        (hex(64), format!("t{}", "x_9".repeat(20) + "xy"), true),
        (hex(64).to_uppercase(), "timeout".to_string(), false),
        (hex(63), "timeout".to_string(), false),
        (hex(65), "timeout".to_string(), false),
        (format!("g{}", hex(63)), "timeout".to_string(), false),
        (format!("{}\n", hex(63)), "timeout".to_string(), false),
        (hex(64), format!("t{}", "x".repeat(63)), false),
        (hex(64), "Timeout".to_string(), false),
        (hex(64), "9lives".to_string(), false),
        (hex(64), String::new(), false),
    ];
    for (digest, error_type, accepted) in cases {
        let what = format!("{digest:?} / {error_type:?}");
        let row = ContractRow { digest, error_type, ..ContractRow::default() };
        assert_checked(insert_contract(&client, mission, &row).await, accepted, &what);
    }
    let contract: uuid::Uuid = client.query_one("SELECT id FROM action_contracts LIMIT 1", &[]).await.unwrap().get(0);
    // The one snapshot a contract may have comes last, so every refusal is the check's.
    for (manifest, accepted) in [(hex(64).to_uppercase(), false), (hex(63), false), (hex(65), false), (hex(64), true)] {
        let inserted = client
            .execute(
                "INSERT INTO safe_hold_snapshots (contract_id, state, manifest_hash) VALUES ($1, '{}', $2)",
                &[&contract, &manifest],
            )
            .await;
        assert_checked(inserted, accepted, &format!("{manifest:?}"));
    }
}

/// Events draw their ids from the identity column's sequence by name
/// (`events::NEXT_ID`); the name must stay the one PostgreSQL gave it.
#[tokio::test]
async fn the_event_ids_sequence_is_the_one_named_here() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    let sequence: String =
        client.query_one("SELECT pg_get_serial_sequence('action_events', 'id')", &[]).await.unwrap().get(0);
    assert_eq!(sequence, "public.action_events_id_seq");
    assert!(grace::backend::events::NEXT_ID.contains("'action_events_id_seq'"), "{}", grace::backend::events::NEXT_ID);
}

/// V21: the single-column rules of the tables a request writes are domains,
/// which PostgreSQL prepares once per session where it parses and plans a
/// table's CHECKs on every statement. Each domain takes what the CHECK it
/// replaced took and refuses what it refused; no single-column CHECK is left
/// on those tables (one added later would bring the per-statement cost back).
#[tokio::test]
async fn the_request_tables_check_single_columns_by_domains_that_refuse_what_their_checks_refused() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    let long = |n: usize| "k".repeat(n);
    let cases: [(&str, &[&str], &[&str]); 17] = [
        ("short_text", &["k", &long(200)], &["", &long(201)]),
        ("identifier", &["timeout", "a_1"], &["Timeout", "9lives", "a-b", &format!("a{}", long(63))]),
        ("event_type", &["agentic.contract_created", "chat.exchanged"], &["chat", "Chat.x", "chat.", "chat..x"]),
        ("json_object", &["{}", r#"{"a": 1}"#], &["[]", "1", "null"]),
        ("tier", &["1", "3"], &["0", "4"]),
        ("confidence", &["0", "1", "0.5"], &["-0.1", "1.01"]),
        ("confidence_path", &["high", "medium", "low"], &["HIGH", ""]),
        ("severity", &["low", "critical"], &["fatal"]),
        ("contract_status", &["planned", "rolled_back", "rejected"], &["exploded", "Planned"]),
        ("contract_digest", &["", &"0a".repeat(32)], &[&"0A".repeat(32), &"0a".repeat(31), "g"]),
        ("benchmark_kind", &["smoke", "regression"], &["load"]),
        ("stats_slot", &["0", "127"], &["-1", "128"]),
        ("chat_role", &["user", "assistant"], &["system"]),
        ("task_status", &["queued", "cancelled"], &["done"]),
        ("task_title", &["t", &long(500)], &["", &long(501)]),
        ("task_kind", &["submitted", "manual_remediation"], &["other"]),
        ("attempts", &["0", "7"], &["-1"]),
    ];
    for (domain, taken, refused) in cases {
        let cast = format!("SELECT $1::text::{domain}::text");
        for value in taken {
            client.query_one(&cast, &[value]).await.unwrap_or_else(|e| panic!("{domain} refused {value:?}: {e}"));
        }
        for value in refused {
            let error = client.query_one(&cast, &[value]).await.expect_err(&format!("{domain} took {value:?}"));
            assert_eq!(error.code(), Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION), "{domain} {value:?}");
        }
    }
    let single_column_checks: Vec<String> = client
        .query(
            "SELECT conrelid::regclass || ' ' || conname AS name FROM pg_constraint
              WHERE contype = 'c' AND cardinality(conkey) = 1
                AND conrelid::regclass::text IN ('action_contracts', 'managed_resources', 'benchmark_runs',
                    'action_events', 'mission_stats', 'mission_confidence_minutes', 'chat_messages', 'tasks')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("name"))
        .collect();
    assert_eq!(single_column_checks, Vec::<String>::new());
}
