//! What each command accepts, and the parsing of it into domain types at the
//! edge: groups shared by several commands (a database, a backend and its
//! tokens, the shape of the load, phase 6's thresholds, `--json`), then each
//! command's own. A database URL is parsed after clap, which would echo a
//! password in its own errors; tokens are held as secrets from the start.

use super::exit::CommandError;
use crate::backend::connections::ConnectionLimits;
use crate::client::BackendClient;
use crate::configuration::{BackendUrl, ConfigError, DatabaseUrl, Tokens};
use crate::control::plan::{LoadProfile, LoadShape, Stage};
use crate::control::threshold::Threshold;
use crate::control::HEARTBEAT;
use crate::immutable_log::anchors::{AnchorFile, ANCHOR_FILE};
use crate::immutable_log::ChainSettings;
use crate::report::compare::Tolerances;
use crate::report::Thresholds;
use crate::specification::Role;
use clap::Args;
use grace_loadtests::workload::SuggestedLoad;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. Without one, a private PostgreSQL is started for this
    /// command from the installed binaries and removed when it ends.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
}

impl DatabaseArgs {
    pub fn parse(&self) -> Result<Option<DatabaseUrl>, ConfigError> {
        self.database_url.as_deref().map(DatabaseUrl::parse).transpose()
    }
}

/// A database the command cannot invent: a private one would be empty.
#[derive(Debug, Args)]
pub struct ExistingDatabaseArgs {
    /// PostgreSQL URL of an existing Grace database (never a private one: it
    /// would be empty).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
}

impl ExistingDatabaseArgs {
    /// The database, when one was named.
    pub fn optional(&self) -> Result<Option<DatabaseUrl>, ConfigError> {
        self.database_url.as_deref().map(DatabaseUrl::parse).transpose()
    }

    /// The database, `what` the command needs it as.
    pub fn required(&self, what: &str) -> Result<DatabaseUrl, CommandError> {
        self.optional()?
            .ok_or_else(|| CommandError::Usage(format!("{what} is required: pass --database-url or set DATABASE_URL")))
    }
}

/// How long a command started together with its services (compose, a
/// Kubernetes Job) waits for them to come up.
#[derive(Debug, Args)]
pub struct ServiceWaitArgs {
    /// Wait up to this long for PostgreSQL to answer and be bootstrapped (and,
    /// for `grace load`, each backend to answer), then exit 3 naming what never
    /// came [default: 0s, fail at once]
    #[arg(long = "wait-for-services", env = "GRACE_WAIT_FOR_SERVICES", value_name = "DURATION",
          default_value = "0s", hide_default_value = true, value_parser = humantime::parse_duration)]
    pub patience: Duration,
}

/// A backend, and the tokens to call it with: one token (`--token`, an
/// operator's unless a command says otherwise) and/or several roles' tokens
/// (`--tokens`). Each command words `--backend` its own way.
#[derive(Debug, Args)]
pub struct BackendArgs {
    #[arg(long, env = "GRACE_BACKEND_URL", value_name = "URL", value_delimiter = ',')]
    backend: Vec<String>,
    /// An operator token of the backend.
    #[arg(long, env = "GRACE_TOKEN", hide_env_values = true, value_name = "TOKEN", value_parser = secret)]
    token: Option<SecretString>,
    /// Tokens as role=token pairs, comma-separated (roles: operator, approver,
    /// governance, admin), for commands that act in several roles.
    #[arg(long, env = "GRACE_TOKENS", hide_env_values = true, value_name = "SPEC", value_parser = secret)]
    tokens: Option<SecretString>,
}

