//! The merged result of a load run, and how a person reads it. Counts and
//! failures come from the workers' own recordings (every attempt, failed as
//! its step judged it), summed over workers; latency
//! percentiles come from the workers' HdrHistograms merged into one (the
//! histogram of every sample), never from averaging the workers' percentiles;
//! the max is the max of maxes. Throughput is per worker and, since workers
//! run side by side, the total is their sum.

use super::acked_writes::AckedWritesCheck;
use super::clock;
use super::connection::Outage;
use super::plan::{LoadProfile, LoadShape};
use super::progress::TimedWindow;
use super::service_proofs::{Proven, ServiceOrphans, WriteProof};
use super::worker::WorkerIdentity;
use super::ControlError;
use grace_loadtests::{BackendCount, BodyBytes, ErrorSample, Recorded, TimeSlot, OVERALL};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One worker of a run as the coordinator read it back.
pub struct WorkerUpload {
    pub worker: WorkerIdentity,
    pub users: u32,
    /// `None` for a worker that was lost.
    pub uploaded: Option<Uploaded>,
    /// A lost worker's last progress report, when it made one.
    pub last_report: Option<LastReport>,
    pub report_html: Option<String>,
}

/// What a lost worker had measured by its last heartbeat: shown as its own,
/// never merged (its histograms and write keys never arrived).
pub struct LastReport {
    pub progress: grace_loadtests::Progress,
    /// Seconds into the run of that heartbeat, on the database's clock.
    pub secs: f64,
}

pub struct Uploaded {
    pub histograms: Recorded,
    pub acked_writes: u64,
    /// The database's clock minus the worker's, in milliseconds (its
    /// timeline is already on the database's).
    pub clock_offset_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    pub run_id: Uuid,
    /// The run's, as it was asked for.
    #[serde(flatten)]
    pub profile: LoadProfile,
    pub workers: Vec<WorkerSummary>,
    pub total: Throughput,
    /// Failed responses that were faults injected on purpose (also in `total.failures`).
    pub injected_faults: u64,
    /// Bytes of request bodies sent (every attempt) and response bodies
    /// received, all workers together; headers are not counted.
    #[serde(default)]
    pub body_bytes: BodyBytes,
    /// Overall first, then by request name.
    pub latency: Vec<LatencySummary>,
    /// How response times spread, by request name (`overall` among them):
    /// counts per bucket of a 1-2-5 scale, from the merged histograms.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub distribution: BTreeMap<String, Vec<Bucket>>,
    /// Requests and latency second by second (Unix time), all workers together.
    pub timeline: BTreeMap<u64, TimeSlot>,
    /// Percentiles over time by request name (`overall` among them): windows
    /// of a few seconds, each exact, from the workers' live progress.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub over_time: BTreeMap<String, Vec<TimedWindow>>,
    /// Requests (every attempt) and those not answered 2xx, by the backend
    /// they were sent to — several when the users were spread over replicas.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendCount>,
    /// Answers by request name and status (`"200"`, `"503"`, `"no answer"`),
    /// every attempt counted, all workers together.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, BTreeMap<String, u64>>,
    /// A sample of each distinct failure, with how often it was seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorSample>,
    /// C7: every write of the run, acknowledged ones stored exactly once.
    pub acked_writes: AckedWritesCheck,
    /// C7 per kind of write, where a workload's `[[proofs]]` say each is stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proofs: Vec<WriteProof>,
    /// C1 on the service's database, for a service other than a Grace backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphans: Option<ServiceOrphans>,
    /// Workers that went silent or never uploaded, by name.
    pub lost_workers: Vec<String>,
    /// When the coordinator could not reach the control plane (the database
    /// restarted or failed over) and waited for it. The run went on; what the
    /// backend answered meanwhile is in the failures, and C7 says whether an
    /// acknowledged write was lost.
    #[serde(default)]
    pub control_plane_outages: Vec<Outage>,
    /// Workers whose clocks were a second or more off the database's (their
    /// times were put on the database's clock before they were merged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock_skews: Vec<ClockSkew>,
    /// Open model: how much of the target rate the run sent (a run that could
    /// not keep to its schedule fails — it measured a smaller load than asked).
    #[serde(default)]
    pub rate_reached: Option<RateReached>,
    /// The `--threshold` criteria, as the run measured up to them.
    #[serde(default)]
    pub thresholds: Vec<ThresholdCheck>,
    /// Stopped early (Ctrl-C): everything above covers what was measured
    /// until then, and the run does not pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// No worker lost, C7 holds (and C1 on a service's database), the rate
    /// was reached, the run was not interrupted.
    pub passed: bool,
}

