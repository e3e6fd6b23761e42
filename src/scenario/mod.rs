//! `grace scenario`: the production scenario, the main job. It runs the 8
//! phases of DESIGN.md against a backend — by default one it starts itself on
//! a private Postgres, so a fresh machine needs one command — and turns them
//! into one verdict a team can gate a deploy on: exit 0 only when every
//! criterion of every iteration held, with the reports written either way.
//!
//! - [`phases`]: phases 1–7 of one iteration.
//! - [`monitor`]: the live `--monitor` line.
//!
//! Phase 8 (reports) is here: it runs once, after every iteration.

mod monitor;
mod phases;

use crate::api::admin::{FaultKind, FaultRequest};
use crate::backend::{Application, ServeSettings, StartupError};
use crate::client::{prometheus, BackendClient};
use crate::configuration::{BackendUrl, DatabaseUrl, Tokens};
use crate::control::coordinator::LoadOutcome;
use crate::control::plan::{LoadPlan, LoadShape};
use crate::control::result::{LatencySummary, OVERALL};
use crate::db::private::PrivateClusterError;
use crate::db::{self, Database, DbError};
use crate::report::{self, Aggregates, IterationReport, PhaseRecord, ResourceSample, ScenarioReport, Trends};
use chrono::Utc;
use grace_loadtests::{Recorded, Traffic};
use phases::{PhaseError, PhaseResult};
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The chaos rate `--chaos` sets on the mission.
const CHAOS_RATE: f64 = 0.1;
/// Growth (after the first iteration) past which rising memory is a leak.
const LEAK_GROWTH: f64 = 0.25;

/// Phase 6's limits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Thresholds {
    pub max_avg_ms: f64,
    pub max_latency_ms: f64,
    /// A fraction: 0.1 is 10%.
    pub max_error_rate: f64,
}

/// Which backend the scenario proves.
pub enum Target {
    /// Start the bundled backend, on `database` or a private Postgres.
    Bundled { database: Option<DatabaseUrl> },
    /// A running backend (staging) and its database.
    Remote { backend: BackendUrl, tokens: Tokens, database: DatabaseUrl },
}

pub struct ScenarioSettings {
    pub target: Target,
    pub load: LoadShape,
    pub chaos: bool,
    pub iterations: u32,
    pub monitor: bool,
    pub out: PathBuf,
    pub thresholds: Thresholds,
}

/// Why the scenario could not run at all (its criteria failing is not an
/// error: that is a report with a failed verdict).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    PrivateCluster(#[from] PrivateClusterError),
    #[error("the bundled backend did not start: {0}")]
    Backend(#[from] StartupError),
    #[error("the backend at {url} is unreachable: {reason}")]
    BackendUnreachable { url: String, reason: String },
    #[error("could not write the reports into {dir}: {error}")]
    Reports { dir: String, error: std::io::Error },
    #[error("interrupted")]
    Interrupted,
}

pub struct ScenarioOutcome {
    pub report: ScenarioReport,
    pub written: Vec<PathBuf>,
}

/// What the iterations share: the backend, its database, the monitor.
struct Context<'a> {
    settings: &'a ScenarioSettings,
    api: BackendClient,
    database: DatabaseUrl,
    db: Client,
    phase: watch::Sender<monitor::Status>,
    shutdown: &'a CancellationToken,
}

pub async fn run(settings: ScenarioSettings, shutdown: &CancellationToken) -> Result<ScenarioOutcome, ScenarioError> {
    let started_at = Utc::now();
    let run_id = Uuid::new_v4();
    // Bundled: the backend runs in this process until the scenario is done.
    let mut bundled = None;
    let (backend, tokens, database) = match &settings.target {
        Target::Bundled { database } => {
            let database = Database::configured_or_private(database.clone()).await?;
            let tokens = Tokens::generate();
            let serve = ServeSettings {
                database: database.url(),
                listen: "127.0.0.1:0".parse().expect("a literal address"),
                tokens: tokens.clone(),
                enable_faults: true,
                pool_size: 16,
            };
            let application = Application::build(serve).await?;
            let url = BackendUrl::parse(&format!("http://{}", application.local_addr())).expect("a local URL");
            let stop = CancellationToken::new();
            let server = tokio::spawn(application.run_until(stop.clone()));
            let url_for_db = database.url();
            bundled = Some((stop, server, database));
            (url, tokens, url_for_db)
        }
        Target::Remote { backend, tokens, database } => (backend.clone(), tokens.clone(), database.clone()),
    };
    let outcome = run_on(&settings, run_id, started_at, backend, tokens, database, shutdown).await;
    if let Some((stop, server, database)) = bundled {
        stop.cancel();
        let _ = server.await;
        drop(database);
    }
    outcome
}

