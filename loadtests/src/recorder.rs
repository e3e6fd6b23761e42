//! What the load saw, kept apart from how it is reported: a latency histogram
//! per request name and overall (microseconds, HdrHistogram, so workers'
//! histograms merge into exact percentiles — percentiles are never averaged),
//! and the idempotency keys of the writes the backend acknowledged.
//!
//! For the trip through the control plane a worker ships its histograms in
//! HdrHistogram's V2 encoding (`LatencyUpload`) and its keys as a count and an
//! order-independent digest (`key_digest`), which the coordinator merges.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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

#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub overall: Histogram<u64>,
    pub by_name: BTreeMap<String, Histogram<u64>>,
    pub acknowledged_keys: Vec<String>,
    /// Writes refused definitely (a 4xx, or a refusal that says nothing was
    /// applied): none may be stored.
    pub refused_keys: Vec<String>,
    /// Writes whose last word was no answer (a reset, a timeout, a 5xx after
    /// sending): each may be stored, at most once.
    pub indeterminate_keys: Vec<String>,
    /// Responses that were faults injected on purpose (`X-Grace-Fault`), so a
    /// report can count them apart from genuine errors.
    pub injected_faults: u64,
    /// Latency second by second (Unix time), for "latency over time" charts;
    /// workers' timelines add up because they share the wall clock.
    pub timeline: BTreeMap<u64, TimeSlot>,
    /// Requests by the backend (base URL) they were sent to, when a run
    /// spreads its users over several.
    pub by_backend: BTreeMap<String, BackendCount>,
    /// Answers by request name and status (`"200"`, `"503"`, or `"no
    /// answer"` for a transport error), every attempt counted.
    pub statuses: BTreeMap<String, BTreeMap<String, u64>>,
    /// The attempts that failed, by request name: retried, unanswered, or
    /// answered other than their step allows (a status it does not expect, a
    /// check that does not hold) — the failures every result counts.
    pub failed: BTreeMap<String, u64>,
    /// From the start of the first request recorded to the end of the last:
    /// what a share's requests per second are over.
    pub sending: Option<Span>,
    /// A sample of each distinct failure (request, status, what the body
    /// said), every attempt — a refusal retried included — with how often it
    /// was seen; at most `ERROR_KINDS` kinds, the
    /// rest counted under one "other failures" sample.
    pub errors: Vec<ErrorSample>,
}

/// How a write ended, as Jepsen's checkers judge one: acknowledged (it must be
/// stored exactly once), refused definitely (it must not be stored), or
/// indeterminate — no answer came, so it may be stored, but at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    Acknowledged,
    Refused,
    Indeterminate,
}

impl WriteOutcome {
    pub const ALL: [WriteOutcome; 3] = [WriteOutcome::Acknowledged, WriteOutcome::Refused, WriteOutcome::Indeterminate];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::Acknowledged => "acknowledged",
            WriteOutcome::Refused => "refused",
            WriteOutcome::Indeterminate => "indeterminate",
        }
    }

    /// The outcome of a write whose attempts ended as `attempts` say, in
    /// order: acknowledged when any was; else indeterminate when any may
    /// have been applied; else refused.
    pub fn of(attempts: impl IntoIterator<Item = WriteOutcome>) -> WriteOutcome {
        attempts.into_iter().fold(WriteOutcome::Refused, |so_far, attempt| match (so_far, attempt) {
            (WriteOutcome::Acknowledged, _) | (_, WriteOutcome::Acknowledged) => WriteOutcome::Acknowledged,
            (WriteOutcome::Indeterminate, _) | (_, WriteOutcome::Indeterminate) => WriteOutcome::Indeterminate,
            _ => WriteOutcome::Refused,
        })
    }
}

/// The name every request is summed under, beside each request's own
/// (`Recorded::overall`), wherever results are shown by name.
pub const OVERALL: &str = "overall";

/// How many distinct failures are sampled before the rest are lumped.
const ERROR_KINDS: usize = 20;
/// How much of a failing answer's body a sample keeps.
const EXCERPT_CHARS: usize = 200;

/// One kind of failure and how often it was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSample {
    pub name: String,
    /// The status, or `"no answer"`.
    pub status: String,
    /// What was wrong: the start of the body (or the transport error).
    pub excerpt: String,
    pub count: u64,
}

