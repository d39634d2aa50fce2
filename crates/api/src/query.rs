//! The read endpoints: query, query_range, labels, label values, series, index stats.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use fenrir_common::{Matcher, Tenant};
use fenrir_config::Limits;
use fenrir_logql::ast::{Expr, LogExpr, MetricExpr};
use fenrir_logql::{
    format_sample_value, format_timestamp_seconds, parse_expr, EvalParams, QueryValue,
};
use fenrir_query::{Direction, LogQuery, LogResult};

use crate::json::{push_map, push_str, push_str_array};
use crate::params::{bounds, label_bounds, now_ns, parse_step, parse_time, Form};
use crate::{ApiError, AppState};

const MAX_POINTS: i64 = 11_000;
const NANOS: i64 = 1_000_000_000;

pub(crate) fn json_response(mut body: String) -> Response {
    body.push('\n');
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

pub(crate) struct Request {
    pub(crate) tenant: Tenant,
    /// The tenant's limits as they were when the request arrived.
    pub(crate) limits: Arc<Limits>,
    pub(crate) form: Form,
    pub(crate) headers: HeaderMap,
}

/// Every query endpoint reads its request the same way: tenant, the tenant's limits, and
/// the parameters from the query string or a form body.
impl FromRequest<AppState> for Request {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        st: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let method = req.method().clone();
        let query = req.uri().query().map(str::to_owned);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, st)
            .await
            .map_err(IntoResponse::into_response)?;
        let tenant = st.tenant(&headers).map_err(IntoResponse::into_response)?;
        let limits = st.cfg.limits.get(tenant.as_str());
        let form = Form::parse(&method, query.as_deref(), &headers, &body);
        Ok(Request {
            tenant,
            limits,
            form,
            headers,
        })
    }
}

fn query_text(form: &Form) -> &str {
    form.get("query").unwrap_or("")
}

/// A query that must be a plain stream selector.
pub(crate) fn selector(text: &str) -> Result<Vec<Matcher>, ApiError> {
    match parse_expr(text).map_err(|e| ApiError::bad_request(e.to_string()))? {
        Expr::Log(LogExpr { selector, stages }) if stages.is_empty() => Ok(selector),
        _ => Err(ApiError::bad_request(
            "parse error : only label matchers are supported",
        )),
    }
}

pub(crate) async fn query_range(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let expr = parse_query(&req.form)?;
    let (start, end) = bounds(&req.form)?;
    if end < start {
        return Err(ApiError::bad_request(
            "end timestamp must not be before or equal to start time",
        ));
    }
    let step = match req.form.get("step") {
        Some(s) => parse_step(s)?,
        None => EvalParams::default_step(start, end),
    };
    if step <= 0 {
        return Err(ApiError::bad_request(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_request(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
        ));
    }
    let Some(start) = lookback_start(&req.limits, start, end) else {
        // Entirely before max_query_lookback: an empty answer, as Loki gives.
        return Ok(json_response(match expr {
            Expr::Log(_) => streams_body(
                &LogResult {
                    streams: Vec::new(),
                    entries_scanned: 0,
                    bytes_scanned: 0,
                },
                categorize(&req.headers),
                started,
            ),
            Expr::Metric(_) => value_body(
                &QueryValue::Matrix(Vec::new()),
                &EvalParams::range(start, end, step, 0),
                started,
            ),
        }));
    };
    check_query_length(&req.limits, start, end)?;
    match expr {
        Expr::Log(log) => {
            let limit = limit(&req.limits, &req.form)?;
            let direction = direction(&req.form)?;
            let categorize = categorize(&req.headers);
            let query = st.engine.query_logs(LogQuery {
                tenant: req.tenant,
                expr: log,
                start,
                end,
                limit,
                direction,
                categorize,
            });
            let result = within_timeout(&req.limits, query).await?;
            Ok(json_response(streams_body(&result, categorize, started)))
        }
        Expr::Metric(m) => {
            check_range_intervals(&req.limits, &m)?;
            let params = EvalParams::range(start, end, step, req.limits.max_query_series);
            run_metric(&st, &req, m, params, started).await
        }
    }
}

pub(crate) async fn query_instant(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let expr = parse_query(&req.form)?;
    let time = match req.form.get("time") {
        Some(s) => parse_time(s).map_err(ApiError::bad_request)?,
        None => now_ns(),
    };
    match expr {
        Expr::Log(_) => Err(ApiError::bad_request(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        )),
        Expr::Metric(m) => {
            check_range_intervals(&req.limits, &m)?;
            let params = EvalParams::instant(time, req.limits.max_query_series);
            run_metric(&st, &req, m, params, started).await
        }
    }
}

pub(crate) async fn labels(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (start, end) = label_bounds(&req.form)?;
    let start = lookback_start(&req.limits, start, end).unwrap_or(end);
    let matchers = optional_selector(&req.form)?;
    let query = st.engine.label_names(req.tenant, matchers, start, end);
    let names = within_timeout(&req.limits, query).await?;
    Ok(json_response(string_list_body(&names)))
}

pub(crate) async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (start, end) = label_bounds(&req.form)?;
    let start = lookback_start(&req.limits, start, end).unwrap_or(end);
    let matchers = optional_selector(&req.form)?;
    let query = st
        .engine
        .label_values(req.tenant, name, matchers, start, end);
    let values = within_timeout(&req.limits, query).await?;
    Ok(json_response(string_list_body(&values)))
}

