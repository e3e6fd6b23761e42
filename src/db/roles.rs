//! Who may do what to the database. The role that migrates owns the tables,
//! and an owner can switch a table's triggers off and rewrite the log with
//! every later hash recomputed. So the backend should run as another role: an
//! application role that reads and writes what the pipeline needs but may
//! only append to the log (`INSERT` and `SELECT` on `immutable_log` and
//! `log_checkpoints`, nothing else). `grace bootstrap --app-role` sets it up;
//! `grace health` and the backend's start warn when their role owns the log.

use super::schema::TABLES;
use tokio_postgres::Client;

/// Tables the application role may only append to and read.
pub const APPEND_ONLY: &[&str] = &["public.immutable_log", "public.log_checkpoints"];

/// Read, never written: the migrations' history (to see the schema is
/// current) and the views.
const READ_ONLY: &[&str] = &["public.refinery_schema_history", "public.mission_progress"];

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("invalid --app-role {0:?}: 1-63 characters of a-z, 0-9 and _, starting with a letter")]
    InvalidName(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// A role name safe to write into SQL unquoted.
fn checked(name: &str) -> Result<&str, RoleError> {
    let valid = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(RoleError::InvalidName(name.to_string()))
    }
}

/// Creates (or updates) the application role `name` and grants it what the
/// backend, workers and verification need, run by the owner after the
/// migrations (so every table they made is covered; run it again after an
/// upgrade). `password`, when given, is set for logging in; it is sent as a
/// literal in the statement, never logged.
pub async fn grant_application_role(client: &Client, name: &str, password: Option<&str>) -> Result<(), RoleError> {
    let role = checked(name)?;
    let exists = client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role]).await?.is_some();
    if !exists {
        client.batch_execute(&format!("CREATE ROLE {role} LOGIN")).await?;
    }
    if let Some(password) = password {
        // Utility statements take no parameters; quote the literal instead.
        let literal: String =
            client.query_one("SELECT quote_literal($1) AS literal", &[&password]).await?.try_get("literal")?;
        client.batch_execute(&format!("ALTER ROLE {role} LOGIN PASSWORD {literal}")).await?;
    }
    let database: String =
        client.query_one("SELECT quote_ident(current_database()) AS db", &[]).await?.try_get("db")?;
    let mut statements = vec![
        format!("GRANT CONNECT ON DATABASE {database} TO {role}"),
        format!("GRANT USAGE ON SCHEMA public, control TO {role}"),
        format!("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public, control TO {role}"),
    ];
    for table in TABLES {
        let rights = if APPEND_ONLY.contains(table) { "SELECT, INSERT" } else { "SELECT, INSERT, UPDATE, DELETE" };
        statements.push(format!("REVOKE ALL ON {table} FROM {role}"));
        statements.push(format!("GRANT {rights} ON {table} TO {role}"));
    }
    for table in READ_ONLY {
        statements.push(format!("REVOKE ALL ON {table} FROM {role}"));
        statements.push(format!("GRANT SELECT ON {table} TO {role}"));
    }
    client.batch_execute(&statements.join(";\n")).await?;
    Ok(())
}

/// Whether the connected role could rewrite the log: it owns `immutable_log`
/// (or a role it belongs to does), or it is a superuser.
pub async fn may_rewrite_log(client: &Client) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT pg_has_role(current_user, c.relowner, 'USAGE')
                    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS may_rewrite
               FROM pg_class c WHERE c.oid = 'public.immutable_log'::regclass",
            &[],
        )
        .await?
        .try_get("may_rewrite")
}