/// A worker's clock, a second or more off the database's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockSkew {
    pub worker: String,
    /// The database's clock minus the worker's, in milliseconds.
    pub offset_ms: i64,
}

/// What a LOST worker's row holds, said under the table.
pub const LOST_ROW: &str = "LOST: what the worker measured up to its last progress report; its histograms never \
     arrived, so the total, the percentiles and C7 leave it out";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSummary {
    pub worker_id: Uuid,
    pub name: String,
    pub users: u32,
    pub lost: bool,
    #[serde(flatten)]
    pub throughput: Throughput,
    pub acked_writes: u64,
    /// Its goose page was kept (`--goose-report`), written beside the run's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub goose_report: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub requests: u64,
    pub failures: u64,
    pub requests_per_second: f64,
}

/// The share of its target rate an open-model run must send to pass: goose
/// starts users over the first second, and a user late for a slot sends at
/// once, so a run that keeps up comes within a few percent of the target.
pub const RATE_FLOOR: f64 = 0.95;

/// How close an open-model run came to its target rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateReached {
    /// Requests per second asked for, across all workers.
    pub target: f64,
    /// Requests per second sent.
    pub achieved: f64,
    /// At least `RATE_FLOOR` of the target.
    pub passed: bool,
}

impl RateReached {
    fn of(target: f64, achieved: f64) -> Self {
        Self { target, achieved, passed: achieved >= RATE_FLOOR * target }
    }
}

impl std::fmt::Display for RateReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} of {} req/s sent ({:.1}%; at least {:.0}% must be)",
            self.achieved,
            self.target,
            100.0 * self.achieved / self.target,
            100.0 * RATE_FLOOR
        )
    }
}

/// How a run measured up to one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCheck {
    pub threshold: String,
    /// `None` when the run has no requests of that name.
    pub measured: Option<f64>,
    /// The measured value's unit: "ms", "req/s", or "" for a rate of 0–1.
    pub unit: String,
    pub passed: bool,
}

/// The requests that took more than the bucket before and at most `le_ms`
/// (`None`: more than the last bound).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub le_ms: Option<f64>,
    pub count: u64,
}

/// The distribution's bounds, in ms: a 1-2-5 scale from half a millisecond
/// to half a minute, as load testers' reports group response times.
const BUCKET_BOUNDS_MS: [f64; 15] =
    [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0];

impl Bucket {
    /// `histogram` (µs) in buckets, up to the last one holding a request.
    pub fn distribution(histogram: &hdrhistogram::Histogram<u64>) -> Vec<Bucket> {
        let mut counts = [0u64; BUCKET_BOUNDS_MS.len() + 1];
        for value in histogram.iter_recorded() {
            let ms = value.value_iterated_to() as f64 / 1000.0;
            let at = BUCKET_BOUNDS_MS.iter().position(|bound| ms <= *bound).unwrap_or(BUCKET_BOUNDS_MS.len());
            counts[at] += value.count_at_value();
        }
        let used = counts.iter().rposition(|count| *count > 0).map_or(0, |last| last + 1);
        counts[..used]
            .iter()
            .enumerate()
            .map(|(i, count)| Bucket { le_ms: BUCKET_BOUNDS_MS.get(i).copied(), count: *count })
            .collect()
    }
}

