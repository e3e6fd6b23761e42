//! The immutable log: append-only, chained by Postgres, proven from genesis or
//! from the last checkpoint, and held to the anchors kept outside it.

use crate::helpers::{tamper_with_log, TestDatabase};
use grace::immutable_log::anchors::Anchor;
use grace::immutable_log::{self, ChainProof, LogEntry, ProofOptions, ProofStart};
use serde_json::json;
use std::sync::Arc;
use tokio_postgres::Client;

fn entry(payload: &str) -> LogEntry<'_> {
    LogEntry { actor: "test", action: "test.appended", resource: "r", subsystem: "tests", payload, result: "ok" }
}

/// Appends `count` entries, each in its own transaction.
async fn append_entries(client: &mut Client, count: i64) {
    for n in 1..=count {
        append_one(client, &json!({ "n": n })).await;
    }
}

async fn append_one(client: &mut Client, payload: &serde_json::Value) {
    let tx = client.transaction().await.unwrap();
    immutable_log::append(&tx, &entry(&payload.to_string())).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn update_delete_and_truncate_are_rejected() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 1).await;

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

/// An insert of entries at `seqs` after the 3-entry chain, each given the
/// tail's hash as prev_hash unless `link` says otherwise, and a hash computed
/// by the database's own encoding unless `hash` does; `recorded` is an SQL
/// expression for recorded_at.
fn insert_after_three(seqs: &str, link: &str, hash: &str, recorded: &str) -> String {
    format!(
        "WITH tail AS (SELECT entry_hash, recorded_at FROM immutable_log WHERE seq = 3),
              new AS (SELECT seq, {recorded} AS recorded_at, {link} AS prev_hash
                        FROM unnest(ARRAY[{seqs}]::bigint[]) AS seq, tail)
         INSERT INTO immutable_log (seq, recorded_at, actor, action, resource, subsystem, payload, result,
                                    prev_hash, entry_hash)
         SELECT seq, recorded_at, 'test', 'test.forged', 'r', 'tests', '{{}}', 'ok', prev_hash,
                {hash}
           FROM new"
    )
}

const CANONICAL_HASH: &str = "grace_log_entry_hash(seq, recorded_at, 'test', 'test.forged', 'r', 'tests', '{}', 'ok', \
                              prev_hash)";

#[tokio::test]
async fn the_database_refuses_an_appended_entry_that_does_not_chain() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 3).await;
    let tail = "(SELECT entry_hash FROM tail)";
    let second = "(SELECT entry_hash FROM immutable_log WHERE seq = 2)";
    let after_tail = "(SELECT recorded_at FROM tail) + interval '1 microsecond'";
    let refused = [
        (insert_after_three("4", second, CANONICAL_HASH, after_tail), "entry 4 does not chain: prev_hash is not"),
        (insert_after_three("4", tail, &format!("md5({CANONICAL_HASH}) || md5('x')"), after_tail), "entry_hash does"),
        (insert_after_three("5", tail, CANONICAL_HASH, after_tail), "the entry before it is missing"),
        (
            insert_after_three("4", tail, CANONICAL_HASH, "(SELECT recorded_at FROM tail) - interval '1 second'"),
            "recorded_at is before",
        ),
        (insert_after_three("4", tail, CANONICAL_HASH, "now() + interval '1 hour'"), "in the future"),
        // The first entry is fine; the second does not link to it: nothing is written.
        (insert_after_three("4, 5", tail, CANONICAL_HASH, after_tail), "entry 5 does not chain: prev_hash"),
        // A gap inside one statement: entry 6's predecessor is neither new nor stored.
        (insert_after_three("4, 6", tail, CANONICAL_HASH, after_tail), "entry 6 does not chain: the entry before"),
    ];
    for (statement, problem) in refused {
        let err = client.batch_execute(&statement).await.unwrap_err();
        let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains(problem), "{problem}: {err}");
        assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::INTEGRITY_CONSTRAINT_VIOLATION), "{problem}");
    }
    // A fork: a second entry 3.
    let err = client.batch_execute(&insert_after_three("3", tail, CANONICAL_HASH, after_tail)).await.unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), "{err}");
    let count: i64 = client.query_one("SELECT count(*) FROM immutable_log", &[]).await.unwrap().get(0);
    assert_eq!(count, 3);

    // The same statement, linked right, is accepted: the checks above failed on
    // what they name, not on the statement's form.
    client.batch_execute(&insert_after_three("4", tail, CANONICAL_HASH, after_tail)).await.unwrap();
    let verdict = immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap();
    assert!(verdict.holds() && verdict.entries == 4, "{verdict:?}");
}

