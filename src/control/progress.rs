//! Live progress of a load run, as k6 and oha show it: time elapsed of the
//! whole, users, requests per second, errors (injected faults apart) and a p95
//! that is the real one — from the histogram of every latency so far, merged
//! over the shares, never a bucket bound and never an average of workers'
//! p95s. Each worker publishes its share's [`Progress`] with its heartbeat;
//! the coordinator merges the shares of its run, a `grace worker` shows its
//! own. Measuring stays in the recorder; this only reads and draws.
//!
//! On a terminal it is one live line under a bar of the run's time
//! (indicatif; other output is printed above it, see `console`); otherwise a
//! plain line every few seconds, so CI logs stay readable. `--quiet` shows
//! none. No colour is used, so `NO_COLOR` has nothing to turn off here.
//!
//! The same samples stream to `--out-json-lines FILE` for dashboards, as
//! k6's JSON output does: every second, one object per request name (and one
//! `overall`) with that second's requests, failures and percentiles — taken
//! from the difference of two cumulative histograms, so exact — and a last
//! window from the merged uploads, so the lines add up to the run. The report
//! keeps the same windows, a few seconds wide, as its percentiles over time.

use super::plan::LoadProfile;
use grace_loadtests::{Progress, Recorded, OVERALL};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often progress is sampled (and a terminal's line redrawn): twice per
/// heartbeat, so that each heartbeat's progress is seen, and seen once (a
/// repeat is skipped): a window of `--out-json-lines` is one heartbeat's.
const EVERY: Duration = Duration::from_millis(500);
/// How often a plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// A run's (or a share's) progress, decoded: counts, and every latency so
/// far overall and by request name.
#[derive(Debug, Clone)]
pub struct Sample {
    pub requests: u64,
    pub failures: u64,
    pub injected_faults: u64,
    pub overall: Histogram<u64>,
    /// Failures and latencies by request name.
    pub by_name: BTreeMap<String, (u64, Histogram<u64>)>,
    /// When the newest of the shares' progress was taken (Unix ms); `None`
    /// for recordings in hand, which are always fresh.
    pub sampled_at_ms: Option<u64>,
}

impl Sample {
    /// Shares' progress merged: counts summed, histograms added (exact).
    /// `None` with no shares, or one that does not decode.
    pub fn merge<'a>(shares: impl IntoIterator<Item = &'a Progress>) -> Option<Self> {
        let mut total: Option<Sample> = None;
        for share in shares {
            let mut by_name = BTreeMap::new();
            for (name, part) in &share.by_name {
                by_name.insert(name.clone(), (part.failures, part.histogram().ok()?));
            }
            let sample = Sample {
                requests: share.requests,
                failures: share.failures,
                injected_faults: share.injected_faults,
                overall: share.histogram().ok()?,
                by_name,
                sampled_at_ms: share.sampled_at_ms,
            };
            match &mut total {
                None => total = Some(sample),
                Some(sum) => sum.add(&sample).ok()?,
            }
        }
        total
    }

    /// The shares' progress as their heartbeats published it (the `progress`
    /// column of `control.run_workers` rows), merged; `None` as for [`merge`].
    ///
    /// [`merge`]: Sample::merge
    pub fn published(rows: &[tokio_postgres::Row]) -> Option<Self> {
        let shares: Vec<Progress> = rows
            .iter()
            .filter_map(|row| row.try_get::<_, serde_json::Value>("progress").ok())
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect();
        Self::merge(&shares)
    }

    /// Recordings in hand (a worker's own, or the run's merged uploads), as
    /// a sample: no trip through the portable form.
    pub fn of(recorded: &Recorded) -> Self {
        let (requests, failures) = recorded.requests_and_failures();
        let by_name = recorded
            .by_name
            .iter()
            .map(|(name, histogram)| (name.clone(), (recorded.failures_of(name), histogram.clone())))
            .collect();
        Sample {
            requests,
            failures,
            injected_faults: recorded.injected_faults,
            overall: recorded.overall.clone(),
            by_name,
            sampled_at_ms: None,
        }
    }

    /// This and `other`, when there is one (shares that do not add up — of
    /// different histogram settings — are left out, as `merge` leaves them).
    pub fn plus(mut self, other: Option<Sample>) -> Self {
        if let Some(other) = other {
            let mut sum = self.clone();
            if sum.add(&other).is_ok() {
                self = sum;
            }
        }
        self
    }

    /// What the run did overall since `before` (since its start when none).
    pub fn window_since(&self, before: Option<&Sample>) -> Window {
        Window::between((self.failures, &self.overall), before.map(|b| (b.failures, &b.overall))).0
    }

    fn add(&mut self, other: &Sample) -> Result<(), hdrhistogram::AdditionError> {
        self.requests += other.requests;
        self.failures += other.failures;
        self.injected_faults += other.injected_faults;
        self.sampled_at_ms = self.sampled_at_ms.max(other.sampled_at_ms);
        self.overall.add(&other.overall)?;
        for (name, (failures, histogram)) in &other.by_name {
            match self.by_name.get_mut(name) {
                Some((sum, merged)) => {
                    *sum += failures;
                    merged.add(histogram)?;
                }
                None => {
                    self.by_name.insert(name.clone(), (*failures, histogram.clone()));
                }
            }
        }
        Ok(())
    }
}