async fn run_on(
    settings: &ScenarioSettings,
    run_id: Uuid,
    started_at: chrono::DateTime<Utc>,
    backend: BackendUrl,
    tokens: Tokens,
    database: DatabaseUrl,
    shutdown: &CancellationToken,
) -> Result<ScenarioOutcome, ScenarioError> {
    let api = BackendClient::new(backend.clone(), tokens.clone());
    await_backend(&api).await?;
    let db = db::connect(&database).await?;
    let (phase, watched) = watch::channel(monitor::Status::default());
    let monitor = settings.monitor.then(|| tokio::spawn(monitor::run(api.clone(), database.clone(), watched)));
    let context = Context { settings, api, database, db, phase, shutdown };
    println!(
        "grace scenario {run_id}: backend {backend}, database {}, {} iteration(s){}",
        context.database,
        settings.iterations,
        if settings.chaos { ", chaos at 10%" } else { "" }
    );
    let mut iterations = Vec::new();
    let mut goose_reports = Vec::new();
    let mut merged = Recorded::default();
    for number in 1..=settings.iterations {
        if shutdown.is_cancelled() {
            break;
        }
        let (iteration, load) = context.iteration(number).await;
        if let Some(load) = load {
            let _ = merged.merge(&load.histograms);
            for (worker, html) in load.reports {
                goose_reports.push((format!("goose_report_{}_{}.html", iteration.mission_id, worker.id), html));
            }
        }
        iterations.push(iteration);
    }
    if let Some(monitor) = monitor {
        monitor.abort();
    }
    if shutdown.is_cancelled() && iterations.is_empty() {
        return Err(ScenarioError::Interrupted);
    }

    // Phase 8: the reports. Its record goes with the last iteration's phases.
    let phase_start = (Utc::now(), Instant::now());
    let dir = settings.out.clone();
    let stamp = started_at.format("%Y%m%dT%H%M%SZ");
    let files = format!(
        "e2e_metrics_<mission>.json, scenario_report_{stamp}.json and .html, junit.xml and {} goose report(s) in {}",
        goose_reports.len(),
        dir.display()
    );
    if let Some(last) = iterations.last_mut() {
        last.phases.push(PhaseRecord {
            number: 8,
            name: "report".into(),
            started_at: phase_start.0,
            duration_ms: 0,
            passed: true,
            criteria: vec![report::Criterion::new("reports written", true, files)],
            notes: vec![],
            error: None,
        });
    }
    let trends = trends(&iterations);
    let aggregates = aggregates(&iterations, &merged);
    let summary = ScenarioReport::summarize(&iterations, &trends);
    let passed = summary.failed.is_empty() && !shutdown.is_cancelled();
    let report = ScenarioReport {
        schema_version: report::SCHEMA_VERSION,
        run_id,
        started_at,
        finished_at: Utc::now(),
        passed,
        exit_code: if passed { 0 } else { 1 },
        configuration: configuration(settings, &context),
        summary,
        iterations,
        aggregates,
        trends,
    };
    let written = report
        .write(&dir, settings.chaos, &goose_reports)
        .map_err(|error| ScenarioError::Reports { dir: dir.display().to_string(), error })?;
    let mut history = db::connect(&context.database).await?;
    if let Err(e) = report::history::record(&mut history, &report, settings.chaos).await {
        tracing::warn!(error = %db::describe(&e), "could not record the run for `grace report history`");
    }
    println!("phase 8/8 report ✓ {:.2}s", phase_start.1.elapsed().as_secs_f64());
    for path in &written {
        println!("   wrote {}", path.display());
    }
    if report.iterations.len() > 1 {
        print!("{}", iteration_table(&report));
    }
    Ok(ScenarioOutcome { report, written })
}

