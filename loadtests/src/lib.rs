//! Load generation for Grace, on goose: the request path every workload's
//! steps go through (`perform`: pacing, retries of writes with their key,
//! outcomes, histograms), the split of a run's users between workers
//! (`share_of`), and the workload engine (`workload`: traffic described in a
//! TOML file, compiled once). `grace worker` builds a share's scenarios here
//! and runs them on its own `GooseAttack`; the `grace-loadtests` binary runs a
//! workload with goose's own CLI and reports.
//!
//! Requests are named by route template, never by id, so goose keeps one row
//! per endpoint; every answer is judged and a wrong one fails with a message
//! saying what was wrong. Every write carries an idempotency key made of
//! (run, worker, proof, user, sequence), and the `Recorder` keeps each write's
//! outcome and a latency histogram per request name: the raw material of the
//! acknowledged-writes check (C7) and of merged percentiles. A write refused
//! for a transient reason (5xx, 429, a transport error) is retried with the
//! same key, as a real client would: the key makes the retry safe.
//!
//! Two load models: closed (each user sends its next request when the last is
//! answered, the default) and open (`LoadTarget::pace`: each user sends a
//! request at fixed intervals, and latency is measured from the *intended*
//! start, so a stall shows as latency instead of as fewer requests —
//! coordinated omission cannot hide it).

mod recorder;
mod transport;
pub mod workload;

/// The goose this crate is built on, for callers that configure attacks.
pub use goose;

pub use recorder::{
    combine_digests, key_digest, BackendCount, BodyBytes, ErrorSample, KeyDigest, LatencyUpload, NameProgress,
    Progress, Recorded, Recorder, Span, TimeSlot, UploadError, WriteOutcome, OVERALL,
};
pub use transport::Transport;

use goose::goose::GooseResponse;
use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use secrecy::SecretString;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::{Outgoing, Reply, SendError};

/// Where the load goes and as whom.
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// The mission every request is tagged with.
    pub mission_id: String,
    /// An operator token.
    pub token: SecretString,
    /// Prefix of every idempotency key: the run and the worker, e.g. `run-7/worker-2`.
    pub key_prefix: String,
    /// Open model: each user sends a request this often (users ÷ rate).
    /// `None`: closed model.
    pub pace: Option<Duration>,
    /// Backends (replicas without a balancer) the users are spread over,
    /// user by user; empty: goose's host for every user.
    pub backends: Vec<String>,
    /// The client requests go out on. `None`: goose's own, and goose keeps
    /// its metrics of every request (for its report, or its CLI's). `Some`:
    /// Grace's direct one, under half the CPU per request (see `transport`).
    pub transport: Option<Arc<Transport>>,
}

/// How often a write refused for a transient reason is sent again.
const WRITE_ATTEMPTS: u32 = 4;
/// The first retry's delay; it doubles each time.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// A user's own state: its counter for unique idempotency keys, in the open
/// model when its next request is due, and for a workload what its flow has
/// captured and which feeder rows its iteration took.
#[derive(Clone, Default)]
pub(crate) struct UserState {
    /// Writes sent, for unique keys.
    pub sent: u64,
    pub next_due: Option<Instant>,
    /// Transactions this user has sent, for taking backends in turn.
    pub transactions: usize,
    /// Scenario iterations begun.
    pub iteration: u64,
    pub captured: std::collections::HashMap<String, Value>,
    /// The row each feeder gave this iteration.
    pub rows: Vec<Option<usize>>,
    /// A unique feeder had no row left for this user: it stops.
    pub exhausted: bool,
    /// The cookies its answers set, sent back as a browser would (the direct
    /// client's; goose's client keeps a jar per user of its own).
    pub cookies: Arc<reqwest::cookie::Jar>,
}

/// The scenarios of one worker's share of a run: `users` users, the
/// run's users numbered `first_user` onwards. goose gives one process's users
/// scenarios by weight in round-robin order (weights 4:3:2:1 and 15 users:
/// 6/4/3/2); split over workers that way, each would take its own round
/// robin, and two workers of 8 and 7 users would run 5/4/4/2. Instead, the
/// run's users are given scenarios in the order goose would give them in one
/// process, and each share keeps its slice of that order: its scenarios are
/// weighted by how many of its users run them (a scenario none of them runs
/// is left out), which goose then allocates exactly.
pub fn share_of(scenarios: Vec<Scenario>, first_user: usize, users: usize) -> Vec<Scenario> {
    let order = user_order(&scenarios.iter().map(|s| s.weight).collect::<Vec<_>>());
    let mut counts = vec![0; scenarios.len()];
    for user in first_user..first_user + users {
        counts[order[user % order.len()]] += 1;
    }
    scenarios
        .into_iter()
        .zip(counts)
        .filter(|(_, count)| *count > 0)
        .map(|(scenario, count)| scenario.set_weight(count).expect("a positive weight"))
        .collect()
}

