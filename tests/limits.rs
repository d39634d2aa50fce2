//! Loki's ingest and query limits through the HTTP API: status codes, message texts, what
//! is stored after a refusal, per-tenant runtime overrides reloaded while running, and
//! the discard metrics.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fenrir_it::TestServer;
use serde_json::{json, Value};

const PUSH: &str = "/loki/api/v1/push";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// A v1 JSON push body: `(app label, [(ts, line)])` per stream.
fn body(streams: &[(&str, Vec<(i64, String)>)]) -> Vec<u8> {
    let streams: Vec<Value> = streams
        .iter()
        .map(|(app, values)| {
            let values: Vec<Value> = values
                .iter()
                .map(|(ts, line)| json!([ts.to_string(), line]))
                .collect();
            json!({"stream": {"app": app}, "values": values})
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams })).expect("json")
}

/// `n` lines of `len` bytes from `base` onwards, one nanosecond apart.
fn lines(base: i64, n: usize, len: usize) -> Vec<(i64, String)> {
    (0..n)
        .map(|i| {
            let mut line = format!("line {i} ");
            line.extend(std::iter::repeat_n('x', len.saturating_sub(line.len())));
            (base + i as i64, line)
        })
        .collect()
}

async fn push(server: &TestServer, body: Vec<u8>) -> (u16, String) {
    let (status, resp) = server.post(PUSH, "application/json", body).await;
    (status.as_u16(), String::from_utf8_lossy(&resp).into_owned())
}

async fn get(server: &TestServer, path: &str, params: &[(&str, String)]) -> (u16, String) {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let (status, resp) = server.get(path, &params, &[]).await;
    (status.as_u16(), String::from_utf8_lossy(&resp).into_owned())
}

