//! The endpoints Grafana's Logs Drilldown calls: `index/volume`, `index/volume_range`,
//! `detected_labels`, `detected_fields`, `detected_field/<name>/values` and `patterns`.

use axum::extract::{Path, State};
use axum::response::Response;
use fenrir_logql::ast::{Expr, LogExpr};
use fenrir_logql::{format_timestamp_seconds, parse_expr, EvalParams};
use fenrir_query::{
    DetectedField, Direction, LogQuery, PatternQuery, VolumeAggregation, VolumeQuery, VolumeSeries,
};

use crate::json::{push_map, push_str, push_str_array};
use crate::params::{bounds, parse_step, Form};
use crate::query::{
    check_query_length, json_response, optional_selector, selector, within_timeout, Request,
};
use crate::{ApiError, AppState};

const MAX_POINTS: i64 = 11_000;
/// Lines sampled by `detected_fields` when `line_limit` is absent.
const DEFAULT_LINE_LIMIT: usize = 100;
/// Fields or values returned when `limit` is absent.
const DEFAULT_FIELD_LIMIT: usize = 1000;

/// A positive integer parameter; absent or `0` gives `default`.
fn count_param(form: &Form, keys: &[&str], default: usize) -> Result<usize, ApiError> {
    let Some(raw) = keys.iter().find_map(|k| form.get(k)) else {
        return Ok(default);
    };
    let n: i64 = raw.parse().map_err(|_| {
        ApiError::bad_request(format!("strconv.Atoi: parsing \"{raw}\": invalid syntax"))
    })?;
    match n {
        0 => Ok(default),
        n if n < 0 => Err(ApiError::bad_request("limit must be a positive value")),
        n => Ok(n as usize),
    }
}

fn check_step(start: i64, end: i64, step: i64) -> Result<(), ApiError> {
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
    Ok(())
}

fn step_param(form: &Form, start: i64, end: i64) -> Result<i64, ApiError> {
    let step = match form.get("step") {
        Some(s) => parse_step(s)?,
        None => EvalParams::default_step(start, end),
    };
    check_step(start, end, step)?;
    Ok(step)
}

/// A log query (selector and pipeline) from `query`; absent means every stream.
fn log_query_param(form: &Form) -> Result<LogExpr, ApiError> {
    let Some(text) = form.get("query") else {
        return Ok(LogExpr {
            selector: Vec::new(),
            stages: Vec::new(),
        });
    };
    match parse_expr(text).map_err(|e| ApiError::bad_request(e.to_string()))? {
        Expr::Log(log) => Ok(log),
        Expr::Metric(_) => Err(ApiError::bad_request(
            "only log queries are supported by this endpoint",
        )),
    }
}

pub(crate) async fn volume(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    run_volume(st, req, false).await
}

pub(crate) async fn volume_range(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    run_volume(st, req, true).await
}

async fn run_volume(st: AppState, req: Request, range: bool) -> Result<Response, ApiError> {
    let (start, end) = bounds(&req.form)?;
    check_query_length(&req.limits, start, end)?;
    let matchers = selector(req.form.get("query").unwrap_or(""))?;
    let limit = count_param(&req.form, &["limit"], 100)?;
    let aggregation = match req.form.get("aggregateBy") {
        None | Some("series") => VolumeAggregation::Series,
        Some("labels") => VolumeAggregation::Labels,
        Some(_) => return Err(ApiError::bad_request("invalid aggregation option")),
    };
    let target_labels: Vec<String> = req
        .form
        .get("targetLabels")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let step = if range {
        Some(step_param(&req.form, start, end)?)
    } else {
        None
    };
    let query = st.engine.volume(VolumeQuery {
        tenant: req.tenant,
        matchers,
        start,
        end,
        step,
        target_labels,
        aggregation,
        limit,
    });
    let series = within_timeout(&req.limits, query).await?;
    Ok(json_response(volume_body(&series, range)))
}

fn push_sample(out: &mut String, ts_ns: i64, bytes: u64) {
    out.push('[');
    out.push_str(&format_timestamp_seconds(ts_ns.div_euclid(1_000_000)));
    out.push_str(",\"");
    out.push_str(&bytes.to_string());
    out.push_str("\"]");
}

