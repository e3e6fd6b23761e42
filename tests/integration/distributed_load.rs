//! Distributed load through the Postgres control plane: real `grace worker`
//! processes, a real `grace load` coordinator, the real backend, and the
//! numbers checked against Postgres.

use crate::backend::TestApp;
use crate::helpers::{closed_port, eventually, grace, relay_from, run_grace, LinkCut, Ran, TestDatabase};
use grace::db::private::PrivatePostgres;
use grace::specification::Role;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// A `grace worker` process on the app's database.
pub(crate) fn spawn_worker(app: &TestApp, extra: &[&str]) -> Child {
    spawn_worker_through(app, &app.database.url.to_string(), extra)
}

/// A `grace worker` process reaching the app's database at `database`.
fn spawn_worker_through(app: &TestApp, database: &str, extra: &[&str]) -> Child {
    grace()
        .args(["worker", "--database-url", database])
        .args(extra)
        .env("GRACE_TOKEN", app.token(Role::Operator))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn grace worker")
}

/// Waits until `n` workers have registered and heartbeat.
pub(crate) async fn wait_for_workers(app: &TestApp, n: i64) {
    wait_for_live_workers(&app.database, n).await
}

/// Waits until `n` workers of the control plane `database` have registered and heartbeat.
pub(crate) async fn wait_for_live_workers(database: &TestDatabase, n: i64) {
    let client = database.client().await;
    eventually(&format!("{n} workers registering"), Duration::from_secs(10), || async {
        let live: i64 = client
            .query_one("SELECT count(*) FROM control.workers WHERE last_heartbeat > now() - interval '2 s'", &[])
            .await
            .unwrap()
            .get(0);
        (live >= n).then_some(())
    })
    .await;
}

/// `grace load --json` against the app, with `args`.
fn load_command(app: &TestApp, args: &[&str]) -> tokio::process::Command {
    let database = app.database.url.to_string();
    let mut command = grace();
    command
        .args(["load", "--json", "--database-url", &database, "--backend", &app.address])
        .args(args)
        .env("GRACE_TOKEN", app.token(Role::Operator));
    command
}

pub(crate) async fn load(app: &TestApp, args: &[&str]) -> Ran {
    load_command(app, args).output().await.unwrap().into()
}

fn sum(result: &Value, field: &str) -> u64 {
    result["workers"].as_array().unwrap().iter().map(|w| w[field].as_u64().unwrap()).sum()
}

#[tokio::test]
async fn two_workers_under_chaos_merge_to_their_sums_and_every_acknowledged_write_is_stored_once() {
    let app = TestApp::spawn().await;
    app.set_fault(None, json!({ "chaos": { "rate": 0.2 } })).await;
    let workers = [spawn_worker(&app, &["--once"]), spawn_worker(&app, &["--once"])];
    wait_for_workers(&app, 2).await;
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let args = ["--users", "6", "--run-time", "3s", "--expect-workers", "2", "--out", out_dir, "--goose-report"];
    let ran = load(&app, &args).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();

    // Merged numbers are the per-worker sums.
    let workers_seen = result["workers"].as_array().unwrap();
    assert_eq!(workers_seen.len(), 2);
    assert_eq!(sum(&result, "users"), 6);
    assert_eq!(result["total"]["requests"].as_u64().unwrap(), sum(&result, "requests"));
    assert_eq!(result["total"]["failures"].as_u64().unwrap(), sum(&result, "failures"));
    let rps: f64 = workers_seen.iter().map(|w| w["requests_per_second"].as_f64().unwrap()).sum();
    assert!((result["total"]["requests_per_second"].as_f64().unwrap() - rps).abs() < 1e-6);
    let overall = &result["latency"][0];
    assert_eq!(overall["name"], "overall");
    assert_eq!(overall["requests"], result["total"]["requests"]);
    let by_name: u64 = result["latency"].as_array().unwrap()[1..].iter().map(|l| l["requests"].as_u64().unwrap()).sum();
    assert_eq!(by_name, overall["requests"].as_u64().unwrap());
    assert!(overall["p50_ms"].as_f64().unwrap() <= overall["p99_ms"].as_f64().unwrap());
    // Every chat and task sent a JSON body, and every answer had one.
    let (sent, received) =
        (result["body_bytes"]["sent"].as_u64().unwrap(), result["body_bytes"]["received"].as_u64().unwrap());
    assert!(sent > 100 * sum(&result, "acked_writes") / 2 && received > sent, "sent {sent}, received {received}");

    // Chaos refused writes, the workers retried with the same key, and C7 holds.
    assert!(result["total"]["failures"].as_u64().unwrap() > 0, "chaos at 0.2 refused nothing: {result}");
    let acked = &result["acked_writes"];
    assert_eq!(acked["passed"], true, "{acked}");
    assert_eq!(acked["acknowledged"].as_u64().unwrap(), sum(&result, "acked_writes"));
    assert!(acked["acknowledged"].as_u64().unwrap() > 20, "{acked}");

    // And independently of the check: the run's stored rows are exactly the uploaded keys.
    let client = app.database.client().await;
    let run = result["run_id"].as_str().unwrap();
    let row = client
        .query_one(
            "WITH stored AS (
               SELECT idempotency_key k FROM chat_messages WHERE role = 'user' AND starts_with(idempotency_key, $1)
               UNION ALL SELECT idempotency_key FROM tasks WHERE starts_with(idempotency_key, $1)),
             acked AS (SELECT idempotency_key k FROM control.write_outcomes
                        WHERE run_id = $2::text::uuid AND outcome = 'acknowledged')
             SELECT (SELECT count(*) FROM stored), (SELECT count(DISTINCT k) FROM stored), (SELECT count(*) FROM acked),
                    (SELECT count(*) FROM (SELECT k FROM stored EXCEPT SELECT k FROM acked) x)",
            &[&format!("{run}/"), &run],
        )
        .await
        .unwrap();
    let (stored, distinct, uploaded, unacked): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((stored, distinct, unacked), (uploaded, uploaded, 0));
    let status: String =
        client.query_one("SELECT status FROM control.runs WHERE id = $1::text::uuid", &[&run]).await.unwrap().get(0);
    assert_eq!(status, "completed");

    // The merged result and both goose reports are written out.
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("load-result.json")).unwrap()).unwrap();
    assert_eq!(written, result);
    let goose_pages: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("goose-report-{run}-")))
        .collect();
    assert_eq!(goose_pages.len(), 2, "{goose_pages:?}");
    // One page of the merged run, linking both workers' goose pages; the
    // same page `grace report render` makes of the written result.
    let page = std::fs::read_to_string(out.path().join("load-report.html")).unwrap();
    assert!(page.contains("<h1>Grace load run: ") && page.contains("6 users on 2 workers"), "{page}");
    for goose in &goose_pages {
        assert!(page.contains(&format!("href=\"{goose}\"")), "{goose} is not linked");
    }
    assert!(page.contains("<td>POST /api/chat</td>"), "every request in the table");
    let rendered = run_grace(&["report", "render", out.path().join("load-result.json").to_str().unwrap()]).await;
    assert_eq!(rendered.code, Some(0), "{}", rendered.all_output());
    assert_eq!(rendered.stdout, page);
    for mut worker in workers {
        assert_eq!(worker.wait().await.unwrap().code(), Some(0), "--once workers exit after their run");
    }
}

