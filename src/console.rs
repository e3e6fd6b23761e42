//! Everything Grace prints for people or machines on stdout goes through
//! here, so that a reader who leaves early (`grace openapi | head -1`,
//! `grace report compare --json … | head`) ends the output quietly: `println!`
//! panics on a closed pipe. The command itself goes on and exits as it would
//! have — a scenario whose output nobody reads still cleans up its private
//! PostgreSQL and writes its reports.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout has gone away; later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout as it is; a closed stdout is not an error.
pub fn print(text: &str) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        // A broken pipe, or a full disk behind a redirect: either way there is
        // no one left to tell on stdout, and stderr keeps the logs.
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// `println!`, through [`print`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::print(&format!("{}\n", format_args!($($arg)*)))
    };
}
