//! The command line: what each `grace` command accepts, and how outcomes become
//! exit codes (DESIGN.md: 0 all criteria met, 1 a criterion failed, 2 bad usage
//! or configuration, 3 a required service unreachable; 130 when interrupted).
//! Commands parse their raw options into domain types here, at the edge.

use crate::bootstrap::{self, BootstrapReport};
use crate::configuration::{ConfigError, DatabaseUrl};
use crate::db::private::{PrivateClusterError, PrivatePostgres};
use crate::db::{self, Database, DbError};
use crate::health;
use clap::{Args, Parser, Subcommand};
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
    /// Check that the database is fit to run Grace; exit 0 only if every check passes.
    Health {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Manage a private PostgreSQL for local use.
    Db {
        #[command(subcommand)]
        command: DbCommand,
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
}

impl CommandError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Failed(_) => ExitCode::from(1),
            Self::Usage(_) => ExitCode::from(2),
            Self::Unreachable(_) => ExitCode::from(3),
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

impl From<DbError> for CommandError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unreachable { .. } => Self::Unreachable(e.to_string()),
            DbError::Migration(_) | DbError::Query(_) => Self::Failed(e.to_string()),
        }
    }
}

/// Runs the command until it ends or `shutdown` fires. Interrupting drops the
/// command's future, which stops and removes a private cluster it started.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> ExitCode {
    let outcome = tokio::select! {
        // Biased: a command that itself waits for shutdown (`db up`) ends on its own terms.
        biased;
        outcome = dispatch(cli.command, &shutdown) => outcome,
        () = shutdown.cancelled() => {
            eprintln!("interrupted");
            return ExitCode::from(130);
        }
    };
    match outcome {
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
            let database = Database::configured_or_private(database.parse()?).await?;
            let report = bootstrap::bootstrap(&mut db::connect(&database.url()).await?).await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("reports serialize"));
            } else {
                print!("{}", BootstrapText { url: &database.url(), report: &report });
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { database, output } => {
            let database = Database::configured_or_private(database.parse()?).await?;
            let checklist = health::run(&database.url()).await;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&checklist).expect("checklists serialize"));
            } else {
                print!("{checklist}");
            }
            if !checklist.database_reachable {
                return Err(CommandError::Unreachable("database unreachable".into()));
            }
            match checklist.failed().map(|c| c.name).collect::<Vec<_>>() {
                failed if failed.is_empty() => Ok(ExitCode::SUCCESS),
                failed => Err(CommandError::Failed(format!("failed: {}", failed.join(", ")))),
            }
        }
        Command::Db { command: DbCommand::Up } => {
            let cluster = PrivatePostgres::start().await?;
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
