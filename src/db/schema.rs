//! The schema Grace relies on, stated independently of the migrations so that a
//! database deployed some other way (a staging copy, a hand-made restore) can be
//! checked against it: a table or FOREIGN KEY that is missing is reported by name
//! instead of being silently passed. A test keeps this list equal to what the
//! migrations create.

use tokio_postgres::Client;

/// Every table of the data model, schema-qualified.
pub const TABLES: &[&str] = &[
    "public.tier_policy",
    "public.benchmark_baselines",
    "public.missions",
    "public.managed_resources",
    "public.action_contracts",
    "public.safe_hold_snapshots",
    "public.benchmark_runs",
    "public.approval_requests",
    "public.immutable_log",
    "public.log_checkpoints",
    "public.action_events",
    "public.chat_messages",
    "public.tasks",
    "public.mission_stats",
    "public.mission_confidence_minutes",
    "public.fault_settings",
    "control.workers",
    "control.runs",
    "control.run_workers",
    "control.worker_results",
    "control.write_outcomes",
    "control.scenario_runs",
    "control.scenario_iterations",
];

/// A link between tables, identified by what it connects rather than by the
/// constraint's name, which differs between deployments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForeignKey {
    pub table: String,
    pub column: String,
    pub references: String,
    /// The column it points at in `references`.
    pub referenced_column: String,
}

/// The log table, whose key is `seq` (every other table's is `id`).
pub const LOG: &str = "public.immutable_log";

impl std::fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} → {}", self.table, self.column, self.references)
    }
}

/// (table, column, referenced table) for every FOREIGN KEY of the data model.
const FOREIGN_KEYS: &[(&str, &str, &str)] = &[
    ("public.managed_resources", "mission_id", "public.missions"),
    ("public.action_contracts", "mission_id", "public.missions"),
    ("public.action_contracts", "resource_id", "public.managed_resources"),
    ("public.action_contracts", "snapshot_id", "public.safe_hold_snapshots"),
    ("public.safe_hold_snapshots", "contract_id", "public.action_contracts"),
    ("public.benchmark_runs", "contract_id", "public.action_contracts"),
    ("public.approval_requests", "contract_id", "public.action_contracts"),
    ("public.action_events", "mission_id", "public.missions"),
    ("public.action_events", "contract_id", "public.action_contracts"),
    ("public.action_events", "approval_id", "public.approval_requests"),
    ("public.action_events", "log_seq", "public.immutable_log"),
    ("public.log_checkpoints", "seq", "public.immutable_log"),
    ("public.chat_messages", "mission_id", "public.missions"),
    ("public.chat_messages", "reply_to", "public.chat_messages"),
    ("public.tasks", "mission_id", "public.missions"),
    ("public.tasks", "contract_id", "public.action_contracts"),
    ("public.mission_stats", "mission_id", "public.missions"),
    ("public.mission_confidence_minutes", "mission_id", "public.missions"),
    ("control.runs", "mission_id", "public.missions"),
    ("control.run_workers", "run_id", "control.runs"),
    ("control.run_workers", "worker_id", "control.workers"),
    ("control.worker_results", "run_id", "control.runs"),
    ("control.worker_results", "worker_id", "control.workers"),
    ("control.write_outcomes", "run_id", "control.runs"),
    ("control.write_outcomes", "worker_id", "control.workers"),
    ("control.scenario_iterations", "run_id", "control.scenario_runs"),
    ("control.scenario_iterations", "mission_id", "public.missions"),
];

pub fn expected_foreign_keys() -> Vec<ForeignKey> {
    FOREIGN_KEYS
        .iter()
        .map(|(table, column, references)| ForeignKey {
            table: table.to_string(),
            column: column.to_string(),
            references: references.to_string(),
            referenced_column: if *references == LOG { "seq" } else { "id" }.to_string(),
        })
        .collect()
}

/// The triggers that keep `immutable_log` a hash chain that is only appended to.
pub const IMMUTABLE_LOG_TRIGGERS: &[&str] =
    &["immutable_log_chain", "immutable_log_append_only", "immutable_log_no_truncate"];

/// Schema-qualified names of the ordinary tables in Grace's schemas.
pub async fn present_tables(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname AS table_name
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname IN ('public', 'control')
                AND c.relname <> 'refinery_schema_history'
              ORDER BY 1",
            &[],
        )
        .await?;
    rows.iter().map(|r| r.try_get("table_name")).collect()
}

