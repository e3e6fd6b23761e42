//! `grace load` (a run, in-process or across workers, merged and judged) and
//! `grace worker` (one load generator of such runs).

use crate::cli::args::{LoadArgs, WorkerArgs};
use crate::cli::exit::{interruptible, CommandError};
use crate::client::BackendClient;
use crate::configuration::{DatabaseUrl, Tokens};
use crate::control::coordinator::{self, LoadOutcome};
use crate::control::plan::{LoadPlan, WriteProofs};
use crate::control::readiness::{database_not_yet, patiently};
use crate::control::threshold;
use crate::control::worker::{Worker, WorkerSettings};
use crate::control::ControlError;
use crate::specification::Role;
use secrecy::SecretString;
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// What names the control plane's database: load runs meet there.
const CONTROL_PLANE: &str = "the control plane's database";

pub async fn load(args: LoadArgs, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    let database = args.database.required(CONTROL_PLANE)?;
    let mut urls = args.backend.urls()?.into_iter();
    let url = urls.next().ok_or_else(|| CommandError::Usage("--backend is required".into()))?;
    let (source, compiled) = match &args.workload {
        Some(path) => super::workload::load(path)?,
        None => super::workload::bundled(if args.traffic == "health" { "health" } else { "mission" })?,
    };
    let grace_backend = compiled.grace_backend;
    let mut thresholds = args.criteria.thresholds.clone();
    threshold::resolve(&mut thresholds, &compiled.request_names()).map_err(CommandError::Usage)?;
    let tokens = match (grace_backend, args.backend.operator_token()?) {
        (_, Some(token)) => Tokens::default().with(Role::Operator, &token),
        (false, None) => Tokens::default(),
        (true, None) => {
            return Err(CommandError::Usage("an operator token is required: pass --token or set GRACE_TOKEN".into()))
        }
    };
    if args.mission.is_some() && !grace_backend {
        return Err(CommandError::Usage("--mission is a Grace backend's: this workload is for another service".into()));
    }
    let service_database = args.service_database_url.as_deref().map(DatabaseUrl::parse).transpose()?;
    let write_proofs = match compiled.proofs.as_slice() {
        [] => WriteProofs::Bundled,
        proofs => {
            let database = match (service_database, grace_backend) {
                (Some(url), _) => url,
                (None, true) => database.clone(),
                (None, false) => {
                    let names: Vec<&str> = proofs.iter().map(|p| p.name.as_str()).collect();
                    return Err(CommandError::Usage(format!(
                        "{} names proofs ({}): pass --service-database-url (the service's database, read-only is \
                         enough) to prove them",
                        compiled.origin,
                        names.join(", ")
                    )));
                }
            };
            WriteProofs::Workload { proofs: proofs.to_vec(), database: Box::new(database), orphans: !grace_backend }
        }
    };
    let plan = LoadPlan {
        backend: BackendClient::new(url, tokens),
        replicas: urls.collect(),
        shape: args.shape.parse(&compiled.load)?,
        workload: source,
        grace_backend,
        write_proofs,
        mission: args.mission,
        progress: !args.quiet,
        json_lines: args.out_json_lines.clone(),
        wait_for_services: args.wait.patience,
        goose_report: args.goose_report,
    };
    if let Some(dir) = &args.out {
        super::ensure_writable(dir)?;
    }
    interruptible(shutdown, async { Ok(await_database(&database, args.wait.patience).await?) }).await?;
    let mut outcome = coordinator::run(&database, &plan, shutdown).await?;
    threshold::apply(&mut outcome.result, &thresholds);
    if let Some(dir) = &args.out {
        write_load_outputs(dir, &outcome)?;
    }
    args.output.emit(&outcome.result, ToString::to_string);
    if outcome.result.interrupted {
        Err(CommandError::Interrupted)
    } else if outcome.result.passed {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CommandError::Failed("the load run failed: see the result above".into()))
    }
}

pub async fn worker(args: WorkerArgs, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    let settings = WorkerSettings {
        database: args.database.required(CONTROL_PLANE)?,
        backend: args.backend.url()?,
        token: args.backend.operator_token()?.unwrap_or_else(|| SecretString::from(String::new())),
        capacity: args.capacity,
        once: args.once,
        out: args.out,
        progress: !args.quiet,
        metrics_listen: args.metrics_listen,
    };
    interruptible(shutdown, async { Ok(await_database(&settings.database, args.wait.patience).await?) }).await?;
    let worker = interruptible(shutdown, async { Ok(Worker::register(settings).await?) }).await?;
    crate::tell!("worker {} registered as {}; waiting for runs", worker.identity.id, worker.identity);
    match worker.serve(shutdown).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Stopping a worker between runs is how it ends.
        Err(ControlError::Interrupted) if !args.once => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// The control plane's database, answering and bootstrapped, within `patience`.
async fn await_database(database: &DatabaseUrl, patience: std::time::Duration) -> Result<(), crate::db::DbError> {
    patiently(CONTROL_PLANE, patience, database_not_yet, || crate::db::migrations::require_bootstrapped(database)).await
}

/// `load-result.json`, the merged run's page `load-report.html` (the same
/// that `grace report render load-result.json` prints), and each worker's
/// goose page, which it links; the paths written are printed.
fn write_load_outputs(dir: &Path, outcome: &LoadOutcome) -> Result<(), CommandError> {
    let failed = |e: std::io::Error| CommandError::Failed(format!("cannot write into --out {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let json = serde_json::to_string_pretty(&outcome.result).expect("results serialize");
    let mut written = vec![
        (dir.join("load-result.json"), json),
        (dir.join("load-report.html"), crate::report::html::render_load(&outcome.result)),
    ];
    for (worker, html) in &outcome.reports {
        let name = crate::control::goose_page::file_name(outcome.result.run_id, worker.id);
        written.push((dir.join(name), crate::control::goose_page::offline(html)));
    }
    for (path, text) in &written {
        std::fs::write(path, text).map_err(failed)?;
        crate::tell!("wrote {}", path.display());
    }
    Ok(())
}
