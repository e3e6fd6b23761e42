//! `--monitor`: every 2 s, one line on stderr — phase, the mission's events
//! and contracts and its latest contract status (from Postgres), requests/s,
//! error rate and p95 (from the backend's /metrics, between two scrapes), and
//! the log lag. On a terminal it is a live line under a progress bar of the
//! 8 phases; otherwise plain lines, so CI logs stay readable.

use crate::client::{prometheus, BackendClient};
use crate::configuration::DatabaseUrl;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

const EVERY: Duration = Duration::from_secs(2);

/// A phase as the runner announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// 1 to 8.
    pub number: u8,
    pub name: &'static str,
}

/// Where the scenario is, as the runner announces it.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The phase running now; `None` before the first.
    pub phase: Option<Phase>,
    pub mission: Option<Uuid>,
}

/// What one scrape of /metrics says, cumulatively.
#[derive(Debug, Default)]
struct Scrape {
    requests: f64,
    server_errors: f64,
    /// Cumulative latency bucket counts by upper bound (seconds), all routes.
    buckets: BTreeMap<u64, f64>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for (series, value) in prometheus::samples(text) {
            if series.starts_with("grace_http_requests_total") {
                scrape.requests += value;
                if series.contains("status=\"5") {
                    scrape.server_errors += value;
                }
            } else if series.starts_with("grace_http_request_duration_seconds_bucket") {
                let le = series.split("le=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("+Inf");
                let bound = le.parse::<f64>().map_or(u64::MAX, |s| (s * 1e6) as u64);
                *scrape.buckets.entry(bound).or_default() += value;
            }
        }
        scrape
    }

    /// The p95 between two scrapes, as the upper bound of its bucket (ms).
    fn p95_since(&self, before: &Scrape) -> Option<f64> {
        let count = |s: &Scrape| s.buckets.get(&u64::MAX).copied().unwrap_or(0.0);
        let total = count(self) - count(before);
        if total <= 0.0 {
            return None;
        }
        self.buckets
            .iter()
            .find(|(bound, cumulative)| *cumulative - before.buckets.get(bound).copied().unwrap_or(0.0) >= 0.95 * total)
            .map(|(bound, _)| if *bound == u64::MAX { f64::INFINITY } else { *bound as f64 / 1000.0 })
    }
}

pub async fn run(api: BackendClient, database: DatabaseUrl, status: watch::Receiver<Status>) {
    let db = match crate::db::connect(&database).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("monitor: {e}");
            return;
        }
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(8);
        bar.set_style(ProgressStyle::with_template("[{bar:16}] {pos}/{len} {msg}").expect("a valid template"));
        bar
    });
    let mut before = (Instant::now(), Scrape::default());
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        ticks.tick().await;
        let current = status.borrow().clone();
        let scrape = api.scrape().await.map(|t| Scrape::parse(&t)).unwrap_or_default();
        let seconds = before.0.elapsed().as_secs_f64().max(0.001);
        let requests = (scrape.requests - before.1.requests).max(0.0);
        let errors = (scrape.server_errors - before.1.server_errors).max(0.0);
        let p95 = scrape.p95_since(&before.1).map_or_else(|| "-".into(), |p| format!("{p:.0}ms"));
        let lag = api.health().await.ok().and_then(|h| h.log_lag).map_or_else(|| "?".into(), |l| l.to_string());
        let (events, contracts, latest) = match current.mission {
            Some(mission) => db
                .query_one(
                    "SELECT (SELECT count(*) FROM action_events WHERE mission_id = $1) AS events,
                            (SELECT count(*) FROM action_contracts WHERE mission_id = $1) AS contracts,
                            (SELECT status FROM action_contracts WHERE mission_id = $1 ORDER BY created_at DESC LIMIT 1)
                              AS latest",
                    &[&mission],
                )
                .await
                .and_then(|r| {
                    Ok((
                        r.try_get::<_, i64>("events")?,
                        r.try_get::<_, i64>("contracts")?,
                        r.try_get::<_, Option<String>>("latest")?,
                    ))
                })
                .unwrap_or((0, 0, None)),
            None => (0, 0, None),
        };
        let phase = current.phase.map_or_else(String::new, |p| format!("{}/8 {}", p.number, p.name));
        let line = format!(
            "phase {phase} | events {events} | contracts {contracts} | latest {} | {:.0} req/s | errors {:.1}% | p95 {p95} | log lag {lag}",
            latest.as_deref().unwrap_or("-"),
            requests / seconds,
            if requests > 0.0 { errors / requests * 100.0 } else { 0.0 },
        );
        match &bar {
            Some(bar) => {
                // Phases before the running one are done.
                let done = current.phase.map_or(0, |p| u64::from(p.number).saturating_sub(1));
                bar.set_position(done);
                bar.set_message(line);
            }
            None => eprintln!("monitor: {line}"),
        }
        before = (Instant::now(), scrape);
    }
}
