//! Runs a compiled workload on goose: each scenario one goose scenario whose
//! one transaction is the flow, step by step, for a user with its own
//! captures and feeder rows. Requests go through the same `perform` as the
//! hand-written traffic did: the same open-model pacing from the intended
//! start, retries of writes with their key (on the next backend when there
//! are several), outcomes recorded for the proofs, latencies into the
//! recorder's histograms by request name.

use super::{Body, CaptureFrom, Check, FeederOrder, JsonTemplate, Method, Request, Step, Template, Workload};
use crate::{pace, perform, place, sequence, Answer, Call, CallBody, LoadTarget, Recorder};
use goose::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where this process's users sit among the run's: user `n` here is user
/// `first_user + n` of `run_users` (feeders give unique rows by it).
#[derive(Debug, Clone, Copy)]
pub struct Numbering {
    pub first_user: usize,
    pub run_users: usize,
}

/// What every user of a run shares.
struct Shared {
    workload: Workload,
    target: Arc<LoadTarget>,
    recorder: Arc<Recorder>,
    env: HashMap<String, String>,
    numbering: Numbering,
    run: String,
    worker: String,
    /// Each feeder's rows in the order users take them (shuffled once, the
    /// same on every worker, for a random unique feeder).
    orders: Vec<Vec<usize>>,
}

/// The workload's scenarios as goose runs them. `env` holds the values of
/// the environment variables its templates name.
pub fn scenarios(
    workload: Workload,
    env: HashMap<String, String>,
    target: Arc<LoadTarget>,
    recorder: Arc<Recorder>,
    numbering: Numbering,
) -> Vec<Scenario> {
    let (run, worker) = target.key_prefix.split_once('/').unwrap_or((target.key_prefix.as_str(), ""));
    let (run, worker) = (run.to_string(), worker.to_string());
    let orders = workload
        .feeders
        .iter()
        .map(|feeder| {
            let mut order: Vec<usize> = (0..feeder.rows.len()).collect();
            if feeder.order == FeederOrder::Random && feeder.unique {
                // Seeded by the run: every worker shuffles alike, so their users' rows stay disjoint.
                let seed = run.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            }
            order
        })
        .collect();
    let flows = workload.scenarios.len();
    let shared = Arc::new(Shared { workload, target, recorder, env, numbering, run, worker, orders });
    (0..flows)
        .map(|index| {
            let flow = &shared.workload.scenarios[index];
            let shared = Arc::clone(&shared);
            let transaction = Transaction::new(Arc::new(move |user| {
                let shared = Arc::clone(&shared);
                Box::pin(async move { iteration(user, &shared, index).await })
            }))
            .set_name(&flow.name);
            Scenario::new(&flow.name)
                .set_weight(flow.weight)
                .expect("weights are positive")
                .register_transaction(transaction)
        })
        .collect()
}

/// One pass of a user through its flow; a step that fails ends the pass.
async fn iteration(user: &mut GooseUser, shared: &Shared, flow: usize) -> Result<(), Box<TransactionError>> {
    if sequence(user).exhausted {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Ok(());
    }
    let number = shared.numbering.first_user + user.weighted_users_index;
    let state = sequence(user);
    state.iteration += 1;
    state.captured.clear();
    let iteration = state.iteration;
    let mut rows = Vec::with_capacity(shared.workload.feeders.len());
    for (feeder, order) in shared.workload.feeders.iter().zip(&shared.orders) {
        let stride = shared.numbering.run_users.max(1);
        let taken = (iteration as usize - 1) * stride + number;
        let row = match (feeder.order, feeder.unique) {
            (_, true) if taken >= order.len() => None,
            (_, true) => Some(order[taken]),
            (FeederOrder::Sequence, false) => Some(order[taken % order.len()]),
            (FeederOrder::Random, false) => Some(rand::rng().random_range(0..order.len())),
        };
        if row.is_none() {
            let name = &shared.workload.scenarios[flow].name;
            shared.recorder.sample_error(
                name,
                None,
                &format!("feeder {:?} has no row left for user {number}", feeder.name),
            );
            sequence(user).exhausted = true;
            return Ok(());
        }
        rows.push(row);
    }
    sequence(user).rows = rows;
    place(user, &shared.target)?;
    for step in &shared.workload.scenarios[flow].steps {
        let passed = match step {
            Step::Think(pause) => {
                tokio::time::sleep(*pause).await;
                true
            }
            Step::Request(request) => send(user, shared, request, None).await?.is_some(),
            Step::Poll { request, until, times, every } => poll(user, shared, request, until, *times, *every).await?,
        };
        if !passed {
            break;
        }
    }
    Ok(())
}

