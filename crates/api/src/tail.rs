//! `GET /loki/api/v1/tail`: Loki's live tail over a WebSocket (Grafana Explore "Live").
//!
//! The push handler hands every acknowledged batch to the [`TailHub`], which passes the
//! streams matching each session's selector to that session through a bounded queue;
//! the session runs the query's pipeline and sends Loki's `{"streams":…}` messages. A
//! session that cannot keep up loses batches, and they are reported to it as
//! `dropped_entries` instead of piling up in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use fenrir_common::{Entry, LabelSet, Matcher, Tenant};
use fenrir_logql::ast::{Expr, LogExpr};
use fenrir_logql::{parse_expr, LogPipeline};
use fenrir_query::{Direction, LogQuery};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::json::{push_map, push_str};
use crate::params::{now_ns, parse_time, Form};
use crate::{ApiError, AppState};

/// Dropped entries remembered per session between two messages.
const MAX_DROPPED_REPORTED: usize = 1000;
/// Close code for errors (Loki uses 1011, internal error).
const CLOSE_ERROR: u16 = 1011;
const CLOSE_NORMAL: u16 = 1000;

/// Limits of live tailing.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Sessions open at once over all tenants (Loki's `max_concurrent_tail_requests`).
    pub max_sessions: usize,
    /// A session is closed after this long (Loki's `tail_max_duration`).
    pub max_duration: Duration,
    /// Push batches queued per session before further batches are dropped.
    pub queue_batches: usize,
    /// How often the server pings the client.
    pub ping_interval: Duration,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            max_sessions: 10,
            max_duration: Duration::from_secs(3600),
            queue_batches: 64,
            ping_interval: Duration::from_secs(1),
        }
    }
}

/// The streams of one acknowledged push that match a session's selector.
struct Batch {
    received: Instant,
    streams: Vec<(LabelSet, Arc<Vec<Entry>>)>,
}

struct Subscriber {
    id: u64,
    tenant: Tenant,
    matchers: Vec<Matcher>,
    tx: mpsc::Sender<Batch>,
    /// Entries lost because the queue was full, reported with the next message.
    dropped: Mutex<Vec<(LabelSet, i64)>>,
}

/// Open tail sessions, fed by the push path.
#[derive(Default)]
pub(crate) struct TailHub {
    cfg: TailConfig,
    sessions: Mutex<Vec<Arc<Subscriber>>>,
    /// Mirrors `sessions.len()` so that pushes skip the lock when nobody tails.
    open: AtomicUsize,
    next_id: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes its session from the hub when the session ends.
struct Registration {
    hub: Arc<TailHub>,
    sub: Arc<Subscriber>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut sessions = lock(&self.hub.sessions);
        sessions.retain(|s| s.id != self.sub.id);
        self.hub.open.store(sessions.len(), Ordering::Relaxed);
    }
}

impl TailHub {
    pub(crate) fn new(cfg: TailConfig) -> Self {
        TailHub {
            cfg,
            ..TailHub::default()
        }
    }

    /// Whether a push for `tenant` has anyone to go to (a cheap pre-check).
    pub(crate) fn wants(&self, tenant: &Tenant) -> bool {
        self.open.load(Ordering::Relaxed) > 0
            && lock(&self.sessions).iter().any(|s| &s.tenant == tenant)
    }

    /// Hands acknowledged streams to the sessions of `tenant` whose selector matches.
    pub(crate) fn publish(&self, tenant: &Tenant, streams: &[(LabelSet, Arc<Vec<Entry>>)]) {
        let sessions: Vec<Arc<Subscriber>> = lock(&self.sessions)
            .iter()
            .filter(|s| &s.tenant == tenant)
            .cloned()
            .collect();
        let received = Instant::now();
        for sub in sessions {
            let matching: Vec<(LabelSet, Arc<Vec<Entry>>)> = streams
                .iter()
                .filter(|(labels, _)| sub.matchers.iter().all(|m| m.matches_labels(labels)))
                .cloned()
                .collect();
            if matching.is_empty() {
                continue;
            }
            let batch = Batch {
                received,
                streams: matching,
            };
            if let Err(mpsc::error::TrySendError::Full(batch)) = sub.tx.try_send(batch) {
                let mut dropped = lock(&sub.dropped);
                let lost = batch
                    .streams
                    .iter()
                    .flat_map(|(labels, entries)| entries.iter().map(|e| (labels.clone(), e.ts)));
                let room = MAX_DROPPED_REPORTED.saturating_sub(dropped.len());
                dropped.extend(lost.take(room));
            }
        }
    }

