//! The command line: what each `grace` command accepts, and how outcomes become
//! exit codes (DESIGN.md: 0 all criteria met, 1 a criterion failed, 2 bad usage
//! or configuration, 3 a required service unreachable; 130 when interrupted).
//! Commands parse their raw options into domain types here, at the edge.

use crate::backend::{Application, ServeSettings, StartupError};
use crate::bootstrap::{self, BootstrapReport};
use crate::client::BackendClient;
use crate::configuration::{BackendUrl, ConfigError, DatabaseUrl, Tokens};
use crate::control::coordinator::{self, LoadOutcome};
use crate::control::plan::{LoadPlan, LoadShape};
use crate::control::worker::{Worker, WorkerSettings};
use crate::control::{self, ControlError};
use crate::db::private::{PrivateClusterError, PrivatePostgres};
use crate::db::{self, Database, DbError};
use crate::health;
use crate::report::compare;
use crate::report::Thresholds;
use crate::scenario::{ScenarioError, ScenarioSettings, Target};
use crate::spec::Role;
use clap::{Args, Parser, Subcommand};
use grace_loadtests::Traffic;
use secrecy::{ExposeSecret, SecretString};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "grace",
    version,
    about = "Prove that the Grace backend keeps its promises under load, faults and bad input"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply migrations and seed the tier policy and golden baseline (idempotent).
    Bootstrap {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Check that the database (and a backend) is fit to run Grace; exit 0 only if every check passes.
    Health {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A running backend to check too: reachable, mesh round trip, log lag zero.
        #[arg(long, env = "GRACE_BACKEND_URL", value_name = "URL")]
        backend: Option<String>,
        /// A token of any role, to publish the mesh ping with.
        #[arg(long, env = "GRACE_TOKEN", hide_env_values = true, value_name = "TOKEN", value_parser = secret)]
        token: Option<SecretString>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Run the Grace backend (the system under test).
    Serve {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Address to listen on.
        #[arg(long, env = "GRACE_LISTEN", default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Bearer tokens as role=token pairs, comma-separated (roles: operator,
        /// approver, governance, admin). Without tokens or a tokens file, random
        /// ones are made and written to a file only you can read.
        #[arg(long, env = "GRACE_TOKENS", hide_env_values = true, value_name = "SPEC", value_parser = secret)]
        tokens: Option<SecretString>,
        /// A file holding the token spec (a `GRACE_TOKENS=...` line).
        #[arg(long, env = "GRACE_TOKENS_FILE", value_name = "PATH", conflicts_with = "tokens")]
        tokens_file: Option<std::path::PathBuf>,
        /// Allow admins to inject faults (sabotaged verifications, chaos).
        #[arg(long, env = "GRACE_ENABLE_FAULTS")]
        enable_faults: bool,
        /// Database connections in the pool.
        #[arg(long, env = "GRACE_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=500))]
        pool_size: u16,
    },
    /// The production scenario, phases 1–8: against the bundled backend on a
    /// private (or DATABASE_URL's) Postgres, or against --backend. Exit 0 only
    /// when every criterion held; the reports are written either way.
    Scenario {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A running backend to prove (e.g. staging; needs DATABASE_URL of its
        /// database and --tokens). Default: start the bundled backend.
        #[arg(long, env = "GRACE_BACKEND_URL", value_name = "URL")]
        backend: Option<String>,
        /// With --backend: its tokens as role=token pairs (operator, approver,
        /// governance, admin).
        #[arg(long, env = "GRACE_TOKENS", hide_env_values = true, value_name = "SPEC", value_parser = secret)]
        tokens: Option<SecretString>,
        #[command(flatten)]
        shape: LoadShapeArgs,
        #[command(flatten)]
        thresholds: ThresholdArgs,
        /// Chaos at 10% for the mission: retries, the circuit breaker and
        /// rollbacks exercised; integrity must still be perfect.
        #[arg(long, env = "GRACE_CHAOS")]
        chaos: bool,
        /// Run this many missions back to back and judge resource trends.
        #[arg(long, env = "GRACE_ITERATIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        iterations: u32,
        /// Print a live status line every 2 s.
        #[arg(long)]
        monitor: bool,
        /// Where the reports go.
        #[arg(long, env = "GRACE_OUT", default_value = "grace-reports", value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Check the consistency conditions C1–C7 for one mission, on any Grace
    /// database (phase 7 alone). Exit 1 when one fails.
    Verify {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long, value_name = "UUID")]
        mission: uuid::Uuid,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Compare scenario reports, or list past runs.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Run load against a backend and merge the result: in this process, or
    /// across `grace worker`s with --expect-workers. Exit 1 when a worker was
    /// lost or an acknowledged write is not stored exactly once (C7).
    Load {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        shape: LoadShapeArgs,
        /// The mission the load is tagged with (default: a new one per run).
        #[arg(long, value_name = "UUID")]
        mission: Option<uuid::Uuid>,
        /// Write the merged result (load-result.json) and each worker's goose
        /// HTML report into this directory.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Serve as a load worker: register in the control plane, heartbeat, run
    /// the shares of runs given to it, upload what it saw. Until Ctrl-C.
    Worker {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The backend as this worker reaches it (default: the run's URL).
        #[arg(long, env = "GRACE_WORKER_BACKEND_URL", value_name = "URL")]
        backend: Option<String>,
        /// An operator token of the backend.
        #[arg(long, env = "GRACE_TOKEN", hide_env_values = true, value_name = "TOKEN", value_parser = secret)]
        token: Option<SecretString>,
        /// The most users this worker takes.
        #[arg(long, env = "GRACE_WORKER_CAPACITY", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        capacity: u32,
        /// Exit after one run.
        #[arg(long)]
        once: bool,
        /// Write goose's HTML report of each run here.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Print the backend's OpenAPI 3 document (the same as GET /api/openapi.json).
    Openapi,
    /// Manage a private PostgreSQL for local use.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Render a scenario_report_*.json as the self-contained HTML page (to stdout).
    Render { report: std::path::PathBuf },
    /// Compare two scenario_report_*.json files; exit 1 on a regression past
    /// the tolerances.
    Compare {
        old: std::path::PathBuf,
        new: std::path::PathBuf,
        /// How much throughput may drop (0.1 = 10%).
        #[arg(long, default_value_t = 0.10, value_name = "FRACTION")]
        max_throughput_drop: f64,
        /// How much p50/p95/p99 latency may rise (0.2 = 20%).
        #[arg(long, default_value_t = 0.20, value_name = "FRACTION")]
        max_latency_increase: f64,
        /// How much the (genuine) error rate may rise, absolute (0.01 = 1 point).
        #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
        max_error_rate_increase: f64,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List past scenario runs recorded in the database, newest first.
    History {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Start a private PostgreSQL, print its DATABASE_URL, and keep it until Ctrl-C.
    Up,
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// PostgreSQL URL. Without one, a private PostgreSQL is started for this
    /// command from the installed binaries and removed when it ends.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
}

impl DatabaseArgs {
    fn parse(&self) -> Result<Option<DatabaseUrl>, ConfigError> {
        self.database_url.as_deref().map(DatabaseUrl::parse).transpose()
    }
}

/// Where `grace load` sends load, as whom, and what.
#[derive(Debug, Args)]
struct LoadArgs {
    /// The backend under load.
    #[arg(long, env = "GRACE_BACKEND_URL", value_name = "URL")]
    backend: String,
    /// An operator token of the backend.
    #[arg(long, env = "GRACE_TOKEN", hide_env_values = true, value_name = "TOKEN", value_parser = secret)]
    token: Option<SecretString>,
    /// What to send: the mission traffic (chat, tasks, metric summaries,
    /// verification reads), or only GET /api/health (to measure the load
    /// generator itself).
    #[arg(long, default_value = "mission", value_parser = ["mission", "health"])]
    traffic: String,
}

/// The load options shared by `grace load` and `grace scenario`.
#[derive(Debug, Args)]
struct LoadShapeArgs {
    /// Concurrent users, across all workers.
    #[arg(long, short = 'u', env = "GRACE_USERS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    users: u32,
    /// How long the load runs (30s, 2m, 1h).
    #[arg(long, short = 't', env = "GRACE_RUN_TIME", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    run_time: std::time::Duration,
    /// Open model: requests per second across all workers, sent on schedule;
    /// latency counts from when a request was due. Default: closed model.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Wait for this many `grace worker`s and split the users between them;
    /// without it, one worker runs in this process.
    #[arg(long, env = "GRACE_EXPECT_WORKERS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    expect_workers: Option<u32>,
    /// How long to wait for the expected workers (exit 3 after, naming who joined).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    join_timeout: std::time::Duration,
    /// A worker silent this long is marked lost.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    heartbeat_timeout: std::time::Duration,
}

impl LoadShapeArgs {
    fn parse(self) -> Result<LoadShape, CommandError> {
        if self.run_time < std::time::Duration::from_secs(1) {
            return Err(CommandError::Usage("invalid --run-time: at least 1s".into()));
        }
        if let Some(rate) = self.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
            return Err(CommandError::Usage(format!(
                "invalid --rate {rate}: a positive number of requests per second"
            )));
        }
        if let Some(workers) = self.expect_workers.filter(|w| *w > self.users) {
            return Err(CommandError::Usage(format!(
                "--users {} cannot be split between {workers} workers",
                self.users
            )));
        }
        if self.heartbeat_timeout < 2 * control::HEARTBEAT {
            return Err(CommandError::Usage("invalid --heartbeat-timeout: at least 2s, twice the heartbeat".into()));
        }
        Ok(LoadShape {
            users: self.users,
            run_time: self.run_time,
            rate: self.rate,
            expect_workers: self.expect_workers,
            join_timeout: self.join_timeout,
            heartbeat_timeout: self.heartbeat_timeout,
        })
    }
}

impl LoadArgs {
    fn plan(self, shape: LoadShape, mission: Option<uuid::Uuid>) -> Result<LoadPlan, CommandError> {
        let token = required_token(self.token)?;
        Ok(LoadPlan {
            backend: BackendClient::new(BackendUrl::parse(&self.backend)?, Tokens::single(Role::Operator, &token)),
            shape,
            traffic: if self.traffic == "health" { Traffic::Health } else { Traffic::Mission },
            mission,
        })
    }
}

/// Phase 6's limits.
#[derive(Debug, Args)]
struct ThresholdArgs {
    /// The highest average latency that passes, in ms.
    #[arg(long, env = "GRACE_MAX_AVG_MS", default_value_t = 500.0, value_name = "MS")]
    max_avg_ms: f64,
    /// The highest single latency that passes, in ms.
    #[arg(long, env = "GRACE_MAX_LATENCY_MS", default_value_t = 2000.0, value_name = "MS")]
    max_latency_ms: f64,
    /// The highest error rate that passes, as a fraction (0.1 = 10%); with
    /// --chaos, injected faults are counted apart.
    #[arg(long, env = "GRACE_MAX_ERROR_RATE", default_value_t = 0.10, value_name = "FRACTION")]
    max_error_rate: f64,
}

impl ThresholdArgs {
    fn parse(self) -> Result<Thresholds, CommandError> {
        for (name, value) in [("--max-avg-ms", self.max_avg_ms), ("--max-latency-ms", self.max_latency_ms)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(CommandError::Usage(format!("invalid {name} {value}: a positive number of milliseconds")));
            }
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(CommandError::Usage(format!(
                "invalid --max-error-rate {}: a fraction between 0 and 1",
                self.max_error_rate
            )));
        }
        Ok(Thresholds {
            max_avg_ms: self.max_avg_ms,
            max_latency_ms: self.max_latency_ms,
            max_error_rate: self.max_error_rate,
        })
    }
}

/// A secret as given: clap keeps it, and `Debug` of the arguments hides it.
fn secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
}

fn required_token(token: Option<SecretString>) -> Result<SecretString, CommandError> {
    token
        .filter(|t| !t.expose_secret().is_empty())
        .ok_or_else(|| CommandError::Usage("an operator token is required: pass --token or set GRACE_TOKEN".into()))
}

/// The control plane's database: load runs meet there, so it must be named.
fn control_plane(database: &DatabaseArgs) -> Result<DatabaseUrl, CommandError> {
    required_database(database, "the control plane's database")
}

/// A database the command cannot invent: a private one would be empty.
fn required_database(database: &DatabaseArgs, what: &str) -> Result<DatabaseUrl, CommandError> {
    database
        .parse()?
        .ok_or_else(|| CommandError::Usage(format!("{what} is required: pass --database-url or set DATABASE_URL")))
}

fn read_report(path: &std::path::Path) -> Result<crate::report::ScenarioReport, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CommandError::Usage(format!("{} is not a scenario_report_*.json: {e}", path.display())))
}

fn scenario_error(e: ScenarioError) -> CommandError {
    match e {
        ScenarioError::Database(e) => e.into(),
        ScenarioError::PrivateCluster(e) => e.into(),
        ScenarioError::Backend(e) => startup_error(e),
        ScenarioError::BackendUnreachable { .. } => CommandError::Unreachable(e.to_string()),
        ScenarioError::Reports { .. } => CommandError::Failed(e.to_string()),
        ScenarioError::Interrupted => CommandError::Interrupted,
    }
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Why a command could not do its job, sorted by exit code.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
}

impl CommandError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Failed(_) => ExitCode::from(1),
            Self::Usage(_) => ExitCode::from(2),
            Self::Unreachable(_) => ExitCode::from(3),
            Self::Interrupted => ExitCode::from(130),
        }
    }
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        Self::Usage(e.to_string())
    }
}

