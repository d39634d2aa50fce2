//! Whole servers on a real S3 server (moto, see `fenrir_storage::s3_test_endpoint`):
//! a node with an empty data directory answers from the bucket alone, and an S3 outage in
//! the middle of flushes loses no acknowledged entry and duplicates none.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use fenrir_it::TestServer;
use fenrir_storage::{s3_test_endpoint, s3_test_store, ObjectStore};
use serde_json::{json, Value};

/// Base timestamp of the entries (2024-07-07T08:00:00Z), inside `reject_old_samples` only
/// because that check is turned off below.
const BASE_NS: i64 = 1_720_339_200_000_000_000;

/// Server YAML for `bucket` at `endpoint`, with small chunks so that pushes seal them.
fn s3_yaml(endpoint: &str, bucket: &str, extra_ingester: &str) -> String {
    format!(
        r#"storage_config:
  aws:
    endpoint: {endpoint}
    region: us-east-1
    bucketnames: {bucket}
    access_key_id: fenrir-test
    secret_access_key: fenrir-test-secret
    s3forcepathstyle: true
    insecure: true
    backoff_config:
      min_period: 10ms
      max_period: 50ms
      max_retries: 2
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: s3
      schema: v13
limits_config:
  reject_old_samples: false
ingester:
  chunk_target_size: 4096
  flush_check_period: 100ms
  flush_op_backoff:
    min_period: 50ms
    max_period: 200ms
{extra_ingester}"#
    )
}

/// A JSON push of `lines` to stream `{app="<app>", batch="<batch>"}`, one entry per ns.
fn push_body(app: &str, batch: usize, first: usize, lines: &[String]) -> Vec<u8> {
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| json!([(BASE_NS + (first + i) as i64).to_string(), line]))
        .collect();
    json!({"streams": [{"stream": {"app": app, "batch": batch.to_string()}, "values": values}]})
        .to_string()
        .into_bytes()
}

/// Lines that compress poorly, so that a few pushes fill chunks.
fn lines(first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|i| {
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut noise = String::new();
            for _ in 0..6 {
                x ^= x >> 29;
                x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                noise.push_str(&format!("{x:016x}"));
            }
            format!("entry={i:06} level=info noise={noise}")
        })
        .collect()
}

