//! A real S3 server for tests: `FENRIR_TEST_S3_ENDPOINT` when set (`.ci/run` starts one),
//! else a `moto_server` this process starts on loopback and that dies with it. A test that
//! gets neither fails with a message saying how to get one; it never passes silently.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::s3::{S3Options, S3Store, MIN_PART_SIZE};

/// The variable naming an S3 endpoint for tests, e.g. `http://127.0.0.1:5055`.
pub const S3_TEST_ENDPOINT_VAR: &str = "FENRIR_TEST_S3_ENDPOINT";

/// The moto_server this process started: its shell wrapper kills it when our end of the
/// pipe closes, which happens however this process exits.
struct Moto {
    endpoint: String,
    _wrapper: Mutex<(Child, ChildStdin)>,
}

static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();

/// The endpoint of the S3 server tests use. Panics with instructions when there is none.
pub async fn s3_test_endpoint() -> String {
    if let Ok(endpoint) = std::env::var(S3_TEST_ENDPOINT_VAR) {
        let endpoint = endpoint.trim().to_owned();
        let check = endpoint.clone();
        tokio::task::spawn_blocking(move || answers_http(&check, Duration::from_secs(10)))
            .await
            .expect("probe task")
            .unwrap_or_else(|e| panic!("{S3_TEST_ENDPOINT_VAR}={endpoint} does not answer: {e}"));
        return endpoint;
    }
    let started = tokio::task::spawn_blocking(|| {
        MOTO.get_or_init(start_moto)
            .as_ref()
            .map(|m| m.endpoint.clone())
            .map_err(Clone::clone)
    })
    .await
    .expect("moto start task");
    started.unwrap_or_else(|e| {
        panic!(
            "no S3 server for this test: {S3_TEST_ENDPOINT_VAR} is unset and moto_server could not be started ({e}); run `python3 -m pip install -r tests/requirements.txt` or point {S3_TEST_ENDPOINT_VAR} at an S3-compatible server"
        )
    })
}

/// Options for `bucket` at `endpoint` as tests use them: fixed dummy credentials, path
/// style, the smallest part size S3 allows and quick retries.
pub fn s3_test_options(endpoint: &str, bucket: &str) -> S3Options {
    S3Options {
        bucket: bucket.to_owned(),
        endpoint: endpoint.to_owned(),
        region: "us-east-1".into(),
        access_key_id: "fenrir-test".into(),
        secret_access_key: "fenrir-test-secret".into(),
        force_path_style: true,
        insecure: true,
        part_size: MIN_PART_SIZE,
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(30),
        ..S3Options::default()
    }
}

/// A bucket name no other test (in this or a parallel process) uses.
pub fn unique_bucket_name(hint: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let hint: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    let name = format!(
        "fenrir-{hint}-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    name.chars().take(63).collect()
}

/// A store on a new, empty bucket of the test S3 server.
pub async fn s3_test_store(hint: &str) -> S3Store {
    let endpoint = s3_test_endpoint().await;
    let store = S3Store::new(s3_test_options(&endpoint, &unique_bucket_name(hint)))
        .await
        .expect("s3 test client");
    store
        .create_bucket()
        .await
        .unwrap_or_else(|e| panic!("creating test bucket at {endpoint}: {e}"));
    store
}

fn start_moto() -> Result<Moto, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let log = std::env::temp_dir().join(format!("fenrir-moto-{}-{port}.log", std::process::id()));
    // The wrapper waits for EOF on stdin, which comes when this process exits.
    // `python3 -m moto.server` as .ci/run does, wherever pip put the scripts; else the
    // `moto_server` script on PATH.
    let script = r#"if python3 -c 'import moto.server' >/dev/null 2>&1; then
  python3 -m moto.server -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
elif command -v moto_server >/dev/null 2>&1; then
  moto_server -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
else
  exit 127
fi
pid=$!
read -r _
kill "$pid" 2>/dev/null
wait "$pid""#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("fenrir-moto")
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(match status.code() {
                Some(127) => {
                    "neither python3 -m moto.server nor moto_server is available".to_string()
                }
                _ => format!("moto_server exited ({status}); see {}", log.display()),
            });
        }
        if answers_http(&endpoint, Duration::from_millis(500)).is_ok() {
            return Ok(Moto {
                endpoint,
                _wrapper: Mutex::new((child, stdin)),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "moto_server did not answer within 30s; see {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether something at `endpoint` (`http://host:port`) answers an HTTP request.
fn answers_http(endpoint: &str, timeout: Duration) -> Result<(), String> {
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/');
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {authority}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    if &head == b"HTTP/" {
        Ok(())
    } else {
        Err("not an HTTP server".into())
    }
}