    fn register(
        self: &Arc<Self>,
        tenant: Tenant,
        matchers: Vec<Matcher>,
    ) -> Result<(Registration, mpsc::Receiver<Batch>), String> {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.cfg.max_sessions {
            return Err(format!(
                "max concurrent tail requests limit exceeded, count > limit ({} > {})",
                sessions.len() + 1,
                self.cfg.max_sessions
            ));
        }
        let (tx, rx) = mpsc::channel(self.cfg.queue_batches.max(1));
        let sub = Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) as u64,
            tenant,
            matchers,
            tx,
            dropped: Mutex::new(Vec::new()),
        });
        sessions.push(sub.clone());
        self.open.store(sessions.len(), Ordering::Relaxed);
        Ok((
            Registration {
                hub: self.clone(),
                sub,
            },
            rx,
        ))
    }
}

/// What a session was asked for.
struct TailRequest {
    tenant: Tenant,
    expr: LogExpr,
    limit: usize,
    start: i64,
    delay: Duration,
}

fn tail_request(
    st: &AppState,
    q: Option<String>,
    headers: &HeaderMap,
) -> Result<TailRequest, ApiError> {
    let tenant = st.tenant(headers)?;
    let form = Form::parse(&Method::GET, q.as_deref(), headers, &[]);
    let expr = match parse_expr(form.get("query").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?
    {
        Expr::Log(log) => log,
        Expr::Metric(_) => {
            return Err(ApiError::bad_request(
                "tail is only supported for log queries",
            ))
        }
    };
    LogPipeline::new(&expr.stages)?;
    let limit = match form.get("limit") {
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => n as usize,
            Ok(_) => return Err(ApiError::bad_request("limit must be a positive value")),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "strconv.Atoi: parsing \"{s}\": invalid syntax"
                )))
            }
        },
        None => 100,
    };
    let max = st
        .cfg
        .limits
        .get(tenant.as_str())
        .max_entries_limit_per_query;
    let limit = if max > 0 { limit.min(max) } else { limit };
    let delay = match form.get("delay_for") {
        Some(s) => {
            let secs: u64 = s.parse().map_err(|_| {
                ApiError::bad_request(format!("strconv.Atoi: parsing \"{s}\": invalid syntax"))
            })?;
            if secs > 5 {
                return Err(ApiError::bad_request("delay_for can't be greater than 5"));
            }
            Duration::from_secs(secs)
        }
        None => Duration::ZERO,
    };
    let start = match form.get("start") {
        Some(s) => parse_time(s).map_err(|e| {
            ApiError::bad_request(format!("could not parse 'start' parameter: {e}"))
        })?,
        None => now_ns() - 3600 * 1_000_000_000,
    };
    Ok(TailRequest {
        tenant,
        expr,
        limit,
        start,
        delay,
    })
}

/// The upgrade handler: parameters and tenant are checked first (errors are plain HTTP
/// 400s); later failures close the socket with code 1011 and the error as reason.
pub(crate) async fn tail(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let req = tail_request(&st, q, &headers)?;
    Ok(ws.on_upgrade(move |socket| session(st, req, socket)))
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // A close reason is limited to 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn session(st: AppState, req: TailRequest, mut socket: WebSocket) {
    let (registration, mut rx) = match st
        .tail
        .register(req.tenant.clone(), req.expr.selector.clone())
    {
        Ok(r) => r,
        Err(message) => {
            close(&mut socket, CLOSE_ERROR, &message).await;
            return;
        }
    };
    tracing::debug!(tenant = %req.tenant, "tail session opened");
    let pipeline = match LogPipeline::new(&req.expr.stages) {
        Ok(p) => p,
        Err(e) => {
            close(&mut socket, CLOSE_ERROR, &e.to_string()).await;
            return;
        }
    };
    // History first: the newest `limit` entries since `start`, oldest first. Pushes that
    // arrive meanwhile are already queued for the live part.
    let history = st
        .engine
        .query_logs(LogQuery {
            tenant: req.tenant.clone(),
            expr: req.expr.clone(),
            start: req.start,
            end: now_ns(),
            limit: req.limit,
            direction: Direction::Backward,
            categorize: false,
        })
        .await;
    match history {
        Ok(result) => {
            let streams: Vec<(LabelSet, Vec<(i64, String)>)> = result
                .streams
                .into_iter()
                .map(|s| {
                    let mut entries: Vec<(i64, String)> =
                        s.entries.into_iter().map(|e| (e.ts, e.line)).collect();
                    entries.reverse();
                    (s.labels, entries)
                })
                .collect();
            if !streams.is_empty() && !send_message(&mut socket, &streams, &[]).await {
                return;
            }
        }
        Err(e) => {
            close(&mut socket, CLOSE_ERROR, &e.to_string()).await;
            return;
        }
    }
    let deadline = tokio::time::sleep(st.tail.cfg.max_duration);
    tokio::pin!(deadline);
    let mut ping = tokio::time::interval(st.tail.cfg.ping_interval);
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(batch) = batch else { break };
                tokio::time::sleep_until(batch.received + req.delay).await;
                let streams = run_pipeline(&pipeline, &batch);
                let dropped = std::mem::take(&mut *lock(&registration.sub.dropped));
                if (!streams.is_empty() || !dropped.is_empty())
                    && !send_message(&mut socket, &streams, &dropped).await
                {
                    break;
                }
            }
            _ = ping.tick() => {
                let dropped = std::mem::take(&mut *lock(&registration.sub.dropped));
                if !dropped.is_empty() && !send_message(&mut socket, &[], &dropped).await {
                    break;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => {
                match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = &mut deadline => {
                close(&mut socket, CLOSE_NORMAL, "").await;
                break;
            }
        }
    }
    tracing::debug!(tenant = %req.tenant, "tail session closed");
}

