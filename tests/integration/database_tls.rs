//! TLS to PostgreSQL, against a private cluster switched to `ssl = on` with a
//! certificate made here: every libpq `sslmode` connects or fails as libpq
//! would, and a failure names its cause.

use crate::helpers::{grace, Ran};
use grace::configuration::DatabaseUrl;
use grace::db::private::PrivatePostgres;
use grace::db::{self, DbError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;

/// A certificate authority, and a server certificate it signed for `names`.
struct Certificates {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
}

fn certificates(names: &[&str]) -> Certificates {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    let server = CertificateParams::new(names).unwrap().signed_by(&server_key, &issuer).unwrap();
    Certificates { ca_pem: ca.pem(), server_pem: server.pem(), server_key_pem: server_key.serialize_pem() }
}

/// Switches `cluster` to TLS with `certificates`, accepting TCP clients only
/// over TLS (`hostssl`), and reloads it.
async fn serve_tls_only(cluster: &PrivatePostgres, certificates: &Certificates) {
    let data = cluster.directory().join("data");
    let owner = std::fs::metadata(&data).unwrap();
    let write = |name: &str, content: &str, mode: u32| {
        let path = data.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    };
    write("server.crt", &certificates.server_pem, 0o644);
    write("server.key", &certificates.server_key_pem, 0o600);
    write(
        "pg_hba.conf",
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        0o600,
    );
    let admin = db::connect(&cluster.url()).await.unwrap();
    admin.batch_execute("ALTER SYSTEM SET ssl = on").await.unwrap();
    admin.query_one("SELECT pg_reload_conf()", &[]).await.unwrap();
    // The reload is asynchronous: wait until new connections see it.
    for _ in 0..50 {
        let fresh = db::connect(&cluster.url().with_database("postgres")).await;
        if fresh.is_err() {
            return; // plain TCP is refused now: hostssl only
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the cluster did not switch to TLS-only");
}

/// The cluster's `grace` database at `host`, with `query` (sslmode and so on).
fn url(cluster: &PrivatePostgres, host: &str, query: &str) -> String {
    let port = cluster.url().endpoint().rsplit_once(':').unwrap().1.to_string();
    format!("postgres://postgres@{host}:{port}/grace?{query}")
}

async fn bootstrap(url: &str) -> Ran {
    bootstrap_with_pgsslmode(url, None).await
}

/// `grace bootstrap` with `PGSSLMODE` set to `pgsslmode`, or unset.
async fn bootstrap_with_pgsslmode(url: &str, pgsslmode: Option<&str>) -> Ran {
    let mut command = grace();
    command.args(["bootstrap", "--database-url", url]);
    match pgsslmode {
        Some(mode) => command.env("PGSSLMODE", mode),
        None => command.env_remove("PGSSLMODE"),
    };
    command.output().await.unwrap().into()
}

/// Whether the session of a connection to `url` is encrypted.
async fn encrypted(url: &str) -> Result<bool, DbError> {
    let client = db::connect(&DatabaseUrl::parse(url).unwrap()).await?;
    Ok(client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get::<_, bool>("ssl"))
}

fn write_file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn every_sslmode_connects_or_fails_as_libpq_would_and_names_why() {
    let cluster = PrivatePostgres::start().await.unwrap();
    // Before TLS is on: require is refused by a server without SSL; prefer falls back.
    let ran = bootstrap(&url(&cluster, "127.0.0.1", "sslmode=require")).await;
    assert_eq!(ran.code, Some(3), "{}", ran.all_output());
    assert!(ran.stderr.contains("the server does not support SSL"), "{}", ran.stderr);
    assert!(!encrypted(&url(&cluster, "127.0.0.1", "sslmode=prefer")).await.unwrap());

    let right = certificates(&["localhost"]);
    let wrong = certificates(&["localhost"]);
    serve_tls_only(&cluster, &right).await;
    let files = tempfile::tempdir().unwrap();
    let right_ca = write_file(files.path(), "right-ca.pem", &right.ca_pem);
    let wrong_ca = write_file(files.path(), "wrong-ca.pem", &wrong.ca_pem);

    // Encrypted whenever the server offers it, with or without verification.
    for (host, query) in [
        ("127.0.0.1", "sslmode=prefer".to_string()),
        ("127.0.0.1", "sslmode=require".to_string()),
        ("localhost", format!("sslmode=verify-full&sslrootcert={right_ca}")),
        // verify-ca checks the chain, not the name: the certificate names localhost only.
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={right_ca}")),
    ] {
        let url = url(&cluster, host, &query);
        assert!(encrypted(&url).await.unwrap_or_else(|e| panic!("{url}: {e}")), "{url}");
    }
    let ran = bootstrap(&url(&cluster, "localhost", &format!("sslmode=verify-full&sslrootcert={right_ca}"))).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());

    // Failures name their cause and exit 3.
    let cases = [
        (url(&cluster, "localhost", &format!("sslmode=verify-full&sslrootcert={wrong_ca}")), "is not trusted"),
        (url(&cluster, "localhost", &format!("sslmode=verify-ca&sslrootcert={wrong_ca}")), "is not trusted"),
        // As libpq: require with a root certificate verifies the chain.
        (url(&cluster, "localhost", &format!("sslmode=require&sslrootcert={wrong_ca}")), "is not trusted"),
        (
            url(&cluster, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={right_ca}")),
            "host name mismatch: the server's certificate is not valid for 127.0.0.1",
        ),
        (url(&cluster, "127.0.0.1", "sslmode=disable"), "no pg_hba.conf entry"),
    ];
    for (url, cause) in cases {
        let ran = bootstrap(&url).await;
        assert_eq!(ran.code, Some(3), "{url}: {}", ran.all_output());
        assert!(ran.stderr.contains(cause), "{url}: {}", ran.stderr);
        assert!(ran.stderr.contains("database unreachable at"), "{url}: {}", ran.stderr);
    }

    // PGSSLMODE applies when the URL says nothing, as with libpq.
    let plain = url(&cluster, "127.0.0.1", "");
    let ran = bootstrap_with_pgsslmode(&plain, Some("disable")).await;
    assert_eq!(ran.code, Some(3), "{}", ran.all_output());
    assert!(ran.stderr.contains("no pg_hba.conf entry"), "{}", ran.stderr);
    let ran = bootstrap_with_pgsslmode(&plain, Some("require")).await;
    assert_eq!(ran.code, Some(0), "{}", ran.all_output());
}

#[tokio::test]
async fn a_tls_setting_that_cannot_work_is_a_usage_error_before_any_connection() {
    let missing = "/nonexistent/ca.pem";
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate").unwrap();
    let not_pem = not_pem.path().to_str().unwrap();
    let cases = [
        (
            format!("sslmode=verify-full&sslrootcert={missing}"),
            "the root certificate file /nonexistent/ca.pem is unreadable",
        ),
        (format!("sslmode=verify-ca&sslrootcert={not_pem}"), "holds no PEM certificate"),
        ("sslmode=sometimes".to_string(), "sslmode must be disable, allow, prefer, require, verify-ca or verify-full"),
    ];
    for (query, message) in cases {
        let url = format!("postgres://postgres:hunter2@127.0.0.1:1/grace?{query}");
        let ran = bootstrap(&url).await;
        assert_eq!(ran.code, Some(2), "{query}: {}", ran.all_output());
        assert!(ran.stderr.contains(message), "{query}: {}", ran.stderr);
        assert!(!ran.all_output().contains("hunter2"), "{}", ran.all_output());
    }
    // verify-full with no root certificate anywhere says where one may come from.
    let home = tempfile::tempdir().unwrap();
    let ran: Ran = grace()
        .args(["bootstrap", "--database-url", "postgres://postgres@127.0.0.1:1/grace?sslmode=verify-full"])
        .env("HOME", home.path())
        .env_remove("PGSSLROOTCERT")
        .output()
        .await
        .unwrap()
        .into();
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("sslmode=verify-full needs a root certificate"), "{}", ran.stderr);
}

#[test]
fn the_url_keeps_its_tls_settings_when_shown_and_parsed_again() {
    let url =
        DatabaseUrl::parse("postgres://alice:secret@db.example:5433/grace?sslmode=require&application_name=x").unwrap();
    assert_eq!(url.to_string(), "postgres://alice:***@db.example:5433/grace?sslmode=require");
    let again = DatabaseUrl::parse(&url.to_string().replace(":***", "")).unwrap();
    assert_eq!(again.tls().mode, grace::configuration::SslMode::Require);
}
