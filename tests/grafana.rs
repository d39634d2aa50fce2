//! Grafana's Loki data source and Logs Drilldown against Fenrir: every request below is
//! the one Grafana sends (paths, parameter formats and encodings, headers), as listed in
//! the Grafana contract (`grafana-contract.md`), and the answers are checked for the
//! shapes and values Grafana's parsers need.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fenrir_it::{RawResponse, TestServer};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const NS: i64 = 1_000_000_000;
/// 2024-07-01T00:00:00Z.
const BASE: i64 = 1_719_792_000 * NS;
const HOUR: i64 = 3600 * NS;
const DAY: i64 = 24 * HOUR;

const CONFIG: &str = "limits_config:
  reject_old_samples: false
  max_query_length: 0
";

const CATEGORIZE: (&str, &str) = ("X-Loki-Response-Encoding-Flags", "categorize-labels");

/// Go's form encoding, as Grafana's backend builds data-query URLs: keys sorted,
/// spaces as `+`, everything reserved percent-encoded.
fn grafana_query(path: &str, params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let qs: Vec<String> = sorted
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    format!("{path}?{}", qs.join("&"))
}

/// The browser's `encodeURIComponent`, as resource calls arrive (spaces as `%20`).
fn browser(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(NS);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ns.rem_euclid(NS) / 1_000_000
    )
}

async fn push(server: &TestServer, tenant: Option<&str>, streams: Value) {
    let headers: Vec<(&str, &str)> = tenant.map(|t| ("X-Scope-OrgID", t)).into_iter().collect();
    let (status, body) = server
        .post_with(
            "/loki/api/v1/push",
            "application/json",
            &headers,
            serde_json::to_vec(&json!({ "streams": streams })).expect("json"),
        )
        .await;
    assert_eq!(
        status.as_u16(),
        204,
        "push: {}",
        String::from_utf8_lossy(&body)
    );
}

async fn flush(server: &TestServer) {
    let (status, _) = server.post("/flush", "text/plain", Vec::new()).await;
    assert_eq!(status.as_u16(), 204);
}

fn ok_json(resp: &RawResponse) -> Value {
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.text());
    assert!(
        resp.content_type.starts_with("application/json"),
        "content type {}",
        resp.content_type
    );
    resp.json()
}

/// Timestamped lines of one stream.
type Lines = Vec<(i64, String)>;

/// Lines of the shop dataset: one hour, a JSON line every 10 s in `app=shop` (errors
/// every 4th) and a logfmt line every 30 s in `app=cart`.
fn shop_lines() -> (Lines, Lines) {
    let shop = (0..360)
        .map(|i| {
            let ts = BASE + i * 10 * NS + 123_456;
            let line = if i % 4 == 0 {
                format!(r#"{{"level":"error","msg":"order {i} error x: card declined","user":{{"id":{}}},"took":"{}ms"}}"#, i % 7, i * 3)
            } else {
                format!(r#"{{"level":"info","msg":"no error GET /cart/{i}","status":200}}"#)
            };
            (ts, line)
        })
        .collect();
    let cart = (0..120)
        .map(|i| {
            let ts = BASE + i * 30 * NS;
            (
                ts,
                format!(
                    r#"level=warn msg="slow request" duration={}ms size=12KB"#,
                    100 + i
                ),
            )
        })
        .collect();
    (shop, cart)
}

fn values(lines: &[(i64, String)]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|(ts, l)| json!([ts.to_string(), l]))
            .collect(),
    )
}

async fn shop_server() -> TestServer {
    let server = TestServer::start(CONFIG).await;
    let (shop, cart) = shop_lines();
    push(
        &server,
        None,
        json!([
            {"stream": {"app": "shop", "env": "prod"}, "values": values(&shop)},
            {"stream": {"app": "cart", "env": "prod"}, "values": values(&cart)},
        ]),
    )
    .await;
    server
}

