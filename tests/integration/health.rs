//! `grace health` through the real binary: exit codes and what it names.

use crate::helpers::{closed_port, grace, plant_orphan_event, run_grace, TestDatabase};

#[tokio::test]
async fn health_passes_on_a_bootstrapped_database() {
    let database = TestDatabase::bootstrapped().await;
    let ran = run_grace(&["health", "--database-url", &database.url.to_string()]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let lines: Vec<&str> = ran.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 9, "{}", ran.stdout);
    for (n, line) in lines[..8].iter().enumerate() {
        // The tests' role is a superuser, so health warns (and still passes).
        let mark = if n == 6 { "! log owned apart" } else { "✓" };
        assert!(line.starts_with(mark), "{line}");
    }
    assert!(lines[8].starts_with("– backend"), "{}", lines[8]);
    assert!(ran.stdout.contains("✓ log chain verifies: 1 entry re-hashed from genesis; head seq 1"), "{}", ran.stdout);

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
        ran.stdout.contains("✗ immutable_log append-only: trigger missing, disabled or not ALWAYS")
            && ran.stdout.contains("restores them): immutable_log_append_only\n"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(
            "✗ log chain verifies: 1 broken (1 entry re-hashed from genesis; head seq 1) — seq 1: entry_hash"
        ),
        "{}",
        ran.stdout
    );
}

#[tokio::test]
async fn the_log_s_guards_hold_against_a_replica_role_session_and_health_names_one_left_origin() {
    let database = TestDatabase::bootstrapped().await;
    let client = database.client().await;
    // Enabled ALWAYS (V26): a superuser's replica-role session no longer skips them.
    let forged = client
        .batch_execute(
            "BEGIN; SET LOCAL session_replication_role = replica;
             UPDATE immutable_log SET result = 'fail' WHERE seq = 1; COMMIT;",
        )
        .await
        .unwrap_err();
    let refused = forged.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert_eq!(refused, "immutable_log is append-only: UPDATE is not allowed", "{forged:?}");
    client.batch_execute("ROLLBACK").await.unwrap();
    let health = |url: String| async move { run_grace(&["health", "--database-url", &url]).await };
    let ran = health(database.url.to_string()).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    assert!(ran.stdout.contains("✓ foreign keys enforced always"), "{}", ran.stdout);

    // `ENABLE TRIGGER ALL` quietly turns ALWAYS back into ORIGIN: health says so, for both.
    client
        .batch_execute("ALTER TABLE immutable_log ENABLE TRIGGER ALL; ALTER TABLE tasks ENABLE TRIGGER ALL;")
        .await
        .unwrap();
    let ran = health(database.url.to_string()).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert!(
        ran.stdout
            .contains("restores them): immutable_log_chain, immutable_log_append_only, immutable_log_no_truncate"),
        "{}",
        ran.stdout
    );
    assert!(
        // The log's keys too: a key's triggers sit on both of its tables.
        ran.stdout.contains(
            "! foreign keys enforced always: 4 a replica-role session can skip (C1 scans their rows): \
             public.action_events.log_seq → public.immutable_log, public.log_checkpoints.seq → public.immutable_log, \
             public.tasks.contract_id → public.action_contracts, public.tasks.mission_id → public.missions;"
        ),
        "{}",
        ran.stdout
    );
    client
        .batch_execute("SELECT grace_enforce_log_guards_always(); SELECT grace_enforce_foreign_keys_always();")
        .await
        .unwrap();
    let ran = health(database.url.to_string()).await;
    assert_eq!(ran.code, Some(0), "restored: {}", ran.all_output());
}

