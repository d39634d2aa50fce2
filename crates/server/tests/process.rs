//! The real `fenrir` binary: graceful shutdown on SIGTERM (exit 0, heads flushed to the
//! chunk store), and a WAL that cannot grow (a file-size limit set on the running process
//! with `prlimit`, which fails writes with EFBIG as a full disk fails them with ENOSPC):
//! 503 on push, nothing half-stored, and recovery once the limit is lifted. A data, WAL
//! or chunks directory that cannot be created stops the start with a one-line error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts `fenrir` on a free port with its data under `dir` and waits for `/ready`.
    fn start(dir: &Path) -> Server {
        Server::start_with_grace(dir, "5s")
    }

    fn start_with_grace(dir: &Path, grace: &str) -> Server {
        let port = free_port();
        let config = dir.join("fenrir.yaml");
        std::fs::write(
            &config,
            format!(
                "server:\n  http_listen_port: {port}\n  graceful_shutdown_timeout: {grace}\ncommon:\n  path_prefix: {}\n",
                dir.join("data").display()
            ),
        )
        .expect("write config");
        let log = dir.join(format!("fenrir-{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_fenrir"))
            .arg(format!("-config.file={}", config.display()))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().expect("log file")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start fenrir");
        let mut server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = server.try_request("GET", "/ready", None, b"") {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("fenrir exited at start with {status}: {}", server.logs());
            }
            assert!(
                Instant::now() < deadline,
                "fenrir not ready: {}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response: {text:?}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    fn request(&self, method: &str, path: &str, ct: Option<&str>, body: &[u8]) -> (u16, String) {
        self.try_request(method, path, ct, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()))
    }

    fn push(&self, lines: &[(i64, &str)]) -> (u16, String) {
        let values: Vec<String> = lines
            .iter()
            .map(|(ts, line)| format!("[\"{ts}\",\"{line}\"]"))
            .collect();
        let body = format!(
            "{{\"streams\":[{{\"stream\":{{\"app\":\"a\"}},\"values\":[{}]}}]}}",
            values.join(",")
        );
        self.request(
            "POST",
            "/loki/api/v1/push",
            Some("application/json"),
            body.as_bytes(),
        )
    }

    /// The query_range answer for `{app="a"}` over the last hour.
    fn query(&self) -> String {
        let now = now_ns();
        let path = format!(
            "/loki/api/v1/query_range?query=%7Bapp%3D%22a%22%7D&start={}&end={}&limit=1000",
            now - 3_600_000_000_000,
            now + 60_000_000_000
        );
        let (status, body) = self.request("GET", &path, None, b"");
        assert_eq!(status, 200, "{body}");
        body
    }

    fn send_sigterm(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success());
    }

    /// Sends SIGTERM and waits for the process to end.
    fn terminate(self) -> (ExitStatus, String) {
        self.send_sigterm();
        self.wait_exit()
    }

    fn wait_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, self.logs());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("fenrir did not stop after SIGTERM: {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    /// SIGKILL: no flush, no goodbye.
    fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached when a test failed half-way: never leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` (or none) from a kept-alive
/// connection; returns the status.
fn read_response(s: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read response");
        assert!(
            n == 1,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("content-length"));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read body");
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn sigterm_flushes_heads_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let base = now_ns() - 60_000_000_000;
    let (status, body) = server.push(&[(base, "first line"), (base + 1, "second line")]);
    assert_eq!(status, 204, "{body}");
    assert!(files_under(&dir.path().join("data/chunks")).is_empty());

    let (status, logs) = server.terminate();
    assert!(status.success(), "exit {status}: {logs}");
    assert!(logs.contains("SIGTERM received"), "{logs}");
    let segments: Vec<_> = files_under(&dir.path().join("data/chunks"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(segments.len(), 1, "one segment object: {logs}");

    // Without the WAL, the data can only come from the flushed chunks.
    std::fs::remove_dir_all(dir.path().join("data/wal")).expect("remove wal");
    let server = Server::start(dir.path());
    let answer = server.query();
    assert!(
        answer.contains("first line") && answer.contains("second line"),
        "{answer}"
    );
    let (status, logs) = server.terminate();
    assert!(status.success(), "exit {status}: {logs}");
}

#[test]
fn a_wal_that_cannot_grow_gives_503_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let base = now_ns() - 60_000_000_000;
    let (status, body) = server.push(&[(base, "before the limit")]);
    assert_eq!(status, 204, "{body}");

    // No file of the process may grow any more: the next WAL append fails.
    let pid = server.child.id().to_string();
    let limit = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=4096:unlimited"])
        .status()
        .expect("run prlimit");
    assert!(limit.success(), "prlimit failed");
    let wal_size: u64 = files_under(&dir.path().join("data/wal"))
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        wal_size <= 4096,
        "the WAL must already be at the limit's scale"
    );
    let big = "x".repeat(8192);
    let (status, body) = server.push(&[(base + 1, &big)]);
    assert_eq!(status, 503, "{body}\n{}", server.logs());
    assert!(
        body.starts_with("push not stored, retry later: wal: wal append failed: File too large"),
        "{body}"
    );
    // Still alive and still refusing while the limit holds; reads keep working.
    let (status, _) = server.push(&[(base + 2, &big)]);
    assert_eq!(status, 503);
    assert!(server.query().contains("before the limit"));

    // Space returns: the same pushes go through and nothing was half-stored meanwhile.
    let lifted = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited:unlimited"])
        .status()
        .expect("run prlimit");
    assert!(lifted.success());
    let (status, body) = server.push(&[(base + 1, &big), (base + 3, "after the limit")]);
    assert_eq!(status, 204, "{body}");
    let answer = server.query();
    assert_eq!(answer.matches(&big).count(), 1, "{answer}");
    assert!(answer.contains("after the limit"));

    // Killed without a flush, the WAL alone brings everything back: the failed writes
    // left no torn record behind.
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
    server.kill();
    let server = Server::start(dir.path());
    assert!(!server.logs().contains("torn"), "{}", server.logs());
    let answer = server.query();
    assert!(answer.contains("before the limit") && answer.contains("after the limit"));
    assert_eq!(answer.matches(&big).count(), 1);
    let (status, logs) = server.terminate();
    assert!(status.success(), "exit {status}: {logs}");
}

/// A push whose body is still arriving when SIGTERM comes is finished and stored.
#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // One whole request first, so the connection is surely accepted.
    conn.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut conn), 200);
    let ts = now_ns() - 60_000_000_000;
    let body = format!(
        "{{\"streams\":[{{\"stream\":{{\"app\":\"a\"}},\"values\":[[\"{ts}\",\"in flight\"]]}}]}}"
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    conn.write_all(
        format!(
            "POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .expect("write");
    conn.write_all(first).expect("write");
    // Let the server read the headers: the request is in flight.
    std::thread::sleep(Duration::from_millis(300));
    server.send_sigterm();
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(rest).expect("write");
    assert_eq!(read_response(&mut conn), 204, "{}", server.logs());
    let (status, logs) = server.wait_exit();
    assert!(status.success(), "exit {status}: {logs}");

    std::fs::remove_dir_all(dir.path().join("data/wal")).expect("remove wal");
    let server = Server::start(dir.path());
    assert!(server.query().contains("in flight"));
    let (status, logs) = server.terminate();
    assert!(status.success(), "exit {status}: {logs}");
}

/// A request that never finishes does not hold the server past the grace period.
#[test]
fn sigterm_stops_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with_grace(dir.path(), "1s");
    let mut conn = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    conn.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut conn), 200);
    conn.write_all(
        b"POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(300));
    server.send_sigterm();
    let (status, logs) = server.wait_exit();
    assert!(status.success(), "exit {status}: {logs}");
    assert!(
        logs.contains("requests still running after server.graceful_shutdown_timeout"),
        "{logs}"
    );
}

/// Runs `fenrir` with `yaml` until it exits by itself; returns its status and stderr.
fn run_to_exit(dir: &Path, yaml: &str) -> (ExitStatus, String) {
    let config = dir.join("fenrir.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fenrir"))
        .arg(format!("-config.file={}", config.display()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fenrir");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fenrir kept running with an unusable directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A path below a regular file cannot be created (ENOTDIR, whoever runs the test): the
/// data, WAL and chunks directories each stop the start with exit 1 and one line naming
/// the path, never a panic.
#[test]
fn an_unusable_directory_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write file");
    let bad = file.join("below");
    let good = dir.path().join("data");
    let port = free_port();
    let base = format!("server:\n  http_listen_port: {port}\n");
    let cases = [
        (
            "data directory",
            format!("{base}common:\n  path_prefix: {}\n", bad.display()),
        ),
        (
            "wal directory",
            format!(
                "{base}common:\n  path_prefix: {}\ningester:\n  wal:\n    dir: {}\n",
                good.display(),
                bad.display()
            ),
        ),
        (
            "chunks directory",
            format!(
                "{base}common:\n  path_prefix: {}\nstorage_config:\n  filesystem:\n    directory: {}\n",
                good.display(),
                bad.display()
            ),
        ),
    ];
    for (what, yaml) in cases {
        let (status, stderr) = run_to_exit(dir.path(), &yaml);
        assert_eq!(status.code(), Some(1), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("fenrir: {what} {}", bad.display()))
                && lines[0].contains("Not a directory"),
            "{what}: {stderr}"
        );
    }
}
