//! What the load saw, kept apart from how it is reported: a latency histogram
//! per request name and overall (microseconds, HdrHistogram, so workers'
//! histograms merge into exact percentiles), and the idempotency keys of the
//! writes the backend acknowledged.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The highest latency tracked exactly: one minute. Longer ones are clamped.
const HIGHEST_MICROS: u64 = 60_000_000;
/// Three significant digits: a 0.1% error at any latency.
const SIGNIFICANT_DIGITS: u8 = 3;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS).expect("valid histogram bounds")
}

/// Shared by every user of a load run. A std mutex: each user holds it for one
/// histogram update, never across an await.
#[derive(Default)]
pub struct Recorder {
    recorded: Mutex<Recorded>,
}

#[derive(Clone)]
pub struct Recorded {
    pub overall: Histogram<u64>,
    pub by_name: BTreeMap<String, Histogram<u64>>,
    pub acknowledged_keys: Vec<String>,
}

impl Default for Recorded {
    fn default() -> Self {
        Self { overall: histogram(), by_name: BTreeMap::new(), acknowledged_keys: Vec::new() }
    }
}

impl Recorder {
    pub fn record_latency(&self, name: &str, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, HIGHEST_MICROS);
        let mut recorded = self.recorded.lock().expect("recorder lock");
        recorded.overall.saturating_record(micros);
        recorded.by_name.entry(name.to_string()).or_insert_with(histogram).saturating_record(micros);
    }

    pub fn acknowledge(&self, key: &str) {
        self.recorded.lock().expect("recorder lock").acknowledged_keys.push(key.to_string());
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Recorded {
        self.recorded.lock().expect("recorder lock").clone()
    }
}
