//! A workload's proofs on the service's own database (`grace load
//! --service-database-url`): for each kind of write the workload names, the
//! run's stored keys are read where the workload says they are (a table's key
//! column, or a query) and judged against the outcomes the workers uploaded
//! — C7 with the outcome model, per kind, then over all of them; and C1 on
//! that database's FOREIGN KEYs, those Postgres cannot vouch for scanned row
//! by row.
//!
//! The two databases may be different servers, so the keys are streamed from
//! the service into a temporary table of the control plane and judged there
//! by the same query as the Grace backend's own writes: nothing is held in
//! memory, however many keys a run wrote.

use super::acked_writes::{self, AckedWritesCheck, Stored};
use super::connection::ControlPlane;
use super::ControlError;
use crate::configuration::DatabaseUrl;
use crate::db::schema::{self, ForeignKey};
use crate::db::{self, references};
use futures::TryStreamExt;
use grace_loadtests::workload::{ProofSpec, StoredKeys};
use serde::{Deserialize, Serialize};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Client;
use uuid::Uuid;

/// One kind of write, judged where the workload says it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteProof {
    pub name: String,
    #[serde(flatten)]
    pub check: AckedWritesCheck,
}

/// C1 on a service's database: its FOREIGN KEYs, from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceOrphans {
    /// Single-column FOREIGN KEYs in the service's schemas.
    pub foreign_keys: u64,
    /// Of those, the ones Postgres enforces in every session (validated,
    /// triggers ALWAYS): no orphan can exist, nothing to read.
    pub enforced: u64,
    /// The others, whose tables were read row by row.
    pub scanned: u64,
    /// Rows times keys looked up.
    pub references: u64,
    pub orphans: u64,
    /// FOREIGN KEYs over several columns: not checked.
    pub multi_column: u64,
    pub examples: Vec<String>,
    pub passed: bool,
}

impl std::fmt::Display for ServiceOrphans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} foreign keys: {} enforced by Postgres in every session, {} scanned ({} references): {} orphans",
            self.foreign_keys, self.enforced, self.scanned, self.references, self.orphans
        )?;
        if self.multi_column > 0 {
            write!(f, "; {} over several columns not checked", self.multi_column)?;
        }
        for example in &self.examples {
            write!(f, "\n    {example}")?;
        }
        Ok(())
    }
}

/// What a run's writes were proven against.
pub struct Proven {
    /// C7 over every write of the run.
    pub acked_writes: AckedWritesCheck,
    /// C7 per kind, when a workload named where each is stored.
    pub proofs: Vec<WriteProof>,
    /// C1 on the service's database, for a service other than a Grace backend.
    pub orphans: Option<ServiceOrphans>,
}

impl Proven {
    /// C7 on the Grace backend's own tables.
    pub fn bundled(acked_writes: AckedWritesCheck) -> Self {
        Self { acked_writes, proofs: Vec::new(), orphans: None }
    }
}

/// Connects to the service's database and prepares each proof's query, so a
/// proof that cannot be read (a table or column that does not exist, SQL
/// that does not parse) is named before any load.
pub async fn prepare(database: &DatabaseUrl, proofs: &[ProofSpec]) -> Result<(), ControlError> {
    let service = connect(database).await?;
    for proof in proofs {
        service.prepare_typed(&stored_keys_query(proof), &[Type::TEXT]).await.map_err(|e| {
            ControlError::Configuration(format!(
                "proof {:?} cannot be read from the service's database: {}",
                proof.name,
                db_message(&e)
            ))
        })?;
    }
    Ok(())
}

