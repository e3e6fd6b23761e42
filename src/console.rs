//! Everything Grace prints goes through here, for two reasons. A reader who
//! leaves early (`grace openapi | head -1`, `grace report compare --json … |
//! head`) ends stdout quietly: `println!` panics on a closed pipe, and the
//! command goes on and exits as it would have (a scenario whose output nobody
//! reads still cleans up its private PostgreSQL and writes its reports). And
//! while a live progress bar is drawn on the terminal, every line — results
//! on stdout, logs on stderr — is printed with the bar lifted, so nothing
//! overwrites it and it never overwrites a line.

use indicatif::ProgressBar;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The live progress bar, while one is drawn.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Draws `bar` until [`lift_bar`]: lines printed meanwhile go above it.
pub fn hold_bar(bar: ProgressBar) {
    *BAR.lock().expect("bar lock") = Some(bar);
}

/// Stops drawing the bar (and clears it).
pub fn lift_bar() {
    if let Some(bar) = BAR.lock().expect("bar lock").take() {
        bar.finish_and_clear();
    }
}

/// Runs `write` with the bar, if any, lifted off the terminal.
fn around_bar<T>(write: impl FnOnce() -> T) -> T {
    let bar = BAR.lock().expect("bar lock").clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// stderr for logs, written around the progress bar: `tracing`'s writer.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        around_bar(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Set once stdout has gone away; later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout as it is; a closed stdout is not an error.
pub fn print(text: &str) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let written = around_bar(|| {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
    });
    if written.is_err() {
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
