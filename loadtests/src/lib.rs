//! goose scenarios against the Grace backend, usable two ways: as a library
//! (`grace worker` builds them with `scenarios` and runs them on its own
//! `GooseAttack`) and as a plain goose binary with goose's own CLI and reports
//! (`cargo run -p grace-loadtests -- --host URL -u 50 -t 30s`).
//!
//! The traffic is what a mission's operators send: chat, task submissions
//! (then a status poll), metric summaries and verification reads, weighted
//! 4:3:2:1. Requests are named by route template, never by id, so goose keeps
//! one row per endpoint. Transactions check the response *content* and fail
//! with a message saying what was wrong. Every write carries an idempotency
//! key made of (run, worker, user, sequence), and the `Recorder` keeps the
//! keys the backend acknowledged and a latency histogram per request name:
//! the raw material of the acknowledged-writes check (C7) and of merged
//! percentiles.

mod recorder;

/// The goose this crate is built on, for callers that configure attacks.
pub use goose;

pub use recorder::{combine_digests, key_digest, LatencyUpload, Recorded, Recorder, UploadError};

use goose::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Where the load goes and as whom.
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// The mission every request is tagged with.
    pub mission_id: String,
    /// An operator token.
    pub token: String,
    /// Prefix of every idempotency key: the run and the worker, e.g. `run-7/worker-2`.
    pub key_prefix: String,
}

/// A user's own counter, for unique idempotency keys.
#[derive(Clone)]
struct UserSequence(u64);

/// The four weighted scenarios, recording into `recorder`.
pub fn scenarios(target: Arc<LoadTarget>, recorder: Arc<Recorder>) -> Vec<Scenario> {
    let chat = step(&target, &recorder, |target, user, key| {
        let body = json!({ "mission_id": target.mission_id, "session_id": format!("user-{}", user.weighted_users_index),
                           "message": "what is the mission's progress?", "idempotency_key": key });
        Call {
            method: GooseMethod::Post,
            path: "/api/chat".into(),
            name: "/api/chat",
            body: Some(body),
            check: |v| v["reply"].as_str().is_some_and(|r| r.starts_with("Mission ")),
        }
    });
    let task = step(&target, &recorder, |target, _user, key| {
        let body = json!({ "mission_id": target.mission_id, "title": "rebuild the search index",
                           "payload": {"requested_by": "load"}, "idempotency_key": key });
        Call {
            method: GooseMethod::Post,
            path: "/api/tasks".into(),
            name: "/api/tasks",
            body: Some(body),
            check: |v| v["status"].is_string() && v["id"].is_string(),
        }
    });
    let summary = step(&target, &recorder, |target, _user, _key| Call {
        method: GooseMethod::Get,
        path: format!("/api/metrics/summary?mission_id={}", target.mission_id),
        name: "/api/metrics/summary",
        body: None,
        check: |v| v["contracts"].is_number(),
    });
    let mut verification = scenario!("VerificationReads").set_weight(1).expect("a positive weight");
    for path in [
        "/api/verification/stats",
        "/api/verification/contracts",
        "/api/verification/snapshots",
        "/api/verification/benchmarks",
    ] {
        verification = verification.register_transaction(
            step(&target, &recorder, move |target, _user, _key| Call {
                method: GooseMethod::Get,
                path: format!("{path}?mission_id={}", target.mission_id),
                name: path,
                body: None,
                check: |v| v.is_object() || v.is_array(),
            })
            .set_name(&format!("read {path}")),
        );
    }
    let poll = task_poll(&target, &recorder);
    vec![
        scenario!("Chat").set_weight(4).expect("a positive weight").register_transaction(chat.set_name("chat")),
        scenario!("Tasks")
            .set_weight(3)
            .expect("a positive weight")
            .register_transaction(task.set_name("submit task"))
            .register_transaction(poll.set_name("submit and poll task")),
        scenario!("MetricSummary")
            .set_weight(2)
            .expect("a positive weight")
            .register_transaction(summary.set_name("read metric summary")),
        verification,
    ]
}

