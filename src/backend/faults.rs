//! Fault injection and the executor's defences against faults.
//!
//! Faults exist to prove the promises hold when things go wrong, so they are off
//! unless the server was started with `--enable-faults`, and only an admin can
//! set them. Two kinds:
//! - sabotage the next N verifications (of one mission, or of any): forces a
//!   violation, so a tier 2+ action must roll back from its snapshot;
//! - chaos at a rate: a request or a pipeline step fails *before* it writes,
//!   tagged as injected. The pipeline retries such steps with backoff and a
//!   circuit breaker stops hammering when they keep failing.
//!
//! Fault state is per process: with several replicas, set faults on each.

use super::error::ApiError;
use crate::api::admin::{FaultKind, FaultsView};
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Default)]
struct FaultState {
    sabotage: HashMap<Option<Uuid>, u32>,
    chaos: HashMap<Option<Uuid>, f64>,
}

/// Shared by all handlers. A std mutex: it guards a few map operations and is
/// never held across an await.
#[derive(Debug)]
pub struct Faults {
    enabled: bool,
    state: Mutex<FaultState>,
    injected: AtomicU64,
}

fn scope_name(mission: Option<Uuid>) -> String {
    mission.map_or_else(|| "*".to_string(), |m| m.to_string())
}

impl Faults {
    pub fn new(enabled: bool) -> Arc<Self> {
        Arc::new(Self { enabled, state: Mutex::default(), injected: AtomicU64::new(0) })
    }

    pub fn set(&self, mission: Option<Uuid>, kind: &FaultKind) -> Result<FaultsView, ApiError> {
        if !self.enabled {
            return Err(ApiError::FaultsDisabled);
        }
        {
            let mut state = self.state.lock().expect("fault state lock");
            match *kind {
                FaultKind::SabotageVerification { count } => {
                    state.sabotage.insert(mission, count);
                }
                FaultKind::Chaos { rate } => {
                    state.chaos.insert(mission, rate);
                }
            }
        }
        Ok(self.view())
    }

    /// Clears the faults of one scope (`None`: the global ones), or all with `everything`.
    pub fn clear(&self, mission: Option<Uuid>, everything: bool) -> Result<FaultsView, ApiError> {
        if !self.enabled {
            return Err(ApiError::FaultsDisabled);
        }
        {
            let mut state = self.state.lock().expect("fault state lock");
            if everything {
                *state = FaultState::default();
            } else {
                state.sabotage.remove(&mission);
                state.chaos.remove(&mission);
            }
        }
        Ok(self.view())
    }

    pub fn view(&self) -> FaultsView {
        let state = self.state.lock().expect("fault state lock");
        FaultsView {
            enabled: self.enabled,
            sabotage: state.sabotage.iter().map(|(m, n)| (scope_name(*m), *n)).collect(),
            chaos: state.chaos.iter().map(|(m, r)| (scope_name(*m), *r)).collect(),
            injected_total: self.injected.load(Ordering::Relaxed),
        }
    }

    /// Fails with an injected fault at chaos rate for `mission` (its own rate, or
    /// the global one). Called before the step it guards writes anything.
    pub fn chaos(&self, mission: Option<Uuid>, step: &str) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let rate = {
            let state = self.state.lock().expect("fault state lock");
            mission.and_then(|m| state.chaos.get(&Some(m)).copied()).or_else(|| state.chaos.get(&None).copied())
        };
        match rate {
            Some(rate) if rand::rng().random_bool(rate.clamp(0.0, 1.0)) => {
                self.injected.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::InjectedFault(format!("chaos at {step}")))
            }
            _ => Ok(()),
        }
    }

    /// Reserves one sabotaged verification for `mission`, if any remain. The
    /// reservation is returned unless the verification it sabotages commits.
    pub fn reserve_sabotage(self: &Arc<Self>, mission: Uuid) -> Option<SabotageTicket> {
        if !self.enabled {
            return None;
        }
        let mut state = self.state.lock().expect("fault state lock");
        let scope = [Some(mission), None].into_iter().find(|s| state.sabotage.get(s).is_some_and(|n| *n > 0))?;
        *state.sabotage.get_mut(&scope).expect("found above") -= 1;
        Some(SabotageTicket { faults: Arc::clone(self), scope, used: false })
    }
}

/// One reserved sabotage. Dropping it unused gives it back, so a transaction
/// that rolls back (say, on an injected fault) does not eat the sabotage.
#[derive(Debug)]
pub struct SabotageTicket {
    faults: Arc<Faults>,
    scope: Option<Uuid>,
    used: bool,
}

