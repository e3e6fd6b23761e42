//! One `CancellationToken` for the whole process: the first SIGINT (Ctrl-C) or
//! SIGTERM cancels it, and every long-running task selects on it — a load run
//! stops its load and still merges, judges and writes what it measured; a
//! server stops accepting and drains. A second signal ends the process at once
//! (130 after SIGINT, 143 after SIGTERM), as k6 and Locust do. Cleanup happens
//! in ordinary destructors and returns, not in a signal handler.
//!
//! goose would take SIGINT over on its first run: it installs a handler with
//! the `ctrlc` crate, which replaces the process's own, after which a Ctrl-C
//! only trips goose's killswitch and a second one exits with status 1. `ctrlc`
//! allows one handler per process, so Grace claims it first with one that does
//! nothing; goose's attempt then fails quietly, and SIGINT stays Grace's (the
//! share's relay trips goose's killswitch when Grace stops). A broken pipe on
//! stderr (`grace serve 2>&1 | tee log`, where Ctrl-C ends `tee` too) is
//! `console`'s to absorb.

use std::sync::atomic::{AtomicU8, Ordering};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// The exit code of the signal that stopped the process: 0 until one came.
static STOPPED_BY: AtomicU8 = AtomicU8::new(0);

/// What a command interrupted by SIGINT exits with (128 + 2).
pub const EXIT_SIGINT: u8 = 130;
/// What a command stopped by SIGTERM exits with (128 + 15).
pub const EXIT_SIGTERM: u8 = 143;

/// The exit code of an interrupted command: 143 after SIGTERM, else 130.
pub fn interrupted_exit_code() -> u8 {
    match STOPPED_BY.load(Ordering::Relaxed) {
        0 => EXIT_SIGINT,
        code => code,
    }
}

/// Returns a token that is cancelled on the first SIGINT or SIGTERM; the
/// second ends the process. Must be called once, inside a tokio runtime.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    // Before tokio's handlers, which chain to this one: see the module's doc.
    let _ = ctrlc::set_handler(|| {});
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        STOPPED_BY.store(next_signal(&mut interrupt, &mut terminate).await, Ordering::Relaxed);
        cancel.cancel();
        let code = next_signal(&mut interrupt, &mut terminate).await;
        crate::console::tell("stopped at once: a second signal");
        std::process::exit(i32::from(code));
    });
    Ok(token)
}

/// The exit code of the next SIGINT or SIGTERM, when it comes.
async fn next_signal(interrupt: &mut Signal, terminate: &mut Signal) -> u8 {
    tokio::select! {
        _ = interrupt.recv() => EXIT_SIGINT,
        _ = terminate.recv() => EXIT_SIGTERM,
    }
}
