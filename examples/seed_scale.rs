//! Seeds a Grace database at staging size for the scale benchmarks
//! (`scripts/seed-scale`, `scripts/bench-verify`): it copies the action
//! pipeline's work on a mission the real backend wrote — its contracts,
//! resources, snapshots, benchmarks, approvals and their events — as many
//! times as it takes to add `--contracts` contracts, each copy a mission of
//! its own, and extends the log chain with a copy of each copied event's
//! entry, hashed here under the canonical encoding. The per-mission counters
//! are then recounted (`grace_recount_mission_stats()`), as for any bulk load.
//!
//! It writes like a bulk loader, not like the backend: in one transaction per
//! batch, as a superuser with the tables' triggers off until the batch is in
//! (so the chain trigger and the foreign-key checks stay out of the way; the
//! same transaction turns them back on as the migrations left them), holding
//! the chain's lock. Every copy is consistent by construction: ids are mapped
//! with one deterministic function, so every reference lands on its copied
//! row, and the copied counters equal the copied rows. The first verification
//! afterwards (a proof from genesis) re-checks all of it.

use clap::Parser;
use futures::pin_mut;
use grace::api::log::LogEntryView;
use grace::configuration::DatabaseUrl;
use grace::db::rows::FromRow;
use grace::immutable_log::chain::{self, EntryFields};
use grace::immutable_log::checkpoint;
use std::time::Instant;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// How many contracts to add.
    #[arg(long)]
    contracts: u64,
    /// The mission to copy (default: of the missions that are not copies, the one with the most contracts).
    #[arg(long)]
    template: Option<Uuid>,
    /// Contracts per transaction.
    #[arg(long, default_value_t = 50_000)]
    batch: u64,
}

/// The tables copied with the template mission, and which of their rows belong to it.
const TABLES: &[(&str, &str)] = &[
    ("missions", "id = $1"),
    ("managed_resources", "mission_id = $1"),
    ("action_contracts", "mission_id = $1"),
    ("safe_hold_snapshots", "contract_id IN (SELECT id FROM action_contracts WHERE mission_id = $1)"),
    ("benchmark_runs", "contract_id IN (SELECT id FROM action_contracts WHERE mission_id = $1)"),
    ("approval_requests", "contract_id IN (SELECT id FROM action_contracts WHERE mission_id = $1)"),
    ("action_events", "mission_id = $1 AND t.contract_id IS NOT NULL"),
];

/// One table's copying statement; `chained` when it also takes the chain's
/// place ($4, $5).
struct CopyStatement {
    sql: String,
    chained: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let url = DatabaseUrl::parse(&args.database_url)?;
    let mut client = grace::db::connect(&url).await?;
    let template = match args.template {
        Some(id) => id,
        None => client
            .query_one(
                "SELECT c.mission_id FROM action_contracts c JOIN missions m ON m.id = c.mission_id
              WHERE m.name !~ ' #[0-9]+$' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
                &[],
            )
            .await?
            .try_get("mission_id")?,
    };
    let per_copy: i64 = client
        .query_one("SELECT count(*) FROM action_contracts WHERE mission_id = $1", &[&template])
        .await?
        .try_get(0)?;
    if per_copy == 0 {
        return Err(format!("mission {template} has no contracts to copy").into());
    }
    let entries = template_entries(&client, template).await?;
    let statements = copy_statements(&client).await?;
    let copies = args.contracts.div_ceil(per_copy as u64);
    let per_batch = (args.batch / per_copy as u64).max(1);
    let started = Instant::now();
    let mut copy = 1u64;
    while copy <= copies {
        let last = (copy + per_batch - 1).min(copies);
        let tx = client.transaction().await?;
        copy_batch(&tx, template, &entries, &statements, copy as i32, last as i32).await?;
        tx.commit().await?;
        copy = last + 1;
    }
    client.batch_execute("SELECT grace_recount_mission_stats(); ANALYZE").await?;
    let seconds = started.elapsed().as_secs_f64();
    let added = copies * per_copy as u64;
    println!(
        "seeded {added} contracts ({copies} copies of mission {template}, {} log entries) in {seconds:.1}s: {:.0} contracts/s",
        copies * entries.len() as u64,
        added as f64 / seconds
    );
    Ok(())
}

/// The template's log entries, in chain order.
async fn template_entries(client: &Client, template: Uuid) -> Result<Vec<LogEntryView>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT l.* FROM immutable_log l JOIN action_events e ON e.log_seq = l.seq
              WHERE e.mission_id = $1 AND e.contract_id IS NOT NULL ORDER BY l.seq",
            &[&template],
        )
        .await?;
    rows.iter().map(LogEntryView::from_row).collect()
}

