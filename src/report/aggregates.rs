//! Numbers over every iteration of a run: counts summed, the genuine error
//! rate apart from injected faults, and latency percentiles — overall and by
//! request — from the histograms of all iterations merged, never averaged
//! percentiles.

use super::{Aggregates, IterationReport};
use crate::control::result::LatencySummary;
use grace_loadtests::Recorded;
use grace_loadtests::OVERALL;

impl Aggregates {
    /// `merged`: every iteration's load histograms merged into one.
    pub fn of(iterations: &[IterationReport], merged: &Recorded) -> Self {
        let loads: Vec<_> = iterations.iter().filter_map(|it| it.load.as_ref()).collect();
        let requests: u64 = loads.iter().map(|l| l.total.requests).sum();
        let failures: u64 = loads.iter().map(|l| l.total.failures).sum();
        let injected: u64 = loads.iter().map(|l| l.injected_faults.min(l.total.failures)).sum();
        // Iterations run one after another: the run's rate is their mean.
        let throughput = if loads.is_empty() {
            0.0
        } else {
            loads.iter().map(|l| l.total.requests_per_second).sum::<f64>() / loads.len() as f64
        };
        Self {
            requests,
            failures,
            injected_faults: injected,
            error_rate: failures as f64 / requests.max(1) as f64,
            genuine_error_rate: (failures - injected) as f64 / requests.max(1) as f64,
            throughput_rps: throughput,
            latency: (!merged.overall.is_empty())
                .then(|| LatencySummary::of(OVERALL, (requests, failures), &merged.overall)),
            by_request: merged
                .by_name
                .iter()
                .map(|(name, histogram)| {
                    let of_name = loads.iter().flat_map(|l| l.latency.iter().filter(|s| &s.name == name));
                    let counts = of_name.fold((0, 0), |(r, f), s| (r + s.requests, f + s.failures));
                    LatencySummary::of(name, counts, histogram)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::acked_writes::AckedWritesCheck;
    use crate::control::plan::LoadProfile;
    use crate::control::result::{LoadResult, Throughput};
    use crate::report::ResourceSample;
    use grace_loadtests::Recorder;
    use std::time::Duration;
    use uuid::Uuid;

    /// An iteration whose load made `latencies_ms` requests, `failures` of
    /// them failed (`injected` of those on purpose), at `rps`; and its histogram.
    fn iteration(latencies_ms: &[u64], failures: u64, injected: u64, rps: f64) -> (IterationReport, Recorded) {
        let recorder = Recorder::default();
        for ms in latencies_ms {
            recorder.record_latency("/api/chat", Duration::from_millis(*ms));
        }
        let requests = latencies_ms.len() as u64;
        let load = LoadResult {
            run_id: Uuid::nil(),
            profile: LoadProfile { users: 1, run_time_secs: 10, stages: vec![], rate: None },
            rate_reached: None,
            workers: vec![],
            total: Throughput { requests, failures, requests_per_second: rps },
            injected_faults: injected,
            body_bytes: Default::default(),
            latency: vec![],
            distribution: Default::default(),
            timeline: Default::default(),
            over_time: Default::default(),
            backends: Default::default(),
            statuses: Default::default(),
            errors: vec![],
            acked_writes: AckedWritesCheck::of_nothing(),
            proofs: vec![],
            orphans: None,
            lost_workers: vec![],
            control_plane_outages: vec![],
            clock_skews: vec![],
            thresholds: vec![],
            interrupted: false,
            passed: true,
        };
        let report = IterationReport {
            iteration: 1,
            mission_id: Uuid::nil(),
            passed: true,
            phases: vec![],
            load: Some(load),
            counts: None,
            consistency: vec![],
            chain_head: None,
            resources: ResourceSample::default(),
        };
        (report, recorder.snapshot())
    }

    #[test]
    fn counts_add_up_and_percentiles_come_from_the_merged_histogram() {
        let fast: Vec<u64> = (0..900).map(|n| 1 + n % 10).collect();
        let slow: Vec<u64> = (0..100).map(|n| 500 + n).collect();
        let (first, first_histograms) = iteration(&fast, 20, 15, 90.0);
        let (second, second_histograms) = iteration(&slow, 10, 0, 10.0);
        let mut merged = Recorded::default();
        merged.merge(&first_histograms).unwrap();
        merged.merge(&second_histograms).unwrap();
        let aggregates = Aggregates::of(&[first, second], &merged);
        assert_eq!((aggregates.requests, aggregates.failures, aggregates.injected_faults), (1000, 30, 15));
        assert!((aggregates.error_rate - 0.03).abs() < 1e-12);
        assert!((aggregates.genuine_error_rate - 0.015).abs() < 1e-12, "injected faults are counted apart");
        assert_eq!(aggregates.throughput_rps, 50.0, "the mean of the iterations' rates");
        let latency = aggregates.latency.unwrap();
        assert_eq!((latency.requests, latency.failures), (1000, 30));
        // The p99 of all 1000 samples lies in the slow iteration's range;
        // averaging the two iterations' p99s would say about 300 ms.
        assert!((589.0..=591.0).contains(&latency.p99_ms), "{}", latency.p99_ms);
    }

    #[test]
    fn injected_faults_never_exceed_failures_and_no_load_means_no_latency() {
        let (capped, _) = iteration(&[5, 5], 1, 3, 2.0);
        let aggregates = Aggregates::of(&[capped], &Recorded::default());
        assert_eq!(aggregates.injected_faults, 1);
        assert_eq!(aggregates.genuine_error_rate, 0.0);
        assert_eq!(aggregates.latency, None);
        assert_eq!(Aggregates::of(&[], &Recorded::default()).throughput_rps, 0.0);
    }
}
