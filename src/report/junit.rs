//! JUnit XML, written with quick-junit: one testcase per criterion, one
//! testsuite per iteration (plus the leak verdict when iterations were
//! compared), so a CI system shows each promise as a test.
//!
//! Names are stable from run to run — suites `iteration N`, classes
//! `phase N name`, tests by criterion — so CI history lines runs up; the
//! mission of an iteration is a property, not part of a name. A testcase's
//! time is the time of the phase that judged it; a passing one says what was
//! measured (its system-out), and a criterion an earlier phase's failure left
//! unjudged is skipped, not failed.

use super::{Criterion, PhaseRecord, ScenarioReport, Verdict};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

pub fn render(report: &ScenarioReport) -> String {
    let mut junit = Report::new("grace scenario");
    junit.set_timestamp(report.started_at.fixed_offset());
    junit.set_time((report.finished_at - report.started_at).to_std().unwrap_or_default());
    for iteration in &report.iterations {
        let mut suite = TestSuite::new(format!("iteration {}", iteration.iteration));
        suite.add_property(Property::new("mission_id", iteration.mission_id.to_string()));
        if let Some(first) = iteration.phases.first() {
            suite.set_timestamp(first.started_at.fixed_offset());
        }
        suite.set_time(Duration::from_millis(iteration.phases.iter().map(|p| p.duration_ms).sum()));
        suite.add_test_cases(iteration.criteria().map(|(phase, criterion)| test_case(phase, criterion)));
        junit.add_test_suite(suite);
    }
    if report.iterations.len() > 1 {
        let mut suite = TestSuite::new("trends");
        let status =
            if report.trends.leak_suspected { failure(&report.trends.verdict) } else { TestCaseStatus::success() };
        let mut case = TestCase::new("no leak", status);
        case.set_classname("trends").set_system_out(report.trends.verdict.as_str());
        suite.add_test_case(case);
        junit.add_test_suite(suite);
    }
    junit.to_string().expect("a report in memory serializes")
}

fn test_case(phase: &PhaseRecord, criterion: &Criterion) -> TestCase {
    let status = match criterion.verdict() {
        Verdict::Passed => TestCaseStatus::success(),
        Verdict::Failed => failure(&criterion.detail),
        Verdict::Skipped => {
            let mut skipped = TestCaseStatus::skipped();
            skipped.set_message(criterion.detail.as_str());
            skipped
        }
    };
    let mut case = TestCase::new(criterion.name.as_str(), status);
    case.set_classname(format!("phase {} {}", phase.number, phase.name))
        .set_timestamp(phase.started_at.fixed_offset())
        .set_time(Duration::from_millis(phase.duration_ms));
    if criterion.passed {
        case.set_system_out(criterion.detail.as_str());
    }
    case
}

fn failure(why: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(why).set_description(why);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::report_with;

    #[test]
    fn criteria_are_testcases_with_stable_names_times_and_skips() {
        let mut report = report_with(2);
        let phases = &mut report.iterations[0].phases;
        phases[0].criteria.push(Criterion::new("p95 within its limit", false, "812.0 ms (limit 500 ms)"));
        phases.push(PhaseRecord {
            number: 6,
            name: "telemetry".into(),
            started_at: chrono::DateTime::UNIX_EPOCH,
            duration_ms: 1500,
            passed: false,
            criteria: vec![Criterion::skipped("latency measured", "phase 5 left no load result to judge")],
            notes: vec![],
            error: None,
        });
        let xml = render(&report);
        let parsed = Report::deserialize_from_str(&xml).expect("valid JUnit");
        assert_eq!(parsed.name.as_ref().unwrap().as_str(), "grace scenario");
        assert_eq!((parsed.tests, parsed.failures), (5, 1));
        let names: Vec<&str> = parsed.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["iteration 1", "iteration 2", "trends"]);
        let mission = report.iterations[0].mission_id.to_string();
        assert_eq!(xml.matches(&mission).count(), 1, "the mission is a property, in no name: {xml}");
        let first = &parsed.test_suites[0];
        assert_eq!(first.properties[0].value.as_str(), report.iterations[0].mission_id.to_string());
        let cases: Vec<(&str, &str, Option<Duration>)> = first
            .test_cases
            .iter()
            .map(|c| (c.classname.as_ref().unwrap().as_str(), c.name.as_str(), c.time))
            .collect();
        assert_eq!(
            cases,
            [
                ("phase 1 mission setup", "mission created with its id", Some(Duration::from_millis(10))),
                ("phase 1 mission setup", "p95 within its limit", Some(Duration::from_millis(10))),
                ("phase 6 telemetry", "latency measured", Some(Duration::from_millis(1500))),
            ]
        );
        // A pass says what was measured; a failure why; a skip is not a failure.
        assert_eq!(first.test_cases[0].system_out.as_ref().unwrap().as_str(), "ok");
        assert!(matches!(
            &first.test_cases[1].status,
            TestCaseStatus::NonSuccess { kind: NonSuccessKind::Failure, message: Some(m), .. } if m.as_str() == "812.0 ms (limit 500 ms)"
        ));
        assert!(matches!(&first.test_cases[2].status, TestCaseStatus::Skipped { .. }));
        assert_eq!(first.failures, 1);
    }
}
