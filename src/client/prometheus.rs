//! Reading numbers off a Prometheus text exposition (the backend's
//! `/metrics`): the scenario samples the backend's memory from it, and the
//! monitor its request counts and latency buckets.

/// The samples of a text exposition: (series with its labels, value).
pub fn samples(scrape: &str) -> impl Iterator<Item = (&str, f64)> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(series, value)| Some((series, value.parse().ok()?))))
}

/// A metric family's samples summed over their labels.
pub fn metric_sum(scrape: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = samples(scrape)
        .filter(|(series, _)| series.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('{')))
        .map(|(_, value)| value)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP process_resident_memory_bytes Resident memory.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1048576
grace_http_requests_total{method=\"GET\",status=\"200\"} 3
grace_http_requests_total{method=\"POST\",status=\"503\"} 2
grace_http_requests_total_created 17
";

    #[test]
    fn a_family_sums_over_its_labels_and_only_its_own_series() {
        assert_eq!(metric_sum(SCRAPE, "process_resident_memory_bytes"), Some(1_048_576.0));
        assert_eq!(metric_sum(SCRAPE, "grace_http_requests_total"), Some(5.0), "not the _created series");
        assert_eq!(metric_sum(SCRAPE, "grace_absent"), None);
        assert_eq!(samples(SCRAPE).count(), 4, "comments are skipped");
    }
}