impl ErrorSample {
    fn is(&self, other: &ErrorSample) -> bool {
        self.name == other.name && self.status == other.status && self.excerpt == other.excerpt
    }
}

/// Adds `sample` to `samples`: to its kind's count, as a new kind, or past
/// `ERROR_KINDS` to the catch-all.
fn add_sample(samples: &mut Vec<ErrorSample>, sample: ErrorSample) {
    if let Some(kind) = samples.iter_mut().find(|kind| kind.is(&sample)) {
        kind.count += sample.count;
    } else if samples.len() < ERROR_KINDS {
        samples.push(sample);
    } else {
        let other = ErrorSample { name: "*".into(), status: "*".into(), excerpt: "(other failures)".into(), count: 0 };
        match samples.iter_mut().find(|kind| kind.is(&other)) {
            Some(kind) => kind.count += sample.count,
            None => {
                // The last kind gives way to the catch-all, which takes its count too.
                let last = samples.pop().expect("ERROR_KINDS samples");
                samples.push(ErrorSample { count: last.count + sample.count, ..other });
            }
        }
    }
}

/// A stretch of time, in Unix milliseconds of the recording process's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub first_ms: u64,
    pub last_ms: u64,
}

impl Span {
    pub fn secs(&self) -> f64 {
        self.last_ms.saturating_sub(self.first_ms) as f64 / 1000.0
    }

    fn cover(this: Option<Span>, other: Span) -> Span {
        this.map_or(other, |this| Span {
            first_ms: this.first_ms.min(other.first_ms),
            last_ms: this.last_ms.max(other.last_ms),
        })
    }
}

/// The requests sent to one backend, and how many were not answered 2xx.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendCount {
    pub requests: u64,
    pub failures: u64,
}

/// One second of requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSlot {
    pub requests: u64,
    pub total_micros: u64,
    pub max_micros: u64,
    /// Faults injected on purpose in this second.
    #[serde(default)]
    pub injected: u64,
    /// Attempts answered other than 2xx, or not at all, in this second
    /// (injected faults among them).
    #[serde(default)]
    pub failures: u64,
    /// Bytes of request bodies sent (every attempt), and of response bodies
    /// received, by requests that ended in this second (headers not counted).
    #[serde(default)]
    pub body_bytes_sent: u64,
    #[serde(default)]
    pub body_bytes_received: u64,
}

impl TimeSlot {
    fn add(&mut self, other: &TimeSlot) {
        self.requests += other.requests;
        self.total_micros += other.total_micros;
        self.max_micros = self.max_micros.max(other.max_micros);
        self.injected += other.injected;
        self.failures += other.failures;
        self.body_bytes_sent += other.body_bytes_sent;
        self.body_bytes_received += other.body_bytes_received;
    }
}

/// Bytes of request and response bodies (headers are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BodyBytes {
    pub sent: u64,
    pub received: u64,
}

impl Default for Recorded {
    fn default() -> Self {
        Self {
            overall: histogram(),
            by_name: BTreeMap::new(),
            acknowledged_keys: Vec::new(),
            refused_keys: Vec::new(),
            indeterminate_keys: Vec::new(),
            injected_faults: 0,
            timeline: BTreeMap::new(),
            by_backend: BTreeMap::new(),
            statuses: BTreeMap::new(),
            failed: BTreeMap::new(),
            sending: None,
            errors: Vec::new(),
        }
    }
}

impl Recorder {
    /// One attempt's latency, its bodies not counted (an attempt retried).
    pub fn record_latency(&self, name: &str, latency: Duration) {
        self.record_request(name, latency, BodyBytes::default());
    }

    /// A request that ended: its latency and the bodies it sent (all its
    /// attempts) and received, under one lock — this is the hot path.
    pub fn record_request(&self, name: &str, latency: Duration, bodies: BodyBytes) {
        let micros = (latency.as_micros() as u64).clamp(1, HIGHEST_MICROS);
        let now_ms = unix_millis();
        let mut recorded = self.recorded.lock().expect("recorder lock");
        recorded.overall.saturating_record(micros);
        entry(&mut recorded.by_name, name, histogram).saturating_record(micros);
        let this = Span { first_ms: now_ms.saturating_sub(latency.as_millis() as u64), last_ms: now_ms };
        recorded.sending = Some(Span::cover(recorded.sending, this));
        recorded.timeline.entry(now_ms / 1000).or_default().add(&TimeSlot {
            requests: 1,
            total_micros: micros,
            max_micros: micros,
            body_bytes_sent: bodies.sent,
            body_bytes_received: bodies.received,
            ..TimeSlot::default()
        });
    }

