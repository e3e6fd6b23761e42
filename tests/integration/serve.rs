//! `grace serve` as a process: it announces where it listens and stops
//! cleanly, with 0, on SIGTERM and on Ctrl-C — even once no one reads its logs.

use crate::helpers::grace;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `command` (a `grace serve`) on `database` with one operator token,
/// and returns it with the first line it printed (where it listens).
async fn started(mut command: Command, database: &crate::helpers::TestDatabase, token: &str) -> (Child, String) {
    let mut child = command
        .env("DATABASE_URL", database.url.to_string())
        .env("GRACE_TOKENS", format!("operator={token}"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await.unwrap().unwrap().unwrap();
    (child, listening)
}

/// Sends `stream` a byte every `every` until the server closes it (true) or
/// `give_up` has passed (false). An answer fails the test: none is due.
async fn trickled_until_closed(stream: &mut tokio::net::TcpStream, every: Duration, give_up: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let began = std::time::Instant::now();
    loop {
        if stream.write_all(b"z").await.is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout(every, stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => panic!("the server answered a request it never got"),
            Err(_) if began.elapsed() > give_up => return false,
            Err(_) => {}
        }
    }
}

/// Sends SIGTERM and returns the exit code.
async fn stopped(mut child: Child) -> Option<i32> {
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap().code()
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm_with_its_outbox_drained() {
    let database = crate::helpers::TestDatabase::migrated().await;
    let port = crate::helpers::closed_port();
    let mut command = grace();
    command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    let (child, listening) = started(command, &database, "sigterm-operator-token").await;
    assert_eq!(listening, format!("grace backend listening on http://127.0.0.1:{port}"));

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mission: serde_json::Value = http
        .post(format!("{base}/api/missions"))
        .bearer_auth("sigterm-operator-token")
        .json(&serde_json::json!({ "name": "sigterm" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for n in 0..10 {
        let chat = serde_json::json!({ "mission_id": mission["id"], "session_id": "s", "message": "hi",
                                        "idempotency_key": format!("sigterm-{n}") });
        let sent = http.post(format!("{base}/api/chat")).bearer_auth("sigterm-operator-token").json(&chat).send().await;
        assert_eq!(sent.unwrap().status(), 201);
    }
    assert_eq!(stopped(child).await, Some(0));
    let client = database.client().await;
    let pending: i64 = grace::backend::sequencer::log_lag(&client).await.unwrap();
    assert_eq!(pending, 0, "the sequencer drained the outbox before exiting");
    let events: i64 =
        client.query_one("SELECT count(*) FROM action_events WHERE log_seq IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(events, 10);
}

#[tokio::test]
async fn serve_whose_log_reader_has_gone_stops_cleanly_on_ctrl_c() {
    let database = crate::helpers::TestDatabase::migrated().await;
    let mut command = grace();
    command.args(["serve", "--listen", "127.0.0.1:0"]).stderr(Stdio::piped());
    let (mut child, _) = started(command, &database, "tee-operator-token").await;
    // `grace serve 2>&1 | tee serve.log`: one Ctrl-C ends `tee` too, and the
    // server's last log lines ("stopped") go into a closed pipe.
    drop(child.stderr.take());
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "a graceful stop, not a panic (101)");
}

#[tokio::test]
async fn serve_raises_its_open_files_limit_to_the_hard_limit() {
    let database = crate::helpers::TestDatabase::migrated().await;
    let grace_binary = env!("CARGO_BIN_EXE_grace");
    let mut command = Command::new("sh");
    command.args(["-c", &format!("ulimit -Sn 256 && exec {grace_binary} serve --listen 127.0.0.1:0")]);
    let (child, listening) = started(command, &database, "limits-operator-token").await;
    assert!(listening.starts_with("grace backend listening on"), "{listening}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id().unwrap())).unwrap();
    let open_files: Vec<&str> =
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().collect();
    assert_eq!(open_files[3], open_files[4], "soft limit raised to the hard one: {limits}");
    assert_ne!(open_files[3], "256", "{limits}");
    assert_eq!(stopped(child).await, Some(0));
}

#[tokio::test]
async fn past_its_connection_cap_serve_answers_503_and_silent_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let database = crate::helpers::TestDatabase::migrated().await;
    let port = crate::helpers::closed_port();
    let mut command = grace();
    command.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--max-connections", "8", "--idle-timeout", "2s"]);
    let (child, _) = started(command, &database, "connections-operator-token").await;
    let address = format!("127.0.0.1:{port}");

    // Seven silent connections and one that stops halfway through its headers.
    let mut held = Vec::new();
    for _ in 0..7 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled.write_all(b"GET /api/health HTTP/1.1\r\nHost: grace\r\n").await.unwrap();
    held.push(stalled);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut ninth = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), ninth.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"at_capacity""#), "{answer}");

    // After the idle timeout every held connection was closed by the server.
    for mut connection in held {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), connection.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "a silent connection is closed within the idle timeout");
    }
    let health = reqwest::get(format!("http://{address}/api/health")).await.unwrap();
    assert_eq!(health.status(), 200, "the places are free again");

    // A client trickling its headers a byte at a time, well inside the idle
    // timeout each time, is closed once it has sent for that long unanswered.
    let mut trickler = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started_at = std::time::Instant::now();
    let closed = trickled_until_closed(&mut trickler, Duration::from_millis(300), Duration::from_secs(10)).await;
    assert!(closed, "a trickling client was still connected after 10 s");
    assert!(started_at.elapsed() >= Duration::from_secs(2), "closed before the timeout: {:?}", started_at.elapsed());
    assert_eq!(stopped(child).await, Some(0));
}

#[tokio::test]
async fn a_request_head_trickled_past_the_header_timeout_is_closed_while_keep_alive_waits_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let database = crate::helpers::TestDatabase::migrated().await;
    let mut command = grace();
    command.args(["serve", "--listen", "127.0.0.1:0", "--idle-timeout", "60s", "--header-timeout", "2s"]);
    let (child, listening) = started(command, &database, "slowloris-operator-token").await;
    let address = listening.trim_start_matches("grace backend listening on http://").to_string();

    // A keep-alive connection quiet between requests for longer than the
    // header timeout: its next head is timed from its own first byte.
    // (A route the router answers alone: the database's speed is no part of it.)
    let mut kept = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = b"GET /api/no-such-route HTTP/1.1\r\nHost: grace\r\n\r\n";
    for _ in 0..2 {
        kept.write_all(request).await.unwrap();
        let mut answer = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), kept.read(&mut answer)).await.unwrap().unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 404"), "{}", String::from_utf8_lossy(&answer[..n]));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    // A slowloris: a head begun and trickled a byte every 0.2 s, each byte
    // well inside the idle timeout, is closed by the header timeout — long
    // before the 60 s the idle and answer bounds would allow.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nX-Slow: ").await.unwrap();
    let closed = trickled_until_closed(&mut slow, Duration::from_millis(200), Duration::from_secs(30)).await;
    assert!(closed, "a slowloris was still connected 30 s after its head began");
    assert_eq!(stopped(child).await, Some(0));
}

#[tokio::test]
async fn under_a_low_open_files_limit_serve_lowers_its_cap_says_so_and_refuses_past_it_with_503() {
    use tokio::io::AsyncReadExt;
    let database = crate::helpers::TestDatabase::migrated().await;
    let grace_binary = env!("CARGO_BIN_EXE_grace");
    let mut command = Command::new("sh");
    // Soft and hard: the process cannot raise it.
    command.args(["-c", &format!("ulimit -n 300 && exec {grace_binary} serve --listen 127.0.0.1:0 --pool-size 16")]);
    command.stderr(Stdio::piped());
    let (mut child, listening) = started(command, &database, "fd-cap-operator-token").await;
    let address = listening.trim_start_matches("grace backend listening on http://").to_string();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let said = tokio::spawn(async move {
        let mut said = Vec::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            said.push(line);
        }
        said.join("\n")
    });

    // 300 files, 16 for the pool, 128 kept: 156 connections; 20 more are refused.
    let mut held = Vec::new();
    for _ in 0..176 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let mut refused = 0;
    for connection in &mut held {
        let mut answer = Vec::new();
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), connection.read_to_end(&mut answer)).await {
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("at_capacity"), "{answer}");
            refused += 1;
        }
    }
    assert_eq!(refused, 20, "every connection past the cap of 156 answered 503, none before it");
    drop(held);
    let health = reqwest::get(format!("http://{address}/api/health")).await.unwrap();
    assert_eq!(health.status(), 200, "the places are free again");
    assert_eq!(stopped(child).await, Some(0));
    let said = said.await.unwrap();
    assert!(said.contains("holding at most 156 client connections, not 4096: the open-files limit is 300"), "{said}");
    assert!(!said.contains("accept failed"), "no descriptor ran out: {said}");
}
