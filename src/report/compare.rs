//! `grace report compare OLD NEW`: did the new run regress against the old?
//! Throughput may drop, latency percentiles rise and the error rate grow only
//! within tolerances, and integrity that held must still hold.
//!
//! Only runs of the same shape compare: 50 users against 200, or 30 s against
//! 10 min, differ by design, so two unlike runs are named as such (and the
//! command refuses them unless told otherwise). `baseline` finds, among a
//! directory's reports, the last passing one alike to a new run — what a
//! nightly job compares with.

use super::ScenarioReport;
use crate::control::result::LatencySummary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The settings that shape a run's numbers: two runs compare only when they
/// agree on each. (The backend's address, the database and the thresholds
/// do not change what is measured.)
const SHAPING: [(&str, &str); 8] = [
    ("users", "users"),
    ("run_time_secs", "run time (s)"),
    ("stages", "stages"),
    ("rate", "rate (req/s)"),
    ("expect_workers", "workers"),
    ("iterations", "iterations"),
    ("chaos", "chaos"),
    ("bundled_backend", "bundled backend"),
];

/// How `new` was run differently from `old`, setting by setting
/// (`users 10 → 50`); empty when the two are alike.
pub fn differences(old: &ScenarioReport, new: &ScenarioReport) -> Vec<String> {
    let show = |value: &Value| if value.is_null() { "none".to_string() } else { value.to_string() };
    SHAPING
        .iter()
        .filter_map(|(key, label)| {
            let (before, after) = (&old.configuration[key], &new.configuration[key]);
            (before != after).then(|| format!("{label} {} → {}", show(before), show(after)))
        })
        .collect()
}

/// What a run was compared with, kept in its report: the page shows the
/// table, and a report rendered again shows the same one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The earlier report's file, as it was found or given.
    pub file: String,
    pub run_id: uuid::Uuid,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// How the runs' shapes differ (empty when found alike).
    pub unlike: Vec<String>,
    /// Judged by the default tolerances.
    pub comparisons: Vec<Comparison>,
}

impl Baseline {
    /// `new` against the report `old` read from `file`.
    pub fn of(file: &Path, old: &ScenarioReport, new: &ScenarioReport) -> Self {
        Self {
            file: file.display().to_string(),
            run_id: old.run_id,
            started_at: old.started_at,
            unlike: differences(old, new),
            comparisons: compare(old, new, &Tolerances::DEFAULT),
        }
    }
}

/// A report read back, and the file it came from.
pub type ReportFile = (PathBuf, ScenarioReport);

/// Among `reports`, the newest that started before `new`, passed, and was
/// run alike; `None` when there is none.
pub fn baseline<'a>(reports: &'a [ReportFile], new: &ScenarioReport) -> Option<&'a ReportFile> {
    reports
        .iter()
        .filter(|(_, old)| {
            old.run_id != new.run_id
                && old.started_at < new.started_at
                && old.passed
                && differences(old, new).is_empty()
        })
        .max_by_key(|(_, old)| old.started_at)
}

/// The newest of `reports`.
pub fn newest(reports: &[ReportFile]) -> Option<&ReportFile> {
    reports.iter().max_by_key(|(_, report)| report.started_at)
}

/// Every readable `scenario_report_*.json` under `dir`, searched
/// recursively; files that are not scenario reports are passed over.
pub fn reports_under(dir: &Path) -> Vec<ReportFile> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.flatten().map(|entry| entry.path()) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() {
                pending.push(path);
            } else if name.starts_with("scenario_report_") && name.ends_with(".json") {
                if let Ok(report) = super::read(&path) {
                    found.push((path, report));
                }
            }
        }
    }
    found
}

/// How much worse the new run may be before it counts as a regression.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tolerances {
    /// Fraction throughput may fall (0.1 = 10%).
    pub throughput_drop: f64,
    /// Fraction a latency percentile may rise.
    pub latency_increase: f64,
    /// Absolute rise in error rate (0.01 = one percentage point).
    pub error_rate_increase: f64,
}

impl Tolerances {
    /// What `grace report compare` allows unless told otherwise, and what a
    /// scenario's page judges its comparison by.
    pub const DEFAULT: Tolerances =
        Tolerances { throughput_drop: 0.10, latency_increase: 0.20, error_rate_increase: 0.01 };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub metric: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
    pub regressed: bool,
    pub note: String,
}

/// Reads one number off a latency summary.
type Pick = fn(&LatencySummary) -> f64;

