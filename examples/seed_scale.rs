//! Seeds a Grace database at staging size for the scale benchmarks
//! (`scripts/seed-scale`, `scripts/bench-verify`): it copies the action
//! pipeline's work on a mission the real backend wrote — its contracts,
//! resources, snapshots, benchmarks, approvals, their events and the
//! mission's counters — as many times as it takes to add `--contracts`
//! contracts, each copy a mission of its own, and extends the log chain with a
//! copy of each copied event's entry, hashed here under the canonical encoding.
//!
//! It writes like a bulk loader, not like the backend: one batch at a time, as
//! a superuser with the tables' triggers off until the batch is in (so the
//! chain trigger and the foreign-key checks stay out of the way; the same
//! transaction turns them back on as the migrations left them). A batch is two
//! transactions run side by side on two connections, so that PostgreSQL works
//! on both cores: the log's entries (holding the chain's lock) and the rows
//! that point at them; the log's commits first. A load at least as big as the
//! database builds the secondary indexes once at the end ([`defer_indexes`])
//! and refreshes the tables' statistics, both connections sharing the work
//! ([`on_both`]).
//! Every copy is consistent by construction: ids are mapped with one
//! deterministic function, so every reference lands on its copied row, and the
//! copied counters equal the copied rows (the template's own chat, tasks and
//! other events are not copied, and not counted). The first verification
//! afterwards (a proof from genesis) re-checks all of it.

use clap::Parser;
use futures::pin_mut;
use grace::api::log::LogEntryView;
use grace::configuration::DatabaseUrl;
use grace::db::rows::FromRow;
use grace::immutable_log::chain;
use grace::immutable_log::checkpoint::{self, ChainHead};
use grace::immutable_log::{self, ChainLinker, LogEntry};
use std::sync::Mutex;
use std::time::Instant;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement, Transaction};
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

