//! The control plane as one coordinator or worker reaches it, through database
//! restarts. A load run should outlive a restart or a failover of the database
//! it is coordinated through — the run is what is being measured, and the
//! acknowledged-writes verdict (C7) matters most exactly then. So every
//! control-plane statement runs through [`ControlPlane::run`] (or
//! [`ControlPlane::run_alone`] for a transaction): when the connection is lost
//! it reconnects with backoff and runs the statement again, for up to
//! [`OUTAGE_PATIENCE`]. The statements are written so that running one twice —
//! its first answer lost with the connection — changes nothing more.
//!
//! Each window in which the control plane could not be reached is kept, so
//! that a run's verdict names it.

use super::ControlError;
use crate::configuration::DatabaseUrl;
use crate::db::{self, DbError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// How long the control plane may stay unreachable before the work that needs
/// it gives up (a restart takes seconds; a managed failover up to a minute).
pub const OUTAGE_PATIENCE: Duration = Duration::from_secs(60);
/// The first wait before reconnecting; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A window in which the control plane could not be reached, from the first
/// statement that failed to the first that succeeded again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Outage {
    pub fn seconds(&self) -> f64 {
        (self.to - self.from).num_milliseconds() as f64 / 1000.0
    }
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}–{} UTC ({:.1} s)",
            self.from.format("%H:%M:%S%.3f"),
            self.to.format("%H:%M:%S%.3f"),
            self.seconds()
        )
    }
}

/// One process's way to the control plane: a shared connection, opened again
/// when it is lost, and the outages seen so far.
pub struct ControlPlane {
    database: DatabaseUrl,
    /// Locked only to replace a lost connection, so one reconnect serves all.
    client: tokio::sync::Mutex<Arc<Client>>,
    outages: Mutex<Vec<Outage>>,
    /// What giving up means for this process, for the error that says so.
    consequence: &'static str,
}

/// True when `error` means the control plane could not be reached (now),
/// rather than that the work itself failed.
fn unreachable(error: &ControlError) -> bool {
    match error {
        ControlError::Database(DbError::Unreachable { .. }) => true,
        ControlError::Database(DbError::Query { source, .. }) => db::connection_lost(source),
        _ => false,
    }
}

impl ControlPlane {
    /// Connects once: a control plane that cannot be reached at the start is
    /// a configuration error, not an outage to wait out.
    pub async fn connect(database: &DatabaseUrl, consequence: &'static str) -> Result<Self, ControlError> {
        let client = db::connect(database).await?;
        Ok(Self {
            database: database.clone(),
            client: tokio::sync::Mutex::new(Arc::new(client)),
            outages: Mutex::new(Vec::new()),
            consequence,
        })
    }

    pub fn database(&self) -> &DatabaseUrl {
        &self.database
    }

    /// The windows in which this process could not reach the control plane,
    /// in order, overlapping ones joined.
    pub fn outages(&self) -> Vec<Outage> {
        self.outages.lock().expect("outages are never poisoned").clone()
    }

    /// Runs `statement` on the shared connection; after a lost connection, on
    /// a new one. `statement` must be safe to run again.
    pub async fn run<T, E, Fut>(
        &self,
        what: &'static str,
        statement: impl FnMut(Arc<Client>) -> Fut,
    ) -> Result<T, ControlError>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Into<ControlError>,
    {
        self.persist(what, move || self.connection(), statement).await
    }

    /// Runs `work` on a connection of its own (a transaction needs its client
    /// exclusively), made anew for each attempt. `work` must be safe to run again.
    pub async fn run_alone<T, E, Fut>(
        &self,
        what: &'static str,
        work: impl FnMut(Client) -> Fut,
    ) -> Result<T, ControlError>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Into<ControlError>,
    {
        self.persist(what, move || db::connect(&self.database), work).await
    }

    /// Connects with `connect` and runs `work` on what it gives, again and
    /// again, until `work` succeeds, fails for good (an error that is not the
    /// control plane being unreachable), or the control plane has been
    /// unreachable for `OUTAGE_PATIENCE`. An outage that ends is recorded.
    async fn persist<C, CFut, T, E, Fut>(
        &self,
        what: &'static str,
        mut connect: impl FnMut() -> CFut,
        mut work: impl FnMut(C) -> Fut,
    ) -> Result<T, ControlError>
    where
        CFut: Future<Output = Result<C, DbError>>,
        Fut: Future<Output = Result<T, E>>,
        E: Into<ControlError>,
    {
        let mut lost_since: Option<(Instant, DateTime<Utc>)> = None;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let outcome = match connect().await {
                Ok(connection) => work(connection).await.map_err(Into::into),
                Err(e) => Err(e.into()),
            };
            let error = match outcome {
                Ok(value) => {
                    if let Some((_, from)) = lost_since {
                        self.record(Outage { from, to: Utc::now() });
                    }
                    return Ok(value);
                }
                Err(ControlError::Database(DbError::Query { source, .. })) if !db::connection_lost(&source) => {
                    return Err(ControlError::Database(DbError::Query { during: what, source }))
                }
                Err(e) if !unreachable(&e) => return Err(e),
                Err(e) => e,
            };
            let (since, _) = *lost_since.get_or_insert_with(|| {
                tracing::warn!(
                    "the control plane is unreachable ({error}) during {what}; reconnecting for up to {}s",
                    OUTAGE_PATIENCE.as_secs()
                );
                (Instant::now(), Utc::now())
            });
            if since.elapsed() >= OUTAGE_PATIENCE {
                return Err(ControlError::ControlPlaneLost {
                    what,
                    waited: OUTAGE_PATIENCE,
                    consequence: self.consequence,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The shared connection, opened again if it was lost.
    async fn connection(&self) -> Result<Arc<Client>, DbError> {
        let mut current = self.client.lock().await;
        if current.is_closed() {
            *current = Arc::new(db::connect(&self.database).await?);
            tracing::info!("reconnected to the control plane");
        }
        Ok(Arc::clone(&current))
    }

    /// Keeps `outage`, joined with any it overlaps (several tasks of one
    /// process notice the same outage at different moments).
    fn record(&self, outage: Outage) {
        let mut outages = self.outages.lock().expect("outages are never poisoned");
        outages.push(outage);
        *outages = join_overlapping(std::mem::take(&mut *outages));
    }
}

/// `outages` in order, each set of overlapping ones joined into one.
pub fn join_overlapping(mut outages: Vec<Outage>) -> Vec<Outage> {
    outages.sort_by_key(|o| o.from);
    let mut joined: Vec<Outage> = Vec::with_capacity(outages.len());
    for outage in outages {
        match joined.last_mut() {
            Some(last) if outage.from <= last.to => last.to = last.to.max(outage.to),
            _ => joined.push(outage),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    #[test]
    fn overlapping_outages_are_one_window_and_apart_ones_stay_apart() {
        let outage = |from, to| Outage { from: at(from), to: at(to) };
        let joined = join_overlapping(vec![outage(10, 12), outage(3, 5), outage(4, 8), outage(11, 11)]);
        assert_eq!(joined, [outage(3, 8), outage(10, 12)]);
        assert_eq!(joined[0].seconds(), 5.0);
        assert_eq!(joined[0].to_string(), "08:00:03.000–08:00:08.000 UTC (5.0 s)");
    }
}
