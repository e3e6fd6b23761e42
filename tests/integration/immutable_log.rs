//! The immutable log: append-only, chained by Postgres, verifiable in one query.

use crate::helpers::{tamper_with_log, TestDatabase};
use grace::immutable_log::{self, LogEntry};
use serde_json::json;
use tokio_postgres::Client;

fn entry(payload: &serde_json::Value) -> LogEntry<'_> {
    LogEntry { actor: "test", action: "test.appended", resource: "r", subsystem: "tests", payload, result: "ok" }
}

async fn append_entries(client: &Client, count: i64) {
    for n in 1..=count {
        immutable_log::append(client, &entry(&json!({ "n": n }))).await.unwrap();
    }
}

#[tokio::test]
async fn update_delete_and_truncate_are_rejected() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    append_entries(&client, 1).await;

    for statement in
        ["UPDATE immutable_log SET result = 'forged'", "DELETE FROM immutable_log", "TRUNCATE immutable_log CASCADE"]
    {
        let err = client.batch_execute(statement).await.unwrap_err();
        let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains("immutable_log is append-only"), "{statement}: {err}");
    }
    let row = client.query_one("SELECT count(*), min(result) FROM immutable_log", &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(1)), (1, "ok".to_string()));
}

#[tokio::test]
async fn concurrent_appends_form_one_contiguous_valid_chain() {
    let database = TestDatabase::migrated().await;
    let mut writers = Vec::new();
    for writer in 0..8 {
        let client = database.client().await;
        writers.push(tokio::spawn(async move {
            for n in 0..25 {
                immutable_log::append(&client, &entry(&json!({"writer": writer, "n": n}))).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let client = database.client().await;
    let verdict = immutable_log::verify(&client).await.unwrap();
    assert!(verdict.holds(), "{verdict:?}");
    assert_eq!(verdict.entries, 200);
    let row = client
        .query_one("SELECT min(seq), max(seq), count(DISTINCT entry_hash) FROM immutable_log", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)), (1, 200, 200));
}

#[tokio::test]
async fn verification_finds_an_entry_altered_behind_the_triggers_back() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    append_entries(&client, 4).await;
    assert!(immutable_log::verify(&client).await.unwrap().holds());

    tamper_with_log(&client, "UPDATE immutable_log SET payload = '{\"n\":99}' WHERE seq = 2").await;
    let verdict = immutable_log::verify(&client).await.unwrap();
    assert_eq!(verdict.broken, 1, "{verdict:?}");
    assert_eq!(verdict.breaks[0].seq, 2);
    assert!(verdict.breaks[0].problem.contains("entry_hash"), "{verdict:?}");

    // Rewriting an entry's hash to match its new content breaks the next link instead.
    tamper_with_log(
        &client,
        "UPDATE immutable_log SET entry_hash = grace_log_entry_hash(seq, recorded_at, actor, action, resource,
                 subsystem, payload, result, prev_hash) WHERE seq = 2",
    )
    .await;
    let verdict = immutable_log::verify(&client).await.unwrap();
    assert_eq!(verdict.entries, 4);
    assert_eq!(verdict.breaks.iter().map(|b| b.seq).collect::<Vec<_>>(), [3], "{verdict:?}");
    assert!(verdict.breaks[0].problem.contains("prev_hash"), "{verdict:?}");
}

#[tokio::test]
async fn a_gap_in_the_sequence_is_reported() {
    let database = TestDatabase::migrated().await;
    let client = database.client().await;
    append_entries(&client, 3).await;
    tamper_with_log(&client, "DELETE FROM immutable_log WHERE seq = 2").await;
    let verdict = immutable_log::verify(&client).await.unwrap();
    assert_eq!(verdict.breaks.len(), 1, "{verdict:?}");
    assert_eq!(verdict.breaks[0].seq, 3);
    assert!(verdict.breaks[0].problem.contains("where 2 was expected"), "{verdict:?}");
}
