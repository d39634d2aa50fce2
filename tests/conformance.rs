//! The Loki conformance corpus (tests/conformance, copied from the shared reference):
//! the dataset is pushed as Loki's runner pushes it, every recorded request is replayed,
//! and each answer is compared with what Grafana Loki 3.4.6 answered, by the corpus
//! README's rules. Run once before and once after a flush: both must pass.

#![allow(clippy::print_stdout)] // the pass counts and failures are this test's report

use std::collections::BTreeMap;
use std::path::PathBuf;

use fenrir_it::TestServer;
use serde_json::{json, Value};

/// Cases known to pass; raise it as features land, never lower it. Every case passes.
const MIN_PASSING: usize = 76;

const CONFIG: &str = "limits_config:
  reject_old_samples: false
  max_entries_limit_per_query: 100000
  max_query_series: 1000000
  max_query_length: 0
";

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

async fn push_dataset(server: &TestServer) {
    let text = std::fs::read_to_string(corpus().join("dataset.json")).expect("dataset");
    let data: Value = serde_json::from_str(&text).expect("dataset json");
    for s in data["streams"].as_array().expect("streams") {
        let values = s["values"].as_array().expect("values");
        for batch in values.chunks(500) {
            let body = json!({"streams": [{"stream": s["stream"], "values": batch}]});
            let (status, resp) = server
                .post(
                    "/loki/api/v1/push",
                    "application/json",
                    serde_json::to_vec(&body).expect("json"),
                )
                .await;
            assert_eq!(
                status.as_u16(),
                204,
                "push: {}",
                String::from_utf8_lossy(&resp)
            );
        }
    }
}

fn label_key(v: &Value) -> String {
    let map: BTreeMap<String, String> = v
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    format!("{map:?}")
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        },
        _ => None,
    }
}

fn same_number(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) if x.is_nan() || y.is_nan() => x.is_nan() && y.is_nan(),
        (Some(x), Some(y)) if x == y => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => false,
    }
}

fn diff_samples(exp: &[Value], act: &[Value], at: &str) -> Option<String> {
    if exp.len() != act.len() {
        return Some(format!(
            "{at}: {} samples, expected {}",
            act.len(),
            exp.len()
        ));
    }
    for (e, a) in exp.iter().zip(act) {
        if !(same_number(&e[0], &a[0]) && same_number(&e[1], &a[1])) {
            return Some(format!("{at}: sample {a}, expected {e}"));
        }
    }
    None
}

fn by_key<'a>(items: &'a [Value], field: &str) -> BTreeMap<String, &'a Value> {
    items.iter().map(|s| (label_key(&s[field]), s)).collect()
}

fn diff_result(kind: &str, exp: &[Value], act: &[Value]) -> Option<String> {
    match kind {
        "streams" | "matrix" | "vector" => {
            let field = if kind == "streams" {
                "stream"
            } else {
                "metric"
            };
            let (e, a) = (by_key(exp, field), by_key(act, field));
            if e.keys().ne(a.keys()) {
                let missing: Vec<_> = e.keys().filter(|k| !a.contains_key(*k)).take(2).collect();
                let extra: Vec<_> = a.keys().filter(|k| !e.contains_key(*k)).take(2).collect();
                return Some(format!(
                    "{field} sets differ: missing {missing:?} extra {extra:?}"
                ));
            }
            for (k, ev) in &e {
                let av = a[k];
                let d = match kind {
                    "streams" => (ev["values"] != av["values"]).then(|| {
                        let (ee, aa) = (ev["values"].as_array(), av["values"].as_array());
                        let (ee, aa) = (ee.map_or(&[][..], |v| v), aa.map_or(&[][..], |v| v));
                        match ee.iter().zip(aa).position(|(x, y)| x != y) {
                            Some(i) => {
                                format!("stream {k} entry {i}: {}, expected {}", aa[i], ee[i])
                            }
                            None => {
                                format!("stream {k}: {} entries, expected {}", aa.len(), ee.len())
                            }
                        }
                    }),
                    "matrix" => diff_samples(
                        ev["values"].as_array().map_or(&[][..], |v| v),
                        av["values"].as_array().map_or(&[][..], |v| v),
                        k,
                    ),
                    _ => diff_samples(
                        std::slice::from_ref(&ev["value"]),
                        std::slice::from_ref(&av["value"]),
                        k,
                    ),
                };
                if d.is_some() {
                    return d;
                }
            }
            None
        }
        "scalar" => diff_samples(
            std::slice::from_ref(&exp[0]),
            std::slice::from_ref(&act[0]),
            "scalar",
        ),
        _ => (exp != act).then(|| "result differs".to_string()),
    }
}

