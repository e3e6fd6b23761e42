//! What a scenario reports, kept apart from how it was measured: the report's
//! data (serialized as `scenario_report_<timestamp>.json`), the per-mission
//! `e2e_metrics_<mission_id>.json`, and renderings of the same data as a
//! self-contained HTML page ([`html`]) and JUnit XML ([`junit`]). What is
//! computed over a whole run is here too: [`aggregates`] over iterations,
//! resource [`trends`] and the leak verdict, the run's [`configuration`],
//! the closing [`text`] table, and the verdict with its exit code. Past runs
//! are listed from Postgres ([`history`]) and two reports compared
//! ([`compare`]). goose's own per-worker pages are written readable offline
//! ([`crate::control::goose_page`]).

pub mod aggregates;
pub mod compare;
pub mod configuration;
pub mod history;
pub mod html;
pub mod junit;
pub mod text;
pub mod trends;

pub use configuration::{RunConfiguration, Thresholds};

use crate::control::result::{LatencySummary, LoadResult};
use crate::immutable_log::checkpoint::ChainHead;
use crate::verify::ConsistencyCheck;
use chrono::{DateTime, Utc};
use grace_loadtests::Recorded;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Bumped when a report's shape changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// Whether `exit_code` says the run was stopped by a signal (130 Ctrl-C, 143 SIGTERM).
pub fn interrupted_by_signal(exit_code: u8) -> bool {
    matches!(exit_code, crate::shutdown::EXIT_SIGINT | crate::shutdown::EXIT_SIGTERM)
}

/// How a criterion came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    /// Left unjudged: an earlier phase failed first.
    Skipped,
}

/// One pass/fail judgement; JUnit gets one testcase per criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// Not judged, because an earlier phase failed first (there was no
    /// mission, or no load result): not met, but not a failure of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

impl Criterion {
    pub fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        Self { name: name.into(), passed, detail: detail.into(), skipped: false }
    }

    /// A criterion left unjudged, and why (`detail`).
    pub fn skipped(name: impl Into<String>, why: impl Into<String>) -> Self {
        Self { name: name.into(), passed: false, detail: why.into(), skipped: true }
    }

    /// How it came out: the one reading of `passed` and `skipped`.
    pub fn verdict(&self) -> Verdict {
        match (self.passed, self.skipped) {
            (true, _) => Verdict::Passed,
            (false, false) => Verdict::Failed,
            (false, true) => Verdict::Skipped,
        }
    }

    /// ✓, ✗, or – for skipped.
    pub fn mark(&self) -> &'static str {
        match self.verdict() {
            Verdict::Passed => "✓",
            Verdict::Failed => "✗",
            Verdict::Skipped => "–",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub number: u8,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub passed: bool,
    pub criteria: Vec<Criterion>,
    /// What the phase did, for people.
    pub notes: Vec<String>,
    /// Why the phase could not finish, when it could not.
    pub error: Option<String>,
}

/// Counts from Postgres about one mission (phase 6's telemetry, and the
/// e2e metrics).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MissionCounts {
    pub contracts_created: i64,
    pub actions_completed: i64,
    pub actions_failed: i64,
    pub rejected: i64,
    pub rollbacks: i64,
    pub approvals_requested: i64,
    pub approvals_granted: i64,
    pub approvals_rejected: i64,
    pub benchmarks_run: i64,
    pub snapshots_created: i64,
    pub events_persisted: i64,
    /// Events with no log entry or whose contract is gone.
    pub orphaned_events: i64,
    pub log_entries: i64,
    /// Contracts per minute over the mission's life.
    pub action_rate_per_minute: f64,
    /// Rolled back over executed (verified or rolled back) contracts.
    pub rollback_frequency: f64,
    /// The mission's running confidence after each contract, in order.
    pub confidence_trend: Vec<f64>,
}

/// Resource use after an iteration, for leak trends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    pub backend_rss_bytes: Option<u64>,
    pub database_connections: i64,
    pub table_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationReport {
    pub iteration: u32,
    pub mission_id: Uuid,
    pub passed: bool,
    pub phases: Vec<PhaseRecord>,
    pub load: Option<LoadResult>,
    pub counts: Option<MissionCounts>,
    pub consistency: Vec<ConsistencyCheck>,
    /// The log entry phase 7's proof reached (seq and entry hash): what a
    /// later proof must still find, as the anchor file keeps it.
    #[serde(default)]
    pub chain_head: Option<ChainHead>,
    pub resources: ResourceSample,
}

