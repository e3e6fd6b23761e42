//! compose/'s Prometheus scrape config and Grafana dashboard refer to what the
//! backend really exports: every metric a panel queries is in a real scrape.

use crate::backend::TestApp;
use grace::specification::Role;
use serde_json::Value;
use std::collections::BTreeSet;

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
    let exported: BTreeSet<&str> =
        scrape.lines().filter(|line| !line.starts_with('#')).filter_map(|line| line.split(['{', ' ']).next()).collect();

    let dashboard: Value =
        serde_json::from_str(include_str!("../../compose/grafana/dashboards/grace-backend.json")).unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    assert!(queried.len() >= 10, "the dashboard queries {queried:?}");
    let missing: Vec<_> = queried.iter().filter(|m| !exported.contains(m.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics the backend does not export: {missing:?}\n{scrape}");

    let prometheus = include_str!("../../compose/prometheus/prometheus.yml");
    assert!(prometheus.contains("metrics_path: /metrics") && prometheus.contains("backend:8080"), "{prometheus}");
}
