//! Building and running one backend server. `Application::build` does the
//! fallible work up front — bootstrap the database, open the pool, load the
//! baselines, bind the port (port 0 picks a free one; tests use that) — so a
//! misconfiguration fails before anything is served. `run_until` then serves
//! until the shutdown token fires, drains in-flight requests, and stops the
//! background tasks, the sequencer last so the log lag ends at zero.

use super::connections::{ConnectionLimits, LimitedListener};
use super::faults::{self, CircuitBreaker, Faults};
use super::mesh::{self, TriggerMesh};
use super::policy::TierPolicy;
use super::routes;
use super::state::AppState;
use super::telemetry::Telemetry;
use super::verification::Baselines;
use super::{sequencer, task_runner};
use crate::configuration::DatabaseUrl;
use crate::configuration::Tokens;
use crate::db::DbError;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything `grace serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub database: DatabaseUrl,
    pub listen: SocketAddr,
    pub tokens: Tokens,
    pub enable_faults: bool,
    pub pool_size: usize,
    pub connections: ConnectionLimits,
    /// The database is a private cluster made for this process: that its
    /// role owns the log is no warning then (no one else ever uses it).
    pub private_database: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Unready(String),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// The pool's size unless one is given: twice this machine's cores, from 4 to
/// 16 — PostgreSQL's rule of thumb (about twice the database server's cores)
/// for the database beside the backend, as the private cluster and a one-host
/// compose stack are. A connection's statements run on one core; connections
/// past what the cores run at once only time-slice inside the database. On 2
/// cores, the mission traffic at 2,500 requests/s in the open model cost
/// PostgreSQL 457–484 µs of CPU per request with 4 connections against 546–550
/// with 16 (scripts/bench-soak, two pairs in turn; docs/design.md).
pub fn default_pool_size() -> u16 {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (cores * 2).clamp(4, 16) as u16
}

/// How long a request waits for a pooled connection, and how long making one
/// may take, before the request fails with 503: bounded, so a database outage
/// turns into fast errors rather than piled-up requests.
const POOL_WAIT: Duration = Duration::from_secs(2);
const CONNECTION_CREATE: Duration = Duration::from_secs(2);
/// Server-side bound on any one statement.
const STATEMENT_TIMEOUT: &str = "-c statement_timeout=8000";

pub struct Application {
    listener: TcpListener,
    connections: ConnectionLimits,
    state: AppState,
    database: DatabaseUrl,
}

/// Every connection holds a file descriptor, and the usual soft limit (1,024)
/// is far below what the kernel lets the process have (the hard limit): a
/// flood of idle sockets would otherwise stop `accept` long before the
/// machine is out of anything. Raised once at start; failure is only logged.
/// Returns the limit the process has then, when it can be read.
fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-files limit");
                Some(hard)
            }
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "could not raise the open-files limit");
                Some(soft)
            }
        },
        Ok((soft, _)) => Some(soft),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the open-files limit");
            None
        }
    }
}

impl Application {
    pub async fn build(settings: ServeSettings) -> Result<Self, StartupError> {
        let open_files = raise_open_files_limit();
        let connections = settings.connections.within_open_files(open_files, settings.pool_size);
        if connections.max < settings.connections.max {
            tracing::warn!(
                "holding at most {} client connections, not {}: the open-files limit is {} (raise it, e.g. \
                 `ulimit -n`, for more)",
                connections.max,
                settings.connections.max,
                open_files.unwrap_or_default()
            );
        }
        let mut client = crate::db::connect(&settings.database).await?;
        let report = crate::bootstrap::bootstrap(&mut client).await?;
        if report.changed_anything() {
            tracing::info!(migrations = ?report.migrations_applied, "bootstrapped the database");
        }
        if !settings.private_database && crate::db::roles::may_rewrite_log(&client).await.unwrap_or(false) {
            tracing::warn!(
                "the backend's database role owns immutable_log (or is a superuser) and could rewrite it; \
                 run it as an application role (grace bootstrap --app-role NAME)"
            );
        }
        let baselines = Baselines::load(&client).await.map_err(|e| StartupError::Unready(e.to_string()))?;
        let policy = TierPolicy::load(&client).await.map_err(|e| StartupError::Unready(e.to_string()))?;
        drop(client);

        let pool = pool(&settings.database, settings.pool_size);
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
        let state = AppState {
            pool,
            tokens: Arc::new(settings.tokens),
            faults: Faults::new(settings.enable_faults),
            breaker: Arc::new(CircuitBreaker::default()),
            mesh: Arc::new(TriggerMesh::default()),
            telemetry: Arc::new(Telemetry::default()),
            baselines: Arc::new(baselines),
            policy: Arc::new(policy),
        };
        Ok(Self { listener, connections, state, database: settings.database })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown`, then stops in order: stop accepting, finish the
    /// requests in flight, stop the mesh and the task runner, drain the outbox.
    pub async fn run_until(self, shutdown: CancellationToken) -> Result<(), StartupError> {
        let background = CancellationToken::new();
        let sequencer_stop = CancellationToken::new();
        let mesh =
            tokio::spawn(mesh::run_bridge(Arc::clone(&self.state.mesh), self.database.clone(), background.clone()));
        let runner = tokio::spawn(task_runner::run(self.state.clone(), background.clone()));
        let faults =
            tokio::spawn(faults::follow(Arc::clone(&self.state.faults), self.database.clone(), background.clone()));
        let sequencer = tokio::spawn(sequencer::run(self.database.clone(), sequencer_stop.clone()));
        tracing::info!(addr = %self.local_addr(), "grace backend listening");

        let listener = LimitedListener::new(self.listener, self.connections);
        let trimmer = tokio::spawn(listener.release_memory_after_floods(background.clone()));
        let served = axum::serve(listener, routes::router(self.state.clone()))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        background.cancel();
        let _ = tokio::join!(mesh, runner, trimmer, faults);
        sequencer_stop.cancel();
        let _ = sequencer.await;
        tracing::info!("grace backend stopped");
        served.map_err(StartupError::Serve)
    }
}

fn pool(database: &DatabaseUrl, size: usize) -> Pool {
    let mut config = database.connect_config().clone();
    config.options(STATEMENT_TIMEOUT);
    config.connect_timeout(CONNECTION_CREATE);
    let manager = Manager::from_config(
        config,
        database.connector(),
        ManagerConfig {
            // Fast: a connection that broke (the database restarted) is detected as
            // closed and replaced on the next checkout.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        // Each connection writes the mission counters into a slot no other
        // live session holds (migration V23): writers never queue on a slot.
        .post_create(Hook::async_fn(|client, _| {
            Box::pin(async move {
                client.batch_execute("SELECT grace_claim_stats_slot()").await.map_err(HookError::Backend)
            })
        }))
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts { wait: Some(POOL_WAIT), create: Some(CONNECTION_CREATE), recycle: Some(CONNECTION_CREATE) })
        .build()
        .expect("a pool with a runtime and timeouts builds")
}
