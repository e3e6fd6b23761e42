//! JUnit XML: one testcase per criterion, one testsuite per iteration (plus
//! the leak verdict when iterations were compared), so a CI system shows each
//! promise as a test.

use super::{escape, ScenarioReport};
use std::fmt::Write;

pub fn render(report: &ScenarioReport) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let all = report.all_criteria();
    let failures = all.iter().filter(|(_, c)| !c.passed).count() + usize::from(report.trends.leak_suspected);
    let _ = writeln!(
        xml,
        "<testsuites name=\"grace scenario\" tests=\"{}\" failures=\"{failures}\">",
        all.len() + usize::from(report.iterations.len() > 1)
    );
    for iteration in &report.iterations {
        let criteria: Vec<_> = iteration.criteria().collect();
        let failed = criteria.iter().filter(|(_, c)| !c.passed).count();
        let seconds: u64 = iteration.phases.iter().map(|p| p.duration_ms).sum();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"iteration {} (mission {})\" tests=\"{}\" failures=\"{failed}\" time=\"{:.3}\">",
            iteration.iteration,
            iteration.mission_id,
            criteria.len(),
            seconds as f64 / 1000.0
        );
        for (phase, criterion) in criteria {
            let classname = escape(&format!("phase {} {}", phase.number, phase.name));
            let name = escape(&criterion.name);
            if criterion.passed {
                let _ = writeln!(xml, "    <testcase classname=\"{classname}\" name=\"{name}\"/>");
            } else {
                let detail = escape(&criterion.detail);
                let _ = writeln!(
                    xml,
                    "    <testcase classname=\"{classname}\" name=\"{name}\">\n      <failure message=\"{detail}\">{detail}</failure>\n    </testcase>"
                );
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    if report.iterations.len() > 1 {
        let verdict = escape(&report.trends.verdict);
        let _ = writeln!(
            xml,
            "  <testsuite name=\"trends\" tests=\"1\" failures=\"{}\">",
            usize::from(report.trends.leak_suspected)
        );
        if report.trends.leak_suspected {
            let _ = writeln!(
                xml,
                "    <testcase classname=\"trends\" name=\"no leak\">\n      <failure message=\"{verdict}\">{verdict}</failure>\n    </testcase>"
            );
        } else {
            xml.push_str("    <testcase classname=\"trends\" name=\"no leak\"/>\n");
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}
