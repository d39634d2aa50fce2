//! A real client library against the real binary: the `tracing-loki` layer pushes
//! snappy-compressed protobuf to `/loki/api/v1/push` on 127.0.0.1, and `query_range` gives
//! back every event with the labels the layer set.

mod support;

use std::time::{Duration, Instant};

use support::{now_ns, query_lines, Server};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn tracing_loki_events_are_queryable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), "");
    let start_ns = now_ns() - 60_000_000_000;
    let url = tracing_loki::url::Url::parse(&format!("http://{}/", server.addr)).expect("url");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (layer, controller, task) = tracing_loki::builder()
            .label("service", "fenrir-tracing-loki-test")
            .expect("label")
            .extra_field("run", "r1")
            .expect("extra field")
            .build_controller_url(url)
            .expect("layer");
        let task = tokio::spawn(task);
        {
            let subscriber = tracing_subscriber::registry().with(layer);
            let _guard = tracing::subscriber::set_default(subscriber);
            // The layer never sends on its own for targets starting with `tracing_loki`
            // (its own logs), which this test crate's name is: set a target.
            tracing::info!(target: "app", order = 1, "first event");
            tracing::warn!(target: "app", order = 2, user = "ünïcode ✓", "second event");
            tracing::error!(target: "app", order = 3, "third event with \"quotes\"");
        }
        controller.shutdown().await;
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("tracing-loki delivered its events within 30s")
            .expect("background task");
    });

    // The layer sends each level as its own stream; the three pushes were acknowledged
    // before the task ended, so the lines are queryable now. Allow a short grace anyway.
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = query_lines(
            server.addr,
            r#"{service="fenrir-tracing-loki-test"}"#,
            start_ns,
            now_ns() + 60_000_000_000,
            100,
        );
        if got.len() >= 3 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(got.len(), 3, "events back: {got:#?}\n{}", server.log_text());

    let mut events: Vec<(String, serde_json::Value)> = got
        .iter()
        .map(|(labels, _, line)| {
            let labels: serde_json::Value = serde_json::from_str(labels).expect("labels json");
            let line: serde_json::Value = serde_json::from_str(line).expect("line is json");
            (labels["level"].as_str().unwrap_or("").to_owned(), line)
        })
        .collect();
    events.sort_by_key(|(_, line)| line["order"].as_i64());
    let summary: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|(level, line)| {
            (
                level.as_str(),
                line["message"].as_str().unwrap_or(""),
                line["run"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("info", "first event", "r1"),
            ("warn", "second event", "r1"),
            ("error", "third event with \"quotes\"", "r1"),
        ]
    );
    assert_eq!(events[1].1["user"], "ünïcode ✓");
    eprintln!("tracing_loki: 3 events pushed by tracing-loki and queried back");
}