/// Repeats `request` until `until` holds, at most `times`.
async fn poll(
    user: &mut GooseUser,
    shared: &Shared,
    request: &Request,
    until: &Check,
    times: u32,
    every: Duration,
) -> Result<bool, Box<TransactionError>> {
    for attempt in 1..=times {
        let last = attempt == times;
        let judged = send(user, shared, request, Some((until, last, times))).await?;
        match judged {
            Some(true) => return Ok(true),
            Some(false) if !last => tokio::time::sleep(every).await,
            _ => return Ok(false),
        }
    }
    Ok(false)
}

/// Sends one request of the flow and judges it. `Some(true)` when it passed
/// (and, polling, `until` held); `Some(false)` when it passed but `until` did
/// not hold yet; `None` when it failed (recorded as a failure with its
/// message). A poll's last try fails when `until` still does not hold.
async fn send(
    user: &mut GooseUser,
    shared: &Shared,
    request: &Request,
    until: Option<(&Check, bool, u32)>,
) -> Result<Option<bool>, Box<TransactionError>> {
    let number = shared.numbering.first_user + user.weighted_users_index;
    let state = sequence(user);
    let key = match &request.write {
        Some(write) => {
            state.sent += 1;
            let rendered = {
                let rows = rows_of(shared, &state.rows);
                let values = values(shared, number, state.iteration, state.sent, None, &state.captured, &rows);
                write.key.render(&values)
            };
            Some(format!("{}/{}/{rendered}", shared.target.key_prefix, write.proof))
        }
        None => None,
    };
    let call = {
        let state = sequence(user);
        let rows = rows_of(shared, &state.rows);
        let values = values(shared, number, state.iteration, state.sent, key.as_deref(), &state.captured, &rows);
        let mut headers: Vec<(&str, String)> =
            shared.workload.headers.iter().map(|(name, value)| (name.as_str(), value.render(&values))).collect();
        headers.extend(request.headers.iter().map(|(name, value)| (name.as_str(), value.render(&values))));
        let body = request.body.as_ref().map(|body| match body {
            Body::Json(template) => CallBody::Json(json(template, &values)),
            Body::Form(fields) => CallBody::Form(fields.iter().map(|(k, v)| (k.clone(), v.render(&values))).collect()),
        });
        Call {
            method: http_method(request.method),
            path: request.path.render(&values),
            name: &request.name,
            headers,
            body,
            key,
            json: request.needs_json() || until.is_some(),
        }
    };
    let intended = pace(user, &shared.target).await;
    let statuses = &request.status;
    let judge = |status: reqwest::StatusCode, body: Option<&Json>| -> Result<(), String> {
        let allowed = if statuses.is_empty() { status.is_success() } else { statuses.contains(&status.as_u16()) };
        if !allowed {
            return Err(match body {
                Some(body) => format!("(not {}) with {body}", expected(statuses)),
                None => format!("(not {})", expected(statuses)),
            });
        }
        let empty = Json::Null;
        let body = body.unwrap_or(&empty);
        for check in &request.checks {
            check.judge(body)?;
        }
        if let Some((check, true, times)) = until {
            check.judge(body).map_err(|e| format!("after {times} tries: {e}"))?;
        }
        Ok(())
    };
    let Some(answer) = perform(user, &shared.target, &shared.recorder, call, intended, &judge).await? else {
        return Ok(None);
    };
    capture(user, request, &answer);
    Ok(Some(match until {
        Some((check, _, _)) => check.judge(answer.json.as_ref().unwrap_or(&Json::Null)).is_ok(),
        None => true,
    }))
}

