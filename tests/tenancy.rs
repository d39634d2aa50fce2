//! Tenant isolation on every read endpoint, with `auth_enabled: true`: two tenants push
//! data with their own label names, values, lines and structured metadata (and one label
//! they share), both flushed to the object store and still in memory, and each tenant's
//! queries, label and series lookups, stats, volumes, Drilldown endpoints, patterns and
//! live tail answer with its own data only. Requests without `X-Scope-OrgID` get Loki's
//! 401 `no org id`; a multi-tenant id (`a|b`) is refused, as Loki does while
//! `multi_tenant_queries_enabled` is off (its default).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fenrir_it::{RawResponse, TestServer};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const NS: i64 = 1_000_000_000;
const ORG: &str = "X-Scope-OrgID";

/// One tenant's data: every name, value, line and metadata of tenant `alpha` contains
/// "alpha", of `beta` "beta", so any trace of the other tenant in an answer is visible
/// as a substring.
struct Tenant {
    id: &'static str,
    /// What must never appear in this tenant's answers.
    foreign: &'static str,
}

const ALPHA: Tenant = Tenant {
    id: "alpha",
    foreign: "beta",
};
const BETA: Tenant = Tenant {
    id: "beta",
    foreign: "alpha",
};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// Go's form encoding of one parameter value.
fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Pushes `n` lines as `tenant`, streams `{env="prod", <id>_lbl="<id>_val", <id>_pod=…}`, lines in
/// logfmt with a `<id>_user` field, structured metadata `<id>_md`.
async fn push(server: &TestServer, tenant: &Tenant, from: i64, n: usize) {
    let id = tenant.id;
    let values: Vec<Value> = (0..n)
        .map(|i| {
            json!([
                (from + i as i64 * NS).to_string(),
                format!("{id}line n={i} level=info {id}_user={id}_person"),
                {format!("{id}_md"): format!("{id}_mdval{}", i % 3)}
            ])
        })
        .collect();
    // Two pods, so that detected_labels (which leaves out labels of one value) has one.
    let pod = |p: usize| {
        json!({
            "stream": {"env": "prod", format!("{id}_lbl"): format!("{id}_val"), format!("{id}_pod"): format!("{id}_pod{p}")},
            "values": values.iter().skip(p).step_by(2).collect::<Vec<_>>(),
        })
    };
    let body = json!({"streams": [pod(0), pod(1)]});
    let (status, resp) = server
        .post_with(
            "/loki/api/v1/push",
            "application/json",
            &[(ORG, id)],
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
    assert_eq!(status.as_u16(), 204, "{}", String::from_utf8_lossy(&resp));
}

fn ok_json(target: &str, r: &RawResponse) -> Value {
    assert_eq!(r.status.as_u16(), 200, "{target}: {}", r.text());
    r.json()
}

/// Every read endpoint, for the window `[start, end]`: (name, request target).
fn read_targets(start: i64, end: i64) -> Vec<(&'static str, String)> {
    let sel = enc(r#"{env="prod"}"#);
    let range = format!("start={start}&end={end}");
    vec![
        (
            "query_range log",
            format!("/loki/api/v1/query_range?query={sel}&{range}&limit=1000"),
        ),
        (
            "query_range metric",
            format!(
                "/loki/api/v1/query_range?query={}&{range}&step=60",
                enc(r#"sum by (alpha_lbl, beta_lbl) (count_over_time({env="prod"}[1m]))"#)
            ),
        ),
        (
            "query metric",
            format!(
                "/loki/api/v1/query?query={}&time={end}",
                enc(r#"count_over_time({env="prod"} | logfmt [1h])"#)
            ),
        ),
        ("labels", format!("/loki/api/v1/labels?{range}")),
        (
            "label values",
            format!("/loki/api/v1/label/env/values?{range}"),
        ),
        (
            "series",
            format!("/loki/api/v1/series?match[]={sel}&{range}"),
        ),
        (
            "index/stats",
            format!("/loki/api/v1/index/stats?query={sel}&{range}"),
        ),
        (
            "index/volume",
            format!("/loki/api/v1/index/volume?query={sel}&{range}&targetLabels=alpha_lbl,beta_lbl"),
        ),
        (
            "index/volume_range",
            format!(
                "/loki/api/v1/index/volume_range?query={sel}&{range}&step=60&targetLabels=alpha_lbl,beta_lbl"
            ),
        ),
        (
            "detected_labels",
            format!("/loki/api/v1/detected_labels?query={sel}&{range}"),
        ),
        (
            "detected_fields",
            format!("/loki/api/v1/detected_fields?query={sel}&{range}"),
        ),
        (
            "patterns",
            format!("/loki/api/v1/patterns?query={sel}&{range}&step=1m"),
        ),
    ]
}

/// Lines of a streams answer (query_range of a log query, or a tail message).
fn lines(streams: &Value) -> Vec<String> {
    streams
        .as_array()
        .expect("streams")
        .iter()
        .flat_map(|s| s["values"].as_array().expect("values").iter())
        .map(|v| v[1].as_str().expect("line").to_string())
        .collect()
}

/// Checks every read endpoint for `tenant`, which has pushed `own` lines.
async fn check_tenant(server: &TestServer, tenant: &Tenant, own: usize, start: i64, end: i64) {
    let id = tenant.id;
    let headers = [(ORG, id)];
    for (name, target) in read_targets(start, end) {
        let v = ok_json(&target, &server.get_raw(&target, &headers).await);
        let text = v.to_string();
        assert!(
            !text.contains(tenant.foreign),
            "{name}: tenant {id} sees {}'s data: {text}",
            tenant.foreign
        );
        // Something of its own in each answer, so that an empty answer does not pass.
        let own_marker = match name {
            "label values" => "prod".to_string(),
            "index/stats" => format!("\"entries\":{own}"),
            "patterns" => format!("{id}line"),
            "query metric" => format!("{id}_user"),
            _ => format!("{id}_"),
        };
        assert!(
            text.contains(&own_marker),
            "{name}: tenant {id} lacks {own_marker}: {text}"
        );
        if name == "query_range log" {
            let got = lines(&v["data"]["result"]);
            assert_eq!(got.len(), own, "{name}: tenant {id}");
            assert!(got.iter().all(|l| l.starts_with(&format!("{id}line"))));
        }
    }

    // Volume by the shared label alone: the tenant's own bytes, not both tenants'.
    let sel = enc(r#"{env="prod"}"#);
    let range = format!("start={start}&end={end}");
    let stats = format!("/loki/api/v1/index/stats?query={sel}&{range}");
    let stats = ok_json(&stats, &server.get_raw(&stats, &headers).await);
    let volume = format!("/loki/api/v1/index/volume?query={sel}&{range}");
    let volume = ok_json(&volume, &server.get_raw(&volume, &headers).await);
    assert_eq!(
        volume["data"]["result"][0]["value"][1],
        json!(stats["bytes"].to_string()),
        "tenant {id}: volume {volume} against stats {stats}"
    );

    // The other tenant's names and values are unknown here; its own are known.
    let foreign = tenant.foreign;
    for (target, own_answer) in [
        (
            format!("/loki/api/v1/label/{id}_lbl/values?{range}"),
            Some(format!("{id}_val")),
        ),
        (
            format!("/loki/api/v1/label/{foreign}_lbl/values?{range}"),
            None,
        ),
        (
            format!(
                "/loki/api/v1/detected_field/{id}_md/values?query={}&{range}",
                enc(r#"{env="prod"}"#)
            ),
            Some(format!("{id}_mdval")),
        ),
        (
            format!(
                "/loki/api/v1/detected_field/{foreign}_md/values?query={}&{range}",
                enc(r#"{env="prod"}"#)
            ),
            None,
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&{range}&limit=1000",
                enc(&format!(r#"{{{foreign}_lbl="{foreign}_val"}}"#))
            ),
            None,
        ),
        (
            format!(
                "/loki/api/v1/series?match[]={}&{range}",
                enc(&format!(r#"{{{foreign}_lbl=~".+"}}"#))
            ),
            None,
        ),
    ] {
        let r = server.get_raw(&target, &headers).await;
        let text = r.text();
        // Loki answers some lookups of unknown names with 200 and nothing, some with 404.
        assert!(matches!(r.status.as_u16(), 200 | 404), "{target}: {}", text);
        assert!(!text.contains(foreign), "{target}: tenant {id} sees {text}");
        match own_answer {
            Some(marker) => assert!(text.contains(&marker), "{target}: {text}"),
            None => assert!(
                !text.contains("_val") && !text.contains(&format!("{id}line")),
                "{target}: {text}"
            ),
        }
    }
}

/// Without `X-Scope-OrgID`: Loki's 401 `no org id`; with `alpha|beta`: refused, never
/// a union of both tenants.
async fn check_unauthenticated(server: &TestServer, start: i64, end: i64) {
    for (name, target) in read_targets(start, end) {
        let r = server.get_raw(&target, &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (401, "no org id\n".to_string()),
            "{name}"
        );
        let r = server.get_raw(&target, &[(ORG, "alpha|beta")]).await;
        assert_eq!(r.status.as_u16(), 400, "{name}: {}", r.text());
        assert!(
            r.text().contains("multiple org IDs present"),
            "{name}: {}",
            r.text()
        );
    }
    let (status, body) = server
        .post_with(
            "/loki/api/v1/push",
            "application/json",
            &[(ORG, "alpha|beta")],
            br#"{"streams":[{"stream":{"env":"prod"},"values":[["1","x"]]}]}"#.to_vec(),
        )
        .await;
    assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(&body));
}

async fn flush(server: &TestServer) {
    let (status, body) = server
        .post_with("/flush", "text/plain", &[], Vec::new())
        .await;
    assert_eq!(status.as_u16(), 204, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_endpoint_keeps_tenants_apart() {
    let server =
        TestServer::start("auth_enabled: true\nlimits_config:\n  max_query_length: 0\n").await;
    let base = now_ns() - 30 * 60 * NS;
    let (start, end) = (base - 60 * NS, now_ns() + 60 * NS);

    // Flushed data only.
    push(&server, &ALPHA, base, 20).await;
    push(&server, &BETA, base, 30).await;
    flush(&server).await;
    assert!(server.built.ingester.memory_bytes() == 0);
    check_tenant(&server, &ALPHA, 20, start, end).await;
    check_tenant(&server, &BETA, 30, start, end).await;

    // Flushed data and data still in memory.
    push(&server, &ALPHA, base + 100 * NS, 5).await;
    push(&server, &BETA, base + 100 * NS, 7).await;
    check_tenant(&server, &ALPHA, 25, start, end).await;
    check_tenant(&server, &BETA, 37, start, end).await;
    check_unauthenticated(&server, start, end).await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Socket) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_session_never_receives_another_tenants_lines() {
    let server = TestServer::start("auth_enabled: true\n").await;
    let base = now_ns() - 60 * NS;
    push(&server, &ALPHA, base, 3).await;
    push(&server, &BETA, base, 3).await;
    flush(&server).await;
    push(&server, &ALPHA, base + 10 * NS, 2).await;
    push(&server, &BETA, base + 10 * NS, 2).await;
    let listening = server.listen().await;
    let url = format!(
        "ws://{}/loki/api/v1/tail?query={}",
        listening.addr,
        enc(r#"{env="prod"}"#)
    );

    let mut sessions = Vec::new();
    for tenant in [&ALPHA, &BETA] {
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut()
            .insert(ORG, HeaderValue::from_static(tenant.id));
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        // History: the tenant's own flushed and in-memory lines.
        let history = lines(&next_text(&mut ws).await["streams"]);
        assert_eq!(history.len(), 5, "{}: {history:?}", tenant.id);
        assert!(
            history.iter().all(|l| l.starts_with(tenant.id)),
            "{history:?}"
        );
        sessions.push((tenant, ws));
    }

    // The tenants push in turn; each session collects its own five lines, and any line of
    // the other tenant's pushes in between would arrive among them.
    let now = now_ns();
    push(&server, &BETA, now, 4).await;
    push(&server, &ALPHA, now, 4).await;
    push(&server, &BETA, now + 10 * NS, 1).await;
    push(&server, &ALPHA, now + 10 * NS, 1).await;
    for (tenant, ws) in &mut sessions {
        let mut got = Vec::new();
        while got.len() < 5 {
            let live = lines(&next_text(ws).await["streams"]);
            assert!(
                live.iter().all(|l| l.starts_with(tenant.id)),
                "{}'s session got {live:?}",
                tenant.id
            );
            got.extend(live);
        }
        assert_eq!(got.len(), 5, "{}: {got:?}", tenant.id);
    }

    // No tenant, or two: refused before the upgrade.
    for (headers, want) in [(None, 401), (Some("alpha|beta"), 400)] {
        let mut req = url.as_str().into_client_request().expect("request");
        if let Some(h) = headers {
            req.headers_mut().insert(ORG, HeaderValue::from_static(h));
        }
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), want);
                if want == 401 {
                    let body = resp.body().clone().unwrap_or_default();
                    assert_eq!(String::from_utf8_lossy(&body), "no org id\n");
                }
            }
            other => panic!(
                "expected HTTP {want}, got {:?}",
                other.map(|(_, r)| r.status())
            ),
        }
    }
    for (_, mut ws) in sessions {
        let _ = ws.close(None).await;
    }
    listening.stop().await;
}