/// Which scenario each user in a cycle of users runs, as goose's round-robin
/// scheduler allocates them: weights reduced by their greatest common
/// divisor, then one user per scenario in turn while it has weight left.
fn user_order(weights: &[usize]) -> Vec<usize> {
    // Weights are positive (goose refuses 0).
    let divisor = weights.iter().copied().reduce(goose::util::gcd).unwrap_or(1);
    let mut left: Vec<usize> = weights.iter().map(|w| w / divisor).collect();
    let mut order = Vec::new();
    while left.iter().any(|w| *w > 0) {
        for (scenario, weight) in left.iter_mut().enumerate() {
            if *weight > 0 {
                *weight -= 1;
                order.push(scenario);
            }
        }
    }
    order
}

/// One request a transaction makes.
pub(crate) struct Call<'a> {
    pub method: reqwest::Method,
    pub path: String,
    /// `METHOD label`: the name results are grouped by.
    pub name: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<CallBody>,
    /// A write's idempotency key: it is sent again with the same key while it
    /// is refused for a transient reason, and its outcome is recorded.
    pub key: Option<String>,
    /// Read the answer as JSON: a check or a capture needs it. Otherwise the
    /// body is read and dropped, never decoded.
    pub json: bool,
}

pub(crate) enum CallBody {
    Json(Value),
    Form(Vec<(String, String)>),
}

/// What a request that passed answered.
pub(crate) struct Answer {
    pub json: Option<Value>,
    pub headers: reqwest::header::HeaderMap,
}

/// Whether an answer is right: `Err` says what is wrong with it.
pub(crate) type Judge<'a> = &'a (dyn Fn(reqwest::StatusCode, Option<&Value>) -> Result<(), String> + Sync);

pub(crate) fn sequence(user: &mut GooseUser) -> &mut UserState {
    if user.get_session_data::<UserState>().is_none() {
        user.set_session_data(UserState::default());
    }
    user.get_session_data_unchecked_mut::<UserState>()
}

/// With several backends, sends this transaction to the next one in turn
/// (each user starting at its own), as a client balancing over replicas
/// would: every kind of request reaches every backend, and a task polled
/// right after it was submitted is read from the replica that stored it.
pub(crate) fn place(user: &mut GooseUser, target: &LoadTarget) -> Result<(), Box<TransactionError>> {
    if target.backends.len() < 2 {
        return Ok(());
    }
    let turn = user.weighted_users_index + sequence(user).transactions;
    sequence(user).transactions += 1;
    user.set_base_url(&target.backends[turn % target.backends.len()])
}

/// When this transaction was meant to start. In the open model, waits for that
/// moment; a user running late starts at once, and its latency still counts
/// from when it was due. In the closed model, now.
///
/// The timer is set `TIMER_RESOLUTION` early: tokio's wheel rounds a deadline
/// up to its next millisecond tick and the wake-up then waits for a worker,
/// so a user woken "at" its slot sent 1.1 ms after it at the median
/// (`scripts/check-latency`, 150 req/s), and that time, the generator's own,
/// read as the target's. Woken early, it sends at once and its latency counts
/// from then; woken late all the same, from its slot — lateness is never
/// forgiven. The rate is unchanged: every slot is the same shift early.
pub(crate) async fn pace(user: &mut GooseUser, target: &LoadTarget) -> Instant {
    let Some(interval) = target.pace else { return Instant::now() };
    let sequence = sequence(user);
    let due = sequence.next_due.unwrap_or_else(Instant::now);
    sequence.next_due = Some(due + interval);
    tokio::time::sleep_until(due.checked_sub(TIMER_RESOLUTION).unwrap_or(due).into()).await;
    due.min(Instant::now())
}

