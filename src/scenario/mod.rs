//! `grace scenario`: the production scenario, the main job. It runs the 8
//! phases of docs/design.md against a backend — by default one it starts itself on
//! a private Postgres, so a fresh machine needs one command — and turns them
//! into one verdict a team can gate a deploy on: exit 0 only when every
//! criterion of every iteration held, with the reports written either way
//! once phase 1 has begun. What stops it beginning (an unreachable backend, a
//! refused token) is an error before any report, with its exit code (3, 2).
//!
//! - [`phases`]: what each phase does and checks: 1–7 for each iteration,
//!   8 (the reports) once after all of them.
//! - [`monitor`]: the live `--monitor` line.
//!
//! What is computed over the whole run (aggregates, trends, the verdict and
//! its exit code) is the report's business: see `crate::report`.

mod monitor;
mod phases;

use crate::api::admin::{FaultKind, FaultRequest};
use crate::backend::connections::ConnectionLimits;
use crate::backend::{Application, ServeSettings, StartupError};
use crate::client::{prometheus, BackendClient};
use crate::configuration::{BackendUrl, DatabaseUrl, Tokens};
use crate::control::coordinator::LoadOutcome;
use crate::control::plan::{LoadPlan, LoadShape, WriteProofs};
use crate::db::private::PrivateClusterError;
use crate::db::{self, Database, DbError};
use crate::immutable_log::anchors::ANCHOR_FILE;
use crate::report::{self, IterationReport, PhaseRecord, ResourceSample, RunConfiguration, ScenarioReport, Thresholds};
use crate::specification::Role;
use chrono::Utc;
use grace_loadtests::Recorded;
use phases::{PhaseError, PhaseResult};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The chaos rate `--chaos` sets on the mission.
const CHAOS_RATE: f64 = 0.1;

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
    /// Phase 5's traffic (the bundled mission workload unless the user gave one).
    pub workload: grace_loadtests::workload::WorkloadSource,
    /// The workload's proofs, run on the backend's database; none: C7 on
    /// the backend's chat and tasks.
    pub proofs: Vec<grace_loadtests::workload::ProofSpec>,
    pub chaos: bool,
    pub iterations: u32,
    pub monitor: bool,
    /// Keep goose's own metrics for its HTML report (`--goose-report`).
    pub goose_report: bool,
    pub out: PathBuf,
    pub thresholds: Thresholds,
    /// The report (and its file) to compare this run with; by default the
    /// last passing run of the same configuration in `out`.
    pub baseline: Option<(PathBuf, ScenarioReport)>,
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
    /// The settings will not do (a token missing or refused).
    #[error("{0}")]
    Configuration(String),
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
    /// The anchor file phase 7 keeps, for a database that outlives the run
    /// (a private one is gone when it ends: nothing to anchor).
    anchors: Option<PathBuf>,
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
                pool_size: usize::from(crate::backend::default_pool_size()),
                connections: ConnectionLimits::default(),
                private_database: database.is_private(),
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
    preflight(&api, &database).await?;
    let db = db::connect(&database).await?;
    let (phase, watched) = watch::channel(monitor::Status::default());
    let monitor = settings.monitor.then(|| tokio::spawn(monitor::run(api.clone(), database.clone(), watched)));
    let lasting = !matches!(settings.target, Target::Bundled { database: None });
    let anchors = lasting.then(|| settings.out.join(ANCHOR_FILE));
    let context = Context { settings, api, database, db, anchors, phase, shutdown };
    crate::say!(
        "grace scenario {run_id}: backend {backend}, database {}, {}{}",
        context.database,
        crate::console::counted(settings.iterations, "iteration", "iterations"),
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
                goose_reports.push((crate::control::goose_page::file_name(load.result.run_id, worker.id), html));
            }
        }
        iterations.push(iteration);
    }
    if let Some(monitor) = monitor {
        monitor.abort();
        crate::console::lift_bar();
    }
    if shutdown.is_cancelled() && iterations.is_empty() {
        return Err(ScenarioError::Interrupted);
    }

    let interrupted = shutdown.is_cancelled().then(crate::shutdown::interrupted_exit_code);
    let mut report =
        ScenarioReport::new(run_id, started_at, &context.configuration(), iterations, &merged, interrupted);
    let baseline = settings
        .baseline
        .clone()
        .or_else(|| report::compare::baseline(&report::compare::reports_under(&settings.out), &report).cloned());
    report.baseline = baseline.map(|(file, old)| report::compare::Baseline::of(&file, &old, &report));
    // Phase 8: the reports, timed like every other phase. Its own record
    // belongs in the files it times, so they are written once within the
    // phase (which fails, saying why, when they cannot be) and once more,
    // whole, with that record in them (all but goose's pages).
    let dir = &settings.out;
    let mut reporting = Vec::new();
    context
        .measured(&mut reporting, 8, async { Ok((phases::reports(&report, dir, settings.chaos, &goose_reports), ())) })
        .await;
    report.add_report_phase(reporting.pop().expect("a measured phase leaves its record"));
    // goose's pages hold nothing of phase 8's record: written once, within it
    // (with ECharts inlined, a megabyte or more each).
    let mut written = report
        .write(dir, settings.chaos, &[])
        .map_err(|error| ScenarioError::Reports { dir: dir.display().to_string(), error })?;
    written.extend(goose_reports.iter().map(|(name, _)| dir.join(name)));
    for path in &written {
        crate::say!("   wrote {}", path.display());
    }
    // The ids a user needs next: a database that outlives the run can be proven again.
    for iteration in &report.iterations {
        match (&iteration.load, context.anchors.is_some()) {
            (Some(load), true) => crate::say!(
                "   mission {} (load run {}): `grace verify --mission {}` proves it again",
                iteration.mission_id,
                load.run_id,
                iteration.mission_id
            ),
            (Some(load), false) => crate::say!("   mission {} (load run {})", iteration.mission_id, load.run_id),
            (None, _) => crate::say!("   mission {}", iteration.mission_id),
        }
    }
    let mut history = db::connect(&context.database).await?;
    if let Err(e) = report::history::record(&mut history, &report, settings.chaos).await {
        tracing::warn!(error = %db::describe(&e), "could not record the run for `grace report history`");
    }
    if report.iterations.len() > 1 {
        crate::console::print(&report.iteration_table());
    }
    Ok(ScenarioOutcome { report, written })
}