/// One line per iteration, and the trend verdict under it.
fn iteration_table(report: &ScenarioReport) -> String {
    let mut table = format!(
        "\n{:>4} {:<36} {:>6} {:>9} {:>8} {:>8} {:>9} {:>6} {:>10}\n",
        "it", "mission", "result", "requests", "req/s", "p95 ms", "RSS MiB", "conns", "tables MiB"
    );
    for it in &report.iterations {
        let load = it.load.as_ref();
        let p95 = load.and_then(|l| l.latency.first()).map_or_else(|| "-".into(), |o| format!("{:.1}", o.p95_ms));
        let rss =
            it.resources.backend_rss_bytes.map_or_else(|| "-".into(), |b| format!("{:.1}", b as f64 / 1_048_576.0));
        table.push_str(&format!(
            "{:>4} {:<36} {:>6} {:>9} {:>8.1} {:>8} {:>9} {:>6} {:>10.1}\n",
            it.iteration,
            it.mission_id,
            if it.passed { "passed" } else { "FAILED" },
            load.map_or(0, |l| l.total.requests),
            load.map_or(0.0, |l| l.total.requests_per_second),
            p95,
            rss,
            it.resources.database_connections,
            it.resources.table_bytes as f64 / 1_048_576.0,
        ));
    }
    table.push_str(&format!("trends: {}\n", report.trends.verdict));
    table
}