/// Latency in milliseconds, from a merged histogram of microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LoadResult {
    /// The result, and the merged histograms it was read from (so results of
    /// several runs can be merged again, exactly).
    pub fn merge(
        run_id: Uuid,
        shape: &LoadShape,
        uploads: &[WorkerUpload],
        proven: Proven,
        control_plane_outages: Vec<Outage>,
    ) -> Result<(Self, Recorded), ControlError> {
        let mut merged = Recorded::default();
        let mut workers = Vec::new();
        for upload in uploads {
            let mut summary = WorkerSummary {
                worker_id: upload.worker.id,
                name: upload.worker.to_string(),
                users: upload.users,
                lost: upload.uploaded.is_none(),
                throughput: Throughput::default(),
                acked_writes: 0,
                goose_report: upload.uploaded.is_some() && upload.report_html.is_some(),
            };
            if let Some(uploaded) = &upload.uploaded {
                merged
                    .merge(&uploaded.histograms)
                    .map_err(|e| ControlError::Upload(format!("{}'s histograms do not merge: {e:?}", upload.worker)))?;
                let (requests, failures) = uploaded.histograms.requests_and_failures();
                // Over the run time, as goose counted it (its users start in
                // the second before, and end the iteration they are in after),
                // or over less when the share ended early: stopped, it sent for less.
                let sending = uploaded.histograms.sending.map_or(0.0, |span| span.secs());
                let secs = sending.min(shape.profile.run_time_secs as f64).max(0.001);
                summary.throughput = Throughput { requests, failures, requests_per_second: requests as f64 / secs };
                summary.acked_writes = uploaded.acked_writes;
            } else if let Some(report) = &upload.last_report {
                summary.throughput = Throughput {
                    requests: report.progress.requests,
                    failures: report.progress.failures,
                    requests_per_second: report.progress.requests as f64 / report.secs.max(1.0),
                };
            }
            workers.push(summary);
        }
        let merged_workers = || workers.iter().filter(|w| !w.lost);
        let total = Throughput {
            requests: merged_workers().map(|w| w.throughput.requests).sum(),
            failures: merged_workers().map(|w| w.throughput.failures).sum(),
            requests_per_second: merged_workers().map(|w| w.throughput.requests_per_second).sum(),
        };
        let mut latency = vec![LatencySummary::of(OVERALL, (total.requests, total.failures), &merged.overall)];
        let distribution = std::iter::once((OVERALL, &merged.overall))
            .chain(merged.by_name.iter().map(|(name, histogram)| (name.as_str(), histogram)))
            .map(|(name, histogram)| (name.to_string(), Bucket::distribution(histogram)))
            .collect();
        for (name, histogram) in &merged.by_name {
            latency.push(LatencySummary::of(name, merged.requests_and_failures_of(name), histogram));
        }
        let lost_workers: Vec<String> = workers.iter().filter(|w| w.lost).map(|w| w.name.clone()).collect();
        let clock_skews = uploads
            .iter()
            .filter_map(|u| u.uploaded.as_ref().map(|up| (u.worker.to_string(), up.clock_offset_ms)))
            .filter(|(_, offset_ms)| clock::is_skewed(*offset_ms))
            .map(|(worker, offset_ms)| ClockSkew { worker, offset_ms })
            .collect();
        let rate_reached = shape.profile.rate.map(|target| RateReached::of(target, total.requests_per_second));
        let result = Self {
            run_id,
            profile: shape.profile.clone(),
            passed: lost_workers.is_empty()
                && proven.acked_writes.passed
                && proven.orphans.as_ref().is_none_or(|o| o.passed)
                && rate_reached.as_ref().is_none_or(|r| r.passed),
            rate_reached,
            workers,
            total,
            injected_faults: merged.injected_faults,
            body_bytes: merged.timeline.values().fold(BodyBytes::default(), |bytes, second| BodyBytes {
                sent: bytes.sent + second.body_bytes_sent,
                received: bytes.received + second.body_bytes_received,
            }),
            latency,
            distribution,
            timeline: merged.timeline.clone(),
            over_time: BTreeMap::new(),
            backends: merged.by_backend.clone(),
            statuses: merged.statuses.clone(),
            errors: merged.errors.clone(),
            acked_writes: proven.acked_writes,
            proofs: proven.proofs,
            orphans: proven.orphans,
            lost_workers,
            control_plane_outages,
            clock_skews,
            thresholds: Vec::new(),
            interrupted: false,
        };
        Ok((result, merged))
    }

    /// Marks the run as stopped early: it holds what was measured, and fails.
    pub fn interrupt(&mut self) {
        self.interrupted = true;
        self.passed = false;
    }

    /// What made the run fail, in words (empty when it passed).
    pub fn failures(&self) -> Vec<String> {
        let mut failed = Vec::new();
        failed.extend(self.interruption());
        if !self.lost_workers.is_empty() {
            failed.push(format!("workers lost: {}", self.lost_workers.join(", ")));
        }
        if !self.acked_writes.passed {
            failed.push(format!("acknowledged writes (C7): {}", self.acked_writes));
        }
        for proof in self.proofs.iter().filter(|p| !p.check.passed) {
            failed.push(format!("C7 {}: {}", proof.name, proof.check));
        }
        if let Some(orphans) = self.orphans.as_ref().filter(|o| !o.passed) {
            failed.push(format!("orphans in the service's database (C1): {orphans}"));
        }
        if let Some(rate) = self.rate_reached.as_ref().filter(|r| !r.passed) {
            failed.push(format!("target rate: {rate}"));
        }
        for check in self.thresholds.iter().filter(|c| !c.passed) {
            failed.push(format!("threshold {}: {}", check.threshold, check.measurement()));
        }
        failed
    }

    /// "interrupted after 9s of 60s" when the run was stopped early.
    pub fn interruption(&self) -> Option<String> {
        self.interrupted_after().map(|after| format!("interrupted {after}"))
    }

    /// "after 9s of 60s" when the run was stopped early: the seconds from the
    /// first request's to the last's, of the time asked.
    fn interrupted_after(&self) -> Option<String> {
        self.interrupted.then(|| {
            let measured = match (self.timeline.keys().next(), self.timeline.keys().next_back()) {
                (Some(first), Some(last)) => last - first + 1,
                _ => 0,
            };
            format!("after {measured}s of {}s", self.profile.run_time_secs)
        })
    }
}

