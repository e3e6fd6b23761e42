//! Past scenario runs, from Postgres: `grace report history`. The scenario
//! records each run (and which mission each iteration ran) when it reports.

use super::ScenarioReport;
use serde::Serialize;
use tokio_postgres::Client;
use uuid::Uuid;

/// Records `report` (in one transaction, so history never lists half a run).
pub async fn record(client: &mut Client, report: &ScenarioReport, chaos: bool) -> Result<(), tokio_postgres::Error> {
    let summary = serde_json::json!({
        "summary": report.summary,
        "aggregates": report.aggregates,
        "trends": report.trends,
        "load": { "users": report.configuration["users"], "run_time_secs": report.configuration["run_time_secs"] },
    });
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "INSERT INTO control.scenario_runs (id, started_at, finished_at, passed, exit_code, chaos, summary)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &report.run_id,
                &report.started_at,
                &report.finished_at,
                &report.passed,
                &i16::from(report.exit_code),
                &chaos,
                &summary,
            ],
        )
        .await?;
    for iteration in &report.iterations {
        transaction
            .execute(
                "INSERT INTO control.scenario_iterations (run_id, iteration, mission_id, passed)
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM missions WHERE id = $3)",
                &[&report.run_id, &(iteration.iteration as i32), &iteration.mission_id, &iteration.passed],
            )
            .await?;
    }
    transaction.commit().await
}

#[derive(Debug, Serialize)]
pub struct PastRun {
    pub run_id: Uuid,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub seconds: f64,
    pub passed: bool,
    pub chaos: bool,
    pub iterations: i64,
    /// Users and seconds of each iteration's load (absent for runs recorded before they were).
    pub users: Option<u64>,
    pub load_secs: Option<u64>,
    pub requests: Option<u64>,
    pub throughput_rps: Option<f64>,
    pub p95_ms: Option<f64>,
    pub error_rate: Option<f64>,
    pub missions: Vec<Uuid>,
}

/// The newest `limit` runs, newest first.
pub async fn list(client: &Client, limit: i64) -> Result<Vec<PastRun>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r.id, r.started_at, extract(epoch FROM r.finished_at - r.started_at)::float8 AS seconds, r.passed,
                    r.chaos, r.summary->'aggregates' AS aggregates, r.summary->'load' AS load,
                    array(SELECT i.mission_id FROM control.scenario_iterations i WHERE i.run_id = r.id ORDER BY i.iteration)
                      AS missions
               FROM control.scenario_runs r ORDER BY r.started_at DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let aggregates: serde_json::Value = row.try_get("aggregates")?;
            let load: Option<serde_json::Value> = row.try_get("load")?;
            let load = load.unwrap_or_default();
            let missions: Vec<Uuid> = row.try_get("missions")?;
            Ok(PastRun {
                run_id: row.try_get("id")?,
                started_at: row.try_get("started_at")?,
                seconds: row.try_get("seconds")?,
                passed: row.try_get("passed")?,
                chaos: row.try_get("chaos")?,
                iterations: missions.len() as i64,
                users: load["users"].as_u64(),
                load_secs: load["run_time_secs"].as_u64(),
                requests: aggregates["requests"].as_u64(),
                throughput_rps: aggregates["throughput_rps"].as_f64(),
                p95_ms: aggregates["latency"]["p95_ms"].as_f64(),
                error_rate: aggregates["error_rate"].as_f64(),
                missions,
            })
        })
        .collect()
}

/// The runs as a table, with the mission `grace verify --mission` takes (the
/// last iteration's, when there were several; `--json` lists them all).
pub fn render(runs: &[PastRun]) -> String {
    if runs.is_empty() {
        return "no scenario runs recorded in this database yet\n".to_string();
    }
    let mut text = format!(
        "{:<20} {:<36} {:<36} {:>4} {:>5} {:>6} {:>6} {:>6} {:>9} {:>9} {:>8} {:>7}\n",
        "started (UTC)",
        "run",
        "mission",
        "its",
        "users",
        "load s",
        "chaos",
        "result",
        "requests",
        "req/s",
        "p95 ms",
        "errors"
    );
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for run in runs {
        text.push_str(&format!(
            "{:<20} {:<36} {:<36} {:>4} {:>5} {:>6} {:>6} {:>6} {:>9} {:>9} {:>8} {:>7}\n",
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.run_id,
            dash(run.missions.last().map(ToString::to_string)),
            run.iterations,
            dash(run.users.map(|u| u.to_string())),
            dash(run.load_secs.map(|s| s.to_string())),
            if run.chaos { "yes" } else { "no" },
            if run.passed { "passed" } else { "FAILED" },
            dash(run.requests.map(|r| r.to_string())),
            dash(run.throughput_rps.map(|r| format!("{r:.1}"))),
            dash(run.p95_ms.map(|p| format!("{p:.1}"))),
            dash(run.error_rate.map(|e| format!("{:.2}%", e * 100.0))),
        ));
    }
    text
}