#[tokio::test]
async fn concurrent_appends_form_one_contiguous_valid_chain() {
    let database = TestDatabase::migrated().await;
    let mut writers = Vec::new();
    for writer in 0..8 {
        let mut client = database.client().await;
        writers.push(tokio::spawn(async move {
            for n in 0..25 {
                append_one(&mut client, &json!({"writer": writer, "n": n})).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let client = database.client().await;
    let verdict = immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap();
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
    let mut client = database.client().await;
    append_entries(&mut client, 4).await;
    assert!(immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap().holds());

    tamper_with_log(&client, "UPDATE immutable_log SET payload = '{\"n\":99}' WHERE seq = 2").await;
    let verdict = immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap();
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
    let verdict = immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap();
    assert_eq!(verdict.entries, 4);
    assert_eq!(verdict.breaks.iter().map(|b| b.seq).collect::<Vec<_>>(), [3], "{verdict:?}");
    assert!(verdict.breaks[0].problem.contains("prev_hash"), "{verdict:?}");
}

#[tokio::test]
async fn a_gap_in_the_sequence_is_reported() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 3).await;
    tamper_with_log(&client, "DELETE FROM immutable_log WHERE seq = 2").await;
    let verdict = immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap();
    assert_eq!(verdict.breaks.len(), 1, "{verdict:?}");
    assert_eq!(verdict.breaks[0].seq, 3);
    assert!(verdict.breaks[0].problem.contains("where 2 was expected"), "{verdict:?}");
}

/// Proves the chain the way the CLI does, over two connections.
async fn prove(database: &TestDatabase, full: bool, anchor: Option<&Anchor>) -> ChainProof {
    prove_at_most(database, full, anchor, None).await
}

async fn prove_at_most(database: &TestDatabase, full: bool, anchor: Option<&Anchor>, max: Option<i64>) -> ChainProof {
    prove_with(database, ProofOptions { full, anchor: None, verified_by: "tests", max_entries: max, sample: 0 }, anchor)
        .await
}

async fn prove_with(database: &TestDatabase, options: ProofOptions<'_>, anchor: Option<&Anchor>) -> ChainProof {
    let readers = [Arc::new(database.client().await), Arc::new(database.client().await)];
    let options = ProofOptions { anchor: anchor.map(|a| (a, "anchors.json")), ..options };
    immutable_log::prove(&readers, options).await.unwrap()
}

/// An incremental proof that spot-checks `sample` entries proven before.
async fn prove_sampling(database: &TestDatabase, sample: u64) -> ChainProof {
    let options = ProofOptions { full: false, anchor: None, verified_by: "tests", max_entries: None, sample };
    prove_with(database, options, None).await
}

#[tokio::test]
async fn an_edit_under_the_checkpoint_is_caught_by_the_spot_check_about_as_often_as_it_says() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 200).await;
    assert!(prove_sampling(&database, 0).await.verdict.holds(), "the checkpoint at 200");
    // Behind the triggers' back, under the checkpoint: no range proof reads it again.
    tamper_with_log(&client, "UPDATE immutable_log SET result = 'forged' WHERE seq = 120").await;
    let mut caught = 0;
    for _ in 0..40 {
        let proof = prove_sampling(&database, 50).await;
        let check = proof.spot_check.clone().expect("an incremental proof spot-checks");
        assert_eq!((check.checked, check.proven), (50, 200));
        assert_eq!(check.detection_probability(), 0.25);
        assert!(proof.summary().contains("spot-checked 50 of the 200 entries proven before"), "{}", proof.summary());
        if !proof.verdict.holds() {
            assert_eq!(proof.verdict.breaks.iter().map(|b| b.seq).collect::<Vec<_>>(), [120], "{proof:?}");
            caught += 1;
        }
    }
    // Binomial(40, 0.25): 10 expected, σ 2.7; outside 1..=22 with probability under 1e-4.
    assert!((1..=22).contains(&caught), "caught in {caught} of 40 proofs at a stated 25% each");

    // A sample as large as what was proven checks all of it: caught for sure.
    let whole = prove_sampling(&database, 1_000).await;
    assert_eq!(whole.spot_check.as_ref().map(|c| c.checked), Some(200));
    assert_eq!(whole.verdict.breaks.iter().map(|b| b.seq).collect::<Vec<_>>(), [120]);
    assert!(whole.summary().contains("probability 100.0%"), "{}", whole.summary());
    // A deleted entry is named too.
    tamper_with_log(&client, "DELETE FROM immutable_log WHERE seq = 60").await;
    let deleted = prove_sampling(&database, 1_000).await;
    let named: Vec<(i64, &str)> = deleted.verdict.breaks.iter().map(|b| (b.seq, b.problem.as_str())).collect();
    assert!(named.contains(&(60, "the entry is missing")), "{named:?}");
    assert!(named.contains(&(61, "the entry before it is missing")), "{named:?}");
}

#[tokio::test]
async fn a_bounded_proof_checkpoints_where_it_stopped_and_the_next_goes_on_from_there() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 10).await;
    let mut reached = Vec::new();
    for _ in 0..3 {
        let proof = prove_at_most(&database, false, None, Some(4)).await;
        assert!(proof.verdict.holds(), "{proof:?}");
        reached.push((proof.verdict.entries, proof.head.unwrap().seq, proof.remaining));
    }
    assert_eq!(reached, [(4, 4, 6), (4, 8, 2), (2, 10, 0)]);
}

