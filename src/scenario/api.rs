//! The scenario's client of the backend under test: one method per call the
//! phases make, each with the role the backend requires. A refusal the backend
//! marks as transient (503 — an injected fault, the circuit breaker, the
//! database briefly away — or 429) is retried with the same idempotency key,
//! as a real client would; anything else is an `ApiFailure` naming the call.

use crate::backend::auth::Tokens;
use crate::backend::pipeline::{ContractReceipt, DecisionOutcome};
use crate::backend::routes::actions::Approval;
use crate::configuration::BackendUrl;
use crate::spec::{deciders, Role, Tier};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Attempts per call before a transient refusal counts as a failure.
const ATTEMPTS: u32 = 8;
/// The longest a `Retry-After` is honoured.
const LONGEST_WAIT: Duration = Duration::from_secs(6);

#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    #[error("{call}: the backend is unreachable: {reason}")]
    Unreachable { call: String, reason: String },
    #[error("{call}: answered {status}: {body}")]
    Refused { call: String, status: StatusCode, body: String },
    #[error("{call}: no {role} token configured")]
    NoToken { call: String, role: &'static str },
}

pub struct BackendClient {
    pub url: BackendUrl,
    tokens: Tokens,
    http: reqwest::Client,
    /// Transient refusals retried so far (injected faults among them).
    pub retries: std::sync::atomic::AtomicU64,
}

impl BackendClient {
    pub fn new(url: BackendUrl, tokens: Tokens) -> Self {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("a plain HTTP client builds");
        Self { url, tokens, http, retries: Default::default() }
    }

    pub fn token(&self, role: Role) -> Option<&str> {
        self.tokens.token_for(role)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        role: Option<Role>,
        body: Option<&Value>,
    ) -> Result<T, ApiFailure> {
        let name = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.request(method.clone(), self.url.join(path));
            if let Some(role) = role {
                let token = self
                    .tokens
                    .token_for(role)
                    .ok_or_else(|| ApiFailure::NoToken { call: name.clone(), role: role.as_str() })?;
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if attempt < ATTEMPTS && e.is_timeout() => {
                    self.pause(attempt, None).await;
                    continue;
                }
                Err(e) => return Err(ApiFailure::Unreachable { call: name, reason: e.to_string() }),
            };
            let status = response.status();
            if status.is_success() {
                return response.json().await.map_err(|e| ApiFailure::Refused {
                    call: name,
                    status,
                    body: format!("an answer that is not the expected JSON: {e}"),
                });
            }
            if (status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt < ATTEMPTS
            {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.pause(attempt, retry_after).await;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            return Err(ApiFailure::Refused { call: name, status, body });
        }
    }

    async fn pause(&self, attempt: u32, retry_after: Option<Duration>) {
        self.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let backoff = Duration::from_millis(50) * 2u32.pow(attempt.min(6));
        tokio::time::sleep(retry_after.unwrap_or(backoff).min(LONGEST_WAIT)).await;
    }

    pub async fn health(&self) -> Result<Value, ApiFailure> {
        self.call(Method::GET, "/api/health", None, None).await
    }

    /// Creates the mission with a known id (so a retry finds it).
    pub async fn create_mission(&self, id: Uuid, name: &str) -> Result<Value, ApiFailure> {
        let body = json!({ "id": id, "name": name, "goal": "prove the backend keeps its promises" });
        self.call(Method::POST, "/api/missions", Some(Role::Operator), Some(&body)).await
    }

    pub async fn mission(&self, id: Uuid) -> Result<Value, ApiFailure> {
        self.call(Method::GET, &format!("/api/missions/{id}"), Some(Role::Operator), None).await
    }

    pub async fn report_error(
        &self,
        mission: Uuid,
        error_type: &str,
        confidence: f64,
        key: &str,
    ) -> Result<ContractReceipt, ApiFailure> {
        let body = json!({
            "mission_id": mission, "error_type": error_type, "message": format!("{error_type} seen by the scenario"),
            "severity": "high", "confidence": confidence, "idempotency_key": key,
        });
        self.call(Method::POST, "/api/errors", Some(Role::Operator), Some(&body)).await
    }

    pub async fn pending_approvals(&self, mission: Uuid) -> Result<Vec<Approval>, ApiFailure> {
        let path = format!("/api/approvals?mission_id={mission}&status=pending");
        self.call(Method::GET, &path, Some(Role::Operator), None).await
    }

    /// Decides approval `id` of a `tier` contract with the least role allowed
    /// to: approver for tier 2, governance for 3.
    pub async fn decide(&self, id: Uuid, tier: i16, approve: bool) -> Result<DecisionOutcome, ApiFailure> {
        let role = deciders(Tier::from_level(tier).unwrap_or(Tier::Governance))[0];
        let body =
            json!({ "decision": if approve { "approve" } else { "reject" }, "reason": "decided by the scenario" });
        self.call(Method::POST, &format!("/api/approvals/{id}/decision"), Some(role), Some(&body)).await
    }

    pub async fn set_fault(&self, mission: Uuid, kind: Value) -> Result<Value, ApiFailure> {
        let body = json!({ "mission_id": mission, "kind": kind });
        self.call(Method::POST, "/api/admin/faults", Some(Role::Admin), Some(&body)).await
    }

    pub async fn clear_faults(&self, mission: Uuid) -> Result<Value, ApiFailure> {
        self.call(Method::DELETE, &format!("/api/admin/faults?mission_id={mission}"), Some(Role::Admin), None).await
    }

    /// The Prometheus text exposition.
    pub async fn scrape(&self) -> Result<String, ApiFailure> {
        let call = "GET /metrics".to_string();
        let response = self
            .http
            .get(self.url.join("/metrics"))
            .send()
            .await
            .map_err(|e| ApiFailure::Unreachable { call: call.clone(), reason: e.to_string() })?;
        response.text().await.map_err(|e| ApiFailure::Unreachable { call, reason: e.to_string() })
    }

    /// Waits until every committed event is chained into the log (lag zero).
    pub async fn await_zero_log_lag(&self, at_most: Duration) -> Result<bool, ApiFailure> {
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            if self.health().await?["log_lag"] == 0 {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The samples of a Prometheus text exposition: (series with its labels, value).
pub fn samples(scrape: &str) -> impl Iterator<Item = (&str, f64)> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(series, value)| Some((series, value.parse().ok()?))))
}

/// A metric family's samples summed over their labels.
pub fn metric_sum(scrape: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = samples(scrape)
        .filter(|(series, _)| series.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('{')))
        .map(|(_, value)| value)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
