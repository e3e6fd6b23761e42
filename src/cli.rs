//! The command line: what each `grace` command accepts, and how outcomes become
//! exit codes (DESIGN.md: 0 all criteria met, 1 a criterion failed, 2 bad usage
//! or configuration, 3 a required service unreachable; 130 when interrupted).
//! Commands parse their raw options into domain types here, at the edge.

use crate::backend::auth::Tokens;
use crate::backend::{Application, ServeSettings, StartupError};
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
    /// Check that the database (and a backend) is fit to run Grace; exit 0 only if every check passes.
    Health {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A running backend to check too: reachable, mesh round trip, log lag zero.
        #[arg(long, env = "GRACE_BACKEND_URL", value_name = "URL")]
        backend: Option<String>,
        /// A token of any role, to publish the mesh ping with.
        #[arg(long, env = "GRACE_TOKEN", hide_env_values = true, value_name = "TOKEN")]
        token: Option<String>,
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
        #[arg(long, env = "GRACE_TOKENS", hide_env_values = true, value_name = "SPEC")]
        tokens: Option<String>,
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
    /// Print the backend's OpenAPI 3 document (the same as GET /api/openapi.json).
    Openapi,
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

fn parse_backend(raw: &str, token: Option<String>) -> Result<health::BackendTarget, CommandError> {
    let url = reqwest::Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| CommandError::Usage("invalid --backend: expected an http:// or https:// URL".into()))?;
    Ok(health::BackendTarget { url, token })
}

/// Tokens from the spec, else the file, else freshly made (the `bool`).
fn resolve_tokens(spec: Option<String>, file: Option<std::path::PathBuf>) -> Result<(Tokens, bool), CommandError> {
    let spec = match (spec, file) {
        (Some(spec), _) => spec,
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
