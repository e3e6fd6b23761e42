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
//! The settings live in Postgres (`fault_settings`), so every replica of a
//! deployment applies what was set on any of them. Chaos is drawn on every
//! request, so each replica keeps the rates in memory, reloaded when a
//! replica announces a change (NOTIFY) and every second in case one was
//! missed. A sabotage is taken from the table inside the verification's own
//! transaction: one that rolls back gives it back, and no two replicas take
//! the same one.

use super::error::ApiError;
use super::prepared::Prepared;
use crate::api::admin::{FaultKind, FaultsView};
use crate::configuration::DatabaseUrl;
use crate::db::Listener;
use deadpool_postgres::GenericClient;
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The channel a replica announces a change of the fault settings on.
const CHANNEL: &str = "grace_faults";
/// Every setting, by scope.
const SETTINGS: &str = "SELECT scope, sabotage_remaining, chaos_rate FROM fault_settings";
/// Every chaos rate set, by scope.
const CHAOS_RATES: &str = "SELECT scope, chaos_rate FROM fault_settings WHERE chaos_rate IS NOT NULL";
/// How often the chaos rates are reloaded even without an announcement.
const RELOAD: Duration = Duration::from_secs(1);

/// Every replica's faults, and this replica's count of those it injected.
#[derive(Debug)]
pub struct Faults {
    enabled: bool,
    /// Chaos rates by scope (`None`: every mission), as last read.
    chaos: Mutex<HashMap<Option<Uuid>, f64>>,
    injected: AtomicU64,
}

fn scope_name(mission: Option<Uuid>) -> String {
    mission.map_or_else(|| "*".to_string(), |m| m.to_string())
}

impl Faults {
    pub fn new(enabled: bool) -> Arc<Self> {
        Arc::new(Self { enabled, chaos: Mutex::default(), injected: AtomicU64::new(0) })
    }

    pub async fn set(
        &self,
        client: &impl GenericClient,
        mission: Option<Uuid>,
        kind: &FaultKind,
    ) -> Result<FaultsView, ApiError> {
        if !self.enabled {
            return Err(ApiError::FaultsDisabled);
        }
        let scope = scope_name(mission);
        match *kind {
            FaultKind::SabotageVerification { count } => {
                client
                    .run(
                        "INSERT INTO fault_settings (scope, sabotage_remaining) VALUES ($1, $2)
                         ON CONFLICT (scope) DO UPDATE SET sabotage_remaining = $2, updated_at = now()",
                        &[&scope, &(count as i32)],
                    )
                    .await?;
            }
            FaultKind::Chaos { rate } => {
                client
                    .run(
                        "INSERT INTO fault_settings (scope, chaos_rate) VALUES ($1, $2)
                         ON CONFLICT (scope) DO UPDATE SET chaos_rate = $2, updated_at = now()",
                        &[&scope, &rate],
                    )
                    .await?;
            }
        }
        self.announce(client).await
    }

    /// Clears the faults of one scope (`None`: the global ones), or all with `everything`.
    pub async fn clear(
        &self,
        client: &impl GenericClient,
        mission: Option<Uuid>,
        everything: bool,
    ) -> Result<FaultsView, ApiError> {
        if !self.enabled {
            return Err(ApiError::FaultsDisabled);
        }
        if everything {
            client.run("DELETE FROM fault_settings", &[]).await?;
        } else {
            client.run("DELETE FROM fault_settings WHERE scope = $1", &[&scope_name(mission)]).await?;
        }
        self.announce(client).await
    }

    /// Tells every replica the settings changed, takes them up here at once,
    /// and answers them.
    async fn announce(&self, client: &impl GenericClient) -> Result<FaultsView, ApiError> {
        client.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
        let rows = client.all(SETTINGS, &[]).await?;
        self.take_rates(&rows)?;
        self.view_of(&rows)
    }

    /// Every replica's settings, and what this replica injected.
    pub async fn view(&self, client: &impl GenericClient) -> Result<FaultsView, ApiError> {
        self.view_of(&client.all(SETTINGS, &[]).await?)
    }