/// A run's progress as read at one moment.
pub struct Reading {
    /// Every share's latest report, a lost worker's frozen at its last: the
    /// windows (`--out-json-lines`, percentiles over time) are cut from it, so
    /// a lost worker's requests count in the seconds it sent them, and never
    /// again.
    pub seen: Sample,
    /// The shares still running: the live line's requests, errors and p95,
    /// which then agree with the merged result (a lost worker is not in it).
    pub live: Sample,
    /// The lost shares' users, off the live line's count.
    pub lost_users: u32,
}

impl Reading {
    /// A reading with nothing lost: one worker's own recorder.
    pub fn whole(sample: Sample) -> Self {
        Self { live: sample.clone(), seen: sample, lost_users: 0 }
    }

    /// The `control.run_workers` rows of a run (`progress`, `lost`, `users`):
    /// `None` while no share has reported, or when one does not decode.
    pub fn published(rows: &[tokio_postgres::Row]) -> Option<Self> {
        let shares: Option<Vec<(Progress, bool, u32)>> = rows
            .iter()
            .map(|row| {
                let progress = serde_json::from_value(row.try_get("progress").ok()?).ok()?;
                Some((progress, row.try_get("lost").ok()?, row.try_get::<_, i32>("users").ok()? as u32))
            })
            .collect();
        Self::of_shares(&shares?)
    }

    /// Shares' latest reports, each with whether it is lost and its users.
    fn of_shares(shares: &[(Progress, bool, u32)]) -> Option<Self> {
        let seen = Sample::merge(shares.iter().map(|(progress, ..)| progress))?;
        let live = Sample::merge(shares.iter().filter(|(_, lost, _)| !lost).map(|(progress, ..)| progress))
            .unwrap_or_else(|| Sample { sampled_at_ms: seen.sampled_at_ms, ..Sample::of(&Recorded::default()) });
        let lost_users = shares.iter().filter(|(_, lost, _)| *lost).map(|(_, _, users)| users).sum();
        Some(Self { seen, live, lost_users })
    }
}

/// One progress line: `12s/30s  50 users  812 req/s  3 errors (+5 injected)  p95 4.2 ms`.
/// `rate` is the requests per second since the line before.
pub fn line(elapsed: Duration, profile: &LoadProfile, reading: &Reading, rate: f64) -> String {
    let progress = &reading.live;
    let genuine = progress.failures.saturating_sub(progress.injected_faults);
    let injected = match progress.injected_faults {
        0 => String::new(),
        n => format!(" (+{n} injected)"),
    };
    format!(
        "{}s/{}s  {} users  {rate:.0} req/s  {} requests  {genuine} errors{injected}  p95 {:.1} ms",
        elapsed.as_secs().min(profile.run_time_secs),
        profile.run_time_secs,
        profile.users_at(elapsed).saturating_sub(reading.lost_users),
        progress.requests,
        progress.overall.value_at_quantile(0.95) as f64 / 1000.0
    )
}