/// The tables copied with the template mission: which of their rows belong to
/// it (`TEMPLATE` stands for its id), and what else a copy needs of each row.
const TABLES: &[(&str, &str, &str)] = &[
    ("missions", "id = TEMPLATE", ""),
    ("managed_resources", "mission_id = TEMPLATE", ""),
    ("action_contracts", "mission_id = TEMPLATE", ""),
    ("safe_hold_snapshots", "contract_id IN (SELECT id FROM action_contracts WHERE mission_id = TEMPLATE)", ""),
    ("benchmark_runs", "contract_id IN (SELECT id FROM action_contracts WHERE mission_id = TEMPLATE)", ""),
    ("approval_requests", "contract_id IN (SELECT id FROM action_contracts WHERE mission_id = TEMPLATE)", ""),
    // Its place in the template's stretch of the chain.
    (
        "action_events",
        "mission_id = TEMPLATE AND t.contract_id IS NOT NULL",
        ", CASE WHEN t.log_seq IS NOT NULL THEN (SELECT count(*) FROM action_events e
                WHERE e.mission_id = TEMPLATE AND e.contract_id IS NOT NULL AND e.log_seq <= t.log_seq) END AS rank",
    ),
    // A copy's events are the contracts' alone: counted once, in the first slot.
    (
        "mission_stats",
        "mission_id = TEMPLATE",
        ", CASE WHEN t.slot = min(t.slot) OVER () THEN (SELECT count(*) FROM action_events e
                WHERE e.mission_id = TEMPLATE AND e.contract_id IS NOT NULL) ELSE 0 END AS contract_events",
    ),
    ("mission_confidence_minutes", "mission_id = TEMPLATE", ""),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let url = DatabaseUrl::parse(&args.database_url)?;
    let mut relations = grace::db::connect(&url).await?;
    let mut log = grace::db::connect(&url).await?;
    // The copying statements' row estimates are far off (a template times a
    // series), which would have them JIT-compiled and their sorts spilled;
    // both connections build indexes at the end.
    for client in [&relations, &log] {
        client.batch_execute("SET jit = off; SET work_mem = '256MB'; SET maintenance_work_mem = '1GB'").await?;
    }
    let template = match args.template {
        Some(id) => id,
        None => relations
            .query_one(
                "SELECT c.mission_id FROM action_contracts c JOIN missions m ON m.id = c.mission_id
              WHERE m.name !~ ' #[0-9]+$' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
                &[],
            )
            .await?
            .try_get("mission_id")?,
    };
    let per_copy: i64 = relations
        .query_one("SELECT count(*) FROM action_contracts WHERE mission_id = $1", &[&template])
        .await?
        .try_get(0)?;
    if per_copy == 0 {
        return Err(format!("mission {template} has no contracts to copy").into());
    }
    let entries = template_entries(&relations, template).await?;
    let mut statements = Vec::new();
    for sql in copy_statements(&relations, template).await? {
        statements.push(relations.prepare(&sql).await?);
    }
    let copies = args.contracts.div_ceil(per_copy as u64);
    let per_batch = (args.batch / per_copy as u64).max(1);
    let started = Instant::now();
    let existing: i64 = relations.query_one("SELECT count(*) FROM action_contracts", &[]).await?.try_get(0)?;
    let big = args.contracts >= existing as u64;
    let deferred = if big { defer_indexes(&relations).await? } else { Vec::new() };
    let mut copied = Ok(());
    let mut copy = 1u64;
    while copy <= copies && copied.is_ok() {
        let last = (copy + per_batch - 1).min(copies);
        copied = copy_batch(&mut relations, &mut log, &entries, &statements, copy as i32, last as i32).await;
        copy = last + 1;
    }
    // Back even when a batch failed: the committed batches stay, consistent.
    on_both([&relations, &log], deferred).await?;
    copied?;
    // A big load changes the tables' statistics; a small one leaves them to autovacuum.
    if big {
        on_both([&relations, &log], largest_first(&relations, "ANALYZE").await?).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let added = copies * per_copy as u64;
    println!(
        "seeded {added} contracts ({copies} copies of mission {template}, {} log entries) in {seconds:.1}s: {:.0} contracts/s",
        copies * entries.len() as u64,
        added as f64 / seconds
    );
    Ok(())
}

/// Runs `statements` on both connections at once, each taking the next one
/// as soon as it is free: the steps after the batches (building indexes,
/// statistics) are one statement per index or table, so two connections keep
/// both cores busy where one left the other idle.
async fn on_both(clients: [&Client; 2], statements: Vec<String>) -> Result<(), tokio_postgres::Error> {
    let queue = Mutex::new(statements.into_iter());
    tokio::try_join!(drain(clients[0], &queue), drain(clients[1], &queue))?;
    Ok(())
}

/// Runs the statements it takes from `queue` until none is left.
async fn drain(client: &Client, queue: &Mutex<std::vec::IntoIter<String>>) -> Result<(), tokio_postgres::Error> {
    loop {
        let next = queue.lock().expect("nothing panics while holding the queue").next();
        let Some(statement) = next else { return Ok(()) };
        client.batch_execute(&statement).await?;
    }
}

/// `verb` followed by each copied table, the largest first (so that the
/// longest statement does not start last).
async fn largest_first(client: &Client, verb: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let tables: Vec<&str> = copied_tables().collect();
    let rows = client
        .query(
            "SELECT format('%s %s', $2::text, t) FROM unnest($1::text[]) AS t
              ORDER BY pg_total_relation_size(t::regclass) DESC",
            &[&tables, &verb],
        )
        .await?;
    rows.iter().map(|row| row.try_get(0)).collect()
}