pub(crate) async fn series(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (start, end) = bounds(&req.form)?;
    let start = lookback_start(&req.limits, start, end).unwrap_or(end);
    let mut groups = Vec::new();
    for text in req.form.all("match[]").chain(req.form.all("match")) {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact == "{}" || compact.is_empty() {
            groups.push(Vec::new());
        } else {
            groups.push(selector(text)?);
        }
    }
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    let query = st.engine.series(req.tenant, groups, start, end);
    let series = within_timeout(&req.limits, query).await?;
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, labels) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_map(&mut out, labels.iter());
    }
    out.push_str("]}");
    Ok(json_response(out))
}

pub(crate) async fn index_stats(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&req.form)?;
    let start = lookback_start(&req.limits, start, end).unwrap_or(end);
    let matchers = selector(query_text(&req.form))?;
    let query = st.engine.stats(req.tenant, matchers, start, end);
    let s = within_timeout(&req.limits, query).await?;
    Ok(json_response(format!(
        "{{\"streams\":{},\"chunks\":{},\"bytes\":{},\"entries\":{}}}",
        s.streams, s.chunks, s.bytes, s.entries
    )))
}

fn parse_query(form: &Form) -> Result<Expr, ApiError> {
    parse_expr(query_text(form)).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The optional `query` selector of the label endpoints; none selects every stream.
pub(crate) fn optional_selector(form: &Form) -> Result<Vec<Matcher>, ApiError> {
    form.get("query").map_or(Ok(Vec::new()), selector)
}

async fn run_metric(
    st: &AppState,
    req: &Request,
    expr: MetricExpr,
    params: EvalParams,
    started: Instant,
) -> Result<Response, ApiError> {
    let query = st.engine.query_metric(req.tenant.clone(), expr, params);
    let value = within_timeout(&req.limits, query).await?;
    Ok(json_response(value_body(&value, &params, started)))
}

/// Runs a query under the tenant's `query_timeout` (0: none); past it the client gets
/// Loki's 504. Dropping the query's future cancels the engine's scan, which stops at its
/// next block and frees its threads.
pub(crate) async fn within_timeout<T>(
    limits: &Limits,
    query: impl Future<Output = fenrir_query::Result<T>>,
) -> Result<T, ApiError> {
    let timeout = limits.query_timeout;
    let result = if timeout.is_zero() {
        query.await
    } else {
        match tokio::time::timeout(timeout, query).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(timeout = ?timeout, "query timed out");
                return Err(ApiError::query_timeout());
            }
        }
    };
    result.map_err(ApiError::from_query)
}

