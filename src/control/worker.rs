//! `grace worker`: one load generator of a distributed run. It registers in
//! the control plane (host, pid, capacity), heartbeats every second, waits for
//! a share of a run (NOTIFY, and a look every second in case one was missed),
//! starts it at the announced moment on the database clock, and uploads what
//! it saw: goose's metrics and HTML report, its latency histograms, and its
//! acknowledged write keys (as a count, a digest and the keys themselves).
//! A run the coordinator stops early (Ctrl-C in `grace load`) is heard of on
//! the next heartbeat: the share's load ends and what it measured is uploaded
//! all the same; so does this worker's own Ctrl-C, before it stops.
//!
//! The coordinator decides everything else; a worker only ever touches its
//! own rows, so any number of them can come and go.

use super::clock::{self, ClockOffset};
use super::connection::ControlPlane;
use super::metrics::{self, LatestShare};
use super::progress::{self, Reading, Sample, Sinks};
use super::share::{self, Share, ShareOutcome};
use super::status::{RunStatus, ShareStatus, WorkerStatus};
use super::{check_backend, upload_allowance, ControlError, RunConfig, HEARTBEAT, RUNS_CHANNEL, UPLOADS_CHANNEL};
use crate::client::BackendClient;
use crate::configuration::{BackendUrl, DatabaseUrl, Tokens};
use crate::db::rows::FromRow;
use crate::db::Listener;
use crate::specification::Role;
use grace_loadtests::{key_digest, LoadTarget, Recorder, WriteOutcome};
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

/// How a worker is set up.
pub struct WorkerSettings {
    pub database: DatabaseUrl,
    /// The backend as this worker reaches it; the run's own URL when `None`.
    pub backend: Option<BackendUrl>,
    /// An operator token of the backend.
    pub token: SecretString,
    /// The most users this worker takes.
    pub capacity: u32,
    /// Stop after one run.
    pub once: bool,
    /// Where goose's HTML reports are written, one per run.
    pub out: Option<PathBuf>,
    /// Show live progress of each share on stderr (a `grace worker`; not the
    /// coordinator's in-process worker, whose coordinator shows the run's).
    pub progress: bool,
    /// Serve this worker's own metrics for Prometheus here.
    pub metrics_listen: Option<SocketAddr>,
}

/// What a worker is doing, as its heartbeat reports it.
#[derive(Clone)]
enum Activity {
    Idle,
    /// Running a share of `run`, recording into `recorder`, until `stop`.
    Running {
        run: Uuid,
        recorder: Arc<Recorder>,
        stop: CancellationToken,
    },
}

impl Activity {
    fn status(&self) -> WorkerStatus {
        match self {
            Self::Idle => WorkerStatus::Idle,
            Self::Running { .. } => WorkerStatus::Running,
        }
    }
}

/// A worker as the control plane knows it.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    pub id: Uuid,
    pub host: String,
    pub pid: u32,
}

impl FromRow for WorkerIdentity {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self { id: row.try_get("id")?, host: row.try_get("host")?, pid: row.try_get::<_, i32>("pid")? as u32 })
    }
}

impl std::fmt::Display for WorkerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.host, self.pid)
    }
}

/// A share of a run this worker was given.
struct Assignment {
    run_id: Uuid,
    config: RunConfig,
    users: u32,
    /// Where its users start in the run's order of users.
    first_user: u32,
    /// How long until the announced start, by the database clock.
    starts_in: Duration,
    /// The coordinator has stopped the run already.
    stopping: bool,
}

/// What a worker's giving up on the control plane means.
const GIVEN_UP: &str = "this worker gives up, and the coordinator counts it lost";

