//! End-to-end: the real `grace scenario` binary, all 8 phases, against the
//! bundled backend on a real PostgreSQL — the seed's pytest trio (normal,
//! chaos, stress) and the ways it must fail. Run alone with
//! `cargo test --test e2e`; `scripts/test` runs it with everything else.

// Shared with the integration tests; this binary uses part of it.
#[allow(dead_code)]
#[path = "../integration/helpers.rs"]
mod helpers;

use helpers::{closed_port, grace, Ran, TestDatabase};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// A short scenario: the phases are all there, the load is brief.
const SHORT: &[&str] = &["--users", "10", "--run-time", "3s"];

async fn scenario(database: &TestDatabase, out: &Path, extra: &[&str]) -> Ran {
    scenario_shaped(database, out, SHORT, extra).await
}

/// A scenario whose load has `shape` (users, run time).
async fn scenario_shaped(database: &TestDatabase, out: &Path, shape: &[&str], extra: &[&str]) -> Ran {
    grace()
        .arg("scenario")
        .args(shape)
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .env("DATABASE_URL", database.url.to_string())
        .output()
        .await
        .expect("run grace scenario")
        .into()
}

fn report_file(out: &Path, prefix: &str, suffix: &str) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}", out.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn consistency_held(report: &Value) -> bool {
    report["iterations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|it| it["consistency"].as_array().unwrap().iter().all(|c| c["passed"] == true))
}