impl BackendArgs {
    /// The one backend named, if any; several are refused (only `grace load`
    /// spreads load over several, see [`BackendArgs::urls`]).
    pub fn url(&self) -> Result<Option<BackendUrl>, CommandError> {
        match self.urls()?.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            several => Err(CommandError::Usage(format!(
                "--backend is given {} times; only grace load takes several",
                several.len()
            ))),
        }
    }

    /// Every backend named, in order.
    pub fn urls(&self) -> Result<Vec<BackendUrl>, ConfigError> {
        self.backend.iter().map(|raw| BackendUrl::parse(raw)).collect()
    }

    /// The tokens given: `--tokens`' roles, and `--token` as the operator's
    /// (a flag beats the environment; an empty value is no value).
    pub fn tokens(&self) -> Result<Tokens, CommandError> {
        let tokens = match self.role_tokens() {
            Some(spec) => {
                Tokens::parse(spec.expose_secret()).map_err(|e| CommandError::Usage(format!("invalid tokens: {e}")))?
            }
            None => Tokens::default(),
        };
        Ok(match self.token.as_ref().filter(|t| !t.expose_secret().is_empty()) {
            Some(token) => tokens.with(Role::Operator, token),
            None => tokens,
        })
    }

    /// Whether role=token pairs were given (the scenario needs every role).
    pub fn has_role_tokens(&self) -> bool {
        self.role_tokens().is_some()
    }

    /// `--tokens` (or `GRACE_TOKENS`), unless empty.
    fn role_tokens(&self) -> Option<&SecretString> {
        self.tokens.as_ref().filter(|spec| !spec.expose_secret().trim().is_empty())
    }

    /// The operator token, when one was given (a service other than a Grace
    /// backend may need none).
    pub fn operator_token(&self) -> Result<Option<SecretString>, CommandError> {
        Ok(self.tokens()?.token_for(Role::Operator).map(SecretString::from))
    }

    /// A client of the backend, when one was named.
    pub fn client(&self) -> Result<Option<BackendClient>, CommandError> {
        match self.url()? {
            None => Ok(None),
            Some(url) => Ok(Some(BackendClient::new(url, self.tokens()?))),
        }
    }
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl OutputArgs {
    /// Prints a command's result: as pretty JSON with `--json`, else as
    /// `text` renders it for people.
    pub fn emit<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) {
        if self.json {
            crate::say!("{}", serde_json::to_string_pretty(value).expect("results serialize"));
        } else {
            crate::console::print(&text(value));
        }
    }
}

/// The load options shared by `grace load` and `grace scenario`.
#[derive(Debug, Args)]
pub struct LoadShapeArgs {
    /// Concurrent users, across all workers [default: the workload's, else 50].
    #[arg(long, short = 'u', env = "GRACE_USERS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    users: Option<u32>,
    /// How long the load runs (30s, 2m, 1h) [default: the workload's, else 30s].
    #[arg(long, short = 't', env = "GRACE_RUN_TIME", value_parser = humantime::parse_duration, value_name = "DURATION")]
    run_time: Option<Duration>,
    /// Open model: requests per second across all workers, sent on schedule;
    /// latency counts from when a request was due [default: the workload's,
    /// else the closed model].
    #[arg(long, value_name = "PER_SECOND", conflicts_with_all = ["ramp_up", "stages"])]
    rate: Option<f64>,
    /// Start the users evenly over this long (whole seconds) instead of
    /// within the first second, then hold them all for --run-time.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", conflicts_with = "stages")]
    ramp_up: Option<Duration>,
    /// A k6-style stage, DURATION:USERS: reach USERS by the end of DURATION,
    /// linearly from the stage before (from 0 for the first). Repeat it:
    /// --stage 30s:50 --stage 2m:200 --stage 30s:0. The run lasts the stages'
    /// sum and peaks at their most users (so no --users, no --run-time).
    #[arg(long = "stage", value_name = "DURATION:USERS", conflicts_with_all = ["users", "run_time"])]
    stages: Vec<Stage>,
    /// Wait for this many `grace worker`s and split the users between them;
    /// without it, one worker runs in this process.
    #[arg(long, env = "GRACE_EXPECT_WORKERS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    expect_workers: Option<u32>,
    /// How long to wait for the expected workers (exit 3 after, naming who joined).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    join_timeout: Duration,
    /// A worker silent this long is marked lost.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    heartbeat_timeout: Duration,
}

