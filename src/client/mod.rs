//! The one client of the backend's HTTP API: what `grace health`, the load
//! coordinator and its workers, the scenario's phases and the integration
//! tests use to speak to a backend. One timeout, one retry policy, one way of
//! joining URLs (`BackendUrl::join`, which keeps a base URL's path), one token
//! model (`Tokens`: a token per role, where a caller given only an operator
//! token simply lacks the others), and the backend's own response types
//! (`crate::api`), never untyped JSON.
//!
//! Retries: a refusal the backend marks as transient — 503 (an injected fault,
//! the circuit breaker, the database briefly away) or 429 — and a timed-out
//! request are sent again, with the same body and so the same idempotency
//! key, waiting what `Retry-After` says (else backing off), as a real client
//! would. A refused connection is not retried: nothing is listening, and
//! saying so at once is more useful than waiting. The health probe is never
//! retried: it reports the state now.
//!
//! - [`prometheus`]: reading numbers off the backend's `/metrics` text.

pub mod prometheus;

use crate::api::actions::{Approval, ContractReceipt, DecisionBody, DecisionOutcome, ErrorReportBody};
use crate::api::admin::{FaultRequest, FaultsView};
use crate::api::log::PingResult;
use crate::api::missions::{Mission, NewMission};
use crate::api::service::{Health, Identity};
use crate::configuration::{BackendUrl, Tokens};
use crate::specification::{deciders, ApprovalStatus, Role, Tier};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts per call before a transient refusal counts as a failure.
const ATTEMPTS: u32 = 8;
/// The first back-off when the backend names no wait; it doubles per attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts, `Retry-After` included.
const LONGEST_WAIT: Duration = Duration::from_secs(6);

/// Why a call did not return what it asked for. Each names the call
/// (`POST /api/errors`), never a token.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{call}: the backend is unreachable: {reason}")]
    Unreachable { call: String, reason: String },
    #[error("{call}: answered {status}: {body}")]
    Refused { call: String, status: StatusCode, body: String },
    /// The health probe answered, but not healthy (a 5xx with its report).
    #[error("{call}: answered {status}: {} (database: {}, mesh started: {})", .health.status, .health.database, .health.mesh.started)]
    Unhealthy { call: String, status: StatusCode, health: Box<Health> },
    #[error("{call}: no {role} token configured")]
    NoToken { call: String, role: Role },
    /// Roles a command acts in that have no token, all of them named at once.
    #[error("no token for the {} role{}", .roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "), if .roles.len() > 1 { "s" } else { "" })]
    NoTokens { roles: Vec<Role> },
    #[error("the backend refused the {role} token: it is none of the backend's tokens")]
    TokenRefused { role: Role },
    #[error("the {role} token is the backend's {actual} token")]
    TokenOfAnotherRole { role: Role, actual: String },
}

impl ClientError {
    /// Why, without the call's name: for messages that name the backend instead.
    pub fn reason(&self) -> String {
        match self {
            Self::Unreachable { reason, .. } => reason.clone(),
            Self::Refused { status, body, .. } => format!("answered {status}: {body}"),
            Self::Unhealthy { status, health, .. } => {
                format!("answered {status}: {} (database: {})", health.status, health.database)
            }
            Self::NoToken { role, .. } => format!("no {role} token configured"),
            Self::NoTokens { .. } | Self::TokenRefused { .. } | Self::TokenOfAnotherRole { .. } => self.to_string(),
        }
    }

    /// True when the caller's configuration is at fault (a token missing,
    /// refused or another role's), not the backend: exit 2, not 3.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::NoToken { .. } | Self::NoTokens { .. } | Self::TokenRefused { .. } | Self::TokenOfAnotherRole { .. }
        )
    }
}

/// A backend, and the tokens to call it with. Cheap to clone; clones share
/// their connections and their count of retries.
#[derive(Clone)]
pub struct BackendClient {
    url: BackendUrl,
    tokens: Tokens,
    http: reqwest::Client,
    /// Transient refusals retried so far (injected faults among them).
    retries: Arc<AtomicU64>,
}

/// Shows the backend and which roles it holds tokens for, never a token.
impl std::fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendClient").field("url", &self.url.to_string()).field("tokens", &self.tokens).finish()
    }
}

