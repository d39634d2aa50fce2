//! Property: what is pushed is what is queried back. Entries of a few streams, inside the
//! out-of-order window, are split into batches pushed in any order, some batches retried
//! (before or after a flush). `query_range` must return every distinct entry exactly once:
//! Loki drops an entry identical to one already stored (same stream, timestamp and line).

use std::collections::BTreeSet;

use fenrir_it::TestServer;
use proptest::prelude::*;
use serde_json::{json, Value};

const CONFIG: &str = "limits_config:
  max_entries_limit_per_query: 100000
";

/// One entry: stream index, milliseconds after the base time, line number.
type Spec = (usize, i64, u8);

#[derive(Debug, Clone)]
struct Scenario {
    entries: Vec<Spec>,
    /// Batch of each entry.
    batch_of: Vec<usize>,
    /// Batches in push order; a batch appearing twice is a client retry.
    pushes: Vec<usize>,
    /// Flush after this many pushes.
    flush_after: Option<usize>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    // Lines from a small set and times on a coarse grid make equal timestamps and exact
    // duplicates frequent.
    let entry = (0..3usize, (0..1800i64).prop_map(|s| s * 1000), 0..5u8);
    (prop::collection::vec(entry, 1..40), 1..6usize).prop_flat_map(|(entries, batches)| {
        let n = entries.len();
        (
            Just(entries),
            prop::collection::vec(0..batches, n),
            prop::collection::vec(0..batches, 0..4),
            any::<Option<prop::sample::Index>>(),
        )
            .prop_flat_map(move |(entries, batch_of, retries, flush)| {
                let pushes: Vec<usize> = (0..batches).chain(retries).collect();
                let count = pushes.len();
                (
                    Just(entries),
                    Just(batch_of),
                    Just(pushes).prop_shuffle(),
                    Just(flush.map(|i| i.index(count + 1))),
                )
            })
            .prop_map(|(entries, batch_of, pushes, flush_after)| Scenario {
                entries,
                batch_of,
                pushes,
                flush_after,
            })
    })
}

fn line(stream: usize, n: u8) -> String {
    format!("stream {stream} line {n} status=200")
}

fn push_body(base_ns: i64, entries: &[Spec]) -> Vec<u8> {
    let streams: Vec<Value> = (0..3)
        .filter_map(|s| {
            let values: Vec<Value> = entries
                .iter()
                .filter(|e| e.0 == s)
                .map(|&(_, ms, n)| json!([(base_ns + ms * 1_000_000).to_string(), line(s, n)]))
                .collect();
            (!values.is_empty())
                .then(|| json!({"stream": {"prop": "yes", "s": s.to_string()}, "values": values}))
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams })).expect("json")
}

async fn run(scenario: Scenario) -> Result<(), TestCaseError> {
    let server = TestServer::start(CONFIG).await;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    let base_ns = now_ns - 40 * 60 * 1_000_000_000;
    for (i, &batch) in scenario.pushes.iter().enumerate() {
        if scenario.flush_after == Some(i) {
            let (status, body) = server.post("/flush", "text/plain", Vec::new()).await;
            prop_assert_eq!(status.as_u16(), 204, "{}", String::from_utf8_lossy(&body));
        }
        let entries: Vec<Spec> = scenario
            .entries
            .iter()
            .zip(&scenario.batch_of)
            .filter(|(_, &b)| b == batch)
            .map(|(e, _)| *e)
            .collect();
        if entries.is_empty() {
            continue;
        }
        let (status, body) = server
            .post(
                "/loki/api/v1/push",
                "application/json",
                push_body(base_ns, &entries),
            )
            .await;
        prop_assert_eq!(status.as_u16(), 204, "{}", String::from_utf8_lossy(&body));
    }

    let expected: BTreeSet<(usize, i64, String)> = scenario
        .entries
        .iter()
        .map(|&(s, ms, n)| (s, base_ns + ms * 1_000_000, line(s, n)))
        .collect();
    let params = [
        ("query", r#"{prop="yes"}"#.to_string()),
        ("start", (base_ns - 1).to_string()),
        ("end", (now_ns + 60_000_000_000).to_string()),
        ("limit", "100000".to_string()),
        ("direction", "forward".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let (status, body) = server.get("/loki/api/v1/query_range", &params, &[]).await;
    prop_assert_eq!(status.as_u16(), 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).expect("json");
    let mut got = Vec::new();
    for stream in answer["data"]["result"].as_array().expect("result") {
        let s: usize = stream["stream"]["s"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("stream label s");
        let mut last = i64::MIN;
        for v in stream["values"].as_array().expect("values") {
            let ts: i64 = v[0].as_str().and_then(|t| t.parse().ok()).expect("ts");
            prop_assert!(ts >= last, "forward query out of order in stream {}", s);
            last = ts;
            got.push((s, ts, v[1].as_str().expect("line").to_string()));
        }
    }
    got.sort();
    let expected: Vec<_> = expected.into_iter().collect();
    prop_assert_eq!(got, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn pushed_entries_are_queried_back_once(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(scenario))?;
    }
}
