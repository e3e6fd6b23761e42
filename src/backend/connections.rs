//! How many connections the backend holds and for how long. Every socket
//! costs a file descriptor and memory whether or not it ever sends a request,
//! so a flood of idle or half-sent connections could take the service down
//! without one request reaching a handler. The listener therefore holds at
//! most `max` connections — never more than the open-files limit leaves room
//! for beside the database pool ([`ConnectionLimits::within_open_files`]),
//! else `accept` fails with "too many open files" and nothing is answered —
//! and past that a connection is answered a 503 JSON body at once and closed
//! (at most `REFUSING` at a time; more are closed unanswered). So at capacity
//! `GET /api/health` answers 503 too: a readiness probe takes the replica out
//! of rotation, which is right while it is full, and a liveness probe on the
//! TCP port keeps it alive (the Kubernetes manifests do both).
//!
//! A connection is closed when it neither sends nor receives a byte for `idle`
//! (a silent keep-alive, or a request whose headers stopped coming); when a
//! request head, once begun, is not complete within `head` (headers trickled a
//! byte at a time: a slowloris); or when it keeps sending for `idle` without
//! the server having anything to answer yet (a request the server reads whole
//! is answered well within the default 60 s — its body arrives in 5 s and its
//! handler answers in 10). Streams stay open: an event stream writes a
//! keep-alive comment every 15 s.
//!
//! A flood also leaves memory behind: each connection's buffers are freed
//! when it closes, but glibc keeps freed memory in its arenas (5,000
//! connections took the process from 13 to 207 MB, and it stayed there).
//! [`LimitedListener::release_memory_after_floods`] hands it back.

use super::unparsable::JsonRefusals;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections held at once.
    pub max: usize,
    /// How long a connection may pass no byte either way, or keep sending
    /// with nothing answered.
    pub idle: Duration,
    /// How long a request head may take from its first byte to its last.
    pub head: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { max: 4096, idle: Duration::from_secs(60), head: Duration::from_secs(10) }
    }
}

/// Connections refused at once, each holding a descriptor for up to a second.
const REFUSING: usize = 64;
/// Descriptors kept for everything but client connections and the pool:
/// refusals in flight, the listener, the log sequencer's, task runner's and
/// mesh's own database connections, standard streams, the runtime's.
const RESERVED_FILES: u64 = REFUSING as u64 + 64;

impl ConnectionLimits {
    /// These limits with `max` lowered to what `open_files` (the process's
    /// limit, when known) leaves beside `pool` database connections and the
    /// reserve.
    pub fn within_open_files(self, open_files: Option<u64>, pool: usize) -> Self {
        let Some(open_files) = open_files else { return self };
        let room = open_files.saturating_sub(pool as u64 + RESERVED_FILES).max(1);
        Self { max: self.max.min(usize::try_from(room).unwrap_or(usize::MAX)), ..self }
    }
}

/// The answer past the cap, written before the connection is closed.
const AT_CAPACITY: &str = concat!(
    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n",
    "connection: close\r\ncontent-length: 104\r\n\r\n",
    r#"{"error":{"code":"at_capacity","message":"the backend holds all the connections it takes; retry later"}}"#
);

/// A TCP listener that enforces [`ConnectionLimits`] (for `axum::serve`).
pub struct LimitedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// Places for connections being refused (see `REFUSING`).
    refusing: Arc<Semaphore>,
    max: usize,
    idle: Duration,
    head: Duration,
    /// The most connections held since memory was last handed back.
    peak: Arc<AtomicUsize>,
}

/// Connections closed since the peak that count as a flood gone.
const FLOOD: usize = 256;

impl LimitedListener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            listener,
            permits: Arc::new(Semaphore::new(limits.max)),
            refusing: Arc::new(Semaphore::new(REFUSING)),
            max: limits.max,
            idle: limits.idle,
            head: limits.head,
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn held(&self) -> usize {
        held(&self.permits, self.max)
    }

    /// Every few seconds: when `FLOOD` or more connections have closed since
    /// the peak, returns the memory they freed to the operating system
    /// (`malloc_trim`; glibc only, a no-op elsewhere). Runs until `stop`.
    pub fn release_memory_after_floods(&self, stop: CancellationToken) -> impl Future<Output = ()> + 'static {
        let (permits, max, peak) = (Arc::clone(&self.permits), self.max, Arc::clone(&self.peak));
        async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let held = held(&permits, max);
                if peak.load(Ordering::Relaxed) >= held + FLOOD {
                    peak.store(held, Ordering::Relaxed);
                    let released = tokio::task::spawn_blocking(release_freed_memory).await.unwrap_or(false);
                    tracing::info!(held, released, "a connection flood ended; freed memory handed back");
                }
            }
        }
    }
}

