//! The coordinator of a load run (`grace load`, and the scenario's load
//! phase): it creates the run, waits for the workers it expects, splits the
//! users between them, announces the start on the database clock, watches
//! heartbeats — a worker silent for `heartbeat_timeout`, or still busy long
//! after the run should have ended, is marked lost, so a run always ends —
//! and merges what the workers uploaded. Interrupted once the load has begun
//! (Ctrl-C), it stops the run instead of abandoning it: the workers end their
//! load and upload what they measured, which is merged, proven (C7 on what
//! was acknowledged) and marked interrupted, as k6 keeps a stopped test's
//! results.
//!
//! Without an expected worker count, one worker runs inside this process,
//! through exactly the same control-plane path.

use super::connection::ControlPlane;
use super::plan::{LoadPlan, WriteProofs};
use super::progress::{self, JsonLines, OverTime, Reading, Sample, Sinks};
use super::readiness::patiently;
use super::result::{LastReport, LoadResult, Uploaded, WorkerUpload};
use super::status::{RunStatus, ShareStatus, WorkerStatus};
use super::worker::{Worker, WorkerIdentity, WorkerSettings};
use super::{
    acked_writes, check_backend, service_proofs, ControlError, RunConfig, HEARTBEAT, RUNS_CHANNEL, START_LEAD,
    UPLOADS_CHANNEL, UPLOAD_ALLOWANCE,
};
use crate::api::missions::NewMission;
use crate::client::ClientError;
use crate::configuration::DatabaseUrl;
use crate::db::rows::FromRow;
use crate::db::{During, Listener};
use crate::specification::Role;
use grace_loadtests::LatencyUpload;
use secrecy::SecretString;
use serde_json::json;
use std::time::Duration;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A finished run: the merged result and each worker's goose report.
pub struct LoadOutcome {
    pub result: LoadResult,
    /// The merged histograms behind `result`.
    pub histograms: grace_loadtests::Recorded,
    /// (worker, goose's HTML report) for each worker that uploaded one.
    pub reports: Vec<(WorkerIdentity, String)>,
}

/// What the coordinator's giving up on the control plane means.
const ABANDONED: &str = "the run is abandoned without a verdict";

