//! Orphan scans: every row of a table read once, each of its FOREIGN KEYs'
//! references looked up in the table it points at. C1 runs them where
//! Postgres cannot vouch for a key — on a Grace database (`grace verify`) and
//! on the database of any service a workload loads (`grace load
//! --service-database-url`). Which keys to scan is the caller's to decide.

use super::schema::{ForeignKey, LOG};
use tokio_postgres::Client;

/// How many orphans of each key a scan names.
const EXAMPLES: usize = 5;

/// What scanning one table's references found.
pub struct ReferenceScan {
    /// Rows times the keys checked on them.
    pub references: u64,
    pub orphans: u64,
    /// A few orphans of each key, each saying what it refers to.
    pub examples: Vec<String>,
}

impl ReferenceScan {
    /// Several tables' scans as one.
    pub fn total(scans: Vec<ReferenceScan>) -> Self {
        scans.into_iter().fold(Self { references: 0, orphans: 0, examples: Vec::new() }, |mut total, scan| {
            total.references += scan.references;
            total.orphans += scan.orphans;
            total.examples.extend(scan.examples);
            total
        })
    }
}

/// Scans the tables of `keys`, each read once for all its keys (one query,
/// a hash join per referenced table), the largest first, spread over
/// `clients`. `log_head`: the log's chain was proven contiguous from genesis
/// to this seq, so a reference into `1..=log_head` resolves without a join.
pub async fn scan_references(
    clients: &[Client],
    keys: &[&ForeignKey],
    log_head: Option<i64>,
) -> Result<Vec<ReferenceScan>, tokio_postgres::Error> {
    let mut tables: Vec<(&str, Vec<&ForeignKey>)> = Vec::new();
    for fk in keys {
        match tables.iter_mut().find(|(table, _)| *table == fk.table) {
            Some((_, keys)) => keys.push(fk),
            None => tables.push((&fk.table, vec![fk])),
        }
    }
    let names: Vec<&str> = tables.iter().map(|(table, _)| *table).collect();
    let sizes = clients[0]
        .query("SELECT t, pg_total_relation_size(t::regclass) FROM unnest($1::text[]) AS t", &[&names])
        .await?;
    let size = |table: &str| sizes.iter().find(|r| r.get::<_, &str>(0) == table).map_or(0, |r| r.get::<_, i64>(1));
    tables.sort_by_key(|(table, _)| std::cmp::Reverse(size(table)));
    let queue = std::sync::Mutex::new(tables.into_iter());
    let next = || queue.lock().expect("the queue's lock is never held across a panic").next();
    let workers = clients.iter().map(|client| async {
        let mut scans = Vec::new();
        while let Some((table, keys)) = next() {
            scans.push(scan_table(client, table, &keys, log_head).await?);
        }
        Ok::<_, tokio_postgres::Error>(scans)
    });
    let mut scans = Vec::new();
    for part in futures::future::join_all(workers).await {
        scans.extend(part?);
    }
    Ok(scans)
}

/// Reads every row of `table` once, counting for each of `keys` the rows
/// whose reference resolves to nothing; names a few of each key's orphans.
async fn scan_table(
    client: &Client,
    table: &str,
    keys: &[&ForeignKey],
    log_head: Option<i64>,
) -> Result<ReferenceScan, tokio_postgres::Error> {
    let (mut counts, mut joins) = (Vec::new(), Vec::new());
    for (n, fk) in keys.iter().enumerate() {
        counts.push(format!("count(*) FILTER (WHERE {}) AS orphans{n}", orphan_condition(fk, n, log_head)));
        if !(fk.references == LOG && log_head.is_some()) {
            joins.push(format!("LEFT JOIN {} r{n} ON r{n}.{} = t.{}", fk.references, fk.referenced_column, fk.column));
        }
    }
    // A hash join needs its referenced keys in memory to stay one pass
    // (2.2 s for action_events' four keys at 1M contracts, 5.8 s spilling).
    client.batch_execute("BEGIN READ ONLY; SET LOCAL work_mem = '256MB'").await?;
    let row = client
        .query_one(&format!("SELECT count(*) AS rows, {} FROM {table} t {}", counts.join(", "), joins.join(" ")), &[])
        .await;
    client.batch_execute(if row.is_ok() { "COMMIT" } else { "ROLLBACK" }).await?;
    let row = row?;
    let rows = row.try_get::<_, i64>("rows")? as u64;
    let mut scan = ReferenceScan { references: rows * keys.len() as u64, orphans: 0, examples: Vec::new() };
    for (n, fk) in keys.iter().enumerate() {
        let orphans = row.try_get::<_, i64>(format!("orphans{n}").as_str())? as u64;
        if orphans == 0 {
            continue;
        }
        scan.orphans += orphans;
        let examples = client
            .query(
                &format!(
                    "SELECT DISTINCT t.{column}::text FROM {table} t
                      WHERE t.{column} IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM {referenced} r WHERE r.{key} = t.{column})
                      LIMIT {EXAMPLES}",
                    column = fk.column,
                    referenced = fk.references,
                    key = fk.referenced_column,
                ),
                &[],
            )
            .await?;
        for value in examples {
            let value: String = value.try_get(0)?;
            scan.examples.push(format!("{}.{} = {value} refers to no row of {}", fk.table, fk.column, fk.references));
        }
    }
    Ok(scan)
}

/// The condition under which the `n`th key's reference of a row is an
/// orphan: not null and joined to nothing — or, for the log when its chain is
/// proven from genesis to `log_head`, outside 1..=head and not appended since.
fn orphan_condition(fk: &ForeignKey, n: usize, log_head: Option<i64>) -> String {
    let column = &fk.column;
    match log_head {
        Some(head) if fk.references == LOG => format!(
            "t.{column} IS NOT NULL AND (t.{column} < 1 OR t.{column} > {head}
               AND NOT EXISTS (SELECT 1 FROM {LOG} r WHERE r.seq = t.{column}))"
        ),
        _ => format!("t.{column} IS NOT NULL AND r{n}.{} IS NULL", fk.referenced_column),
    }
}
