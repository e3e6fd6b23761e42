//! The backend's Prometheus metrics (`GET /metrics`). A registry per server, not
//! a global recorder, so several servers in one process (tests, replicas) keep
//! their own numbers. Measuring happens where things happen; rendering is here.

use crate::specification::ContractStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    tier: i16,
    outcome: String,
}

/// Values read at scrape time from their owners.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrapeSnapshot {
    pub mesh_queue_depth: i64,
    pub mesh_dropped: u64,
    pub mesh_refused: u64,
    pub mesh_subscribers: i64,
    pub log_lag: i64,
    pub pool_size: i64,
    pub pool_available: i64,
    pub pool_waiting: i64,
    pub faults_injected: u64,
    pub breaker_open: bool,
}

#[derive(Debug)]
pub struct Telemetry {
    /// Encoding needs `&Registry` while scrapes may run concurrently.
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    actions: Family<ActionLabels, Counter>,
    mesh_queue_depth: Gauge,
    mesh_dropped: Counter<u64, AtomicU64>,
    mesh_refused: Counter<u64, AtomicU64>,
    mesh_subscribers: Gauge,
    log_lag: Gauge,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
    faults_injected: Counter<u64, AtomicU64>,
    breaker_open: Gauge,
    resident_memory: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Default for Telemetry {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let actions = Family::<ActionLabels, Counter>::default();
        let (mesh_queue_depth, mesh_subscribers, log_lag) = (Gauge::default(), Gauge::default(), Gauge::default());
        let (pool_size, pool_available, pool_waiting) = (Gauge::default(), Gauge::default(), Gauge::default());
        let (breaker_open, resident_memory) = (Gauge::default(), Gauge::default());
        let mesh_dropped = Counter::<u64, AtomicU64>::default();
        let mesh_refused = Counter::<u64, AtomicU64>::default();
        let faults_injected = Counter::<u64, AtomicU64>::default();

        let mut registry = Registry::default();
        registry.register("grace_http_requests", "HTTP requests by route and status", requests.clone());
        registry.register("grace_http_request_duration_seconds", "HTTP latency by route", latency.clone());
        registry.register("grace_actions", "Contracts reaching a status, by tier", actions.clone());
        registry.register("grace_mesh_queue_depth", "Events queued for mesh subscribers", mesh_queue_depth.clone());
        registry.register("grace_mesh_dropped", "Events dropped for slow mesh subscribers", mesh_dropped.clone());
        registry.register("grace_mesh_subscribers", "Live mesh subscriptions", mesh_subscribers.clone());
        registry.register(
            "grace_mesh_refused",
            "Event streams refused at a cap (per token or in all)",
            mesh_refused.clone(),
        );
        registry.register("grace_log_lag", "Events not yet chained into the immutable log", log_lag.clone());
        registry.register("grace_db_pool_size", "Database connections open", pool_size.clone());
        registry.register("grace_db_pool_available", "Database connections idle", pool_available.clone());
        registry.register("grace_db_pool_waiting", "Requests waiting for a connection", pool_waiting.clone());
        registry.register("grace_faults_injected", "Faults injected on purpose", faults_injected.clone());
        registry.register("grace_circuit_breaker_open", "1 while the breaker is open", breaker_open.clone());
        registry.register("process_resident_memory_bytes", "Resident memory", resident_memory.clone());
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            actions,
            mesh_queue_depth,
            mesh_dropped,
            mesh_refused,
            mesh_subscribers,
            log_lag,
            pool_size,
            pool_available,
            pool_waiting,
            faults_injected,
            breaker_open,
            resident_memory,
        }
    }
}

impl Telemetry {
    pub fn record_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { method: method.into(), route: route.into(), status }).inc();
        self.latency.get_or_create(&RouteLabels { route: route.into() }).observe(seconds);
    }

    pub fn record_action(&self, tier: i16, outcome: ContractStatus) {
        self.actions.get_or_create(&ActionLabels { tier, outcome: outcome.as_str().into() }).inc();
    }

    /// The Prometheus text exposition, with scrape-time values filled in.
    pub fn render(&self, snapshot: ScrapeSnapshot) -> String {
        self.mesh_queue_depth.set(snapshot.mesh_queue_depth);
        raise_to(&self.mesh_dropped, snapshot.mesh_dropped);
        raise_to(&self.mesh_refused, snapshot.mesh_refused);
        self.mesh_subscribers.set(snapshot.mesh_subscribers);
        self.log_lag.set(snapshot.log_lag);
        self.pool_size.set(snapshot.pool_size);
        self.pool_available.set(snapshot.pool_available);
        self.pool_waiting.set(snapshot.pool_waiting);
        raise_to(&self.faults_injected, snapshot.faults_injected);
        self.breaker_open.set(i64::from(snapshot.breaker_open));
        self.resident_memory.set(resident_memory_bytes().unwrap_or(0));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry.lock().expect("registry lock"))
            .expect("writing to a String cannot fail");
        text
    }
}

/// Counters owned elsewhere (atomics in the mesh and fault injector) are
/// mirrored here by adding what is new since the last scrape.
fn raise_to(counter: &Counter<u64, AtomicU64>, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

/// Resident set size from /proc (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten()?;
    Some(pages * page_size)
}