fn volume_body(series: &[VolumeSeries], range: bool) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"resultType\":");
    out.push_str(if range { "\"matrix\"" } else { "\"vector\"" });
    out.push_str(",\"result\":[");
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        push_map(
            &mut out,
            s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if range {
            out.push_str(",\"values\":[");
            for (j, (ts, bytes)) in s.points.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_sample(&mut out, *ts, *bytes);
            }
            out.push_str("]}");
        } else {
            out.push_str(",\"value\":");
            let (ts, bytes) = s.points.first().copied().unwrap_or((0, 0));
            push_sample(&mut out, ts, bytes);
            out.push('}');
        }
    }
    out.push_str("]}}");
    out
}

pub(crate) async fn detected_labels(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&req.form)?;
    // Drilldown sends an empty query for "all streams".
    let matchers = optional_selector(&req.form)?;
    let query = st.engine.detected_labels(req.tenant, matchers, start, end);
    let labels = within_timeout(&req.limits, query).await?;
    let mut out = String::from("{\"detectedLabels\":[");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        push_str(&mut out, &l.label);
        out.push_str(&format!(",\"cardinality\":{}}}", l.cardinality));
    }
    out.push_str("]}");
    Ok(json_response(out))
}

/// The sample of lines `detected_fields` and `detected_field/<name>/values` look at.
fn sample_query(req: crate::query::Request) -> Result<LogQuery, ApiError> {
    let (start, end) = bounds(&req.form)?;
    check_query_length(&req.limits, start, end)?;
    let expr = log_query_param(&req.form)?;
    let mut line_limit = count_param(&req.form, &["line_limit"], DEFAULT_LINE_LIMIT)?;
    let max = req.limits.max_entries_limit_per_query;
    if max > 0 {
        line_limit = line_limit.min(max);
    }
    Ok(LogQuery {
        tenant: req.tenant,
        expr,
        start,
        end,
        limit: line_limit,
        direction: Direction::Backward,
        categorize: true,
    })
}

pub(crate) async fn detected_fields(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let limit = count_param(&req.form, &["limit", "field_limit"], DEFAULT_FIELD_LIMIT)?;
    let limits = req.limits.clone();
    let query = sample_query(req)?;
    let fields = within_timeout(&limits, st.engine.detected_fields(query, limit)).await?;
    Ok(json_response(fields_body(&fields, limit)))
}

fn fields_body(fields: &[DetectedField], limit: usize) -> String {
    let mut out = String::from("{\"fields\":[");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        push_str(&mut out, &f.label);
        out.push_str(",\"type\":");
        push_str(&mut out, f.field_type.as_str());
        out.push_str(&format!(",\"cardinality\":{},\"parsers\":", f.cardinality));
        if f.parsers.is_empty() {
            // Structured metadata: Drilldown reads null as "structuredMetadata".
            out.push_str("null");
        } else {
            push_str_array(&mut out, f.parsers.iter().map(|p| p.as_str()));
            out.push_str(",\"jsonPath\":");
            push_str_array(&mut out, f.json_path.iter().map(String::as_str));
        }
        out.push('}');
    }
    out.push_str(&format!("],\"limit\":{limit}}}"));
    out
}

pub(crate) async fn detected_field_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let limit = count_param(&req.form, &["limit"], DEFAULT_FIELD_LIMIT)?;
    let limits = req.limits.clone();
    let query = sample_query(req)?;
    let query = st.engine.detected_field_values(query, name, limit);
    let values = within_timeout(&limits, query).await?;
    let mut out = String::from("{\"values\":");
    push_str_array(&mut out, values.iter().map(String::as_str));
    out.push_str(&format!(",\"limit\":{limit}}}"));
    Ok(json_response(out))
}

pub(crate) async fn patterns(
    State(st): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&req.form)?;
    check_query_length(&req.limits, start, end)?;
    if req.form.get("query").is_none() {
        return Err(ApiError::bad_request("query parameter is required"));
    }
    let expr = log_query_param(&req.form)?;
    let step = step_param(&req.form, start, end)?;
    let query = st.engine.patterns(PatternQuery {
        tenant: req.tenant,
        expr,
        start,
        end,
        step,
    });
    let patterns = within_timeout(&req.limits, query).await?;
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"pattern\":");
        push_str(&mut out, &p.pattern);
        if let Some(level) = &p.level {
            out.push_str(",\"level\":");
            push_str(&mut out, level);
        }
        out.push_str(",\"samples\":[");
        for (j, (ts, n)) in p.samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&format!("[{ts},{n}]"));
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    Ok(json_response(out))
}
