//! What every integration test stands on: one PostgreSQL server per test binary
//! (DATABASE_URL's when set, otherwise a private cluster), a fresh database per
//! test cloned from a migrated template and dropped afterwards, and a runner for
//! the real `grace` binary.

use grace::configuration::DatabaseUrl;
use grace::db::{self, migrations, Database};
use std::path::{Path, PathBuf};
use std::process::Output;
use tokio::sync::OnceCell;
use tokio_postgres::Client;

/// The server all tests of this binary share. A private cluster held here is
/// never dropped; it stops by itself when the test process exits.
static SERVER: OnceCell<Database> = OnceCell::const_new();

async fn server_url() -> DatabaseUrl {
    SERVER
        .get_or_init(|| async {
            let configured = std::env::var("DATABASE_URL")
                .ok()
                .map(|raw| DatabaseUrl::parse(&raw).expect("DATABASE_URL for the tests must be valid"));
            Database::configured_or_private(configured).await.expect("a PostgreSQL server for the tests")
        })
        .await
        .url()
}

/// A database of its own for one test, dropped when the last handle to it is.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    admin: DatabaseUrl,
    name: String,
    /// Shared by handles to the same database (replicas in one test).
    handles: std::sync::Arc<()>,
}

impl TestDatabase {
    /// A database with every migration applied (a clone of the template).
    pub async fn migrated() -> Self {
        Self::migrated_on(server_url().await).await
    }

    /// The same, on another server (one a test stops and starts, say).
    pub async fn migrated_on(admin: DatabaseUrl) -> Self {
        let template = ensure_template(&admin).await;
        Self::create(admin, &format!("TEMPLATE {template}")).await
    }

    /// A database with nothing in it.
    pub async fn empty() -> Self {
        Self::create(server_url().await, "").await
    }

    /// A migrated database that `grace bootstrap` has seeded.
    pub async fn bootstrapped() -> Self {
        let database = Self::migrated().await;
        grace::bootstrap::bootstrap(&mut database.client().await).await.expect("bootstrap");
        database
    }

    async fn create(admin: DatabaseUrl, options: &str) -> Self {
        let name = format!("grace_test_{}", uuid::Uuid::new_v4().simple());
        let client = db::connect(&admin).await.expect("connect to the test server");
        client.batch_execute(&format!("CREATE DATABASE {name} {options}")).await.expect("create test database");
        Self { url: admin.with_database(&name), admin, name, handles: std::sync::Arc::default() }
    }

    /// Another handle to this database; it is dropped with the last handle.
    pub fn same_database(&self) -> Self {
        Self {
            url: self.url.clone(),
            admin: self.admin.clone(),
            name: self.name.clone(),
            handles: std::sync::Arc::clone(&self.handles),
        }
    }

    pub async fn client(&self) -> Client {
        db::connect(&self.url).await.expect("connect to the test database")
    }

    /// A proof of the log chain as the CLI runs one (from the last checkpoint).
    pub async fn chain_proof(&self) -> grace::immutable_log::ChainProof {
        let mut settings = grace::immutable_log::ChainSettings::default();
        grace::immutable_log::prove_database(&self.url, &mut settings, "tests").await.expect("prove the chain")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::sync::Arc::strong_count(&self.handles) > 1 {
            return;
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // short-lived thread with its own runtime does the async cleanup.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                let client = db::connect(&admin).await?;
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// The migrated template, made once per migration set. An advisory lock keeps
/// concurrent tests (and test binaries) from building it twice.
async fn ensure_template(admin: &DatabaseUrl) -> String {
    let template = format!("grace_template_{}", migrations::fingerprint());
    let client = db::connect(admin).await.expect("connect to the test server");
    client.execute("SELECT pg_advisory_lock(hashtext('grace.tests.template'))", &[]).await.unwrap();
    let exists: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", &[&template])
        .await
        .unwrap()
        .get(0);
    if !exists {
        let building = format!("{template}_building");
        // Left over if a test process died mid-build; separate statements, as
        // neither may run inside the implicit transaction of a multi-statement batch.
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {building}")).await.unwrap();
        client.batch_execute(&format!("CREATE DATABASE {building}")).await.unwrap();
        let mut template_client = db::connect(&admin.with_database(&building)).await.unwrap();
        migrations::apply(&mut template_client).await.expect("migrate the template");
        drop(template_client);
        // Renaming waits for the migration connection to close, and makes the
        // template appear complete or not at all.
        client.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}")).await.unwrap();
    }
    client.execute("SELECT pg_advisory_unlock(hashtext('grace.tests.template'))", &[]).await.unwrap();
    template
}

/// The real `grace` binary, with no database configured unless a test sets
/// one, and its default reports directory (where `health` and `verify` keep
/// their anchors) outside the source tree.
pub fn grace() -> tokio::process::Command {
    static REPORTS: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_grace"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("GRACE_ANCHORS")
        .env("GRACE_OUT", REPORTS.path())
        .env("RUST_LOG", "warn,grace=info")
        .kill_on_drop(true);
    command
}

/// Runs `command` with its stdout a pipe whose reader has already gone, as
/// in `grace openapi | head -1` once `head` has its line.
pub async fn into_a_closed_pipe(command: &mut tokio::process::Command) -> Ran {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    command.stdout(std::process::Stdio::from(writer)).output().await.unwrap().into()
}

pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

pub async fn run_grace(args: &[&str]) -> Ran {
    grace().args(args).output().await.expect("run grace").into()
}

/// A temp dir the `postgres` user can enter, to serve as TMPDIR for a `grace`
/// process whose private cluster a test wants to watch.
pub fn shared_temp_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

pub fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts relaying 127.0.0.1:`port` to `upstream` (host:port) from now on:
/// a service that comes up late at an address already handed out.
pub async fn relay_from(port: u16, upstream: String) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut near, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut far) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut near, &mut far).await;
                }
            });
        }
    })
}