/// Lines stored for `{app="<app>"}` over the last hour (and a minute ahead).
async fn stored_lines(server: &TestServer, app: &str) -> Vec<String> {
    let now = now_ns();
    let (status, text) = get(
        server,
        "/loki/api/v1/query_range",
        &[
            ("query", format!("{{app=\"{app}\"}}")),
            ("start", (now - 3_600_000_000_000).to_string()),
            ("end", (now + 60_000_000_000).to_string()),
            ("limit", "5000".into()),
            ("direction", "forward".into()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("query json");
    v["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .flat_map(|s| s["values"].as_array().expect("values").clone())
        .map(|pair| pair[1].as_str().expect("line").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_ingestion_rate_refuses_whole_requests_with_429() {
    // 1000 bytes of burst, refilled at about 100 bytes a second.
    let server = TestServer::start(
        "limits_config:\n  ingestion_rate_mb: 0.0001\n  ingestion_burst_size_mb: 0.00095367431640625\n",
    )
    .await;
    let base = now_ns() - 60_000_000_000;
    let (status, text) = push(&server, body(&[("a", lines(base, 6, 100))])).await;
    assert_eq!(status, 204, "{text}");
    // 600 of 1000 bytes used: a 500-byte request over two streams is refused whole.
    let (status, text) = push(
        &server,
        body(&[("a", lines(base + 100, 3, 100)), ("b", lines(base, 2, 100))]),
    )
    .await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(
        text,
        "ingestion rate limit exceeded for user fake (limit: 104 bytes/sec) while attempting to ingest '5' lines totaling '500' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n"
    );
    assert_eq!(stored_lines(&server, "a").await.len(), 6, "nothing stored");
    assert!(stored_lines(&server, "b").await.is_empty());
    // What is left of the burst still takes a smaller request.
    let (status, text) = push(&server, body(&[("b", lines(base, 3, 100))])).await;
    assert_eq!(status, 204, "{text}");

    let (_, metrics) = get(&server, "/metrics", &[]).await;
    assert!(
        metrics
            .contains("loki_discarded_samples_total{reason=\"rate_limited\",tenant=\"fake\"} 5\n"),
        "{metrics}"
    );
    assert!(metrics
        .contains("loki_discarded_bytes_total{reason=\"rate_limited\",tenant=\"fake\"} 500\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_stream_rate_refuses_entries_and_stores_the_rest() {
    let server = TestServer::start(
        // No detected_level, so that an entry's size is its line's.
        "limits_config:\n  per_stream_rate_limit: 1B\n  per_stream_rate_limit_burst: 250B\n  discover_log_levels: false\n",
    )
    .await;
    let base = 1_000_000_000 * (now_ns() / 1_000_000_000) - 60_000_000_000;
    let (status, text) = push(
        &server,
        body(&[("a", lines(base, 3, 100)), ("b", lines(base, 2, 100))]),
    )
    .await;
    assert_eq!(status, 429, "{text}");
    let ts = fenrir_common::time::format_go_time(base + 2);
    assert_eq!(
        text,
        format!(
            "entry with timestamp {ts} ignored, reason: 'Per stream rate limit exceeded (limit: 1B/sec) while attempting to ingest for stream '{{app=\"a\", service_name=\"a\"}}' totaling 100B, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased',\nuser 'fake', total ignored: 1 out of 3 for stream: {{app=\"a\", service_name=\"a\"}}\n"
        )
    );
    assert_eq!(stored_lines(&server, "a").await.len(), 2);
    assert_eq!(
        stored_lines(&server, "b").await.len(),
        2,
        "b has its own bucket"
    );
    let (_, metrics) = get(&server, "/metrics", &[]).await;
    assert!(metrics.contains(
        "loki_discarded_samples_total{reason=\"per_stream_rate_limit\",tenant=\"fake\"} 1\n"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_streams_past_the_active_stream_limit_get_429() {
    let server = TestServer::start("limits_config:\n  max_global_streams_per_user: 2\n").await;
    let base = now_ns() - 60_000_000_000;
    let (status, text) = push(
        &server,
        body(&[("a", lines(base, 1, 10)), ("b", lines(base, 1, 10))]),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let (status, text) = push(
        &server,
        body(&[("a", lines(base + 5, 1, 10)), ("c", lines(base, 2, 10))]),
    )
    .await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(
        text,
        "maximum active stream limit exceeded when trying to create stream {app=\"c\", service_name=\"c\"}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: 'fake'\n"
    );
    assert_eq!(
        stored_lines(&server, "a").await.len(),
        2,
        "a's entry stored"
    );
    assert!(stored_lines(&server, "c").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_dropped_good_ones_stored_and_the_400_names_them() {
    let server = TestServer::start("limits_config:\n  max_line_size: 50B\n").await;
    let base = now_ns() - 60_000_000_000;
    let mut values = lines(base, 3, 20);
    values.push((base + 10, "y".repeat(60)));
    let (status, text) = push(&server, body(&[("a", values), ("b", lines(base, 1, 51))])).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        text,
        "1 errors like: max entry size '50' bytes exceeded for stream '{app=\"a\", service_name=\"a\"}' while adding an entry with length '60' bytes; \
         1 errors like: max entry size '50' bytes exceeded for stream '{app=\"b\", service_name=\"b\"}' while adding an entry with length '51' bytes\n"
    );
    assert_eq!(stored_lines(&server, "a").await.len(), 3);
    assert!(stored_lines(&server, "b").await.is_empty());
    let (_, metrics) = get(&server, "/metrics", &[]).await;
    assert!(
        metrics
            .contains("loki_discarded_samples_total{reason=\"line_too_long\",tenant=\"fake\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics
        .contains("loki_discarded_bytes_total{reason=\"line_too_long\",tenant=\"fake\"} 111\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_truncated_when_asked() {
    let server = TestServer::start(
        "limits_config:\n  max_line_size: 20B\n  max_line_size_truncate: true\n  max_line_size_truncate_identifier: '...'\n",
    )
    .await;
    let base = now_ns() - 60_000_000_000;
    let (status, text) = push(&server, body(&[("a", vec![(base, "z".repeat(30))])])).await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        stored_lines(&server, "a").await,
        [format!("{}...", "z".repeat(17))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_recv_msg_size_get_413() {
    let server = TestServer::start("distributor:\n  max_recv_msg_size: 1KB\n").await;
    let base = now_ns() - 60_000_000_000;
    // As sent: the announced length is in the message.
    let big = body(&[("a", lines(base, 20, 100))]);
    let size = big.len();
    let req = Request::post(PUSH)
        .header("content-type", "application/json")
        .header("content-length", size.to_string())
        .body(Body::from(big))
        .expect("request");
    let (status, resp) = server.send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        String::from_utf8_lossy(&resp),
        format!("request body too large: message size too large than max ({size} vs 1024)\n")
    );
    // A gzip bomb: small on the wire, refused once its output passes the cap.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 512 << 10]).expect("gzip");
    let bomb = gz.finish().expect("gzip");
    assert!(bomb.len() < 1024);
    let req = Request::post(PUSH)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from(bomb))
        .expect("request");
    let (status, resp) = server.send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        String::from_utf8_lossy(&resp),
        "request body too large: message size too large than max (1025 vs 1024)\n"
    );
    // Under the cap is fine.
    let (status, text) = push(&server, body(&[("a", lines(base, 2, 100))])).await;
    assert_eq!(status, 204, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_query_timeout_get_504() {
    let server = TestServer::start(
        "limits_config:\n  query_timeout: 1ms\n  ingestion_rate_mb: 1000\n  ingestion_burst_size_mb: 1000\n  per_stream_rate_limit: 1GB\n  per_stream_rate_limit_burst: 1GB\n",
    )
    .await;
    let base = now_ns() - 600_000_000_000;
    // Enough lines that a regex over all of them takes far longer than a millisecond.
    for batch in 0..5 {
        let (status, text) = push(
            &server,
            body(&[("a", lines(base + batch * 10_000, 10_000, 100))]),
        )
        .await;
        assert_eq!(status, 204, "{text}");
    }
    let now = now_ns();
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"sum(count_over_time({app="a"} |~ "(x+y|line 9+)+z" [1h]))"#.into(),
            ),
            ("start", (now - 3_600_000_000_000).to_string()),
            ("end", now.to_string()),
            ("step", "60".into()),
        ],
    )
    .await;
    assert_eq!(status, 504, "{text}");
    assert_eq!(
        text,
        "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_limits_and_max_query_range() {
    let server = TestServer::start(
        "limits_config:\n  max_entries_limit_per_query: 10\n  max_query_length: 2h\n  max_query_range: 1h\n",
    )
    .await;
    let now = now_ns();
    let hour = 3_600_000_000_000i64;
    let q = |query: &str, start: i64, limit: &str| {
        vec![
            ("query", query.to_string()),
            ("start", start.to_string()),
            ("end", now.to_string()),
            ("limit", limit.to_string()),
        ]
    };
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &q(r#"{app="a"}"#, now - hour, "11"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        text,
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (11 > 10)"
    );
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &q(r#"{app="a"}"#, now - 3 * hour, "10"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        text,
        "the query time range exceeds the limit (query length: 3h0m0s, limit: 2h0m0s)"
    );
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &q(r#"sum(rate({app="a"}[2h]))"#, now - hour, "10"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(text, "[interval] value exceeds limit");
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &q(r#"sum(rate({app="a"}[1h]))"#, now - hour, "10"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_overrides_are_reloaded_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = dir.path().join("runtime.yaml");
    std::fs::write(
        &runtime,
        "overrides:\n  fake:\n    max_entries_limit_per_query: 10\n",
    )
    .expect("write");
    let server = TestServer::start(&format!(
        "runtime_config:\n  file: {}\n  period: 100ms\n",
        runtime.display()
    ))
    .await;
    let now = now_ns();
    let query = |limit: &str| {
        vec![
            ("query", r#"{app="a"}"#.to_string()),
            ("start", (now - 3_600_000_000_000).to_string()),
            ("end", now.to_string()),
            ("limit", limit.to_string()),
        ]
    };
    let (status, text) = get(&server, "/loki/api/v1/query_range", &query("20")).await;
    assert_eq!(
        status, 400,
        "the file's limit applies from the start: {text}"
    );
    assert!(text.contains("(20 > 10)"), "{text}");

    // Raise the limit and lower max_line_size: both take effect at the next reload.
    std::fs::write(
        &runtime,
        "overrides:\n  fake:\n    max_entries_limit_per_query: 50\n    max_line_size: 5B\n",
    )
    .expect("write");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = get(&server, "/loki/api/v1/query_range", &query("20")).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new limit never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = now_ns() - 60_000_000_000;
    let (status, text) = push(&server, body(&[("a", vec![(base, "123456".into())])])).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.starts_with("max entry size '5' bytes exceeded"),
        "{text}"
    );

    // A broken file keeps the last good overrides.
    std::fs::write(
        &runtime,
        "overrides:\n  fake:\n    max_entries_limit_per_queri: 1\n",
    )
    .expect("write");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, text) = get(&server, "/loki/api/v1/query_range", &query("20")).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_query_lookback_hides_older_data() {
    let server = TestServer::start("limits_config:\n  max_query_lookback: 1h\n").await;
    let now = now_ns();
    let minute = 60_000_000_000i64;
    let (status, text) = push(
        &server,
        body(&[("a", vec![(now - 120 * minute, "old".into())])]),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let (status, text) = push(
        &server,
        body(&[("a", vec![(now - 10 * minute, "new".into())])]),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let range = |start: i64, end: i64| {
        vec![
            ("query", r#"{app="a"}"#.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
        ]
    };
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &range(now - 180 * minute, now),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("\"new\"") && !text.contains("\"old\""),
        "{text}"
    );
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &range(now - 180 * minute, now - 100 * minute),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"result\":[]"), "{text}");
    let (status, text) = get(
        &server,
        "/loki/api/v1/labels",
        &range(now - 180 * minute, now - 100 * minute),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"data\":[]"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploding_metric_series_get_max_query_series_400() {
    let server = TestServer::start("limits_config:\n  max_query_series: 50\n").await;
    let now = now_ns();
    let values: Vec<(i64, String)> = (0..600)
        .map(|i| {
            let line = format!(r#"{{"request_id":"r{i}","status":200}}"#);
            (now - 60_000_000_000 + i as i64, line)
        })
        .collect();
    let (status, text) = push(&server, body(&[("boom", values)])).await;
    assert_eq!(status, 204, "{text}");
    let q = |query: &str| {
        vec![
            ("query", query.to_string()),
            ("start", (now - 600_000_000_000).to_string()),
            ("end", (now + 60_000_000_000).to_string()),
            ("step", "60".to_string()),
        ]
    };
    // Every line is a series of its own: refused with Loki's text, during the scan.
    for query in [
        r#"count_over_time({app="boom"} | json [10m])"#,
        r#"sum by (request_id) (count_over_time({app="boom"} | json [10m]))"#,
    ] {
        let (status, text) = get(&server, "/loki/api/v1/query_range", &q(query)).await;
        assert_eq!(status, 400, "{query}: {text}");
        assert!(
            text.starts_with(
                "maximum number of series (50) reached for a single query; consider reducing query cardinality"
            ),
            "{query}: {text}"
        );
    }
    // Aggregated, the same lines are one series.
    let (status, text) = get(
        &server,
        "/loki/api/v1/query_range",
        &q(r#"sum by (status) (count_over_time({app="boom"} | json [10m]))"#),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}
