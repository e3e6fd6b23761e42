//! `grace worker --metrics-listen ADDR`: the worker's own numbers on a
//! Prometheus `/metrics`, so a dashboard shows the load from the clients'
//! side beside the backend's — requests per second, errors and p95 by worker
//! (compose/'s Grafana has those panels). Read at scrape time from the
//! recorder of the worker's latest share, nothing kept twice:
//!
//! - `grace_worker_running` — 1 while a share runs;
//! - `grace_worker_requests_total{request,status}` — every attempt and its
//!   status (`no answer` for a transport error);
//! - `grace_worker_injected_faults_total` — failures injected on purpose;
//! - `grace_worker_latency_seconds{request,quantile}` — p50/p95/p99 from the
//!   share's HdrHistogram (`request="overall"` too): exact for the worker,
//!   cumulative over its share. Merge workers' *histograms* for a run's
//!   percentiles (the report does); never average these.
//!
//! The counters start again at zero with each share, which Prometheus's
//! `rate()` reads as a counter reset. Every series carries `worker`, the
//! worker's host and pid.

use axum::response::IntoResponse;
use grace_loadtests::{Recorder, OVERALL};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The share whose numbers are shown: the running one, or the last.
#[derive(Default, Clone)]
pub struct LatestShare(Arc<Mutex<Option<Share>>>);

#[derive(Clone)]
struct Share {
    recorder: Arc<Recorder>,
    running: bool,
}

impl LatestShare {
    /// A share starts, recording into `recorder`.
    pub fn started(&self, recorder: Arc<Recorder>) {
        *self.0.lock().expect("share lock") = Some(Share { recorder, running: true });
    }

    /// The share has ended; its numbers stay shown until the next.
    pub fn ended(&self) {
        if let Some(share) = self.0.lock().expect("share lock").as_mut() {
            share.running = false;
        }
    }
}

/// Serves `/metrics` on `listener` until `stop`.
pub async fn serve(listener: TcpListener, worker: String, latest: LatestShare, stop: CancellationToken) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(WorkerCollector { worker, latest }));
    let registry = Arc::new(registry);
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                    Ok(()) => (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    );
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await {
        tracing::warn!(error = %e, "the worker's /metrics stopped");
    }
}

struct WorkerCollector {
    worker: String,
    latest: LatestShare,
}

impl std::fmt::Debug for WorkerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerCollector").field("worker", &self.worker).finish_non_exhaustive()
    }
}

impl Collector for WorkerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let share = self.latest.0.lock().expect("share lock").clone();
        let worker = ("worker", self.worker.as_str());
        let running = ConstGauge::new(i64::from(share.as_ref().is_some_and(|s| s.running)));
        running.encode(encoder.encode_descriptor(
            "grace_worker_running",
            "1 while the worker runs a share of a load run",
            None,
            running.metric_type(),
        )?)?;
        let Some(share) = share else { return Ok(()) };
        // A copy of the counts and histograms: users wait only for the copy.
        let tally = share.recorder.tally();

        let mut requests = encoder.encode_descriptor(
            "grace_worker_requests",
            "Requests the worker sent in its latest share (every attempt), by request name and answer status",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (name, statuses) in &tally.statuses {
            for (status, count) in statuses {
                let labels = [worker, ("request", name.as_str()), ("status", status.as_str())];
                ConstCounter::new(*count).encode(requests.encode_family(&labels)?)?;
            }
        }

        let injected = ConstCounter::new(tally.injected_faults);
        let mut family = encoder.encode_descriptor(
            "grace_worker_injected_faults",
            "Failures in the worker's latest share that were faults injected on purpose",
            None,
            injected.metric_type(),
        )?;
        injected.encode(family.encode_family(&[worker])?)?;

        let mut latency = encoder.encode_descriptor(
            "grace_worker_latency_seconds",
            "Latency percentiles of the worker's latest share so far, from its HdrHistogram (exact for this worker; \
             merge histograms, never average these, across workers)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let named = tally.by_name.iter().map(|(name, histogram)| (name.as_str(), histogram));
        for (name, histogram) in std::iter::once((OVERALL, &tally.overall)).chain(named) {
            if histogram.is_empty() {
                continue;
            }
            for (quantile, label) in [(0.5, "0.5"), (0.95, "0.95"), (0.99, "0.99")] {
                let seconds = histogram.value_at_quantile(quantile) as f64 / 1e6;
                let labels = [worker, ("request", name), ("quantile", label)];
                ConstGauge::new(seconds).encode(latency.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
