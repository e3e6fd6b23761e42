//! Settings parsed once at the edge into types that cannot be misused later.
//!
//! Two settings carry secrets. `DatabaseUrl` keeps the parsed connection
//! config and only ever prints itself with the password left out, and
//! [`Tokens`] (in [`tokens`]) never prints a token, so neither logs, reports
//! nor error messages can leak them.

pub mod database_tls;
pub mod tokens;

pub use database_tls::{DatabaseTls, SslMode};
pub use tokens::Tokens;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long a connection attempt may take before the database counts as
/// unreachable. Bounded so that `grace health` answers instead of hanging.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The message names the problem, never the value: a malformed URL may
    /// still contain a password.
    #[error("invalid database URL: {reason}; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    InvalidDatabaseUrl { reason: String },
    #[error("invalid backend URL: {reason}; expected http://HOST[:PORT] or https://HOST[:PORT]")]
    InvalidBackendUrl { reason: String },
}

/// A parsed PostgreSQL connection target. `Display` and `Debug` redact the password.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
    tls: DatabaseTls,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidDatabaseUrl { reason };
        // A URL, or libpq's key=value pairs (`host=db user=grace dbname=grace`), as psql takes.
        let url = raw.starts_with("postgres://") || raw.starts_with("postgresql://");
        let pairs = raw.contains('=') && !raw.contains("://");
        if !(url || pairs) {
            return Err(invalid(
                "it must be a postgres:// (or postgresql://) URL, or key=value pairs (host=… user=… dbname=…)".into(),
            ));
        }
        // sslmode's verifying values and sslrootcert are ours to read (tokio-postgres
        // knows neither); the rest is tokio-postgres', whose parse errors describe
        // the fault without echoing the input.
        let (rest, sslmode, sslrootcert) = if url { take_tls_parameters(raw) } else { take_tls_pairs(raw) };
        let tls = DatabaseTls::resolve(sslmode.as_deref(), sslrootcert.as_deref()).map_err(invalid)?;
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| invalid(e.to_string()))?;
        config.ssl_mode(tls.mode.negotiation());
        if config.get_hosts().is_empty() {
            return Err(invalid("it names no host".into()));
        }
        if config.get_user().is_none() {
            return Err(invalid("it names no user".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        Ok(Self { config, tls })
    }

    /// The same server, another database on it (tests clone databases this way).
    pub fn with_database(&self, dbname: &str) -> Self {
        let mut config = self.config.clone();
        config.dbname(dbname);
        Self { config, tls: self.tls.clone() }
    }

    /// How connections to this database are protected.
    pub fn tls(&self) -> &DatabaseTls {
        &self.tls
    }

    /// The TLS connector for tokio-postgres (used only when TLS is negotiated).
    pub fn connector(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new((*self.tls.client).clone())
    }

    pub fn connect_config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// `host:port` of the first host, for messages about reachability.
    pub fn endpoint(&self) -> String {
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{}:{port}", self.host())
    }

    /// The first host (or socket directory).
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "?".to_string(),
        }
    }

    pub fn database(&self) -> &str {
        self.config.get_dbname().or(self.config.get_user()).unwrap_or("postgres")
    }
}

/// A backend's base URL: http or https, with a host, without credentials —
/// tokens travel in headers, never in a URL that gets stored or logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendUrl(reqwest::Url);

impl BackendUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidBackendUrl { reason: reason.to_string() };
        let url = reqwest::Url::parse(raw).map_err(|_| invalid("it is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("its scheme must be http or https"));
        }
        if !url.has_host() {
            return Err(invalid("it names no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("it must not carry credentials (pass a token instead)"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it must not carry a query or fragment"));
        }
        Ok(Self(url))
    }

    /// The URL of `path` (which starts with `/`, and may carry a query) on this
    /// backend. Appended to the base's own path, so a backend served under a
    /// prefix (`https://host/grace`) keeps it — unlike `Url::join`, which
    /// would replace the prefix.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0.as_str().trim_end_matches('/'))
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.0
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.config.get_user().unwrap_or("");
        let password = if self.config.get_password().is_some() { ":***" } else { "" };
        write!(f, "postgres://{user}{password}@{}/{}", self.endpoint(), self.database())?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        if self.tls.mode != SslMode::Prefer {
            query.append_pair("sslmode", self.tls.mode.as_str());
        }
        if self.tls.roots_given {
            match &self.tls.roots {
                database_tls::RootCertificates::File(path) => {
                    query.append_pair("sslrootcert", &path.to_string_lossy());
                }
                database_tls::RootCertificates::System => {
                    query.append_pair("sslrootcert", "system");
                }
                database_tls::RootCertificates::None => {}
            }
        }
        let query = query.finish();
        if query.is_empty() {
            Ok(())
        } else {
            write!(f, "?{query}")
        }
    }
}

