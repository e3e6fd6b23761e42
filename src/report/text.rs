//! The scenario's closing text on a terminal: one line per iteration, and the
//! trend verdict under it (printed when a run has several iterations).

use super::ScenarioReport;

impl ScenarioReport {
    pub fn iteration_table(&self) -> String {
        let mut table = format!(
            "\n{:>4} {:<36} {:>6} {:>9} {:>8} {:>8} {:>9} {:>6} {:>10}\n",
            "it", "mission", "result", "requests", "req/s", "p95 ms", "RSS MiB", "conns", "tables MiB"
        );
        for it in &self.iterations {
            let load = it.load.as_ref();
            let p95 = load.and_then(|l| l.latency.first()).map_or_else(|| "-".into(), |o| format!("{:.1}", o.p95_ms));
            let rss =
                it.resources.backend_rss_bytes.map_or_else(|| "-".into(), |b| format!("{:.1}", b as f64 / 1_048_576.0));
            table.push_str(&format!(
                "{:>4} {:<36} {:>6} {:>9} {:>8.1} {:>8} {:>9} {:>6} {:>10.1}\n",
                it.iteration,
                it.mission_id,
                if it.passed { "passed" } else { "FAILED" },
                load.map_or(0, |l| l.total.requests),
                load.map_or(0.0, |l| l.total.requests_per_second),
                p95,
                rss,
                it.resources.database_connections,
                it.resources.table_bytes as f64 / 1_048_576.0,
            ));
        }
        table.push_str(&format!("trends: {}\n", self.trends.verdict));
        table
    }
}

#[cfg(test)]
mod tests {
    use crate::report::tests::report_with;
    use crate::report::ResourceSample;

    #[test]
    fn one_line_per_iteration_then_the_verdict() {
        let mut report = report_with(3);
        report.iterations[1].passed = false;
        report.iterations[2].resources =
            ResourceSample { backend_rss_bytes: Some(3 * 1_048_576), database_connections: 7, table_bytes: 1_048_576 };
        report.trends.verdict = "no leak: level".into();
        let table = report.iteration_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[1].trim_start().starts_with("it mission"), "{table}");
        assert!(lines[2].contains(" passed ") && lines[3].contains(" FAILED "), "{table}");
        assert!(lines[4].ends_with(" passed         0      0.0        -       3.0      7        1.0"), "{table}");
        assert_eq!(lines[5], "trends: no leak: level");
    }
}