impl BackendClient {
    pub fn new(url: BackendUrl, tokens: Tokens) -> Self {
        // Idle connections are let go well before the backend closes them
        // (its --idle-timeout defaults to 60 s), so a request is never sent on
        // a connection the server is closing.
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        Self { url, tokens, http, retries: Arc::default() }
    }

    /// A client of another replica of the same backend, with these tokens.
    pub fn replica(&self, url: BackendUrl) -> Self {
        Self::new(url, self.tokens.clone())
    }

    pub fn url(&self) -> &BackendUrl {
        &self.url
    }

    pub fn token(&self, role: Role) -> Option<&str> {
        self.tokens.token_for(role)
    }

    /// How many transient refusals were retried so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// A request to `path`, with `role`'s token when one is named, and no
    /// retries: for callers that judge the raw response themselves (tests).
    pub fn request(&self, method: Method, path: &str, role: Option<Role>) -> Result<RequestBuilder, ClientError> {
        let request = self.http.request(method.clone(), self.url.join(path));
        match role {
            None => Ok(request),
            Some(role) => {
                let token = self
                    .tokens
                    .token_for(role)
                    .ok_or_else(|| ClientError::NoToken { call: call_name(&method, path), role })?;
                Ok(request.bearer_auth(token))
            }
        }
    }

