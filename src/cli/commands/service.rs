//! The commands that set up, check and run the backend: `bootstrap`,
//! `health`, `serve`, `openapi`, `db up`.

use crate::backend::{Application, ServeSettings};
use crate::bootstrap::{self, BootstrapReport};
use crate::cli::args::{BootstrapArgs, HealthArgs, ServeArgs};
use crate::cli::exit::{interruptible, none_failed, CommandError};
use crate::configuration::DatabaseUrl;
use crate::db::private::PrivatePostgres;
use crate::db::roles::{self, RoleError};
use crate::db::{self, Database, DbError};
use crate::health;
use crate::specification::Role;
use secrecy::ExposeSecret;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

pub async fn bootstrap(args: BootstrapArgs, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    interruptible(shutdown, async {
        let database = Database::configured_or_private(args.database.parse()?).await?;
        let mut client = db::connect(&database.url()).await?;
        let mut report = bootstrap::bootstrap(&mut client).await?;
        if let Some(role) = &args.app_role {
            let password = args.app_password.as_ref().map(|p| p.expose_secret());
            roles::grant_application_role(&client, role, password).await.map_err(|e| match e {
                RoleError::InvalidName(_) => CommandError::Usage(e.to_string()),
                RoleError::Database(source) => {
                    DbError::Query { during: "granting the application role", source }.into()
                }
            })?;
            report.application_role = Some(role.clone());
        }
        args.output.emit(&report, |report| bootstrap_text(&database.url(), report));
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn health(args: HealthArgs, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    interruptible(shutdown, async {
        let backend = args.backend.client()?;
        let database = args.database.optional()?;
        if database.is_none() && backend.is_none() {
            return Err(CommandError::Usage(
                "nothing to check: give the database (--database-url or DATABASE_URL), a backend (--backend), or both"
                    .into(),
            ));
        }
        if let Some(backend) = &backend {
            // A token the backend refuses is the caller's configuration: exit 2, as
            // in every command (an unreachable backend is the checklist's to report).
            let given: Vec<Role> = Role::ALL.into_iter().filter(|role| backend.token(*role).is_some()).collect();
            if let Err(e) = backend.check_tokens(&given).await {
                if e.is_configuration() {
                    return Err(CommandError::Usage(format!("{}: {e}", backend.url())));
                }
            }
        }
        let mut chain = args.chain.settings()?;
        let checklist = health::run(database.as_ref(), backend.as_ref(), &mut chain).await;
        args.output.emit(&checklist, ToString::to_string);
        if !checklist.unreachable.is_empty() {
            return Err(CommandError::Unreachable(format!("unreachable: {}", checklist.unreachable.join(", "))));
        }
        none_failed(checklist.failed().map(|c| c.name).collect(), "failed")
    })
    .await
}

pub async fn serve(args: ServeArgs, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    let (tokens, generated) = args.tokens()?;
    let connections = args.connection_limits()?;
    let database =
        interruptible(shutdown, async { Ok(Database::configured_or_private(args.database.parse()?).await?) }).await?;
    let settings = ServeSettings {
        database: database.url(),
        listen: args.listen,
        tokens: tokens.clone(),
        enable_faults: args.enable_faults,
        pool_size: usize::from(args.pool_size),
        connections,
        private_database: database.is_private(),
    };
    let application = Application::build(settings).await?;
    let addr = application.local_addr();
    if generated {
        let path = std::env::temp_dir().join(format!("grace-tokens-{}.env", addr.port()));
        tokens
            .write_private_file(&path)
            .map_err(|e| CommandError::Failed(format!("could not write the tokens file: {e}")))?;
        crate::tell!("no tokens configured: made one per role, written to {} (readable only by you)", path.display());
    }
    crate::say!("grace backend listening on http://{addr}");
    application.run_until(shutdown.clone()).await?;
    Ok(ExitCode::SUCCESS)
}

pub fn openapi() -> Result<ExitCode, CommandError> {
    use utoipa::OpenApi;
    let document = crate::backend::routes::openapi::ApiDoc::openapi();
    crate::say!("{}", document.to_pretty_json().map_err(|e| CommandError::Failed(e.to_string()))?);
    Ok(ExitCode::SUCCESS)
}

pub async fn db_up(shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    let cluster = interruptible(shutdown, async { Ok(PrivatePostgres::start().await?) }).await?;
    // Machine-readable first (a script can `eval` these lines), then the human note.
    crate::say!("DATABASE_URL={}", cluster.url());
    crate::say!("GRACE_PRIVATE_PG_DIR={}", cluster.directory().display());
    crate::tell!("private PostgreSQL is up; Ctrl-C stops it and removes its files");
    shutdown.cancelled().await;
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}

/// The human rendering of a bootstrap.
fn bootstrap_text(url: &DatabaseUrl, report: &BootstrapReport) -> String {
    let listed = |items: &[String], none: &str| {
        if items.is_empty() {
            none.to_string()
        } else {
            format!("added {}", items.join(", "))
        }
    };
    let migrations = if report.migrations_applied.is_empty() {
        "none pending".to_string()
    } else {
        format!("applied {}", report.migrations_applied.join(", "))
    };
    let ending = match report.log_seq {
        Some(seq) => format!("bootstrapped; recorded as immutable log entry {seq}"),
        None => "already bootstrapped: nothing changed".to_string(),
    };
    let role = match &report.application_role {
        Some(role) => {
            format!("✓ application role {role}: reads and writes the pipeline's tables, appends to the log\n")
        }
        None => String::new(),
    };
    format!(
        "grace bootstrap — {url}\n✓ migrations: {migrations}\n✓ tier policy: {}\n✓ golden baseline: {}\n{role}{ending}\n",
        listed(&report.policy_rules_added, "every rule present, kept as is"),
        listed(&report.baselines_added, "present, kept as is"),
    )
}