/// The resolution of tokio's timer wheel.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// Sends `call` (a write again, with the same key, while it is refused for a
/// transient reason — to the next backend, when there are several, as a
/// client behind a balancer would), records each attempt's latency — the
/// first one's from `intended` — and the outcome of a write (see
/// [`WriteOutcome`]), and has `judge` say whether the answer is right; a
/// wrong one is a failure with its message. Returns the answer when it passed.
pub(crate) async fn perform(
    user: &mut GooseUser,
    target: &LoadTarget,
    recorder: &Recorder,
    call: Call<'_>,
    intended: Instant,
    judge: Judge<'_>,
) -> Result<Option<Answer>, Box<TransactionError>> {
    let attempts = if call.key.is_some() { WRITE_ATTEMPTS } else { 1 };
    let mut started = intended;
    let mut attempt = 1;
    let mut outcomes = Vec::new();
    // Encoded once (as reqwest's `json`/`form` would), so its size is known.
    let body: Option<(&str, bytes::Bytes)> = call.body.as_ref().map(|body| match body {
        CallBody::Json(value) => ("application/json", serde_json::to_vec(value).expect("JSON values serialize").into()),
        CallBody::Form(fields) => (
            "application/x-www-form-urlencoded",
            serde_urlencoded::to_string(fields).expect("string pairs encode").into(),
        ),
    });
    let mut bodies = BodyBytes::default();
    let (sent, goose_request) = loop {
        // Joined once and handed over as a URL: goose's `get_request_builder`
        // would parse it three times (a tenth of the worker's CPU on a target
        // that does no work).
        let url = user.base_url.join(&call.path).map_err(|e| Box::new(e.into()))?;
        if let Some((_, bytes)) = &body {
            bodies.sent += bytes.len() as u64;
        }
        let (sent, goose_request) = match &target.transport {
            Some(transport) => {
                let jar = Arc::clone(&sequence(user).cookies);
                let outgoing =
                    Outgoing { method: call.method.clone(), url: &url, headers: &call.headers, body: body.clone() };
                (transport.send(outgoing, &jar).await, None)
            }
            None => through_goose(user, &call, url, body.clone()).await?,
        };
        if let Ok(reply) = &sent {
            bodies.received += reply.body.len() as u64;
        }
        let injected = sent.as_ref().is_ok_and(|r| r.headers.contains_key("x-grace-fault"));
        if injected {
            recorder.count_injected_fault();
        }
        let status = sent.as_ref().ok().map(|r| r.status.as_u16());
        recorder.count_answer(user.base_url.as_str().trim_end_matches('/'), call.name, status);
        outcomes.push(attempt_outcome(&sent, injected));
        let transient = match &sent {
            Err(_) => true,
            Ok(reply) => reply.status.is_server_error() || reply.status == 429,
        };
        if !transient || attempt == attempts {
            break (sent, goose_request);
        }
        recorder.record_latency(call.name, started.elapsed());
        recorder.count_failure(call.name);
        // A refusal retried is still one the backend gave: sampled too.
        match &sent {
            Ok(reply) => {
                recorder.sample_error(call.name, Some(reply.status.as_u16()), &String::from_utf8_lossy(&reply.body))
            }
            Err(e) => recorder.sample_error(call.name, None, &e.to_string()),
        }
        fail_over(user, target)?;
        tokio::time::sleep(RETRY_BACKOFF * 2u32.pow(attempt - 1)).await;
        started = Instant::now();
        attempt += 1;
    };
    if let Some(key) = &call.key {
        // Settled before the content check: a write acknowledged is stored,
        // whatever the check says of the answer next; C7 counts it.
        recorder.settle(key, WriteOutcome::of(outcomes));
    }
    let reply = match sent {
        Ok(reply) => reply,
        Err(e) => {
            recorder.record_request(call.name, started.elapsed(), bodies);
            recorder.count_failure(call.name);
            recorder.sample_error(call.name, None, &e.to_string());
            return Ok(None);
        }
    };
    // Decoded only when a check or a capture needs it.
    let (json, text) = match call.json {
        true => match serde_json::from_slice::<Value>(&reply.body) {
            Ok(json) => (Some(json), None),
            Err(e) => (None, Some(format!("a body that is not JSON: {e}"))),
        },
        false => (None, None),
    };
    recorder.record_request(call.name, started.elapsed(), bodies);
    match judge(reply.status, json.as_ref()) {
        Ok(()) => Ok(Some(Answer { json, headers: reply.headers })),
        Err(problem) => {
            let problem = text.unwrap_or(problem);
            recorder.count_failure(call.name);
            recorder.sample_error(call.name, Some(reply.status.as_u16()), &problem);
            match goose_request {
                // goose counts it among its own failures (its report's).
                Some(mut request) => {
                    let detail = format!("{} answered {} {problem}", call.name, reply.status);
                    user.set_failure(&detail, &mut request, None, None).map(|_| None)
                }
                None => Ok(None),
            }
        }
    }
}