/// Two runs compared: the verdict with its rows (`--json` prints it whole).
#[derive(Debug, Clone, Serialize)]
pub struct RunComparison {
    /// Any row regressed past its tolerance (the command exits 1).
    pub regressed: bool,
    /// How the two runs were not run alike (compared anyway with --allow-unlike).
    pub unlike: Vec<String>,
    pub comparisons: Vec<Comparison>,
}

impl RunComparison {
    pub fn of(comparisons: Vec<Comparison>, unlike: Vec<String>) -> Self {
        Self { regressed: comparisons.iter().any(|row| row.regressed), unlike, comparisons }
    }
}

pub fn compare(old: &ScenarioReport, new: &ScenarioReport, tolerances: &Tolerances) -> Vec<Comparison> {
    let mut rows = Vec::new();
    let (o, n) = (&old.aggregates, &new.aggregates);
    rows.push(judge("throughput (req/s)", Some(o.throughput_rps), Some(n.throughput_rps), |old, new| {
        (new < old * (1.0 - tolerances.throughput_drop), format!("may drop {:.0}%", tolerances.throughput_drop * 100.0))
    }));
    let latency =
        |report: &ScenarioReport, pick: fn(&LatencySummary) -> f64| report.aggregates.latency.as_ref().map(pick);
    let percentiles: [(&str, Pick); 3] =
        [("p50 latency (ms)", |l| l.p50_ms), ("p95 latency (ms)", |l| l.p95_ms), ("p99 latency (ms)", |l| l.p99_ms)];
    for (name, pick) in percentiles {
        rows.push(judge(name, latency(old, pick), latency(new, pick), |old, new| {
            (
                new > old * (1.0 + tolerances.latency_increase),
                format!("may rise {:.0}%", tolerances.latency_increase * 100.0),
            )
        }));
    }
    rows.push(judge(
        "error rate (%)",
        Some(o.genuine_error_rate * 100.0),
        Some(n.genuine_error_rate * 100.0),
        |old, new| {
            (
                new > old + tolerances.error_rate_increase * 100.0,
                format!("may rise {:.1} points", tolerances.error_rate_increase * 100.0),
            )
        },
    ));
    let integrity = |report: &ScenarioReport| {
        let all = report.iterations.iter().flat_map(|it| &it.consistency);
        let held = all.clone().all(|c| c.passed) && all.count() > 0;
        f64::from(u8::from(held))
    };
    rows.push(judge("integrity held (1 = yes)", Some(integrity(old)), Some(integrity(new)), |old, new| {
        (new < old, "must keep holding".to_string())
    }));
    rows
}

fn judge(metric: &str, old: Option<f64>, new: Option<f64>, rule: impl Fn(f64, f64) -> (bool, String)) -> Comparison {
    let (regressed, note) = match (old, new) {
        (Some(old), Some(new)) => rule(old, new),
        (_, None) => (true, "missing from the new report".to_string()),
        (None, Some(_)) => (false, "new in this report".to_string()),
    };
    Comparison { metric: metric.to_string(), old, new, regressed, note }
}