/// Connections held: the places under the cap that are taken.
fn held(permits: &Semaphore, max: usize) -> usize {
    max - permits.available_permits()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { nix::libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() -> bool {
    false
}

impl axum::serve::Listener for LimitedListener {
    type Io = JsonRefusals<LimitedConnection>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => {
                    self.peak.fetch_max(self.held(), Ordering::Relaxed);
                    let connection = LimitedConnection::new(stream, permit, self.idle, self.head);
                    return (JsonRefusals::new(connection), addr);
                }
                Err(_) => {
                    tracing::debug!(%addr, "connection refused: at the connection cap");
                    // Past `REFUSING` refusals in flight, closed unanswered: its descriptor back at once.
                    if let Ok(place) = Arc::clone(&self.refusing).try_acquire_owned() {
                        tokio::spawn(async move {
                            refuse(stream).await;
                            drop(place);
                        });
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(AT_CAPACITY.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// A connection that holds its place under the cap and ends after `idle`
/// without traffic, or a request head not complete within `head`.
pub struct LimitedConnection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    head: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Armed by the first byte read after the last byte written: by then the
    /// server must have answered something.
    answer_by: Option<Pin<Box<Sleep>>>,
    /// The request head being read, until its blank line.
    head_read: HeadRead,
}

/// Where a connection is in reading a request head (HTTP/1: up to the first
/// blank line). After the server writes, the next request's head begins.
enum HeadRead {
    /// Not begun: no byte read since the last answer.
    Awaited,
    /// Begun: its bytes so far end `matched` bytes into "\r\n\r\n"; it must
    /// end by `by`.
    Reading { matched: usize, by: Pin<Box<Sleep>> },
    /// Read whole; what follows is a body (or a pipelined request).
    Done,
}

const HEAD_END: &[u8] = b"\r\n\r\n";

impl HeadRead {
    /// Takes bytes just read; false when a head begun is past its deadline.
    fn read(&mut self, bytes: &[u8], head: Duration, cx: &mut Context<'_>) -> bool {
        if bytes.is_empty() || matches!(self, HeadRead::Done) {
            return true;
        }
        if matches!(self, HeadRead::Awaited) {
            *self = HeadRead::Reading { matched: 0, by: Box::pin(tokio::time::sleep(head)) };
        }
        let HeadRead::Reading { matched, by } = self else { return true };
        for &byte in bytes {
            *matched = match byte {
                b if b == HEAD_END[*matched] => *matched + 1,
                b'\r' => 1,
                _ => 0,
            };
            if *matched == HEAD_END.len() {
                *self = HeadRead::Done;
                return true;
            }
        }
        by.as_mut().poll(cx).is_pending()
    }

    /// A head begun and not done by its deadline (polled while waiting for bytes).
    fn overdue(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            HeadRead::Reading { by, .. } => by.as_mut().poll(cx).is_ready(),
            HeadRead::Awaited | HeadRead::Done => false,
        }
    }
}

impl LimitedConnection {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, idle: Duration, head: Duration) -> Self {
        Self {
            stream,
            _permit: permit,
            idle,
            head,
            deadline: Box::pin(tokio::time::sleep(idle)),
            answer_by: None,
            head_read: HeadRead::Awaited,
        }
    }

    fn active(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Pending I/O past the idle deadline, or any read past the deadline to
    /// answer or to finish a head, ends the connection.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let unanswered = self.answer_by.as_mut().is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        self.deadline.as_mut().poll(cx).is_ready() || unanswered || self.head_read.overdue(cx)
    }

    /// A write's outcome: bytes out count as traffic; a write blocked past the
    /// deadline (a client that stopped reading) ends the connection.
    fn wrote(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.active();
                self.answer_by = None;
                self.head_read = HeadRead::Awaited;
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_too_long())),
            other => other,
        }
    }
}

fn idle_too_long() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
}

impl AsyncRead for LimitedConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let this = &mut *self;
                    if !this.head_read.read(&buf.filled()[before..], this.head, cx) {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the request head was not complete in time",
                        )));
                    }
                    self.active();
                    let idle = self.idle;
                    let answer_by = self.answer_by.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    if answer_by.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client kept sending without completing a request",
                        )));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_too_long())),
            other => other,
        }
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, data);
        self.wrote(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_pool_and_the_reserve_under_the_open_files_limit() {
        let asked = ConnectionLimits::default();
        assert_eq!(asked.within_open_files(Some(1024), 16).max, 1024 - 16 - 128);
        assert_eq!(asked.within_open_files(Some(1_048_576), 16), asked, "a high limit leaves the cap as asked");
        assert_eq!(asked.within_open_files(None, 16), asked, "an unknown limit changes nothing");
        assert_eq!(asked.within_open_files(Some(100), 16).max, 1, "never below one");
    }

    /// `f` called once with a task's context (for the head's timer).
    async fn in_context<T>(mut f: impl FnMut(&mut Context<'_>) -> T) -> T {
        std::future::poll_fn(|cx| Poll::Ready(f(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_ends_at_its_blank_line_even_split_across_reads_and_is_timed_from_its_first_byte() {
        let head = Duration::from_secs(10);
        let mut read = HeadRead::Awaited;
        assert!(in_context(|cx| read.read(b"GET / HTTP/1.1\r\nHost: a\r", head, cx)).await);
        assert!(in_context(|cx| read.read(b"\n\r", head, cx)).await);
        assert!(matches!(read, HeadRead::Reading { matched: 3, .. }));
        assert!(in_context(|cx| read.read(b"\nbody\r\n\r\n", head, cx)).await);
        assert!(matches!(read, HeadRead::Done), "done at the first blank line; the body is not scanned");

        // A head trickled past its deadline is refused with its next byte,
        // and seen overdue while the connection waits for more.
        let mut trickled = HeadRead::Awaited;
        assert!(in_context(|cx| trickled.read(b"GET / HTTP/1.1\r\nX-a: ", head, cx)).await);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(in_context(|cx| trickled.read(b"b", head, cx) && !trickled.overdue(cx)).await);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(in_context(|cx| trickled.overdue(cx) && !trickled.read(b"c", head, cx)).await);
    }

    #[test]
    fn the_refusal_is_a_complete_http_response_with_a_json_body() {
        let (head, body) = AT_CAPACITY.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["error"]["code"], "at_capacity");
    }
}