/// Drops the indexes of the copied tables that no FOREIGN KEY leans on (the
/// secondary ones, and the UNIQUE constraints nothing references) and returns
/// the statements that build them again, those of the largest tables first.
/// For a load at least as big as what the database holds, building an index
/// once from sorted rows is several times cheaper than inserting every row
/// into it — what `pg_restore` does too; re-adding a UNIQUE constraint
/// re-checks it over every row.
async fn defer_indexes(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let tables: Vec<&str> = copied_tables().collect();
    let rows = client
        .query(
            "SELECT drop, build FROM (
             SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop,
                    format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) AS build,
                    c.conrelid AS tab
               FROM pg_constraint c
              WHERE c.contype = 'u' AND c.conrelid = ANY($1::text[]::regclass[])
                AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid)
             UNION ALL
             SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid), i.indrelid
               FROM pg_index i
              WHERE i.indrelid = ANY($1::text[]::regclass[])
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
             ) deferred ORDER BY pg_total_relation_size(tab) DESC",
            &[&tables],
        )
        .await?;
    let mut restore = Vec::new();
    for row in rows {
        client.batch_execute(row.try_get(0)?).await?;
        restore.push(row.try_get(1)?);
    }
    Ok(restore)
}

/// The chain's table, written on a connection of its own.
const LOG: &str = "immutable_log";

/// The tables copied from the template, written beside the log.
fn template_tables() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|(table, _, _)| *table)
}

/// Every table a batch writes: the log and the template's tables.
fn copied_tables() -> impl Iterator<Item = &'static str> {
    std::iter::once(LOG).chain(template_tables())
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

/// For each table, a temporary copy of the template's rows (read once, not
/// once per batch) and the INSERT … SELECT that writes them once per copy
/// number in `$1..=$2`. Every uuid (ids and references alike) maps through
/// the same function of (uuid, run, copy): the copy's number in hex, then the
/// rest of an md5 of the uuid and the run, computed once per template row.
/// Keys get run and copy appended, and an event's log_seq becomes its entry's
/// place in the copy's new stretch of the chain (`$3` = the head before the
/// batch, `$4` = entries per copy). Ids that start with the copy number land
/// next to each other in their indexes, as the rows of one batch are written
/// together; random ones would touch a page of every index per row.
async fn copy_statements(client: &Client, template: Uuid) -> Result<Vec<String>, tokio_postgres::Error> {
    // Copies of one run differ by their number, runs by this.
    let salt = Uuid::new_v4().simple().to_string();
    let mut statements = Vec::new();
    for (table, rows_of_template, extra) in TABLES {
        let columns = client
            .query(
                "SELECT column_name::text AS name, data_type::text AS type, is_identity = 'YES' AS identity
                   FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[table],
            )
            .await?;
        // Rows of a copy are written in the template's order of the first
        // column (an event's id, the order C2 reads a contract's events in).
        let first: String = columns[0].try_get("name")?;
        let (mut names, mut values, mut tails) = (Vec::new(), Vec::new(), String::new());
        for column in &columns {
            let (name, kind, identity): (String, String, bool) =
                (column.try_get("name")?, column.try_get("type")?, column.try_get("identity")?);
            if identity {
                continue;
            }
            let value = match (*table, name.as_str(), kind.as_str()) {
                (_, _, "uuid") => {
                    tails.push_str(&format!(", substr(md5(t.{name}::text || '/{salt}'), 9) AS {name}_tail"));
                    format!("(c.prefix || t.{name}_tail)::uuid")
                }
                (_, "idempotency_key", _) => format!("t.{name} || '#{salt}/' || c.copy"),
                ("missions", "name", _) => "left(t.name, 180) || ' #' || c.copy".to_string(),
                ("action_events", "log_seq", _) => {
                    "$3::bigint + (c.copy - $1::int)::bigint * $4::bigint + t.rank".into()
                }
                ("mission_stats", "chat_messages" | "tasks", _) => "0".to_string(),
                ("mission_stats", "events", _) => "t.contract_events".to_string(),
                _ => format!("t.{name}"),
            };
            names.push(name);
            values.push(value);
        }
        let rows = rows_of_template.replace("TEMPLATE", &format!("'{template}'::uuid"));
        let extra = extra.replace("TEMPLATE", &format!("'{template}'::uuid"));
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE template_{table} AS SELECT t.*{tails}{extra} FROM {table} t WHERE t.{rows}"
            ))
            .await?;
        statements.push(format!(
            "INSERT INTO {table} ({}) SELECT {}
               FROM (SELECT copy, lpad(to_hex(copy), 8, '0') AS prefix FROM generate_series($1::int, $2::int) AS copy) c,
                    template_{table} t
              ORDER BY c.copy, t.{first}",
            names.join(", "),
            values.join(", "),
        ));
    }
    Ok(statements)
}

