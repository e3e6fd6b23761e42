//! `grace health`: a checklist that says whether a database (and later a
//! backend) is fit to run Grace, one line per check with the reason when it is
//! not. Checking is kept apart from printing: `run` returns a `Checklist`, which
//! renders as text or JSON.

use crate::configuration::DatabaseUrl;
use crate::db::{self, migrations, schema, DbError};
use crate::immutable_log;
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use tokio_postgres::Client;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Pass(String),
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
    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| !matches!(c.outcome, Outcome::Fail(_)))
    }

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
                Outcome::Fail(d) => ("✗", d),
                Outcome::Skipped(d) => ("–", d),
            };
            writeln!(f, "{mark} {}: {detail}", check.name)?;
        }
        Ok(())
    }
}

/// A backend to check besides the database, and the token to ping its mesh with.
#[derive(Debug, Clone)]
pub struct BackendTarget {
    pub url: reqwest::Url,
    pub token: Option<String>,
}

pub async fn run(url: &DatabaseUrl, backend: Option<&BackendTarget>) -> Checklist {
    let mut checks = Vec::new();
    let mut unreachable = Vec::new();
    match db::connect(url).await {
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
        }
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
    Checklist { target: url.to_string(), checks, unreachable }
}

/// How long `grace health` waits for the backend's log lag to reach zero.
const LOG_LAG_WAIT: Duration = Duration::from_secs(10);
const BACKEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Backend reachable, mesh round trip, log lag zero. Returns false when the
/// backend could not be reached.
async fn backend_checks(backend: &BackendTarget, checks: &mut Vec<Check>) -> bool {
    let http = reqwest::Client::builder().timeout(BACKEND_TIMEOUT).build().expect("a plain HTTP client builds");
    let health_url = backend.url.join("api/health").expect("a path joins onto a base URL");
    let health = match fetch_health(&http, &health_url).await {
        Ok(health) => health,
        Err(reason) => {
            checks.push(Check {
                name: "backend reachable",
                outcome: Outcome::Fail(format!("{}: {reason}", backend.url)),
            });
            return false;
        }
    };
    let version = health["version"].as_str().unwrap_or("?");
    let status = health["status"].as_str().unwrap_or("?");
    checks.push(Check {
        name: "backend reachable",
        outcome: if status == "ok" {
            Outcome::Pass(format!("{} (grace {version})", backend.url))
        } else {
            Outcome::Fail(format!("{} answers but is {status}: database {}", backend.url, health["database"]))
        },
    });
    let mesh = match &backend.token {
        None => Outcome::Skipped("no --token given to publish a ping with".into()),
        Some(token) => {
            let ping = http.post(backend.url.join("api/mesh/ping").expect("joins")).bearer_auth(token).send().await;
            match ping {
                Ok(response) if response.status().is_success() => {
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    Outcome::Pass(format!(
                        "ping delivered in {:.1} ms",
                        body["round_trip_ms"].as_f64().unwrap_or(f64::NAN)
                    ))
                }
                Ok(response) => Outcome::Fail(format!("ping answered {}", response.status())),
                Err(e) => Outcome::Fail(format!("ping failed: {e}")),
            }
        }
    };
    checks.push(Check { name: "mesh round trip", outcome: mesh });
    let deadline = tokio::time::Instant::now() + LOG_LAG_WAIT;
    let lag = loop {
        let lag = fetch_health(&http, &health_url).await.ok().and_then(|h| h["log_lag"].as_i64());
        if lag == Some(0) || tokio::time::Instant::now() > deadline {
            break lag;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    checks.push(Check {
        name: "log lag zero",
        outcome: match lag {
            Some(0) => Outcome::Pass("every event is chained into the immutable log".into()),
            Some(n) => Outcome::Fail(format!("{n} events still unchained after {LOG_LAG_WAIT:?}")),
            None => Outcome::Fail("the backend does not report its log lag".into()),
        },
    });
    true
}

async fn fetch_health(http: &reqwest::Client, url: &reqwest::Url) -> Result<serde_json::Value, String> {
    let response = http.get(url.clone()).send().await.map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| format!("not a Grace backend health answer: {e}"))
}

async fn server_version(client: &Client) -> String {
    match client.query_one("SELECT current_setting('server_version')", &[]).await {
        Ok(row) => format!("PostgreSQL {}", row.get::<_, String>(0)),
        Err(_) => "version unknown".into(),
    }
}

/// The checks that need a connection. Each one reports its own failure; a query
/// error fails that check only, so one problem never hides the others.
async fn database_checks(client: &mut Client, checks: &mut Vec<Check>) {
    checks.push(check("migrations current", migrations_check(client).await));
    checks.push(check("tables present", tables_check(client).await));
    checks.push(check("foreign keys present", foreign_keys_check(client).await));
    checks.push(check("immutable_log append-only", append_only_check(client).await));
    checks.push(check("log chain verifies", chain_check(client).await));
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
    let present = schema::present_tables(client).await?;
    let missing = schema::TABLES.iter().filter(|t| !present.iter().any(|p| p == *t));
    Ok(presence(missing, format!("all {} tables", schema::TABLES.len()), "missing"))
}

async fn foreign_keys_check(client: &Client) -> Result<Outcome, DbError> {
    let present = schema::present_foreign_keys(client).await?;
    let expected = schema::expected_foreign_keys();
    let missing = expected.iter().filter(|fk| !present.contains(fk));
    Ok(presence(missing, format!("all {} foreign keys", expected.len()), "missing"))
}

async fn append_only_check(client: &Client) -> Result<Outcome, DbError> {
    let enabled = schema::enabled_immutable_log_triggers(client).await?;
    let missing = schema::IMMUTABLE_LOG_TRIGGERS.iter().filter(|t| !enabled.iter().any(|e| e == *t));
    let guarantee = "UPDATE, DELETE and TRUNCATE are rejected; inserts are chained".to_string();
    Ok(presence(missing, guarantee, "trigger missing or disabled"))
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

async fn chain_check(client: &Client) -> Result<Outcome, DbError> {
    let verdict = immutable_log::verify(client).await?;
    Ok(if verdict.holds() {
        Outcome::Pass(format!("{} entries", verdict.entries))
    } else {
        let breaks: Vec<String> = verdict.breaks.iter().map(|b| format!("seq {}: {}", b.seq, b.problem)).collect();
        Outcome::Fail(format!("{} of {} entries broken — {}", verdict.broken, verdict.entries, breaks.join("; ")))
    })
}
