//! The private cluster used when no database is configured: it works, and it is
//! gone when the process ends — normally or by Ctrl-C.

use crate::helpers::{entries, grace, shared_temp_dir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn without_a_database_url_a_private_cluster_is_used_and_removed_after_success_or_failure() {
    let tmp = shared_temp_dir();
    let output = grace().args(["bootstrap"]).env("TMPDIR", tmp.path()).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("bootstrapped; recorded as immutable log entry 1"), "{stdout}");
    assert!(stdout.contains("postgres://postgres@127.0.0.1:"), "{stdout}");
    assert_eq!(entries(tmp.path()), Vec::<std::path::PathBuf>::new(), "the cluster's directory is removed");
}

#[tokio::test]
async fn db_up_serves_until_sigint_then_stops_and_removes_the_cluster() {
    let tmp = shared_temp_dir();
    let mut child = grace().args(["db", "up"]).env("TMPDIR", tmp.path()).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url_line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = grace::configuration::DatabaseUrl::parse(url_line.strip_prefix("DATABASE_URL=").unwrap()).unwrap();
    let dir_line = lines.next_line().await.unwrap().unwrap();
    let dir = std::path::PathBuf::from(dir_line.strip_prefix("GRACE_PRIVATE_PG_DIR=").unwrap());
    assert!(dir.starts_with(tmp.path()), "{dir:?}");

    let client = grace::db::connect(&url).await.expect("the private cluster accepts connections");
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);

    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!dir.exists(), "the cluster's directory is removed");
    assert!(entries(tmp.path()).is_empty());
    assert!(grace::db::connect(&url).await.is_err(), "the server is stopped");
    assert!(client.query_one("SELECT 1", &[]).await.is_err(), "its sessions are gone");
}

#[tokio::test]
async fn without_postgres_binaries_the_command_exits_2_saying_what_to_install() {
    let ran: crate::helpers::Ran =
        grace().args(["bootstrap"]).env("GRACE_PG_BINDIR", "/nonexistent/pg/bin").output().await.unwrap().into();
    assert_eq!(ran.code, Some(2), "{}", ran.all_output());
    assert!(ran.stderr.contains("no PostgreSQL server binaries found"), "{}", ran.stderr);
    assert!(ran.stderr.contains("apt-get install -y postgresql"), "{}", ran.stderr);
    assert!(ran.stderr.contains("DATABASE_URL"), "{}", ran.stderr);
}