/// A registered worker, heartbeating until dropped.
pub struct Worker {
    pub identity: WorkerIdentity,
    settings: WorkerSettings,
    plane: Arc<ControlPlane>,
    activity: watch::Sender<Activity>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// What `/metrics` shows, when served; it stops with the worker.
    latest: LatestShare,
    /// How far this worker's clock is from the database's (`clock`).
    clock: ClockOffset,
    _metrics: Option<DropGuard>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Worker {
    /// Checks the backend this worker names, if any, then registers: with an
    /// operator token, as a Grace backend (healthy, the token an operator's);
    /// without one — a worker for any service — only that it answers.
    pub async fn register(settings: WorkerSettings) -> Result<Self, ControlError> {
        if let Some(backend) = &settings.backend {
            let client = BackendClient::new(backend.clone(), Tokens::default().with(Role::Operator, &settings.token));
            check_backend(&client, !settings.token.expose_secret().is_empty()).await?;
        }
        let metrics = match settings.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| {
                ControlError::Configuration(format!("cannot listen on {address} for --metrics-listen: {e}"))
            })?),
            None => None,
        };
        let plane = Arc::new(ControlPlane::connect(&settings.database, GIVEN_UP).await?);
        let host = nix::unistd::gethostname().map_or_else(|_| "unknown".into(), |h| h.to_string_lossy().into_owned());
        let pid = std::process::id();
        // The id is chosen here, so registering twice (the first answer lost
        // with the connection) registers one worker.
        let id = Uuid::new_v4();
        let (name, capacity) = (&host, settings.capacity as i32);
        let clock = ClockOffset::default();
        let clock_read = &clock;
        plane
            .run("this worker's registration", |c| async move {
                let sent = SystemTime::now();
                let row = c
                    .query_one(
                        "WITH registered AS (
                           INSERT INTO control.workers (id, host, pid, capacity) VALUES ($1, $2, $3, $4)
                           ON CONFLICT (id) DO NOTHING)
                         SELECT clock_timestamp() AS database_now",
                        &[&id, name, &(pid as i32), &capacity],
                    )
                    .await?;
                clock_read.measured(sent, row.try_get("database_now")?, SystemTime::now());
                Ok::<_, tokio_postgres::Error>(())
            })
            .await?;
        let identity = WorkerIdentity { id, host, pid };
        tracing::info!(worker = %id, "registered as {identity}");
        let (activity, watched) = watch::channel(Activity::Idle);
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&plane), id, watched, clock.clone()));
        let latest = LatestShare::default();
        let metrics = metrics.map(|listener| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!("this worker's metrics: http://{address}/metrics");
            }
            let stop = CancellationToken::new();
            tokio::spawn(metrics::serve(listener, identity.to_string(), latest.clone(), stop.clone()));
            stop.drop_guard()
        });
        if clock::is_skewed(clock.millis()) {
            tracing::warn!("{}", clock::describe(&identity.to_string(), clock.millis()));
        }
        Ok(Self { identity, settings, plane, activity, heartbeat, latest, clock, _metrics: metrics })
    }

    /// Runs shares as they come until `shutdown` (or after one, with `once`).
    pub async fn serve(self, shutdown: &CancellationToken) -> Result<(), ControlError> {
        let outcome = self.serve_runs(shutdown).await;
        self.heartbeat.abort();
        let id = self.identity.id;
        let stopped = self.plane.run("marking this worker stopped", |c| async move {
            c.execute("UPDATE control.workers SET status = $2 WHERE id = $1", &[&id, &WorkerStatus::Stopped]).await
        });
        if !matches!(tokio::time::timeout(5 * HEARTBEAT, stopped).await, Ok(Ok(_))) {
            tracing::warn!("could not mark this worker stopped: the control plane did not answer");
        }
        outcome
    }

    async fn serve_runs(&self, shutdown: &CancellationToken) -> Result<(), ControlError> {
        let mut listener = Listener::start(&self.settings.database, RUNS_CHANNEL).await?;
        let mut taken = Vec::new();
        loop {
            if let Some(assignment) = self.next_assignment(&taken).await? {
                taken.push(assignment.run_id);
                self.run_share(assignment, shutdown).await?;
                if self.settings.once {
                    return Ok(());
                }
            }
            if shutdown.is_cancelled() {
                return Err(ControlError::Interrupted);
            }
            listener.relisten().await;
            tokio::select! {
                // One more look: a share given before the stop is stopped at once and uploaded,
                // so its coordinator does not wait to count it lost.
                () = shutdown.cancelled() => {}
                () = listener.wait(HEARTBEAT) => {}
            }
        }
    }

    /// The oldest share assigned to this worker of a run that has started,
    /// claimed so no second look takes it again. A share this worker claimed
    /// but not `taken` (the claim's answer lost with the connection) is
    /// claimed again.
    #[tracing::instrument(name = "claim", skip_all, fields(worker = %self.identity.id))]
    async fn next_assignment(&self, taken: &[Uuid]) -> Result<Option<Assignment>, ControlError> {
        let id = self.identity.id;
        let row = self
            .plane
            .run("the look for a share", |c| async move {
                c.query_opt(
                    "UPDATE control.run_workers rw SET status = $3
                       FROM control.runs r
                      WHERE r.id = rw.run_id AND rw.worker_id = $1 AND r.status = ANY($4)
                        AND rw.run_id = (SELECT run_id FROM control.run_workers x JOIN control.runs y ON y.id = x.run_id
                                          WHERE x.worker_id = $1 AND y.status = ANY($4)
                                            AND x.run_id <> ALL($2)
                                            AND x.status = ANY($5)
                                          ORDER BY y.created_at LIMIT 1)
                  RETURNING r.id AS run_id, r.config, rw.users, rw.first_user, r.status = $6 AS stopping,
                            greatest(extract(epoch FROM r.start_at - clock_timestamp()), 0)::float8 AS starts_in_secs",
                    &[
                        &id,
                        &taken,
                        &ShareStatus::Running,
                        &RunStatus::UNDER_WAY,
                        &ShareStatus::OUTSTANDING,
                        &RunStatus::Stopping,
                    ],
                )
                .await
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let config: serde_json::Value = row.try_get("config")?;
        let config = serde_json::from_value(config).map_err(|e| ControlError::RunConfiguration(e.to_string()))?;
        Ok(Some(Assignment {
            run_id: row.try_get("run_id")?,
            config,
            users: row.try_get::<_, i32>("users")? as u32,
            first_user: row.try_get::<_, i32>("first_user")? as u32,
            starts_in: Duration::from_secs_f64(row.try_get("starts_in_secs")?),
            stopping: row.try_get("stopping")?,
        }))
    }

    #[tracing::instrument(name = "share", skip_all, fields(worker = %self.identity.id, run = %assignment.run_id))]
    async fn run_share(&self, assignment: Assignment, shutdown: &CancellationToken) -> Result<(), ControlError> {
        let Assignment { run_id, config, users, first_user, starts_in, stopping } = assignment;
        let recorder = Arc::new(Recorder::default());
        // Stopped by the coordinator (through the heartbeat) or by this
        // worker's own shutdown: either way what was measured is uploaded,
        // so the coordinator never waits for a share that will not come.
        let stop = shutdown.child_token();
        if stopping {
            stop.cancel();
        }
        let running = Activity::Running { run: run_id, recorder: Arc::clone(&recorder), stop: stop.clone() };
        let _ = self.activity.send(running);
        self.latest.started(Arc::clone(&recorder));
        tracing::info!(run = %run_id, users, "starting in {:.1}s", starts_in.as_secs_f64());
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(starts_in) => {}
        }
        let host = self.settings.backend.as_ref().map_or_else(|| config.backend.clone(), ToString::to_string);
        // A worker told its own backend sends everything there.
        let backends = if self.settings.backend.is_some() { Vec::new() } else { config.backends.clone() };
        let pace = config.profile.rate.map(|rate| Duration::from_secs_f64(f64::from(config.profile.users) / rate));
        let target = LoadTarget {
            mission_id: config.mission_id.map(|m| m.to_string()).unwrap_or_default(),
            token: self.settings.token.clone(),
            key_prefix: format!("{run_id}/{}", self.identity.id),
            pace,
            backends,
            // Chosen by `share::run`, by whether goose's report is wanted.
            transport: None,
        };
        let profile = config.profile.share(first_user, users);
        let shown = self.settings.progress.then(|| {
            let profile = profile.clone();
            let (stop, watched) = (CancellationToken::new(), Arc::clone(&recorder));
            let sample = move || {
                let tally = watched.tally();
                async move { Some(Reading::whole(Sample::of(&tally))) }
            };
            let sinks = Sinks { display: true, json_lines: None, over_time: None };
            (tokio::spawn(progress::follow(profile, sample, sinks, stop.clone())), stop)
        });
        let run_users = config.profile.users;
        let share = Share {
            host,
            profile,
            first_user,
            run_users,
            workload: config.workload.clone(),
            target,
            goose_report: config.goose_report,
        };
        let outcome = share::run(share, recorder, &stop).await;
        self.latest.ended();
        if let Some((shown, stop)) = shown {
            stop.cancel();
            let _ = shown.await;
        }
        let outcome = outcome?;
        let recorded = &outcome.recorded;
        let histograms = serde_json::to_vec(&recorded.latency_upload(self.clock.millis())).expect("uploads serialize");
        // A worker cut off from the control plane would otherwise wait as long
        // as the link stays down (a query on a dead TCP link does not fail).
        let outcomes =
            recorded.acknowledged_keys.len() + recorded.refused_keys.len() + recorded.indeterminate_keys.len();
        let allowance = upload_allowance(outcomes);
        let (id, seconds) = (self.identity.id, allowance.as_secs_f64());
        let upload = async {
            // Said first, so the coordinator waits for a big upload instead of counting this worker lost.
            self.plane
                .run("the upload of this worker's results", |c| async move {
                    c.execute(
                        "UPDATE control.run_workers SET upload_deadline = now() + make_interval(secs => $3)
                          WHERE run_id = $1 AND worker_id = $2",
                        &[&run_id, &id, &seconds],
                    )
                    .await
                })
                .await?;
            self.upload(run_id, &histograms, &outcome).await
        };
        let uploaded =
            tokio::time::timeout(allowance, upload).await.map_err(|_| ControlError::ControlPlaneLost {
                what: "the upload of this worker's results",
                waited: allowance,
                consequence: GIVEN_UP,
            })??;
        if uploaded {
            tracing::info!(run = %run_id, requests = recorded.overall.len(), acked = recorded.acknowledged_keys.len(),
                refused = recorded.refused_keys.len(), indeterminate = recorded.indeterminate_keys.len(), "uploaded");
        } else {
            tracing::warn!(run = %run_id, "the coordinator had given this worker up as lost; results not uploaded");
        }
        if let (Some(dir), Some(html)) = (&self.settings.out, &outcome.report_html) {
            let path = dir.join(super::goose_page::file_name(run_id, self.identity.id));
            let html = super::goose_page::offline(html);
            if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, html)) {
                tracing::warn!(path = %path.display(), error = %e, "could not write goose's report");
            }
        }
        let _ = self.activity.send(Activity::Idle);
        if shutdown.is_cancelled() {
            return Err(ControlError::Interrupted);
        }
        Ok(())
    }

    /// Uploads in one transaction, unless the coordinator has since given this
    /// worker up (then nothing is written and `false` returned). Uploading
    /// again after an upload that committed (its answer lost with the
    /// connection) writes nothing more and answers `true`. The keys go in
    /// first and the share's row is locked only at the end, to mark it done:
    /// a long COPY (670k keys take seconds) never holds up the heartbeats or
    /// the coordinator's watch, which update that row.
    #[tracing::instrument(name = "upload", skip_all, fields(worker = %self.identity.id, run = %run_id))]
    async fn upload(&self, run_id: Uuid, histograms: &[u8], outcome: &ShareOutcome) -> Result<bool, ControlError> {
        let id = self.identity.id;
        let writes = &outcome.recorded;
        let keys = &writes.acknowledged_keys;
        let digest = &key_digest(keys.iter().map(String::as_str));
        let (refused, indeterminate) = (writes.refused_keys.len() as i64, writes.indeterminate_keys.len() as i64);
        let (goose_metrics, report_html) = (&outcome.goose_metrics, outcome.report_html.as_deref());
        const SHARE: &str = "SELECT status FROM control.run_workers WHERE run_id = $1 AND worker_id = $2";
        self.plane
            .run_alone("the upload of this worker's results", |mut client| async move {
                let transaction = client.transaction().await?;
                let status = |row: Option<tokio_postgres::Row>| {
                    row.map(|row| row.try_get::<_, ShareStatus>("status")).transpose()
                };
                match status(transaction.query_opt(SHARE, &[&run_id, &id]).await?)? {
                    Some(ShareStatus::Running) => {}
                    Some(ShareStatus::Done) => return Ok(true),
                    _ => return Ok(false),
                }
                transaction
                    .execute(
                        "INSERT INTO control.worker_results
                           (run_id, worker_id, latency_histogram, acked_keys_count, acked_keys_digest,
                            refused_keys_count, indeterminate_keys_count, goose_metrics, goose_report_html)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        &[
                            &run_id,
                            &id,
                            &histograms,
                            &(keys.len() as i64),
                            digest,
                            &refused,
                            &indeterminate,
                            goose_metrics,
                            &report_html,
                        ],
                    )
                    .await?;
                let sink = transaction
                    .copy_in(
                        "COPY control.write_outcomes (run_id, worker_id, idempotency_key, outcome)
                         FROM STDIN (FORMAT binary)",
                    )
                    .await?;
                let writer = BinaryCopyInWriter::new(sink, &[Type::UUID, Type::UUID, Type::TEXT, Type::TEXT]);
                futures::pin_mut!(writer);
                let settled = [
                    (WriteOutcome::Acknowledged, keys),
                    (WriteOutcome::Refused, &writes.refused_keys),
                    (WriteOutcome::Indeterminate, &writes.indeterminate_keys),
                ];
                for (outcome, keys) in settled {
                    for key in keys {
                        writer.as_mut().write(&[&run_id, &id, key, &outcome.as_str()]).await?;
                    }
                }
                writer.finish().await?;
                // The share may have been given up meanwhile: decided under its row's lock.
                let locked = transaction.query_opt(&format!("{SHARE} FOR UPDATE"), &[&run_id, &id]).await?;
                match status(locked)? {
                    Some(ShareStatus::Running) => {}
                    Some(ShareStatus::Done) => return Ok(true),
                    _ => return Ok(false),
                }
                transaction
                    .execute(
                        "UPDATE control.run_workers SET status = $3 WHERE run_id = $1 AND worker_id = $2",
                        &[&run_id, &id, &ShareStatus::Done],
                    )
                    .await?;
                transaction.execute(&format!("NOTIFY {UPLOADS_CHANNEL}"), &[]).await?;
                transaction.commit().await?;
                Ok::<_, tokio_postgres::Error>(true)
            })
            .await
    }
}