/// Rewrites the chain from `seq` on as its owner could: every later hash
/// recomputed, so the chain itself verifies again.
async fn rewrite_chain_from(client: &Client, seq: i64) {
    tamper_with_log(
        client,
        &format!(
            "DO $$ DECLARE e record; prev text; BEGIN
               SELECT coalesce(max(entry_hash), repeat('0', 64)) INTO prev FROM immutable_log WHERE seq = {seq} - 1;
               FOR e IN SELECT * FROM immutable_log WHERE seq >= {seq} ORDER BY seq LOOP
                 UPDATE immutable_log SET prev_hash = prev,
                        entry_hash = grace_log_entry_hash(seq, recorded_at, actor, action, resource, subsystem,
                                                          payload, result, prev)
                  WHERE seq = e.seq RETURNING entry_hash INTO prev;
               END LOOP; END $$",
        ),
    )
    .await;
}

#[tokio::test]
async fn a_proof_rehashes_only_what_is_new_since_the_last_checkpoint() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 5).await;
    let first = prove(&database, false, None).await;
    assert!(first.verdict.holds(), "{first:?}");
    assert_eq!((first.verdict.entries, &first.start), (5, &ProofStart::Genesis));
    assert_eq!(first.head.as_ref().map(|h| h.seq), Some(5));

    append_entries(&mut client, 3).await;
    let second = prove(&database, false, None).await;
    assert!(second.verdict.holds(), "{second:?}");
    assert_eq!(second.verdict.entries, 3, "only the entries after the checkpoint: {second:?}");
    assert!(matches!(&second.start, ProofStart::Checkpoint { seq: 5, verified_by, .. } if verified_by == "tests"));

    // A break among the new entries is found; the checkpoint does not move past it.
    append_entries(&mut client, 2).await;
    tamper_with_log(&client, "UPDATE immutable_log SET result = 'forged' WHERE seq = 10").await;
    let broken = prove(&database, false, None).await;
    assert_eq!((broken.verdict.entries, broken.verdict.broken), (2, 1), "{broken:?}");
    assert_eq!(broken.verdict.breaks[0].seq, 10);
    let newest: i64 = client.query_one("SELECT max(seq) FROM log_checkpoints", &[]).await.unwrap().get(0);
    assert_eq!(newest, 8);

    let full = prove(&database, true, None).await;
    assert_eq!((full.verdict.entries, full.verdict.broken, &full.start), (10, 1, &ProofStart::Genesis));
}