/// `max_query_range`: no `[range]` in the query may be longer (0: no limit).
fn check_range_intervals(limits: &Limits, expr: &MetricExpr) -> Result<(), ApiError> {
    let max = nanos(limits.max_query_range);
    if max > 0 && longest_range(expr) > max {
        return Err(ApiError::bad_request("[interval] value exceeds limit"));
    }
    Ok(())
}

/// The longest `[range]` of the range aggregations inside `expr`, in ns.
fn longest_range(expr: &MetricExpr) -> i64 {
    match expr {
        MetricExpr::RangeAgg(agg) => agg.range.range,
        MetricExpr::VectorAgg(agg) => longest_range(&agg.inner),
        MetricExpr::Binary(b) => longest_range(&b.lhs).max(longest_range(&b.rhs)),
        MetricExpr::LabelReplace(l) => longest_range(&l.inner),
        MetricExpr::Parens(inner) => longest_range(inner),
        MetricExpr::Literal(_) | MetricExpr::Vector(_) => 0,
    }
}

/// `max_query_lookback` (0: none): the start moved up to now − lookback, or `None` when
/// the whole range is older than that.
fn lookback_start(limits: &Limits, start: i64, end: i64) -> Option<i64> {
    let lookback = nanos(limits.max_query_lookback);
    if lookback == 0 {
        return Some(start);
    }
    let oldest = now_ns().saturating_sub(lookback);
    (end >= oldest).then_some(start.max(oldest))
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

pub(crate) fn check_query_length(limits: &Limits, start: i64, end: i64) -> Result<(), ApiError> {
    let max = nanos(limits.max_query_length);
    if max > 0 && end - start > max {
        return Err(ApiError::bad_request(format!(
            "the query time range exceeds the limit (query length: {}, limit: {})",
            go_duration(end - start),
            go_duration(max)
        )));
    }
    Ok(())
}

/// Go's `time.Duration.String()` for whole seconds and up (enough for limit messages).
fn go_duration(ns: i64) -> String {
    let total = ns / NANOS;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let frac = ns % NANOS;
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{}s", (format!("{s}.{frac:09}")).trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn limit(limits: &Limits, form: &Form) -> Result<usize, ApiError> {
    let limit = match form.get("limit") {
        Some(s) => s.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing \"{s}\": invalid syntax"))
        })?,
        None => 100,
    };
    if limit <= 0 {
        return Err(ApiError::bad_request("limit must be a positive value"));
    }
    let max = i64::try_from(limits.max_entries_limit_per_query).unwrap_or(i64::MAX);
    if max > 0 && limit > max {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
        )));
    }
    Ok(limit as usize)
}

pub(crate) fn direction(form: &Form) -> Result<Direction, ApiError> {
    match form
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("backward") => Ok(Direction::Backward),
        Some("forward") => Ok(Direction::Forward),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid direction '{other}'"
        ))),
    }
}

fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-loki-response-encoding-flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == "categorize-labels")
}

fn string_list_body(items: &[String]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":");
    push_str_array(&mut out, items.iter().map(String::as_str));
    out.push('}');
    out
}

fn stats_json(out: &mut String, lines: u64, bytes: u64, returned: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let per_sec = |n: u64| {
        if secs > 0.0 {
            (n as f64 / secs) as u64
        } else {
            0
        }
    };
    out.push_str(&format!(
        "{{\"summary\":{{\"bytesProcessedPerSecond\":{},\"linesProcessedPerSecond\":{},\"totalBytesProcessed\":{bytes},\"totalLinesProcessed\":{lines},\"execTime\":{secs},\"queueTime\":0,\"subqueries\":0,\"totalEntriesReturned\":{returned},\"splits\":0,\"shards\":0,\"totalPostFilterLines\":{returned},\"totalStructuredMetadataBytesProcessed\":0}},\"querier\":{{\"store\":{{\"totalChunksRef\":0,\"totalChunksDownloaded\":0,\"chunksDownloadTime\":0}}}},\"ingester\":{{\"totalReached\":0,\"totalChunksMatched\":0,\"totalBatches\":0,\"totalLinesSent\":0}}}}",
        per_sec(bytes),
        per_sec(lines),
    ));
}

