//! Waiting, bounded, for the services a run needs when they start with it.
//! In compose or a Kubernetes Job the coordinator and the workers start beside
//! PostgreSQL and the backend; a start that is merely in progress (a socket
//! not listening yet, a database the backend has not bootstrapped yet) would
//! otherwise end them with exit 3 in milliseconds. `--wait-for-services`
//! says how long such a start may take; what cannot be waited out (a refused
//! token, a wrong password) still fails at once.

use crate::db::DbError;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How often a service that is not up yet is asked again.
const RETRY: Duration = Duration::from_millis(500);

/// Runs `attempt` until it succeeds, fails with an error `not_yet` does not
/// excuse, or `patience` has passed; then gives its last answer (whose error
/// names the service that never came). Says once that it is waiting.
pub async fn patiently<T, E: Display, Fut>(
    what: &str,
    patience: Duration,
    not_yet: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + patience;
    let mut waiting = false;
    loop {
        match attempt().await {
            Err(e) if not_yet(&e) && Instant::now() < deadline => {
                if !waiting {
                    crate::tell!("waiting up to {} for {what}: {e}", humantime::format_duration(patience));
                    waiting = true;
                }
                tokio::time::sleep(RETRY.min(deadline - Instant::now())).await;
            }
            Err(e) if waiting => {
                crate::tell!("{what} did not come within {}", humantime::format_duration(patience));
                return Err(e);
            }
            answer => return answer,
        }
    }
}

/// A database that is still starting: not listening, or not bootstrapped yet
/// (the backend migrates it as it starts).
pub fn database_not_yet(error: &DbError) -> bool {
    matches!(error, DbError::Unreachable { .. } | DbError::NotBootstrapped { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn waits_out_a_passing_error_and_gives_the_first_success() {
        let attempts = Cell::new(0);
        let answer: Result<u32, String> = patiently(
            "a service",
            Duration::from_secs(10),
            |_| true,
            || {
                attempts.set(attempts.get() + 1);
                let n = attempts.get();
                async move {
                    if n < 4 {
                        Err(format!("not yet ({n})"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(answer, Ok(4));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_its_patience_with_the_last_error() {
        let attempts = Cell::new(0);
        let answer: Result<(), String> = patiently(
            "a service",
            Duration::from_secs(3),
            |_| true,
            || {
                attempts.set(attempts.get() + 1);
                let n = attempts.get();
                async move { Err(format!("refused ({n})")) }
            },
        )
        .await;
        // Asked at 0, 0.5, …, 3.0 s: seven times, the last answer kept.
        assert_eq!(answer, Err("refused (7)".to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_it_does_not_excuse_fails_at_once() {
        let attempts = Cell::new(0);
        let answer: Result<(), &str> = patiently(
            "a service",
            Duration::from_secs(60),
            |e| *e == "down",
            || {
                attempts.set(attempts.get() + 1);
                async { Err("wrong password") }
            },
        )
        .await;
        assert_eq!((answer, attempts.get()), (Err("wrong password"), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn without_patience_the_first_answer_is_final() {
        let attempts = Cell::new(0);
        let answer: Result<(), &str> = patiently(
            "a service",
            Duration::ZERO,
            |_| true,
            || {
                attempts.set(attempts.get() + 1);
                async { Err("down") }
            },
        )
        .await;
        assert_eq!((answer, attempts.get()), (Err("down"), 1));
    }
}
