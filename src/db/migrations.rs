//! The schema migrations in `migrations/`, embedded in the binary (by
//! build.rs) and applied by refinery, so a deployed `grace` always carries the
//! schema it expects.

use super::{DbError, During};
use refinery_core::{Migration, Runner, Target};
use tokio_postgres::Client;

/// Every file of `migrations/` — its name and SQL — in version order.
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

fn runner() -> Runner {
    let migrations: Vec<Migration> = EMBEDDED
        .iter()
        .map(|(name, sql)| Migration::unapplied(name, sql).expect("build.rs admits only V<version>__<name>"))
        .collect();
    Runner::new(&migrations)
}

/// Several processes may start at once (two backend replicas, a coordinator and
/// its workers); refinery does not lock, so they take turns on this advisory lock.
const MIGRATION_LOCK_KEY: &str = "grace.migrations";

/// `V<version>__<name>`, the way the files in `migrations/` are named.
pub type MigrationName = String;

fn display_name(migration: &Migration) -> MigrationName {
    format!("V{}__{}", migration.version(), migration.name())
}

/// Applies every pending migration and returns the ones it applied (none when the
/// database was already current).
pub async fn apply(client: &mut Client) -> Result<Vec<MigrationName>, DbError> {
    // Nothing to do is done without DDL, so a role that may not create
    // anything (the application role, `db::roles`) can start on a current
    // database.
    if status(client).await?.is_current() {
        return Ok(Vec::new());
    }
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&MIGRATION_LOCK_KEY])
        .await
        .during("taking the migration lock")?;
    let report = runner().run_async(client).await;
    client
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&MIGRATION_LOCK_KEY])
        .await
        .during("releasing the migration lock")?;
    Ok(report?.applied_migrations().iter().map(display_name).collect())
}

/// Applies the pending migrations up to and including `version`: the database
/// as an older grace left it (how the tests prove a migration carries existing
/// data over).
pub async fn apply_through(client: &mut Client, version: i32) -> Result<Vec<MigrationName>, DbError> {
    let runner = runner().set_target(Target::Version(version));
    let report = runner.run_async(client).await?;
    Ok(report.applied_migrations().iter().map(display_name).collect())
}

/// How the database's applied migrations compare with the embedded ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: Vec<MigrationName>,
    /// Embedded but not applied: `grace bootstrap` would apply them.
    pub pending: Vec<MigrationName>,
    /// Applied with different content than the embedded file (edited after release).
    pub divergent: Vec<MigrationName>,
    /// Applied but unknown to this binary (a newer grace migrated this database).
    pub unknown: Vec<MigrationName>,
}

impl MigrationStatus {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.divergent.is_empty() && self.unknown.is_empty()
    }
}

pub async fn status(client: &mut Client) -> Result<MigrationStatus, DbError> {
    let runner = runner();
    let history_exists: bool = client
        .query_one("SELECT to_regclass('public.refinery_schema_history') IS NOT NULL AS history_exists", &[])
        .await
        .and_then(|row| row.try_get("history_exists"))
        .during("looking for the migration history")?;
    let applied = if history_exists { runner.get_applied_migrations_async(client).await? } else { vec![] };

    let mut status = MigrationStatus::default();
    for migration in runner.get_migrations() {
        match applied.iter().find(|a| a.version() == migration.version()) {
            None => status.pending.push(display_name(migration)),
            Some(a) if a.checksum() != migration.checksum() => status.divergent.push(display_name(a)),
            Some(a) => status.applied.push(display_name(a)),
        }
    }
    status.unknown = applied
        .iter()
        .filter(|a| !runner.get_migrations().iter().any(|m| m.version() == a.version()))
        .map(display_name)
        .collect();
    Ok(status)
}

/// Fails with `NotBootstrapped` when `database` lacks a migration this
/// binary needs: a command that would otherwise fail at its first query into
/// a missing table says what to do instead, before anything runs.
pub async fn require_bootstrapped(database: &crate::configuration::DatabaseUrl) -> Result<(), DbError> {
    let mut client = super::connect(database).await?;
    let status = status(&mut client).await?;
    match status.pending.first() {
        None => Ok(()),
        Some(first) => Err(DbError::NotBootstrapped {
            database: database.to_string(),
            pending: status.pending.len(),
            first: first.to_string(),
        }),
    }
}

/// A fingerprint of the embedded migrations: equal binaries produce equal
/// schemas. Tests key their template database on it.
pub fn fingerprint() -> String {
    runner().get_migrations().iter().fold(0u64, |acc, m| acc.rotate_left(7) ^ m.checksum()).to_string()
}