fn streams_body(result: &LogResult, categorize: bool, started: Instant) -> String {
    let returned: usize = result.streams.iter().map(|s| s.entries.len()).sum();
    let mut out = String::with_capacity(256 + returned * 128);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"streams\",");
    if categorize {
        out.push_str("\"encodingFlags\":[\"categorize-labels\"],");
    }
    out.push_str("\"result\":[");
    for (i, s) in result.streams.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        push_map(&mut out, s.labels.iter());
        out.push_str(",\"values\":[");
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            out.push_str(&e.ts.to_string());
            out.push_str("\",");
            push_str(&mut out, &e.line);
            if categorize {
                out.push_str(",{");
                let mut first = true;
                for (key, pairs) in [
                    ("structuredMetadata", &e.structured_metadata),
                    ("parsed", &e.parsed),
                ] {
                    if pairs.is_empty() {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    push_str(&mut out, key);
                    out.push(':');
                    push_map(
                        &mut out,
                        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    );
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str("],\"stats\":");
    stats_json(
        &mut out,
        result.entries_scanned,
        result.bytes_scanned,
        returned as u64,
        started,
    );
    out.push_str("}}");
    out
}

fn push_point(out: &mut String, ts_ms: i64, v: f64) {
    out.push('[');
    out.push_str(&format_timestamp_seconds(ts_ms));
    out.push_str(",\"");
    out.push_str(&format_sample_value(v));
    out.push_str("\"]");
}

/// The timestamp Loki 3.4.6 writes for the scalar answer of an instant query: the
/// evaluation time in nanoseconds multiplied by 1000 in wrapping int64 arithmetic, then
/// divided by 1e6 and written as an integer. It is Loki's quirk, not a meaningful time
/// (`1720342800000000000` gives `4795601145011`); we copy it because it is what Grafana's
/// data source "Save & test" receives, and Grafana ignores the value.
fn loki_scalar_timestamp(time_ns: i64) -> i64 {
    time_ns.wrapping_mul(1000) / 1_000_000
}

fn value_body(value: &QueryValue, params: &EvalParams, started: Instant) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"resultType\":");
    match value {
        QueryValue::Matrix(series) => {
            out.push_str("\"matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_map(&mut out, s.labels.iter());
                out.push_str(",\"values\":[");
                for (j, (ts, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(&mut out, *ts, *v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push_str("\"vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_map(&mut out, s.labels.iter());
                out.push_str(",\"value\":");
                push_point(&mut out, s.ts_ms, s.value);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Scalar { value, .. } if params.instant => {
            out.push_str("\"scalar\",\"result\":[");
            out.push_str(&loki_scalar_timestamp(params.start).to_string());
            out.push_str(",\"");
            out.push_str(&format_sample_value(*value));
            out.push_str("\"]");
        }
        QueryValue::Scalar { ts_ms, value } => {
            out.push_str("\"scalar\",\"result\":");
            push_point(&mut out, *ts_ms, *value);
        }
    }
    out.push_str(",\"stats\":");
    stats_json(&mut out, 0, 0, 0, started);
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_scalar_timestamp_copies_lokis_wrapping_quirk() {
        assert_eq!(
            loki_scalar_timestamp(1_720_342_800_000_000_000),
            4_795_601_145_011
        );
        let params = EvalParams::instant(1_720_342_800_000_000_000, 0);
        let body = value_body(
            &QueryValue::Scalar {
                ts_ms: 1_720_342_800_000,
                value: 19.0,
            },
            &params,
            Instant::now(),
        );
        assert!(
            body.starts_with(
                r#"{"status":"success","data":{"resultType":"scalar","result":[4795601145011,"19"],"stats":"#
            ),
            "{body}"
        );
    }
}