/// Says this worker is alive, and what it is doing, every second; while it
/// runs a share, where the share stands too (for the coordinator's live
/// progress), in the same statement, which answers whether the coordinator
/// has stopped the run (then the share's load stops). A missed beat (the
/// database briefly away) is logged; the coordinator decides when silence
/// means lost.
async fn heartbeat(plane: Arc<ControlPlane>, id: Uuid, activity: watch::Receiver<Activity>, clock: ClockOffset) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let current = activity.borrow().clone();
        let (run, progress) = match &current {
            Activity::Idle => (None, None),
            Activity::Running { run, recorder, .. } => {
                let mut progress = recorder.tally().progress();
                // Its time on the database's clock, as the coordinator's lines show it.
                progress.sampled_at_ms = progress.sampled_at_ms.map(|ms| ms.saturating_add_signed(clock.millis()));
                (Some(*run), Some(serde_json::to_value(progress).expect("progress serializes")))
            }
        };
        let (status, run, progress, clock) = (current.status(), &run, &progress, &clock);
        let beat = plane
            .run("the heartbeat", |c| async move {
                let sent = SystemTime::now();
                let row = c
                    .query_one(
                        "WITH beat AS (UPDATE control.workers SET last_heartbeat = now(), status = $2 WHERE id = $1),
                              share AS (UPDATE control.run_workers rw SET progress = $4 FROM control.runs r
                                         WHERE rw.run_id = $3 AND rw.worker_id = $1 AND r.id = rw.run_id
                                     RETURNING r.status = $5 AS stopping)
                         SELECT clock_timestamp() AS database_now, coalesce(bool_or(stopping), false) AS stopping
                           FROM share",
                        &[&id, &status, run, progress, &RunStatus::Stopping],
                    )
                    .await?;
                clock.measured(sent, row.try_get("database_now")?, SystemTime::now());
                row.try_get::<_, bool>("stopping")
            })
            .await;
        match (beat, &current) {
            (Ok(stopping), Activity::Running { stop, run, .. }) => {
                if stopping && !stop.is_cancelled() {
                    tracing::info!(run = %run, "the coordinator stopped the run: ending this share's load");
                    stop.cancel();
                }
            }
            (Ok(_), Activity::Idle) => {}
            (Err(e), _) => tracing::warn!(error = %e, "heartbeat missed"),
        }
    }
}