pub fn render(rows: &[Comparison]) -> String {
    let mut text = format!("{:<26} {:>12} {:>12} {:>9}  {}\n", "metric", "old", "new", "change", "verdict");
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    for row in rows {
        let change = match (row.old, row.new) {
            (Some(old), Some(new)) if old != 0.0 => format!("{:+.1}%", (new - old) / old * 100.0),
            _ => "-".to_string(),
        };
        let verdict = if row.regressed { format!("REGRESSED ({})", row.note) } else { format!("ok ({})", row.note) };
        text.push_str(&format!(
            "{:<26} {:>12} {:>12} {:>9}  {verdict}\n",
            row.metric,
            show(row.old),
            show(row.new),
            change
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::report_with;
    use crate::report::Aggregates;
    use crate::verify::ConsistencyCheck;

    const TOLERANCES: Tolerances = Tolerances::DEFAULT;

    /// A run with these numbers, whose consistency checks `held` or not.
    fn run(throughput: f64, p50: f64, p95: f64, p99: f64, genuine_error_rate: f64, held: bool) -> ScenarioReport {
        let mut report = report_with(1);
        let latency = LatencySummary {
            name: "overall".into(),
            requests: 1000,
            failures: 0,
            mean_ms: p50,
            p50_ms: p50,
            p90_ms: p95,
            p95_ms: p95,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
        };
        report.aggregates = Aggregates {
            requests: 1000,
            genuine_error_rate,
            error_rate: genuine_error_rate,
            throughput_rps: throughput,
            latency: Some(latency),
            ..Aggregates::default()
        };
        report.iterations[0].consistency = vec![ConsistencyCheck {
            id: "C1".into(),
            name: "no orphans".into(),
            passed: held,
            checked: 1,
            violations: u64::from(!held),
            examples: vec![],
            basis: String::new(),
        }];
        report
    }

    fn reference() -> ScenarioReport {
        run(100.0, 10.0, 20.0, 40.0, 0.02, true)
    }

    fn regressed(new: &ScenarioReport) -> Vec<String> {
        compare(&reference(), new, &TOLERANCES).into_iter().filter(|r| r.regressed).map(|r| r.metric).collect()
    }

    #[test]
    fn a_run_within_every_tolerance_has_not_regressed() {
        assert_eq!(regressed(&reference()), Vec::<String>::new());
        assert_eq!(regressed(&run(91.0, 11.9, 23.9, 47.9, 0.029, true)), Vec::<String>::new());
        assert_eq!(regressed(&run(500.0, 1.0, 2.0, 3.0, 0.0, true)), Vec::<String>::new(), "better is never worse");
    }

    #[test]
    fn each_metric_past_its_tolerance_is_a_regression_of_that_metric_alone() {
        let cases = [
            (run(89.0, 10.0, 20.0, 40.0, 0.02, true), "throughput (req/s)"),
            (run(100.0, 12.1, 20.0, 40.0, 0.02, true), "p50 latency (ms)"),
            (run(100.0, 10.0, 24.1, 40.0, 0.02, true), "p95 latency (ms)"),
            (run(100.0, 10.0, 20.0, 48.1, 0.02, true), "p99 latency (ms)"),
            (run(100.0, 10.0, 20.0, 40.0, 0.031, true), "error rate (%)"),
            (run(100.0, 10.0, 20.0, 40.0, 0.02, false), "integrity held (1 = yes)"),
        ];
        for (new, metric) in cases {
            assert_eq!(regressed(&new), [metric], "{metric}");
        }
    }

    #[test]
    fn runs_of_another_shape_are_named_unlike_setting_by_setting() {
        let old = reference();
        assert!(differences(&old, &reference()).is_empty());
        let mut new = reference();
        new.configuration["users"] = 50.into();
        new.configuration["rate"] = 100.0.into();
        new.configuration["backend"] = "http://elsewhere:1".into();
        assert_eq!(differences(&old, &new), ["users 10 → 50", "rate (req/s) none → 100.0"]);
    }

    #[test]
    fn the_baseline_is_the_newest_earlier_passing_alike_report() {
        let dir = tempfile::tempdir().unwrap();
        let at = |minutes: i64| chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(minutes);
        let write = |name: &str, minutes: i64, passed: bool, users: u32| {
            let mut report = reference();
            report.run_id = uuid::Uuid::new_v4();
            report.started_at = at(minutes);
            report.passed = passed;
            report.configuration["users"] = users.into();
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
            report
        };
        write("a/scenario_report_1.json", 1, true, 10);
        write("b/scenario_report_2.json", 2, true, 10);
        write("c/scenario_report_3.json", 3, false, 10);
        write("d/scenario_report_4.json", 4, true, 50);
        let new = write("e/scenario_report_5.json", 5, true, 10);
        std::fs::write(dir.path().join("scenario_report_garbage.json"), "{").unwrap();
        let reports = reports_under(dir.path());
        let (path, found) = baseline(&reports, &new).unwrap();
        assert!(path.ends_with("b/scenario_report_2.json"), "{}", path.display());
        assert_eq!(found.started_at, at(2));
        assert_eq!(newest(&reports).unwrap().1.run_id, new.run_id);
        let mut lonely = new.clone();
        lonely.configuration["users"] = 7.into();
        assert!(baseline(&reports, &lonely).is_none());
    }

    #[test]
    fn a_metric_missing_from_the_new_report_is_a_regression() {
        let mut new = reference();
        new.aggregates.latency = None;
        assert_eq!(regressed(&new), ["p50 latency (ms)", "p95 latency (ms)", "p99 latency (ms)"]);
        let rows = compare(&reference(), &new, &TOLERANCES);
        assert_eq!(rows[1].note, "missing from the new report");
        let rendered = render(&rows);
        assert!(rendered.contains("REGRESSED (missing from the new report)"), "{rendered}");
    }
}