/// What would otherwise fail late, found before phase 1: a role without a
/// token, or a token the backend refuses (phases 3–4 decide approvals as
/// approver and governance and set faults as admin), and a database that was
/// never bootstrapped.
async fn preflight(api: &BackendClient, database: &DatabaseUrl) -> Result<(), ScenarioError> {
    if let Err(e) = api.check_tokens(&Role::ALL).await {
        return Err(if e.is_configuration() {
            ScenarioError::Configuration(format!(
                "{}: {e}; the scenario needs the backend's token for every role (operator, approver, governance, \
                 admin) in GRACE_TOKENS or --tokens",
                api.url()
            ))
        } else {
            ScenarioError::BackendUnreachable { url: api.url().to_string(), reason: e.reason() }
        });
    }
    db::migrations::require_bootstrapped(database).await?;
    Ok(())
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
            crate::say!("— iteration {number} of {}: mission {mission}", settings.iterations);
        }
        self.phase.send_modify(|s| s.mission = Some(mission));
        let mut phases = Vec::new();
        let name = format!("grace scenario iteration {number}");
        let setup = self
            .phase(&mut phases, 1, async {
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
        let mut integrity = phases::Integrity::default();
        if setup.is_some() {
            let retried_before = self.api.retries();
            self.phase(&mut phases, 2, async { Ok((phases::error_injection(&self.api, mission).await?, ())) }).await;
            self.phase(&mut phases, 3, async { Ok((phases::approvals(&self.api, &self.db, mission).await?, ())) })
                .await;
            self.phase(&mut phases, 4, async {
                Ok((phases::forced_rollback(&self.api, &self.db, mission).await?, ()))
            })
            .await;
            let retried = self.api.retries() - retried_before;
            if retried > 0 {
                let note = format!(
                    "{retried} of the scenario's calls in phases 2–4 were refused for a transient reason and retried"
                );
                crate::say!("   · {note}");
                if let Some(phase) = phases.last_mut() {
                    phase.notes.push(note);
                }
            }
            let plan = self.load_plan(mission);
            // Once begun, a load is not dropped on Ctrl-C: the coordinator
            // stops it and keeps what it measured (C7 included).
            let concurrent_load = phases::concurrent_load(&self.database, &plan, self.shutdown);
            load = if self.shutdown.is_cancelled() {
                self.phase(&mut phases, 5, concurrent_load).await
            } else {
                self.measured(&mut phases, 5, concurrent_load).await
            };
            if settings.chaos {
                if let Err(e) = self.api.clear_faults(mission).await {
                    tracing::warn!(error = %e, "could not clear the mission's chaos");
                }
            }
            counts = self
                .phase(&mut phases, 6, async {
                    phases::telemetry(&self.db, mission, load.as_ref(), &settings.thresholds, settings.chaos).await
                })
                .await;
            integrity = self
                .phase(
                    &mut phases,
                    7,
                    phases::integrity(&self.api, &self.db, &self.database, self.anchors.as_deref(), mission),
                )
                .await
                .unwrap_or_default();
        } else {
            for number in 2..=7 {
                let why = "phase 1 failed: there is no mission to work on";
                let skipped = report::Criterion::skipped("phase completed", why);
                phases.push(unfinished(number, why, skipped));
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
            consistency: integrity.checks,
            chain_head: integrity.chain_head,
            resources,
        };
        (report, load)
    }

    fn load_plan(&self, mission: Uuid) -> LoadPlan {
        LoadPlan {
            backend: self.api.clone(),
            replicas: Vec::new(),
            shape: self.settings.load.clone(),
            workload: self.settings.workload.clone(),
            grace_backend: true,
            write_proofs: match self.settings.proofs.as_slice() {
                [] => WriteProofs::Bundled,
                proofs => WriteProofs::Workload {
                    proofs: proofs.to_vec(),
                    database: Box::new(self.database.clone()),
                    orphans: false,
                },
            },
            mission: Some(mission),
            // The load's own live line, unless --monitor draws the scenario's.
            progress: !self.settings.monitor,
            json_lines: None,
            // Phase 1 has already reached the backend.
            wait_for_services: Duration::ZERO,
            goose_report: self.settings.goose_report,
        }
    }

    /// Runs one phase unless the run is interrupted first: see `measured`.
    async fn phase<T>(
        &self,
        phases: &mut Vec<PhaseRecord>,
        number: u8,
        work: impl Future<Output = Result<(PhaseResult, T), PhaseError>>,
    ) -> Option<T> {
        let cancellable = async {
            tokio::select! {
                outcome = work => outcome,
                () = self.shutdown.cancelled() => Err(PhaseError::Skipped("interrupted".into())),
            }
        };
        self.measured(phases, number, cancellable).await
    }

    /// Runs one phase: announces it, times it, prints its criteria, and
    /// records it — as a failure with its cause when it could not finish.
    async fn measured<T>(
        &self,
        phases: &mut Vec<PhaseRecord>,
        number: u8,
        work: impl Future<Output = Result<(PhaseResult, T), PhaseError>>,
    ) -> Option<T> {
        let name = phase_name(number);
        let work = tracing::Instrument::instrument(work, tracing::info_span!("phase", number, name));
        self.phase.send_modify(|s| s.phase = Some(monitor::Phase { number, name }));
        let started_at = Utc::now();
        let clock = Instant::now();
        let outcome = work.await;
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
                let why = e.to_string();
                let mut record = unfinished(number, &why, report::Criterion::new("phase completed", false, &why));
                record.started_at = started_at;
                record.duration_ms = duration_ms;
                (record, None)
            }
        };
        print_phase(&record);
        phases.push(record);
        value
    }

    /// The options the scenario ran with, as a report shows them.
    fn configuration(&self) -> RunConfiguration {
        let settings = self.settings;
        let load = &settings.load;
        RunConfiguration {
            backend: self.api.url().to_string(),
            bundled_backend: matches!(settings.target, Target::Bundled { .. }),
            database: self.database.to_string(),
            profile: load.profile.clone(),
            expect_workers: load.expect_workers,
            iterations: settings.iterations,
            chaos: settings.chaos,
            chaos_rate: settings.chaos.then_some(CHAOS_RATE),
            thresholds: settings.thresholds.clone(),
            out: settings.out.display().to_string(),
        }
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

/// The phases by number (1 first): the run, its skips and the monitor name
/// them from here.
const PHASES: [&str; 8] = [
    "mission setup",
    "error injection",
    "approvals",
    "forced rollback",
    "concurrent load",
    "telemetry",
    "persistence and integrity",
    "report",
];

fn phase_name(number: u8) -> &'static str {
    PHASES[usize::from(number) - 1]
}

/// The record of a phase that did not finish (`why`), judged by `criterion`:
/// failed when the phase itself could not finish, skipped when an earlier
/// phase's failure left it nothing to do.
fn unfinished(number: u8, why: &str, criterion: report::Criterion) -> PhaseRecord {
    PhaseRecord {
        number,
        name: phase_name(number).into(),
        started_at: Utc::now(),
        duration_ms: 0,
        passed: false,
        criteria: vec![criterion],
        notes: vec![],
        error: Some(why.to_string()),
    }
}

fn print_phase(record: &PhaseRecord) {
    let mark = if record.passed { "✓" } else { "✗" };
    crate::say!("phase {}/8 {} {mark} {:.2}s", record.number, record.name, record.duration_ms as f64 / 1000.0);
    for criterion in &record.criteria {
        crate::say!("   {} {}: {}", criterion.mark(), criterion.name, criterion.detail);
    }
    for note in &record.notes {
        crate::say!("   · {note}");
    }
    if let Some(error) = &record.error {
        crate::say!("   ✗ {error}");
    }
}