/// Where the samples go: a person's view, a file for dashboards, and the
/// report's percentiles over time.
pub struct Sinks {
    /// Show the progress on stderr.
    pub display: bool,
    pub json_lines: Option<JsonLines>,
    pub over_time: Option<OverTime>,
}

impl Sinks {
    /// The run's last window, from the merged uploads (and a lost worker's
    /// last report, as in every window before), so the lines and the report's
    /// windows add up to what was seen.
    pub fn close(&mut self, total: &Sample) {
        if let Some(lines) = &mut self.json_lines {
            lines.write(total);
        }
        if let Some(over_time) = &mut self.over_time {
            over_time.close(total);
        }
    }
}

/// Follows the progress `read` reports, once a second until `stop`,
/// starting now (the run's start), into `sinks`. `read` answers `None`
/// while there is nothing to show yet. Returns the sinks, for their last
/// window.
pub async fn follow<F, Fut>(profile: LoadProfile, mut read: F, mut sinks: Sinks, stop: CancellationToken) -> Sinks
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<Reading>>,
{
    let started = Instant::now();
    let live = sinks.display && std::io::stderr().is_terminal();
    let bar = live.then(|| {
        let bar = ProgressBar::new(profile.run_time_secs.max(1));
        bar.set_style(ProgressStyle::with_template("{bar:24} {msg}").expect("a valid template"));
        crate::console::hold_bar(bar.clone());
        bar
    });
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut last: Option<(Instant, u64)> = None;
    let mut last_sampled_at = None;
    let mut last_plain = started;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Some(reading) = read().await else { continue };
        let seen = &reading.seen;
        // The same heartbeat read again is no new data: a window of it would
        // be a false zero, and the next one twice as full.
        if seen.sampled_at_ms.is_some() && seen.sampled_at_ms == last_sampled_at {
            continue;
        }
        last_sampled_at = seen.sampled_at_ms;
        if let Some(lines) = &mut sinks.json_lines {
            lines.write(seen);
        }
        if let Some(over_time) = &mut sinks.over_time {
            over_time.offer(started.elapsed(), seen);
        }
        let now = Instant::now();
        // From every share's count, so a worker lost between two lines is no
        // drop in the rate.
        let rate = match last {
            Some((then, requests)) => {
                seen.requests.saturating_sub(requests) as f64 / now.duration_since(then).as_secs_f64()
            }
            None => seen.requests as f64 / now.duration_since(started).as_secs_f64().max(1e-3),
        };
        last = Some((now, seen.requests));
        let text = line(started.elapsed(), &profile, &reading, rate);
        match &bar {
            Some(bar) => {
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(text);
            }
            None if sinks.display && now.duration_since(last_plain) >= PLAIN_EVERY => {
                last_plain = now;
                crate::tell!("progress {text}");
            }
            None => {}
        }
    }
    if bar.is_some() {
        crate::console::lift_bar();
    }
    sinks
}

/// What one request name (or `overall`) did between two samples. Its
/// percentiles come from the difference of two cumulative histograms, so they
/// are exact for the window; `None` when it saw no request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub requests: u64,
    pub failures: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Cuts successive cumulative samples into windows.
#[derive(Default)]
struct Windows {
    previous: Option<Sample>,
}

