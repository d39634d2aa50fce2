//! A tiny stand-in for a Loki-compatible server, for end-to-end tests of the tool: it
//! decodes pushes (snappy + protobuf) and counts what it got, refuses the first push
//! with 429 to exercise retries, and answers the query endpoints with canned bodies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use fenrir_proto::{Message, PushRequest};

#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) lines: AtomicU64,
    pub(crate) pushes: AtomicU64,
    pub(crate) refused_once: AtomicBool,
    pub(crate) flushes: AtomicU64,
    pub(crate) tenants: Mutex<Vec<String>>,
    pub(crate) queries: Mutex<Vec<HashMap<String, String>>>,
}

/// Starts the server on a thread of its own; returns its base URL and what it saw.
pub(crate) fn start() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let app = Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/loki/api/v1/query_range", get(query_range))
        .route(
            "/loki/api/v1/labels",
            get(|| async { r#"{"status":"success","data":["app","pod"]}"# }),
        )
        .route(
            "/loki/api/v1/label/pod/values",
            get(|| async { r#"{"status":"success","data":["pod-0"]}"# }),
        )
        .route("/flush", post(flush))
        .route("/ready", get(|| async { "ready\n" }))
        .with_state(seen.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (url, seen)
}

async fn push(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !seen.refused_once.swap(true, Ordering::SeqCst) {
        return StatusCode::TOO_MANY_REQUESTS;
    }
    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(push) = PushRequest::decode(raw.as_slice()) else {
        return StatusCode::BAD_REQUEST;
    };
    let lines: usize = push.streams.iter().map(|s| s.entries.len()).sum();
    seen.lines.fetch_add(lines as u64, Ordering::SeqCst);
    seen.pushes.fetch_add(1, Ordering::SeqCst);
    let tenant = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    seen.tenants.lock().unwrap().push(tenant);
    StatusCode::NO_CONTENT
}

async fn query_range(State(seen): State<Arc<Seen>>, RawQuery(query): RawQuery) -> String {
    let params = decode_form(query.as_deref().unwrap_or(""));
    let metric = params.get("query").is_some_and(|q| q.starts_with("sum"));
    seen.queries.lock().unwrap().push(params);
    if metric {
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"2"]]}]}}"#.into()
    } else {
        r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1","a"],["2","b"]]}]}}"#.into()
    }
}

async fn flush(State(seen): State<Arc<Seen>>) -> StatusCode {
    seen.flushes.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

/// `application/x-www-form-urlencoded` decoding, enough for the tool's own encoding.
fn decode_form(query: &str) -> HashMap<String, String> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}