/// Users when neither a flag nor the workload says.
const DEFAULT_USERS: u32 = 50;
/// The run's length when neither a flag nor the workload says.
const DEFAULT_RUN_TIME: Duration = Duration::from_secs(30);

impl LoadShapeArgs {
    /// The shape: each flag given, else what `suggested` (the workload's
    /// `[load]`) says, else the defaults. Flags of one kind override the
    /// workload's of the other: `--stage` its users and run time, `--users`
    /// or `--run-time` its stages, and `--ramp-up` or stages its rate.
    pub fn parse(&self, suggested: &SuggestedLoad) -> Result<LoadShape, CommandError> {
        let flagged = self.users.is_some() || self.run_time.is_some() || self.ramp_up.is_some();
        let suggested_stages: Vec<Stage> = if self.stages.is_empty() && !flagged {
            suggested
                .stages
                .iter()
                .map(|s| {
                    s.parse::<Stage>().map_err(|e| CommandError::Usage(format!("the workload's load.stages: {e}")))
                })
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let users = self.users.or(suggested.users).unwrap_or(DEFAULT_USERS);
        let run_time = self.run_time.or(suggested.run_time).unwrap_or(DEFAULT_RUN_TIME);
        if run_time < Duration::from_secs(1) {
            return Err(CommandError::Usage("invalid --run-time: at least 1s".into()));
        }
        let stages = match (self.ramp_up, self.stages.as_slice()) {
            (Some(ramp), _) if ramp.subsec_nanos() != 0 || ramp.is_zero() => {
                return Err(CommandError::Usage("invalid --ramp-up: whole seconds, at least 1s".into()))
            }
            (Some(ramp), _) => vec![Stage { secs: ramp.as_secs(), users }, Stage { secs: run_time.as_secs(), users }],
            (None, []) => suggested_stages,
            (None, stages) => stages.to_vec(),
        };
        let rate = match self.rate {
            Some(rate) => Some(rate),
            None if stages.is_empty() => suggested.rate,
            None => None,
        };
        // With stages, the run peaks at their most users and lasts their sum.
        let users = stages.iter().map(|s| s.users).max().unwrap_or(users);
        let run_time = if stages.is_empty() { run_time.as_secs() } else { stages.iter().map(|s| s.secs).sum() };
        if users == 0 || run_time == 0 {
            return Err(CommandError::Usage("invalid --stage: the stages need some users and some time".into()));
        }
        if let Some(rate) = rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
            return Err(CommandError::Usage(format!(
                "invalid --rate {rate}: a positive number of requests per second"
            )));
        }
        if let Some(workers) = self.expect_workers.filter(|w| *w > users) {
            return Err(CommandError::Usage(format!("{users} users cannot be split between {workers} workers")));
        }
        if self.heartbeat_timeout < 2 * HEARTBEAT {
            return Err(CommandError::Usage("invalid --heartbeat-timeout: at least 2s, twice the heartbeat".into()));
        }
        Ok(LoadShape {
            profile: LoadProfile { users, run_time_secs: run_time, stages, rate },
            expect_workers: self.expect_workers,
            join_timeout: self.join_timeout,
            heartbeat_timeout: self.heartbeat_timeout,
        })
    }
}

/// k6-style criteria on a load run's merged numbers.
#[derive(Debug, Args)]
pub struct CriteriaArgs {
    /// A pass/fail criterion, k6-style; repeat it for several: 'p95<300ms', 'p99<1s',
    /// 'error_rate<0.01', 'rps>200', or per request name 'POST /api/chat:p99<500ms'.
    /// The run fails (exit 1) when it misses one.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<Threshold>,
}

/// Phase 6's limits.
#[derive(Debug, Args)]
pub struct ThresholdArgs {
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
    #[command(flatten)]
    criteria: CriteriaArgs,
}

