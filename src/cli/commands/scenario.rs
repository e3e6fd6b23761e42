//! `grace scenario` (the main job) and `grace verify` (its phase 7 alone).

use crate::cli::args::{ScenarioArgs, VerifyArgs};
use crate::cli::exit::{none_failed, CommandError};
use crate::db::{self, During};
use crate::immutable_log;
use crate::report::interrupted_by_signal;
use crate::scenario::{ScenarioSettings, Target};
use crate::verify;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

pub async fn scenario(args: ScenarioArgs, shutdown: &CancellationToken) -> Result<ExitCode, CommandError> {
    let database = args.database.parse()?;
    let target = match args.backend.url()? {
        None => Target::Bundled { database },
        Some(backend) => {
            let database = database.ok_or_else(|| {
                CommandError::Usage(
                    "with --backend, set DATABASE_URL (or --database-url) to that backend's database".into(),
                )
            })?;
            if !args.backend.has_role_tokens() {
                return Err(CommandError::Usage(
                    "with --backend, set GRACE_TOKENS (or --tokens) to its role=token pairs".into(),
                ));
            }
            Target::Remote { backend, tokens: args.backend.tokens()?, database }
        }
    };
    super::ensure_writable(&args.out)?;
    let (source, compiled) = match &args.workload {
        Some(path) => super::workload::load(path)?,
        None => super::workload::bundled("mission")?,
    };
    if !compiled.grace_backend {
        return Err(CommandError::Usage(format!(
            "{}: the scenario proves a Grace backend, and this workload is for another service \
             (it does not say `grace_backend = true`); run it with `grace load`",
            compiled.origin
        )));
    }
    let mut thresholds = args.thresholds.parse()?;
    crate::control::threshold::resolve(&mut thresholds.criteria, &compiled.request_names())
        .map_err(CommandError::Usage)?;
    let baseline = match &args.baseline {
        Some(file) => Some((file.clone(), super::report::read_report(file)?)),
        None => None,
    };
    let settings = ScenarioSettings {
        target,
        load: args.shape.parse(&compiled.load)?,
        workload: source,
        proofs: compiled.proofs,
        chaos: args.chaos,
        iterations: args.iterations,
        monitor: args.monitor,
        goose_report: args.goose_report,
        out: args.out,
        thresholds,
        baseline,
    };
    let outcome = crate::scenario::run(settings, shutdown).await?;
    let report = &outcome.report;
    let s = &report.summary;
    // The process exits with the code the report records.
    match report.exit_code {
        0 => {
            crate::say!(
                "scenario passed: {} of {} criteria met; {}",
                s.criteria_passed,
                s.criteria,
                report.trends.verdict
            );
            Ok(ExitCode::SUCCESS)
        }
        code if interrupted_by_signal(code) => Err(CommandError::Interrupted),
        _ => Err(CommandError::Failed(format!(
            "scenario failed: {} of {} criteria met; failed: {}",
            s.criteria_passed,
            s.criteria,
            s.failed.join("; ")
        ))),
    }
}

pub async fn verify(args: VerifyArgs) -> Result<ExitCode, CommandError> {
    let database = args.database.required("the database to verify")?;
    let mission = args.mission;
    let client = db::connect(&database).await?;
    if !verify::mission_exists(&client, mission).await.during("looking for the mission")? {
        return Err(CommandError::Usage(format!("no mission {mission} in {database}")));
    }
    let mut chain = args.chain.settings()?;
    let proof = immutable_log::prove_database(&database, &mut chain, "grace verify").await?;
    // --full reads every row of every table with a reference: one connection per core.
    let mut clients = vec![client];
    if chain.full {
        for _ in 1..std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) {
            clients.push(db::connect(&database).await?);
        }
    }
    let checks = verify::verify_mission(&clients, mission, &proof, chain.full).await?;
    args.output.emit(&checks, |checks| {
        let lines: Vec<String> = checks.iter().map(|check| format!("{check}\n")).collect();
        format!("grace verify — mission {mission} in {database}\n{}", lines.concat())
    });
    none_failed(checks.iter().filter(|c| !c.passed).map(|c| c.id.as_str()).collect(), "failed")
}