/// Runs `plan` to the end and merges it.
pub async fn run(
    database: &DatabaseUrl,
    plan: &LoadPlan,
    shutdown: &CancellationToken,
) -> Result<LoadOutcome, ControlError> {
    for backend in plan.backends() {
        let what = format!("the backend at {}", backend.url());
        let not_yet = |e: &ControlError| matches!(e, ControlError::BackendUnreachable { .. });
        let answered =
            patiently(&what, plan.wait_for_services, not_yet, || check_backend(&backend, plan.grace_backend));
        tokio::select! {
            answered = answered => answered?,
            () = shutdown.cancelled() => return Err(ControlError::Interrupted),
        }
    }
    // A proof that cannot be read is found now, not after the load.
    if let WriteProofs::Workload { proofs, database, .. } = &plan.write_proofs {
        service_proofs::prepare(database, proofs).await?;
    }
    let plane = ControlPlane::connect(database, ABANDONED).await?;
    let run_id = Uuid::new_v4();
    let mission_id = match plan.mission {
        Some(mission) => Some(mission),
        None if plan.grace_backend => Some(create_mission(plan, run_id).await?),
        None => None,
    };
    let backends = match plan.replicas.as_slice() {
        [] => Vec::new(),
        replicas => std::iter::once(plan.backend.url()).chain(replicas).map(ToString::to_string).collect(),
    };
    let config = RunConfig {
        backend: plan.backend.url().to_string(),
        backends,
        mission_id,
        profile: plan.shape.profile.clone(),
        workload: plan.workload.clone(),
        goose_report: plan.goose_report,
    };
    let config = &serde_json::to_value(&config).expect("configs serialize");
    let expected = plan.shape.expect_workers.unwrap_or(1) as i32;
    plane
        .run("the run's creation", |c| async move {
            c.execute(
                "INSERT INTO control.runs (id, mission_id, config, expected_workers) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &[&run_id, &mission_id, config, &expected],
            )
            .await
        })
        .await?;
    match mission_id {
        Some(mission) => tracing::info!(run = %run_id, mission = %mission, "load run created"),
        None => tracing::info!(run = %run_id, "load run created"),
    }

    // The in-process worker, when no workers are expected.
    let local_stop = shutdown.child_token();
    let local = match plan.shape.expect_workers {
        Some(_) => None,
        None => {
            let token = plan.backend.token(Role::Operator).unwrap_or_default();
            let settings = WorkerSettings {
                database: database.clone(),
                backend: None,
                token: SecretString::from(token),
                capacity: plan.shape.profile.users,
                once: true,
                out: None,
                // The coordinator shows the run's progress.
                progress: false,
                metrics_listen: None,
            };
            let worker = Worker::register(settings).await?;
            let only = worker.identity.id;
            let stop = local_stop.clone();
            Some((only, tokio::spawn(async move { worker.serve(&stop).await })))
        }
    };
    let outcome = coordinate(&plane, plan, run_id, local.as_ref().map(|(id, _)| *id), shutdown).await;
    local_stop.cancel();
    if let Some((_, task)) = local {
        match task.await {
            Ok(Err(ControlError::Interrupted)) | Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the in-process worker failed"),
            Err(e) => tracing::warn!(error = %e, "the in-process worker panicked"),
        }
    }
    if let Err(e) = &outcome {
        let verdict = &json!({ "error": e.to_string() });
        let failed = plane.run("the run's failure", |c| async move {
            c.execute(
                "UPDATE control.runs SET status = $3, verdict = $2, finished_at = now() WHERE id = $1",
                &[&run_id, verdict, &RunStatus::Failed],
            )
            .await
        });
        // Best effort: the run has failed already, perhaps for want of the control plane.
        let _ = tokio::time::timeout(FAILURE_NOTE_PATIENCE, failed).await;
    }
    outcome
}

/// How long a failed run waits to record its failure.
const FAILURE_NOTE_PATIENCE: Duration = Duration::from_secs(5);

#[tracing::instrument(name = "coordinate", skip_all, fields(run = %run_id))]
async fn coordinate(
    plane: &ControlPlane,
    plan: &LoadPlan,
    run_id: Uuid,
    only: Option<Uuid>,
    shutdown: &CancellationToken,
) -> Result<LoadOutcome, ControlError> {
    let json_lines = match &plan.json_lines {
        Some(path) => Some(JsonLines::create(path).map_err(|e| {
            ControlError::Configuration(format!("cannot write --out-json-lines {}: {e}", path.display()))
        })?),
        None => None,
    };
    let mut listener = Listener::start(plane.database(), UPLOADS_CHANNEL).await?;
    let workers = claim_workers(plane, &mut listener, plan, run_id, only, shutdown).await?;
    let names: Vec<String> = workers.iter().map(ToString::to_string).collect();
    let on = crate::console::counted(workers.len() as u64, "worker", "workers");
    tracing::info!(run = %run_id, "started on {on}: {}", names.join(", "));
    let followed = CancellationToken::new();
    let watching = async {
        let watched = watch(plane, &mut listener, plan, run_id, shutdown).await;
        followed.cancel();
        watched
    };
    let over_time = Some(OverTime::new(plan.shape.profile.run_time()));
    let sinks = Sinks { display: plan.progress, json_lines, over_time };
    let following = follow_progress(plane, plan, run_id, sinks, followed.clone());
    let (watched, mut sinks) = tokio::join!(watching, following);
    let ending = watched?;
    plane
        .run("the start of the merge", |c| async move {
            c.execute("UPDATE control.runs SET status = $2 WHERE id = $1", &[&run_id, &RunStatus::Merging]).await
        })
        .await?;
    let uploads = plane.run("reading the uploads", |c| async move { read_uploads(&c, run_id).await }).await?;
    let proven = match &plan.write_proofs {
        WriteProofs::Bundled => {
            let acked = plane
                .run("the acknowledged-writes check", |c| async move { acked_writes::check(&c, run_id).await })
                .await?;
            service_proofs::Proven::bundled(acked)
        }
        WriteProofs::Workload { proofs, database, orphans } => {
            service_proofs::prove(plane, database, run_id, proofs, *orphans).await?
        }
    };
    let (mut result, histograms) = LoadResult::merge(run_id, &plan.shape, &uploads, proven, plane.outages())?;
    if ending == Ending::Stopped {
        result.interrupt();
    }
    // The last window, from what the workers uploaded and what the lost ones
    // last reported: the windows add up to what was seen.
    let lost_reports = uploads.iter().filter_map(|u| u.last_report.as_ref().map(|r| &r.progress));
    sinks.close(&Sample::of(&histograms).plus(Sample::merge(lost_reports)));
    result.over_time = sinks.over_time.map(OverTime::into_windows).unwrap_or_default();
    let verdict = &serde_json::to_value(&result).expect("results serialize");
    plane
        .run("the verdict", |c| async move {
            c.execute(
                "UPDATE control.runs SET status = $3, verdict = $2, finished_at = now() WHERE id = $1",
                &[&run_id, verdict, &RunStatus::Completed],
            )
            .await
        })
        .await?;
    let reports = uploads.into_iter().filter_map(|u| u.report_html.map(|html| (u.worker, html))).collect();
    Ok(LoadOutcome { result, histograms, reports })
}

