//! `grace health`: a checklist that says whether a database (and later a
//! backend) is fit to run Grace, one line per check with the reason when it is
//! not. Checking is kept apart from printing: `run` returns a `Checklist`, which
//! renders as text or JSON.

use crate::client::{BackendClient, ClientError};
use crate::configuration::DatabaseUrl;
use crate::db::{self, migrations, roles, schema, DbError, During};
use crate::immutable_log::{self, ChainSettings};
use crate::specification::Role;
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use tokio_postgres::Client;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Pass(String),
    /// Fit to run, but not as safe as it should be; not a failure.
    Warn(String),
    Fail(String),
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checklist {
    pub target: String,
    pub checks: Vec<Check>,
    /// The required services that could not be reached at all (exit code 3).
    pub unreachable: Vec<&'static str>,
}

impl Checklist {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| matches!(c.outcome, Outcome::Fail(_)))
    }
}

impl fmt::Display for Checklist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "grace health — {}", self.target)?;
        for check in &self.checks {
            let (mark, detail) = match &check.outcome {
                Outcome::Pass(d) => ("✓", d),
                Outcome::Warn(d) => ("!", d),
                Outcome::Fail(d) => ("✗", d),
                Outcome::Skipped(d) => ("–", d),
            };
            writeln!(f, "{mark} {}: {detail}", check.name)?;
        }
        Ok(())
    }
}

/// Checks the database at `url`, and `backend` when given (with the token it
/// holds, if any, to ping its mesh).
pub async fn run(url: Option<&DatabaseUrl>, backend: Option<&BackendClient>, chain: &mut ChainSettings) -> Checklist {
    let mut checks = Vec::new();
    let mut unreachable = Vec::new();
    match url {
        None => checks.push(Check {
            name: "database",
            outcome: Outcome::Skipped("no --database-url given; only the backend was checked".into()),
        }),
        Some(url) => match db::connect(url).await {
            Err(e) => {
                checks.push(Check { name: "database reachable", outcome: Outcome::Fail(e.to_string()) });
                unreachable.push("database");
            }
            Ok(mut client) => {
                let version = server_version(&client).await;
                checks.push(Check {
                    name: "database reachable",
                    outcome: Outcome::Pass(format!("{} ({version})", url.endpoint())),
                });
                database_checks(&mut client, &mut checks).await;
                checks.push(Check { name: "log chain verifies", outcome: chain_check(url, chain).await });
                if chain.full {
                    checks.push(Check {
                        name: "no orphans, every reference read",
                        outcome: orphans_check(&client).await,
                    });
                }
            }
        },
    }
    match backend {
        None => checks.push(Check {
            name: "backend",
            outcome: Outcome::Skipped("no --backend given; only the database was checked".into()),
        }),
        Some(backend) => {
            if !backend_checks(backend, &mut checks).await {
                unreachable.push("backend");
            }
        }
    }
    let target = match (url, backend) {
        (Some(url), _) => url.to_string(),
        (None, Some(backend)) => backend.url().to_string(),
        (None, None) => "nothing".to_string(),
    };
    Checklist { target, checks, unreachable }
}

/// How long `grace health` waits for the backend's log lag to reach zero.
const LOG_LAG_WAIT: Duration = Duration::from_secs(10);

