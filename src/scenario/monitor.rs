//! `--monitor`: every 2 s, one line on stderr — phase, the mission's events
//! and contracts and its latest contract status (from Postgres), requests/s,
//! error rate and p95 over the last 2 s, and the log lag. While the load
//! (phase 5) runs, the traffic figures are the load's own, from its workers'
//! published progress: a p95 from the histogram of every latency in the
//! window, exact. Between loads they come from the backend's /metrics, whose
//! buckets only bound the p95 (shown as `≤`). On a terminal it is a live line
//! under a bar of the phases begun (other output prints above it, see
//! `console`); otherwise plain lines, so CI logs stay readable.

use crate::client::{prometheus, BackendClient};
use crate::configuration::DatabaseUrl;
use crate::control::progress::Sample;
use crate::control::status::RunStatus;
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

/// The load's progress as the monitor read it.
struct LoadReading {
    /// Seconds since the load started (the database's clock).
    elapsed_secs: f64,
    /// How long it runs in all.
    run_time_secs: f64,
    sample: Sample,
}

pub async fn run(api: BackendClient, database: DatabaseUrl, status: watch::Receiver<Status>) {
    let db = match crate::db::connect(&database).await {
        Ok(db) => db,
        Err(e) => {
            crate::tell!("monitor: {e}");
            return;
        }
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        // The bar fills with the phases begun; the label names the one running.
        let bar = ProgressBar::new(8);
        bar.set_style(ProgressStyle::with_template("[{bar:16}] {msg}").expect("a valid template"));
        crate::console::hold_bar(bar.clone());
        bar
    });
    // The first line covers the 2 s since this scrape, not the backend's life.
    let mut before = (Instant::now(), api.scrape().await.map(|t| Scrape::parse(&t)).unwrap_or_default());
    let mut load: Option<LoadReading> = None;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    loop {
        ticks.tick().await;
        let current = status.borrow().clone();
        let scrape = api.scrape().await.map(|t| Scrape::parse(&t)).unwrap_or_default();
        let traffic = match current.mission {
            Some(mission) => load_progress(&db, mission).await,
            None => None,
        };
        let traffic = match traffic {
            // While the load runs: its own figures since the last reading (or
            // its start), from the histogram of every latency in the window —
            // exact, as `grace load` shows.
            Some(reading) => {
                let previous = load.as_ref();
                let window = reading.sample.window_since(previous.map(|p| &p.sample));
                let seconds = (reading.elapsed_secs - previous.map_or(0.0, |p| p.elapsed_secs)).max(0.001);
                let injected =
                    reading.sample.injected_faults.saturating_sub(previous.map_or(0, |p| p.sample.injected_faults));
                let source = format!(
                    "load {:.0}s/{:.0}s",
                    reading.elapsed_secs.min(reading.run_time_secs),
                    reading.run_time_secs
                );
                let line = traffic_line(
                    &source,
                    window.requests as f64 / seconds,
                    window.failures.saturating_sub(injected) as f64 / window.requests.max(1) as f64,
                    window.p95_ms.map_or_else(|| "-".into(), |p| format!("{p:.1} ms")),
                );
                load = Some(reading);
                line
            }
            // Otherwise the backend's own counters, whose buckets bound the p95.
            None => {
                load = None;
                let seconds = before.0.elapsed().as_secs_f64().max(0.001);
                let requests = (scrape.requests - before.1.requests).max(0.0);
                let errors = (scrape.server_errors - before.1.server_errors).max(0.0);
                let p95 = scrape.p95_since(&before.1).map_or_else(|| "-".into(), |p| format!("≤{p:.0} ms"));
                traffic_line("backend", requests / seconds, if requests > 0.0 { errors / requests } else { 0.0 }, p95)
            }
        };
        let lag = api.health().await.ok().and_then(|h| h.log_lag).map_or_else(|| "?".into(), |l| l.to_string());
        let (events, contracts, latest) = match current.mission {
            Some(mission) => mission_counts(&db, mission).await.unwrap_or((0, 0, None)),
            None => (0, 0, None),
        };
        let phase = current.phase.map_or_else(String::new, |p| format!("{}/8 {}", p.number, p.name));
        let line = format!(
            "phase {phase} | events {events} | contracts {contracts} | latest {} | {traffic} | log lag {lag}",
            latest.as_deref().unwrap_or("-"),
        );
        match &bar {
            Some(bar) => {
                bar.set_position(current.phase.map_or(0, |p| u64::from(p.number)));
                bar.set_message(line);
            }
            None => crate::tell!("monitor: {line}"),
        }
        before = (Instant::now(), scrape);
    }
}

/// `load 12s/30s 812 req/s | errors 0.1% | p95 12.3 ms`: whose traffic (with
/// the load's elapsed and whole time), and how it went.
fn traffic_line(source: &str, rate: f64, error_share: f64, p95: String) -> String {
    format!("{source} {rate:.0} req/s | errors {:.1}% | p95 {p95}", error_share * 100.0)
}

/// The mission's running load, its shares' progress merged; `None` when no
/// load of the mission runs (or none has published yet).
async fn load_progress(db: &tokio_postgres::Client, mission: Uuid) -> Option<LoadReading> {
    let rows = db
        .query(
            "SELECT w.progress, extract(epoch FROM now() - r.start_at)::float8 AS elapsed,
                    (r.config->>'run_time_secs')::float8 AS run_time
               FROM control.run_workers w JOIN control.runs r ON r.id = w.run_id
              WHERE r.mission_id = $1 AND r.status = $2 AND r.start_at <= now() AND w.progress IS NOT NULL",
            &[&mission, &RunStatus::Running],
        )
        .await
        .ok()?;
    let first = rows.first()?;
    let (elapsed_secs, run_time_secs) = (first.try_get("elapsed").ok()?, first.try_get("run_time").ok()?);
    Some(LoadReading { elapsed_secs, run_time_secs, sample: Sample::published(&rows)? })
}

/// The mission's events and contracts, and its latest contract's status.
async fn mission_counts(
    db: &tokio_postgres::Client,
    mission: Uuid,
) -> Result<(i64, i64, Option<String>), tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM action_events WHERE mission_id = $1) AS events,
                    (SELECT count(*) FROM action_contracts WHERE mission_id = $1) AS contracts,
                    (SELECT status FROM action_contracts WHERE mission_id = $1 ORDER BY created_at DESC LIMIT 1)
                      AS latest",
            &[&mission],
        )
        .await?;
    Ok((row.try_get("events")?, row.try_get("contracts")?, row.try_get("latest")?))
}