fn diff(path: &str, expected: &Value, status: u16, body: &[u8]) -> Option<String> {
    let exp_status = expected["status"].as_u64().unwrap_or(0) as u16;
    if status != exp_status {
        return Some(format!(
            "HTTP {status}, expected {exp_status} ({})",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    if status >= 400 {
        return body.is_empty().then(|| "empty error body".to_string());
    }
    let act: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("body is not JSON: {e}")),
    };
    let exp = &expected["body"];
    if path.ends_with("/index/stats") {
        return (act["streams"] != exp["streams"]).then(|| {
            format!(
                "index stats streams {}, expected {}",
                act["streams"], exp["streams"]
            )
        });
    }
    let (ed, ad) = (&exp["data"], &act["data"]);
    if let Some(kind) = ed["resultType"].as_str() {
        if ad["resultType"].as_str() != Some(kind) {
            return Some(format!("resultType {}, expected {kind}", ad["resultType"]));
        }
        let empty = Vec::new();
        let er = ed["result"].as_array().unwrap_or(&empty);
        let ar = ad["result"].as_array().unwrap_or(&empty);
        if kind == "scalar" {
            return diff_samples(
                std::slice::from_ref(&ed["result"]),
                std::slice::from_ref(&ad["result"]),
                "scalar",
            );
        }
        return diff_result(kind, er, ar);
    }
    if let (Some(e), Some(a)) = (ed.as_array(), ad.as_array()) {
        let norm = |v: &[Value]| {
            let mut k: Vec<String> = v
                .iter()
                .map(|x| {
                    if x.is_object() {
                        label_key(x)
                    } else {
                        x.to_string()
                    }
                })
                .collect();
            k.sort();
            k
        };
        return (norm(e) != norm(a))
            .then(|| format!("list differs: {} items, expected {}", a.len(), e.len()));
    }
    (exp != &act).then(|| "body differs".to_string())
}

async fn run_cases(server: &TestServer) -> (usize, Vec<String>) {
    let cases = std::fs::read_to_string(corpus().join("cases.jsonl")).expect("cases");
    let mut passed = 0;
    let mut failures = Vec::new();
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("case json");
        let id = case["id"].as_str().expect("id");
        let path = case["path"].as_str().expect("path");
        let params: Vec<(String, String)> = case["params"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut headers = vec![("X-Scope-OrgID".to_string(), "conformance".to_string())];
        if let Some(h) = case["headers"].as_object() {
            headers.extend(
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
            );
        }
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(corpus().join("expected").join(format!("{id}.json")))
                .expect("expected"),
        )
        .expect("expected json");
        let (status, body) = server.get(path, &params, &headers).await;
        match diff(path, &expected, status.as_u16(), &body) {
            None => passed += 1,
            Some(d) => failures.push(format!("FAIL {id}: {d}")),
        }
    }
    (passed, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_conformance_corpus() {
    let server = TestServer::start(CONFIG).await;
    push_dataset(&server).await;
    let (passed_before, failures_before) = run_cases(&server).await;
    let (status, _) = server.post("/flush", "text/plain", Vec::new()).await;
    assert_eq!(status.as_u16(), 204);
    let (passed_after, failures_after) = run_cases(&server).await;
    for f in &failures_before {
        println!("before flush: {f}");
    }
    for f in &failures_after {
        println!("after flush: {f}");
    }
    println!(
        "conformance: {passed_before} passed, {} failed before flush; {passed_after} passed, {} failed after flush",
        failures_before.len(),
        failures_after.len()
    );
    assert!(
        passed_before >= MIN_PASSING && passed_after >= MIN_PASSING,
        "conformance regressed below {MIN_PASSING} passing cases"
    );
}
