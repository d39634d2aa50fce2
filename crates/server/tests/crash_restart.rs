//! Crash and restart: the real `fenrir` binary is SIGKILLed at random points while clients
//! push and flushes run, then restarted on the same data directory, many times. Every entry
//! acknowledged with 204 must come back from `query_range` exactly once, and nothing that
//! was never pushed may appear; after a final flush and after an index rebuild as well.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{now_ns, push, push_body, query_lines, request, Rng, Server};

/// Small chunks and frequent flush checks, so that sealing and flushing happen all through
/// the test; a query limit above everything the test pushes.
const CONFIG: &str = "\
ingester:
  chunk_target_size: 4KB
  chunk_block_size: 1KB
  flush_check_period: 100ms
  chunk_idle_period: 1s
limits_config:
  max_entries_limit_per_query: 10000000
  max_query_series: 100000
";

const PUSHERS: usize = 2;
const ITERATIONS: usize = 24;
/// Stop starting new iterations after this long, whatever the count, to bound CI time.
const TIME_BUDGET: Duration = Duration::from_secs(60);

/// One entry a client sent: its line is unique across the test.
#[derive(Debug, Clone)]
struct Sent {
    ts: i64,
    line: String,
    acked: bool,
}

/// Pushes batches until `stop`, recording every entry sent and whether its push got a 204.
fn pusher(
    id: usize,
    addr: SocketAddr,
    seq: Arc<AtomicI64>,
    base_ns: i64,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Vec<Sent> {
    let mut rng = Rng::seeded(seed);
    let mut sent = Vec::new();
    let pusher_label = id.to_string();
    while !stop.load(Ordering::SeqCst) {
        let n = rng.range(1, 25) as i64;
        let first = seq.fetch_add(n, Ordering::SeqCst);
        let entries: Vec<(i64, String)> = (first..first + n)
            .map(|s| {
                // Padding makes heads reach the chunk target quickly.
                (
                    base_ns + s * 1000,
                    format!("crash p{id} seq={s} {:0>96}", s),
                )
            })
            .collect();
        let body = push_body(&[("job", "crash"), ("pusher", &pusher_label)], &entries);
        let acked = match push(addr, &body) {
            Ok(resp) if resp.status == 204 => true,
            Ok(resp) => panic!("push answered {}: {}", resp.status, resp.text()),
            Err(_) => false,
        };
        sent.extend(
            entries
                .into_iter()
                .map(|(ts, line)| Sent { ts, line, acked }),
        );
        if !acked {
            thread::sleep(Duration::from_millis(5));
        }
    }
    sent
}

/// Every acknowledged entry exactly once, no entry twice, nothing never sent, timestamps as
/// sent. Returns the number of entries returned.
fn verify(addr: SocketAddr, sent: &[Sent], base_ns: i64, stage: &str) -> usize {
    let end_ns = now_ns() + 60_000_000_000;
    let got = query_lines(addr, r#"{job="crash"}"#, base_ns - 1, end_ns, 10_000_000);
    let by_line: HashMap<&str, &Sent> = sent.iter().map(|s| (s.line.as_str(), s)).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, ts, line) in &got {
        let Some(s) = by_line.get(line.as_str()) else {
            panic!("{stage}: returned a line never pushed: {line:?}");
        };
        assert_eq!(*ts, s.ts, "{stage}: timestamp of {line:?}");
        *seen.entry(s.line.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(
        duplicated.is_empty(),
        "{stage}: entries returned more than once, e.g. {duplicated:?}"
    );
    let lost: Vec<_> = sent
        .iter()
        .filter(|s| s.acked && !seen.contains_key(s.line.as_str()))
        .take(5)
        .collect();
    let lost_count = sent
        .iter()
        .filter(|s| s.acked && !seen.contains_key(s.line.as_str()))
        .count();
    assert!(
        lost.is_empty(),
        "{stage}: {lost_count} acknowledged entries lost, e.g. {lost:?}"
    );
    got.len()
}

#[test]
fn acknowledged_entries_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng::from_env("crash_restart");
    let base_ns = now_ns() - 60_000_000_000;
    let seq = Arc::new(AtomicI64::new(0));
    let mut sent: Vec<Sent> = Vec::new();
    let started = Instant::now();
    let mut iterations = 0;
    let mut kills_near_flush = 0;

    while iterations < ITERATIONS && started.elapsed() < TIME_BUDGET {
        let mut server = Server::start(dir.path(), CONFIG);
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|id| {
                let (seq, stop, seed) = (seq.clone(), stop.clone(), rng.next_u64());
                thread::spawn(move || pusher(id, addr, seq, base_ns, stop, seed))
            })
            .collect();
        let flusher = {
            let (stop, seed) = (stop.clone(), rng.next_u64());
            thread::spawn(move || {
                let mut rng = Rng::seeded(seed);
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(rng.range(20, 400)));
                    let _ = request(addr, "POST", "/flush", &[], b"");
                }
            })
        };
        thread::sleep(Duration::from_millis(rng.range(50, 1500)));
        if rng.range(0, 2) == 0 {
            // Kill while a flush is writing its segment, recording the index or releasing
            // the WAL.
            kills_near_flush += 1;
            let flush = thread::spawn(move || request(addr, "POST", "/flush", &[], b""));
            thread::sleep(Duration::from_micros(rng.range(0, 30_000)));
            server.kill();
            let _ = flush.join();
        } else {
            server.kill();
        }
        stop.store(true, Ordering::SeqCst);
        for p in pushers {
            sent.extend(p.join().expect("pusher thread"));
        }
        flusher.join().expect("flusher thread");
        iterations += 1;
    }

    let acked = sent.iter().filter(|s| s.acked).count();
    assert!(acked > 0, "no push was ever acknowledged");
    let unique: HashSet<&str> = sent.iter().map(|s| s.line.as_str()).collect();
    assert_eq!(unique.len(), sent.len(), "test lines must be unique");

    // Recovery from the WAL (and whatever flushes completed).
    let mut server = Server::start(dir.path(), CONFIG);
    let returned = verify(server.addr, &sent, base_ns, "after the last crash");
    // Everything flushed to the object store, then another crash.
    let flush = request(server.addr, "POST", "/flush", &[], b"").expect("flush");
    assert_eq!(flush.status, 204, "flush: {}", flush.text());
    server.kill();
    let mut server = Server::start(dir.path(), CONFIG);
    verify(server.addr, &sent, base_ns, "after flush and crash");
    // The index is derived data: rebuilt from the segment footers it must give the same.
    server.kill();
    std::fs::remove_dir_all(dir.path().join("data").join("index")).expect("remove index");
    let server = Server::start(dir.path(), CONFIG);
    verify(server.addr, &sent, base_ns, "after index rebuild");

    eprintln!(
        "crash_restart: {iterations} SIGKILL iterations ({kills_near_flush} around POST /flush) \
         in {:.1?}; {} entries sent, {acked} acknowledged, {returned} returned, each \
         acknowledged entry found exactly once",
        started.elapsed(),
        sent.len()
    );
}