#[tokio::test]
async fn save_and_test_health_check() {
    let server = TestServer::start(CONFIG).await;
    let resp = server
        .get_raw(
            "/loki/api/v1/query?direction=backward&query=vector%281%29%2Bvector%281%29&time=4000000000",
            &[CATEGORIZE],
        )
        .await;
    let v = ok_json(&resp);
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    // Grafana needs one series with one point of value 2. `4000000000` has ten digits, so
    // Loki reads it as seconds: its answer (conformance case p066) carries that time.
    assert_eq!(
        v["data"]["result"],
        json!([{"metric": {}, "value": [4_000_000_000i64, "2"]}])
    );
}

#[tokio::test]
async fn explore_logs_volume_and_context() {
    let server = shop_server().await;
    for flushed in [false, true] {
        if flushed {
            flush(&server).await;
        }
        // A range log query with a `+`-encoded space inside the line filter.
        let target = grafana_query(
            "/loki/api/v1/query_range",
            &[
                ("direction", "backward".into()),
                ("end", (BASE + HOUR).to_string()),
                ("limit", "1000".into()),
                ("query", r#"{app="shop"} |= "error x""#.into()),
                ("start", BASE.to_string()),
                ("step", "1000ms".into()),
            ],
        );
        assert!(target.contains("+%7C%3D+%22error+x%22"), "{target}");
        let resp = server.get_raw(&target, &[CATEGORIZE]).await;
        let text = resp.text();
        let v = ok_json(&resp);
        let data = &v["data"];
        assert_eq!(data["resultType"], "streams");
        assert_eq!(data["encodingFlags"], json!(["categorize-labels"]));
        assert!(text.find("\"encodingFlags\"") < text.find("\"result\""));
        let result = data["result"].as_array().expect("result");
        assert_eq!(result.len(), 1, "{text}");
        let stream = result[0].as_object().expect("stream");
        assert_eq!(stream.keys().collect::<Vec<_>>(), ["stream", "values"]);
        assert_eq!(
            stream["stream"],
            json!({"app": "shop", "env": "prod", "service_name": "shop"})
        );
        let rows = stream["values"].as_array().expect("values");
        assert_eq!(rows.len(), 90, "flushed={flushed}");
        for row in rows {
            assert!(row[0].is_string() && row[1].is_string());
            assert!(row[1].as_str().unwrap().contains("error x"));
            assert_eq!(row[2]["structuredMetadata"]["detected_level"], "error");
        }
        // Newest first.
        assert_eq!(rows[0][0], (BASE + 356 * 10 * NS + 123_456).to_string());

        // Without the header: 2-element rows, metadata merged into the labels.
        let plain = server.get_raw(&target, &[]).await.json();
        assert!(plain["data"].get("encodingFlags").is_none());
        let s = &plain["data"]["result"][0];
        assert_eq!(s["stream"]["detected_level"], "error");
        assert_eq!(s["values"][0].as_array().unwrap().len(), 2);

        // The log-volume histogram Explore runs next to it (Grafana ≥ 11.3).
        let target = grafana_query(
            "/loki/api/v1/query_range",
            &[
                ("direction", "backward".into()),
                ("end", (BASE + HOUR).to_string()),
                ("limit", "1000".into()),
                (
                    "query",
                    r#"sum by (level, detected_level) (count_over_time({app=~"shop|cart"} | drop __error__[1m]))"#.into(),
                ),
                ("start", BASE.to_string()),
                ("step", "60000ms".into()),
            ],
        );
        let v = ok_json(
            &server
                .get_raw(
                    &target,
                    &[CATEGORIZE, ("X-Query-Tags", "Source=logvolhist")],
                )
                .await,
        );
        assert_eq!(v["data"]["resultType"], "matrix");
        let mut totals: BTreeMap<String, f64> = BTreeMap::new();
        for s in v["data"]["result"].as_array().unwrap() {
            let level = s["metric"]["detected_level"].as_str().unwrap().to_string();
            let mut last = 0;
            for p in s["values"].as_array().unwrap() {
                assert!(p[0].is_number() && p[1].is_string());
                let ts = p[0].as_i64().unwrap();
                assert_eq!(ts % 60, 0);
                assert!(ts > last);
                last = ts;
                *totals.entry(level.clone()).or_default() +=
                    p[1].as_str().unwrap().parse::<f64>().unwrap();
            }
        }
        // Every line counted once: steps tile the hour exactly (the first bucket (start-1m, start] holds the cart line at BASE).
        assert_eq!(
            totals,
            BTreeMap::from([
                ("error".to_string(), 90.0),
                ("info".to_string(), 270.0),
                ("warn".to_string(), 120.0)
            ])
        );

        // Log context: labels at the clicked row's millisecond (start == end), then the
        // context queries around it.
        let row_ms = (BASE + 100 * 10 * NS) / 1_000_000;
        let t = (row_ms * 1_000_000).to_string();
        let v = ok_json(
            &server
                .get_raw(&format!("/loki/api/v1/labels?start={t}&end={t}"), &[])
                .await,
        );
        assert_eq!(
            v["data"],
            json!(["app", "env", "service_name"]),
            "flushed={flushed}"
        );
        let context = |direction: &str, start: i64, end: i64| {
            grafana_query(
                "/loki/api/v1/query_range",
                &[
                    ("direction", direction.into()),
                    ("end", end.to_string()),
                    ("limit", "10".into()),
                    ("query", r#"{app="shop",env="prod"}"#.into()),
                    ("start", start.to_string()),
                    ("step", "1000ms".into()),
                ],
            )
        };
        let row = row_ms * 1_000_000;
        let before = ok_json(
            &server
                .get_raw(&context("backward", row - 2 * HOUR, row), &[CATEGORIZE])
                .await,
        );
        let rows = before["data"]["result"][0]["values"].as_array().unwrap();
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0][0], (BASE + 99 * 10 * NS + 123_456).to_string());
        let after = ok_json(
            &server
                .get_raw(&context("forward", row, row + 2 * HOUR), &[CATEGORIZE])
                .await,
        );
        let rows = after["data"]["result"][0]["values"].as_array().unwrap();
        assert_eq!(rows[0][0], (BASE + 100 * 10 * NS + 123_456).to_string());
    }
}