/// Writes an event whose mission does not exist, as a superuser could: with
/// the table's triggers (its foreign keys' too) switched off and on again.
pub async fn plant_orphan_event(client: &Client, ghost_mission: uuid::Uuid) {
    client
        .batch_execute(&format!(
            "ALTER TABLE action_events DISABLE TRIGGER ALL;
             INSERT INTO action_events (event_type, mission_id, actor, resource, result)
             VALUES ('test.orphan', '{ghost_mission}', 'test', 'mission/{ghost_mission}', 'ok');
             ALTER TABLE action_events ENABLE TRIGGER ALL;"
        ))
        .await
        .unwrap();
}

/// Runs `sql` with the append-only trigger disabled, as a superuser could.
pub async fn tamper_with_log(client: &Client, sql: &str) {
    client
        .batch_execute(&format!(
            "ALTER TABLE immutable_log DISABLE TRIGGER immutable_log_append_only;
             {sql};
             ALTER TABLE immutable_log ENABLE ALWAYS TRIGGER immutable_log_append_only;"
        ))
        .await
        .unwrap();
}

/// Polls `check` until it yields a value, for at most `within`; panics saying
/// `what` never happened. For what becomes true asynchronously: a task the
/// runner completes, workers that register, a database that comes back.
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A TCP relay to a database whose link can be cut. After [`LinkCut::cut`] it
/// passes no more bytes either way yet keeps every socket open, and accepts
/// new connections without answering them: what a process sees when its
/// network goes down — nothing fails, everything goes silent.
pub struct LinkCut {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    relay: tokio::task::JoinHandle<()>,
}

impl LinkCut {
    pub async fn to(database: &DatabaseUrl) -> Self {
        let upstream = database.endpoint();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watched) = tokio::sync::watch::channel(false);
        let relay = tokio::spawn(async move {
            // Owned here, so aborting the relay closes every connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut near, _)) = listener.accept().await {
                let (upstream, mut cut) = (upstream.clone(), watched.clone());
                connections.spawn(async move {
                    if !*cut.borrow() {
                        let Ok(mut far) = tokio::net::TcpStream::connect(&upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut near, &mut far) => return,
                            _ = cut.wait_for(|cut| *cut) => {}
                        }
                        std::future::pending::<()>().await;
                    }
                    let _held = near;
                    std::future::pending::<()>().await
                });
            }
        });
        Self { port, cut, relay }
    }

    /// `database`, reached through this link.
    pub fn url(&self, database: &DatabaseUrl) -> String {
        let config = database.connect_config();
        let mut url = reqwest::Url::parse("postgres://127.0.0.1/").unwrap();
        url.set_username(config.get_user().unwrap()).unwrap();
        if let Some(password) = config.get_password() {
            url.set_password(Some(std::str::from_utf8(password).unwrap())).unwrap();
        }
        url.set_port(Some(self.port)).unwrap();
        url.set_path(database.database());
        url.to_string()
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }
}

impl Drop for LinkCut {
    fn drop(&mut self) {
        self.relay.abort();
    }
}