impl ThresholdArgs {
    pub fn parse(&self) -> Result<Thresholds, CommandError> {
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
            criteria: self.criteria.thresholds.clone(),
        })
    }
}

/// A secret as given: clap keeps it, and `Debug` of the arguments hides it.
fn secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Also create (or update) this application role, for the backend to run as: it reads and writes what the
    /// pipeline needs but may only append to the log (the migrating role owns the tables and could rewrite it)
    #[arg(long, env = "GRACE_APP_ROLE", value_name = "NAME")]
    pub app_role: Option<String>,
    /// The application role's password
    #[arg(long, env = "GRACE_APP_PASSWORD", hide_env_values = true, value_name = "PASSWORD", value_parser = secret, requires = "app_role")]
    pub app_password: Option<SecretString>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How the immutable log's chain is proven.
#[derive(Debug, Args)]
pub struct ChainArgs {
    /// Re-hash the log from genesis instead of after the last checkpoint, and read every reference of every
    /// foreign key for C1 (even those Postgres enforces)
    #[arg(long)]
    pub full: bool,
    /// Keep the head each proof reaches in FILE, outside the database, and fail when the log no longer holds it
    /// [default: anchors.json in the reports directory, $GRACE_OUT or grace-reports]
    #[arg(long, env = "GRACE_ANCHORS", value_name = "FILE")]
    pub anchors: Option<PathBuf>,
    /// Keep no anchor (a liveness probe, say, whose files do not outlive it)
    #[arg(long, conflicts_with = "anchors")]
    pub no_anchors: bool,
    /// Entries of the log proven before to spot-check at random in an incremental proof (an edit of one entry
    /// among P proven is caught with probability N/P per proof; --full re-hashes them all)
    #[arg(long, value_name = "N", default_value_t = crate::immutable_log::DEFAULT_SAMPLE, conflicts_with = "full")]
    pub sample: u64,
}

impl ChainArgs {
    /// The settings, with the anchor file read (an unreadable one is a usage error).
    pub fn settings(&self) -> Result<ChainSettings, CommandError> {
        let path = match (&self.anchors, self.no_anchors) {
            (_, true) => None,
            (Some(path), false) => Some(path.clone()),
            (None, false) => Some(default_anchor_file()),
        };
        let anchors = path.as_deref().map(AnchorFile::load).transpose();
        let anchors = anchors.map_err(|e| CommandError::Usage(e.to_string()))?;
        Ok(ChainSettings { full: self.full, anchors, sample: self.sample })
    }
}

/// Where reports go unless told otherwise (`--out`, `GRACE_OUT`).
pub const REPORTS_DIR: &str = "grace-reports";

/// The anchor file a command keeps unless told otherwise: in the reports
/// directory, beside what the scenario writes, so a team that keeps its
/// reports keeps its anchors.
fn default_anchor_file() -> PathBuf {
    let reports = std::env::var_os("GRACE_OUT").map_or_else(|| PathBuf::from(REPORTS_DIR), PathBuf::from);
    reports.join(ANCHOR_FILE)
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub database: ExistingDatabaseArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "GRACE_LISTEN", default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Bearer tokens as role=token pairs, comma-separated (roles: operator,
    /// approver, governance, admin). Without tokens or a tokens file, random
    /// ones are made and written to a file only you can read.
    #[arg(long, env = "GRACE_TOKENS", hide_env_values = true, value_name = "SPEC", value_parser = secret)]
    pub tokens: Option<SecretString>,
    /// A file holding the token spec (a `GRACE_TOKENS=...` line).
    #[arg(long, env = "GRACE_TOKENS_FILE", value_name = "PATH", conflicts_with = "tokens")]
    pub tokens_file: Option<PathBuf>,
    /// Allow admins to inject faults (sabotaged verifications, chaos).
    #[arg(long, env = "GRACE_ENABLE_FAULTS")]
    pub enable_faults: bool,
    /// Database connections in the pool [default: twice this machine's cores, 4 to 16 — right for a database on this
    /// machine; for one elsewhere, about twice its cores]
    #[arg(long, env = "GRACE_POOL_SIZE", default_value_t = crate::backend::default_pool_size(), hide_default_value = true,
          value_parser = clap::value_parser!(u16).range(1..=500))]
    pub pool_size: u16,
    /// Client connections held at once; past it a connection gets a 503 and is closed.
    #[arg(long, env = "GRACE_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Close a client connection after this long without a byte either way (a silent keep-alive, stalled headers),
    /// or after sending this long with nothing answered (headers trickled a byte at a time). Keep it above the
    /// 10 s request deadline.
    #[arg(long, env = "GRACE_IDLE_TIMEOUT", default_value = "60s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Close a client connection whose request head (request line and headers), once begun, is not complete
    /// after this long (a slowloris trickling its headers); at most --idle-timeout [default: 10s, or
    /// --idle-timeout when lower]
    #[arg(long, env = "GRACE_HEADER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_timeout: Option<Duration>,
}