impl Windows {
    /// The window since the last cut (the run's start at first): `overall`
    /// first, then each request name; each with the window's own histogram.
    fn cut(&mut self, sample: &Sample) -> Vec<(String, Window, Histogram<u64>)> {
        let previous = self.previous.as_ref();
        let overall = Window::between((sample.failures, &sample.overall), previous.map(|p| (p.failures, &p.overall)));
        let mut windows = vec![(OVERALL.to_string(), overall.0, overall.1)];
        for (name, (failures, histogram)) in &sample.by_name {
            let before = previous.and_then(|p| p.by_name.get(name)).map(|(f, h)| (*f, h));
            let (window, histogram) = Window::between((*failures, histogram), before);
            windows.push((name.clone(), window, histogram));
        }
        self.previous = Some(sample.clone());
        windows
    }
}

impl Window {
    /// `now` minus `before` (the run's start when none), and the histogram
    /// of that difference.
    fn between(now: (u64, &Histogram<u64>), before: Option<(u64, &Histogram<u64>)>) -> (Self, Histogram<u64>) {
        let mut window = now.1.clone();
        let mut failures = now.0;
        if let Some((failed, histogram)) = before {
            // A cumulative histogram only grows: what was in it is in it still.
            let _ = window.subtract(histogram);
            failures = failures.saturating_sub(failed);
        }
        let at = |quantile: f64| (!window.is_empty()).then(|| window.value_at_quantile(quantile) as f64 / 1000.0);
        let summary = Window {
            requests: window.len(),
            failures,
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: (!window.is_empty()).then(|| window.max() as f64 / 1000.0),
        };
        (summary, window)
    }
}

/// `--out-json-lines`: one JSON object per request name (and `overall`) per
/// sample, for that window only.
pub struct JsonLines {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    windows: Windows,
    /// Lines that could not be written, after the first failure said so.
    failed: bool,
}

/// One line of `--out-json-lines`.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    endpoint: &'a str,
    #[serde(flatten)]
    window: &'a Window,
    /// The window's latencies (µs) in HdrHistogram's interchange form
    /// (compressed V2, base64, as HdrHistogram's log files hold them), so
    /// windows can be merged exactly into wider ones: a minute's p99 is
    /// never an average of its seconds'.
    histogram: String,
}

impl JsonLines {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        Ok(Self { path: path.to_path_buf(), file, windows: Windows::default(), failed: false })
    }

    /// The window since the last sample written, one line per request name,
    /// timed when the sample was taken.
    pub fn write(&mut self, sample: &Sample) {
        let taken = sample.sampled_at_ms.and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64));
        let time = taken.unwrap_or_else(chrono::Utc::now).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let windows = self.windows.cut(sample);
        let written = windows
            .iter()
            .try_for_each(|(endpoint, window, histogram)| {
                let line = JsonLine { time: &time, endpoint, window, histogram: interchange(histogram) };
                writeln!(self.file, "{}", serde_json::to_string(&line).expect("lines serialize"))
            })
            .and_then(|()| self.file.flush());
        if let Err(e) = written {
            if !self.failed {
                tracing::warn!(path = %self.path.display(), error = %e, "could not write --out-json-lines");
            }
            self.failed = true;
        }
    }
}