/// One request a transaction makes, and how to tell its answer is right.
struct Call {
    method: GooseMethod,
    path: String,
    name: &'static str,
    /// A write's body; its `idempotency_key` is recorded when acknowledged.
    body: Option<Value>,
    check: fn(&Value) -> bool,
}

/// Builds a transaction from a request description.
fn step(
    target: &Arc<LoadTarget>,
    recorder: &Arc<Recorder>,
    describe: impl Fn(&LoadTarget, &GooseUser, &str) -> Call + Send + Sync + 'static,
) -> Transaction {
    let (target, recorder, describe) = (Arc::clone(target), Arc::clone(recorder), Arc::new(describe));
    Transaction::new(Arc::new(move |user| {
        let (target, recorder, describe) = (Arc::clone(&target), Arc::clone(&recorder), Arc::clone(&describe));
        Box::pin(async move {
            let key = next_key(user, &target);
            let call = describe(&target, user, &key);
            perform(user, &target, &recorder, call).await.map(|_| ())
        })
    }))
}

/// Submits a task, then polls it once: the read-after-write of a real client.
fn task_poll(target: &Arc<LoadTarget>, recorder: &Arc<Recorder>) -> Transaction {
    let (target, recorder) = (Arc::clone(target), Arc::clone(recorder));
    Transaction::new(Arc::new(move |user| {
        let (target, recorder) = (Arc::clone(&target), Arc::clone(&recorder));
        Box::pin(async move {
            let key = next_key(user, &target);
            let body = json!({ "mission_id": target.mission_id, "title": "poll me", "idempotency_key": key });
            let submit = Call {
                method: GooseMethod::Post,
                path: "/api/tasks".into(),
                name: "/api/tasks",
                body: Some(body),
                check: |v| v["id"].is_string(),
            };
            let Some(task) = perform(user, &target, &recorder, submit).await? else { return Ok(()) };
            let poll = Call {
                method: GooseMethod::Get,
                path: format!("/api/tasks/{}", task["id"].as_str().unwrap_or_default()),
                name: "/api/tasks/%",
                body: None,
                check: |v| v["status"].is_string(),
            };
            perform(user, &target, &recorder, poll).await.map(|_| ())
        })
    }))
}

fn next_key(user: &mut GooseUser, target: &LoadTarget) -> String {
    if user.get_session_data::<UserSequence>().is_none() {
        user.set_session_data(UserSequence(0));
    }
    let sequence = user.get_session_data_unchecked_mut::<UserSequence>();
    sequence.0 += 1;
    let n = sequence.0;
    format!("{}/u{}/{n}", target.key_prefix, user.weighted_users_index)
}

/// Sends `call`, records its latency and (for an acknowledged write) its key,
/// and checks the answer. Returns the answer's JSON when it passed.
async fn perform(
    user: &mut GooseUser,
    target: &LoadTarget,
    recorder: &Recorder,
    call: Call,
) -> Result<Option<Value>, Box<TransactionError>> {
    let mut builder = user.get_request_builder(&call.method, &call.path)?.bearer_auth(&target.token);
    if let Some(body) = &call.body {
        builder = builder.json(body);
    }
    let request = GooseRequest::builder().set_request_builder(builder).name(call.name).build();
    let started = Instant::now();
    let mut goose = user.request(request).await?;
    let response = match goose.response {
        Ok(response) => response,
        Err(_) => {
            // goose has already recorded the transport error as a failure.
            recorder.record_latency(call.name, started.elapsed());
            return Ok(None);
        }
    };
    let status = response.status();
    let body: Result<Value, _> = response.json().await;
    recorder.record_latency(call.name, started.elapsed());
    match body {
        Ok(body) if status.is_success() && (call.check)(&body) => {
            if let Some(key) = call.body.as_ref().and_then(|b| b["idempotency_key"].as_str()) {
                recorder.acknowledge(key);
            }
            Ok(Some(body))
        }
        Ok(body) => {
            let detail = format!("{} answered {status} with {body}", call.name);
            user.set_failure(&detail, &mut goose.request, None, None).map(|_| None)
        }
        Err(e) => {
            let detail = format!("{} answered {status} with a body that is not JSON: {e}", call.name);
            user.set_failure(&detail, &mut goose.request, None, None).map(|_| None)
        }
    }
}