impl ServeArgs {
    /// The connection limits asked for (the open-files limit may lower `max` at start).
    pub fn connection_limits(&self) -> Result<ConnectionLimits, CommandError> {
        let head = match self.header_timeout {
            Some(head) if head.is_zero() || head > self.idle_timeout => {
                return Err(CommandError::Usage(format!(
                    "--header-timeout {} must be above zero and at most --idle-timeout {}",
                    humantime::format_duration(head),
                    humantime::format_duration(self.idle_timeout)
                )))
            }
            Some(head) => head,
            None => ConnectionLimits::default().head.min(self.idle_timeout),
        };
        Ok(ConnectionLimits { max: self.max_connections as usize, idle: self.idle_timeout, head })
    }

    /// The tokens to accept: the spec, else the file, else freshly made (the `bool`).
    pub fn tokens(&self) -> Result<(Tokens, bool), CommandError> {
        let given = self.tokens.as_ref().filter(|spec| !spec.expose_secret().trim().is_empty());
        let spec = match (given, &self.tokens_file) {
            (Some(spec), _) => spec.expose_secret().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| CommandError::Usage(format!("cannot read --tokens-file {}: {e}", path.display())))?,
            (None, None) => return Ok((Tokens::generate(), true)),
        };
        Tokens::parse(&spec).map(|t| (t, false)).map_err(|e| CommandError::Usage(format!("invalid tokens: {e}")))
    }
}

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub shape: LoadShapeArgs,
    /// Phase 5's traffic from a workload file instead of the mission traffic
    /// (see `grace workload`).
    #[arg(long, value_name = "FILE")]
    pub workload: Option<PathBuf>,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Chaos at 10% for the mission: retries, the circuit breaker and
    /// rollbacks exercised; integrity must still be perfect.
    #[arg(long, env = "GRACE_CHAOS")]
    pub chaos: bool,
    /// Run this many missions back to back and judge resource trends.
    #[arg(long, env = "GRACE_ITERATIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub iterations: u32,
    /// Print a live status line every 2 s.
    #[arg(long)]
    pub monitor: bool,
    /// Also keep goose's own metrics during phase 5 and write goose's HTML
    /// report beside the others (see `grace load --goose-report`).
    #[arg(long)]
    pub goose_report: bool,
    /// Where the reports go.
    #[arg(long, env = "GRACE_OUT", default_value = REPORTS_DIR, value_name = "DIR")]
    pub out: PathBuf,
    /// The scenario_report_*.json to compare this run with on its page
    /// [default: the last passing run of the same configuration in --out].
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: ExistingDatabaseArgs,
    /// The mission whose conditions are checked (its id is in the scenario's
    /// report and output).
    #[arg(long, value_name = "UUID")]
    pub mission: uuid::Uuid,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier run's scenario_report_*.json.
    #[arg(required_unless_present = "latest", requires = "new")]
    pub old: Option<PathBuf>,
    /// The later run's.
    #[arg(conflicts_with = "latest")]
    pub new: Option<PathBuf>,
    /// Compare the newest report under DIR (searched recursively) with the last
    /// passing report of the same configuration before it; nothing to compare
    /// is not a failure.
    #[arg(long, value_name = "DIR", conflicts_with = "old")]
    pub latest: Option<PathBuf>,
    /// Compare runs of another shape too (users, run time, rate, workers,
    /// iterations, chaos differ), with a warning; refused otherwise (exit 2).
    #[arg(long)]
    pub allow_unlike: bool,
    /// How much throughput may drop (0.1 = 10%).
    #[arg(long, default_value_t = Tolerances::DEFAULT.throughput_drop, value_name = "FRACTION")]
    pub max_throughput_drop: f64,
    /// How much p50/p95/p99 latency may rise (0.2 = 20%).
    #[arg(long, default_value_t = Tolerances::DEFAULT.latency_increase, value_name = "FRACTION")]
    pub max_latency_increase: f64,
    /// How much the (genuine) error rate may rise, absolute (0.01 = 1 point).
    #[arg(long, default_value_t = Tolerances::DEFAULT.error_rate_increase, value_name = "FRACTION")]
    pub max_error_rate_increase: f64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub database: ExistingDatabaseArgs,
    /// How many runs, newest first (1 to 10,000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub database: ExistingDatabaseArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub wait: ServiceWaitArgs,
    /// What to send: the mission traffic (chat, tasks, metric summaries,
    /// verification reads), or only GET /api/health (to measure the load
    /// generator itself).
    #[arg(long, default_value = "mission", value_parser = ["mission", "health"], conflicts_with = "workload")]
    pub traffic: String,
    /// The traffic described in a workload file (TOML; `grace workload init`
    /// prints an example, `grace workload check` checks one). Its `[load]`
    /// suggests the shape; flags override it.
    #[arg(long, value_name = "FILE")]
    pub workload: Option<PathBuf>,
    /// PostgreSQL URL of the loaded service's own database (read-only is
    /// enough), where the workload's `[[proofs]]` are proven after the load:
    /// every acknowledged write stored exactly once (C7) and no orphan (C1).
    /// Default for a Grace backend: the control plane's database.
    #[arg(long, env = "GRACE_SERVICE_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub service_database_url: Option<String>,
    #[command(flatten)]
    pub criteria: CriteriaArgs,
    #[command(flatten)]
    pub shape: LoadShapeArgs,
    /// The mission the load is tagged with on a Grace backend (default: a
    /// new one per run).
    #[arg(long, value_name = "UUID")]
    pub mission: Option<uuid::Uuid>,
    /// Write the merged result (load-result.json), its page (load-report.html)
    /// and, with --goose-report, each worker's goose HTML report into this
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Each worker also keeps goose's own metrics for goose's HTML report
    /// (written beside the merged page with --out). Off by default: Grace's
    /// results do not need them, and they cost CPU on every request.
    #[arg(long)]
    pub goose_report: bool,
    /// No live progress and no INFO logs on stderr, only warnings and the
    /// result (by default: one live line on a terminal, a line every 5 s
    /// otherwise).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Stream the run to FILE as it goes, for dashboards (k6's JSON output):
    /// every second one JSON object per request name and one "overall" —
    /// time, endpoint, requests, failures, p50/p95/p99/max ms of that second.
    #[arg(long, value_name = "FILE")]
    pub out_json_lines: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: ExistingDatabaseArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub wait: ServiceWaitArgs,
    /// The most users this worker takes.
    #[arg(long, env = "GRACE_WORKER_CAPACITY", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub capacity: u32,
    /// Exit after one run.
    #[arg(long)]
    pub once: bool,
    /// Write goose's HTML report of each run here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No live progress of its shares and no INFO logs on stderr, only warnings.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Serve this worker's own metrics for Prometheus on ADDR (`/metrics`):
    /// requests by name and status, injected faults, p50/p95/p99 of its
    /// latest share.
    #[arg(long, env = "GRACE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}
