//! How a connection to PostgreSQL is protected, read the way libpq reads it:
//! `sslmode` and `sslrootcert` in the URL, else `PGSSLMODE` and
//! `PGSSLROOTCERT`, else `prefer` and `~/.postgresql/root.crt` when it
//! exists — so a URL that works with psql works with Grace. Managed
//! databases (RDS, Cloud SQL, Azure, Supabase, Neon) require TLS.
//!
//! tokio-postgres itself knows only disable/prefer/require; the two verifying
//! modes are rustls verifiers, chosen here once, when the URL is parsed, so
//! an unreadable certificate file is a configuration error (exit 2) rather
//! than a failure at the first connection.
//!
//! | sslmode | TLS | certificate checked against the root | host name checked |
//! |---|---|---|---|
//! | disable | never | – | – |
//! | prefer (default), allow | when the server offers it | no | no |
//! | require | always | only when a root certificate is given or `~/.postgresql/root.crt` exists (as libpq) | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes |

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Also what `allow` means here: tokio-postgres cannot try plain first.
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "disable" => Ok(Self::Disable),
            "allow" | "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(format!("sslmode must be disable, allow, prefer, require, verify-ca or verify-full, not {raw:?}")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether to ask for TLS, and insist.
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            Self::Disable => tokio_postgres::config::SslMode::Disable,
            Self::Prefer => tokio_postgres::config::SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCertificates {
    /// None given, and no `~/.postgresql/root.crt`.
    None,
    /// A PEM file (`sslrootcert=PATH`, or the default file).
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store.
    System,
}

/// The TLS side of a database URL.
#[derive(Clone)]
pub struct DatabaseTls {
    pub mode: SslMode,
    pub roots: RootCertificates,
    /// Whether `sslrootcert` was given (so it is kept when the URL is shown).
    pub roots_given: bool,
    /// The rustls configuration every connection of this URL uses.
    pub client: Arc<ClientConfig>,
}

impl DatabaseTls {
    /// From the URL's `sslmode`/`sslrootcert` (when present), else the environment.
    pub fn resolve(sslmode: Option<&str>, sslrootcert: Option<&str>) -> Result<Self, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mode = match sslmode.map(str::to_string).or_else(|| env("PGSSLMODE")) {
            Some(raw) => SslMode::parse(&raw)?,
            None => SslMode::Prefer,
        };
        let given = sslrootcert.map(str::to_string).or_else(|| env("PGSSLROOTCERT"));
        let roots = match given.as_deref() {
            Some("system") => RootCertificates::System,
            Some(path) => RootCertificates::File(PathBuf::from(path)),
            None => default_root_file().map_or(RootCertificates::None, RootCertificates::File),
        };
        let client = Arc::new(client_config(mode, &roots)?);
        Ok(Self { mode, roots, roots_given: sslrootcert.is_some(), client })
    }
}

/// libpq's default root certificate file, when it exists.
fn default_root_file() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("HOME")?).join(".postgresql/root.crt");
    path.is_file().then_some(path)
}

fn client_config(mode: SslMode, roots: &RootCertificates) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let checks_chain = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        // As libpq: `require` verifies the chain when a root certificate is at hand.
        SslMode::Require => *roots != RootCertificates::None,
        SslMode::Disable | SslMode::Prefer => false,
    };
    let chain = if checks_chain {
        let store = Arc::new(root_store(roots, mode)?);
        Some(
            WebPkiServerVerifier::builder_with_provider(store, Arc::clone(&provider))
                .build()
                .map_err(|e| format!("the root certificates cannot be used: {e}"))?,
        )
    } else {
        None
    };
    let verifier = ModeVerifier { chain, names_host: mode == SslMode::VerifyFull, provider: Arc::clone(&provider) };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn root_store(roots: &RootCertificates, mode: SslMode) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCertificates::None => {
            return Err(format!(
                "sslmode={} needs a root certificate: set sslrootcert=PATH (or PGSSLROOTCERT), put it in \
                 ~/.postgresql/root.crt, or use sslrootcert=system for the system's trusted roots",
                mode.as_str()
            ))
        }
        RootCertificates::File(path) => {
            for certificate in read_certificates(path)? {
                store.add(certificate).map_err(|e| format!("{}: a certificate is unusable: {e}", path.display()))?;
            }
        }
        RootCertificates::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("sslrootcert=system: no trusted root certificate found on this system".into());
            }
        }
    }
    Ok(store)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable =
        |e: &dyn std::fmt::Display| format!("the root certificate file {} is unreadable: {e}", path.display());
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certificates.is_empty() {
        return Err(format!("the root certificate file {} holds no PEM certificate", path.display()));
    }
    Ok(certificates)
}

/// The server certificate check an `sslmode` asks for: none (`prefer`, and
/// `require` without a root certificate: encrypted, any certificate), the
/// chain to a trusted root (`verify-ca`, and `require` with one), or the chain
/// and the host name (`verify-full`). The handshake's signatures are checked
/// whatever the mode.
#[derive(Debug)]
struct ModeVerifier {
    /// The chain check against the trusted roots; `None`: none.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// Whether the certificate must be valid for the host connected to.
    names_host: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ModeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// What went wrong in a TLS handshake, in an operator's words, when `error`
/// (or one of its causes) is a certificate failure or a server without TLS.
pub fn tls_failure(error: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        let rustls_error = current
            .downcast_ref::<rustls::Error>()
            .or_else(|| current.downcast_ref::<std::io::Error>()?.get_ref()?.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::InvalidCertificate(problem)) = rustls_error {
            return Some(match problem {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "the server's certificate is not trusted: it is not signed by the root certificate given \
                     (sslrootcert)"
                        .to_string()
                }
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    format!(
                        "host name mismatch: the server's certificate is not valid for {host} (sslmode=verify-full)"
                    )
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired".to_string()
                }
                other => format!("the server's certificate was refused: {other:?}"),
            });
        }
        if current.to_string() == "server does not support TLS" {
            return Some("the server does not support SSL, and sslmode asks for it".to_string());
        }
        cause = current.source();
    }
    None
}