    /// One attempt at a request named `name`, sent to `backend`, and its
    /// answer's status (`None`: no answer came, a transport error): counted
    /// by backend (2xx or not) and by name and status, under one lock.
    pub fn count_answer(&self, backend: &str, name: &str, status: Option<u16>) {
        let mut recorded = self.recorded.lock().expect("recorder lock");
        let failed = u64::from(!status.is_some_and(|s| (200..300).contains(&s)));
        let count = entry(&mut recorded.by_backend, backend, BackendCount::default);
        count.requests += 1;
        count.failures += failed;
        recorded.timeline.entry(unix_second()).or_default().failures += failed;
        *entry(&mut recorded.statuses, name, BTreeMap::new).entry(status_text(status)).or_default() += 1;
    }

    /// One attempt at a request named `name` that failed (see `Recorded::failed`).
    pub fn count_failure(&self, name: &str) {
        *entry(&mut self.recorded.lock().expect("recorder lock").failed, name, || 0) += 1;
    }

    pub fn count_injected_fault(&self) {
        let mut recorded = self.recorded.lock().expect("recorder lock");
        recorded.injected_faults += 1;
        recorded.timeline.entry(unix_second()).or_default().injected += 1;
    }

    /// A failure of a request named `name`, as `what` describes it (the
    /// answer's body, or the transport error).
    pub fn sample_error(&self, name: &str, status: Option<u16>, what: &str) {
        let excerpt: String = what.chars().take(EXCERPT_CHARS).collect();
        let sample = ErrorSample { name: name.to_string(), status: status_text(status), excerpt, count: 1 };
        add_sample(&mut self.recorded.lock().expect("recorder lock").errors, sample);
    }

    /// How the write with idempotency key `key` ended, all its attempts told.
    pub fn settle(&self, key: &str, outcome: WriteOutcome) {
        let mut recorded = self.recorded.lock().expect("recorder lock");
        let keys = match outcome {
            WriteOutcome::Acknowledged => &mut recorded.acknowledged_keys,
            WriteOutcome::Refused => &mut recorded.refused_keys,
            WriteOutcome::Indeterminate => &mut recorded.indeterminate_keys,
        };
        keys.push(key.to_string());
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Recorded {
        self.recorded.lock().expect("recorder lock").clone()
    }

    /// What live progress needs of the recordings so far: a copy of the
    /// histograms and counts, without the keys or the timeline (cheaper than
    /// a snapshot; users wait only for the copy).
    pub fn tally(&self) -> Recorded {
        let recorded = self.recorded.lock().expect("recorder lock");
        Recorded {
            overall: recorded.overall.clone(),
            by_name: recorded.by_name.clone(),
            injected_faults: recorded.injected_faults,
            by_backend: recorded.by_backend.clone(),
            statuses: recorded.statuses.clone(),
            failed: recorded.failed.clone(),
            ..Recorded::default()
        }
    }
}

impl Recorded {
    /// Every attempt so far, and those that failed.
    pub fn requests_and_failures(&self) -> (u64, u64) {
        (self.by_backend.values().map(|count| count.requests).sum(), self.failed.values().sum())
    }

    /// Every attempt at requests named `name`, and those that failed.
    pub fn requests_and_failures_of(&self, name: &str) -> (u64, u64) {
        let requests = self.statuses.get(name).map_or(0, |statuses| statuses.values().sum());
        (requests, self.failures_of(name))
    }

    /// The attempts at requests named `name` that failed.
    pub fn failures_of(&self, name: &str) -> u64 {
        self.failed.get(name).copied().unwrap_or(0)
    }