/// The run's live progress, from its start (`START_LEAD` after the claim)
/// until `stop`, into `sinks`: the shares' latest heartbeats, merged.
async fn follow_progress(
    plane: &ControlPlane,
    plan: &LoadPlan,
    run_id: Uuid,
    sinks: Sinks,
    stop: CancellationToken,
) -> Sinks {
    tokio::select! {
        () = stop.cancelled() => return sinks,
        () = tokio::time::sleep(START_LEAD) => {}
    }
    let profile = plan.shape.profile.clone();
    let read = || async move {
        let read = plane.run("the run's progress", |c| async move {
            c.query(
                "SELECT progress, status = $2 AS lost, users FROM control.run_workers
                  WHERE run_id = $1 AND progress IS NOT NULL",
                &[&run_id, &ShareStatus::Lost],
            )
            .await
        });
        Reading::published(&read.await.ok()?)
    };
    progress::follow(profile, read, sinks, stop).await
}

/// Creates the run's mission through the backend's API, with the run's id as
/// the mission's, so a retry after a refused attempt finds it.
async fn create_mission(plan: &LoadPlan, run_id: Uuid) -> Result<Uuid, ControlError> {
    let mission =
        NewMission { id: Some(run_id), name: format!("load run {run_id}"), goal: "carry a Grace load run".into() };
    let url = plan.backend.url().to_string();
    match plan.backend.create_mission(&mission).await {
        Ok(_) => Ok(run_id),
        Err(e @ ClientError::Unreachable { .. }) => Err(ControlError::BackendUnreachable { url, reason: e.reason() }),
        Err(e) => {
            Err(ControlError::BackendRefused { url, reason: format!("creating the run's mission {}", e.reason()) })
        }
    }
}

/// What one look for workers found.
enum Claim {
    /// The run started on these workers.
    Started(Vec<WorkerIdentity>),
    /// Too few live, idle workers yet.
    Waiting,
    /// Enough workers, but together they cannot take the run's users.
    TooLittleCapacity(u32),
}

