use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::CompressionLayer;

use crate::{drilldown, ops, push, query, rules, tail, ApiError, AppState};

/// Loki's query POST bodies are capped at 10 MiB.
const MAX_QUERY_BODY: usize = 10 << 20;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let push_limit = state.cfg.decode_limits.max_recv_msg_size.saturating_add(1);
    let push_routes = Router::new()
        .route("/loki/api/v1/push", post(push::push))
        .route("/api/prom/push", post(push::push))
        .layer(DefaultBodyLimit::max(push_limit));
    let read_routes = Router::new()
        .route(
            "/loki/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/loki/api/v1/query",
            get(query::query_instant).post(query::query_instant),
        )
        .route(
            "/loki/api/v1/labels",
            get(query::labels).post(query::labels),
        )
        .route("/loki/api/v1/label", get(query::labels).post(query::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(query::label_values).post(query::label_values),
        )
        .route(
            "/loki/api/v1/series",
            get(query::series).post(query::series),
        )
        .route(
            "/loki/api/v1/index/stats",
            get(query::index_stats).post(query::index_stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(drilldown::volume).post(drilldown::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(drilldown::volume_range).post(drilldown::volume_range),
        )
        .route(
            "/loki/api/v1/detected_labels",
            get(drilldown::detected_labels),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(drilldown::detected_fields),
        )
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(drilldown::detected_field_values),
        )
        .route("/loki/api/v1/patterns", get(drilldown::patterns))
        .route(
            "/loki/api/v1/format_query",
            get(rules::format_query).post(rules::format_query),
        )
        .route(
            "/loki/api/v1/drilldown-limits",
            get(rules::drilldown_limits),
        )
        .route("/prometheus/api/v1/rules", get(rules::prometheus_rules))
        .route("/prometheus/api/v1/alerts", get(rules::prometheus_alerts))
        .route("/api/prom/rules", get(rules::ruler_rules))
        .route("/loki/api/v1/rules", get(rules::ruler_rules))
        .layer(DefaultBodyLimit::max(MAX_QUERY_BODY))
        .layer(CompressionLayer::new().gzip(true));
    Router::new()
        .merge(push_routes)
        .merge(read_routes)
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/loki/api/v1/status/buildinfo", get(ops::buildinfo))
        .route("/flush", post(ops::flush))
        .route("/loki/api/v1/tail", get(tail::tail))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

async fn record(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    st.metrics.record_request(
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}
