//! Shared by the tests that run the real `fenrir` binary: start it on a free loopback port
//! over a data directory, a tiny HTTP/1.1 client over `std::net::TcpStream`, Loki push
//! bodies and `query_range` reading, and a seeded random source.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running `fenrir` process. Killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

impl Server {
    /// Starts the binary on `data_dir` with `extra_yaml` appended to a config that sets the
    /// listen address, the data directory and quiet logs, and waits until `/ready` answers
    /// 200. Panics (failing the test) with the server's log when it does not come up.
    pub fn start(data_dir: &Path, extra_yaml: &str) -> Server {
        let port = free_port();
        let config = data_dir.join(format!("fenrir-{port}.yaml"));
        let yaml = format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  log_level: warn\n\
             common:\n  path_prefix: {}\n{extra_yaml}",
            data_dir.join("data").display()
        );
        std::fs::write(&config, yaml).expect("write config");
        let log = data_dir.join(format!("fenrir-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_fenrir"))
            .arg(format!("-config.file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn the fenrir binary");
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        server.wait_ready(Duration::from_secs(30));
        server
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "fenrir exited before it was ready ({status}):\n{}",
                    self.log_text()
                );
            }
            if let Ok(resp) = request(self.addr, "GET", "/ready", &[], b"") {
                if resp.status == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "fenrir not ready on {} after {timeout:?}:\n{}",
                    self.addr,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status and body of an HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("non-UTF-8 headers"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        let len = length.unwrap_or(rest.len());
        if rest.len() < len {
            return Err(invalid("body shorter than Content-Length"));
        }
        rest[..len].to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("bad chunk header"))?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| invalid("chunk"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(invalid("truncated chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A v1 JSON push body of one stream.
pub fn push_body(labels: &[(&str, &str)], entries: &[(i64, String)]) -> Vec<u8> {
    let stream: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let values: Vec<serde_json::Value> = entries
        .iter()
        .map(|(ts, line)| serde_json::json!([ts.to_string(), line]))
        .collect();
    serde_json::json!({"streams": [{"stream": stream, "values": values}]})
        .to_string()
        .into_bytes()
}

/// `POST /loki/api/v1/push` with a JSON body.
pub fn push(addr: SocketAddr, body: &[u8]) -> std::io::Result<Response> {
    request(
        addr,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body,
    )
}

/// Percent-encodes a query parameter value.
pub fn encode_param(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every line `query_range` returns for `query` over `[start, end)` (at most `limit`), as
/// (stream labels as JSON, ts, line). Panics on any answer but 200.
pub fn query_lines(
    addr: SocketAddr,
    query: &str,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
) -> Vec<(String, i64, String)> {
    let path = format!(
        "/loki/api/v1/query_range?query={}&start={start_ns}&end={end_ns}&limit={limit}&direction=forward",
        encode_param(query)
    );
    let resp = request(addr, "GET", &path, &[], b"").expect("query_range request");
    assert_eq!(resp.status, 200, "query_range: {}", resp.text());
    let json: serde_json::Value = serde_json::from_slice(&resp.body).expect("query_range json");
    let mut out = Vec::new();
    for stream in json["data"]["result"].as_array().expect("result array") {
        let labels = stream["stream"].to_string();
        for value in stream["values"].as_array().expect("values") {
            let ts = value[0].as_str().and_then(|t| t.parse().ok()).expect("ts");
            let line = value[1].as_str().expect("line").to_owned();
            out.push((labels.clone(), ts, line));
        }
    }
    out
}

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `FENRIR_TEST_SEED` when set, else from the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("FENRIR_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_ns() as u64 | 1);
        eprintln!("{test}: FENRIR_TEST_SEED={seed}");
        Rng::seeded(seed)
    }

    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