#[tokio::test]
async fn a_rewrite_under_a_checkpoint_is_named_though_the_chain_verifies() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 4).await;
    assert!(prove(&database, false, None).await.verdict.holds());

    tamper_with_log(&client, "UPDATE immutable_log SET payload = '{\"n\":99}' WHERE seq = 2").await;
    rewrite_chain_from(&client, 2).await;
    assert!(immutable_log::verify_range(&client, 1, i64::MAX).await.unwrap().holds(), "the rewrite is consistent");

    let proof = prove(&database, false, None).await;
    assert_eq!(proof.start, ProofStart::Genesis, "a checkpoint the log disagrees with is not trusted");
    assert_eq!(proof.verdict.broken, 1, "{proof:?}");
    assert_eq!(proof.verdict.breaks[0].seq, 4);
    assert!(proof.verdict.breaks[0].problem.contains("no longer holds the entry checkpointed by tests"), "{proof:?}");
}

#[tokio::test]
async fn an_anchor_outside_the_database_names_a_rewrite_its_owner_covered_up() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 4).await;
    let anchor = prove(&database, false, None).await.anchor().expect("a holding proof gives an anchor");
    assert_eq!(anchor.head.seq, 4);

    // The owner rewrites entry 3 and every later hash, and their checkpoints
    // with them: the database alone cannot tell.
    tamper_with_log(&client, "UPDATE immutable_log SET result = 'forged' WHERE seq = 3").await;
    rewrite_chain_from(&client, 3).await;
    client
        .batch_execute(
            "UPDATE log_checkpoints c SET entry_hash = l.entry_hash FROM immutable_log l WHERE l.seq = c.seq",
        )
        .await
        .unwrap();
    assert!(prove(&database, true, None).await.verdict.holds(), "without the anchor the rewrite passes");

    let proof = prove(&database, false, Some(&anchor)).await;
    assert_eq!(proof.verdict.broken, 1, "{proof:?}");
    assert_eq!(proof.verdict.breaks[0].seq, 4);
    assert!(proof.verdict.breaks[0].problem.contains("entry_hash differs from the head proven on"), "{proof:?}");
    assert!(proof.anchor().is_none(), "a failed proof moves no anchor");
}

#[tokio::test]
async fn an_anchor_names_a_log_cut_short_and_a_log_replaced() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 4).await;
    let anchor = prove(&database, false, None).await.anchor().unwrap();

    client.batch_execute("DELETE FROM log_checkpoints").await.unwrap();
    tamper_with_log(&client, "DELETE FROM immutable_log WHERE seq > 2").await;
    let proof = prove(&database, false, Some(&anchor)).await;
    assert_eq!(proof.verdict.breaks.len(), 1, "{proof:?}");
    assert_eq!(proof.verdict.breaks[0].seq, 4);
    assert!(proof.verdict.breaks[0].problem.contains("the log ends at seq 2, before the head proven"), "{proof:?}");

    tamper_with_log(&client, "UPDATE immutable_log SET actor = 'someone else' WHERE seq = 1").await;
    rewrite_chain_from(&client, 1).await;
    let proof = prove(&database, false, Some(&anchor)).await;
    assert_eq!(proof.verdict.breaks[0].seq, 1, "{proof:?}");
    assert!(proof.verdict.breaks[0].problem.contains("first entry is not the one"), "{proof:?}");
}

#[tokio::test]
async fn the_link_into_a_range_is_checked_against_the_entry_before_it() {
    let database = TestDatabase::migrated().await;
    let mut client = database.client().await;
    append_entries(&mut client, 4).await;
    tamper_with_log(&client, "UPDATE immutable_log SET prev_hash = repeat('a', 64) WHERE seq = 3").await;
    let upper = immutable_log::verify_range(&client, 3, 4).await.unwrap();
    assert_eq!((upper.entries, upper.breaks[0].seq), (2, 3), "{upper:?}");
    assert!(upper.breaks[0].problem.contains("prev_hash"), "{upper:?}");
    assert!(immutable_log::verify_range(&client, 4, 4).await.unwrap().holds());
}
