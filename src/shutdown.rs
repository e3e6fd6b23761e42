//! One `CancellationToken` for the whole process: SIGINT (Ctrl-C) and SIGTERM
//! cancel it, and every long-running task selects on it. Cleanup then happens
//! in ordinary destructors and returns, not in a signal handler.

use std::sync::OnceLock;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// The process's token, for signal handling that is not ours: goose installs
/// its own SIGINT handler while it runs, and reports a Ctrl-C through `trigger`.
static PROCESS: OnceLock<CancellationToken> = OnceLock::new();

/// Cancels the process's token, as SIGINT would have (no-op in tests, which
/// have none).
pub fn trigger() {
    if let Some(token) = PROCESS.get() {
        token.cancel();
    }
}

/// Returns a token that is cancelled on the first SIGINT or SIGTERM.
/// Must be called inside a tokio runtime.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = PROCESS.get_or_init(CancellationToken::new).clone();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        cancel.cancel();
    });
    Ok(token)
}