/// Grace's schemas.
const GRACE_SCHEMAS: &str = "sn.nspname IN ('public', 'control')";
/// Every schema of a service's database but PostgreSQL's own.
const SERVICE_SCHEMAS: &str = "sn.nspname NOT IN ('pg_catalog', 'information_schema') AND sn.nspname NOT LIKE 'pg\\_%'";
/// Keys Postgres cannot vouch for: added NOT VALID and never validated, or
/// with a trigger behind them that is disabled (`ALTER TABLE … DISABLE
/// TRIGGER ALL`) or not enabled ALWAYS, so a session with
/// `session_replication_role = replica` skips it (migration V10).
const UNENFORCED: &str =
    "NOT c.convalidated OR EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgconstraint = c.oid AND tg.tgenabled <> 'A')";

/// Every single-column FOREIGN KEY in Grace's schemas.
pub async fn present_foreign_keys(client: &Client) -> Result<Vec<ForeignKey>, tokio_postgres::Error> {
    foreign_keys_where(client, GRACE_SCHEMAS, "true").await
}

/// A service's FOREIGN KEYs (every schema but PostgreSQL's own): the
/// single-column ones, which of them Postgres cannot vouch for, and how many
/// span several columns (not scanned).
pub async fn service_foreign_keys(client: &Client) -> Result<ServiceForeignKeys, tokio_postgres::Error> {
    let multi_column = client
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_constraint c
                   JOIN pg_class s ON s.oid = c.conrelid JOIN pg_namespace sn ON sn.oid = s.relnamespace
                  WHERE c.contype = 'f' AND cardinality(c.conkey) > 1 AND {SERVICE_SCHEMAS}"
            ),
            &[],
        )
        .await?
        .try_get::<_, i64>(0)? as u64;
    Ok(ServiceForeignKeys {
        single_column: foreign_keys_where(client, SERVICE_SCHEMAS, "true").await?,
        unenforced: foreign_keys_where(client, SERVICE_SCHEMAS, UNENFORCED).await?,
        multi_column,
    })
}

/// What a service's catalog says of its FOREIGN KEYs.
pub struct ServiceForeignKeys {
    pub single_column: Vec<ForeignKey>,
    /// Those of `single_column` Postgres cannot vouch for.
    pub unenforced: Vec<ForeignKey>,
    pub multi_column: u64,
}

/// The data model's FOREIGN KEYs whose rows Postgres cannot vouch for (`UNENFORCED`).
pub async fn unenforced_foreign_keys(client: &Client) -> Result<Vec<ForeignKey>, tokio_postgres::Error> {
    foreign_keys_where(client, GRACE_SCHEMAS, UNENFORCED).await
}

/// The single-column FOREIGN KEYs in `schemas` meeting `condition`.
async fn foreign_keys_where(
    client: &Client,
    schemas: &str,
    condition: &str,
) -> Result<Vec<ForeignKey>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT sn.nspname || '.' || s.relname AS table_name, a.attname::text AS column_name,
                        tn.nspname || '.' || t.relname AS referenced, ra.attname::text AS referenced_column
                   FROM pg_constraint c
                   JOIN pg_class s ON s.oid = c.conrelid
                   JOIN pg_namespace sn ON sn.oid = s.relnamespace
                   JOIN pg_class t ON t.oid = c.confrelid
                   JOIN pg_namespace tn ON tn.oid = t.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                   JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
                  WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND {schemas} AND ({condition})
                  ORDER BY 1, 2"
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ForeignKey {
                table: row.try_get("table_name")?,
                column: row.try_get("column_name")?,
                references: row.try_get("referenced")?,
                referenced_column: row.try_get("referenced_column")?,
            })
        })
        .collect()
}

/// The user-defined triggers on `immutable_log` enabled ALWAYS (migration
/// V26): one disabled protects nothing, and one enabled the ordinary way
/// (ORIGIN, as `ENABLE TRIGGER ALL` leaves it) is skipped by a session with
/// `session_replication_role = replica`, so neither counts.
pub async fn always_immutable_log_triggers(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT tgname::text AS trigger_name FROM pg_trigger
              WHERE tgrelid = to_regclass('public.immutable_log') AND NOT tgisinternal AND tgenabled = 'A'
              ORDER BY 1",
            &[],
        )
        .await?;
    rows.iter().map(|r| r.try_get("trigger_name")).collect()
}