    /// Where these recordings stand, portable (see [`Progress`]).
    pub fn progress(&self) -> Progress {
        let (requests, failures) = self.requests_and_failures();
        let by_name = self
            .by_name
            .iter()
            .map(|(name, histogram)| {
                (name.clone(), NameProgress { failures: self.failures_of(name), latency: encode(histogram) })
            })
            .collect();
        Progress {
            requests,
            failures,
            injected_faults: self.injected_faults,
            overall: encode(&self.overall),
            by_name,
            sampled_at_ms: Some(unix_millis()),
        }
    }
}

/// Where a run (or one worker's share of it) stands: every request sent so
/// far, those not answered 2xx (injected faults among them, counted apart too),
/// and the histogram of every latency so far in its portable form, overall
/// and by request name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub requests: u64,
    pub failures: u64,
    pub injected_faults: u64,
    pub overall: String,
    #[serde(default)]
    pub by_name: BTreeMap<String, NameProgress>,
    /// When it was taken (Unix ms, the worker's clock): a reader sampling
    /// more often than it is published sees the same one twice, which is no
    /// new data — not a second without requests.
    #[serde(default)]
    pub sampled_at_ms: Option<u64>,
}

/// One request name's part of a [`Progress`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameProgress {
    /// Answers not 2xx (and no answers).
    pub failures: u64,
    /// Every latency so far, portable.
    pub latency: String,
}

impl Progress {
    /// The latency histogram, back from its portable form.
    pub fn histogram(&self) -> Result<Histogram<u64>, UploadError> {
        decode(&self.overall)
    }
}

impl NameProgress {
    /// The latency histogram, back from its portable form.
    pub fn histogram(&self) -> Result<Histogram<u64>, UploadError> {
        decode(&self.latency)
    }
}

/// A status as the recordings name it: `"200"`, or `"no answer"`.
fn status_text(status: Option<u16>) -> String {
    status.map_or_else(|| "no answer".to_string(), |s| s.to_string())
}

/// Now, in whole seconds of Unix time: a timeline's slot.
fn unix_second() -> u64 {
    unix_millis() / 1000
}

/// Now, in milliseconds of Unix time.
fn unix_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `map`'s value for `key`, made by `new` when absent. Every request records
/// under a name that is nearly always there already: it is not copied then.
fn entry<'a, V>(map: &'a mut BTreeMap<String, V>, key: &str, new: impl FnOnce() -> V) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), new());
    }
    map.get_mut(key).expect("inserted above")
}

impl Recorded {
    /// Adds another worker's recordings: every histogram merges exactly (the
    /// result is the histogram of the union of both sets of samples).
    pub fn merge(&mut self, other: &Recorded) -> Result<(), hdrhistogram::AdditionError> {
        self.overall.add(&other.overall)?;
        for (name, histogram) in &other.by_name {
            self.by_name.entry(name.clone()).or_insert_with(self::histogram).add(histogram)?;
        }
        self.acknowledged_keys.extend(other.acknowledged_keys.iter().cloned());
        self.refused_keys.extend(other.refused_keys.iter().cloned());
        self.indeterminate_keys.extend(other.indeterminate_keys.iter().cloned());
        self.injected_faults += other.injected_faults;
        for (second, slot) in &other.timeline {
            self.timeline.entry(*second).or_default().add(slot);
        }
        for (backend, count) in &other.by_backend {
            let total = self.by_backend.entry(backend.clone()).or_default();
            total.requests += count.requests;
            total.failures += count.failures;
        }
        for (name, statuses) in &other.statuses {
            let total = self.statuses.entry(name.clone()).or_default();
            for (status, count) in statuses {
                *total.entry(status.clone()).or_default() += count;
            }
        }
        for (name, failed) in &other.failed {
            *self.failed.entry(name.clone()).or_default() += failed;
        }
        if let Some(span) = other.sending {
            self.sending = Some(Span::cover(self.sending, span));
        }
        for sample in &other.errors {
            add_sample(&mut self.errors, sample.clone());
        }
        Ok(())
    }

    /// The histograms in their portable form (keys travel as a digest
    /// instead), the timeline moved onto the coordinating clock: each second
    /// plus `clock_offset_ms` (that clock minus this process's), rounded.
    pub fn latency_upload(&self, clock_offset_ms: i64) -> LatencyUpload {
        let shift = (clock_offset_ms as f64 / 1000.0).round() as i64;
        LatencyUpload {
            sending: self.sending,
            overall: encode(&self.overall),
            by_name: self.by_name.iter().map(|(name, h)| (name.clone(), encode(h))).collect(),
            injected_faults: self.injected_faults,
            clock_offset_ms,
            timeline: self.timeline.iter().map(|(second, slot)| ((*second as i64 + shift) as u64, *slot)).collect(),
            by_backend: self.by_backend.clone(),
            statuses: self.statuses.clone(),
            failed: self.failed.clone(),
            errors: self.errors.clone(),
        }
    }
}

