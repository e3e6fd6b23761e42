//! `grace report`: render a report's page again, compare two reports, list
//! past runs.

use crate::cli::args::{CompareArgs, HistoryArgs};
use crate::cli::exit::{none_failed, CommandError};
use crate::db::{self, DbError};
use crate::report::{compare, history, html, ScenarioReport};
use std::path::Path;
use std::process::ExitCode;

pub fn render(report: &Path) -> Result<ExitCode, CommandError> {
    crate::console::print(&html::render(&read_report(report)?));
    Ok(ExitCode::SUCCESS)
}

pub fn compare(args: CompareArgs) -> Result<ExitCode, CommandError> {
    let tolerances = compare::Tolerances {
        throughput_drop: args.max_throughput_drop,
        latency_increase: args.max_latency_increase,
        error_rate_increase: args.max_error_rate_increase,
    };
    let rows = compare::compare(&read_report(&args.old)?, &read_report(&args.new)?, &tolerances);
    args.output.emit(&rows, |rows| compare::render(rows));
    none_failed(rows.iter().filter(|r| r.regressed).map(|r| r.metric.as_str()).collect(), "regressed")
}

pub async fn history(args: HistoryArgs) -> Result<ExitCode, CommandError> {
    let database = args.database.required("the database the scenarios ran on")?;
    let client = db::connect(&database).await?;
    let runs = history::list(&client, args.limit.clamp(1, 10_000)).await.map_err(DbError::Query)?;
    args.output.emit(&runs, |runs| history::render(runs));
    Ok(ExitCode::SUCCESS)
}

fn read_report(path: &Path) -> Result<ScenarioReport, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CommandError::Usage(format!("{} is not a scenario_report_*.json: {e}", path.display())))
}