#[tokio::test]
async fn label_browser_and_query_size_hint() {
    let server = shop_server().await;
    let (start, end) = (BASE.to_string(), (BASE + HOUR).to_string());
    let v = ok_json(
        &server
            .get_raw(&format!("/loki/api/v1/labels?start={start}&end={end}"), &[])
            .await,
    );
    assert_eq!(
        v,
        json!({"status": "success", "data": ["app", "env", "service_name"]})
    );
    let v = ok_json(
        &server
            .get_raw(
                &format!("/loki/api/v1/label/app/values?start={start}&end={end}"),
                &[],
            )
            .await,
    );
    assert_eq!(v["data"], json!(["cart", "shop"]));
    // Autocomplete inside a selector, browser-encoded.
    let sel = browser(r#"{app="cart"}"#);
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/label/service_name/values?start={start}&end={end}&query={sel}"
                ),
                &[],
            )
            .await,
    );
    assert_eq!(v["data"], json!(["cart"]));
    // Drilldown's RFC 3339 times.
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/labels?start={}&end={}",
                    rfc3339(BASE),
                    rfc3339(BASE + HOUR)
                ),
                &[],
            )
            .await,
    );
    assert_eq!(v["data"], json!(["app", "env", "service_name"]));
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/series?match%5B%5D={}&start={start}&end={end}",
                    browser(r#"{env="prod"}"#)
                ),
                &[],
            )
            .await,
    );
    assert_eq!(
        v["data"],
        json!([
            {"app": "cart", "env": "prod", "service_name": "cart"},
            {"app": "shop", "env": "prod", "service_name": "shop"}
        ])
    );
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/index/stats?query={}&start={start}&end={end}",
                    browser(r#"{app="shop"}"#)
                ),
                &[],
            )
            .await,
    );
    assert_eq!(v["streams"], 1);
    assert_eq!(v["entries"], 360);
    assert!(v["chunks"].as_u64().unwrap() >= 1 && v["bytes"].as_u64().unwrap() > 0);
    // Unknown label: empty list, not an error.
    let v = ok_json(
        &server
            .get_raw(
                &format!("/loki/api/v1/label/nope/values?start={start}&end={end}"),
                &[],
            )
            .await,
    );
    assert_eq!(v["data"], json!([]));
}

