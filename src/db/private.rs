//! A throwaway PostgreSQL cluster, so that Grace runs out of the box on a machine
//! that has the PostgreSQL binaries but no server and no configuration.
//!
//! `PrivatePostgres::start` runs `initdb` into a fresh temp dir and starts
//! `postgres` on a free loopback port with trust auth; dropping the value stops
//! the server and removes the directory. That covers normal exit, errors, panics
//! and Ctrl-C (the CLI turns the signal into an orderly return). For the exits no
//! destructor sees (SIGKILL, a test binary ending with the cluster in a static),
//! the server is started with a parent-death signal so it shuts itself down, and
//! the next start sweeps directories whose owning process is gone.
//!
//! PostgreSQL refuses to run as root, so as root both programs run as the
//! `postgres` user.

use crate::configuration::DatabaseUrl;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Prefix of the temp dirs; the owning process id follows it, so a sweep can
/// tell a live cluster from a leftover.
const DIR_PREFIX: &str = "grace-pg-";
/// The database created in the cluster for Grace to use.
const DATABASE: &str = "grace";
/// Fast start-up and a clean stop both take about a second; these bound the
/// unlucky cases so a broken installation fails instead of hanging.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// A free port can be taken by someone else between our probe and the bind;
/// a few retries make that race harmless.
const PORT_ATTEMPTS: usize = 5;
/// Lets a user choose which installed PostgreSQL to use (and tests hide them all).
pub const BINDIR_ENV: &str = "GRACE_PG_BINDIR";

#[derive(Debug, thiserror::Error)]
pub enum PrivateClusterError {
    #[error(
        "no database configured and no PostgreSQL server binaries found ({searched}). \
         Install them (Debian/Ubuntu: `apt-get install -y postgresql`), point {BINDIR_ENV} at their \
         directory, or set DATABASE_URL / --database-url to an existing database"
    )]
    NotInstalled { searched: String },
    #[error(
        "running as root, but PostgreSQL refuses to run as root and there is no `postgres` user to run it \
         as. Create one (`useradd --system postgres`) or set DATABASE_URL / --database-url"
    )]
    NoPostgresUser,
    #[error("could not start a private PostgreSQL: {0}")]
    Start(String),
}

impl PrivateClusterError {
    fn start(context: &str, detail: impl std::fmt::Display) -> Self {
        Self::Start(format!("{context}: {detail}"))
    }
}

/// A running private cluster. Dropping it stops the server and deletes its files.
pub struct PrivatePostgres {
    root: PathBuf,
    port: u16,
    postmaster: Option<Postmaster>,
    binaries: Binaries,
    owner: Owner,
}

impl PrivatePostgres {
    pub async fn start() -> Result<Self, PrivateClusterError> {
        let binaries = Binaries::locate()?;
        let owner = Owner::for_current_user()?;
        sweep_leftovers(&std::env::temp_dir());

        let root =
            std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&root).map_err(|e| PrivateClusterError::start("creating its directory", e))?;
        // From here on, dropping `cluster` removes whatever was made.
        let mut cluster = Self { root, port: 0, postmaster: None, binaries, owner };
        std::fs::set_permissions(&cluster.root, std::fs::Permissions::from_mode(0o700))
            .and_then(|_| cluster.owner.chown(&cluster.root))
            .map_err(|e| PrivateClusterError::start("preparing its directory", e))?;