/// One INSERT … SELECT per table, copying the template's rows once per copy
/// number in `$2..=$3`: every uuid (ids and references alike) maps through
/// the same function of (uuid, run, copy), keys get run and copy appended, and
/// an event's log_seq becomes its entry's place in the copy's new stretch of
/// the chain (`$4` = the head before the batch, `$5` = entries per copy).
async fn copy_statements(client: &Client) -> Result<Vec<CopyStatement>, tokio_postgres::Error> {
    // Copies of one run differ by their number, runs by this.
    let salt = Uuid::new_v4().simple().to_string();
    let mut statements = Vec::new();
    for (table, rows_of_template) in TABLES {
        let columns = client
            .query(
                "SELECT column_name::text AS name, data_type::text AS type, is_identity = 'YES' AS identity
                   FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[table],
            )
            .await?;
        let (mut names, mut values) = (Vec::new(), Vec::new());
        for column in &columns {
            let (name, kind, identity): (String, String, bool) =
                (column.try_get("name")?, column.try_get("type")?, column.try_get("identity")?);
            if identity {
                continue;
            }
            let value = match (*table, name.as_str(), kind.as_str()) {
                (_, _, "uuid") => format!("md5(t.{name}::text || '/{salt}/' || copy)::uuid"),
                (_, "idempotency_key", _) => format!("t.{name} || '#{salt}/' || copy"),
                ("missions", "name", _) => "left(t.name, 180) || ' #' || copy".to_string(),
                ("action_events", "log_seq", _) => {
                    "$4::bigint + (copy - $2::int)::bigint * $5::bigint + r.rank".to_string()
                }
                _ => format!("t.{name}"),
            };
            names.push(name);
            values.push(value);
        }
        let chained = *table == "action_events";
        let ranks = if chained { "LEFT JOIN template_ranks r ON r.seq = t.log_seq" } else { "" };
        let sql = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} t {ranks}, generate_series($2::int, $3::int) AS copy
              WHERE t.{rows_of_template} ORDER BY copy",
            names.join(", "),
            values.join(", "),
        );
        statements.push(CopyStatement { sql, chained });
    }
    Ok(statements)
}

async fn copy_batch(
    tx: &Transaction<'_>,
    template: Uuid,
    entries: &[LogEntryView],
    statements: &[CopyStatement],
    first: i32,
    last: i32,
) -> Result<(), tokio_postgres::Error> {
    let tables: Vec<&str> = std::iter::once("immutable_log").chain(TABLES.iter().map(|(table, _)| *table)).collect();
    let triggers =
        |verb: &str| tables.iter().map(|t| format!("ALTER TABLE {t} {verb} TRIGGER ALL;")).collect::<String>();
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock(hashtext('grace.immutable_log.chain'));
         {}
         CREATE TEMP TABLE IF NOT EXISTS template_ranks (seq bigint PRIMARY KEY, rank bigint NOT NULL) ON COMMIT DROP",
        triggers("DISABLE")
    ))
    .await?;
    let seqs: Vec<i64> = entries.iter().map(|entry| entry.seq).collect();
    tx.execute("INSERT INTO template_ranks SELECT * FROM unnest($1::bigint[]) WITH ORDINALITY", &[&seqs]).await?;
    let (mut seq, mut prev_hash) = match checkpoint::log_head(tx).await? {
        Some(head) => (head.seq, head.entry_hash),
        None => (0, chain::GENESIS_PREV_HASH.to_string()),
    };
    let base = seq;
    let sink = tx.copy_in(&format!("COPY immutable_log ({}) FROM STDIN (FORMAT binary)", chain::COLUMNS)).await?;
    let writer = BinaryCopyInWriter::new(sink, &chain::TYPES);
    pin_mut!(writer);
    let mut hash = [0u8; 64];
    for _ in first..=last {
        for entry in entries {
            seq += 1;
            let fields = EntryFields {
                seq,
                recorded_at: entry.recorded_at,
                actor: &entry.actor,
                action: &entry.action,
                resource: &entry.resource,
                subsystem: &entry.subsystem,
                payload: &entry.payload,
                result: &entry.result,
                prev_hash: &prev_hash,
            };
            let entry_hash = std::str::from_utf8(fields.hash_hex(&mut hash)).expect("hex is ASCII").to_string();
            writer
                .as_mut()
                .write(&[
                    &seq,
                    &entry.recorded_at,
                    &entry.actor,
                    &entry.action,
                    &entry.resource,
                    &entry.subsystem,
                    &entry.payload,
                    &entry.result,
                    &prev_hash,
                    &entry_hash,
                ])
                .await?;
            prev_hash = entry_hash;
        }
    }
    writer.finish().await?;
    let per_copy = entries.len() as i64;
    for statement in statements {
        if statement.chained {
            tx.execute(statement.sql.as_str(), &[&template, &first, &last, &base, &per_copy]).await?;
        } else {
            tx.execute(statement.sql.as_str(), &[&template, &first, &last]).await?;
        }
    }
    // Back as the migrations left them: user triggers on, foreign keys ALWAYS.
    tx.batch_execute(&format!("{} SELECT grace_enforce_foreign_keys_always();", triggers("ENABLE"))).await?;
    Ok(())
}