#[tokio::test]
async fn normal_mode_meets_every_criterion_and_writes_the_four_reports() {
    let database = TestDatabase::migrated().await;
    let out = tempfile::tempdir().unwrap();
    let ran = scenario(&database, out.path(), &[]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    for phase in 1..=8 {
        assert!(ran.stdout.contains(&format!("phase {phase}/8 ")), "phase {phase} is reported:\n{}", ran.stdout);
    }
    assert!(!ran.stdout.contains('✗'), "{}", ran.stdout);

    let report = json(&report_file(out.path(), "scenario_report_", ".json"));
    assert_eq!(report["passed"], true);
    assert_eq!(report["summary"]["criteria"], report["summary"]["criteria_passed"]);
    assert!(consistency_held(&report));
    let iteration = &report["iterations"][0];
    let mission = iteration["mission_id"].as_str().unwrap();

    // The seed's metrics agree with Postgres.
    let metrics = json(&out.path().join(format!("e2e_metrics_{mission}.json")));
    let client = database.client().await;
    let contracts: i64 = client
        .query_one("SELECT count(*) FROM action_contracts WHERE mission_id = $1::text::uuid", &[&mission])
        .await
        .unwrap()
        .get(0);
    assert_eq!(metrics["contracts_created"], contracts);
    assert_eq!(metrics["actions_triggered"], contracts);
    assert_eq!(metrics["rollbacks"], 1, "phase 4 forced exactly one");
    assert_eq!(metrics["approvals_requested"].as_i64().unwrap(), 13, "12 held in phase 2, 1 in phase 4");
    for key in
        ["avg_latency_ms", "max_latency_ms", "p50_latency_ms", "p999_latency_ms", "throughput_rps", "log_entries"]
    {
        assert!(metrics[key].is_number(), "{key} in {metrics}");
    }
    assert_eq!(metrics["orphaned_events"], 0);

    // JUnit: one testcase per criterion, none failed.
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    let criteria = report["summary"]["criteria"].as_u64().unwrap() as usize;
    assert_eq!(junit.matches("<testcase ").count(), criteria, "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");

    // HTML: self-contained, verdict first, charts inline.
    let html = std::fs::read_to_string(report_file(out.path(), "scenario_report_", ".html")).unwrap();
    assert!(html.contains("Grace scenario: PASSED"));
    assert!(html.matches("<svg").count() >= 3, "latency, requests and phase timeline charts");
    assert!(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"));
    // goose's own page only when asked for (`--goose-report`, below), and no link to one.
    assert!(!std::fs::read_dir(out.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("goose-")));
    assert!(!html.contains("goose-report-"), "the page links no goose page");

    // Phase 7 alone, as against staging, agrees.
    let verified: Ran = grace()
        .args(["verify", "--mission", mission, "--database-url", &database.url.to_string()])
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(verified.code, Some(0), "{}", verified.all_output());
    assert_eq!(verified.stdout.matches('✓').count(), 7, "{}", verified.stdout);

    // A report compared with itself has not regressed; one with half the throughput has.
    let path = report_file(out.path(), "scenario_report_", ".json");
    let same: Ran = grace().args(["report", "compare"]).arg(&path).arg(&path).output().await.unwrap().into();
    assert_eq!(same.code, Some(0), "{}", same.all_output());
    // Read by someone who stops early (`| head`), it ends quietly with its verdict.
    let unread = helpers::into_a_closed_pipe(grace().args(["report", "compare", "--json"]).arg(&path).arg(&path)).await;
    assert_eq!(unread.code, Some(0), "{}", unread.stderr);
    assert!(!unread.stderr.contains("panicked"), "{}", unread.stderr);
    let mut slower = report.clone();
    slower["aggregates"]["throughput_rps"] = (report["aggregates"]["throughput_rps"].as_f64().unwrap() / 2.0).into();
    let slower_path = out.path().join("slower.json");
    std::fs::write(&slower_path, slower.to_string()).unwrap();
    let regressed: Ran =
        grace().args(["report", "compare"]).arg(&path).arg(&slower_path).output().await.unwrap().into();
    assert_eq!(regressed.code, Some(1), "{}", regressed.all_output());
    assert!(regressed.stdout.contains("throughput (req/s)") && regressed.stdout.contains("REGRESSED"));
    // --json carries the verdict with its rows.
    let judged: Ran =
        grace().args(["report", "compare", "--json"]).arg(&path).arg(&slower_path).output().await.unwrap().into();
    assert_eq!(judged.code, Some(1), "{}", judged.all_output());
    let judged: Value = serde_json::from_str(&judged.stdout).unwrap();
    assert_eq!((&judged["regressed"], &judged["unlike"]), (&Value::Bool(true), &serde_json::json!([])));
    assert_eq!(judged["comparisons"][0]["metric"], "throughput (req/s)");

    // A run of another shape does not compare, unless asked, and then loudly.
    let mut bigger = report.clone();
    bigger["configuration"]["users"] = 200.into();
    let bigger_path = out.path().join("bigger.json");
    std::fs::write(&bigger_path, bigger.to_string()).unwrap();
    let unlike: Ran = grace().args(["report", "compare"]).arg(&path).arg(&bigger_path).output().await.unwrap().into();
    assert_eq!(unlike.code, Some(2), "{}", unlike.all_output());
    assert!(unlike.stderr.contains("not run alike (users 10 → 200)"), "{}", unlike.stderr);
    let allowed: Ran = grace()
        .args(["report", "compare", "--allow-unlike"])
        .arg(&path)
        .arg(&bigger_path)
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(allowed.code, Some(0), "{}", allowed.all_output());
    assert!(allowed.stdout.starts_with("! UNLIKE RUNS: users 10 → 200\n"), "{}", allowed.stdout);
    // --latest: the only report in the directory has nothing to compare with.
    let latest: Ran = grace().args(["report", "compare", "--latest"]).arg(out.path()).output().await.unwrap().into();
    assert_eq!(latest.code, Some(0), "{}", latest.all_output());
    assert!(latest.stderr.contains("nothing to compare"), "{}", latest.stderr);

    // The HTML renders again, identically, from the JSON.
    let rendered: Ran = grace().args(["report", "render"]).arg(&path).output().await.unwrap().into();
    assert_eq!(rendered.code, Some(0), "{}", rendered.all_output());
    assert_eq!(rendered.stdout, html);

    // And the run is in the history.
    let history: Ran = grace()
        .args(["report", "history", "--json", "--database-url", &database.url.to_string()])
        .output()
        .await
        .unwrap()
        .into();
    let runs: Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(runs[0]["run_id"], report["run_id"]);
    assert_eq!(runs[0]["missions"][0], mission);
    assert_eq!(
        (&runs[0]["users"], &runs[0]["load_secs"]),
        (&report["configuration"]["users"], &report["configuration"]["run_time_secs"])
    );
    // The table names the mission `grace verify --mission` takes.
    let table: Ran =
        grace().args(["report", "history", "--database-url", &database.url.to_string()]).output().await.unwrap().into();
    assert!(table.stdout.lines().nth(1).is_some_and(|row| row.contains(mission)), "{}", table.stdout);

    // A second run like it in the same directory is compared with the first
    // on its page (and in its JSON, so the page renders again the same).
    let again = scenario(&database, out.path(), &[]).await;
    assert_eq!(again.code, Some(0), "{}", again.all_output());
    let newest = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("scenario_report_") && p != &path)
        .find(|p| p.extension().unwrap() == "json")
        .unwrap();
    let second = json(&newest);
    assert_eq!(second["baseline"]["run_id"], report["run_id"], "{}", second["baseline"]);
    assert_eq!(second["baseline"]["comparisons"].as_array().unwrap().len(), 6);
    let page = std::fs::read_to_string(newest.with_extension("html")).unwrap();
    assert!(page.contains(&format!("Compared with run {}", report["run_id"].as_str().unwrap())));
}

#[tokio::test]
async fn chaos_mode_keeps_integrity_perfect_with_injected_faults_present() {
    let database = TestDatabase::migrated().await;
    let out = tempfile::tempdir().unwrap();
    // Long enough for the monitor (every 2 s) to read the running load twice.
    let shape = ["--users", "10", "--run-time", "6s"];
    let ran = scenario_shaped(&database, out.path(), &shape, &["--chaos", "--monitor", "--goose-report"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    // Not a terminal: the monitor prints plain lines on stderr.
    let line =
        ran.stderr.lines().find(|l| l.starts_with("monitor: phase ")).unwrap_or_else(|| panic!("{}", ran.stderr));
    for part in ["| events ", "| contracts ", "| latest ", " req/s ", "| errors ", "| p95 ", "| log lag "] {
        assert!(line.contains(part), "{part} in {line}");
    }
    // While the load runs, its own figures: a p95 from its histograms, not a
    // bucket bound of the backend's (a reading before the workers' first
    // heartbeat has none yet: "p95 -").
    let load_p95 = |line: &str| -> Option<f64> {
        let p95 = line.split("| p95 ").nth(1)?.split(" ms").next()?;
        p95.contains('.').then(|| p95.parse().ok()).flatten()
    };
    let during =
        ran.stderr.lines().filter(|l| l.starts_with("monitor: phase 5/8 concurrent load") && l.contains("| load "));
    let p95s: Vec<f64> = during.filter_map(load_p95).collect();
    assert!(p95s.iter().any(|p| *p > 0.0), "no line of the load's own figures: {}", ran.stderr);
    let report = json(&report_file(out.path(), "scenario_report_", ".json"));
    assert_eq!(report["configuration"]["chaos"], true);
    assert!(report["aggregates"]["injected_faults"].as_u64().unwrap() > 0, "{}", report["aggregates"]);
    assert!(consistency_held(&report));
    assert!(ran.stdout.contains("injected faults counted apart"), "{}", ran.stdout);

    // What the backend answered, kept and shown: statuses per endpoint (the
    // injected 503s among them), a sample of each kind of failure, and the
    // injected faults second by second.
    let load = &report["iterations"][0]["load"];
    let refused: u64 = load["statuses"].as_object().unwrap().values().filter_map(|s| s["503"].as_u64()).sum();
    assert!(refused > 0, "{}", load["statuses"]);
    let injected = load["errors"].as_array().unwrap().iter().find(|e| e["status"] == "503");
    assert!(injected.is_some_and(|e| e["count"].as_u64() > Some(0)), "{}", load["errors"]);
    let html = std::fs::read_to_string(report_file(out.path(), "scenario_report_", ".html")).unwrap();
    for part in ["Status codes per endpoint", "Failures by kind", "Injected faults per second", "<h3>Users</h3>"] {
        assert!(html.contains(part), "{part}");
    }
    // p50/p95/p99 over time, a chart per request name, from windows the load kept.
    assert!(load["over_time"]["POST /api/chat"].as_array().is_some_and(|w| !w.is_empty()), "{}", load["over_time"]);
    for caption in ["<figcaption>overall</figcaption>", "<figcaption>POST /api/chat</figcaption>"] {
        assert!(html.contains(caption), "{caption}");
    }
    // goose's per-worker page is linked, and reads offline.
    let goose = report_file(out.path(), "goose-report-", ".html");
    let name = goose.file_name().unwrap().to_str().unwrap();
    assert!(html.contains(&format!("href=\"{name}\"")), "the page links {name}");
    let goose = std::fs::read_to_string(&goose).unwrap();
    assert!(!goose.contains("https://cdn") && goose.contains("Licensed to the Apache Software Foundation"));
}

#[tokio::test]
async fn stress_of_three_iterations_passes_with_no_leak_verdict() {
    let database = TestDatabase::migrated().await;
    let out = tempfile::tempdir().unwrap();
    let ran = scenario(&database, out.path(), &["--iterations", "3"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let report = json(&report_file(out.path(), "scenario_report_", ".json"));
    assert_eq!(report["summary"]["iterations_passed"], 3);
    assert_eq!(report["trends"]["leak_suspected"], false);
    assert!(report["trends"]["verdict"].as_str().unwrap().starts_with("no leak"), "{}", report["trends"]);
    assert_eq!(report["trends"]["backend_rss_mib"].as_array().unwrap().len(), 3);
    let missions: Vec<&str> =
        report["iterations"].as_array().unwrap().iter().map(|i| i["mission_id"].as_str().unwrap()).collect();
    for mission in &missions {
        assert!(out.path().join(format!("e2e_metrics_{mission}.json")).exists());
    }
}

#[tokio::test]
async fn an_orphaned_row_fails_phase_7_naming_it() {
    let database = TestDatabase::bootstrapped().await;
    let ghost = uuid::Uuid::new_v4();
    helpers::plant_orphan_event(&database.client().await, ghost).await;
    let out = tempfile::tempdir().unwrap();
    let ran = scenario(&database, out.path(), &[]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert!(ran.stdout.contains("✗ C1 no orphans"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains(&format!("public.action_events.mission_id = {ghost} refers to no row")),
        "{}",
        ran.stdout
    );
    assert!(ran.stderr.contains("C1 no orphans"), "the failure is named on exit: {}", ran.stderr);
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
}

#[tokio::test]
async fn a_missing_foreign_key_fails_phase_7_naming_it() {
    let database = TestDatabase::bootstrapped().await;
    database.client().await.batch_execute("ALTER TABLE tasks DROP CONSTRAINT tasks_mission_id_fkey").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let ran = scenario(&database, out.path(), &[]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert!(ran.stdout.contains("FOREIGN KEY missing: public.tasks.mission_id → public.missions"), "{}", ran.stdout);
    let report = json(&report_file(out.path(), "scenario_report_", ".json"));
    assert_eq!(report["passed"], false);
    assert_eq!(report["exit_code"], 1);
}

#[tokio::test]
async fn impossible_thresholds_fail_phase_6() {
    let database = TestDatabase::migrated().await;
    let out = tempfile::tempdir().unwrap();
    let limits = ["--max-avg-ms", "0.001", "--max-latency-ms", "0.002"];
    let criteria = ["--threshold", "p95<0.001ms", "--threshold", "/api/chat:rps>0", "--threshold", "error_rate<=100%"];
    let ran = scenario(&database, out.path(), &[&limits[..], &criteria[..]].concat()).await;
    assert_eq!(ran.code, Some(1), "{}", ran.all_output());
    assert!(ran.stdout.contains("phase 6/8 telemetry ✗"), "{}", ran.stdout);
    assert!(ran.stdout.contains("✗ average latency") && ran.stdout.contains("✗ maximum latency"), "{}", ran.stdout);
    // k6-style thresholds are criteria of phase 6 too, each with what was measured.
    assert!(ran.stdout.contains("✗ threshold p95<0.001ms: measured "), "{}", ran.stdout);
    assert!(ran.stdout.contains("✓ threshold /api/chat:rps>0: measured "), "{}", ran.stdout);
    assert!(ran.stdout.contains("✓ threshold error_rate<=100%: measured "), "{}", ran.stdout);
    let report = json(&report_file(out.path(), "scenario_report_", ".json"));
    assert_eq!(
        report["configuration"]["thresholds"]["criteria"],
        serde_json::json!(["p95<0.001ms", "/api/chat:rps>0", "error_rate<=100%"])
    );
    // Integrity still held: only the thresholds failed.
    assert!(consistency_held(&report));
}

#[tokio::test]
async fn an_unreachable_backend_exits_3() {
    let database = TestDatabase::bootstrapped().await;
    let out = tempfile::tempdir().unwrap();
    let backend = format!("http://127.0.0.1:{}", closed_port());
    let tokens = "operator=operator-e2e-token-1,approver=approver-e2e-token-1";
    let ran = scenario(&database, out.path(), &["--backend", &backend, "--tokens", tokens]).await;
    assert_eq!(ran.code, Some(3), "{}", ran.all_output());
    assert!(ran.stderr.contains(&format!("the backend at {backend} is unreachable")), "{}", ran.stderr);
}

#[tokio::test]
async fn an_interrupted_run_exits_130_and_its_report_says_130() {
    let database = TestDatabase::migrated().await;
    let out = tempfile::tempdir().unwrap();
    let mut child = grace()
        .args(["scenario", "--users", "5", "--run-time", "60s", "--out", out.path().to_str().unwrap()])
        .env("DATABASE_URL", database.url.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    // Phase 4's line is printed when it ends, as the load of phase 5 begins.
    while !printed.lines().any(|line| line.starts_with("phase 4/8 ")) {
        let read =
            tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut printed)).await.unwrap().unwrap();
        assert!(read > 0, "the scenario ended before its load: {printed}");
    }
    // Past the load's announced start (a second after the claim), into its load.
    tokio::time::sleep(Duration::from_secs(5)).await;
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    stdout.read_to_string(&mut printed).await.unwrap();
    assert_eq!(status.code(), Some(130), "{printed}");
    let report = json(&report_file(out.path(), "scenario_report_", ".json"));
    assert_eq!(report["exit_code"], 130, "the report records the code the process exited with");
    assert_eq!(report["passed"], false);
    let phases = report["iterations"][0]["phases"].as_array().unwrap();
    assert_eq!(phases.last().unwrap()["number"], 8, "the reports are written even so");
    assert!(printed.contains("phase 8/8 report ✓"), "{printed}");
    // The load stopped, and what it measured is kept, proven and marked.
    let load = &report["iterations"][0]["load"];
    assert_eq!(load["interrupted"], true, "{load}");
    assert!(load["total"]["requests"].as_u64().unwrap() > 0, "{}", load["total"]);
    assert_eq!(load["acked_writes"]["passed"], true, "{}", load["acked_writes"]);
}

#[tokio::test]
async fn phase_5_runs_a_workload_file_and_the_scenario_still_meets_every_criterion() {
    let database = TestDatabase::migrated().await;
    let out = tempfile::tempdir().unwrap();
    let workload = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads/mission.toml");
    let ran = scenario(&database, out.path(), &["--workload", workload]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let report = json(&report_file(out.path(), "scenario_report_", ".json"));
    assert!(consistency_held(&report), "{}", report["iterations"]);
    // The load phase sent the workload's requests, writes proven by C7.
    let load = &report["iterations"][0]["load"];
    let names: Vec<&str> = load["latency"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"GET /api/tasks/{id}") && names.contains(&"POST /api/chat"), "{names:?}");
    assert!(load["acked_writes"]["acknowledged"].as_u64().unwrap() > 0, "{}", load["acked_writes"]);
    // A bad workload is a usage error before any phase.
    let bad = out.path().join("bad.toml");
    std::fs::write(&bad, "[[scenarios]]\nname = \"s\"\nweight = 0\nsteps = [{ path = \"/\" }]\n").unwrap();
    let ran = scenario(&database, out.path(), &["--workload", bad.to_str().unwrap()]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("bad.toml:3:10: scenario \"s\" has weight 0"), "{}", ran.stderr);
}