impl IterationReport {
    pub fn criteria(&self) -> impl Iterator<Item = (&PhaseRecord, &Criterion)> {
        self.phases.iter().flat_map(|p| p.criteria.iter().map(move |c| (p, c)))
    }
}

/// Numbers over every iteration; percentiles from histograms merged across
/// iterations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    pub requests: u64,
    pub failures: u64,
    pub injected_faults: u64,
    pub error_rate: f64,
    /// Genuine errors only: failures that were not injected faults.
    pub genuine_error_rate: f64,
    pub throughput_rps: f64,
    pub latency: Option<LatencySummary>,
    /// Each request over every iteration, its percentiles from the merged
    /// histograms (absent from reports written before it was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_request: Vec<LatencySummary>,
}

/// Resource trends across iterations and the leak verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trends {
    pub backend_rss_mib: Vec<f64>,
    pub database_connections: Vec<i64>,
    pub table_mib: Vec<f64>,
    pub leak_suspected: bool,
    pub verdict: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub iterations: u32,
    pub iterations_passed: u32,
    pub criteria: u32,
    pub criteria_passed: u32,
    /// Criteria passed over criteria judged.
    pub success_rate: f64,
    /// Criteria that failed, skipped ones apart.
    pub failed: Vec<String>,
    /// Criteria left unjudged because an earlier phase failed.
    #[serde(default)]
    pub skipped: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub schema_version: u32,
    pub run_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub passed: bool,
    pub exit_code: u8,
    /// The options the scenario ran with; secrets redacted.
    pub configuration: Value,
    pub summary: Summary,
    pub iterations: Vec<IterationReport>,
    pub aggregates: Aggregates,
    pub trends: Trends,
    /// The earlier run this one was compared with, when there was one (the
    /// last passing run of the same configuration in the reports directory,
    /// or `--baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<compare::Baseline>,
}

impl ScenarioReport {
    /// The report of a run: its aggregates and trends computed and its
    /// verdict drawn. `merged`: the load histograms of every iteration merged.
    pub fn new(
        run_id: Uuid,
        started_at: DateTime<Utc>,
        configuration: &RunConfiguration,
        iterations: Vec<IterationReport>,
        merged: &Recorded,
        interrupted: Option<u8>,
    ) -> Self {
        let trends = Trends::of(&iterations);
        let mut report = Self {
            schema_version: SCHEMA_VERSION,
            run_id,
            started_at,
            finished_at: Utc::now(),
            passed: false,
            exit_code: 1,
            configuration: serde_json::to_value(configuration).expect("configurations serialize"),
            summary: Self::summarize(&iterations, &trends),
            aggregates: Aggregates::of(&iterations, merged),
            iterations,
            trends,
            baseline: None,
        };
        report.judge(interrupted);
        report
    }

    /// Adds phase 8's record (how writing the reports went) to the last
    /// iteration and draws the verdict again.
    pub fn add_report_phase(&mut self, record: PhaseRecord) {
        let interrupted = interrupted_by_signal(self.exit_code).then_some(self.exit_code);
        if let Some(last) = self.iterations.last_mut() {
            last.passed &= record.passed;
            last.phases.push(record);
        }
        self.judge(interrupted);
    }

    /// The verdict, and the exit code the process ends with: 0 when every
    /// criterion held, 130 when interrupted, else 1.
    /// The verdict; `interrupted` by a signal, the code that signal gives.
    fn judge(&mut self, interrupted: Option<u8>) {
        self.summary = Self::summarize(&self.iterations, &self.trends);
        self.passed = self.summary.failed.is_empty() && interrupted.is_none();
        self.exit_code = match (self.passed, interrupted) {
            (_, Some(code)) => code,
            (true, None) => 0,
            (false, None) => 1,
        };
        self.finished_at = Utc::now();
    }

