//! How many connections the backend holds and for how long. Every socket
//! costs a file descriptor and memory whether or not it ever sends a request,
//! so a flood of idle or half-sent connections could take the service down
//! without one request reaching a handler. The listener therefore holds at
//! most `max` connections (past that, a connection is answered a 503 JSON
//! body at once and closed), and closes one that neither sends nor receives a
//! byte for `idle` (a silent keep-alive, or a request whose headers stopped
//! coming), or that keeps sending for as long without the server having
//! anything to answer yet (headers trickled a byte at a time: a request the
//! server reads whole is answered well within the default 60 s — its body
//! arrives in 5 s and its handler answers in 10). Streams stay open: an event
//! stream writes a keep-alive comment every 15 s.
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
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { max: 4096, idle: Duration::from_secs(60) }
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
    max: usize,
    idle: Duration,
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
            max: limits.max,
            idle: limits.idle,
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
                    return (JsonRefusals::new(LimitedConnection::new(stream, permit, self.idle)), addr);
                }
                Err(_) => {
                    tracing::debug!(%addr, "connection refused: at the connection cap");
                    tokio::spawn(refuse(stream));
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
/// without traffic.
pub struct LimitedConnection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Armed by the first byte read after the last byte written: by then the
    /// server must have answered something.
    answer_by: Option<Pin<Box<Sleep>>>,
}

impl LimitedConnection {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, idle: Duration) -> Self {
        Self { stream, _permit: permit, idle, deadline: Box::pin(tokio::time::sleep(idle)), answer_by: None }
    }

    fn active(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Pending I/O past the idle deadline, or any read past the deadline to
    /// answer, ends the connection.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let unanswered = self.answer_by.as_mut().is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        self.deadline.as_mut().poll(cx).is_ready() || unanswered
    }

    /// A write's outcome: bytes out count as traffic; a write blocked past the
    /// deadline (a client that stopped reading) ends the connection.
    fn wrote(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.active();
                self.answer_by = None;
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
    fn the_refusal_is_a_complete_http_response_with_a_json_body() {
        let (head, body) = AT_CAPACITY.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["error"]["code"], "at_capacity");
    }
}