fn expected(statuses: &[u16]) -> String {
    if statuses.is_empty() {
        "2xx".into()
    } else {
        statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
    }
}

/// Keeps what the request captures, for the user's next steps.
fn capture(user: &mut GooseUser, request: &Request, answer: &Answer) {
    let state = sequence(user);
    for capture in &request.captures {
        let value = match &capture.from {
            CaptureFrom::Pointer(pointer) => answer.json.as_ref().and_then(|j| j.pointer(pointer)).cloned(),
            CaptureFrom::Header(name) => {
                answer.headers.get(name.as_str()).and_then(|v| v.to_str().ok()).map(|v| Json::String(v.to_string()))
            }
        };
        if let Some(value) = value {
            state.captured.insert(capture.name.clone(), value);
        }
    }
}

/// The rows a user's iteration took, by feeder.
fn rows_of<'a>(shared: &'a Shared, taken: &[Option<usize>]) -> Vec<Option<&'a [String]>> {
    shared
        .workload
        .feeders
        .iter()
        .zip(taken.iter().copied().chain(std::iter::repeat(None)))
        .map(|(feeder, row)| row.map(|r| feeder.rows[r].as_slice()))
        .collect()
}

fn values<'a>(
    shared: &'a Shared,
    user: usize,
    iteration: u64,
    write: u64,
    key: Option<&'a str>,
    captured: &'a HashMap<String, Json>,
    rows: &'a [Option<&'a [String]>],
) -> super::template::Values<'a> {
    super::template::Values {
        run: &shared.run,
        worker: &shared.worker,
        mission: &shared.target.mission_id,
        token: shared.target.token.expose_secret(),
        user,
        iteration,
        write,
        key,
        env: &shared.env,
        captured,
        rows,
    }
}

fn json(template: &JsonTemplate, values: &super::template::Values<'_>) -> Json {
    match template {
        JsonTemplate::Constant(value) => value.clone(),
        JsonTemplate::Text(text) => text.render_json(values),
        JsonTemplate::Array(items) => Json::Array(items.iter().map(|i| json(i, values)).collect()),
        JsonTemplate::Object(fields) => {
            Json::Object(fields.iter().map(|(k, v)| (k.clone(), json(v, values))).collect())
        }
    }
}

fn http_method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
    }
}

/// The environment variables `workload`'s templates name, read from this
/// process's environment; the first one missing is named.
pub fn environment(workload: &Workload) -> Result<HashMap<String, String>, String> {
    let mut env = HashMap::new();
    let mut templates: Vec<&Template> = workload.headers.iter().map(|(_, t)| t).collect();
    for flow in &workload.scenarios {
        for step in &flow.steps {
            if let Step::Request(request) | Step::Poll { request, .. } = step {
                templates.push(&request.path);
                templates.extend(request.headers.iter().map(|(_, t)| t));
                if let Some(write) = &request.write {
                    templates.push(&write.key);
                }
                match &request.body {
                    Some(Body::Form(fields)) => templates.extend(fields.iter().map(|(_, t)| t)),
                    Some(Body::Json(body)) => collect(body, &mut templates),
                    None => {}
                }
            }
        }
    }
    for template in templates {
        for value in template.values() {
            if let super::Value::Env(name) = value {
                let set = std::env::var(name).map_err(|_| {
                    format!("environment variable {name} is not set (the workload uses {{{{env.{name}}}}})")
                })?;
                env.insert(name.clone(), set);
            }
        }
    }
    Ok(env)
}

fn collect<'a>(body: &'a JsonTemplate, into: &mut Vec<&'a Template>) {
    match body {
        JsonTemplate::Constant(_) => {}
        JsonTemplate::Text(t) => into.push(t),
        JsonTemplate::Array(items) => items.iter().for_each(|i| collect(i, into)),
        JsonTemplate::Object(fields) => fields.iter().for_each(|(_, v)| collect(v, into)),
    }
}
