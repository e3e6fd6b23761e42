//! Resource trends across iterations (`--iterations N`) and the leak verdict:
//! backend memory, database connections and table sizes after each iteration,
//! and whether memory or connections keep rising.

use super::{IterationReport, Trends};

/// Growth (after the first iteration) past which rising memory is a leak.
const LEAK_GROWTH: f64 = 0.25;

impl Trends {
    /// Backend memory, database connections and table sizes per iteration,
    /// and whether they point at a leak: memory or connections that rose at
    /// every iteration after the first (a warm-up) by more than `LEAK_GROWTH`
    /// in all. Tables grow by design (every iteration keeps its data); they
    /// are shown, not judged.
    pub fn of(iterations: &[IterationReport]) -> Self {
        let mib = |bytes: u64| (bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0;
        let rss: Vec<f64> = iterations.iter().filter_map(|it| it.resources.backend_rss_bytes.map(mib)).collect();
        let connections: Vec<i64> = iterations.iter().map(|it| it.resources.database_connections).collect();
        let tables: Vec<f64> = iterations.iter().map(|it| mib(it.resources.table_bytes.max(0) as u64)).collect();
        let connections_f: Vec<f64> = connections.iter().map(|c| *c as f64).collect();
        let mut suspicions = Vec::new();
        if let Some(growth) = rising(&rss) {
            suspicions
                .push(format!("backend memory rose every iteration, {:.0}% in all ({rss:?} MiB)", growth * 100.0));
        }
        if let Some(growth) = rising(&connections_f) {
            suspicions.push(format!(
                "database connections rose every iteration, {:.0}% in all ({connections:?})",
                growth * 100.0
            ));
        }
        let table_growth = match (tables.first(), tables.last()) {
            (Some(first), Some(last)) if tables.len() > 1 => {
                format!(
                    "tables grew {:.1} MiB per iteration (data kept by design)",
                    (last - first) / (tables.len() - 1) as f64
                )
            }
            _ => "one iteration: tables not compared".to_string(),
        };
        let verdict = if iterations.len() < 3 {
            format!("not judged: a leak verdict needs 3+ iterations; {table_growth}")
        } else if suspicions.is_empty() {
            format!("no leak: memory and connections level off after the first iteration; {table_growth}")
        } else {
            format!("possible leak: {}; {table_growth}", suspicions.join("; "))
        };
        Self {
            backend_rss_mib: rss,
            database_connections: connections,
            table_mib: tables,
            leak_suspected: !suspicions.is_empty(),
            verdict,
        }
    }
}

/// The growth of `values` after the first (a warm-up), when every step after
/// it rose and all of them together rose more than `LEAK_GROWTH`.
fn rising(values: &[f64]) -> Option<f64> {
    let after_warmup = values.get(1..)?;
    if after_warmup.len() < 2 || !after_warmup.windows(2).all(|w| w[1] > w[0]) {
        return None;
    }
    let growth = after_warmup[after_warmup.len() - 1] / after_warmup[0].max(f64::MIN_POSITIVE) - 1.0;
    (growth > LEAK_GROWTH).then_some(growth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ResourceSample;
    use uuid::Uuid;

    /// Iterations whose backend used `rss_mib` and held `connections` after each.
    fn iterations(rss_mib: &[u64], connections: &[i64]) -> Vec<IterationReport> {
        rss_mib
            .iter()
            .zip(connections)
            .enumerate()
            .map(|(i, (rss, connections))| IterationReport {
                iteration: i as u32 + 1,
                mission_id: Uuid::nil(),
                passed: true,
                phases: vec![],
                load: None,
                counts: None,
                consistency: vec![],
                chain_head: None,
                resources: ResourceSample {
                    backend_rss_bytes: Some(rss * 1_048_576),
                    database_connections: *connections,
                    table_bytes: (i as i64 + 1) * 10 * 1_048_576,
                },
            })
            .collect()
    }

    #[test]
    fn memory_rising_every_iteration_after_the_warm_up_is_a_leak() {
        let trends = Trends::of(&iterations(&[20, 40, 50, 60, 75], &[5, 5, 5, 5, 5]));
        assert!(trends.leak_suspected, "{}", trends.verdict);
        assert!(
            trends.verdict.starts_with("possible leak: backend memory rose every iteration, 88% in all"),
            "{}",
            trends.verdict
        );
        assert_eq!(trends.backend_rss_mib, [20.0, 40.0, 50.0, 60.0, 75.0]);
        assert!(trends.verdict.ends_with("tables grew 10.0 MiB per iteration (data kept by design)"));
    }

    #[test]
    fn connections_rising_every_iteration_are_a_leak_too() {
        let trends = Trends::of(&iterations(&[30, 30, 30, 30], &[4, 10, 14, 20]));
        assert!(trends.leak_suspected);
        assert!(trends.verdict.contains("database connections rose every iteration, 100% in all ([4, 10, 14, 20])"));
        assert!(!trends.verdict.contains("backend memory"));
    }

    #[test]
    fn a_level_or_falling_series_is_no_leak() {
        for rss in [[30, 41, 42, 41], [30, 40, 40, 40], [60, 50, 45, 44]] {
            let trends = Trends::of(&iterations(&rss, &[5, 5, 5, 5]));
            assert!(!trends.leak_suspected, "{rss:?}: {}", trends.verdict);
            assert!(trends.verdict.starts_with("no leak: "), "{}", trends.verdict);
        }
    }

    #[test]
    fn small_growth_after_the_warm_up_is_no_leak() {
        // Rising every time, but only 20% in all after the warm-up.
        let trends = Trends::of(&iterations(&[10, 50, 55, 60], &[5, 5, 5, 5]));
        assert!(!trends.leak_suspected, "{}", trends.verdict);
    }

    #[test]
    fn fewer_than_three_iterations_are_not_judged() {
        let trends = Trends::of(&iterations(&[10, 90], &[1, 9]));
        assert!(!trends.leak_suspected);
        assert!(trends.verdict.starts_with("not judged: a leak verdict needs 3+ iterations"), "{}", trends.verdict);
        let one = Trends::of(&iterations(&[10], &[1]));
        assert!(one.verdict.ends_with("one iteration: tables not compared"));
    }
}
