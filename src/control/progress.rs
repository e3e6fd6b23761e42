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

use super::plan::Stage;
use grace_loadtests::Progress;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a terminal's line is redrawn.
const LIVE_EVERY: Duration = Duration::from_secs(1);
/// How often a plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// What the progress is of: the users over time, and how long in all.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub users: u32,
    pub stages: Vec<Stage>,
    pub run_time: Duration,
}

impl Timeline {
    /// The users meant to be running `elapsed` into the run: all of them, or
    /// where the stages are then (linear within a stage, as goose ramps).
    pub fn users_at(&self, elapsed: Duration) -> u32 {
        let mut from = 0u32;
        let mut start = 0.0;
        let at = elapsed.as_secs_f64();
        for stage in &self.stages {
            let end = start + stage.secs as f64;
            if at < end {
                let share = (at - start) / stage.secs as f64;
                return (f64::from(from) + share * (f64::from(stage.users) - f64::from(from))).round() as u32;
            }
            from = stage.users;
            start = end;
        }
        if self.stages.is_empty() {
            self.users
        } else {
            from
        }
    }
}

/// Shares' progress merged: counts summed, histograms added (exact).
pub fn merge<'a>(shares: impl IntoIterator<Item = &'a Progress>) -> Option<(Progress, Histogram<u64>)> {
    let mut total: Option<(Progress, Histogram<u64>)> = None;
    for share in shares {
        let histogram = share.histogram().ok()?;
        match &mut total {
            None => total = Some((share.clone(), histogram)),
            Some((sum, merged)) => {
                sum.requests += share.requests;
                sum.failures += share.failures;
                sum.injected_faults += share.injected_faults;
                merged.add(&histogram).ok()?;
            }
        }
    }
    total
}

/// One progress line: `12s/30s  50 users  812 req/s  3 errors (+5 injected)  p95 4.2 ms`.
/// `rate` is the requests per second since the line before.
pub fn line(elapsed: Duration, timeline: &Timeline, progress: &Progress, p95_micros: u64, rate: f64) -> String {
    let genuine = progress.failures.saturating_sub(progress.injected_faults);
    let injected = match progress.injected_faults {
        0 => String::new(),
        n => format!(" (+{n} injected)"),
    };
    format!(
        "{}s/{}s  {} users  {rate:.0} req/s  {} requests  {genuine} errors{injected}  p95 {:.1} ms",
        elapsed.as_secs().min(timeline.run_time.as_secs()),
        timeline.run_time.as_secs(),
        timeline.users_at(elapsed),
        progress.requests,
        p95_micros as f64 / 1000.0
    )
}

/// Shows the progress `sample` reports until `stop`, starting now (the
/// run's start). `sample` answers `None` while there is nothing to show yet.
pub async fn show<F, Fut>(timeline: Timeline, mut sample: F, stop: CancellationToken)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<(Progress, Histogram<u64>)>>,
{
    let started = Instant::now();
    let live = std::io::stderr().is_terminal();
    let bar = live.then(|| {
        let bar = ProgressBar::new(timeline.run_time.as_secs().max(1));
        bar.set_style(ProgressStyle::with_template("{bar:24} {msg}").expect("a valid template"));
        crate::console::hold_bar(bar.clone());
        bar
    });
    let mut ticks = tokio::time::interval(if live { LIVE_EVERY } else { PLAIN_EVERY });
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut last: Option<(Instant, u64)> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Some((progress, histogram)) = sample().await else { continue };
        let now = Instant::now();
        let rate = match last {
            Some((then, requests)) => {
                progress.requests.saturating_sub(requests) as f64 / now.duration_since(then).as_secs_f64()
            }
            None => progress.requests as f64 / now.duration_since(started).as_secs_f64().max(1e-3),
        };
        last = Some((now, progress.requests));
        let text = line(started.elapsed(), &timeline, &progress, histogram.value_at_quantile(0.95), rate);
        match &bar {
            Some(bar) => {
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(text);
            }
            None => eprintln!("progress {text}"),
        }
    }
    if bar.is_some() {
        crate::console::lift_bar();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grace_loadtests::Recorder;

    #[test]
    fn users_follow_the_stages_linearly() {
        let stages = vec![Stage { secs: 10, users: 50 }, Stage { secs: 20, users: 50 }, Stage { secs: 10, users: 0 }];
        let timeline = Timeline { users: 50, stages, run_time: Duration::from_secs(40) };
        let at = |secs: u64| timeline.users_at(Duration::from_secs(secs));
        assert_eq!([at(0), at(5), at(10), at(29), at(35), at(40), at(99)], [0, 25, 50, 50, 25, 0, 0]);
        let flat = Timeline { users: 7, stages: vec![], run_time: Duration::from_secs(5) };
        assert_eq!(flat.users_at(Duration::from_secs(3)), 7);
    }

    #[test]
    fn shares_merge_into_the_exact_p95_and_errors_show_injected_apart() {
        let (fast, slow) = (Recorder::default(), Recorder::default());
        for ms in 1..=90 {
            fast.record_latency("/api/chat", Duration::from_millis(ms));
            fast.count_backend("http://a", true);
        }
        for ms in 91..=100 {
            slow.record_latency("/api/chat", Duration::from_millis(ms));
            slow.count_backend("http://a", ms < 98);
        }
        slow.count_injected_fault();
        let (progress, histogram) = merge(&[fast.progress(), slow.progress()]).unwrap();
        assert_eq!((progress.requests, progress.failures, progress.injected_faults), (100, 3, 1));
        // The 95th of 1..=100 ms; each share alone would say 86 or 100.
        let p95 = histogram.value_at_quantile(0.95);
        assert!((94_900..=95_100).contains(&p95), "{p95}");
        let timeline = Timeline { users: 4, stages: vec![], run_time: Duration::from_secs(30) };
        assert_eq!(
            line(Duration::from_secs(12), &timeline, &progress, p95, 812.4),
            format!(
                "12s/30s  4 users  812 req/s  100 requests  2 errors (+1 injected)  p95 {:.1} ms",
                p95 as f64 / 1000.0
            )
        );
    }
}