impl From<PrivateClusterError> for CommandError {
    fn from(e: PrivateClusterError) -> Self {
        match e {
            PrivateClusterError::NotInstalled { .. } | PrivateClusterError::NoPostgresUser => {
                Self::Usage(e.to_string())
            }
            PrivateClusterError::Start(_) => Self::Unreachable(e.to_string()),
        }
    }
}

impl From<ControlError> for CommandError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Database(e) => e.into(),
            ControlError::BackendUnreachable { .. } | ControlError::TooFewWorkers { .. } => {
                Self::Unreachable(e.to_string())
            }
            ControlError::TooLittleCapacity { .. } => Self::Usage(e.to_string()),
            ControlError::BackendRefused { .. } | ControlError::Goose(_) | ControlError::Upload(_) => {
                Self::Failed(e.to_string())
            }
            ControlError::Interrupted => Self::Interrupted,
        }
    }
}

impl From<DbError> for CommandError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unreachable { .. } => Self::Unreachable(e.to_string()),
            DbError::Migration(_) | DbError::Query(_) => Self::Failed(e.to_string()),
        }
    }
}

/// Runs the command. Commands that serve (`serve`, `db up`) stop in order on
/// `shutdown`; the others are interrupted by it (exit 130), which drops their
/// future and with it a private cluster they started.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> ExitCode {
    match dispatch(cli.command, &shutdown).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(command: Command, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    match command {
        Command::Bootstrap { database, output } => {
            interruptible(shutdown, async {
                let database = Database::configured_or_private(database.parse()?).await?;
                let report = bootstrap::bootstrap(&mut db::connect(&database.url()).await?).await?;
                if output.json {
                    println!("{}", serde_json::to_string_pretty(&report).expect("reports serialize"));
                } else {
                    print!("{}", BootstrapText { url: &database.url(), report: &report });
                }
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        Command::Health { database, backend, token, output } => {
            interruptible(shutdown, async {
                let backend = backend.map(|url| parse_backend(&url, token)).transpose()?;
                let database = Database::configured_or_private(database.parse()?).await?;
                let checklist = health::run(&database.url(), backend.as_ref()).await;
                if output.json {
                    println!("{}", serde_json::to_string_pretty(&checklist).expect("checklists serialize"));
                } else {
                    print!("{checklist}");
                }
                if !checklist.unreachable.is_empty() {
                    return Err(CommandError::Unreachable(format!(
                        "unreachable: {}",
                        checklist.unreachable.join(", ")
                    )));
                }
                match checklist.failed().map(|c| c.name).collect::<Vec<_>>() {
                    failed if failed.is_empty() => Ok(ExitCode::SUCCESS),
                    failed => Err(CommandError::Failed(format!("failed: {}", failed.join(", ")))),
                }
            })
            .await
        }
        Command::Serve { database, listen, tokens, tokens_file, enable_faults, pool_size } => {
            let (tokens, generated) = resolve_tokens(tokens, tokens_file)?;
            let database =
                interruptible(shutdown, async { Ok(Database::configured_or_private(database.parse()?).await?) })
                    .await?;
            let settings = ServeSettings {
                database: database.url(),
                listen,
                tokens: tokens.clone(),
                enable_faults,
                pool_size: usize::from(pool_size),
            };
            let application = Application::build(settings).await.map_err(startup_error)?;
            let addr = application.local_addr();
            if generated {
                let path = std::env::temp_dir().join(format!("grace-tokens-{}.env", addr.port()));
                tokens
                    .write_private_file(&path)
                    .map_err(|e| CommandError::Failed(format!("could not write the tokens file: {e}")))?;
                eprintln!(
                    "no tokens configured: made one per role, written to {} (readable only by you)",
                    path.display()
                );
            }
            println!("grace backend listening on http://{addr}");
            application.run_until(shutdown.clone()).await.map_err(startup_error)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario { database, backend, tokens, shape, thresholds, chaos, iterations, monitor, out } => {
            let database = database.parse()?;
            let target = match backend {
                None => Target::Bundled { database },
                Some(url) => {
                    let backend = BackendUrl::parse(&url)?;
                    let database = database.ok_or_else(|| {
                        CommandError::Usage(
                            "with --backend, set DATABASE_URL (or --database-url) to that backend's database".into(),
                        )
                    })?;
                    let spec = tokens.ok_or_else(|| {
                        CommandError::Usage(
                            "with --backend, set GRACE_TOKENS (or --tokens) to its role=token pairs".into(),
                        )
                    })?;
                    let tokens = Tokens::parse(spec.expose_secret())
                        .map_err(|e| CommandError::Usage(format!("invalid tokens: {e}")))?;
                    Target::Remote { backend, tokens, database }
                }
            };
            let settings = ScenarioSettings {
                target,
                load: shape.parse()?,
                chaos,
                iterations,
                monitor,
                out,
                thresholds: thresholds.parse()?,
            };
            let outcome = crate::scenario::run(settings, shutdown).await.map_err(scenario_error)?;
            let report = &outcome.report;
            let s = &report.summary;
            // The process exits with the code the report records.
            match report.exit_code {
                0 => {
                    println!(
                        "scenario passed: {} of {} criteria met; {}",
                        s.criteria_passed, s.criteria, report.trends.verdict
                    );
                    Ok(ExitCode::SUCCESS)
                }
                crate::report::EXIT_INTERRUPTED => Err(CommandError::Interrupted),
                _ => Err(CommandError::Failed(format!(
                    "scenario failed: {} of {} criteria met; failed: {}",
                    s.criteria_passed,
                    s.criteria,
                    s.failed.join("; ")
                ))),
            }
        }
        Command::Verify { database, mission, output } => {
            let database = required_database(&database, "the database to verify")?;
            let client = db::connect(&database).await?;
            if !crate::verify::mission_exists(&client, mission).await.map_err(DbError::Query)? {
                return Err(CommandError::Usage(format!("no mission {mission} in {database}")));
            }
            let checks = crate::verify::verify_mission(&client, mission).await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&checks).expect("checks serialize"));
            } else {
                println!("grace verify — mission {mission} in {database}");
                for check in &checks {
                    println!("{check}");
                }
            }
            match checks.iter().filter(|c| !c.passed).map(|c| c.id.as_str()).collect::<Vec<_>>() {
                failed if failed.is_empty() => Ok(ExitCode::SUCCESS),
                failed => Err(CommandError::Failed(format!("failed: {}", failed.join(", ")))),
            }
        }
        Command::Report {
            command:
                ReportCommand::Compare {
                    old,
                    new,
                    max_throughput_drop,
                    max_latency_increase,
                    max_error_rate_increase,
                    output,
                },
        } => {
            let tolerances = compare::Tolerances {
                throughput_drop: max_throughput_drop,
                latency_increase: max_latency_increase,
                error_rate_increase: max_error_rate_increase,
            };
            let rows = compare::compare(&read_report(&old)?, &read_report(&new)?, &tolerances);
            if output.json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("comparisons serialize"));
            } else {
                print!("{}", compare::render(&rows));
            }
            match rows.iter().filter(|r| r.regressed).map(|r| r.metric.as_str()).collect::<Vec<_>>() {
                regressed if regressed.is_empty() => Ok(ExitCode::SUCCESS),
                regressed => Err(CommandError::Failed(format!("regressed: {}", regressed.join(", ")))),
            }
        }
        Command::Report { command: ReportCommand::Render { report } } => {
            print!("{}", crate::report::html::render(&read_report(&report)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { command: ReportCommand::History { database, limit, output } } => {
            let database = required_database(&database, "the database the scenarios ran on")?;
            let client = db::connect(&database).await?;
            let runs = crate::report::history::list(&client, limit.clamp(1, 10_000)).await.map_err(DbError::Query)?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&runs).expect("runs serialize"));
            } else {
                print!("{}", crate::report::history::render(&runs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Load { database, load, shape, mission, out, output } => {
            let database = control_plane(&database)?;
            let plan = load.plan(shape.parse()?, mission)?;
            let outcome = coordinator::run(&database, &plan, shutdown).await?;
            if let Some(dir) = &out {
                write_load_outputs(dir, &outcome)?;
            }
            if output.json {
                println!("{}", serde_json::to_string_pretty(&outcome.result).expect("results serialize"));
            } else {
                print!("{}", outcome.result);
            }
            if outcome.result.passed {
                Ok(ExitCode::SUCCESS)
            } else {
                Err(CommandError::Failed("the load run failed: see the result above".into()))
            }
        }
        Command::Worker { database, backend, token, capacity, once, out } => {
            let settings = WorkerSettings {
                database: control_plane(&database)?,
                backend: backend.as_deref().map(BackendUrl::parse).transpose()?,
                token: required_token(token)?,
                capacity,
                once,
                out,
            };
            let worker = interruptible(shutdown, async { Ok(Worker::register(settings).await?) }).await?;
            eprintln!("worker {} registered as {}; waiting for runs", worker.identity.id, worker.identity);
            match worker.serve(shutdown).await {
                Ok(()) => Ok(ExitCode::SUCCESS),
                // Stopping a worker between runs is how it ends.
                Err(ControlError::Interrupted) if !once => Ok(ExitCode::SUCCESS),
                Err(e) => Err(e.into()),
            }
        }
        Command::Openapi => {
            use utoipa::OpenApi;
            let document = crate::backend::routes::ApiDoc::openapi();
            println!("{}", document.to_pretty_json().map_err(|e| CommandError::Failed(e.to_string()))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Db { command: DbCommand::Up } => {
            let cluster = interruptible(shutdown, async { Ok(PrivatePostgres::start().await?) }).await?;
            // Machine-readable first (a script can `eval` these lines), then the human note.
            println!("DATABASE_URL={}", cluster.url());
            println!("GRACE_PRIVATE_PG_DIR={}", cluster.directory().display());
            eprintln!("private PostgreSQL is up; Ctrl-C stops it and removes its files");
            shutdown.cancelled().await;
            drop(cluster);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_load_outputs(dir: &std::path::Path, outcome: &LoadOutcome) -> Result<(), CommandError> {
    let failed = |e: std::io::Error| CommandError::Failed(format!("cannot write into --out {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let json = serde_json::to_string_pretty(&outcome.result).expect("results serialize");
    std::fs::write(dir.join("load-result.json"), json).map_err(failed)?;
    for (worker, html) in &outcome.reports {
        std::fs::write(dir.join(format!("goose-report-{}.html", worker.id)), html).map_err(failed)?;
    }
    Ok(())
}

/// The backend `grace health` checks, with the token (of any role) it was given.
fn parse_backend(raw: &str, token: Option<SecretString>) -> Result<BackendClient, CommandError> {
    let tokens = token.map(|token| Tokens::single(Role::Operator, &token)).unwrap_or_default();
    Ok(BackendClient::new(BackendUrl::parse(raw)?, tokens))
}

/// Tokens from the spec, else the file, else freshly made (the `bool`).
fn resolve_tokens(
    spec: Option<SecretString>,
    file: Option<std::path::PathBuf>,
) -> Result<(Tokens, bool), CommandError> {
    let spec = match (spec, file) {
        (Some(spec), _) => spec.expose_secret().to_string(),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| CommandError::Usage(format!("cannot read --tokens-file {}: {e}", path.display())))?,
        (None, None) => return Ok((Tokens::generate(), true)),
    };
    Tokens::parse(&spec).map(|t| (t, false)).map_err(|e| CommandError::Usage(format!("invalid tokens: {e}")))
}

fn startup_error(e: StartupError) -> CommandError {
    match e {
        StartupError::Database(e) => e.into(),
        StartupError::Bind { .. } => CommandError::Usage(e.to_string()),
        StartupError::Unready(_) | StartupError::Serve(_) => CommandError::Failed(e.to_string()),
    }
}

/// Runs `work` unless `shutdown` fires first; then `work` is dropped (cleaning
/// up what it holds) and the command ends as interrupted.
async fn interruptible<T>(
    shutdown: &CancellationToken,
    work: impl std::future::Future<Output = Result<T, CommandError>>,
) -> Result<T, CommandError> {
    tokio::select! {
        outcome = work => outcome,
        () = shutdown.cancelled() => Err(CommandError::Interrupted),
    }
}

/// The human rendering of a bootstrap.
struct BootstrapText<'a> {
    url: &'a DatabaseUrl,
    report: &'a BootstrapReport,
}

impl std::fmt::Display for BootstrapText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let report = self.report;
        let listed = |items: &[String], none: &str| {
            if items.is_empty() {
                none.to_string()
            } else {
                format!("added {}", items.join(", "))
            }
        };
        writeln!(f, "grace bootstrap — {}", self.url)?;
        let migrations = if report.migrations_applied.is_empty() {
            "none pending".to_string()
        } else {
            format!("applied {}", report.migrations_applied.join(", "))
        };
        writeln!(f, "✓ migrations: {migrations}")?;
        writeln!(f, "✓ tier policy: {}", listed(&report.policy_rules_added, "every rule present, kept as is"))?;
        writeln!(f, "✓ golden baseline: {}", listed(&report.baselines_added, "present, kept as is"))?;
        match report.log_seq {
            Some(seq) => writeln!(f, "bootstrapped; recorded as immutable log entry {seq}"),
            None => writeln!(f, "already bootstrapped: nothing changed"),
        }
    }
}