#[tokio::test]
async fn errors_are_plain_text_and_step_formats() {
    let server = shop_server().await;
    let bad = grafana_query(
        "/loki/api/v1/query_range",
        &[
            ("end", (BASE + HOUR).to_string()),
            ("query", r#"{app="shop"} |= "x" |"#.into()),
            ("start", BASE.to_string()),
            ("step", "1000ms".into()),
        ],
    );
    let resp = server.get_raw(&bad, &[CATEGORIZE]).await;
    assert_eq!(resp.status.as_u16(), 400);
    assert!(resp.content_type.starts_with("text/plain"));
    assert!(resp.text().starts_with("parse error"), "{}", resp.text());
    // Every step format Grafana versions send gives the same grid.
    let mut answers = Vec::new();
    for step in ["60000ms", "1m0s", "60", "1m", "60.0"] {
        let target = grafana_query(
            "/loki/api/v1/query_range",
            &[
                ("end", (BASE + HOUR).to_string()),
                ("query", r#"sum(count_over_time({app="shop"}[1m]))"#.into()),
                ("start", BASE.to_string()),
                ("step", step.into()),
            ],
        );
        let v = ok_json(&server.get_raw(&target, &[]).await);
        answers.push(v["data"]["result"].clone());
    }
    // 61 instants; the first, at `start`, has no line in its window.
    assert_eq!(answers[0][0]["values"].as_array().unwrap().len(), 60);
    assert!(answers.iter().all(|a| a == &answers[0]));
    // Float-seconds and RFC 3339 times equal nanoseconds.
    let ns = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/query?query={}&time={}",
                    browser(r#"count_over_time({app="cart"}[1h])"#),
                    BASE + HOUR
                ),
                &[],
            )
            .await,
    );
    let secs = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/query?query={}&time={}.000",
                    browser(r#"count_over_time({app="cart"}[1h])"#),
                    (BASE + HOUR) / NS
                ),
                &[],
            )
            .await,
    );
    let rfc = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/query?query={}&time={}",
                    browser(r#"count_over_time({app="cart"}[1h])"#),
                    rfc3339(BASE + HOUR)
                ),
                &[],
            )
            .await,
    );
    assert_eq!(ns["data"]["result"], secs["data"]["result"]);
    assert_eq!(ns["data"]["result"], rfc["data"]["result"]);
    assert_eq!(ns["data"]["result"][0]["value"][1], "119");
}

/// Two days, a line every 10 minutes in each of two streams.
async fn two_day_server() -> TestServer {
    let server = TestServer::start(CONFIG).await;
    for app in ["a", "b"] {
        let lines: Vec<(i64, String)> = (0..288)
            .map(|i| {
                let offset = if app == "a" { 0 } else { 7 * 60 * NS };
                (BASE + i * 600 * NS + offset, format!("{app} line {i}"))
            })
            .collect();
        push(
            &server,
            None,
            json!([{"stream": {"job": "split", "app": app}, "values": values(&lines)}]),
        )
        .await;
    }
    server
}

fn log_rows(v: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for row in s["values"].as_array().unwrap() {
            let added = out.insert((
                s["stream"]["app"].as_str().unwrap().to_string(),
                row[0].as_str().unwrap().to_string(),
                row[1].as_str().unwrap().to_string(),
            ));
            assert!(added, "duplicate row {row}");
        }
    }
    out
}

fn count_rows(v: &Value) -> usize {
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum()
}

fn matrix_points(v: &Value) -> BTreeMap<(String, i64), f64> {
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for p in s["values"].as_array().unwrap() {
            // Grafana adds values that two chunks return for the same timestamp.
            *out.entry((s["metric"].to_string(), p[0].as_i64().unwrap()))
                .or_insert(0.0) += p[1].as_str().unwrap().parse::<f64>().unwrap();
        }
    }
    out
}

