//! compose/'s Prometheus scrape config and Grafana dashboard refer to what the
//! backend and the workers really export: every metric a panel queries is in
//! a real scrape of one or the other.

use crate::backend::TestApp;
use crate::distributed_load::{load, spawn_worker, wait_for_workers};
use crate::helpers::{closed_port, eventually};
use grace::specification::Role;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the workers export (`grace worker --metrics-listen`).
const WORKER_METRICS: &str = "grace_worker_";

/// Every metric name a panel of the dashboard queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let dashboard: Value =
        serde_json::from_str(include_str!("../../compose/grafana/dashboards/grace-backend.json")).unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    queried
}

/// The metric names a scrape holds samples of.
fn exported(scrape: &str) -> BTreeSet<&str> {
    scrape.lines().filter(|line| !line.starts_with('#')).filter_map(|line| line.split(['{', ' ']).next()).collect()
}

/// The metric names in a PromQL expression (`grace_…` and `process_…`).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("grace_") || word.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_metric_on_the_grafana_dashboard_is_exported_by_the_backend() {
    let app = TestApp::spawn().await;
    // Exercise what the panels show: traffic, a contract, so every family has a sample.
    let mission = app.create_mission().await;
    app.accepted_error(mission, "timeout", 0.95).await;
    let _ = app.get("/api/metrics/summary", Role::Operator).await;
    let scrape = app.client.scrape().await.unwrap();
    let exported = exported(&scrape);
    let queried: BTreeSet<String> =
        dashboard_metrics().into_iter().filter(|m| !m.starts_with(WORKER_METRICS)).collect();
    assert!(queried.len() >= 10, "the dashboard queries {queried:?}");
    let missing: Vec<_> = queried.iter().filter(|m| !exported.contains(m.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics the backend does not export: {missing:?}\n{scrape}");

    let prometheus = include_str!("../../compose/prometheus/prometheus.yml");
    assert!(prometheus.contains("metrics_path: /metrics") && prometheus.contains("backend:8080"), "{prometheus}");
}

#[tokio::test]
async fn a_worker_exports_what_the_dashboard_shows_of_it_and_its_counts_are_the_runs() {
    let app = TestApp::spawn().await;
    let port = closed_port();
    let mut worker = spawn_worker(&app, &["--metrics-listen", &format!("127.0.0.1:{port}")]);
    wait_for_workers(&app, 1).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let idle = eventually("the worker's /metrics", Duration::from_secs(10), || async {
        reqwest::get(&url).await.ok()?.text().await.ok()
    })
    .await;
    assert!(idle.contains("grace_worker_running 0"), "{idle}");

    let ran = load(&app, &["--users", "3", "--run-time", "2s", "--expect-workers", "1"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
    let result: Value = serde_json::from_str(&ran.stdout).unwrap();
    let scrape = reqwest::get(&url).await.unwrap().text().await.unwrap();
    worker.kill().await.unwrap();

    // The share's numbers stay shown after it ends: each request name's
    // answers by status are exactly what the run merged from this worker.
    let mut requests: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in scrape.lines().filter(|l| l.starts_with("grace_worker_requests_total{")) {
        let label =
            |name: &str| line.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
        let value = line.rsplit(' ').next().unwrap().parse().unwrap();
        requests.insert((label("request"), label("status")), value);
    }
    let mut merged = BTreeMap::new();
    for (name, statuses) in result["statuses"].as_object().unwrap() {
        for (status, count) in statuses.as_object().unwrap() {
            merged.insert((name.clone(), status.clone()), count.as_u64().unwrap());
        }
    }
    assert!(!merged.is_empty());
    assert_eq!(requests, merged, "{scrape}");
    assert!(scrape.contains("grace_worker_running 0"), "{scrape}");
    let p95 = scrape
        .lines()
        .find(|l| l.starts_with("grace_worker_latency_seconds{") && l.contains("request=\"overall\",quantile=\"0.95\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall p95: {scrape}"));
    let run_p95 = result["latency"][0]["p95_ms"].as_f64().unwrap() / 1000.0;
    assert!((p95 - run_p95).abs() < 1e-6, "the worker's p95 {p95} s, the run's {run_p95} s (one worker: the same)");

    let exported = exported(&scrape);
    let queried: Vec<String> = dashboard_metrics().into_iter().filter(|m| m.starts_with(WORKER_METRICS)).collect();
    assert!(queried.len() >= 3, "the dashboard shows the workers: {queried:?}");
    let missing: Vec<_> = queried.iter().filter(|m| !exported.contains(m.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics a worker does not export: {missing:?}\n{scrape}");
    let prometheus = include_str!("../../compose/prometheus/prometheus.yml");
    let compose = include_str!("../../compose/docker-compose.yml");
    assert!(prometheus.contains("job_name: grace-workers") && prometheus.contains("port: 9100"), "{prometheus}");
    assert!(compose.contains(r#"command: ["worker", "--metrics-listen", "0.0.0.0:9100"]"#), "{compose}");
}
