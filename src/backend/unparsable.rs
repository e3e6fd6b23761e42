//! JSON answers to requests the HTTP layer cannot parse. hyper refuses a
//! request whose head it cannot read — a URI over 65,534 bytes (414), headers
//! over its buffer or more than 100 fields (431), a malformed request line or
//! header (400) — before any of our code sees it, and writes its own answer
//! with an empty body; it has no hook to shape that answer. Every other error
//! of the API is a JSON body naming the problem, so the connection recognises
//! exactly those automatic answers as they are written and writes them with a
//! JSON body instead.
//!
//! They are recognised by their form, which none of our handlers' responses
//! has: status 400, 414 or 431, `connection: close`, and an empty body.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The head hyper writes for a request it could not parse, after its status
/// line (a `date` header follows).
const AUTOMATIC: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";

/// (status line, code, message) of each automatic answer.
const REFUSALS: [(&[u8], &str, &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request",
        "malformed_request",
        "the request is not well-formed HTTP/1.1 (its request line or a header could not be parsed)",
    ),
    (b"HTTP/1.1 414 URI Too Long", "uri_too_long", "the request's URI is longer than 65,534 bytes"),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large",
        "headers_too_large",
        "the request's headers are larger than 400 KiB or number more than 100",
    ),
];

/// A connection whose automatic refusals carry a JSON body.
pub struct JsonRefusals<S> {
    inner: S,
    /// A rewritten refusal and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonRefusals<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, pending: None }
    }
}

/// `head` with a JSON body, when it is one of hyper's automatic refusals.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    if !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (status, code, message) = REFUSALS.iter().find(|(status, ..)| head.starts_with(status))?;
    let rest = head[status.len()..].strip_prefix(AUTOMATIC)?;
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut answer = Vec::with_capacity(head.len() + body.len() + 64);
    answer.extend_from_slice(status);
    answer.extend_from_slice(b"\r\nconnection: close\r\ncontent-type: application/json\r\n");
    answer.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    answer.extend_from_slice(rest);
    answer.extend_from_slice(body.as_bytes());
    Some(answer)
}

impl<S: AsyncWrite + Unpin> JsonRefusals<S> {
    /// Writes what is left of a rewritten refusal.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == answer.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `data` whole when it is an automatic refusal (written, rewritten,
    /// from then on); `None` otherwise.
    fn poll_refusal(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let answer = with_json_body(data)?;
        self.pending = Some((answer, 0));
        Some(match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // The rest is written on the flush that follows.
            _ => Poll::Ready(Ok(data.len())),
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonRefusals<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonRefusals<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(taken) = self.poll_refusal(cx, data) {
            return taken;
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // A refusal is a head alone, so it comes as the only non-empty slice.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            if let Some(taken) = self.poll_refusal(cx, only) {
                return taken;
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Sat, 28 Nov 2026 18:56:14 GMT\r\n\r\n";

    #[test]
    fn each_automatic_refusal_gets_a_json_body_naming_the_problem() {
        for (status, code, _) in REFUSALS {
            let head = [status, AUTOMATIC, DATE.as_bytes()].concat();
            let answer = String::from_utf8(with_json_body(&head).unwrap()).unwrap();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(std::str::from_utf8(status).unwrap()), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
            assert!(head.ends_with(DATE.trim_end()), "{head}");
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["error"]["code"], code);
        }
    }

    #[test]
    fn answers_of_our_own_are_left_alone() {
        let ours = concat!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n",
            "date: Sat, 28 Nov 2026 18:56:14 GMT\r\n\r\n"
        );
        assert!(with_json_body(ours.as_bytes()).is_none());
        let empty_ok = [b"HTTP/1.1 200 OK".as_slice(), AUTOMATIC, DATE.as_bytes()].concat();
        assert!(with_json_body(&empty_ok).is_none());
        let with_body =
            [b"HTTP/1.1 431 Request Header Fields Too Large".as_slice(), AUTOMATIC, DATE.as_bytes(), b"x"].concat();
        assert!(with_json_body(&with_body).is_none());
    }
}