    pub fn summarize(iterations: &[IterationReport], trends: &Trends) -> Summary {
        let criteria: Vec<&Criterion> = iterations.iter().flat_map(|it| it.criteria().map(|(_, c)| c)).collect();
        let passed = criteria.iter().filter(|c| c.passed).count() as u32;
        let mut failed: Vec<String> = iterations
            .iter()
            .flat_map(|it| {
                it.criteria()
                    .filter(|(_, c)| c.verdict() == Verdict::Failed)
                    .map(move |(p, c)| format!("iteration {} phase {} {}: {}", it.iteration, p.number, p.name, c.name))
            })
            .collect();
        if trends.leak_suspected {
            failed.push(format!("leak: {}", trends.verdict));
        }
        Summary {
            iterations: iterations.len() as u32,
            iterations_passed: iterations.iter().filter(|it| it.passed).count() as u32,
            criteria: criteria.len() as u32,
            criteria_passed: passed,
            success_rate: if criteria.is_empty() { 0.0 } else { f64::from(passed) / criteria.len() as f64 },
            failed,
            skipped: criteria.iter().filter(|c| c.skipped).count() as u32,
        }
    }

    /// The seed's `e2e_metrics_<mission_id>.json` for one iteration.
    pub fn e2e_metrics(&self, iteration: &IterationReport, chaos: bool) -> Value {
        let counts = iteration.counts.clone().unwrap_or_default();
        let load = iteration.load.as_ref();
        let overall = load.and_then(|l| l.latency.first());
        let per_endpoint: Vec<&LatencySummary> = load.map(|l| l.latency.iter().skip(1).collect()).unwrap_or_default();
        let validation: Vec<Value> = iteration
            .criteria()
            .map(|(p, c)| json!({ "phase": p.number, "criterion": c.name, "passed": c.passed, "detail": c.detail }))
            .collect();
        json!({
            "schema_version": SCHEMA_VERSION,
            "mission_id": iteration.mission_id,
            "timestamp": self.finished_at,
            "chaos": chaos,
            "passed": iteration.passed,
            "actions_triggered": counts.contracts_created,
            "actions_completed": counts.actions_completed,
            "actions_failed": counts.actions_failed,
            "approvals_requested": counts.approvals_requested,
            "approvals_granted": counts.approvals_granted,
            "approvals_rejected": counts.approvals_rejected,
            "contracts_created": counts.contracts_created,
            "benchmarks_run": counts.benchmarks_run,
            "snapshots_created": counts.snapshots_created,
            "rollbacks": counts.rollbacks,
            "avg_latency_ms": overall.map(|o| o.mean_ms),
            "max_latency_ms": overall.map(|o| o.max_ms),
            "p50_latency_ms": overall.map(|o| o.p50_ms),
            "p90_latency_ms": overall.map(|o| o.p90_ms),
            "p95_latency_ms": overall.map(|o| o.p95_ms),
            "p99_latency_ms": overall.map(|o| o.p99_ms),
            "p999_latency_ms": overall.map(|o| o.p999_ms),
            "throughput_rps": load.map(|l| l.total.requests_per_second),
            "requests": load.map(|l| l.total.requests),
            "request_failures": load.map(|l| l.total.failures),
            "injected_faults": load.map(|l| l.injected_faults),
            "events_persisted": counts.events_persisted,
            "orphaned_events": counts.orphaned_events,
            "log_entries": counts.log_entries,
            "per_endpoint": per_endpoint,
            "consistency": iteration.consistency,
            "validation_results": validation,
        })
    }

    /// `scenario_report_<start, UTC>`: the name of the report's JSON and HTML files.
    pub fn file_stem(&self) -> String {
        format!("scenario_report_{}", self.started_at.format("%Y%m%dT%H%M%SZ"))
    }

    /// Writes every report file into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, chaos: bool, goose_reports: &[(String, String)]) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let stem = self.file_stem();
        let mut written = Vec::new();
        for iteration in &self.iterations {
            let path = dir.join(format!("e2e_metrics_{}.json", iteration.mission_id));
            write_json(&path, &self.e2e_metrics(iteration, chaos))?;
            written.push(path);
        }
        let path = dir.join(format!("{stem}.json"));
        write_json(&path, &serde_json::to_value(self).expect("reports serialize"))?;
        written.push(path);
        let path = dir.join(format!("{stem}.html"));
        std::fs::write(&path, html::render(self))?;
        written.push(path);
        let path = dir.join("junit.xml");
        std::fs::write(&path, junit::render(self))?;
        written.push(path);
        for (name, report) in goose_reports {
            let path = dir.join(name);
            std::fs::write(&path, crate::control::goose_page::offline(report))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// A `scenario_report_*.json` read back; the error names the file and why.
pub fn read(path: &Path) -> Result<ScenarioReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a scenario_report_*.json: {e}", path.display()))
}

/// What `grace report render` renders.
pub enum Rendered {
    Scenario(Box<ScenarioReport>),
    Load(Box<crate::control::result::LoadResult>),
}

/// A scenario report or a load result (`load-result.json`), told apart by
/// the scenario report's `schema_version`.
pub fn read_any(path: &Path) -> Result<Rendered, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let (parsed, what) = if value.get("schema_version").is_some() {
        (serde_json::from_value(value).map(|r| Rendered::Scenario(Box::new(r))), "scenario_report_*.json")
    } else {
        (serde_json::from_value(value).map(|r| Rendered::Load(Box::new(r))), "load-result.json")
    };
    parsed.map_err(|e| format!("{} is not a {what} Grace reads: {e}", path.display()))
}

fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value).expect("JSON values serialize"))
}

/// Text safe inside HTML and XML, in content and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control::plan::LoadProfile;

    /// The options of a short bundled run.
    pub(crate) fn configuration() -> RunConfiguration {
        RunConfiguration {
            backend: "http://127.0.0.1:1".into(),
            bundled_backend: true,
            database: "postgres://grace:***@127.0.0.1:5432/grace".into(),
            profile: LoadProfile { users: 10, run_time_secs: 3, stages: Vec::new(), rate: None },
            expect_workers: None,
            iterations: 1,
            chaos: false,
            chaos_rate: None,
            thresholds: Thresholds {
                max_avg_ms: 500.0,
                max_latency_ms: 2000.0,
                max_error_rate: 0.1,
                criteria: Vec::new(),
            },
            out: "grace-reports".into(),
        }
    }

    /// A report of `iterations` iterations with one passed criterion each.
    pub(crate) fn report_with(iterations: u32) -> ScenarioReport {
        let iterations = (1..=iterations)
            .map(|n| IterationReport {
                iteration: n,
                mission_id: Uuid::from_u128(u128::from(n)),
                passed: true,
                phases: vec![PhaseRecord {
                    number: 1,
                    name: "mission setup".into(),
                    started_at: DateTime::UNIX_EPOCH,
                    duration_ms: 10,
                    passed: true,
                    criteria: vec![Criterion::new("mission created with its id", true, "ok")],
                    notes: vec![],
                    error: None,
                }],
                load: None,
                counts: None,
                consistency: vec![],
                chain_head: None,
                resources: ResourceSample::default(),
            })
            .collect();
        ScenarioReport::new(Uuid::nil(), DateTime::UNIX_EPOCH, &configuration(), iterations, &Recorded::default(), None)
    }

    fn report_phase(passed: bool) -> PhaseRecord {
        PhaseRecord {
            number: 8,
            name: "report".into(),
            started_at: DateTime::UNIX_EPOCH,
            duration_ms: 3,
            passed,
            criteria: vec![Criterion::new("reports written", passed, "somewhere")],
            notes: vec![],
            error: None,
        }
    }

    #[test]
    fn the_exit_code_is_the_verdict_and_an_interrupted_run_says_its_signal() {
        let passed = report_with(1);
        assert!(passed.passed);
        assert_eq!(passed.exit_code, 0);
        let configuration: RunConfiguration = serde_json::from_value(passed.configuration.clone()).unwrap();
        let interrupted = ScenarioReport::new(
            Uuid::nil(),
            DateTime::UNIX_EPOCH,
            &configuration,
            passed.iterations.clone(),
            &Recorded::default(),
            Some(143),
        );
        assert!(!interrupted.passed);
        assert_eq!(interrupted.exit_code, 143);
        let mut failed = passed.clone();
        failed.iterations[0].phases[0].criteria[0].passed = false;
        failed.judge(None);
        assert_eq!((failed.passed, failed.exit_code), (false, 1));
    }

    #[test]
    fn a_failed_report_phase_fails_the_run_and_an_interrupted_one_stays_130() {
        let mut report = report_with(2);
        report.add_report_phase(report_phase(true));
        assert_eq!((report.passed, report.exit_code, report.summary.criteria), (true, 0, 3));
        assert_eq!(report.iterations[1].phases.last().unwrap().number, 8);
        let mut report = report_with(2);
        report.add_report_phase(report_phase(false));
        assert_eq!((report.passed, report.exit_code), (false, 1));
        assert!(!report.iterations[1].passed);
        assert_eq!(report.summary.failed, ["iteration 2 phase 8 report: reports written"]);
        let mut interrupted = report_with(1);
        interrupted.judge(Some(130));
        interrupted.add_report_phase(report_phase(true));
        assert_eq!(interrupted.exit_code, 130);
    }
}
