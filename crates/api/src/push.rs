//! `POST /loki/api/v1/push` and the legacy `POST /api/prom/push`.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use fenrir_push::{decode_push, validate, Dialect};

use crate::params::now_ns;
use crate::{ApiError, AppState};

pub(crate) async fn push(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let tenant = st.tenant(&headers)?;
    let dialect = Dialect::from_path(uri.path());
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let cfg = st.cfg.clone();
    let tenant2 = tenant.clone();
    // Decompression, decoding and validation are CPU work: keep them off the reactor.
    let validated = tokio::task::spawn_blocking(move || {
        let raw = decode_push(
            dialect,
            content_type.as_deref(),
            content_encoding.as_deref(),
            &body,
            &cfg.decode_limits,
        )?;
        validate(raw, &tenant2, &cfg.validation, now_ns())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(ApiError::from_push)?;
    st.metrics.record_push(
        validated.accepted_entries as u64,
        validated.accepted_bytes as u64,
    );
    // Live tail sessions get the entries once they are acknowledged.
    let tail_copy: Option<Vec<_>> = st.tail.wants(&tenant).then(|| {
        validated
            .streams
            .iter()
            .map(|s| (s.labels.clone(), std::sync::Arc::new(s.entries.clone())))
            .collect()
    });
    if !validated.streams.is_empty() {
        st.ingester
            .push(
                &tenant,
                validated
                    .streams
                    .into_iter()
                    .map(|s| (s.labels, s.entries))
                    .collect(),
            )
            .await
            .map_err(ApiError::from_ingest)?;
    }
    if let Some(streams) = tail_copy {
        st.tail.publish(&tenant, &streams);
    }
    match validated.errors {
        Some(msg) => Err(ApiError::bad_request(msg)),
        None => Ok(StatusCode::NO_CONTENT),
    }
}