/// Sends `call` to `url` on goose's client, which keeps its metrics of it,
/// and reads the answer to its end (the connection is reused).
async fn through_goose(
    user: &mut GooseUser,
    call: &Call<'_>,
    url: reqwest::Url,
    body: Option<(&'static str, bytes::Bytes)>,
) -> Result<(Result<Reply, SendError>, Option<GooseRequestMetric>), Box<TransactionError>> {
    let mut builder = user.client.request(call.method.clone(), url);
    for (name, value) in &call.headers {
        builder = builder.header(*name, value);
    }
    if let Some((content_type, bytes)) = body {
        builder = builder.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
    }
    // goose puts the method before the name itself: given the label, its
    // key for the request is the name results use.
    let label = call.name.split_once(' ').map_or(call.name, |(_, label)| label);
    let request = GooseRequest::builder().set_request_builder(builder).name(label).build();
    let GooseResponse { request, response } = user.request(request).await?;
    let sent = match response {
        Ok(response) => {
            let (status, headers) = (response.status(), response.headers().clone());
            match response.bytes().await {
                Ok(body) => Ok(Reply { status, headers, body }),
                Err(e) => Err(SendError::Broken(format!("a body cut short: {e}"))),
            }
        }
        Err(e) if e.is_connect() => Err(SendError::Connect(e.to_string())),
        Err(e) if e.is_timeout() => Err(SendError::TimedOut),
        Err(e) => Err(SendError::Broken(e.to_string())),
    };
    Ok((sent, Some(request)))
}

/// What one attempt at a write says of whether it was applied: a 2xx is an
/// acknowledgement; a 4xx, a 429, a fault injected before any work (its
/// `X-Grace-Fault` header says so) or a connection never made is a definite
/// refusal; anything else — a 5xx, a reset or timeout after the request went
/// out — leaves it indeterminate.
fn attempt_outcome(sent: &Result<Reply, SendError>, injected: bool) -> WriteOutcome {
    match sent {
        Ok(r) if r.status.is_success() => WriteOutcome::Acknowledged,
        Ok(r) if r.status.is_client_error() || injected => WriteOutcome::Refused,
        Ok(_) => WriteOutcome::Indeterminate,
        Err(SendError::Connect(_)) => WriteOutcome::Refused,
        Err(_) => WriteOutcome::Indeterminate,
    }
}

/// With several backends, sends the user's next attempt to the next one: a
/// replica that did not answer is not asked again at once.
fn fail_over(user: &mut GooseUser, target: &LoadTarget) -> Result<(), Box<TransactionError>> {
    if target.backends.len() < 2 {
        return Ok(());
    }
    let now = user.base_url.as_str().trim_end_matches('/');
    let at = target.backends.iter().position(|b| b.trim_end_matches('/') == now).unwrap_or(0);
    user.set_base_url(&target.backends[(at + 1) % target.backends.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn weights(scenarios: &[Scenario]) -> Vec<(String, usize)> {
        scenarios.iter().map(|s| (s.name.to_string(), s.weight)).collect()
    }

    /// The bundled mission workload's scenarios, weighted 4:3:2:1.
    fn mission_scenarios() -> Vec<Scenario> {
        let target = LoadTarget {
            mission_id: "m".into(),
            token: SecretString::from("t"),
            key_prefix: "r/w".into(),
            pace: None,
            backends: Vec::new(),
            transport: None,
        };
        let source = workload::WorkloadSource::bundled("mission").expect("bundled");
        let mission = workload::compile(&source, &|_| true).expect("the bundled workload compiles");
        let numbering = workload::Numbering { first_user: 0, run_users: 15 };
        workload::scenarios(mission, Default::default(), Arc::new(target), Arc::new(Recorder::default()), numbering)
    }

    #[test]
    fn users_are_given_scenarios_in_goose_s_round_robin_order() {
        assert_eq!(user_order(&[4, 3, 2, 1]), [0, 1, 2, 3, 0, 1, 2, 0, 1, 0]);
        assert_eq!(user_order(&[2, 4]), [0, 1, 1]);
        assert_eq!(user_order(&[1]), [0]);
    }

    #[test]
    fn a_run_s_mix_is_the_same_whatever_the_workers() {
        let named = |counts: [usize; 4]| -> Vec<(String, usize)> {
            ["Chat", "Tasks", "MetricSummary", "VerificationReads"]
                .iter()
                .zip(counts)
                .filter(|(_, c)| *c > 0)
                .map(|(n, c)| (n.to_string(), c))
                .collect()
        };
        // One process with every user: what goose gives 15 users at 4:3:2:1.
        assert_eq!(weights(&share_of(mission_scenarios(), 0, 15)), named([6, 4, 3, 2]));
        // Two workers of 8 and 7: together still 6/4/3/2 (not 5/4/4/2).
        assert_eq!(weights(&share_of(mission_scenarios(), 0, 8)), named([3, 2, 2, 1]));
        assert_eq!(weights(&share_of(mission_scenarios(), 8, 7)), named([3, 2, 1, 1]));
        // A worker of one user runs one scenario.
        assert_eq!(weights(&share_of(mission_scenarios(), 3, 1)), named([0, 0, 0, 1]));
    }
}
