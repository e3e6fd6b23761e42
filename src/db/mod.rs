//! Everything about reaching and shaping the database: connecting, the embedded
//! migrations, the schema Grace expects, reading rows by name, and the private
//! cluster used when no database is configured.

pub mod migrations;
pub mod private;
pub mod references;
pub mod roles;
pub mod rows;
pub mod schema;

use crate::configuration::DatabaseUrl;
use futures::StreamExt;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server could not be reached or refused us; callers map this to exit 3.
    #[error("database unreachable at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("migration failed: {0}")]
    Migration(#[from] refinery_core::Error),
    /// A configuration error: exit 2.
    #[error("the database {database} is not bootstrapped ({pending} migration(s) pending, from {first}): run `grace bootstrap` against it first")]
    NotBootstrapped { database: String, pending: usize, first: String },
    /// A statement failed; `during` names what it was doing (say, "reading the
    /// run history"), since the server's message does not say which it was.
    #[error("{during} failed: {}", describe(.source))]
    Query { during: &'static str, source: tokio_postgres::Error },
}

/// Names what a statement was doing, for the error that says it failed.
pub trait During<T> {
    fn during(self, what: &'static str) -> Result<T, DbError>;
}

impl<T> During<T> for Result<T, tokio_postgres::Error> {
    fn during(self, what: &'static str) -> Result<T, DbError> {
        self.map_err(|source| DbError::Query { during: what, source })
    }
}

/// Runs `session` — work on a database connection of its own — until it ends
/// cleanly or `stop` fires. When it fails (the database went away), says so,
/// waits with exponential backoff (0.1 s doubling to 5 s) and runs it again:
/// how background tasks outlive database restarts.
pub async fn keep_running<F, Fut, E>(what: &str, stop: &CancellationToken, mut session: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        match session().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "{what} lost its database connection");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// What went wrong, in the server's words when the server said something:
/// tokio-postgres displays every server error as just "db error".
pub fn describe(error: &tokio_postgres::Error) -> String {
    error.as_db_error().map_or_else(|| error.to_string(), |db| format!("{}: {}", db.severity(), db.message()))
}

/// True when `error` means the connection is gone rather than the statement
/// wrong — closed, a transport failure, or the server shutting down or still
/// starting — so the same work may succeed on a new connection later.
pub fn connection_lost(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    let io_failure = std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>());
    error.is_closed()
        || io_failure
        || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW]
            .iter()
            .any(|c| error.code() == Some(c))
}

/// Opens one connection and drives it on a background task. The task ends when
/// the returned client is dropped.
pub async fn connect(url: &DatabaseUrl) -> Result<Client, DbError> {
    let (client, connection) = url
        .connect_config()
        .connect(url.connector())
        .await
        .map_err(|e| DbError::Unreachable { endpoint: url.endpoint(), reason: why_unreachable(url, &e) })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// A connection of its own that LISTENs on a channel, for tasks that wait on
/// NOTIFY (the Trigger Mesh bridge, load workers and coordinators). A burst of
/// notifications wakes the waiter once: waiters re-read state from tables, so
/// the payloads don't matter and nothing is lost by folding them.
pub struct Listener {
    pub client: Client,
    woken: mpsc::Receiver<()>,
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
    url: DatabaseUrl,
    channel: String,
}

impl Listener {
    pub async fn start(url: &DatabaseUrl, channel: &str) -> Result<Self, tokio_postgres::Error> {
        let (client, woken, connection) = Self::listen(url, channel).await?;
        Ok(Self { client, woken, connection, url: url.clone(), channel: channel.to_string() })
    }

    async fn listen(
        url: &DatabaseUrl,
        channel: &str,
    ) -> Result<(Client, mpsc::Receiver<()>, JoinHandle<Result<(), tokio_postgres::Error>>), tokio_postgres::Error>
    {
        let (client, mut connection) = url.connect_config().connect(url.connector()).await?;
        let (wake, woken) = mpsc::channel::<()>(1);
        let connection = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = wake.try_send(());
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        Ok((client, woken, connection))
    }

    /// Listens again on a new connection when this one has ended (the
    /// database restarted). For waiters that also look on a timer, so an
    /// attempt that fails only means relying on the timer until the next one.
    pub async fn relisten(&mut self) {
        if !self.connection.is_finished() {
            return;
        }
        match Self::listen(&self.url, &self.channel).await {
            Ok((client, woken, connection)) => {
                (self.client, self.woken, self.connection) = (client, woken, connection);
                tracing::info!(channel = %self.channel, "listening again");
            }
            Err(e) => tracing::debug!(error = %describe(&e), "cannot listen again yet"),
        }
    }

    /// Returns after a notification, or after `at_most` in case one was missed
    /// (NOTIFY is lost with a session that reconnects).
    pub async fn wait(&mut self, at_most: Duration) {
        tokio::select! {
            _ = self.woken.recv() => {}
            () = tokio::time::sleep(at_most) => {}
        }
    }

    /// The error that ended the connection, once it has ended.
    pub async fn check(&mut self) -> Result<(), tokio_postgres::Error> {
        if !self.connection.is_finished() {
            return Ok(());
        }
        match (&mut self.connection).await {
            Ok(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Why a connection could not be made, in an operator's words: the TLS
/// problem when it was one (an untrusted certificate, a host name mismatch, a
/// server without SSL), else the most specific cause.
pub fn why_unreachable(url: &DatabaseUrl, error: &tokio_postgres::Error) -> String {
    crate::configuration::database_tls::tls_failure(error, &url.host()).unwrap_or_else(|| innermost_cause(error))
}

/// The most specific cause in an error chain ("Connection refused (os error
/// 111)"), which is what an operator needs; tokio-postgres' and reqwest's own
/// top-level texts are just "error connecting to server" / "error sending request".
pub fn innermost_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// The database a command works on: the one configured, or a private cluster
/// that lives as long as this value.
#[allow(clippy::large_enum_variant, reason = "one per process; boxing buys nothing")]
pub enum Database {
    Configured(DatabaseUrl),
    Private(private::PrivatePostgres),
}

impl Database {
    /// A cluster Grace made for this process, gone when it ends: who owns
    /// its log cannot matter to anyone after.
    pub fn is_private(&self) -> bool {
        matches!(self, Self::Private(_))
    }

    /// Uses `url` when given; otherwise starts a private cluster.
    pub async fn configured_or_private(url: Option<DatabaseUrl>) -> Result<Self, private::PrivateClusterError> {
        match url {
            Some(url) => Ok(Self::Configured(url)),
            None => Ok(Self::Private(private::PrivatePostgres::start().await?)),
        }
    }

    pub fn url(&self) -> DatabaseUrl {
        match self {
            Self::Configured(url) => url.clone(),
            Self::Private(cluster) => cluster.url(),
        }
    }
}