/// Histograms as a worker uploads them: base64 of HdrHistogram's V2 encoding,
/// overall and by request name. JSON, so it stays readable in the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyUpload {
    /// When its requests were sent (the uploader's clock: only its length counts).
    #[serde(default)]
    pub sending: Option<Span>,
    pub overall: String,
    pub by_name: BTreeMap<String, String>,
    #[serde(default)]
    pub injected_faults: u64,
    /// The coordinating clock minus the uploader's, in milliseconds, as it
    /// last measured; `timeline` is already on that clock.
    #[serde(default)]
    pub clock_offset_ms: i64,
    #[serde(default)]
    pub timeline: BTreeMap<u64, TimeSlot>,
    #[serde(default)]
    pub by_backend: BTreeMap<String, BackendCount>,
    #[serde(default)]
    pub statuses: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default)]
    pub failed: BTreeMap<String, u64>,
    #[serde(default)]
    pub errors: Vec<ErrorSample>,
}

/// Why an upload could not be read back.
#[derive(Debug)]
pub enum UploadError {
    Base64(base64::DecodeError),
    Histogram(hdrhistogram::serialization::DeserializeError),
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Base64(e) => write!(f, "histogram upload is not base64: {e}"),
            Self::Histogram(e) => write!(f, "histogram upload is not an HdrHistogram V2 encoding: {e:?}"),
        }
    }
}

impl std::error::Error for UploadError {}

impl LatencyUpload {
    /// Back to histograms (with no keys: those travel as a digest).
    pub fn decode(&self) -> Result<Recorded, UploadError> {
        Ok(Recorded {
            overall: decode(&self.overall)?,
            by_name: self
                .by_name
                .iter()
                .map(|(n, h)| Ok((n.clone(), decode(h)?)))
                .collect::<Result<_, UploadError>>()?,
            acknowledged_keys: Vec::new(),
            refused_keys: Vec::new(),
            indeterminate_keys: Vec::new(),
            injected_faults: self.injected_faults,
            timeline: self.timeline.clone(),
            by_backend: self.by_backend.clone(),
            statuses: self.statuses.clone(),
            failed: self.failed.clone(),
            sending: self.sending,
            errors: self.errors.clone(),
        })
    }
}

fn encode(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new().serialize(histogram, &mut bytes).expect("serializing into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(text: &str) -> Result<Histogram<u64>, UploadError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(UploadError::Base64)?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(UploadError::Histogram)
}

/// An order-independent digest of a set of keys: the XOR of their SHA-256
/// hashes, in hex. Workers' key sets are disjoint (each key names its worker),
/// so the digest of the union is the XOR of the workers' digests, and the
/// coordinator can compare it with the digest of the rows in the database.
pub fn key_digest<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut digest = KeyDigest::default();
    keys.into_iter().for_each(|key| digest.add(key));
    digest.to_hex()
}

/// `key_digest` built one key at a time, for keys streamed from a database.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn add(&mut self, key: &str) {
        for (d, k) in self.0.iter_mut().zip(Sha256::digest(key.as_bytes())) {
            *d ^= k;
        }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Combines digests of disjoint key sets into the digest of their union.