/// Backend reachable, mesh round trip, log lag zero. Returns false when the
/// backend could not be reached — or answered its health probe with a 5xx,
/// which is not reachable either.
async fn backend_checks(backend: &BackendClient, checks: &mut Vec<Check>) -> bool {
    let url = backend.url();
    let health = match backend.health().await {
        Ok(health) => health,
        Err(e) => {
            checks.push(Check { name: "backend reachable", outcome: Outcome::Fail(format!("{url}: {}", e.reason())) });
            return false;
        }
    };
    checks
        .push(Check { name: "backend reachable", outcome: Outcome::Pass(format!("{url} (grace {})", health.version)) });
    let mesh = if Role::ALL.into_iter().all(|role| backend.token(role).is_none()) {
        Outcome::Skipped("no --token given to publish a ping with".into())
    } else {
        match backend.ping().await {
            Ok(ping) => Outcome::Pass(format!("ping delivered in {:.1} ms", ping.round_trip_ms)),
            Err(ClientError::Refused { status, .. }) => Outcome::Fail(format!("ping answered {status}")),
            Err(e) => Outcome::Fail(format!("ping failed: {}", e.reason())),
        }
    };
    checks.push(Check { name: "mesh round trip", outcome: mesh });
    checks.push(Check {
        name: "log lag zero",
        outcome: match backend.await_zero_log_lag(LOG_LAG_WAIT).await {
            Ok(true) => Outcome::Pass("every event is chained into the immutable log".into()),
            Ok(false) => match backend.health().await.ok().and_then(|h| h.log_lag) {
                Some(n) => Outcome::Fail(format!("{n} events still unchained after {LOG_LAG_WAIT:?}")),
                None => Outcome::Fail("the backend does not report its log lag".into()),
            },
            Err(e) => Outcome::Fail(format!("the backend stopped answering: {}", e.reason())),
        },
    });
    true
}

async fn server_version(client: &Client) -> String {
    let version = client.query_one("SELECT current_setting('server_version') AS version", &[]).await;
    match version.and_then(|row| row.try_get::<_, String>("version")) {
        Ok(version) => format!("PostgreSQL {version}"),
        Err(_) => "version unknown".into(),
    }
}

/// The checks that need a connection. Each one reports its own failure; a query
/// error fails that check only, so one problem never hides the others.
async fn database_checks(client: &mut Client, checks: &mut Vec<Check>) {
    checks.push(check("migrations current", migrations_check(client).await));
    checks.push(check("tables present", tables_check(client).await));
    checks.push(check("foreign keys present", foreign_keys_check(client).await));
    checks.push(check("foreign keys enforced always", foreign_keys_always_check(client).await));
    checks.push(check("immutable_log append-only", append_only_check(client).await));
    checks.push(check("log owned apart", log_owner_check(client).await));
}

fn check(name: &'static str, outcome: Result<Outcome, DbError>) -> Check {
    let outcome = outcome.unwrap_or_else(|e| Outcome::Fail(format!("could not check: {e}")));
    Check { name, outcome }
}

async fn migrations_check(client: &mut Client) -> Result<Outcome, DbError> {
    let status = migrations::status(client).await?;
    if status.is_current() {
        let latest = status.applied.last().map(String::as_str).unwrap_or("none");
        return Ok(Outcome::Pass(format!("{} applied, latest {latest}", status.applied.len())));
    }
    let mut problems = Vec::new();
    if !status.pending.is_empty() {
        problems.push(format!("pending {} (run `grace bootstrap`)", status.pending.join(", ")));
    }
    if !status.divergent.is_empty() {
        problems.push(format!("changed since applied: {}", status.divergent.join(", ")));
    }
    if !status.unknown.is_empty() {
        problems.push(format!("applied by a newer grace: {}", status.unknown.join(", ")));
    }
    Ok(Outcome::Fail(problems.join("; ")))
}

async fn tables_check(client: &Client) -> Result<Outcome, DbError> {
    let present = schema::present_tables(client).await.during("listing the tables")?;
    let missing = schema::TABLES.iter().filter(|t| !present.iter().any(|p| p == *t));
    Ok(presence(missing, format!("all {} tables", schema::TABLES.len()), "missing"))
}

async fn foreign_keys_check(client: &Client) -> Result<Outcome, DbError> {
    let present = schema::present_foreign_keys(client).await.during("listing the foreign keys")?;
    let expected = schema::expected_foreign_keys();
    let missing = expected.iter().filter(|fk| !present.contains(fk));
    Ok(presence(missing, format!("all {} foreign keys", expected.len()), "missing"))
}

