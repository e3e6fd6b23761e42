//! Everything Grace prints goes through here, for two reasons. A reader who
//! leaves early (`grace openapi | head -1`, `grace report compare --json … |
//! head`, or `grace serve 2>&1 | tee log` where one Ctrl-C ends both) ends
//! the output quietly: `println!` and `eprintln!` panic on a closed pipe, and
//! the command goes on and exits as it would have (a scenario whose output
//! nobody reads still cleans up its private PostgreSQL and writes its reports;
//! a server still drains). Code that is not ours (goose prints too) is covered
//! by [`silence_closed_pipes`]. And while a live progress bar is drawn on the
//! terminal, every line — results on stdout, logs on stderr — is printed with
//! the bar lifted, so nothing overwrites it and it never overwrites a line.

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
        match around_bar(|| std::io::stderr().write(buf)) {
            // No one reads the logs any more; tracing would report it with a panicking `eprintln!`.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            written => written,
        }
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

/// Writes one line to stderr (`eprintln!` that cannot panic), around the bar.
pub fn tell(line: &str) {
    let _ = Stderr.write_all(format!("{line}\n").as_bytes());
}

/// Points stdout or stderr at /dev/null once no one reads it any more (the
/// reading end of its pipe closed), so that no later write — ours, or
/// `println!` in a library — fails; a thread waits for it. On a terminal or
/// a file nothing ever changes.
pub fn silence_closed_pipes() {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let spawned = std::thread::Builder::new().name("closed-pipes".into()).spawn(|| {
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else { return };
        let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
        let mut open = vec![Stream::Stdout, Stream::Stderr];
        while !open.is_empty() {
            let mut polled: Vec<PollFd> = open
                .iter()
                .map(|stream| match stream {
                    Stream::Stdout => stdout.as_fd(),
                    Stream::Stderr => stderr.as_fd(),
                })
                // No events asked: only an error (the reader gone) or a hang-up wakes it.
                .map(|fd| PollFd::new(fd, PollFlags::empty()))
                .collect();
            if poll(&mut polled, PollTimeout::NONE).is_err() {
                return;
            }
            let closed: Vec<bool> = polled.iter().map(|fd| fd.any().unwrap_or(false)).collect();
            for (stream, closed) in open.iter().zip(&closed) {
                match (stream, closed) {
                    (_, false) => {}
                    (Stream::Stdout, true) => {
                        CLOSED.store(true, Ordering::Relaxed);
                        let _ = nix::unistd::dup2_stdout(&null);
                    }
                    (Stream::Stderr, true) => {
                        let _ = nix::unistd::dup2_stderr(&null);
                    }
                }
            }
            let mut closed = closed.into_iter();
            open.retain(|_| !closed.next().unwrap_or(false));
        }
    });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no thread to watch for closed pipes");
    }
}

/// `n` and the noun for it: "1 worker", "3 workers", "1 entry", "0 entries".
pub fn counted(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The process's two outputs.
enum Stream {
    Stdout,
    Stderr,
}

/// `println!`, through [`print`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::print(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!`, through [`tell`].
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::console::tell(&format!($($arg)*))
    };
}