        cluster.initdb().await?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port().map_err(|e| PrivateClusterError::start("finding a free port", e))?;
            match cluster.launch().await {
                Ok(()) => {
                    cluster.create_database().await?;
                    tracing::info!(url = %cluster.url(), dir = %cluster.root.display(), "private PostgreSQL started");
                    return Ok(cluster);
                }
                Err(LaunchError::PortTaken) => last_error = Some("the port was taken".to_string()),
                Err(LaunchError::Failed(e)) => return Err(e),
            }
        }
        Err(PrivateClusterError::start("no free port", last_error.unwrap_or_default()))
    }

    /// Stops the server but keeps its files and port, as a database outage
    /// would: clients lose their sessions and cannot reconnect until `resume`.
    pub fn pause(&mut self) {
        if let Some(postmaster) = self.postmaster.take() {
            postmaster.stop();
        }
    }

    /// Starts the server again after `pause`, on the same port with the same data.
    pub async fn resume(&mut self) -> Result<(), PrivateClusterError> {
        match self.launch().await {
            Ok(()) => Ok(()),
            Err(LaunchError::PortTaken) => Err(PrivateClusterError::start("resuming", "its port was taken meanwhile")),
            Err(LaunchError::Failed(e)) => Err(e),
        }
    }

    /// The `grace` database on this cluster, as the `postgres` superuser.
    pub fn url(&self) -> DatabaseUrl {
        self.superuser_url().with_database(DATABASE)
    }

    /// The directory holding the data, the socket and the server log.
    pub fn directory(&self) -> &Path {
        &self.root
    }

    fn superuser_url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", self.port))
            .expect("a loopback URL is well formed")
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn server_log(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    async fn initdb(&self) -> Result<(), PrivateClusterError> {
        let mut command = tokio::process::Command::new(self.binaries.dir.join("initdb"));
        command
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ])
            .arg("--pgdata")
            .arg(self.data_dir())
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        self.owner.apply(command.as_std_mut());
        let output = command.output().await.map_err(|e| PrivateClusterError::start("running initdb", e))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(PrivateClusterError::start("initdb failed", stderr.trim()));
        }
        Ok(())
    }

    /// Starts the server and waits until it accepts connections.
    async fn launch(&mut self) -> Result<(), LaunchError> {
        let log = std::fs::File::create(self.server_log())
            .map_err(|e| PrivateClusterError::start("creating the server log", e))?;
        let mut command = std::process::Command::new(self.binaries.dir.join("postgres"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(&self.root)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            // A throwaway cluster needs no crash durability; tests and the scenario
            // run several times faster without fsync. Each `grace worker` holds two
            // connections (its statements, its LISTEN) and a third while it uploads:
            // 1,000 lets a few hundred workers join one run on this machine.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=1000"])
            // PostgreSQL's defaults (128 MB of buffers, a checkpoint per GB of WAL)
            // suit a small shared server. Under a steady load the mission's random-key
            // indexes outgrow 128 MB within minutes, and then sessions read pages back
            // and write dirty ones out themselves on every few requests, and a
            // checkpoint starts every 3–4 minutes.
            .args(["-c", &format!("shared_buffers={}MB", shared_buffers_mb()), "-c", "max_wal_size=4GB"])
            // A new 16 MB WAL segment is written full of zeros by the session that
            // needs it, holding the WAL write lock (2-3 % of a soak's samples had
            // sessions waiting on IO:WALInitWrite); without fsync the zeros buy nothing.
            .args(["-c", "wal_init_zero=off"])
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| PrivateClusterError::start("opening the server log", e))?)
            .stderr(log)
            // Its own process group: a terminal's Ctrl-C goes to Grace, which then
            // stops the server in order, rather than to both at once.
            .process_group(0);
        self.owner.apply(&mut command);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                // SIGINT is PostgreSQL's "fast shutdown": if Grace dies without running
                // its destructors, the server still stops cleanly by itself.
                nix::sys::prctl::set_pdeathsig(Signal::SIGINT).map_err(io::Error::from)
            });
        }
        let postmaster = Postmaster::spawn(command).map_err(|e| PrivateClusterError::start("running postgres", e))?;
        self.postmaster = Some(postmaster);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if crate::db::connect(&self.superuser_url()).await.is_ok() {
                return Ok(());
            }
            let exited = self.postmaster.as_ref().is_some_and(Postmaster::has_exited);
            if exited || Instant::now() > deadline {
                if let Some(postmaster) = self.postmaster.take() {
                    postmaster.stop();
                }
                let log = std::fs::read_to_string(self.server_log()).unwrap_or_default();
                if log.contains("could not bind") || log.contains("Address already in use") {
                    return Err(LaunchError::PortTaken);
                }
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let reason = if exited { "postgres exited" } else { "postgres did not accept connections in time" };
                let detail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(LaunchError::Failed(PrivateClusterError::start(reason, detail)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_database(&self) -> Result<(), PrivateClusterError> {
        let client =
            crate::db::connect(&self.superuser_url()).await.map_err(|e| PrivateClusterError::start("connecting", e))?;
        client
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .map_err(|e| PrivateClusterError::start("creating the grace database", e))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Some(postmaster) = self.postmaster.take() {
            postmaster.stop();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            tracing::warn!(dir = %self.root.display(), error = %e, "could not remove the private PostgreSQL directory");
        } else {
            tracing::info!(dir = %self.root.display(), "private PostgreSQL stopped and removed");
        }
    }
}

enum LaunchError {
    PortTaken,
    Failed(PrivateClusterError),
}

impl From<PrivateClusterError> for LaunchError {
    fn from(e: PrivateClusterError) -> Self {
        Self::Failed(e)
    }
}

/// The running `postgres` process. It is spawned and reaped by a dedicated
/// thread because the parent-death signal fires when the *thread* that forked
/// the child ends: this thread lives exactly as long as the server.
struct Postmaster {
    pid: Pid,
    keeper: JoinHandle<io::Result<ExitStatus>>,
}

impl Postmaster {
    fn spawn(mut command: std::process::Command) -> io::Result<Self> {
        let (started, pid) = std::sync::mpsc::channel();
        let keeper = std::thread::Builder::new().name("grace-postmaster".into()).spawn(move || {
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = started.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let _ = started.send(Ok(child.id()));
            child.wait()
        })?;
        let pid = pid.recv().map_err(|_| io::Error::other("postmaster keeper thread died"))??;
        Ok(Self { pid: Pid::from_raw(pid as i32), keeper })
    }

    fn has_exited(&self) -> bool {
        self.keeper.is_finished()
    }

    /// Fast shutdown (SIGINT): disconnects clients, then exits cleanly. Escalates
    /// to SIGKILL if the server does not stop in time.
    fn stop(self) {
        let _ = kill(self.pid, Signal::SIGINT);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !self.keeper.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.keeper.is_finished() {
            tracing::warn!(pid = %self.pid, "private PostgreSQL did not stop in time; killing it");
            let _ = kill(self.pid, Signal::SIGKILL);
        }
        let _ = self.keeper.join();
    }
}

/// Where initdb and postgres live.
struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// `GRACE_PG_BINDIR` if set (and only it); otherwise PATH, then
    /// `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
    fn locate() -> Result<Self, PrivateClusterError> {
        let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
        let (candidates, searched) = match std::env::var_os(BINDIR_ENV) {
            Some(dir) => (vec![PathBuf::from(&dir)], format!("{BINDIR_ENV}={}", Path::new(&dir).display())),
            None => {
                let mut dirs: Vec<PathBuf> =
                    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
                dirs.extend(pg_config_bindir());
                dirs.extend(debian_bindirs());
                (dirs, "PATH, `pg_config --bindir`, /usr/lib/postgresql/*/bin".to_string())
            }
        };
        candidates
            .into_iter()
            .find(|dir| has_server(dir))
            .map(|dir| Self { dir })
            .ok_or(PrivateClusterError::NotInstalled { searched })
    }
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = std::process::Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

/// Debian and Ubuntu install each major version under /usr/lib/postgresql/N/bin;
/// the newest comes first.
fn debian_bindirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Who the cluster's processes run as: ourselves, or `postgres` when we are root.
struct Owner {
    switch_to: Option<User>,
}

impl Owner {
    fn for_current_user() -> Result<Self, PrivateClusterError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(Self { switch_to: None });
        }
        match User::from_name("postgres") {
            Ok(Some(user)) => Ok(Self { switch_to: Some(user) }),
            _ => Err(PrivateClusterError::NoPostgresUser),
        }
    }

    fn apply(&self, command: &mut std::process::Command) {
        if let Some(user) = &self.switch_to {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            command.env("HOME", &user.dir).env("USER", &user.name).env("LOGNAME", &user.name);
        }
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        match &self.switch_to {
            Some(user) => nix::unistd::chown(path, Some(user.uid), Some(user.gid)).map_err(io::Error::from),
            None => Ok(()),
        }
    }
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Removes cluster directories left by processes that no longer exist (killed
/// before their destructors ran). A directory whose server still runs is kept.
fn sweep_leftovers(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner_pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let server_pid = std::fs::read_to_string(entry.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        if !is_alive(owner_pid) && !server_pid.is_some_and(is_alive) {
            tracing::info!(dir = %entry.path().display(), "removing a leftover private PostgreSQL directory");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn is_alive(pid: i32) -> bool {
    // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
    !matches!(kill(Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH))
}

/// A quarter of the machine's memory for the private cluster's buffers, as
/// PostgreSQL's tuning guide suggests for a dedicated server, between its
/// default 128 MB and 1 GB (it shares the machine with the backend and the load).
fn shared_buffers_mb() -> u64 {
    let quarter = nix::sys::sysinfo::sysinfo().map_or(0, |info| info.ram_total() / 4 / (1 << 20));
    quarter.clamp(128, 1024)
}