/// Waits until `expected` live, idle workers can be claimed, then assigns
/// them their users and announces the start, all in one transaction.
#[tracing::instrument(name = "join", skip_all, fields(run = %run_id))]
async fn claim_workers(
    plane: &ControlPlane,
    listener: &mut Listener,
    plan: &LoadPlan,
    run_id: Uuid,
    only: Option<Uuid>,
    shutdown: &CancellationToken,
) -> Result<Vec<WorkerIdentity>, ControlError> {
    let expected = plan.shape.expect_workers.unwrap_or(1);
    let deadline = tokio::time::Instant::now() + plan.shape.join_timeout;
    let fresh = plan.shape.heartbeat_timeout.as_secs_f64();
    loop {
        let claim = plane
            .run_alone("the claim of workers", |mut c| async move {
                try_claim(&mut c, plan, run_id, only, expected, fresh).await
            })
            .await?;
        match claim {
            Claim::Started(workers) => return Ok(workers),
            Claim::TooLittleCapacity(capacity) => {
                return Err(ControlError::TooLittleCapacity { users: plan.shape.profile.users, capacity })
            }
            Claim::Waiting => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let joined =
                plane.run("the list of live workers", |c| async move { live_workers(&c, fresh).await }).await?;
            return Err(ControlError::TooFewWorkers { expected, joined, waited: plan.shape.join_timeout });
        }
        listener.relisten().await;
        tokio::select! {
            () = shutdown.cancelled() => return Err(ControlError::Interrupted),
            () = listener.wait(Duration::from_millis(250)) => {}
        }
    }
}

/// One look for workers, in one transaction. A run that has started already
/// (this same claim committed, its answer lost with the connection) answers
/// the workers it started on.
async fn try_claim(
    connection: &mut Client,
    plan: &LoadPlan,
    run_id: Uuid,
    only: Option<Uuid>,
    expected: u32,
    fresh: f64,
) -> Result<Claim, tokio_postgres::Error> {
    let transaction = connection.transaction().await?;
    let claimed = transaction
        .query(
            "SELECT w.id, w.host, w.pid FROM control.run_workers rw JOIN control.workers w ON w.id = rw.worker_id
              WHERE rw.run_id = $1 ORDER BY w.registered_at",
            &[&run_id],
        )
        .await?;
    if !claimed.is_empty() {
        return Ok(Claim::Started(claimed.iter().map(WorkerIdentity::from_row).collect::<Result<_, _>>()?));
    }
    let rows = transaction
        .query(
            "SELECT w.id, w.host, w.pid, w.capacity FROM control.workers w
              WHERE w.status = $4 AND w.last_heartbeat > now() - make_interval(secs => $1)
                AND ($2::uuid IS NULL OR w.id = $2)
                AND NOT EXISTS (SELECT 1 FROM control.run_workers rw
                                 WHERE rw.worker_id = w.id AND rw.status = ANY($5))
              ORDER BY w.registered_at
              LIMIT $3 FOR UPDATE OF w SKIP LOCKED",
            &[&fresh, &only, &i64::from(expected), &WorkerStatus::Idle, &ShareStatus::OUTSTANDING],
        )
        .await?;
    if rows.len() < expected as usize {
        return Ok(Claim::Waiting);
    }
    let capacities =
        rows.iter().map(|r| Ok(r.try_get::<_, i32>("capacity")? as u32)).collect::<Result<Vec<u32>, _>>()?;
    let capacity: u32 = capacities.iter().sum();
    if capacity < plan.shape.profile.users {
        return Ok(Claim::TooLittleCapacity(capacity));
    }
    let shares = split_users(plan.shape.profile.users, &capacities);
    let mut workers = Vec::new();
    let mut first_user = 0;
    for (row, users) in rows.iter().zip(shares) {
        let worker = WorkerIdentity::from_row(row)?;
        transaction
            .execute(
                "INSERT INTO control.run_workers (run_id, worker_id, users, first_user) VALUES ($1, $2, $3, $4)",
                &[&run_id, &worker.id, &(users as i32), &(first_user as i32)],
            )
            .await?;
        first_user += users;
        workers.push(worker);
    }
    transaction
        .execute(
            "UPDATE control.runs SET status = $3, start_at = now() + make_interval(secs => $2) WHERE id = $1",
            &[&run_id, &START_LEAD.as_secs_f64(), &RunStatus::Running],
        )
        .await?;
    transaction.execute(&format!("NOTIFY {RUNS_CHANNEL}"), &[]).await?;
    transaction.commit().await?;
    Ok(Claim::Started(workers))
}