/// Waits briefly for the backend to answer healthy; unreachable is exit 3.
async fn await_backend(api: &BackendClient) -> Result<(), ScenarioError> {
    let mut last = String::new();
    for _ in 0..50 {
        match api.health().await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.reason(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ScenarioError::BackendUnreachable { url: api.url().to_string(), reason: last })
}

impl Context<'_> {
    /// Phases 1–7 for a fresh mission.
    async fn iteration(&self, number: u32) -> (IterationReport, Option<LoadOutcome>) {
        let mission = Uuid::new_v4();
        let settings = self.settings;
        if settings.iterations > 1 {
            println!("— iteration {number} of {}: mission {mission}", settings.iterations);
        }
        self.phase.send_modify(|s| s.mission = Some(mission));
        let mut phases = Vec::new();
        let name = format!("grace scenario iteration {number}");
        let setup = self
            .phase(&mut phases, 1, "mission setup", async {
                let mut result = phases::mission_setup(&self.api, mission, &name).await?;
                if settings.chaos {
                    let chaos = FaultRequest { mission_id: Some(mission), kind: FaultKind::Chaos { rate: CHAOS_RATE } };
                    self.api.set_fault(&chaos).await?;
                    result.notes.push(format!("chaos at {CHAOS_RATE} for the mission until the load ends"));
                }
                Ok((result, ()))
            })
            .await;
        let mut load = None;
        let mut counts = None;
        let mut consistency = Vec::new();
        if setup.is_some() {
            let retried_before = self.api.retries();
            self.phase(&mut phases, 2, "error injection", async {
                Ok((phases::error_injection(&self.api, mission).await?, ()))
            })
            .await;
            self.phase(&mut phases, 3, "approvals", async {
                Ok((phases::approvals(&self.api, &self.db, mission).await?, ()))
            })
            .await;
            self.phase(&mut phases, 4, "forced rollback", async {
                Ok((phases::forced_rollback(&self.api, &self.db, mission).await?, ()))
            })
            .await;
            let retried = self.api.retries() - retried_before;
            if retried > 0 {
                let note = format!(
                    "{retried} of the scenario's calls in phases 2–4 were refused for a transient reason and retried"
                );
                println!("   · {note}");
                if let Some(phase) = phases.last_mut() {
                    phase.notes.push(note);
                }
            }
            let plan = self.load_plan(mission);
            load = self
                .phase(&mut phases, 5, "concurrent load", phases::concurrent_load(&self.database, &plan, self.shutdown))
                .await;
            if settings.chaos {
                if let Err(e) = self.api.clear_faults(mission).await {
                    tracing::warn!(error = %e, "could not clear the mission's chaos");
                }
            }
            counts = self
                .phase(&mut phases, 6, "telemetry", async {
                    phases::telemetry(&self.db, mission, load.as_ref(), &settings.thresholds, settings.chaos).await
                })
                .await;
            consistency = self
                .phase(&mut phases, 7, "persistence and integrity", phases::integrity(&self.api, &self.db, mission))
                .await
                .unwrap_or_default();
        } else {
            for (n, name) in [
                (2, "error injection"),
                (3, "approvals"),
                (4, "forced rollback"),
                (5, "concurrent load"),
                (6, "telemetry"),
                (7, "persistence and integrity"),
            ] {
                phases.push(skipped(n, name, "phase 1 failed: there is no mission to work on"));
            }
        }
        let resources = self.sample_resources().await;
        let passed = phases.iter().all(|p| p.passed);
        let report = IterationReport {
            iteration: number,
            mission_id: mission,
            passed,
            phases,
            load: load.as_ref().map(|l| l.result.clone()),
            counts,
            consistency,
            resources,
        };
        (report, load)
    }

    fn load_plan(&self, mission: Uuid) -> LoadPlan {
        LoadPlan {
            backend: self.api.clone(),
            shape: self.settings.load.clone(),
            traffic: Traffic::Mission,
            mission: Some(mission),
        }
    }

    /// Runs one phase: announces it, times it, prints its criteria, and
    /// records it — as a failure with its cause when it could not finish.
    async fn phase<T>(
        &self,
        phases: &mut Vec<PhaseRecord>,
        number: u8,
        name: &str,
        work: impl Future<Output = Result<(PhaseResult, T), PhaseError>>,
    ) -> Option<T> {
        self.phase.send_modify(|s| s.phase = format!("{number}/8 {name}"));
        let started_at = Utc::now();
        let clock = Instant::now();
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = self.shutdown.cancelled() => Err(PhaseError::Skipped("interrupted".into())),
        };
        let duration_ms = clock.elapsed().as_millis() as u64;
        let (record, value) = match outcome {
            Ok((result, value)) => {
                let passed = result.criteria.iter().all(|c| c.passed);
                let record = PhaseRecord {
                    number,
                    name: name.into(),
                    started_at,
                    duration_ms,
                    passed,
                    criteria: result.criteria,
                    notes: result.notes,
                    error: None,
                };
                (record, Some(value))
            }
            Err(e) => {
                let mut record = skipped(number, name, &e.to_string());
                record.started_at = started_at;
                record.duration_ms = duration_ms;
                (record, None)
            }
        };
        print_phase(&record);
        phases.push(record);
        value
    }

    async fn sample_resources(&self) -> ResourceSample {
        let backend_rss_bytes = match self.api.scrape().await {
            Ok(scrape) => prometheus::metric_sum(&scrape, "process_resident_memory_bytes").map(|v| v as u64),
            Err(_) => None,
        };
        let row = self
            .db
            .query_one(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()) AS connections,
                        (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE c.relkind = 'r' AND n.nspname IN ('public', 'control')) AS table_bytes",
                &[],
            )
            .await;
        let sample = row.and_then(|r| Ok((r.try_get("connections")?, r.try_get("table_bytes")?)));
        let (database_connections, table_bytes) = sample.unwrap_or((0, 0));
        ResourceSample { backend_rss_bytes, database_connections, table_bytes }
    }
}

fn skipped(number: u8, name: &str, why: &str) -> PhaseRecord {
    PhaseRecord {
        number,
        name: name.into(),
        started_at: Utc::now(),
        duration_ms: 0,
        passed: false,
        criteria: vec![report::Criterion::new("phase completed", false, why)],
        notes: vec![],
        error: Some(why.to_string()),
    }
}

fn print_phase(record: &PhaseRecord) {
    let mark = if record.passed { "✓" } else { "✗" };
    println!("phase {}/8 {} {mark} {:.2}s", record.number, record.name, record.duration_ms as f64 / 1000.0);
    for criterion in &record.criteria {
        let mark = if criterion.passed { "✓" } else { "✗" };
        println!("   {mark} {}: {}", criterion.name, criterion.detail);
    }
    for note in &record.notes {
        println!("   · {note}");
    }
    if let Some(error) = &record.error {
        println!("   ✗ {error}");
    }
}