impl SabotageTicket {
    /// The sabotaged verification committed.
    pub fn consume(mut self) {
        self.used = true;
        self.faults.injected.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for SabotageTicket {
    fn drop(&mut self) {
        if !self.used {
            let mut state = self.faults.state.lock().expect("fault state lock");
            *state.sabotage.entry(self.scope).or_default() += 1;
        }
    }
}

/// How many pipeline operations must fail in a row (after their retries) to
/// open the breaker, and how long it then stays open.
const BREAKER_THRESHOLD: u32 = 5;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum BreakerState {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// Cooldown over: requests go through, and the next outcome decides.
    HalfOpen,
}

/// Stops the executor from retrying into a wall: while open, pipeline requests
/// are refused at once with 503 and Retry-After.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<BreakerState>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self { state: Mutex::new(BreakerState::Closed { consecutive_failures: 0 }) }
    }
}

impl CircuitBreaker {
    pub fn check(&self) -> Result<(), ApiError> {
        let mut state = self.state.lock().expect("breaker lock");
        if let BreakerState::Open { until } = *state {
            let now = Instant::now();
            if now < until {
                return Err(ApiError::CircuitOpen { retry_after: until - now });
            }
            *state = BreakerState::HalfOpen;
        }
        Ok(())
    }

    pub fn record(&self, succeeded: bool) {
        let mut state = self.state.lock().expect("breaker lock");
        *state = match (&*state, succeeded) {
            (_, true) => BreakerState::Closed { consecutive_failures: 0 },
            (BreakerState::Closed { consecutive_failures }, false) if consecutive_failures + 1 < BREAKER_THRESHOLD => {
                BreakerState::Closed { consecutive_failures: consecutive_failures + 1 }
            }
            (_, false) => {
                tracing::warn!(cooldown = ?BREAKER_COOLDOWN, "circuit breaker opened");
                BreakerState::Open { until: Instant::now() + BREAKER_COOLDOWN }
            }
        };
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.state.lock().expect("breaker lock"), BreakerState::Open { until } if Instant::now() < until)
    }
}

/// Retries of one pipeline operation, and the pause before each.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// Runs `operation` behind the breaker, retrying transient failures (injected
/// faults, a database blip) with exponential backoff. Each attempt runs its own
/// transaction, so a failed attempt leaves nothing behind.
pub async fn with_retries<T, F, Fut>(breaker: &CircuitBreaker, mut operation: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    breaker.check()?;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match operation().await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "retrying a transient failure");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(e) if e.is_transient() => {
                breaker.record(false);
                return Err(e);
            }
            outcome => {
                breaker.record(true);
                return outcome;
            }
        }
    }
    unreachable!("the last attempt always returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sabotage_ticket_dropped_unused_is_given_back() {
        let faults = Faults::new(true);
        let mission = Uuid::new_v4();
        faults.set(Some(mission), &FaultKind::SabotageVerification { count: 1 }).unwrap();
        drop(faults.reserve_sabotage(mission).expect("one reserved"));
        let ticket = faults.reserve_sabotage(mission).expect("given back, so reservable again");
        assert!(faults.reserve_sabotage(mission).is_none(), "only one exists");
        ticket.consume();
        assert!(faults.reserve_sabotage(mission).is_none());
        assert_eq!(faults.view().injected_total, 1);
    }

    #[test]
    fn mission_sabotage_does_not_touch_other_missions_but_global_does() {
        let faults = Faults::new(true);
        let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        faults.set(Some(ours), &FaultKind::SabotageVerification { count: 1 }).unwrap();
        assert!(faults.reserve_sabotage(theirs).is_none());
        faults.set(None, &FaultKind::SabotageVerification { count: 1 }).unwrap();
        faults.reserve_sabotage(theirs).expect("global sabotage applies").consume();
    }

    #[test]
    fn disabled_faults_refuse_to_be_set_and_never_fire() {
        let faults = Faults::new(false);
        assert!(matches!(faults.set(None, &FaultKind::Chaos { rate: 1.0 }), Err(ApiError::FaultsDisabled)));
        assert!(faults.chaos(None, "step").is_ok());
    }

    #[test]
    fn chaos_at_rate_one_always_fires_and_is_counted() {
        let faults = Faults::new(true);
        faults.set(None, &FaultKind::Chaos { rate: 1.0 }).unwrap();
        assert!(matches!(faults.chaos(Some(Uuid::new_v4()), "execute"), Err(ApiError::InjectedFault(_))));
        faults.clear(None, false).unwrap();
        assert!(faults.chaos(None, "execute").is_ok());
        assert_eq!(faults.view().injected_total, 1);
    }

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_half_opens_after_cooldown() {
        let breaker = CircuitBreaker::default();
        for _ in 0..BREAKER_THRESHOLD - 1 {
            breaker.record(false);
            assert!(breaker.check().is_ok());
        }
        breaker.record(false);
        assert!(matches!(breaker.check(), Err(ApiError::CircuitOpen { .. })));
        *breaker.state.lock().unwrap() = BreakerState::Open { until: Instant::now() };
        assert!(breaker.check().is_ok(), "half-open after the cooldown");
        breaker.record(true);
        assert!(!breaker.is_open());
    }
}