/// `raw` without its `sslmode` and `sslrootcert` query parameters, and their values.
fn take_tls_parameters(raw: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = raw.split_once('?') else { return (raw.to_string(), None, None) };
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "sslmode" => sslmode = Some(value.into_owned()),
            "sslrootcert" => sslrootcert = Some(value.into_owned()),
            _ => {
                kept.append_pair(&key, &value);
            }
        }
    }
    let kept = kept.finish();
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{kept}") };
    (rest, sslmode, sslrootcert)
}

/// The same for key=value pairs: `sslmode=…` and `sslrootcert=…` taken out
/// (a value may be single-quoted), the other pairs kept as written.
fn take_tls_pairs(raw: &str) -> (String, Option<String>, Option<String>) {
    let (mut sslmode, mut sslrootcert, mut kept) = (None, None, Vec::new());
    let unquoted = |value: &str| value.trim_matches('\'').to_string();
    for word in raw.split_whitespace() {
        if let Some(value) = word.strip_prefix("sslmode=") {
            sslmode = Some(unquoted(value));
        } else if let Some(value) = word.strip_prefix("sslrootcert=") {
            sslrootcert = Some(unquoted(value));
        } else {
            kept.push(word);
        }
    }
    (kept.join(" "), sslmode, sslrootcert)
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_never_show_the_password() {
        let url = DatabaseUrl::parse("postgres://alice:hunter2@db.example:6543/grace").unwrap();
        assert_eq!(url.to_string(), "postgres://alice:***@db.example:6543/grace");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.endpoint(), "db.example:6543");
    }

    #[test]
    fn libpq_key_value_pairs_are_read_as_psql_reads_them() {
        let url = DatabaseUrl::parse("host=db.example port=6543 user=alice password='hunter2' dbname=grace").unwrap();
        assert_eq!(url.to_string(), "postgres://alice:***@db.example:6543/grace");
        let url = DatabaseUrl::parse("host=db.example user=alice dbname=grace sslmode=require").unwrap();
        assert_eq!(url.to_string(), "postgres://alice@db.example:5432/grace?sslmode=require");
        let refused = DatabaseUrl::parse("db.example/grace").unwrap_err().to_string();
        assert!(refused.contains("key=value pairs (host=… user=… dbname=…)"), "{refused}");
    }

    #[test]
    fn malformed_urls_are_refused_without_echoing_them() {
        for raw in [
            "mysql://alice:hunter2@host/db",
            "postgres://alice:hunter2@host:notaport/db",
            "postgres://alice:hunter2@/db",
            "hunter2",
            "host=h user=alice password=hunter2 port=notaport",
        ] {
            let err = DatabaseUrl::parse(raw).unwrap_err().to_string();
            assert!(err.starts_with("invalid database URL"), "{raw}: {err}");
            assert!(!err.contains("hunter2"), "{raw} leaked into: {err}");
        }
    }

    #[test]
    fn backend_paths_are_appended_to_the_base_and_its_prefix() {
        let plain = BackendUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(plain.join("/api/health"), "http://127.0.0.1:8080/api/health");
        for base in ["https://staging.example/grace", "https://staging.example/grace/"] {
            let prefixed = BackendUrl::parse(base).unwrap();
            assert_eq!(
                prefixed.join("/api/approvals?status=pending"),
                "https://staging.example/grace/api/approvals?status=pending"
            );
        }
        for bad in ["http://h/?x=1", "http://h/#top", "http://user:pw@h/", "ftp://h/", "no url"] {
            assert!(BackendUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_connect_timeout_is_always_set() {
        let url = DatabaseUrl::parse("postgres://u@localhost/db").unwrap();
        assert_eq!(url.connect_config().get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
        let url = DatabaseUrl::parse("postgres://u@localhost/db?connect_timeout=2").unwrap();
        assert_eq!(url.connect_config().get_connect_timeout(), Some(&Duration::from_secs(2)));
    }
}