/// Proves each of `proofs` for run `run_id`, C7 over all of them, and C1
/// on the service's database when `orphans`.
pub async fn prove(
    plane: &ControlPlane,
    database: &DatabaseUrl,
    run_id: Uuid,
    proofs: &[ProofSpec],
    orphans: bool,
) -> Result<Proven, ControlError> {
    let service = &connect(database).await?;
    let prefix = &format!("{run_id}/");
    let mut checks = Vec::new();
    for proof in proofs {
        let check = plane
            .run_alone("a proof of the run's writes", |control| async move {
                prove_one(&control, service, prefix, run_id, proof).await
            })
            .await?;
        checks.push(WriteProof { name: proof.name.clone(), check });
    }
    let (counted, counted_digest) =
        plane.run("the writes the workers counted", |c| async move { acked_writes::counted(&c, run_id).await }).await?;
    let mut acked_writes = AckedWritesCheck::sum(checks.iter().map(|p| &p.check));
    // Every write names a proof, so the proofs' keys are all the workers counted.
    acked_writes.passed &= acked_writes.acknowledged == counted && acked_writes.acknowledged_digest == counted_digest;
    let orphans = match orphans {
        true => Some(service_orphans(service).await?),
        false => None,
    };
    Ok(Proven { acked_writes, proofs: checks, orphans })
}

/// Copies `proof`'s stored keys of the run (those starting `prefix`) into a
/// temporary table of `control` (a connection of its own: the table goes
/// with it), then judges them.
async fn prove_one(
    control: &Client,
    service: &Client,
    prefix: &str,
    run_id: Uuid,
    proof: &ProofSpec,
) -> Result<AckedWritesCheck, ControlError> {
    control.batch_execute("CREATE TEMP TABLE stored_keys (key text)").await?;
    let sink = control.copy_in("COPY pg_temp.stored_keys (key) FROM STDIN (FORMAT binary)").await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT]);
    futures::pin_mut!(writer);
    let rows = service.query_raw(stored_keys_query(proof).as_str(), [prefix]).await.map_err(service_failed)?;
    futures::pin_mut!(rows);
    while let Some(row) = rows.try_next().await.map_err(service_failed)? {
        if let Some(key) = row.try_get::<_, Option<String>>(0).map_err(service_failed)? {
            writer.as_mut().write(&[&key]).await?;
        }
    }
    writer.finish().await?;
    // The judging query's joins are planned on the table's real size.
    control.batch_execute("ANALYZE pg_temp.stored_keys").await?;
    acked_writes::judge(control, run_id, Stored::Copied { proof: &proof.name }).await
}

/// A proof's stored keys of the run whose key prefix is `$1`, as text.
fn stored_keys_query(proof: &ProofSpec) -> String {
    match &proof.stored {
        StoredKeys::Table { table, column } => {
            format!("SELECT {column}::text FROM {table} WHERE starts_with({column}::text, $1)")
        }
        StoredKeys::Query(query) => {
            format!("SELECT stored.key::text FROM ({}) AS stored (key)", query.trim().trim_end_matches(';'))
        }
    }
}

/// C1 on the service's database: the FOREIGN KEYs Postgres enforces in
/// every session are proven by the catalog; every other one is scanned.
async fn service_orphans(service: &Client) -> Result<ServiceOrphans, ControlError> {
    let keys = schema::service_foreign_keys(service).await.map_err(service_failed)?;
    let scanned: Vec<&ForeignKey> = keys.unenforced.iter().collect();
    let scans =
        references::scan_references(std::slice::from_ref(service), &scanned, None).await.map_err(service_failed)?;
    let references::ReferenceScan { references, orphans, mut examples } = references::ReferenceScan::total(scans);
    examples.truncate(acked_writes::SAMPLE as usize);
    Ok(ServiceOrphans {
        foreign_keys: keys.single_column.len() as u64,
        enforced: (keys.single_column.len() - keys.unenforced.len()) as u64,
        scanned: scanned.len() as u64,
        references,
        orphans,
        multi_column: keys.multi_column,
        examples,
        passed: orphans == 0,
    })
}

async fn connect(database: &DatabaseUrl) -> Result<Client, ControlError> {
    db::connect(database).await.map_err(|e| ControlError::ServiceDatabase(e.to_string()))
}

/// A failure reading the service's database: not the control plane's, so
/// not an outage of it to wait out.
fn service_failed(e: tokio_postgres::Error) -> ControlError {
    ControlError::ServiceDatabase(db_message(&e))
}

/// What PostgreSQL said, without the driver's wrapping.
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => db::innermost_cause(e),
    }
}