impl LatencySummary {
    pub fn of(name: &str, (requests, failures): (u64, u64), histogram: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            name: name.to_string(),
            requests,
            failures,
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

impl ThresholdCheck {
    /// What the run measured, in words.
    pub fn measurement(&self) -> String {
        match self.measured {
            Some(value) => format!("measured {value:.3} {}", self.unit).trim_end().to_string(),
            None => "no such requests in this run".to_string(),
        }
    }
}

impl std::fmt::Display for ThresholdCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        write!(f, "{mark} threshold {}: {}", self.threshold, self.measurement())
    }
}

impl std::fmt::Display for LoadResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut model = self.profile.model();
        if !self.profile.stages.is_empty() {
            let stages: Vec<String> = self.profile.stages.iter().map(ToString::to_string).collect();
            model.push_str(&format!(", in stages {}", stages.join(" ")));
        }
        writeln!(
            f,
            "load run {}: {} on {} for {}s, {model}",
            self.run_id,
            crate::console::counted(self.profile.users, "user", "users"),
            crate::console::counted(self.workers.len() as u64, "worker", "workers"),
            self.profile.run_time_secs
        )?;
        writeln!(f, "{:<36} {:>6} {:>10} {:>9} {:>10}", "worker", "users", "requests", "failures", "req/s")?;
        for w in &self.workers {
            let name = if w.lost { format!("{} LOST", w.name) } else { w.name.clone() };
            let t = &w.throughput;
            writeln!(
                f,
                "{name:<36} {:>6} {:>10} {:>9} {:>10.1}",
                w.users, t.requests, t.failures, t.requests_per_second
            )?;
        }
        let t = &self.total;
        writeln!(
            f,
            "{:<36} {:>6} {:>10} {:>9} {:>10.1}",
            "total", self.profile.users, t.requests, t.failures, t.requests_per_second
        )?;
        if self.workers.iter().any(|w| w.lost && w.throughput.requests > 0) {
            writeln!(f, "{LOST_ROW}")?;
        }
        writeln!(
            f,
            "request bodies sent {:.1} KiB, response bodies received {:.1} KiB",
            self.body_bytes.sent as f64 / 1024.0,
            self.body_bytes.received as f64 / 1024.0
        )?;
        writeln!(
            f,
            "\n{:<28} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "request (latency in ms)", "count", "fail", "p50", "p90", "p95", "p99", "max"
        )?;
        for l in &self.latency {
            writeln!(
                f,
                "{:<28} {:>9} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                l.name, l.requests, l.failures, l.p50_ms, l.p90_ms, l.p95_ms, l.p99_ms, l.max_ms
            )?;
        }
        if self.backends.len() > 1 {
            writeln!(f, "\n{:<44} {:>10} {:>9}", "backend", "requests", "not 2xx")?;
            for (backend, count) in &self.backends {
                writeln!(f, "{backend:<44} {:>10} {:>9}", count.requests, count.failures)?;
            }
        }
        if !self.errors.is_empty() {
            writeln!(f, "\nfailures by kind (count, request, status, what the answer said)")?;
            for e in &self.errors {
                writeln!(f, "{:>8}  {} {}  {}", e.count, e.name, e.status, e.excerpt)?;
            }
        }
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        writeln!(f, "\n{} acknowledged writes (C7): {}", mark(self.acked_writes.passed), self.acked_writes)?;
        for proof in &self.proofs {
            writeln!(f, "  {} {}: {}", mark(proof.check.passed), proof.name, proof.check)?;
        }
        if let Some(orphans) = &self.orphans {
            writeln!(f, "{} no orphans in the service's database (C1): {orphans}", mark(orphans.passed))?;
        }
        if self.lost_workers.is_empty() {
            writeln!(f, "✓ workers: every worker finished and uploaded")?;
        } else {
            writeln!(f, "✗ workers lost: {}", self.lost_workers.join(", "))?;
        }
        if let Some(rate) = &self.rate_reached {
            writeln!(f, "{} target rate: {rate}", mark(rate.passed))?;
        }
        for check in &self.thresholds {
            writeln!(f, "{check}")?;
        }
        for outage in &self.control_plane_outages {
            writeln!(f, "! control plane unreachable {outage}: the coordinator reconnected and the run went on")?;
        }
        for skew in &self.clock_skews {
            writeln!(f, "! {}", clock::describe(&skew.worker, skew.offset_ms))?;
        }
        if let Some(after) = self.interrupted_after() {
            writeln!(f, "load run INTERRUPTED {after}: the figures above are what was measured until then")
        } else {
            writeln!(f, "{}", if self.passed { "load run passed" } else { "load run FAILED" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grace_loadtests::Recorder;
    use std::time::Duration;

    fn shape() -> LoadShape {
        LoadShape {
            profile: LoadProfile { users: 4, run_time_secs: 10, stages: Vec::new(), rate: None },
            expect_workers: Some(2),
            join_timeout: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
        }
    }

    /// A worker that made `latencies_ms` requests to /api/chat in 10 s, the
    /// first `failures` of them failed.
    fn upload(pid: u32, latencies_ms: &[u64], failures: u64) -> WorkerUpload {
        let recorder = Recorder::default();
        for (n, ms) in latencies_ms.iter().enumerate() {
            recorder.record_latency("POST /api/chat", Duration::from_millis(*ms));
            recorder.count_answer("http://a", "POST /api/chat", Some(200));
            if (n as u64) < failures {
                recorder.count_failure("POST /api/chat");
            }
        }
        let mut histograms = recorder.snapshot();
        histograms.sending = Some(grace_loadtests::Span { first_ms: 5_000, last_ms: 15_000 });
        WorkerUpload {
            worker: WorkerIdentity { id: Uuid::new_v4(), host: "h".into(), pid },
            users: 2,
            uploaded: Some(Uploaded { histograms, acked_writes: 0, clock_offset_ms: 0 }),
            last_report: None,
            report_html: None,
        }
    }

    #[test]
    fn the_total_is_the_sum_of_workers_and_percentiles_are_those_of_all_samples() {
        let fast: Vec<u64> = (0..900).map(|n| 1 + n % 10).collect();
        let slow: Vec<u64> = (0..100).map(|n| 500 + n).collect();
        let uploads = [upload(1, &fast, 3), upload(2, &slow, 7)];
        let (result, _) =
            LoadResult::merge(Uuid::nil(), &shape(), &uploads, Proven::bundled(AckedWritesCheck::of_nothing()), vec![])
                .unwrap();
        assert_eq!(result.total, Throughput { requests: 1000, failures: 10, requests_per_second: 100.0 });
        assert_eq!(result.workers[0].throughput.requests_per_second, 90.0);
        let overall = &result.latency[0];
        assert_eq!((overall.name.as_str(), overall.requests, overall.failures), (OVERALL, 1000, 10));
        // Of all 1000 samples, the 99th percentile is in the slow worker's range
        // (averaging the two workers' p99s would say ~305 ms).
        assert!((589.0..=591.0).contains(&overall.p99_ms), "{}", overall.p99_ms);
        assert!((599.0..=600.5).contains(&overall.max_ms), "the max of maxes: {}", overall.max_ms);
        assert_eq!(result.latency[1].name, "POST /api/chat", "named as goose keys it");
        assert_eq!(result.latency[1].requests, 1000);
        assert!(result.passed);
    }

    #[test]
    fn the_load_profile_is_written_where_results_have_always_had_it_and_read_back() {
        let uploads = [upload(1, &[1, 2, 3], 0)];
        let (result, _) =
            LoadResult::merge(Uuid::nil(), &shape(), &uploads, Proven::bundled(AckedWritesCheck::of_nothing()), vec![])
                .unwrap();
        let text = serde_json::to_string(&result).unwrap();
        let start = format!(r#"{{"run_id":"{}","users":4,"run_time_secs":10,"rate":null,"workers":["#, Uuid::nil());
        assert!(text.starts_with(&start), "{text}");
        assert!(!text.contains("profile") && !text.contains("stages"), "{text}");
        assert_eq!(serde_json::from_str::<LoadResult>(&text).unwrap(), result);
    }

    #[test]
    fn a_lost_worker_fails_the_run_and_adds_nothing_but_shows_what_it_last_reported() {
        let mut lost = upload(2, &[5], 0);
        lost.uploaded = None;
        let seen = Recorder::default();
        for ms in [4, 5, 6, 7] {
            seen.record_latency("POST /api/chat", Duration::from_millis(ms));
            seen.count_answer("http://a", "POST /api/chat", Some(if ms < 7 { 200 } else { 503 }));
            if ms == 7 {
                seen.count_failure("POST /api/chat");
            }
        }
        lost.last_report = Some(LastReport { progress: seen.tally().progress(), secs: 2.0 });
        let (result, _) = LoadResult::merge(
            Uuid::nil(),
            &shape(),
            &[upload(1, &[1, 2, 3], 0), lost],
            Proven::bundled(AckedWritesCheck::of_nothing()),
            vec![],
        )
        .unwrap();
        assert_eq!(result.total.requests, 3);
        assert_eq!(result.latency[0].requests, 3, "its latencies are not merged");
        assert_eq!(result.workers[1].throughput, Throughput { requests: 4, failures: 1, requests_per_second: 2.0 });
        assert!(result.workers[1].lost);
        assert_eq!(result.lost_workers, ["h (pid 2)"]);
        assert!(!result.passed);
        let text = result.to_string();
        assert!(text.contains("✗ workers lost: h (pid 2)"));
        assert!(text.contains(LOST_ROW), "{text}");
    }

    #[test]
    fn thresholds_judge_the_merged_numbers_and_a_missed_one_fails_the_run() {
        let fast: Vec<u64> = (0..900).map(|n| 1 + n % 10).collect();
        let slow: Vec<u64> = (0..100).map(|n| 500 + n).collect();
        let uploads = [upload(1, &fast, 3), upload(2, &slow, 7)];
        let (mut result, _) =
            LoadResult::merge(Uuid::nil(), &shape(), &uploads, Proven::bundled(AckedWritesCheck::of_nothing()), vec![])
                .unwrap();
        let thresholds: Vec<crate::control::threshold::Threshold> =
            ["p50<20ms", "error_rate<=1%", "rps>=100", "POST /api/chat:p99<500ms", "GET /api/nothing:p99<1s"]
                .iter()
                .map(|t| t.parse().unwrap())
                .collect();
        crate::control::threshold::apply(&mut result, &thresholds);
        let verdicts: Vec<bool> = result.thresholds.iter().map(|c| c.passed).collect();
        // p99 of all samples is ~590 ms (from the merged histogram); an unknown name fails.
        assert_eq!(verdicts, [true, true, true, false, false]);
        assert_eq!(result.thresholds[1].measured, Some(0.01));
        assert!(!result.passed);
        let text = result.to_string();
        assert!(text.contains("✗ threshold POST /api/chat:p99<500ms: measured 589.3"), "{text}");
        assert!(text.contains("✓ threshold p50<20ms: measured 6.003 ms"), "{text}");
        assert!(text.contains("✗ threshold GET /api/nothing:p99<1s: no such requests in this run"), "{text}");
    }

    #[test]
    fn an_outage_of_the_control_plane_is_named_and_does_not_fail_the_run() {
        let from = chrono::DateTime::from_timestamp(1_800_000_003, 0).unwrap();
        let outage = Outage { from, to: from + chrono::TimeDelta::milliseconds(2_400) };
        let (result, _) = LoadResult::merge(
            Uuid::nil(),
            &shape(),
            &[upload(1, &[1], 0)],
            Proven::bundled(AckedWritesCheck::of_nothing()),
            vec![outage],
        )
        .unwrap();
        assert!(result.passed);
        let text = result.to_string();
        assert!(
            text.contains(
                "! control plane unreachable 08:00:03.000–08:00:05.400 UTC (2.4 s): the coordinator reconnected"
            ),
            "{text}"
        );
    }

    #[test]
    fn response_times_fall_into_buckets_of_a_1_2_5_scale() {
        let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for micros in [300, 800, 800, 4_000, 45_000, 45_000, 45_000, 40_000_000] {
            histogram.record(micros).unwrap();
        }
        let buckets = Bucket::distribution(&histogram);
        let counts: Vec<u64> = buckets.iter().map(|b| b.count).collect();
        assert_eq!(counts, [1, 2, 0, 1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!((buckets[0].le_ms, buckets[6].le_ms, buckets[15].le_ms), (Some(0.5), Some(50.0), None));
        histogram.reset();
        histogram.record(1_500).unwrap();
        assert_eq!(Bucket::distribution(&histogram).len(), 3, "up to the last bucket holding a request");
    }
}