/// Every worker heard from recently, named for a message.
async fn live_workers(client: &Client, fresh: f64) -> Result<Vec<String>, ControlError> {
    let rows = client
        .query(
            "SELECT host, pid, status FROM control.workers
              WHERE last_heartbeat > now() - make_interval(secs => $1) ORDER BY registered_at",
            &[&fresh],
        )
        .await?;
    let mut named = Vec::new();
    for row in &rows {
        let (host, pid, status): (String, i32, WorkerStatus) =
            (row.try_get("host")?, row.try_get("pid")?, row.try_get("status")?);
        named.push(if status == WorkerStatus::Idle {
            format!("{host} (pid {pid})")
        } else {
            format!("{host} (pid {pid}, {status})")
        });
    }
    Ok(named)
}

/// `users` split as evenly as the workers' capacities allow: each worker gets
/// its even part, capped at its capacity, and what the caps left over goes to
/// workers with room, in order.
fn split_users(users: u32, capacities: &[u32]) -> Vec<u32> {
    let n = capacities.len() as u32;
    let mut shares: Vec<u32> = capacities
        .iter()
        .enumerate()
        .map(|(i, cap)| (users / n + u32::from((i as u32) < users % n)).min(*cap))
        .collect();
    let mut left = users - shares.iter().sum::<u32>();
    for (share, cap) in shares.iter_mut().zip(capacities) {
        let more = left.min(cap - *share);
        *share += more;
        left -= more;
    }
    shares
}

/// How a run's load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Every share ran its time (or its worker was lost).
    Ran,
    /// Stopped early on `shutdown`; the shares uploaded what they measured.
    Stopped,
}

/// Waits until every worker of the run has uploaded or is lost, stopping the
/// run on `shutdown` (the workers hear it with their next heartbeat). Silence
/// is not held against a worker until it has had `heartbeat_timeout` to reach
/// the control plane again after an outage the coordinator saw end.
async fn watch(
    plane: &ControlPlane,
    listener: &mut Listener,
    plan: &LoadPlan,
    run_id: Uuid,
    shutdown: &CancellationToken,
) -> Result<Ending, ControlError> {
    let overrun = (plan.shape.profile.run_time() + START_LEAD + UPLOAD_ALLOWANCE).as_secs_f64();
    let silence = plan.shape.heartbeat_timeout.as_secs_f64();
    let mut ending = Ending::Ran;
    loop {
        let reconnected_recently = plane.outages().last().is_some_and(|outage| {
            (chrono::Utc::now() - outage.to).to_std().unwrap_or_default() < plan.shape.heartbeat_timeout
        });
        let judge_silence = !reconnected_recently;
        let lost = plane
            .run("the watch over workers", |c| async move {
                c.query(
                    "WITH lost AS (
                       UPDATE control.run_workers rw SET status = $5
                         FROM control.workers w, control.runs r
                        WHERE rw.run_id = $1 AND r.id = rw.run_id AND w.id = rw.worker_id
                          AND rw.status = ANY($6)
                          AND (($4 AND w.last_heartbeat < now() - make_interval(secs => $2))
                               OR now() > coalesce(rw.upload_deadline, r.start_at + make_interval(secs => $3)))
                    RETURNING w.id, w.host, w.pid)
                     UPDATE control.workers w SET status = $7 FROM lost WHERE w.id = lost.id
                    RETURNING lost.host, lost.pid",
                    &[
                        &run_id,
                        &silence,
                        &overrun,
                        &judge_silence,
                        &ShareStatus::Lost,
                        &ShareStatus::OUTSTANDING,
                        &WorkerStatus::Lost,
                    ],
                )
                .await
            })
            .await?;
        for row in &lost {
            let (host, pid): (String, i32) = (row.try_get("host")?, row.try_get("pid")?);
            tracing::warn!(run = %run_id, "worker {host} (pid {pid}) is lost: no heartbeat or no upload in time");
        }
        let busy: i64 = plane
            .run("the watch over workers", |c| async move {
                c.query_one(
                    "SELECT count(*) AS busy FROM control.run_workers
                      WHERE run_id = $1 AND status = ANY($2)",
                    &[&run_id, &ShareStatus::OUTSTANDING],
                )
                .await?
                .try_get("busy")
            })
            .await?;
        if busy == 0 {
            return Ok(ending);
        }
        listener.relisten().await;
        if ending == Ending::Stopped {
            listener.wait(HEARTBEAT / 2).await;
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                stop_run(plane, run_id).await?;
                ending = Ending::Stopped;
            }
            () = listener.wait(HEARTBEAT / 2) => {}
        }
    }
}