/// The options the scenario ran with, as a report shows them: no tokens, and
/// the database URL without its password.
fn configuration(settings: &ScenarioSettings, context: &Context<'_>) -> serde_json::Value {
    let load = &settings.load;
    json!({
        "backend": context.api.url().to_string(),
        "bundled_backend": matches!(settings.target, Target::Bundled { .. }),
        "database": context.database.to_string(),
        "users": load.users,
        "run_time_secs": load.run_time.as_secs(),
        "rate": load.rate,
        "expect_workers": load.expect_workers,
        "iterations": settings.iterations,
        "chaos": settings.chaos,
        "chaos_rate": settings.chaos.then_some(CHAOS_RATE),
        "thresholds": settings.thresholds,
        "out": settings.out.display().to_string(),
    })
}

fn aggregates(iterations: &[IterationReport], merged: &Recorded) -> Aggregates {
    let loads: Vec<_> = iterations.iter().filter_map(|it| it.load.as_ref()).collect();
    let requests: u64 = loads.iter().map(|l| l.total.requests).sum();
    let failures: u64 = loads.iter().map(|l| l.total.failures).sum();
    let injected: u64 = loads.iter().map(|l| l.injected_faults.min(l.total.failures)).sum();
    let throughput = if loads.is_empty() {
        0.0
    } else {
        loads.iter().map(|l| l.total.requests_per_second).sum::<f64>() / loads.len() as f64
    };
    let total = crate::control::result::Throughput { requests, failures, requests_per_second: throughput };
    Aggregates {
        requests,
        failures,
        injected_faults: injected,
        error_rate: failures as f64 / requests.max(1) as f64,
        genuine_error_rate: (failures - injected) as f64 / requests.max(1) as f64,
        throughput_rps: throughput,
        latency: (!merged.overall.is_empty()).then(|| LatencySummary::of(OVERALL, &total, &merged.overall)),
    }
}

/// Backend memory, database connections and table sizes per iteration, and
/// whether they point at a leak: memory or connections that rose at every
/// iteration after the first (a warm-up) by more than `LEAK_GROWTH` in all.
/// Tables grow by design (every iteration keeps its data); they are shown.
fn trends(iterations: &[IterationReport]) -> Trends {
    let mib = |bytes: u64| (bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0;
    let rss: Vec<f64> = iterations.iter().filter_map(|it| it.resources.backend_rss_bytes.map(mib)).collect();
    let connections: Vec<i64> = iterations.iter().map(|it| it.resources.database_connections).collect();
    let tables: Vec<f64> = iterations.iter().map(|it| mib(it.resources.table_bytes.max(0) as u64)).collect();
    let rising = |values: &[f64]| -> Option<f64> {
        let after_warmup = values.get(1..)?;
        if after_warmup.len() < 2 || !after_warmup.windows(2).all(|w| w[1] > w[0]) {
            return None;
        }
        let growth = after_warmup[after_warmup.len() - 1] / after_warmup[0].max(f64::MIN_POSITIVE) - 1.0;
        (growth > LEAK_GROWTH).then_some(growth)
    };
    let connections_f: Vec<f64> = connections.iter().map(|c| *c as f64).collect();
    let mut suspicions = Vec::new();
    if let Some(growth) = rising(&rss) {
        suspicions.push(format!("backend memory rose every iteration, {:.0}% in all ({rss:?} MiB)", growth * 100.0));
    }
    if let Some(growth) = rising(&connections_f) {
        suspicions.push(format!(
            "database connections rose every iteration, {:.0}% in all ({connections:?})",
            growth * 100.0
        ));
    }
    let table_growth = match (tables.first(), tables.last()) {
        (Some(first), Some(last)) if tables.len() > 1 => {
            format!(
                "tables grew {:.1} MiB per iteration (data kept by design)",
                (last - first) / (tables.len() - 1) as f64
            )
        }
        _ => "one iteration: tables not compared".to_string(),
    };
    let verdict = if iterations.len() < 3 {
        format!("not judged: a leak verdict needs 3+ iterations; {table_growth}")
    } else if suspicions.is_empty() {
        format!("no leak: memory and connections level off after the first iteration; {table_growth}")
    } else {
        format!("possible leak: {}; {table_growth}", suspicions.join("; "))
    };
    Trends {
        backend_rss_mib: rss,
        database_connections: connections,
        table_mib: tables,
        leak_suspected: !suspicions.is_empty(),
        verdict,
    }
}
