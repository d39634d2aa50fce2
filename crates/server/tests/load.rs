//! Concurrent load on the real binary over loopback: writers push, readers run log and
//! metric queries and label lookups, and flushes run, all at once for a bounded time. No
//! request may fail, and afterwards every acknowledged entry is there exactly once.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{encode_param, now_ns, push, push_body, query_lines, request, Rng, Server};

const CONFIG: &str = "\
ingester:
  chunk_target_size: 64KB
  flush_check_period: 1s
limits_config:
  max_entries_limit_per_query: 10000000
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
";

const WRITERS: usize = 4;
const READERS: usize = 3;
const DURATION: Duration = Duration::from_secs(10);
const BATCH: usize = 100;

/// Pushes batches until `stop`; returns (acknowledged entries, pushes).
fn writer(id: usize, addr: SocketAddr, base_ns: i64, stop: Arc<AtomicBool>) -> (usize, usize) {
    let label = id.to_string();
    let mut next = 0i64;
    let mut pushes = 0;
    while !stop.load(Ordering::SeqCst) {
        let entries: Vec<(i64, String)> = (next..next + BATCH as i64)
            .map(|i| {
                (
                    base_ns + i * 1000,
                    format!("level=info writer={id} seq={i} msg=\"load test entry\""),
                )
            })
            .collect();
        let resp = push(
            addr,
            &push_body(&[("job", "load"), ("writer", &label)], &entries),
        )
        .expect("push request");
        assert_eq!(resp.status, 204, "push: {}", resp.text());
        next += BATCH as i64;
        pushes += 1;
    }
    (next as usize, pushes)
}

/// Runs a mix of read requests until `stop`; returns (requests, log lines read).
fn reader(addr: SocketAddr, base_ns: i64, stop: Arc<AtomicBool>, seed: u64) -> (usize, usize) {
    let mut rng = Rng::seeded(seed);
    let (mut requests, mut lines) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        let end = now_ns() + 1_000_000_000;
        let writer = rng.range(0, WRITERS as u64);
        let path = match rng.range(0, 4) {
            0 => format!(
                "/loki/api/v1/query_range?query={}&start={base_ns}&end={end}&limit=500&direction=backward",
                encode_param(&format!(r#"{{job="load", writer="{writer}"}} |= "seq""#))
            ),
            // The last 10 seconds: a dashboard's view, not a scan of everything.
            1 => format!(
                "/loki/api/v1/query_range?query={}&start={}&end={end}&step=1s",
                encode_param(r#"sum by (writer) (count_over_time({job="load"} | logfmt [10s]))"#),
                end - 10_000_000_000
            ),
            2 => format!("/loki/api/v1/label/writer/values?start={base_ns}&end={end}"),
            _ => format!(
                "/loki/api/v1/series?match[]={}&start={base_ns}&end={end}",
                encode_param(r#"{job="load"}"#)
            ),
        };
        let resp = request(addr, "GET", &path, &[], b"").expect("read request");
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        let json: serde_json::Value = serde_json::from_slice(&resp.body).expect("json");
        if json["data"]["resultType"] == "streams" {
            for s in json["data"]["result"].as_array().expect("result") {
                lines += s["values"].as_array().map_or(0, Vec::len);
            }
        }
        requests += 1;
    }
    (requests, lines)
}

#[test]
fn writers_and_readers_concurrently_without_errors_or_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), CONFIG);
    let addr = server.addr;
    let mut rng = Rng::from_env("load");
    let base_ns = now_ns() - 60_000_000_000;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            let stop = stop.clone();
            thread::spawn(move || writer(id, addr, base_ns, stop))
        })
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (stop, seed) = (stop.clone(), rng.next_u64());
            thread::spawn(move || reader(addr, base_ns, stop, seed))
        })
        .collect();
    let flusher = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut flushes = 0;
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1500));
                let resp = request(addr, "POST", "/flush", &[], b"").expect("flush request");
                assert_eq!(resp.status, 204, "flush: {}", resp.text());
                flushes += 1;
            }
            flushes
        })
    };
    thread::sleep(DURATION);
    stop.store(true, Ordering::SeqCst);
    let load_time = started.elapsed();
    let written: Vec<(usize, usize)> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let (reads, lines_read) = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let flushes = flusher.join().expect("flusher");

    let got = query_lines(
        addr,
        r#"{job="load"}"#,
        base_ns - 1,
        now_ns() + 60_000_000_000,
        10_000_000,
    );
    let mut per_writer: HashMap<String, Vec<i64>> = HashMap::new();
    for (labels, ts, _) in got.iter() {
        let labels: serde_json::Value = serde_json::from_str(labels).expect("labels");
        let w = labels["writer"].as_str().expect("writer label").to_owned();
        per_writer.entry(w).or_default().push(*ts);
    }
    for (id, (count, _)) in written.iter().enumerate() {
        let mut ts = per_writer.remove(&id.to_string()).unwrap_or_default();
        ts.sort_unstable();
        let expected: Vec<i64> = (0..*count as i64).map(|i| base_ns + i * 1000).collect();
        assert!(
            ts == expected,
            "writer {id}: {} entries acknowledged, {} returned",
            expected.len(),
            ts.len()
        );
    }
    let entries: usize = written.iter().map(|w| w.0).sum();
    let pushes: usize = written.iter().map(|w| w.1).sum();
    eprintln!(
        "load: {WRITERS} writers, {READERS} readers, {flushes} flushes over {load_time:.1?}: \
         {entries} entries in {pushes} pushes ({:.0} entries/s), {reads} read requests \
         ({lines_read} lines read), then all {} entries read back exactly once",
        entries as f64 / load_time.as_secs_f64(),
        got.len()
    );
}