#[tokio::test]
async fn the_traffic_mix_over_two_workers_is_the_mix_of_one_process() {
    let app = TestApp::spawn().await;
    let workers = [spawn_worker(&app, &["--once"]), spawn_worker(&app, &["--once"])];
    wait_for_workers(&app, 2).await;
    // 15 users at 4:3:2:1 are 6 chatting, 4 submitting tasks, 3 reading
    // summaries and 2 reading verifications in one process. Split 8 + 7, each
    // worker taking its own round robin would give 5/4/4/2.
    let ran = load(&app, &["--users", "15", "--run-time", "2s", "--expect-workers", "2"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let run = result["run_id"].as_str().unwrap();
    // A user's writes are keyed <run>/<worker>/u<user>/<n>: the users who
    // chatted and those who submitted tasks, counted in what was stored.
    let client = app.database.client().await;
    let users_of = |table: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    &format!(
                        "SELECT count(DISTINCT substring(idempotency_key FROM '^(.*/u[0-9]+)/')) FROM {table}
                          WHERE starts_with(idempotency_key, $1)"
                    ),
                    &[&format!("{run}/")],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert_eq!((users_of("chat_messages").await, users_of("tasks").await), (6, 4));
    let shares: Vec<(i32, i32)> = client
        .query(
            "SELECT users, first_user FROM control.run_workers WHERE run_id = $1::text::uuid ORDER BY first_user",
            &[&run],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(shares, [(8, 0), (7, 8)]);
    for mut worker in workers {
        assert_eq!(worker.wait().await.unwrap().code(), Some(0));
    }
}

/// Sends `signal` to the process `child`.
fn send(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id().unwrap() as i32), signal).unwrap();
}

#[tokio::test]
async fn an_idle_worker_whose_log_reader_has_gone_stops_cleanly_on_the_first_ctrl_c() {
    use nix::sys::signal::Signal;
    let app = TestApp::spawn().await;
    let mut worker = spawn_worker(&app, &[]);
    wait_for_workers(&app, 1).await;
    let ran = load(&app, &["--users", "1", "--run-time", "1s", "--expect-workers", "1"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    // `grace worker 2>&1 | tee w.log`: one Ctrl-C ends `tee` too, and the
    // worker's next line goes into a closed pipe. goose has run, and would
    // have taken SIGINT over; the worker must still stop, cleanly.
    drop(worker.stderr.take());
    send(&worker, Signal::SIGINT);
    let exited = tokio::time::timeout(Duration::from_secs(10), worker.wait()).await;
    let status = exited.expect("the worker stopped within 10 s of one Ctrl-C").unwrap();
    assert_eq!(status.code(), Some(0));
    let client = app.database.client().await;
    let state: String = client.query_one("SELECT status FROM control.workers", &[]).await.unwrap().get(0);
    assert_eq!(state, "stopped");
}

/// Waits until the backend has stored `n` chat messages: the load is under way.
async fn chats_stored(app: &TestApp, n: i64) {
    let client = app.database.client().await;
    eventually("the load under way", Duration::from_secs(30), || async {
        let stored: i64 = client.query_one("SELECT count(*) FROM chat_messages", &[]).await.unwrap().get(0);
        (stored >= n).then_some(())
    })
    .await;
}

/// What an interrupted `grace load --json` printed, once it has exited with `code`.
async fn interrupted_result(load: Child, code: i32) -> Value {
    let output = tokio::time::timeout(Duration::from_secs(30), load.wait_with_output()).await;
    let ran: Ran = output.expect("the run ended within 30 s of the signal, not after its 60 s").unwrap().into();
    assert_eq!(ran.code, Some(code), "{}", ran.all_output());
    assert!(ran.stderr.contains("interrupted: stopping the load"), "{}", ran.stderr);
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!((result["interrupted"].as_bool(), result["passed"].as_bool()), (Some(true), Some(false)));
    assert!(result["total"]["requests"].as_u64().unwrap() > 0, "{}", result["total"]);
    // C7 still judged, on what was acknowledged before the stop.
    let acked = &result["acked_writes"];
    assert_eq!(acked["passed"], true, "{acked}");
    assert!(acked["acknowledged"].as_u64().unwrap() > 0, "{acked}");
    result
}

#[tokio::test]
async fn ctrl_c_stops_a_load_and_keeps_what_it_measured_proven_written_and_marked_interrupted() {
    use nix::sys::signal::Signal;
    let app = TestApp::spawn().await;
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let load = load_command(&app, &["--users", "4", "--run-time", "60s", "--out", out_dir])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    chats_stored(&app, 20).await;
    send(&load, Signal::SIGINT);
    let result = interrupted_result(load, 130).await;
    let written = std::fs::read_to_string(out.path().join("load-result.json")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), result, "--out holds the same partial result");
}

#[tokio::test]
async fn sigterm_stops_a_distributed_load_whose_worker_uploads_and_takes_the_next_run() {
    use nix::sys::signal::Signal;
    let app = TestApp::spawn().await;
    let mut worker = spawn_worker(&app, &[]);
    wait_for_workers(&app, 1).await;
    let load = load_command(&app, &["--users", "3", "--run-time", "60s", "--expect-workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    chats_stored(&app, 10).await;
    send(&load, Signal::SIGTERM);
    let result = interrupted_result(load, 143).await;
    // The worker heard the stop through the control plane, ended its share
    // and uploaded it: not lost, its requests in the result.
    let share = &result["workers"][0];
    assert_eq!(share["lost"], false, "{share}");
    assert!(share["requests"].as_u64().unwrap() > 0, "{share}");
    // It stopped its share, not itself.
    let again = load_command(&app, &["--users", "1", "--run-time", "1s", "--expect-workers", "1"]).output().await;
    let again: Ran = again.unwrap().into();
    assert_eq!(again.code, Some(0), "{}", again.all_output());
    send(&worker, Signal::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(10), worker.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "a server stops gracefully with 0");
}

#[tokio::test]
async fn stages_bring_users_up_and_down_and_are_split_across_workers() {
    let app = TestApp::spawn().await;
    let workers = [spawn_worker(&app, &["--once"]), spawn_worker(&app, &["--once"])];
    wait_for_workers(&app, 2).await;
    let stages = ["--stage", "1s:3", "--stage", "2s:6", "--stage", "1s:0"];
    let ran = load(&app, &[&stages[..], &["--expect-workers", "2", "--goose-report"]].concat()).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!((result["users"].as_u64(), result["run_time_secs"].as_u64()), (Some(6), Some(4)), "the peak, the sum");
    assert_eq!(result["stages"], json!([{"secs": 1, "users": 3}, {"secs": 2, "users": 6}, {"secs": 1, "users": 0}]));
    // Each worker ran its part of every stage through goose's test plan:
    // half the users at the peak, and a ramp down at the end (goose's own
    // metrics, kept for its report, show it).
    let client = app.database.client().await;
    let run = result["run_id"].as_str().unwrap();
    let rows = client
        .query(
            "SELECT rw.users, r.goose_metrics FROM control.run_workers rw
               JOIN control.worker_results r USING (run_id, worker_id)
              WHERE rw.run_id = $1::text::uuid ORDER BY rw.first_user",
            &[&run],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let (users, metrics): (i32, Value) = (row.get(0), row.get(1));
        assert_eq!(users, 3);
        assert_eq!(metrics["maximum_users"], 3, "{}", metrics["history"]);
        let actions: Vec<&str> =
            metrics["history"].as_array().unwrap().iter().map(|step| step["action"].as_str().unwrap()).collect();
        assert!(actions.starts_with(&["Increasing", "Increasing", "Decreasing"]), "{actions:?}");
    }
    for mut worker in workers {
        assert_eq!(worker.wait().await.unwrap().code(), Some(0));
    }
    // Stages replace --users and --run-time, and do not go with an open model.
    for conflicting in [&["--users", "5"][..], &["--run-time", "5s"][..], &["--rate", "10"][..]] {
        let ran = load(&app, &[&stages[..], conflicting].concat()).await;
        assert_eq!(ran.code, Some(2), "{}", ran.all_output());
        assert!(ran.stderr.contains("cannot be used with"), "{}", ran.stderr);
    }
    let ran = load(&app, &["--stage", "soon:5"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("is not a duration"), "{}", ran.stderr);

    // --ramp-up is the two stages it stands for: up over it, then held.
    let ran = load(&app, &["--users", "4", "--ramp-up", "2s", "--run-time", "1s"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["run_time_secs"], 3);
    assert_eq!(result["stages"], json!([{"secs": 2, "users": 4}, {"secs": 1, "users": 4}]));
}

#[tokio::test]
async fn live_progress_merges_the_workers_heartbeats_and_quiet_turns_it_off() {
    let app = TestApp::spawn().await;
    let worker = spawn_worker(&app, &["--once"]);
    wait_for_workers(&app, 1).await;
    // Not a terminal here: a plain line every 5 s, on stderr (stdout stays JSON).
    let ran = load(&app, &["--users", "4", "--run-time", "7s", "--expect-workers", "1"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let lines: Vec<&str> = ran.stderr.lines().filter(|l| l.starts_with("progress ")).collect();
    assert!(!lines.is_empty(), "{}", ran.stderr);
    let line = lines[0];
    assert!(line.contains("s/7s  4 users  ") && line.contains(" req/s  ") && line.contains(" ms"), "{line}");
    // Its counts come from the share's heartbeat, which the run keeps.
    let client = app.database.client().await;
    let run = result["run_id"].as_str().unwrap();
    let progress: Value = client
        .query_one("SELECT progress FROM control.run_workers WHERE run_id = $1::text::uuid", &[&run])
        .await
        .unwrap()
        .get(0);
    let published = progress["requests"].as_u64().unwrap();
    assert!(published > 0 && published <= result["total"]["requests"].as_u64().unwrap(), "{progress}");
    let shown: u64 = line.split("  ").find_map(|part| part.strip_suffix(" requests")?.parse().ok()).unwrap();
    assert!(shown > 0 && shown <= published, "{line} vs {progress}");
    // The worker showed its own share's progress too.
    let worker = worker.wait_with_output().await.unwrap();
    let worker_err = String::from_utf8_lossy(&worker.stderr);
    assert!(worker_err.lines().any(|l| l.starts_with("progress ") && l.contains("4 users")), "{worker_err}");

    // Quiet, streaming JSON lines instead: a window per second per request
    // name and overall, adding up to the run.
    let dir = tempfile::tempdir().unwrap();
    let stream = dir.path().join("run.jsonl");
    let stream_arg = stream.to_str().unwrap();
    let quiet = load(&app, &["--users", "2", "--run-time", "4s", "--quiet", "--out-json-lines", stream_arg]).await;
    assert_eq!(quiet.code, Some(0), "{}", quiet.all_output());
    assert!(!quiet.stderr.contains("progress "), "{}", quiet.stderr);
    let result: Value = serde_json::from_str(&quiet.stdout).unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&stream)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let sum = |endpoint: &str| -> u64 {
        lines.iter().filter(|l| l["endpoint"] == endpoint).map(|l| l["requests"].as_u64().unwrap()).sum()
    };
    assert!(lines.iter().filter(|l| l["endpoint"] == "overall").count() >= 3, "about one a second");
    // A steady run has no empty second inside it: a heartbeat read twice is
    // skipped, not written as a window of nothing (and the next as a double).
    let overall: Vec<&Value> = lines.iter().filter(|l| l["endpoint"] == "overall").collect();
    let inner = &overall[1..overall.len() - 1];
    assert!(inner.iter().all(|l| l["requests"].as_u64() > Some(0)), "{inner:?}");
    // -q: warnings only, no INFO logs, goose's lines among them.
    assert!(!quiet.stderr.contains(" INFO "), "{}", quiet.stderr);
    assert_eq!(sum("overall"), result["latency"][0]["requests"].as_u64().unwrap());
    let chat = result["latency"].as_array().unwrap().iter().find(|l| l["name"] == "POST /api/chat").unwrap();
    assert_eq!(sum("POST /api/chat"), chat["requests"].as_u64().unwrap());
    assert!(lines.iter().any(|l| l["p95_ms"].as_f64().is_some_and(|p| p > 0.0) && l["time"].is_string()));
    // Each line carries its window's histogram, so windows merge exactly:
    // the overall lines' histograms added hold every request of the run.
    let mut merged = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for line in lines.iter().filter(|l| l["endpoint"] == "overall") {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(line["histogram"].as_str().unwrap()).unwrap();
        let window: hdrhistogram::Histogram<u64> =
            hdrhistogram::serialization::Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
        assert_eq!(window.len(), line["requests"].as_u64().unwrap(), "{line}");
        merged.add(&window).unwrap();
    }
    assert_eq!(merged.len(), sum("overall"));
    // The result keeps the same windows, a few seconds wide, for the report's
    // percentiles over time: they add up to the run too.
    let over_time = |endpoint: &str| result["over_time"][endpoint].as_array().unwrap().clone();
    let overall = over_time("overall");
    assert!(overall.len() >= 2, "{overall:?}");
    assert!(overall.iter().any(|w| w["p99_ms"].as_f64().is_some_and(|p| p > 0.0)), "{overall:?}");
    let windows_sum = |endpoint: &str| over_time(endpoint).iter().map(|w| w["requests"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(windows_sum("overall"), result["latency"][0]["requests"].as_u64().unwrap());
    assert_eq!(windows_sum("POST /api/chat"), chat["requests"].as_u64().unwrap());

    let unwritable = load(&app, &["--users", "1", "--run-time", "1s", "--out-json-lines", "/dev/null/run.jsonl"]).await;
    assert_eq!(unwritable.code, Some(2), "{}", unwritable.all_output());
    assert!(unwritable.stderr.contains("cannot write --out-json-lines"), "{}", unwritable.stderr);
}

#[tokio::test]
async fn a_worker_killed_mid_run_is_reported_lost_and_the_run_still_ends() {
    let app = TestApp::spawn().await;
    let _steady = spawn_worker(&app, &["--once"]);
    let mut doomed = spawn_worker(&app, &["--once"]);
    wait_for_workers(&app, 2).await;
    let killer = tokio::spawn(async move {
        // The run starts 2 s after it is announced; kill inside the run.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let pid = doomed.id().unwrap();
        doomed.start_kill().unwrap();
        doomed.wait().await.unwrap();
        pid
    });
    let started = Instant::now();
    let ran =
        load(&app, &["--users", "4", "--run-time", "6s", "--expect-workers", "2", "--heartbeat-timeout", "3s"]).await;
    let pid = killer.await.unwrap();
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let lost = result["lost_workers"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{result}");
    assert!(lost[0].as_str().unwrap().contains(&format!("pid {pid})")), "{lost:?} names pid {pid}");
    assert_eq!(result["passed"], false);
    // The survivor's writes still check out; the dead worker's are counted apart.
    assert_eq!(result["acked_writes"]["passed"], true, "{}", result["acked_writes"]);
    // What the dead worker had measured by its last heartbeat is in its own
    // row, not in the total.
    let workers = result["workers"].as_array().unwrap();
    let dead = workers.iter().find(|w| w["lost"] == true).unwrap();
    assert!(dead["requests"].as_u64().unwrap() > 0, "{dead}");
    let alive: u64 = workers.iter().filter(|w| w["lost"] == false).map(|w| w["requests"].as_u64().unwrap()).sum();
    assert_eq!(result["total"]["requests"].as_u64().unwrap(), alive, "{result}");
    // Lost within the heartbeat timeout of the end of the run, not after the upload allowance.
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let client = app.database.client().await;
    let statuses: Vec<String> = client
        .query(
            "SELECT status FROM control.run_workers WHERE run_id = $1::text::uuid ORDER BY status",
            &[&result["run_id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["done", "lost"]);
}

#[tokio::test]
async fn a_run_outlives_a_database_restart_names_the_outage_and_loses_no_acknowledged_write() {
    let mut cluster = PrivatePostgres::start().await.unwrap();
    let app = TestApp::spawn_on(TestDatabase::migrated_on(cluster.url()).await, true).await;
    let worker = spawn_worker(&app, &["--once"]);
    wait_for_workers(&app, 1).await;
    let coordinator = load_command(&app, &["--users", "4", "--run-time", "10s", "--expect-workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run starts 2 s after it is announced: restart inside it, and come
    // back with time left, so traffic is seen to resume.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.pause();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.resume().await.unwrap();

    let ran: Ran = coordinator.wait_with_output().await.unwrap().into();
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["lost_workers"], json!([]), "a worker silent during the restart is not lost: {result}");
    let acked = &result["acked_writes"];
    assert_eq!(acked["passed"], true, "{acked}");
    assert!(acked["acknowledged"].as_u64().unwrap() > 20, "{acked}");
    assert!(result["total"]["failures"].as_u64().unwrap() > 0, "the backend refused while its database was away");
    let outages = result["control_plane_outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "one restart, one window: {outages:?}");
    let from: chrono::DateTime<chrono::Utc> = outages[0]["from"].as_str().unwrap().parse().unwrap();
    let to: chrono::DateTime<chrono::Utc> = outages[0]["to"].as_str().unwrap().parse().unwrap();
    let seconds = (to - from).num_milliseconds() as f64 / 1000.0;
    assert!((1.5..20.0).contains(&seconds), "the window covers the 2 s restart: {seconds} s");
    assert!(ran.stderr.contains("the control plane is unreachable"), "{}", ran.stderr);

    // Writes succeeded again after the restart.
    let client = app.database.client().await;
    let run = result["run_id"].as_str().unwrap();
    let after: i64 = client
        .query_one(
            "SELECT count(*) FROM chat_messages WHERE role = 'user' AND starts_with(idempotency_key, $1)
                AND created_at > $2",
            &[&format!("{run}/"), &to],
        )
        .await
        .unwrap()
        .get(0);
    assert!(after > 0, "chat writes resumed after the restart");
    let output = worker.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let status: String =
        client.query_one("SELECT status FROM control.runs WHERE id = $1::text::uuid", &[&run]).await.unwrap().get(0);
    assert_eq!(status, "completed");
}

#[tokio::test]
async fn a_worker_cut_off_from_the_control_plane_gives_up_after_the_run_and_says_why() {
    let app = TestApp::spawn().await;
    let link = LinkCut::to(&app.database.url).await;
    let worker = spawn_worker_through(&app, &link.url(&app.database.url), &["--once"]);
    wait_for_workers(&app, 1).await;
    let args = ["--users", "2", "--run-time", "3s", "--expect-workers", "1", "--heartbeat-timeout", "3s"];
    let coordinator = load_command(&app, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Inside the run (it starts 2 s after it is announced).
    tokio::time::sleep(Duration::from_secs(3)).await;
    link.cut();

    let ran: Ran = coordinator.wait_with_output().await.unwrap().into();
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["lost_workers"].as_array().unwrap().len(), 1, "{result}");

    // The worker finishes its share, cannot upload, and gives up after the
    // allowance (60 s) instead of waiting as long as the link stays down.
    let cut_at = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(150), worker.wait_with_output())
        .await
        .expect("a cut-off worker gives up instead of hanging")
        .unwrap();
    let waited = cut_at.elapsed();
    let ran: Ran = output.into();
    assert_eq!(ran.code, Some(3), "{}", ran.all_output());
    assert!(
        ran.stderr.contains(
            "the control plane did not answer the upload of this worker's results within 60s; \
             this worker gives up, and the coordinator counts it lost"
        ),
        "{}",
        ran.stderr
    );
    assert!(waited >= Duration::from_secs(50), "gave up after the allowance, not before: {waited:?}");
}

#[tokio::test]
async fn the_load_spreads_over_several_backends_and_the_result_counts_each() {
    let first = TestApp::spawn().await;
    let second = first.replica().await;
    let worker = spawn_worker(&first, &["--once"]);
    wait_for_workers(&first, 1).await;
    let ran =
        load(&first, &["--backend", &second.address, "--users", "4", "--run-time", "3s", "--expect-workers", "1"])
            .await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let backends = result["backends"].as_object().unwrap();
    assert_eq!(backends.len(), 2, "{backends:?}");
    for address in [&first.address, &second.address] {
        let count = &backends[address.trim_end_matches('/')];
        assert!(count["requests"].as_u64().unwrap() > 10, "{address}: {count}");
    }
    let spread: u64 = backends.values().map(|c| c["requests"].as_u64().unwrap()).sum();
    assert_eq!(spread, result["total"]["requests"].as_u64().unwrap(), "every request is counted once, by backend");
    assert_eq!(result["acked_writes"]["passed"], true);
    // Each replica's own counters saw its share of the chat writes.
    for app in [&first, &second] {
        let metrics = app.get("/metrics", Role::Operator).await.text().await.unwrap();
        assert!(metrics.lines().any(|l| l.contains("/api/chat") && !l.starts_with('#')), "{}: {metrics}", app.address);
    }
    assert_eq!(worker.wait_with_output().await.unwrap().status.code(), Some(0));
    // Commands that talk to one backend refuse several.
    let ran = crate::helpers::run_grace(&["health", "--backend", &first.address, "--backend", &second.address]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("--backend is given 2 times; only grace load takes several"), "{}", ran.stderr);
}

#[tokio::test]
async fn a_missed_threshold_fails_grace_load_and_a_bad_one_is_a_usage_error() {
    let app = TestApp::spawn().await;
    let args = ["--users", "2", "--run-time", "2s", "--threshold", "error_rate<=1", "--threshold", "/api/chat:p99<1us"];
    let ran = load(&app, &args).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let checks = result["thresholds"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!((checks[0]["passed"].as_bool(), checks[1]["passed"].as_bool()), (Some(true), Some(false)));
    let p99 =
        result["latency"].as_array().unwrap().iter().find(|l| l["name"] == "POST /api/chat").unwrap()["p99_ms"].clone();
    assert_eq!(checks[1]["measured"], p99, "the threshold reads the result's own p99");
    assert_eq!(result["acked_writes"]["passed"], true, "only the threshold failed the run");
    assert_eq!(result["passed"], false);

    // Refused before any load: a limit that is none, a rate above 1, a
    // latency without its unit, a request the workload never sends.
    let client = app.database.client().await;
    let runs = || async { client.query_one("SELECT count(*) FROM control.runs", &[]).await.unwrap().get::<_, i64>(0) };
    let before = runs().await;
    for (threshold, says) in [
        ("p95<soon", "is not a limit"),
        ("error_rate<5", "an error rate is a fraction from 0 to 1"),
        ("p95<300", "has no unit: write 300ms or 300s"),
        ("DELETE /api/chat:p99<1us", "the workload sends no request \"DELETE /api/chat\"; it sends GET /api/metrics"),
        ("/api/tasks/%:p95<1s", "sends no request \"/api/tasks/%\""),
    ] {
        let ran = load(&app, &["--users", "1", "--run-time", "1s", "--threshold", threshold]).await;
        assert_eq!(ran.code, Some(2), "{}", ran.all_output());
        assert!(ran.stderr.contains(says), "{threshold}: {}", ran.stderr);
    }
    assert_eq!(runs().await, before, "no run was started");
}

#[tokio::test]
async fn expecting_three_workers_when_two_joined_exits_3_and_names_them() {
    let app = TestApp::spawn().await;
    let workers = [spawn_worker(&app, &[]), spawn_worker(&app, &[])];
    wait_for_workers(&app, 2).await;
    let ran = load(&app, &["--users", "3", "--run-time", "1s", "--expect-workers", "3", "--join-timeout", "2s"]).await;
    assert_eq!(ran.code, Some(3), "{}", ran.all_output());
    assert!(ran.stderr.contains("expected 3 workers, but 2 joined within 2s"), "{}", ran.stderr);
    for worker in &workers {
        let pid = worker.id().unwrap();
        assert!(ran.stderr.contains(&format!("(pid {pid})")), "pid {pid} is named: {}", ran.stderr);
    }
    let client = app.database.client().await;
    let (status, verdict): (String, Value) = {
        let row = client.query_one("SELECT status, verdict FROM control.runs", &[]).await.unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(status, "failed");
    assert!(verdict["error"].as_str().unwrap().contains("expected 3 workers"));
    let claimed: i64 = client.query_one("SELECT count(*) FROM control.run_workers", &[]).await.unwrap().get(0);
    assert_eq!(claimed, 0, "no worker was handed a share of a run that never started");
}

#[tokio::test]
async fn a_coordinator_without_workers_runs_one_in_process_and_c7_judges_each_write_by_its_outcome() {
    let app = TestApp::spawn().await;
    let ran = load(&app, &["--users", "4", "--run-time", "2s"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["workers"].as_array().unwrap().len(), 1);
    assert_eq!(result["acked_writes"]["passed"], true);

    // The checker against each fault it must catch, one after another, each
    // counted and named: a correct system never stores a key twice (the
    // unique constraint goes, so that the faults below can be written).
    let client = app.database.client().await;
    let run: uuid::Uuid = result["run_id"].as_str().unwrap().parse().unwrap();
    let worker: uuid::Uuid = result["workers"][0]["worker_id"].as_str().unwrap().parse().unwrap();
    client.batch_execute("ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key_key").await.unwrap();
    let check = || async { grace::control::acked_writes::check(&client, run).await.unwrap() };
    let store = |key: String| {
        let client = &client;
        async move {
            client
                .execute(
                    "INSERT INTO tasks (mission_id, title, idempotency_key) SELECT mission_id, 'planted', $2::text
                       FROM control.runs WHERE id = $1",
                    &[&run, &key],
                )
                .await
                .unwrap();
        }
    };
    let settle = |key: String, outcome: &'static str| {
        let client = &client;
        async move {
            client
                .execute(
                    "INSERT INTO control.write_outcomes (run_id, worker_id, idempotency_key, outcome)
                     VALUES ($1, $2, $3, $4)",
                    &[&run, &worker, &key, &outcome],
                )
                .await
                .unwrap();
        }
    };
    let key = |n: u32| format!("{run}/{worker}/u0/{}", 900_000 + n);

    // An acknowledged task lost: missing.
    let lost: String = client
        .query_one(
            "DELETE FROM tasks WHERE id = (SELECT id FROM tasks WHERE starts_with(idempotency_key, $1) LIMIT 1)
             RETURNING idempotency_key",
            &[&format!("{run}/")],
        )
        .await
        .unwrap()
        .get(0);
    let c = check().await;
    assert!(!c.passed);
    assert_eq!((c.missing, c.duplicated, c.unacknowledged), (1, 0, 0), "{c}");
    assert_eq!(c.missing_sample, std::slice::from_ref(&lost));
    assert!(c.to_string().contains("1 missing"), "{c}");
    store(lost).await;

    // An acknowledged task stored twice: duplicated.
    let twice: String = client
        .query_one(
            "SELECT idempotency_key FROM control.write_outcomes WHERE run_id = $1 AND outcome = 'acknowledged'
               AND idempotency_key IN (SELECT idempotency_key FROM tasks) LIMIT 1",
            &[&run],
        )
        .await
        .unwrap()
        .get(0);
    store(twice.clone()).await;
    let c = check().await;
    assert_eq!((c.missing, c.duplicated, c.unacknowledged), (0, 1, 0), "{c}");
    assert_eq!(c.duplicated_sample, [twice]);

    // A write refused definitely, stored anyway; and one no worker ever sent.
    settle(key(1), "refused").await;
    store(key(1)).await;
    store(key(2)).await;
    let c = check().await;
    assert_eq!((c.duplicated, c.unacknowledged, c.refused), (1, 2, 1), "{c}");
    assert_eq!(c.unacknowledged_sample, [key(1), key(2)]);

    // Writes that got no answer: one stored once is allowed (counted), one
    // stored twice is not, one not stored is allowed.
    for n in 3..=5 {
        settle(key(n), "indeterminate").await;
    }
    store(key(3)).await;
    store(key(4)).await;
    store(key(4)).await;
    let c = check().await;
    assert_eq!((c.indeterminate, c.indeterminate_stored, c.duplicated, c.unacknowledged), (3, 2, 2, 2), "{c}");
    assert!(c.duplicated_sample.contains(&key(4)), "{c}");
    assert!(c.to_string().contains("indeterminate (no answer): stored 2 of 3"), "{c}");

    // Undone, the faults leave a run that passes, its indeterminate writes counted.
    client
        .execute("DELETE FROM tasks WHERE idempotency_key = ANY($1)", &[&vec![key(1), key(2), key(4)]])
        .await
        .unwrap();
    client.execute("DELETE FROM tasks WHERE ctid IN (SELECT max(ctid) FROM tasks GROUP BY idempotency_key HAVING count(*) > 1)", &[]).await.unwrap();
    store(key(4)).await;
    let c = check().await;
    assert!(c.passed, "{c}");
    assert_eq!((c.indeterminate, c.indeterminate_stored, c.refused), (3, 2, 1), "{c}");
}

#[tokio::test]
async fn the_open_model_sends_on_schedule_and_a_run_that_cannot_keep_it_fails() {
    let app = TestApp::spawn().await;
    // 4 users at 10 requests/s in all for 3 s: each user sends one every
    // 0.4 s (a task's poll takes a slot of its own), over 3 s and the second
    // of start-up; the closed model does thousands here.
    let ran = load(&app, &["--users", "4", "--run-time", "3s", "--rate", "10"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(result["rate"], 10.0);
    let requests = result["total"]["requests"].as_u64().unwrap();
    assert!((28..=48).contains(&requests), "{requests} requests at 10 requests/s");
    assert_eq!(result["rate_reached"]["passed"], true, "{}", result["rate_reached"]);
    assert_eq!(result["acked_writes"]["passed"], true);

    // One user cannot send 20,000 requests a second: the run says how far it
    // got and fails, rather than passing a smaller load than was asked for.
    let ran = load(&app, &["--users", "1", "--run-time", "2s", "--rate", "20000"]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let reached = &result["rate_reached"];
    assert_eq!((reached["target"].as_f64(), reached["passed"].as_bool()), (Some(20000.0), Some(false)), "{reached}");
    assert_eq!(reached["achieved"], result["total"]["requests_per_second"]);
    assert_eq!(result["passed"], false);
    assert_eq!(result["acked_writes"]["passed"], true, "only the rate failed");
}

#[tokio::test]
async fn a_wrong_token_an_unbootstrapped_database_or_an_unwritable_out_stops_grace_load_before_any_load() {
    let app = TestApp::spawn().await;
    let runs = || async {
        let client = app.database.client().await;
        client.query_one("SELECT count(*) FROM control.runs", &[]).await.unwrap().get::<_, i64>(0)
    };
    let refused = load_command(&app, &["--run-time", "1s"]).env("GRACE_TOKEN", "not-the-operator-token").output();
    let refused: Ran = refused.await.unwrap().into();
    assert_eq!(refused.code, Some(2), "{}", refused.all_output());
    assert!(refused.stderr.contains("the backend refused the operator token"), "{}", refused.stderr);
    assert!(!refused.all_output().contains("not-the-operator-token"), "the token is never shown");
    let another = load_command(&app, &["--run-time", "1s"]).env("GRACE_TOKEN", app.token(Role::Admin)).output();
    let another: Ran = another.await.unwrap().into();
    assert_eq!(another.code, Some(2), "{}", another.all_output());
    assert!(another.stderr.contains("the operator token is the backend's admin token"), "{}", another.stderr);

    let unwritable = load(&app, &["--run-time", "1s", "--out", "/dev/null/results"]).await;
    assert_eq!(unwritable.code, Some(2), "{}", unwritable.all_output());
    assert!(unwritable.stderr.contains("cannot write into --out /dev/null/results"), "{}", unwritable.stderr);
    assert_eq!(runs().await, 0, "no run was started");

    let empty = TestDatabase::empty().await;
    let database = empty.url.to_string();
    for command in [&["load", "--backend", &app.address][..], &["worker"][..]] {
        let ran: Ran = grace()
            .args(command)
            .args(["--database-url", &database])
            .env("GRACE_TOKEN", app.token(Role::Operator))
            .output()
            .await
            .unwrap()
            .into();
        assert_eq!(ran.code, Some(2), "{}", ran.all_output());
        assert!(ran.stderr.contains("is not bootstrapped") && ran.stderr.contains("grace bootstrap"), "{}", ran.stderr);
    }
}

#[tokio::test]
async fn workers_whose_clocks_are_90_s_off_either_way_are_put_on_the_database_clock_and_named() {
    let app = TestApp::spawn().await;
    let database = app.database.url.to_string();
    let faked = |offset: &str| {
        tokio::process::Command::new("faketime")
            .args(["-f", offset, env!("CARGO_BIN_EXE_grace"), "worker", "--once", "--database-url", &database])
            .env_remove("DATABASE_URL")
            .env("GRACE_TOKEN", app.token(Role::Operator))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("faketime (Debian's package) runs grace")
    };
    let _faked = (faked("+90s"), faked("-90s"));
    wait_for_workers(&app, 2).await;
    let ran = load(&app, &["--users", "4", "--run-time", "4s", "--expect-workers", "2"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    // (faketime runs grace as its child: the pids are not the ones spawned.)
    let mut offsets: Vec<i64> =
        result["clock_skews"].as_array().unwrap().iter().map(|s| s["offset_ms"].as_i64().unwrap()).collect();
    offsets.sort();
    assert_eq!(offsets.len(), 2, "{}", result["clock_skews"]);
    assert!((-92_000..=-88_000).contains(&offsets[0]), "the clock 90 s ahead: {offsets:?}");
    assert!((88_000..=92_000).contains(&offsets[1]), "the clock 90 s behind: {offsets:?}");
    // One clock: the run's seconds span its 4 s (and the start's rounding),
    // not the 3 minutes between the two workers' own clocks.
    let seconds: Vec<u64> = result["timeline"].as_object().unwrap().keys().map(|s| s.parse().unwrap()).collect();
    let span = seconds.iter().max().unwrap() - seconds.iter().min().unwrap();
    assert!(span <= 6, "the timeline spans {span} s: {seconds:?}");
    let total: u64 = result["timeline"].as_object().unwrap().values().map(|s| s["requests"].as_u64().unwrap()).sum();
    assert_eq!(total, result["total"]["requests"].as_u64().unwrap());
}

#[tokio::test]
async fn a_coordinator_started_before_its_database_and_backend_waits_for_them() {
    let app = TestApp::spawn().await;
    // Both at addresses that answer nothing yet, as in a compose stack starting.
    let (database_port, backend_port) = (closed_port(), closed_port());
    let database_endpoint = app.database.url.endpoint();
    let database = app.database.url.to_string().replace(&database_endpoint, &format!("127.0.0.1:{database_port}"));
    let backend = format!("http://127.0.0.1:{backend_port}");
    let mut coordinator = grace()
        .args(["load", "--json", "--database-url", &database, "--backend", &backend])
        .args(["--users", "2", "--run-time", "2s", "--wait-for-services", "60s"])
        .env("GRACE_TOKEN", app.token(Role::Operator))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(coordinator.stderr.take().unwrap()).lines();
    let first = stderr.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("waiting up to 1m for the control plane's database: database unreachable"), "{first}");
    let _database = relay_from(database_port, database_endpoint).await;
    let waiting_for_backend = loop {
        let line = stderr.next_line().await.unwrap().expect("the coordinator says it waits for the backend");
        if line.starts_with("waiting up to") {
            break line;
        }
    };
    assert!(waiting_for_backend.contains(&format!("for the backend at {backend}")), "{waiting_for_backend}");
    let _backend = relay_from(backend_port, app.address.trim_start_matches("http://").to_string()).await;
    let rest = tokio::spawn(async move {
        let mut said = Vec::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            said.push(line);
        }
        said.join("\n")
    });
    let output = coordinator.wait_with_output().await.unwrap();
    let said = rest.await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{said}");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(result["total"]["requests"].as_u64().unwrap() > 0, "{result}");
    assert!(!said.contains("did not come"), "{said}");
}

#[tokio::test]
async fn a_coordinator_gives_up_on_a_backend_that_never_comes_naming_it() {
    let app = TestApp::spawn().await;
    let backend = format!("http://127.0.0.1:{}", closed_port());
    let database = app.database.url.to_string();
    let token = app.token(Role::Operator).to_string();
    let args = ["load", "--database-url", &database, "--token", &token, "--backend", &backend];
    let ran = run_grace(&[&args[..], &["--wait-for-services", "2s"]].concat()).await;
    assert_eq!(ran.code, Some(3), "{}", ran.all_output());
    assert!(ran.stderr.contains(&format!("the backend at {backend} did not come within 2s")), "{}", ran.stderr);
    assert!(ran.stderr.contains("is unreachable"), "{}", ran.stderr);
}

#[tokio::test]
async fn a_worker_handed_a_run_it_cannot_read_exits_2_saying_so() {
    let app = TestApp::spawn().await;
    let worker = spawn_worker(&app, &["--once"]);
    wait_for_workers(&app, 1).await;
    // A run as a coordinator of another version might announce it.
    let client = app.database.client().await;
    client
        .batch_execute(
            "WITH run AS (INSERT INTO control.runs (config, expected_workers, status, start_at)
                          VALUES ('{\"users\": \"many\"}', 1, 'running', now()) RETURNING id)
             INSERT INTO control.run_workers (run_id, worker_id, users)
             SELECT run.id, w.id, 1 FROM run, control.workers w",
        )
        .await
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), worker.wait_with_output()).await.unwrap().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("the run's configuration is not one this worker reads"), "{said}");
}

#[tokio::test]
async fn bad_worker_configuration_exits_with_a_clear_message() {
    let app = TestApp::spawn().await;
    let database = app.database.url.to_string();
    let token = app.token(Role::Operator).to_string();
    let unreachable = format!("postgres://postgres@127.0.0.1:{}/grace", closed_port());
    let cases: [(&[&str], i32, &str); 5] = [
        (&["worker", "--database-url", &unreachable, "--token", &token], 3, "database unreachable at 127.0.0.1:"),
        (
            &["worker", "--database-url", &database, "--token", &token, "--backend", "not a url"],
            2,
            "invalid backend URL",
        ),
        (
            &[
                "worker",
                "--database-url",
                &database,
                "--token",
                &token,
                "--backend",
                &format!("http://127.0.0.1:{}", closed_port()),
            ],
            3,
            "is unreachable",
        ),
        // Without a token, a worker for any service: its backend need only answer.
        (
            &["worker", "--database-url", &database, "--backend", &format!("http://127.0.0.1:{}", closed_port())],
            3,
            "is unreachable",
        ),
        (&["worker", "--token", &token], 2, "the control plane's database is required"),
    ];
    for (args, code, message) in cases {
        let ran = run_grace(args).await;
        assert_eq!(ran.code, Some(code), "{args:?}: {}", ran.all_output());
        assert!(ran.stderr.contains(message), "{args:?}: {}", ran.stderr);
    }
    let registered: i64 =
        app.database.client().await.query_one("SELECT count(*) FROM control.workers", &[]).await.unwrap().get(0);
    assert_eq!(registered, 0, "a worker that cannot start registers nothing");
}

#[tokio::test]
async fn a_replica_killed_mid_run_loses_no_acknowledged_write_and_its_unanswered_writes_are_judged_as_such() {
    let first = TestApp::spawn().await;
    let mut second = grace()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &first.database.url.to_string()])
        .env("GRACE_TOKENS", format!("operator={}", first.token(Role::Operator)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(second.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next_line().await.unwrap().expect("grace serve says where it listens");
        if let Some(address) = line.strip_prefix("grace backend listening on ") {
            break address.to_string();
        }
    };
    let running = load_command(&first, &["--backend", &address, "--users", "8", "--run-time", "6s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.start_kill().unwrap();
    let ran: Ran = running.wait_with_output().await.unwrap().into();
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    // Requests were cut off by the kill, and writes sent again, to the other replica...
    let dead = &result["backends"][address.trim_end_matches('/')];
    assert!(dead["failures"].as_u64().unwrap() > 0, "{dead}");
    // ...and C7 judges each write by how it ended: nothing acknowledged lost
    // or doubled, the unanswered ones counted apart.
    let check = &result["acked_writes"];
    assert_eq!(check["passed"], true, "{check}");
    assert_eq!((check["missing"].as_u64(), check["duplicated"].as_u64()), (Some(0), Some(0)), "{check}");
    let (indeterminate, stored) =
        (check["indeterminate"].as_u64().unwrap(), check["indeterminate_stored"].as_u64().unwrap());
    assert!(stored <= indeterminate, "{check}");
}

#[tokio::test]
async fn a_control_plane_statement_that_fails_names_the_step_it_was_part_of() {
    let database = TestDatabase::migrated().await;
    let plane = grace::control::connection::ControlPlane::connect(&database.url, "the test gives up").await.unwrap();

    let error = plane
        .run("reading the uploads", |c| async move { c.query("SELECT no_such_column FROM control.runs", &[]).await })
        .await
        .unwrap_err();

    assert_eq!(error.to_string(), r#"reading the uploads failed: ERROR: column "no_such_column" does not exist"#);
}