#[tokio::test]
async fn day_split_queries_equal_one_query() {
    let server = two_day_server().await;
    // Grafana's range: the two days, its end an exact multiple of the step.
    let (start, end) = (BASE, BASE + 2 * DAY);
    let log = |s: i64, e: i64, limit: usize, direction: &str| {
        grafana_query(
            "/loki/api/v1/query_range",
            &[
                ("direction", direction.into()),
                ("end", e.to_string()),
                ("limit", limit.to_string()),
                ("query", r#"{job="split"} |= "line""#.into()),
                ("start", s.to_string()),
                ("step", "60000ms".into()),
            ],
        )
    };
    for flushed in [false, true] {
        if flushed {
            flush(&server).await;
        }
        for (direction, limit) in [("backward", 1000), ("backward", 400), ("forward", 400)] {
            let whole = ok_json(
                &server
                    .get_raw(&log(start, end, limit, direction), &[CATEGORIZE])
                    .await,
            );
            // Log chunks of one day cut back from `end`; newest first for backward,
            // oldest first for forward; the limit shrinks by the rows received.
            let mut chunks = vec![(end - DAY, end), (start, end - DAY)];
            if direction == "forward" {
                chunks.reverse();
            }
            let mut remaining = limit;
            let mut split = BTreeSet::new();
            for (s, e) in chunks {
                if remaining == 0 {
                    break;
                }
                let part = ok_json(
                    &server
                        .get_raw(&log(s, e, remaining, direction), &[CATEGORIZE])
                        .await,
                );
                remaining -= count_rows(&part);
                for row in log_rows(&part) {
                    assert!(split.insert(row.clone()), "row in two chunks: {row:?}");
                }
            }
            let whole_rows = log_rows(&whole);
            assert_eq!(whole_rows.len(), limit.min(576));
            assert_eq!(
                split, whole_rows,
                "{direction} limit {limit} flushed={flushed}"
            );
        }

        // Metric: chunks `[c, c + D − step]` with D the largest multiple of step ≤ 1 day,
        // c starting at `start` rounded down to the step.
        let step = 900 * NS;
        let metric = |s: i64, e: i64| {
            grafana_query(
                "/loki/api/v1/query_range",
                &[
                    ("direction", "backward".into()),
                    ("end", e.to_string()),
                    (
                        "query",
                        r#"sum by (app) (count_over_time({job="split"}[30m]))"#.into(),
                    ),
                    ("start", s.to_string()),
                    ("step", format!("{}ms", step / 1_000_000)),
                ],
            )
        };
        let mstart = start;
        let whole = matrix_points(&ok_json(
            &server.get_raw(&metric(mstart, end), &[CATEGORIZE]).await,
        ));
        let d = DAY / step * step;
        let mut c = mstart - mstart.rem_euclid(step);
        let mut split: BTreeMap<(String, i64), f64> = BTreeMap::new();
        while c <= end {
            let (s, e) = (c.max(mstart), (c + d - step).min(end));
            for (k, v) in matrix_points(&ok_json(
                &server.get_raw(&metric(s, e), &[CATEGORIZE]).await,
            )) {
                *split.entry(k).or_insert(0.0) += v;
            }
            c += d;
        }
        assert!(whole.len() > 300, "{}", whole.len());
        assert_eq!(split, whole, "flushed={flushed}");
    }
}

#[tokio::test]
async fn drilldown_volume_labels_fields_and_patterns() {
    let server = shop_server().await;
    let (from, to) = (rfc3339(BASE), rfc3339(BASE + HOUR));
    let volume_target = format!(
        "/loki/api/v1/index/volume?query={}&start={from}&end={to}&limit=5000",
        browser(r#"{service_name=~".+"}"#)
    );
    let mut before = None;
    for flushed in [false, true] {
        if flushed {
            flush(&server).await;
        }
        let v = ok_json(
            &server
                .get_raw(
                    &volume_target,
                    &[("X-Query-Tags", "Source=grafana-lokiexplore-app")],
                )
                .await,
        );
        assert_eq!(v["data"]["resultType"], "vector");
        let result = v["data"]["result"].as_array().unwrap();
        let services: Vec<&str> = result
            .iter()
            .map(|r| r["metric"]["service_name"].as_str().unwrap())
            .collect();
        assert_eq!(services, ["shop", "cart"], "largest first");
        for r in result {
            assert_eq!(r["metric"].as_object().unwrap().len(), 1);
            assert_eq!(r["value"][0], (BASE + HOUR) / NS);
            assert!(r["value"][1].as_str().unwrap().parse::<u64>().unwrap() > 0);
        }
        // Head statistics and flushed chunk statistics agree.
        match &before {
            None => before = Some(v["data"]["result"].clone()),
            Some(b) => assert_eq!(b, &v["data"]["result"]),
        }
    }
    let shop_bytes: u64 = before.as_ref().unwrap()[0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (shop, _) = shop_lines();
    let line_bytes: u64 = shop.iter().map(|(_, l)| l.len() as u64).sum();
    assert!(shop_bytes >= line_bytes, "{shop_bytes} < {line_bytes}");

    // By label names, and over time.
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/index/volume?query={}&start={from}&end={to}&aggregateBy=labels",
                    browser(r#"{env="prod"}"#)
                ),
                &[],
            )
            .await,
    );
    let names: BTreeSet<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = r["metric"].as_object().unwrap();
            assert_eq!(m.len(), 1);
            let (k, val) = m.iter().next().unwrap();
            assert_eq!(val, "");
            k.clone()
        })
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["app".into(), "env".into(), "service_name".into()])
    );
    let v = ok_json(
        &server
            .get_raw(&format!("/loki/api/v1/index/volume_range?query={}&start={from}&end={to}&step=600&targetLabels=app", browser(r#"{env="prod"}"#)), &[])
            .await,
    );
    assert_eq!(v["data"]["resultType"], "matrix");
    let shop_series = &v["data"]["result"][0];
    assert_eq!(shop_series["metric"], json!({"app": "shop"}));
    let total: f64 = shop_series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(
        (total - shop_bytes as f64).abs() <= 7.0,
        "{total} vs {shop_bytes}"
    );
    let bad = server
        .get_raw(
            &format!(
                "/loki/api/v1/index/volume?query={}&aggregateBy=pods",
                browser(r#"{env="prod"}"#)
            ),
            &[],
        )
        .await;
    assert_eq!(
        (bad.status.as_u16(), bad.text()),
        (400, "invalid aggregation option".to_string())
    );

    // detected_labels with the empty query Drilldown sends for "all streams".
    let v = ok_json(
        &server
            .get_raw(
                &format!("/loki/api/v1/detected_labels?query=&start={from}&end={to}"),
                &[],
            )
            .await,
    );
    assert_eq!(
        v,
        json!({"detectedLabels": [{"label": "app", "cardinality": 2}, {"label": "service_name", "cardinality": 2}]})
    );

    // detected_fields as Drilldown asks for them.
    let q = browser(r#"{service_name="shop"} | json | logfmt | drop __error__, __error_details__"#);
    let v = ok_json(
        &server
            .get_raw(
                &format!("/loki/api/v1/detected_fields?query={q}&start={from}&end={to}"),
                &[],
            )
            .await,
    );
    assert_eq!(v["limit"], 1000);
    let fields: BTreeMap<String, Value> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["label"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    assert_eq!(
        fields.keys().cloned().collect::<Vec<_>>(),
        [
            "detected_level",
            "level",
            "msg",
            "status",
            "took",
            "user_id"
        ]
    );
    assert_eq!(fields["detected_level"]["parsers"], Value::Null);
    assert_eq!(
        fields["user_id"],
        json!({"label": "user_id", "type": "int", "cardinality": 7, "parsers": ["json"], "jsonPath": ["user", "id"]})
    );
    assert_eq!(fields["took"]["type"], "duration");
    assert_eq!(fields["status"]["type"], "int");
    assert_eq!(fields["level"]["cardinality"], 2);
    let q = browser(r#"{service_name="cart"}"#);
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/detected_fields?query={q}&start={}&end={}&limit=1000",
                    BASE,
                    BASE + HOUR
                ),
                &[],
            )
            .await,
    );
    let size = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == "size")
        .expect("size")
        .clone();
    assert_eq!(size["type"], "bytes");
    assert_eq!(size["parsers"], json!(["logfmt"]));
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/detected_field/level/values?query={}&start={}&end={}&limit=1000",
                    browser(r#"{app="shop"}"#),
                    BASE,
                    BASE + HOUR
                ),
                &[],
            )
            .await,
    );
    assert_eq!(v, json!({"values": ["error", "info"], "limit": 1000}));

    // Patterns: real clusters, counts per step, valid in a pattern filter.
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/patterns?query={}&start={from}&end={to}&step=5m",
                    browser(r#"{service_name=~"shop|cart"}"#)
                ),
                &[],
            )
            .await,
    );
    assert_eq!(v["status"], "success");
    let patterns = v["data"].as_array().unwrap();
    assert!(!patterns.is_empty() && patterns.len() <= 6, "{v}");
    let mut counted = 0u64;
    for p in patterns {
        let pattern = p["pattern"].as_str().unwrap();
        assert!(pattern.contains("<_>"), "{pattern}");
        let mut own = 0u64;
        for s in p["samples"].as_array().unwrap() {
            assert_eq!(s[0].as_i64().unwrap() % 300, 0);
            own += s[1].as_u64().unwrap();
        }
        counted += own;
        let filter = format!(
            r#"sum(count_over_time({{service_name=~"shop|cart"}} |> "{}" [2h]))"#,
            pattern.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let m = ok_json(
            &server
                .get_raw(
                    &format!(
                        "/loki/api/v1/query?query={}&time={}",
                        browser(&filter),
                        BASE + HOUR
                    ),
                    &[],
                )
                .await,
        );
        let matched: f64 = m["data"]["result"][0]["value"][1]
            .as_str()
            .map_or(0.0, |s| s.parse().unwrap());
        assert!(
            matched >= own as f64,
            "{pattern}: filter matches {matched} < {own}"
        );
    }
    assert_eq!(counted, 480, "every line counted in exactly one pattern");
    let levels: BTreeSet<&str> = patterns
        .iter()
        .filter_map(|p| p["level"].as_str())
        .collect();
    assert_eq!(levels, BTreeSet::from(["error", "info", "warn"]));
}

