//! The HTTP client a worker's users send with when goose keeps no metrics of
//! its own (`grace worker`, unless the run asks for goose's report).
//!
//! goose sends through reqwest, which on the generator bench (a no-work nginx,
//! 50 connections, two cores) costs ~30 µs of CPU per request where hyper
//! costs ~13 for the same requests on the same connections — reqwest's layers
//! wake more tasks per request. Grace times, counts and judges every request
//! itself, so goose's request path gives it nothing; this sends on hyper
//! directly: one keep-alive pool per process (HTTP/1.1, and TLS with the
//! system's roots, loaded once rather than once per user), every answer read
//! whole within `TIMEOUT` (goose's default). Each user keeps its own cookies,
//! as goose's per-user clients did. Redirects are not followed: a 3xx is the
//! answer, judged like any other (a workload lists it in `status` to accept
//! it), so each hop is a request of its own.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE, USER_AGENT};
use reqwest::{Method, StatusCode, Url};
use std::sync::Arc;
use std::time::Duration;

/// How long a request may take, answer read to its end included.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What every request says it is sent by.
const AGENT: &str = concat!("grace/", env!("CARGO_PKG_VERSION"));

/// The process's client: its connection pool and TLS settings.
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transport")
    }
}

/// One request, built.
pub(crate) struct Outgoing<'a> {
    pub method: Method,
    pub url: &'a Url,
    pub headers: &'a [(&'a str, String)],
    /// Content type and bytes.
    pub body: Option<(&'static str, Bytes)>,
}

/// An answer, read to its end.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why no answer came.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection was made: the request never left.
    Connect(String),
    /// No whole answer within `TIMEOUT`.
    TimedOut,
    /// The request or its answer was cut, or could not be sent as given.
    Broken(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "could not connect: {e}"),
            SendError::TimedOut => write!(f, "no answer within {}s", TIMEOUT.as_secs()),
            SendError::Broken(e) => write!(f, "{e}"),
        }
    }
}

impl Transport {
    /// A client trusting the system's certificate authorities.
    pub fn new() -> std::io::Result<Self> {
        // A root that cannot be read is left out; a server it signed then fails its handshake, named.
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(store)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        Ok(Self { client: Client::builder(TokioExecutor::new()).build(connector) })
    }

    /// Sends `request` with `jar`'s cookies for its URL, keeps the cookies
    /// the answer sets, and reads the answer to its end.
    pub(crate) async fn send(&self, request: Outgoing<'_>, jar: &Jar) -> Result<Reply, SendError> {
        let uri: http::Uri = request.url.as_str().parse().map_err(|e| SendError::Broken(format!("{e}")))?;
        let mut builder = http::Request::builder().method(request.method).uri(uri);
        let headers = builder.headers_mut().expect("a request builder without an error yet");
        for (name, value) in request.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| SendError::Broken(format!("{e}")))?;
            let value = HeaderValue::from_str(value).map_err(|e| SendError::Broken(format!("header {name}: {e}")))?;
            headers.append(name, value);
        }
        // The workload's own agent or cookies win, as over goose's client's.
        headers.entry(USER_AGENT).or_insert(HeaderValue::from_static(AGENT));
        if !headers.contains_key(COOKIE) {
            if let Some(cookies) = jar.cookies(request.url) {
                headers.insert(COOKIE, cookies);
            }
        }
        let body = match request.body {
            Some((content_type, bytes)) => {
                headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                bytes
            }
            None => Bytes::new(),
        };
        let built = builder.body(Full::new(body)).map_err(|e| SendError::Broken(format!("{e}")))?;
        let exchange = async {
            let answer = self.client.request(built).await.map_err(|e| match e.is_connect() {
                true => SendError::Connect(chain(&e)),
                false => SendError::Broken(chain(&e)),
            })?;
            let (parts, body) = answer.into_parts();
            let body = body.collect().await.map_err(|e| SendError::Broken(chain(&e)))?.to_bytes();
            Ok(Reply { status: parts.status, headers: parts.headers, body })
        };
        let reply = tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| SendError::TimedOut)??;
        if reply.headers.contains_key(SET_COOKIE) {
            jar.set_cookies(&mut reply.headers.get_all(SET_COOKIE).iter(), request.url);
        }
        Ok(reply)
    }
}

/// An error and its sources, as one line: hyper's own says only "client error (Connect)".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
