//! `grace report compare OLD NEW`: did the new run regress against the old?
//! Throughput may drop, latency percentiles rise and the error rate grow only
//! within tolerances, and integrity that held must still hold.

use super::ScenarioReport;
use crate::control::result::LatencySummary;
use serde::Serialize;

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

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub metric: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
    pub regressed: bool,
    pub note: String,
}

/// Reads one number off a latency summary.
type Pick = fn(&LatencySummary) -> f64;

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

    const TOLERANCES: Tolerances =
        Tolerances { throughput_drop: 0.1, latency_increase: 0.2, error_rate_increase: 0.01 };

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

    fn baseline() -> ScenarioReport {
        run(100.0, 10.0, 20.0, 40.0, 0.02, true)
    }

    fn regressed(new: &ScenarioReport) -> Vec<String> {
        compare(&baseline(), new, &TOLERANCES).into_iter().filter(|r| r.regressed).map(|r| r.metric).collect()
    }

    #[test]
    fn a_run_within_every_tolerance_has_not_regressed() {
        assert_eq!(regressed(&baseline()), Vec::<String>::new());
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
    fn a_metric_missing_from_the_new_report_is_a_regression() {
        let mut new = baseline();
        new.aggregates.latency = None;
        assert_eq!(regressed(&new), ["p50 latency (ms)", "p95 latency (ms)", "p99 latency (ms)"]);
        let rows = compare(&baseline(), &new, &TOLERANCES);
        assert_eq!(rows[1].note, "missing from the new report");
        let rendered = render(&rows);
        assert!(rendered.contains("REGRESSED (missing from the new report)"), "{rendered}");
    }
}