#[tokio::test]
async fn rules_limits_and_format_query() {
    let server = TestServer::start(CONFIG).await;
    let v = ok_json(&server.get_raw("/prometheus/api/v1/rules", &[]).await);
    assert_eq!(v, json!({"status": "success", "data": {"groups": []}}));
    let v = ok_json(&server.get_raw("/prometheus/api/v1/alerts", &[]).await);
    assert_eq!(v, json!({"status": "success", "data": {"alerts": []}}));
    let r = server.get_raw("/api/prom/rules", &[]).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "{}\n".to_string()));
    let r = server.get_raw("/api/prom/rules/test/test", &[]).await;
    assert_eq!(r.status.as_u16(), 404);
    assert!(r.text().contains("page not found"));
    let v = ok_json(&server.get_raw("/loki/api/v1/drilldown-limits", &[]).await);
    assert_eq!(v["pattern_ingester_enabled"], true);
    assert_eq!(v["limits"]["volume_enabled"], true);
    assert!(v["limits"]["max_entries_limit_per_query"].as_u64().unwrap() > 0);
    assert!(v["version"].as_str().unwrap().starts_with("3."));
    let v = ok_json(
        &server
            .get_raw(
                &format!(
                    "/loki/api/v1/format_query?query={}",
                    browser(r#"{app="a"}|="x""#)
                ),
                &[],
            )
            .await,
    );
    assert_eq!(
        v,
        json!({"status": "success", "data": r#"{app="a"} |= "x""#})
    );
    let r = server
        .get_raw("/loki/api/v1/format_query?query=%7B", &[])
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.json()["status"], "invalid-query");
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let server = TestServer::start(&format!("auth_enabled: true\n{CONFIG}")).await;
    let (shop, _) = shop_lines();
    push(
        &server,
        Some("team-a"),
        json!([{"stream": {"app": "shop"}, "values": values(&shop)}]),
    )
    .await;
    let (from, to) = (BASE.to_string(), (BASE + HOUR).to_string());
    let sel = browser(r#"{app="shop"}"#);
    let targets = [
        format!("/loki/api/v1/index/volume?query={sel}&start={from}&end={to}"),
        format!("/loki/api/v1/index/volume_range?query={sel}&start={from}&end={to}&step=60"),
        format!("/loki/api/v1/detected_labels?query={sel}&start={from}&end={to}"),
        format!("/loki/api/v1/detected_fields?query={sel}&start={from}&end={to}"),
        format!("/loki/api/v1/detected_field/level/values?query={sel}&start={from}&end={to}"),
        format!("/loki/api/v1/patterns?query={sel}&start={from}&end={to}&step=1m"),
        format!("/loki/api/v1/labels?start={from}&end={to}"),
    ];
    for target in &targets {
        let a = ok_json(&server.get_raw(target, &[("X-Scope-OrgID", "team-a")]).await);
        let b = ok_json(&server.get_raw(target, &[("X-Scope-OrgID", "team-b")]).await);
        let size = |v: &Value| -> usize {
            let inner = ["data", "detectedLabels", "fields", "values"]
                .iter()
                .find_map(|k| v.get(*k))
                .expect("list");
            inner
                .get("result")
                .unwrap_or(inner)
                .as_array()
                .map_or(0, Vec::len)
        };
        assert!(size(&a) > 0, "{target}: tenant a sees nothing: {a}");
        assert_eq!(size(&b), 0, "{target}: tenant b sees {b}");
        let none = server.get_raw(target, &[]).await;
        assert_eq!(
            (none.status.as_u16(), none.text()),
            (401, "no org id\n".to_string()),
            "{target}"
        );
    }
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no tail message within 10 s")
            .expect("socket closed")
            .expect("socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("tail JSON"),
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn live_tail_receives_new_pushes() {
    let server = TestServer::start(CONFIG).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    push(&server, None, json!([{"stream": {"app": "live"}, "values": [[(now - 60 * NS).to_string(), "keep: before the session"]]}])).await;
    let listening = server.listen().await;
    // The only parameter Grafana's Live mode sends.
    let url = format!(
        "ws://{}/loki/api/v1/tail?query={}",
        listening.addr,
        browser(r#"{app="live"} |= "keep""#)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let history = next_text(&mut ws).await;
    assert_eq!(
        history["streams"][0]["values"][0][1],
        "keep: before the session"
    );

    let lines: Vec<(i64, &str)> = vec![
        (now + NS, "keep: first"),
        (now + 2 * NS, "drop: filtered out"),
        (now + 3 * NS, "keep: second"),
    ];
    let vals: Vec<Value> = lines
        .iter()
        .map(|(ts, l)| json!([ts.to_string(), l]))
        .collect();
    push(&server, None, json!([{"stream": {"app": "live"}, "values": vals}, {"stream": {"app": "other"}, "values": [[now.to_string(), "keep: other app"]]}])).await;
    let msg = next_text(&mut ws).await;
    let streams = msg["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{msg}");
    assert_eq!(streams[0]["stream"]["app"], "live");
    let got: Vec<(String, String)> = streams[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v.as_array().unwrap().len(), 2);
            (
                v[0].as_str().unwrap().to_string(),
                v[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ((now + NS).to_string(), "keep: first".to_string()),
            ((now + 3 * NS).to_string(), "keep: second".to_string())
        ]
    );

    // A metric query is refused before the upgrade, with the reason as text.
    let bad = format!(
        "ws://{}/loki/api/v1/tail?query={}",
        listening.addr,
        browser(r#"rate({app="live"}[1m])"#)
    );
    match tokio_tungstenite::connect_async(&bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400)
        }
        other => panic!(
            "expected HTTP 400, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }

    // Past the session cap, the socket is closed with code 1011 and Loki's text.
    let mut extra = Vec::new();
    for _ in 0..9 {
        let (mut s, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connect");
        // The history message proves the session is registered.
        next_text(&mut s).await;
        extra.push(s);
    }
    let (mut over, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), over.next())
            .await
            .expect("close within 10 s")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("close frame"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1011);
    assert!(
        close
            .reason
            .as_str()
            .starts_with("max concurrent tail requests limit exceeded"),
        "{}",
        close.reason
    );

    ws.close(None).await.expect("close");
    for mut s in extra {
        let _ = s.close(None).await;
    }
    listening.stop().await;
}