async fn append_only_check(client: &Client) -> Result<Outcome, DbError> {
    let always = schema::always_immutable_log_triggers(client).await.during("reading the log's triggers")?;
    let missing = schema::IMMUTABLE_LOG_TRIGGERS.iter().filter(|t| !always.iter().any(|e| e == *t));
    let guarantee = "UPDATE, DELETE and TRUNCATE are rejected in every session; inserts are chained".to_string();
    Ok(presence(
        missing,
        guarantee,
        "trigger missing, disabled or not ALWAYS (a replica-role session skips it; \
         SELECT grace_enforce_log_guards_always() restores them)",
    ))
}

/// Warns about foreign keys a `session_replication_role = replica` session
/// can skip: C1 then scans their rows instead of trusting the catalog. Only a
/// superuser can make them ALWAYS (migration V10), so a database migrated by
/// an ordinary owner has them all; after `ENABLE TRIGGER ALL` they are back.
async fn foreign_keys_always_check(client: &Client) -> Result<Outcome, DbError> {
    let unenforced = schema::unenforced_foreign_keys(client).await.during("reading the foreign keys' triggers")?;
    Ok(if unenforced.is_empty() {
        Outcome::Pass("validated, their triggers ALWAYS: C1 holds by the catalog".into())
    } else {
        let names: Vec<String> = unenforced.iter().map(ToString::to_string).collect();
        Outcome::Warn(format!(
            "{} a replica-role session can skip (C1 scans their rows): {}; as a superuser, \
             SELECT grace_enforce_foreign_keys_always()",
            names.len(),
            names.join(", ")
        ))
    })
}

/// Warns when this role could rewrite the log (owner or superuser): the
/// backend should run as an application role that may only append to it.
async fn log_owner_check(client: &Client) -> Result<Outcome, DbError> {
    Ok(if roles::may_rewrite_log(client).await.during("reading who owns the log")? {
        Outcome::Warn(
            "this role owns immutable_log (or is a superuser), so it could switch its triggers off and rewrite it; \
             run the backend as an application role (`grace bootstrap --app-role NAME`) and keep anchors"
                .into(),
        )
    } else {
        Outcome::Pass("this role may only append to the log; its owner is another".into())
    })
}

/// Passes with `all_present` when nothing is missing; otherwise fails naming
/// every missing item, so an operator knows exactly what to restore.
fn presence<T: fmt::Display>(missing: impl Iterator<Item = T>, all_present: String, label: &str) -> Outcome {
    let missing: Vec<String> = missing.map(|m| m.to_string()).collect();
    if missing.is_empty() {
        Outcome::Pass(all_present)
    } else {
        Outcome::Fail(format!("{label}: {}", missing.join(", ")))
    }
}

/// C1 row by row (`--full`), as `grace verify --full` proves it: every
/// reference of every FOREIGN KEY looked up, enforced or not — a superuser
/// who switches a key's triggers off and back on ALWAYS leaves the catalog
/// clean and an orphan in place.
async fn orphans_check(client: &Client) -> Outcome {
    match crate::verify::no_orphans(std::slice::from_ref(client), None, true).await {
        Ok(c1) if c1.passed => Outcome::Pass(c1.basis),
        Ok(c1) => Outcome::Fail(format!("orphans found: {} — {}", c1.violations, c1.examples.join("; "))),
        Err(e) => Outcome::Fail(format!("could not check: {e}")),
    }
}

/// The chain from where the last proof ended (from genesis with `--full`).
async fn chain_check(url: &DatabaseUrl, chain: &mut ChainSettings) -> Outcome {
    match immutable_log::prove_database(url, chain, "grace health").await {
        Ok(proof) if proof.verdict.holds() => Outcome::Pass(proof.summary()),
        Ok(proof) => Outcome::Fail(proof.summary()),
        Err(e) => Outcome::Fail(format!("could not check: {e}")),
    }
}