pub fn combine_digests<'a>(digests: impl IntoIterator<Item = &'a str>) -> Result<String, hex::FromHexError> {
    let mut combined = [0u8; 32];
    for digest in digests {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digest, &mut bytes)?;
        for (c, b) in combined.iter_mut().zip(bytes) {
            *c ^= b;
        }
    }
    Ok(hex::encode(combined))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(latencies_ms: &[u64], name: &str, keys: &[&str]) -> Recorded {
        let recorder = Recorder::default();
        for ms in latencies_ms {
            recorder.record_latency(name, Duration::from_millis(*ms));
        }
        for key in keys {
            recorder.settle(key, WriteOutcome::Acknowledged);
        }
        recorder.snapshot()
    }

    #[test]
    fn two_histograms_merge_to_exactly_the_percentiles_of_their_union() {
        let fast: Vec<u64> = (1..=900).map(|n| n % 20 + 1).collect();
        let slow: Vec<u64> = (1..=100).map(|n| 200 + n * 3).collect();
        let mut merged = recorded(&fast, "/api/chat", &["w1/u0/1"]);
        merged.merge(&recorded(&slow, "/api/chat", &["w2/u0/1"])).unwrap();
        let union = recorded(&[fast.clone(), slow.clone()].concat(), "/api/chat", &[]);
        for q in [0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(merged.overall.value_at_quantile(q), union.overall.value_at_quantile(q), "q{q}");
            assert_eq!(
                merged.by_name["/api/chat"].value_at_quantile(q),
                union.by_name["/api/chat"].value_at_quantile(q)
            );
        }
        assert_eq!(merged.overall.len(), 1000, "counts add up");
        assert_eq!(merged.overall.max(), union.overall.max(), "the max of maxes");
        // The union's p99 is in the slow worker's range; averaging the two
        // workers' p99s would have halved it.
        assert!(merged.overall.value_at_quantile(0.99) > 400_000);
        assert_eq!(merged.acknowledged_keys, ["w1/u0/1", "w2/u0/1"]);
    }

    #[test]
    fn a_write_is_acknowledged_if_any_attempt_was_else_indeterminate_if_any_may_have_applied() {
        use WriteOutcome::*;
        assert_eq!(WriteOutcome::of([Indeterminate, Acknowledged]), Acknowledged);
        assert_eq!(WriteOutcome::of([Refused, Indeterminate, Refused]), Indeterminate);
        assert_eq!(WriteOutcome::of([Refused, Refused]), Refused);
        assert_eq!(WriteOutcome::of([Acknowledged, Refused]), Acknowledged);
    }

    #[test]
    fn histograms_survive_the_upload_encoding() {
        let original = recorded(&[1, 5, 5, 80, 1200], "/api/tasks", &["k"]);
        let upload = original.latency_upload(0);
        let json = serde_json::to_string(&upload).unwrap();
        let decoded = serde_json::from_str::<LatencyUpload>(&json).unwrap().decode().unwrap();
        assert_eq!(decoded.overall, original.overall);
        assert_eq!(decoded.by_name, original.by_name);
        assert_eq!(decoded.timeline, original.timeline);
        assert!(original.sending.is_some());
        assert_eq!(decoded.sending, original.sending);
        assert_eq!(decoded.timeline.values().map(|s| s.requests).sum::<u64>(), 5);
        let garbled = LatencyUpload { overall: "not base64!".into(), ..upload };
        assert!(garbled.decode().is_err());
    }

    #[test]
    fn the_uploaded_timeline_is_moved_onto_the_coordinating_clock() {
        let original = recorded(&[1, 5], "/api/tasks", &["k"]);
        let moved: Vec<u64> = original.timeline.keys().map(|second| second - 90).collect();
        // This clock 90 s ahead of the database's (offset -90 s, and -89.6 s rounds to it).
        for offset_ms in [-90_000, -89_600] {
            let upload = original.latency_upload(offset_ms);
            assert_eq!(upload.timeline.keys().copied().collect::<Vec<_>>(), moved, "{offset_ms}");
            assert_eq!(upload.clock_offset_ms, offset_ms);
        }
        assert_eq!(original.latency_upload(400).timeline, original.timeline, "under half a second: unmoved");
    }

    #[test]
    fn the_key_digest_ignores_order_and_combines_across_disjoint_sets() {
        let all = ["w1/u0/1", "w1/u0/2", "w2/u3/1"];
        assert_eq!(key_digest(all), key_digest(["w2/u3/1", "w1/u0/1", "w1/u0/2"]));
        let combined = combine_digests([key_digest(["w1/u0/1", "w1/u0/2"]).as_str(), key_digest(["w2/u3/1"]).as_str()]);
        assert_eq!(combined.unwrap(), key_digest(all));
        assert_ne!(key_digest(all), key_digest(["w1/u0/1", "w1/u0/2"]), "a missing key changes the digest");
        assert_eq!(key_digest([]), "0".repeat(64));
    }
}