/// Tells the run's workers to end their load now and upload what they have.
async fn stop_run(plane: &ControlPlane, run_id: Uuid) -> Result<(), ControlError> {
    tracing::warn!(
        run = %run_id,
        "interrupted: stopping the load; what the workers measured is merged and judged (a second Ctrl-C quits at once)"
    );
    plane
        .run("stopping the run", |c| async move {
            c.execute(
                "UPDATE control.runs SET status = $2 WHERE id = $1 AND status = $3",
                &[&run_id, &RunStatus::Stopping, &RunStatus::Running],
            )
            .await
        })
        .await?;
    Ok(())
}

/// Every worker of the run with what it uploaded (nothing, if it was lost).
#[tracing::instrument(name = "merge", skip_all, fields(run = %run_id))]
async fn read_uploads(client: &Client, run_id: Uuid) -> Result<Vec<WorkerUpload>, ControlError> {
    let rows = client
        .query(
            "SELECT w.id, w.host, w.pid, rw.users, rw.status AS share_status, res.latency_histogram,
                    res.acked_keys_count, res.goose_report_html, rw.progress,
                    extract(epoch FROM w.last_heartbeat - r.start_at)::float8 AS reported_secs
               FROM control.run_workers rw
               JOIN control.runs r ON r.id = rw.run_id
               JOIN control.workers w ON w.id = rw.worker_id
               LEFT JOIN control.worker_results res ON res.run_id = rw.run_id AND res.worker_id = rw.worker_id
              WHERE rw.run_id = $1
              ORDER BY w.registered_at",
            &[&run_id],
        )
        .await
        .during("reading the uploads")?;
    rows.iter()
        .map(|row| {
            let worker = WorkerIdentity::from_row(row)?;
            let lost = row.try_get::<_, ShareStatus>("share_status")? == ShareStatus::Lost;
            // A worker's upload is there when its result row is (the column is NOT NULL).
            let uploaded = match (lost, row.try_get::<_, Option<Vec<u8>>>("latency_histogram")?) {
                (false, Some(upload)) => {
                    let unreadable = |e: String| ControlError::Upload(format!("{worker}'s histograms: {e}"));
                    let upload =
                        serde_json::from_slice::<LatencyUpload>(&upload).map_err(|e| unreadable(e.to_string()))?;
                    let histograms = upload.decode().map_err(|e| unreadable(e.to_string()))?;
                    let acked_writes = row.try_get::<_, i64>("acked_keys_count")? as u64;
                    Some(Uploaded { histograms, acked_writes, clock_offset_ms: upload.clock_offset_ms })
                }
                _ => None,
            };
            let users = row.try_get::<_, i32>("users")? as u32;
            // What a lost worker had measured by its last heartbeat (on the database's clock).
            let last_report = match (lost, row.try_get::<_, Option<serde_json::Value>>("progress")?) {
                (true, Some(progress)) => Some(LastReport {
                    progress: serde_json::from_value(progress)
                        .map_err(|e| ControlError::Upload(format!("{worker}'s last progress: {e}")))?,
                    secs: row.try_get::<_, Option<f64>>("reported_secs")?.unwrap_or_default().max(0.0),
                }),
                _ => None,
            };
            Ok(WorkerUpload { worker, users, uploaded, last_report, report_html: row.try_get("goose_report_html")? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_users;

    #[test]
    fn users_split_evenly_within_capacities() {
        assert_eq!(split_users(10, &[100, 100, 100]), [4, 3, 3]);
        assert_eq!(split_users(10, &[2, 100, 100]), [2, 5, 3]);
        assert_eq!(split_users(3, &[1, 1, 1]), [1, 1, 1]);
        assert_eq!(split_users(50, &[10, 100]), [10, 40]);
    }
}