/// `histogram` as HdrHistogram's tools exchange it: V2 compressed, base64.
fn interchange(histogram: &Histogram<u64>) -> String {
    use base64::Engine;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(histogram, &mut bytes).expect("serializing into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A window of the run as the report keeps it: where it ended, in whole
/// seconds into the load, and what it held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedWindow {
    pub at_secs: u64,
    #[serde(flatten)]
    pub window: Window,
}

/// The report's percentiles over time, by request name: windows of a few
/// seconds, as many as a chart can show whatever the run's length.
pub struct OverTime {
    every: Duration,
    run_time: Duration,
    last_cut: Duration,
    windows: Windows,
    kept: BTreeMap<String, Vec<TimedWindow>>,
}

/// About how many windows a run's charts hold.
const REPORT_WINDOWS: u64 = 240;

impl OverTime {
    /// For a run lasting `run_time`: windows of at least 2 s (heartbeats
    /// come each second; one-second windows would alias with them).
    pub fn new(run_time: Duration) -> Self {
        let every = Duration::from_secs(run_time.as_secs().div_ceil(REPORT_WINDOWS).max(2));
        Self { every, run_time, last_cut: Duration::ZERO, windows: Windows::default(), kept: BTreeMap::new() }
    }

    /// A sample `elapsed` into the run: cut when a window's time is up.
    fn offer(&mut self, elapsed: Duration, sample: &Sample) {
        if elapsed.saturating_sub(self.last_cut) >= self.every {
            self.cut(elapsed, sample);
        }
    }

    /// The last window: what the workers did after their last published
    /// progress, which ended with the run — shown at its end, or a second
    /// after the window before when that was cut at the end already.
    fn close(&mut self, total: &Sample) {
        let at = self.run_time.max(self.last_cut + Duration::from_secs(1));
        self.cut(at, total);
    }

    fn cut(&mut self, elapsed: Duration, sample: &Sample) {
        self.last_cut = elapsed;
        let at_secs = elapsed.as_secs();
        for (name, window, _) in self.windows.cut(sample) {
            self.kept.entry(name).or_default().push(TimedWindow { at_secs, window });
        }
    }

    /// The windows kept, by request name (`overall` among them).
    pub fn into_windows(self) -> BTreeMap<String, Vec<TimedWindow>> {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grace_loadtests::Recorder;

    #[test]
    fn shares_merge_into_the_exact_p95_and_errors_show_injected_apart() {
        let (fast, slow) = (Recorder::default(), Recorder::default());
        for ms in 1..=90 {
            fast.record_latency("/api/chat", Duration::from_millis(ms));
            fast.count_answer("http://a", "/api/chat", Some(200));
        }
        for ms in 91..=100 {
            slow.record_latency("/api/chat", Duration::from_millis(ms));
            slow.count_answer("http://a", "/api/chat", Some(if ms < 98 { 200 } else { 503 }));
            if ms >= 98 {
                slow.count_failure("/api/chat");
            }
        }
        slow.count_injected_fault();
        let sample = Sample::merge(&[fast.tally().progress(), slow.tally().progress()]).unwrap();
        assert_eq!((sample.requests, sample.failures, sample.injected_faults), (100, 3, 1));
        assert_eq!(sample.by_name["/api/chat"].0, 3);
        // The 95th of 1..=100 ms; each share alone would say 86 or 100.
        let p95 = sample.overall.value_at_quantile(0.95);
        assert!((94_900..=95_100).contains(&p95), "{p95}");
        let profile = LoadProfile { users: 4, run_time_secs: 30, stages: vec![], rate: None };
        assert_eq!(
            line(Duration::from_secs(12), &profile, &Reading::whole(sample), 812.4),
            format!(
                "12s/30s  4 users  812 req/s  100 requests  2 errors (+1 injected)  p95 {:.1} ms",
                p95 as f64 / 1000.0
            )
        );
    }

    #[test]
    fn json_lines_hold_each_window_alone_and_add_up_to_the_run() {
        let recorder = Recorder::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut lines = JsonLines::create(&path).unwrap();
        for ms in [1, 2, 3] {
            recorder.record_latency("/api/chat", Duration::from_millis(ms));
        }
        lines.write(&Sample::of(&recorder.tally()));
        for ms in [100, 200] {
            recorder.record_latency("/api/chat", Duration::from_millis(ms));
            recorder.record_latency("/api/tasks", Duration::from_millis(ms));
        }
        lines.write(&Sample::of(&recorder.tally()));
        drop(lines);
        let written: Vec<serde_json::Value> =
            std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let of = |endpoint: &str| -> Vec<(u64, Option<f64>)> {
            written
                .iter()
                .filter(|l| l["endpoint"] == endpoint)
                .map(|l| (l["requests"].as_u64().unwrap(), l["p50_ms"].as_f64()))
                .collect()
        };
        // The second window of /api/chat holds only its own two latencies.
        let chat = of("/api/chat");
        assert_eq!(chat.len(), 2);
        assert_eq!(chat[0].0, 3);
        assert_eq!(chat[1].0, 2);
        assert!(chat[1].1.unwrap() >= 99.0, "{chat:?}");
        assert_eq!(of("/api/tasks").iter().map(|w| w.0).sum::<u64>(), 2);
        assert_eq!(of("overall").iter().map(|w| w.0).sum::<u64>(), 7);
    }

    #[test]
    fn the_report_keeps_windows_a_few_seconds_wide_that_add_up_to_the_run() {
        let recorder = Recorder::default();
        let mut over_time = OverTime::new(Duration::from_secs(30));
        let mut offer = |secs: u64, latencies_ms: &[u64]| {
            for ms in latencies_ms {
                recorder.record_latency("/api/chat", Duration::from_millis(*ms));
            }
            over_time.offer(Duration::from_secs(secs), &Sample::of(&recorder.tally()));
        };
        offer(1, &[1, 2]);
        offer(2, &[3]);
        offer(3, &[500]);
        offer(4, &[400, 600]);
        let run = Sample::of(&recorder.tally());
        let mut sinks = Sinks { display: false, json_lines: None, over_time: Some(over_time) };
        recorder.record_latency("/api/tasks", Duration::from_millis(9));
        sinks.close(&Sample::of(&recorder.tally()));
        let kept = sinks.over_time.unwrap().into_windows();
        let chat: Vec<(u64, u64, Option<f64>)> =
            kept["/api/chat"].iter().map(|w| (w.at_secs, w.window.requests, w.window.p50_ms)).collect();
        // Cut at 2 s and 4 s (windows of 2 s), then the last from the run's total.
        assert_eq!(chat.iter().map(|w| (w.0, w.1)).collect::<Vec<_>>(), [(2, 3), (4, 3), (30, 0)]);
        // The second window's median is its own (500 ms), not the run's so far.
        assert!(chat[1].2.is_some_and(|p50| (499.0..=501.0).contains(&p50)), "{chat:?}");
        assert_eq!(chat[2].2, None);
        assert_eq!(kept["/api/tasks"].iter().map(|w| w.window.requests).sum::<u64>(), 1);
        assert_eq!(kept[OVERALL].iter().map(|w| w.window.requests).sum::<u64>(), run.overall.len() + 1);
    }
    #[test]
    fn a_lost_share_leaves_the_live_line_but_stays_in_the_windows_it_was_seen_in() {
        let share = |requests: u64, ms: u64| {
            let recorder = Recorder::default();
            for _ in 0..requests {
                recorder.record_latency("/api/chat", Duration::from_millis(ms));
                recorder.count_answer("http://a", "/api/chat", Some(200));
            }
            recorder.tally().progress()
        };
        let (running, lost) = (share(30, 2), share(70, 900));
        let reading = Reading::of_shares(&[(running, false, 3), (lost, true, 2)]).unwrap();
        assert_eq!((reading.seen.requests, reading.live.requests, reading.lost_users), (100, 30, 2));
        // The live p95 is the running share's alone, not pulled up by the lost one's.
        assert!(
            reading.live.overall.value_at_quantile(0.95) < 3_000,
            "{}",
            reading.live.overall.value_at_quantile(0.95)
        );
        let profile = LoadProfile { users: 5, run_time_secs: 30, stages: vec![], rate: None };
        let text = line(Duration::from_secs(20), &profile, &reading, 1.5);
        assert!(text.starts_with("20s/30s  3 users  2 req/s  30 requests  0 errors"), "{text}");
        // Every share lost: the line shows none, the windows keep what was seen.
        let all_lost = Reading::of_shares(&[(share(5, 1), true, 5)]).unwrap();
        assert_eq!((all_lost.seen.requests, all_lost.live.requests), (5, 0));
        assert!(line(Duration::from_secs(20), &profile, &all_lost, 0.0).contains("  0 users  "));
    }
}