/// Copies the template `first..=last` times: the log's entries on one
/// connection, the rows that point at them on the other, at the same time.
async fn copy_batch(
    relations: &mut Client,
    log: &mut Client,
    entries: &[LogEntryView],
    statements: &[Statement],
    first: i32,
    last: i32,
) -> Result<(), tokio_postgres::Error> {
    let triggers = |tables: &[&str], verb: &str| {
        tables.iter().map(|t| format!("ALTER TABLE {t} {verb} TRIGGER ALL;")).collect::<String>()
    };
    let others: Vec<&str> = template_tables().collect();
    let log_tx = log.transaction().await?;
    log_tx.batch_execute(&format!("{}; {}", immutable_log::CHAIN_LOCK, triggers(&[LOG], "DISABLE"))).await?;
    let head = checkpoint::log_head(&log_tx).await?;
    let base = head.as_ref().map_or(0, |head| head.seq);
    let relations_tx = relations.transaction().await?;
    relations_tx.batch_execute(&triggers(&others, "DISABLE")).await?;
    let per_copy = entries.len() as i64;
    let params: [&(dyn ToSql + Sync); 4] = [&first, &last, &base, &per_copy];
    let insert_rows = async {
        for statement in statements {
            relations_tx.execute(statement, &params[..statement.params().len()]).await?;
        }
        Ok(())
    };
    tokio::try_join!(append_entries(&log_tx, entries, head, last - first + 1), insert_rows)?;
    // Back as the migrations left them: user triggers on, foreign keys and the
    // log's guards ALWAYS (each connection sees, and so restores, only its own
    // tables' triggers).
    let restore =
        |tables: &[&str]| format!("{} SELECT grace_enforce_foreign_keys_always();", triggers(tables, "ENABLE"));
    log_tx.batch_execute(&format!("{} SELECT grace_enforce_log_guards_always();", restore(&[LOG]))).await?;
    relations_tx.batch_execute(&restore(&others)).await?;
    log_tx.commit().await?;
    relations_tx.commit().await
}

/// Appends `copies` copies of the template's entries after `head`, each
/// chained to the one before it.
async fn append_entries(
    tx: &Transaction<'_>,
    entries: &[LogEntryView],
    head: Option<ChainHead>,
    copies: i32,
) -> Result<(), tokio_postgres::Error> {
    let mut linker = ChainLinker::after(head);
    let sink = tx.copy_in(&format!("COPY immutable_log ({}) FROM STDIN (FORMAT binary)", chain::COLUMNS)).await?;
    let writer = BinaryCopyInWriter::new(sink, &chain::TYPES);
    pin_mut!(writer);
    for _ in 0..copies {
        for entry in entries {
            let content = LogEntry {
                actor: &entry.actor,
                action: &entry.action,
                resource: &entry.resource,
                subsystem: &entry.subsystem,
                payload: &entry.payload,
                result: &entry.result,
            };
            let link = linker.link(&content, entry.recorded_at.timestamp_micros());
            writer
                .as_mut()
                .write(&[
                    &link.seq,
                    &entry.recorded_at,
                    &entry.actor,
                    &entry.action,
                    &entry.resource,
                    &entry.subsystem,
                    &entry.payload,
                    &entry.result,
                    &link.prev_hash,
                    &link.entry_hash,
                ])
                .await?;
        }
    }
    writer.finish().await?;
    Ok(())
}
