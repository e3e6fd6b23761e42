//! The command line: what each `grace` command accepts, and how outcomes become
//! exit codes (docs/design.md: 0 all criteria met, 1 a criterion failed, 2 bad usage
//! or configuration, 3 a required service unreachable; 130 when interrupted).
//!
//! - [`args`]: the argument groups, parsed into domain types at the edge
//!   (database URLs after clap, which would echo a password).
//! - [`exit`]: why a command failed, sorted by exit code.
//! - [`commands`]: one small function per command.

mod args;
mod commands;
mod exit;

use args::{
    BootstrapArgs, CompareArgs, HealthArgs, HistoryArgs, LoadArgs, ScenarioArgs, ServeArgs, VerifyArgs, WorkerArgs,
};
use clap::{Parser, Subcommand};
use exit::CommandError;
use std::io::IsTerminal;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

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
    Bootstrap(BootstrapArgs),
    /// Check that the database (and a backend) is fit to run Grace; exit 0 only if every check passes.
    #[command(
        mut_arg("backend", |a| a.help("A running backend to check too: reachable, mesh round trip, log lag zero")),
        mut_arg("token", |a| a.help("A token of any role, to publish the mesh ping with")),
    )]
    Health(HealthArgs),
    /// Run the Grace backend (the system under test).
    Serve(ServeArgs),
    /// The production scenario, phases 1–8: against the bundled backend on a
    /// private (or DATABASE_URL's) Postgres, or against --backend. Exit 0 only
    /// when every criterion held; once phase 1 has begun the reports are
    /// written either way (interrupted too). A run that cannot begin — the
    /// backend unreachable (3), a token refused or a database not bootstrapped
    /// (2) — writes none: its message says why.
    #[command(
        mut_arg("backend", |a| a.help(
            "A running backend to prove (e.g. staging; needs DATABASE_URL of its database and --tokens). \
             Default: start the bundled backend"
        )),
        mut_arg("tokens", |a| a.help(
            "With --backend: its tokens as role=token pairs (operator, approver, governance, admin)"
        )),
    )]
    Scenario(ScenarioArgs),
    /// Check the consistency conditions C1–C7 for one mission, on any Grace
    /// database (phase 7 alone). Exit 1 when one fails.
    Verify(VerifyArgs),
    /// Compare scenario reports, or list past runs.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Run load against a backend and merge the result: in this process, or
    /// across `grace worker`s with --expect-workers. Exit 1 when a worker was
    /// lost or an acknowledged write is not stored exactly once (C7).
    #[command(mut_arg("backend", |a| a.required(true).help(
        "The backend under load; give it again (or comma-separated) for replicas without a balancer: \
         each transaction goes to the next in turn, and the result counts requests by backend"
    )))]
    Load(LoadArgs),
    /// Serve as a load worker: register in the control plane, heartbeat, run
    /// the shares of runs given to it, upload what it saw. Until Ctrl-C.
    #[command(mut_arg("backend", |a| a
        .env("GRACE_WORKER_BACKEND_URL")
        .help("The backend as this worker reaches it (default: the run's URL)")))]
    Worker(WorkerArgs),
    /// Describe traffic as data: check a workload file, start one, or print its JSON Schema.
    Workload {
        #[command(subcommand)]
        command: WorkloadCommand,
    },
    /// Print the backend's OpenAPI 3 document (the same as GET /api/openapi.json).
    Openapi,
    /// Manage a private PostgreSQL for local use.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

impl Command {
    /// Whether `-q` asked for warnings only.
    fn quiet(&self) -> bool {
        match self {
            Self::Load(args) => args.quiet,
            Self::Worker(args) => args.quiet,
            _ => false,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Render a scenario_report_*.json, or a load run's load-result.json, as
    /// its self-contained HTML page (to stdout).
    Render { report: std::path::PathBuf },
    /// Compare two scenario_report_*.json files; exit 1 on a regression past
    /// the tolerances.
    Compare(CompareArgs),
    /// List past scenario runs recorded in the database, newest first.
    History(HistoryArgs),
}

#[derive(Debug, Subcommand)]
enum WorkloadCommand {
    /// Check a workload file: exit 0, or exit 2 naming file:line:column and what is wrong.
    Check { file: std::path::PathBuf },
    /// Print a commented example workload to start from.
    Init,
    /// Print the workload file's JSON Schema (for editors).
    Schema,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Start a private PostgreSQL, print its DATABASE_URL, and keep it until Ctrl-C.
    Up,
}

/// The whole program: arguments, logging, signals, the runtime, the command.
/// It lives in the library rather than the binary so that the async code of
/// every command is compiled once, here — instantiated from the binary, it
/// was compiled again there (release builds share no generic code across
/// crates), a minute of a cold build.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::console::silence_closed_pipes();
    // Logs go to stderr so that stdout carries only results (text or --json),
    // around a live progress bar when one is drawn; colour only on a
    // terminal, and never under NO_COLOR (https://no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // -q keeps warnings only, whatever RUST_LOG says.
    let filter = match cli.command.quiet() {
        true => EnvFilter::new("warn"),
        false => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,grace=info")),
    };
    tracing_subscriber::fmt().with_writer(|| crate::console::Stderr).with_ansi(colour).with_env_filter(filter).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::tell!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match crate::shutdown::on_signal() {
            Ok(shutdown) => run(cli, shutdown).await,
            Err(e) => {
                crate::tell!("error: could not install signal handlers: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs the command. Commands that serve (`serve`, `db up`) stop in order on
/// `shutdown`; the others are interrupted by it (exit 130), which drops their
/// future and with it a private cluster they started.
async fn run(cli: Cli, shutdown: CancellationToken) -> ExitCode {
    match dispatch(cli.command, &shutdown).await {
        Ok(code) => code,
        Err(e) => {
            crate::tell!("error: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(command: Command, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    match command {
        Command::Bootstrap(args) => commands::service::bootstrap(args, shutdown).await,
        Command::Health(args) => commands::service::health(args, shutdown).await,
        Command::Serve(args) => commands::service::serve(args, shutdown).await,
        Command::Scenario(args) => commands::scenario::scenario(args, shutdown).await,
        Command::Verify(args) => commands::scenario::verify(args).await,
        Command::Report { command: ReportCommand::Render { report } } => commands::report::render(&report),
        Command::Report { command: ReportCommand::Compare(args) } => commands::report::compare(args),
        Command::Report { command: ReportCommand::History(args) } => commands::report::history(args).await,
        Command::Load(args) => commands::load::load(args, shutdown).await,
        Command::Worker(args) => commands::load::worker(args, shutdown).await,
        Command::Workload { command: WorkloadCommand::Check { file } } => commands::workload::check(&file),
        Command::Workload { command: WorkloadCommand::Init } => commands::workload::init(),
        Command::Workload { command: WorkloadCommand::Schema } => commands::workload::schema(),
        Command::Openapi => commands::service::openapi(),
        Command::Db { command: DbCommand::Up } => commands::service::db_up(shutdown).await,
    }
}
