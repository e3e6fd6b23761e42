//! `grace report`: render a report's page again (a scenario's, or a load
//! run's from its `load-result.json`), compare two reports, list past runs.

use crate::cli::args::{CompareArgs, HistoryArgs};
use crate::cli::exit::{none_failed, CommandError};
use crate::db::{self, During};
use crate::report::{compare, history, html, Rendered, ScenarioReport};
use std::path::Path;
use std::process::ExitCode;

pub fn render(report: &Path) -> Result<ExitCode, CommandError> {
    let page = match crate::report::read_any(report).map_err(CommandError::Usage)? {
        Rendered::Scenario(report) => html::render(&report),
        Rendered::Load(load) => html::render_load(&load),
    };
    crate::console::print(&page);
    Ok(ExitCode::SUCCESS)
}

pub fn compare(args: CompareArgs) -> Result<ExitCode, CommandError> {
    let tolerances = compare::Tolerances {
        throughput_drop: args.max_throughput_drop,
        latency_increase: args.max_latency_increase,
        error_rate_increase: args.max_error_rate_increase,
    };
    let (old, new) = match (&args.latest, &args.old, &args.new) {
        (Some(dir), _, _) => {
            let reports = compare::reports_under(dir);
            let (new_path, new) = compare::newest(&reports)
                .ok_or_else(|| CommandError::Usage(format!("no scenario_report_*.json under {}", dir.display())))?;
            let Some((old_path, old)) = compare::baseline(&reports, new) else {
                crate::tell!(
                    "nothing to compare {} with: no earlier passing run of the same configuration under {}",
                    new_path.display(),
                    dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            };
            crate::tell!("comparing {} with {}", new_path.display(), old_path.display());
            (old.clone(), new.clone())
        }
        (None, Some(old), Some(new)) => (read_report(old)?, read_report(new)?),
        _ => unreachable!("clap requires OLD and NEW without --latest"),
    };
    let unlike = compare::differences(&old, &new);
    if !unlike.is_empty() {
        let what = format!("the two runs were not run alike ({})", unlike.join(", "));
        if !args.allow_unlike {
            return Err(CommandError::Usage(format!(
                "{what}, so their numbers do not compare; pass --allow-unlike to compare them anyway"
            )));
        }
        crate::tell!("warning: {what}: differences below may be by design, not regressions");
    }
    let verdict = compare::RunComparison::of(compare::compare(&old, &new, &tolerances), unlike);
    args.output.emit(&verdict, |verdict| {
        let warning = match verdict.unlike.as_slice() {
            [] => String::new(),
            unlike => format!("! UNLIKE RUNS: {}\n", unlike.join(", ")),
        };
        format!("{warning}{}", compare::render(&verdict.comparisons))
    });
    none_failed(verdict.comparisons.iter().filter(|r| r.regressed).map(|r| r.metric.as_str()).collect(), "regressed")
}

pub async fn history(args: HistoryArgs) -> Result<ExitCode, CommandError> {
    let database = args.database.required("the database the scenarios ran on")?;
    let client = db::connect(&database).await?;
    let runs = history::list(&client, args.limit).await.during("reading the scenario history")?;
    args.output.emit(&runs, |runs| history::render(runs));
    Ok(ExitCode::SUCCESS)
}

pub fn read_report(path: &Path) -> Result<ScenarioReport, CommandError> {
    crate::report::read(path).map_err(CommandError::Usage)
}