/// The batch's entries that pass the pipeline, grouped by their labels after it.
fn run_pipeline(pipeline: &LogPipeline, batch: &Batch) -> Vec<(LabelSet, Vec<(i64, String)>)> {
    let mut out: Vec<(LabelSet, Vec<(i64, String)>)> = Vec::new();
    for (labels, entries) in &batch.streams {
        let mut sp = pipeline.for_stream(labels);
        let mut md: Vec<(&str, &str)> = Vec::new();
        for e in entries.iter() {
            md.clear();
            md.extend(
                e.structured_metadata
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let Some(p) = sp.process(e.ts, &e.line, &md) else {
                continue;
            };
            let line = p.line.into_owned();
            match out.iter_mut().find(|(l, _)| l == &p.labels.all) {
                Some((_, list)) => list.push((e.ts, line)),
                None => out.push((p.labels.all.clone(), vec![(e.ts, line)])),
            }
        }
    }
    out
}

/// Sends one `{"streams":…,"dropped_entries":…}` message; `false` when the client is
/// gone.
async fn send_message(
    socket: &mut WebSocket,
    streams: &[(LabelSet, Vec<(i64, String)>)],
    dropped: &[(LabelSet, i64)],
) -> bool {
    let mut out = String::from("{\"streams\":[");
    for (i, (labels, entries)) in streams.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        push_map(&mut out, labels.iter());
        out.push_str(",\"values\":[");
        for (j, (ts, line)) in entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&format!("[\"{ts}\","));
            push_str(&mut out, line);
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push(']');
    if !dropped.is_empty() {
        out.push_str(",\"dropped_entries\":[");
        for (i, (labels, ts)) in dropped.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":");
            push_map(&mut out, labels.iter());
            out.push_str(&format!(",\"timestamp\":\"{ts}\"}}"));
        }
        out.push(']');
    }
    out.push('}');
    socket.send(Message::Text(out.into())).await.is_ok()
}

#[cfg(test)]
mod tests {
    use fenrir_common::MatchOp;

    use super::*;

    fn batch(app: &str, ts: &[i64]) -> Vec<(LabelSet, Arc<Vec<Entry>>)> {
        vec![(
            LabelSet::from_pairs([("app", app)]),
            Arc::new(ts.iter().map(|t| Entry::new(*t, "line")).collect()),
        )]
    }

    #[test]
    fn slow_sessions_get_dropped_entries_not_memory() {
        let hub = Arc::new(TailHub::new(TailConfig {
            queue_batches: 1,
            ..TailConfig::default()
        }));
        let tenant = Tenant::single();
        let selector = vec![Matcher::new(MatchOp::Eq, "app", "a").unwrap()];
        let (reg, mut rx) = hub.register(tenant.clone(), selector).unwrap();
        assert!(hub.wants(&tenant));
        hub.publish(&tenant, &batch("a", &[1, 2]));
        hub.publish(&tenant, &batch("b", &[3]));
        hub.publish(&tenant, &batch("a", &[4, 5]));
        let queued = rx.try_recv().unwrap();
        assert_eq!(queued.streams[0].1.len(), 2);
        assert!(
            rx.try_recv().is_err(),
            "the non-matching stream is never queued"
        );
        let dropped: Vec<i64> = lock(&reg.sub.dropped).iter().map(|(_, ts)| *ts).collect();
        assert_eq!(dropped, [4, 5]);
        drop(reg);
        assert!(!hub.wants(&tenant));
    }

    #[test]
    fn sessions_are_capped() {
        let hub = Arc::new(TailHub::new(TailConfig {
            max_sessions: 1,
            ..TailConfig::default()
        }));
        let first = hub.register(Tenant::single(), Vec::new()).unwrap();
        let err = hub.register(Tenant::single(), Vec::new()).err().unwrap();
        assert_eq!(
            err,
            "max concurrent tail requests limit exceeded, count > limit (2 > 1)"
        );
        drop(first);
        assert!(hub.register(Tenant::single(), Vec::new()).is_ok());
    }
}