    /// Sends a call, retrying transient refusals, and reads its typed answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        role: Role,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let call = call_name(&method, path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.request(method.clone(), path, Some(role))?;
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if attempt < ATTEMPTS && e.is_timeout() => {
                    self.pause(attempt, None).await;
                    continue;
                }
                Err(e) => return Err(ClientError::Unreachable { call, reason: crate::db::innermost_cause(&e) }),
            };
            let status = response.status();
            if status.is_success() {
                return response.json().await.map_err(|e| ClientError::Refused {
                    call,
                    status,
                    body: format!("an answer that is not the expected JSON: {e}"),
                });
            }
            if is_transient(status) && attempt < ATTEMPTS {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.pause(attempt, retry_after).await;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Refused { call, status, body });
        }
    }

    async fn pause(&self, attempt: u32, retry_after: Option<Duration>) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        let backoff = FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(6));
        tokio::time::sleep(retry_after.unwrap_or(backoff).min(LONGEST_WAIT)).await;
    }

    /// The health probe, once: `Ok` only for a healthy answer. A backend that
    /// answers 5xx is not reachable for our purposes, and says why
    /// (`Unhealthy`, with its report).
    pub async fn health(&self) -> Result<Health, ClientError> {
        let method = Method::GET;
        let path = "/api/health";
        let call = call_name(&method, path);
        let response = self
            .request(method, path, None)?
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { call: call.clone(), reason: crate::db::innermost_cause(&e) })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match (status.is_success(), serde_json::from_str::<Health>(&text)) {
            (true, Ok(health)) => Ok(health),
            (false, Ok(health)) => Err(ClientError::Unhealthy { call, status, health: Box::new(health) }),
            (_, Err(e)) => {
                Err(ClientError::Refused { call, status, body: format!("not a Grace backend's health answer: {e}") })
            }
        }
    }

    /// Any HTTP answer to `GET /` — for a service that is not a Grace
    /// backend, whose health Grace cannot judge: only that it listens.
    pub async fn answers(&self) -> Result<(), ClientError> {
        let (method, path) = (Method::GET, "/");
        let call = call_name(&method, path);
        self.request(method, path, None)?
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { call, reason: crate::db::innermost_cause(&e) })?;
        Ok(())
    }

    /// Waits until every committed event is chained into the log (lag zero);
    /// `false` when `at_most` passed first. A degraded answer meanwhile counts
    /// as "not yet"; an unreachable backend ends the wait with its error.
    pub async fn await_zero_log_lag(&self, at_most: Duration) -> Result<bool, ClientError> {
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            match self.health().await {
                Ok(health) if health.log_lag == Some(0) => return Ok(true),
                Ok(_) | Err(ClientError::Unhealthy { .. }) => {}
                Err(e) => return Err(e),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks, before anything relies on them, that this client holds a token
    /// for each of `roles` and that the backend takes each as that role
    /// (`GET /api/whoami`). A backend too old to answer whoami (404) is
    /// taken at its word, with a warning.
    pub async fn check_tokens(&self, roles: &[Role]) -> Result<(), ClientError> {
        let missing: Vec<Role> = roles.iter().copied().filter(|role| self.tokens.token_for(*role).is_none()).collect();
        if !missing.is_empty() {
            return Err(ClientError::NoTokens { roles: missing });
        }
        for &role in roles {
            match self.call::<Identity>(Method::GET, "/api/whoami", role, None::<&()>).await {
                Ok(identity) if identity.role == role.as_str() => {}
                Ok(identity) => return Err(ClientError::TokenOfAnotherRole { role, actual: identity.role }),
                Err(ClientError::Refused { status: StatusCode::UNAUTHORIZED, .. }) => {
                    return Err(ClientError::TokenRefused { role })
                }
                Err(ClientError::Refused { status: StatusCode::NOT_FOUND, .. }) => {
                    tracing::warn!(backend = %self.url, "the backend does not answer GET /api/whoami; its tokens are not checked before use");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Publishes a mesh ping with whichever token this client holds (every
    /// role may ping) and waits for its delivery.
    pub async fn ping(&self) -> Result<PingResult, ClientError> {
        let role = Role::ALL.into_iter().find(|role| self.tokens.token_for(*role).is_some()).unwrap_or(Role::Operator);
        self.call(Method::POST, "/api/mesh/ping", role, None::<&()>).await
    }

    /// Creates a mission; with a known id, a retry finds the one created.
    pub async fn create_mission(&self, mission: &NewMission) -> Result<Mission, ClientError> {
        self.call(Method::POST, "/api/missions", Role::Operator, Some(mission)).await
    }

    pub async fn mission(&self, id: Uuid) -> Result<Mission, ClientError> {
        self.call(Method::GET, &format!("/api/missions/{id}"), Role::Operator, None::<&()>).await
    }

    pub async fn report_error(&self, report: &ErrorReportBody) -> Result<ContractReceipt, ClientError> {
        self.call(Method::POST, "/api/errors", Role::Operator, Some(report)).await
    }

    /// The approvals of `mission`, of one status or all: every page of them.
    pub async fn approvals(&self, mission: Uuid, status: Option<ApprovalStatus>) -> Result<Vec<Approval>, ClientError> {
        const PAGE: usize = 1000;
        let mut approvals: Vec<Approval> = Vec::new();
        loop {
            let mut path = format!("/api/approvals?mission_id={mission}&limit={PAGE}");
            if let Some(status) = status {
                path.push_str(&format!("&status={status}"));
            }
            if let Some(last) = approvals.last() {
                path.push_str(&format!("&after={}", last.id));
            }
            let page: Vec<Approval> = self.call(Method::GET, &path, Role::Operator, None::<&()>).await?;
            let last_page = page.len() < PAGE;
            approvals.extend(page);
            if last_page {
                return Ok(approvals);
            }
        }
    }

    /// Decides approval `id` of a `tier` contract as the least senior role
    /// the specification lets decide it.
    pub async fn decide(&self, id: Uuid, tier: Tier, decision: &DecisionBody) -> Result<DecisionOutcome, ClientError> {
        let role = deciders(tier)[0];
        self.call(Method::POST, &format!("/api/approvals/{id}/decision"), role, Some(decision)).await
    }

    pub async fn set_fault(&self, fault: &FaultRequest) -> Result<FaultsView, ClientError> {
        self.call(Method::POST, "/api/admin/faults", Role::Admin, Some(fault)).await
    }

    /// Clears the faults set for `mission`.
    pub async fn clear_faults(&self, mission: Uuid) -> Result<FaultsView, ClientError> {
        self.call(Method::DELETE, &format!("/api/admin/faults?mission_id={mission}"), Role::Admin, None::<&()>).await
    }

    /// The Prometheus text exposition (`GET /metrics`, open to all), once.
    pub async fn scrape(&self) -> Result<String, ClientError> {
        let method = Method::GET;
        let call = call_name(&method, "/metrics");
        let unreachable =
            |e: reqwest::Error| ClientError::Unreachable { call: call.clone(), reason: crate::db::innermost_cause(&e) };
        let response = self.request(method, "/metrics", None)?.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(ClientError::Refused { call, status, body: text })
        }
    }
}

/// `POST /api/errors`: a call's name in messages, without its query.
fn call_name(method: &Method, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or(path))
}

/// The refusals a client should retry with the same request.
fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
}