async fn push(server: &TestServer, body: Vec<u8>) -> (StatusCode, String) {
    let (status, body) = server
        .post("/loki/api/v1/push", "application/json", body)
        .await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Every line of `{app="<app>"}`, sorted, as the query API returns them.
async fn query_lines(server: &TestServer, app: &str) -> Vec<String> {
    query_lines_from(server, app, 0).await.expect("query")
}

/// The lines of `{app="<app>"}` from entry number `first` on, sorted; the error body when
/// the query fails.
async fn query_lines_from(
    server: &TestServer,
    app: &str,
    first: usize,
) -> Result<Vec<String>, String> {
    let params = [
        ("query", format!("{{app=\"{app}\"}}")),
        ("start", (BASE_NS + first as i64).to_string()),
        ("end", (BASE_NS + 1_000_000).to_string()),
        ("limit", "5000".to_string()),
        ("direction", "forward".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let (status, body) = server.get("/loki/api/v1/query_range", &params, &[]).await;
    if status != StatusCode::OK {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let mut found = Vec::new();
    for stream in answer["data"]["result"].as_array().unwrap() {
        for value in stream["values"].as_array().unwrap() {
            found.push(value[1].as_str().unwrap().to_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// The result of `sum(count_over_time({app="<app>"}[1s]))` over the test's entries.
async fn count_result(server: &TestServer, app: &str) -> Value {
    let params = [
        (
            "query",
            format!("sum(count_over_time({{app=\"{app}\"}}[1s]))"),
        ),
        ("time", (BASE_NS + 1_000_000).to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let (status, body) = server.get("/loki/api/v1/query", &params, &[]).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    answer["data"]["result"].clone()
}

/// The index's entry count for `{app="<app>"}`: it counts every indexed chunk, so a chunk
/// stored twice shows here even though queries collapse duplicates.
async fn indexed_entries(server: &TestServer, app: &str) -> u64 {
    let params = [
        ("query", format!("{{app=\"{app}\"}}")),
        ("start", (BASE_NS - 1).to_string()),
        ("end", (BASE_NS + 1_000_000).to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let (status, body) = server.get("/loki/api/v1/index/stats", &params, &[]).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let stats: Value = serde_json::from_slice(&body).unwrap();
    stats["entries"].as_u64().unwrap()
}

async fn metric(server: &TestServer, name: &str) -> f64 {
    let (status, body) = server.get("/metrics", &[], &[]).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

async fn stop(server: TestServer) {
    server.built.ingester.shutdown_wal();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_empty_data_dir_answers_from_the_bucket() {
    let store = s3_test_store("rebuild").await;
    let endpoint = s3_test_endpoint().await;
    let yaml = s3_yaml(&endpoint, store.bucket(), "");

    let server = TestServer::start(&yaml).await;
    let mut pushed = Vec::new();
    for batch in 0..4 {
        let batch_lines = lines(batch * 50, 50);
        let (status, body) = push(
            &server,
            push_body("rebuild", batch, batch * 50, &batch_lines),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        pushed.extend(batch_lines);
    }
    pushed.sort();
    assert_eq!(
        query_lines(&server, "rebuild").await,
        pushed,
        "before the flush"
    );
    let (status, _) = server.post("/flush", "text/plain", Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        query_lines(&server, "rebuild").await,
        pushed,
        "after the flush"
    );
    let counts = count_result(&server, "rebuild").await;
    assert_eq!(counts[0]["value"][1], json!("200"), "{counts}");
    stop(server).await;

    // The bucket holds few objects, all under the tenant's prefix.
    let objects = store.list("").await.unwrap();
    assert!(!objects.is_empty() && objects.len() <= 2, "{objects:?}");
    for object in &objects {
        let parts: Vec<_> = object.key.split('/').collect();
        assert!(
            parts.len() == 4
                && parts[0] == "fake"
                && parts[1] == "seg"
                && parts[3].ends_with(".seg"),
            "{}",
            object.key
        );
    }

    // A new node on a fresh directory: the index is rebuilt from the segment footers.
    let server = TestServer::start(&yaml).await;
    assert_eq!(
        query_lines(&server, "rebuild").await,
        pushed,
        "after the restart"
    );
    assert_eq!(
        indexed_entries(&server, "rebuild").await,
        pushed.len() as u64
    );
    assert_eq!(
        count_result(&server, "rebuild").await,
        counts,
        "metric query after the restart"
    );
    let range = [
        ("start", (BASE_NS - 1).to_string()),
        ("end", (BASE_NS + 1_000_000).to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let (status, body) = server.get("/loki/api/v1/labels", &range, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let labels: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(labels["data"], json!(["app", "batch", "service_name"]));
    stop(server).await;
}

/// A TCP proxy to the S3 server that the test can cut off: while down, it closes every
/// open connection and every new one at once.
struct SwitchableProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl SwitchableProxy {
    async fn start(upstream: SocketAddr) -> SwitchableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (up, connections) = (up.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(task.abort_handle());
                }
            })
        };
        SwitchableProxy {
            addr,
            up,
            connections,
            accept,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for connection in self.connections.lock().unwrap().drain(..) {
                connection.abort();
            }
        }
    }
}

impl Drop for SwitchableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_up(false);
    }
}

/// Pushes batches of 20 fresh lines over three streams and remembers the acknowledged ones.
#[derive(Default)]
struct Pusher {
    next: usize,
    batches: usize,
    acknowledged: Vec<String>,
}

impl Pusher {
    async fn push(&mut self, server: &TestServer) -> (StatusCode, String) {
        let batch_lines = lines(self.next, 20);
        let body = push_body("outage", self.batches % 3, self.next, &batch_lines);
        self.next += 20;
        self.batches += 1;
        let (status, body) = push(server, body).await;
        if status == StatusCode::NO_CONTENT {
            self.acknowledged.extend(batch_lines);
        }
        (status, body)
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_during_flushes_loses_and_duplicates_nothing() {
    let store = s3_test_store("outage").await;
    let upstream: SocketAddr = s3_test_endpoint()
        .await
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = SwitchableProxy::start(upstream).await;
    let yaml = s3_yaml(
        &proxy.endpoint(),
        store.bucket(),
        "  max_unflushed_bytes: 24KB\n",
    );
    let server = TestServer::start(&yaml).await;
    let flusher = fenrir_server::spawn_flusher(
        server.built.ingester.clone(),
        &fenrir_config::from_yaml(&yaml).unwrap(),
    );

    let mut pusher = Pusher::default();
    // Healthy: pushes are acknowledged and flushed.
    for _ in 0..5 {
        let (status, body) = pusher.push(&server).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, _) = server.post("/flush", "text/plain", Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!store.list("").await.unwrap().is_empty());
    let flushed_before_outage = pusher.next;

    // S3 goes away. Pushes are still acknowledged (the WAL has them) until the backlog is
    // full; then they get 503 and are not stored.
    proxy.set_up(false);
    let refusal = loop {
        let (status, body) = pusher.push(&server).await;
        match status {
            StatusCode::NO_CONTENT => assert!(pusher.next < 20_000, "pushes were never refused"),
            StatusCode::SERVICE_UNAVAILABLE => break body,
            other => panic!("unexpected {other}: {body}"),
        }
    };
    assert!(refusal.starts_with("ingester backlog full"), "{refusal}");
    let (status, _) = server.post("/flush", "text/plain", Vec::new()).await;
    assert!(
        status.is_server_error(),
        "a flush while s3 is down fails: {status}"
    );
    wait_for(
        "the flusher to fail and retry",
        Duration::from_secs(20),
        async || metric(&server, "fenrir_ingester_flush_failures_total").await >= 3.0,
    )
    .await;
    assert!(metric(&server, "fenrir_ingester_unflushed_bytes").await >= 24.0 * 1024.0);
    assert!(metric(&server, "fenrir_ingester_unflushed_chunks").await >= 1.0);
    assert!(metric(&server, "fenrir_ingester_backlog_refused_pushes_total").await >= 1.0);
    // What was acknowledged during the outage is queryable from memory; what was flushed
    // before it is only in the bucket, so queries that need it fail (as Loki's do).
    let mut during = pusher.acknowledged[flushed_before_outage..].to_vec();
    during.sort();
    assert_eq!(
        query_lines_from(&server, "outage", flushed_before_outage).await,
        Ok(during),
        "during the outage"
    );
    let failed = query_lines_from(&server, "outage", 0).await.unwrap_err();
    assert!(failed.starts_with("500"), "{failed}");

    // S3 is back: the flusher drains the backlog on its own and pushes are accepted again.
    proxy.set_up(true);
    wait_for(
        "the backlog to drain",
        Duration::from_secs(30),
        async || server.built.ingester.backlog().unflushed_bytes < 12 * 1024,
    )
    .await;
    for _ in 0..3 {
        let (status, body) = pusher.push(&server).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, _) = server.post("/flush", "text/plain", Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        metric(&server, "fenrir_ingester_unflushed_chunks").await,
        0.0
    );
    flusher.abort();

    let mut expected = pusher.acknowledged.clone();
    expected.sort();
    let unique: BTreeSet<_> = expected.iter().collect();
    assert_eq!(unique.len(), expected.len());
    assert_eq!(
        query_lines(&server, "outage").await,
        expected,
        "after recovery"
    );
    assert_eq!(
        indexed_entries(&server, "outage").await,
        expected.len() as u64
    );
    stop(server).await;

    // A fresh node sees exactly the acknowledged entries in the bucket, each once: no
    // segment was written twice.
    let direct = s3_yaml(&s3_test_endpoint().await, store.bucket(), "");
    let server = TestServer::start(&direct).await;
    assert_eq!(
        query_lines(&server, "outage").await,
        expected,
        "from the bucket"
    );
    assert_eq!(
        indexed_entries(&server, "outage").await,
        expected.len() as u64,
        "every chunk is stored once"
    );
    stop(server).await;
    drop(proxy);
}