#[tokio::test]
async fn health_full_reads_every_reference_and_finds_an_orphan_the_catalog_cannot_see() {
    let database = TestDatabase::bootstrapped().await;
    let client = database.client().await;
    let ghost = uuid::Uuid::new_v4();
    // Triggers off, the orphan in, the triggers back on ALWAYS: the catalog says all is enforced.
    plant_orphan_event(&client, ghost).await;
    client.batch_execute("SELECT grace_enforce_foreign_keys_always()").await.unwrap();
    let url = database.url.to_string();
    let quick = run_grace(&["health", "--database-url", &url, "--no-anchors"]).await;
    assert_eq!(quick.code, Some(0), "the catalog vouches for every key: {}", quick.all_output());
    assert!(!quick.stdout.contains("no orphans"), "{}", quick.stdout);
    let full = run_grace(&["health", "--database-url", &url, "--no-anchors", "--full"]).await;
    assert_eq!(full.code, Some(1), "{}", full.all_output());
    let orphan = format!(
        "✗ no orphans, every reference read: orphans found: 1 — public.action_events.mission_id = {ghost} refers to no \
         row of public.missions"
    );
    assert!(full.stdout.contains(&orphan), "{}", full.stdout);
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

    // The backend alone; and with neither, nothing to check (no private
    // database: an empty one would only ever fail).
    // A token the backend refuses is exit 2, as in `grace load` and `grace scenario`.
    let ran = run_grace(&["health", "--backend", &app.address, "--token", "none-of-this-backends-tokens"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("the backend refused the operator token"), "{}", ran.stderr);
    // An empty GRACE_TOKENS is no value, and does not hide --token.
    let ran: crate::helpers::Ran = crate::helpers::grace()
        .args(["health", "--backend", &app.address, "--token", &token])
        .env("GRACE_TOKENS", "")
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    assert!(ran.stdout.contains("✓ mesh round trip: ping delivered in"), "{}", ran.stdout);

    let ran = run_grace(&["health", "--backend", &app.address]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    assert!(ran.stdout.contains("– database: no --database-url given"), "{}", ran.stdout);
    assert!(ran.stdout.contains("✓ log lag zero"), "{}", ran.stdout);
    let ran = run_grace(&["health"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("nothing to check"), "{}", ran.stderr);
}

#[tokio::test]
async fn health_proves_only_new_entries_and_its_anchor_file_names_a_covered_up_rewrite() {
    let database = TestDatabase::bootstrapped().await;
    let url = database.url.to_string();
    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("anchors.json");
    let anchors = anchors.to_str().unwrap();
    let unanchored = ["health", "--database-url", &url, "--no-anchors"];
    let chain_line = |ran: &crate::helpers::Ran| {
        ran.stdout.lines().find(|l| l.contains("log chain verifies")).unwrap_or_default().to_string()
    };

    // Without --anchors, the anchor goes to anchors.json in the reports directory.
    let first: crate::helpers::Ran =
        grace().args(["health", "--database-url", &url]).env("GRACE_OUT", dir.path()).output().await.unwrap().into();
    assert_eq!(first.code, Some(0), "{}", first.all_output());
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(anchors).unwrap()).unwrap();
    let key = format!("{}/{}", database.url.endpoint(), database.url.database());
    assert_eq!(stored[&key]["seq"], 1, "{stored}");

    let second = run_grace(&unanchored).await;
    assert!(
        chain_line(&second).contains("0 entries re-hashed after checkpoint seq 1 (proven by grace health)"),
        "{}",
        second.stdout
    );
    let anchored = run_grace(&["health", "--database-url", &url, "--anchors", anchors]).await;
    assert!(
        chain_line(&anchored).contains("0 entries re-hashed after this machine's anchor seq 1"),
        "{}",
        anchored.stdout
    );
    let full = run_grace(&[&unanchored[..], &["--full"]].concat()).await;
    assert!(chain_line(&full).contains("1 entry re-hashed from genesis"), "{}", full.stdout);

    // The owner rewrites the only entry, recomputing its hash and its checkpoint.
    database
        .client()
        .await
        .batch_execute(
            "ALTER TABLE immutable_log DISABLE TRIGGER immutable_log_append_only;
             UPDATE immutable_log SET result = 'forged', entry_hash = grace_log_entry_hash(seq, recorded_at, actor,
                    action, resource, subsystem, payload, 'forged', prev_hash);
             UPDATE log_checkpoints c SET entry_hash = l.entry_hash FROM immutable_log l WHERE l.seq = c.seq;
             ALTER TABLE immutable_log ENABLE ALWAYS TRIGGER immutable_log_append_only;",
        )
        .await
        .unwrap();
    let fooled = run_grace(&unanchored).await;
    assert_eq!(fooled.code, Some(0), "without the anchor nothing shows: {}", fooled.stdout);
    let caught = run_grace(&["health", "--database-url", &url, "--anchors", anchors]).await;
    assert_eq!(caught.code, Some(1), "{}", caught.all_output());
    assert!(
        chain_line(&caught).contains("seq 1: the log's first entry is not the one of the head proven"),
        "{}",
        caught.stdout
    );

    std::fs::write(anchors, "not json").unwrap();
    let unreadable = run_grace(&["health", "--database-url", &url, "--anchors", anchors]).await;
    assert_eq!(unreadable.code, Some(2), "{}", unreadable.all_output());
    assert!(unreadable.stderr.contains("is not a Grace anchor file"), "{}", unreadable.stderr);
}

#[tokio::test]
async fn bootstrap_sets_up_an_application_role_that_may_only_append_to_the_log() {
    let database = TestDatabase::migrated().await;
    let owner = database.url.to_string();
    // Roles belong to the cluster: a name of this test's own.
    let role = format!("grace_app_{}", uuid::Uuid::new_v4().simple());
    let made = run_grace(&["bootstrap", "--database-url", &owner, "--app-role", &role]).await;
    assert_eq!(made.code, Some(0), "{}", made.all_output());
    assert!(made.stdout.contains(&format!("application role {role}")), "{}", made.stdout);
    let app = format!("postgres://{role}@{}/{}", database.url.endpoint(), database.url.database());

    let (client, connection) = tokio_postgres::connect(&app, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    for (statement, refusal) in [
        ("ALTER TABLE immutable_log DISABLE TRIGGER immutable_log_append_only", "must be owner"),
        ("UPDATE immutable_log SET result = 'forged'", "permission denied"),
        ("DELETE FROM immutable_log WHERE seq > 0", "permission denied"),
        ("UPDATE log_checkpoints SET entry_hash = 'x'", "permission denied"),
        ("CREATE TABLE public.elsewhere (x int)", "permission denied"),
    ] {
        let error = client.batch_execute(statement).await.unwrap_err();
        assert!(grace::db::describe(&error).contains(refusal), "{statement}: {error:?}");
    }
    // What the pipeline does, it may: a mission, and the log's own append.
    client.batch_execute("INSERT INTO missions (name) VALUES ('as the application role')").await.unwrap();

    // As the application role, health passes its ownership check (and proves
    // the chain, writing a checkpoint); as the owner, it warns but passes.
    let as_app = run_grace(&["health", "--database-url", &app, "--no-anchors"]).await;
    assert_eq!(as_app.code, Some(0), "{}", as_app.all_output());
    assert!(as_app.stdout.contains("✓ log owned apart"), "{}", as_app.stdout);
    let as_owner = run_grace(&["health", "--database-url", &owner, "--no-anchors"]).await;
    assert_eq!(as_owner.code, Some(0), "{}", as_owner.all_output());
    assert!(as_owner.stdout.contains("! log owned apart: this role owns immutable_log"), "{}", as_owner.stdout);

    let bad = run_grace(&["bootstrap", "--database-url", &owner, "--app-role", "Robert'); DROP TABLE x;--"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.all_output());
    assert!(bad.stderr.contains("invalid --app-role"), "{}", bad.stderr);
}