    fn view_of(&self, rows: &[tokio_postgres::Row]) -> Result<FaultsView, ApiError> {
        let mut view = FaultsView {
            enabled: self.enabled,
            sabotage: HashMap::new(),
            chaos: HashMap::new(),
            injected_total: self.injected(),
        };
        for row in rows {
            let scope: String = row.try_get("scope")?;
            if let Some(remaining) = row.try_get::<_, Option<i32>>("sabotage_remaining")? {
                view.sabotage.insert(scope.clone(), remaining as u32);
            }
            if let Some(rate) = row.try_get::<_, Option<f64>>("chaos_rate")? {
                view.chaos.insert(scope, rate);
            }
        }
        Ok(view)
    }

    /// Takes up the chaos rates among `rows` (of `SETTINGS` or `CHAOS_RATES`).
    fn take_rates(&self, rows: &[tokio_postgres::Row]) -> Result<(), tokio_postgres::Error> {
        let mut rates = HashMap::new();
        for row in rows {
            let scope: String = row.try_get("scope")?;
            if let Some(rate) = row.try_get::<_, Option<f64>>("chaos_rate")? {
                rates.insert(scope.parse::<Uuid>().ok(), rate);
            }
        }
        *self.chaos.lock().expect("chaos rates lock") = rates;
        Ok(())
    }

    /// Fails with an injected fault at chaos rate for `mission` (its own rate, or
    /// the global one). Called before the step it guards writes anything.
    pub fn chaos(&self, mission: Option<Uuid>, step: &str) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let rate = {
            let rates = self.chaos.lock().expect("chaos rates lock");
            mission.and_then(|m| rates.get(&Some(m)).copied()).or_else(|| rates.get(&None).copied())
        };
        match rate {
            Some(rate) if rand::rng().random_bool(rate.clamp(0.0, 1.0)) => {
                self.injected.fetch_add(1, Ordering::Relaxed);
                Err(ApiError::InjectedFault(format!("chaos at {step}")))
            }
            _ => Ok(()),
        }
    }

    /// Takes one sabotaged verification for `mission` (its own, else a global
    /// one), inside the verification's transaction `tx`: if that rolls back,
    /// the sabotage is given back with it.
    pub async fn take_sabotage(&self, tx: &impl GenericClient, mission: Uuid) -> Result<bool, ApiError> {
        if !self.enabled {
            return Ok(false);
        }
        let taken = tx
            .run(
                "UPDATE fault_settings SET sabotage_remaining = sabotage_remaining - 1, updated_at = now()
                  WHERE scope = (SELECT scope FROM fault_settings
                                  WHERE scope IN ($1, '*') AND sabotage_remaining > 0
                                  ORDER BY scope = '*' LIMIT 1 FOR UPDATE)",
                &[&mission.to_string()],
            )
            .await?;
        Ok(taken == 1)
    }

    /// Whether faults may be injected at all (`--enable-faults`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Faults this replica injected since it started.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// A sabotage taken by `take_sabotage` was used (its verification wrote
    /// everything): counted as injected by this replica.
    pub fn sabotage_used(&self) {
        self.injected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps `faults`' chaos rates current until `stop`: reloaded on every
/// announcement and every second, through database restarts.
pub async fn follow(faults: Arc<Faults>, database: DatabaseUrl, stop: CancellationToken) {
    if !faults.enabled {
        return;
    }
    crate::db::keep_running("fault settings", &stop, || follow_session(&faults, &database, &stop)).await;
}

async fn follow_session(
    faults: &Faults,
    database: &DatabaseUrl,
    stop: &CancellationToken,
) -> Result<(), tokio_postgres::Error> {
    let mut listener = Listener::start(database, CHANNEL).await?;
    loop {
        faults.take_rates(&listener.client.query(CHAOS_RATES, &[]).await?)?;
        listener.check().await?;
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = listener.wait(RELOAD) => {}
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
    fn disabled_faults_never_fire() {
        let faults = Faults::new(false);
        faults.chaos.lock().unwrap().insert(None, 1.0);
        assert!(faults.chaos(None, "step").is_ok());
    }

    #[test]
    fn chaos_at_rate_one_always_fires_and_is_counted_and_a_mission_rate_comes_first() {
        let faults = Faults::new(true);
        let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        faults.chaos.lock().unwrap().extend([(None, 1.0), (Some(ours), 0.0)]);
        assert!(matches!(faults.chaos(Some(theirs), "execute"), Err(ApiError::InjectedFault(_))));
        assert!(faults.chaos(Some(ours), "execute").is_ok());
        assert_eq!(faults.injected.load(Ordering::Relaxed), 1);
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
