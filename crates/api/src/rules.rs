//! Small read endpoints Grafana probes: the rule lists (Fenrir has no ruler, so they
//! answer empty in Loki's shapes), Drilldown's `drilldown-limits` and `format_query`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use fenrir_logql::parse_expr;

use crate::json::{push_str, push_str_array};
use crate::params::Form;
use crate::query::json_response;
use crate::{ApiError, AppState};

/// The Loki version whose API Fenrir speaks; Drilldown reads it from the limits.
const LOKI_API_VERSION: &str = "3.5.0";

/// `GET /prometheus/api/v1/rules`: Prometheus' rule list, empty.
pub(crate) async fn prometheus_rules(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.tenant(&headers)?;
    Ok(json_response(
        "{\"status\":\"success\",\"data\":{\"groups\":[]}}".to_string(),
    ))
}

/// `GET /prometheus/api/v1/alerts`: Prometheus' alert list, empty.
pub(crate) async fn prometheus_alerts(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.tenant(&headers)?;
    Ok(json_response(
        "{\"status\":\"success\",\"data\":{\"alerts\":[]}}".to_string(),
    ))
}

/// `GET /api/prom/rules` and `/loki/api/v1/rules`: the ruler's YAML map of namespaces to
/// rule groups, empty. Single groups (`/api/prom/rules/<ns>/<group>`) fall through to
/// `404 page not found`, which Grafana reads as "ruler disabled".
pub(crate) async fn ruler_rules(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.tenant(&headers)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/yaml")],
        "{}\n",
    )
        .into_response())
}

/// Whole hours as `<h>h`, else seconds, as Loki prints model durations.
fn model_duration(ns: i64) -> String {
    let secs = ns / 1_000_000_000;
    if secs > 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else {
        format!("{secs}s")
    }
}

/// `GET /loki/api/v1/drilldown-limits`: the limits and capabilities Drilldown adapts to.
pub(crate) async fn drilldown_limits(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = st.tenant(&headers)?;
    let limits = st.cfg.limits.get(tenant.as_str());
    let mut out = String::from("{\"limits\":{");
    out.push_str(&format!(
        "\"discover_log_levels\":{},\"volume_enabled\":true,\"max_entries_limit_per_query\":{},\"max_query_length\":\"{}\",\"max_query_range\":\"0s\",\"max_query_lookback\":\"0s\",\"max_query_series\":{},\"max_query_bytes_read\":\"0B\",\"query_timeout\":\"1m\",\"retention_period\":\"0s\",\"pattern_persistence_enabled\":false,\"metric_aggregation_enabled\":false,\"discover_service_name\":",
        limits.discover_log_levels,
        limits.max_entries_limit_per_query,
        model_duration(i64::try_from(limits.max_query_length.as_nanos()).unwrap_or(i64::MAX)),
        limits.max_query_series,
    ));
    push_str_array(
        &mut out,
        limits.discover_service_name.iter().map(String::as_str),
    );
    out.push_str(&format!(
        ",\"log_level_fields\":[\"level\",\"LEVEL\",\"Level\",\"severity\",\"SEVERITY\",\"Severity\",\"lvl\",\"LVL\",\"Lvl\"],\"max_line_size_truncate\":{},\"volume_max_series\":1000}},\"pattern_ingester_enabled\":true,\"version\":",
        limits.max_line_size_truncate
    ));
    push_str(&mut out, LOKI_API_VERSION);
    out.push('}');
    Ok(json_response(out))
}

/// `GET|POST /loki/api/v1/format_query`: the query printed canonically; errors are JSON
/// here, as in Loki.
pub(crate) async fn format_query(
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&method, q.as_deref(), &headers, &body);
    match parse_expr(form.get("query").unwrap_or("")) {
        Ok(expr) => {
            let mut out = String::from("{\"status\":\"success\",\"data\":");
            push_str(&mut out, &expr.to_string());
            out.push('}');
            json_response(out)
        }
        Err(e) => {
            let mut out = String::from("{\"status\":\"invalid-query\",\"error\":");
            push_str(&mut out, &e.to_string());
            out.push('}');
            let mut resp = json_response(out);
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp
        }
    }
}
