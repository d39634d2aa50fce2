//! Operational endpoints: readiness, metrics, build info, flush.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::json;
use crate::{ApiError, AppState};

pub(crate) async fn ready(State(st): State<AppState>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Application is stopping").into_response()
    }
}

pub(crate) async fn metrics(State(st): State<AppState>) -> Response {
    let body = st.metrics.render_with_backlog(&st.ingester.backlog());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

pub(crate) async fn buildinfo(State(st): State<AppState>) -> Response {
    let mut out = String::from("{\"version\":");
    json::push_str(&mut out, &st.cfg.version);
    out.push_str(",\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\"}");
    crate::query::json_response(out)
}

pub(crate) async fn flush(State(st): State<AppState>) -> Result<StatusCode, ApiError> {
    st.ingester
        .flush_all()
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
