//! `POST /loki/api/v1/push` and the legacy `POST /api/prom/push`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use fenrir_common::Tenant;
use fenrir_config::Limits;
use fenrir_ingest::PushLimits;
use fenrir_push::{decode_push, validate, Dialect, PushError, ValidationConfig};

use crate::params::now_ns;
use crate::{ApiError, AppState};

const BYTES_PER_MB: f64 = 1_048_576.0;

pub(crate) async fn push(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let tenant = st.tenant(&headers)?;
    let body = body.map_err(|rejection| body_rejection(&st, &headers, rejection))?;
    let limits = st.cfg.limits.get(tenant.as_str());
    let dialect = Dialect::from_path(uri.path());
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let decode_limits = st.cfg.decode_limits;
    let validation = ValidationConfig::from_limits(&limits);
    let tenant2 = tenant.clone();
    // Decompression, decoding and validation are CPU work: keep them off the reactor.
    let validated = tokio::task::spawn_blocking(move || {
        let raw = decode_push(
            dialect,
            content_type.as_deref(),
            content_encoding.as_deref(),
            &body,
            &decode_limits,
        )?;
        validate(raw, &tenant2, &validation, now_ns())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(ApiError::from_push)?;
    for d in &validated.discarded {
        st.metrics
            .record_discarded(tenant.as_str(), d.reason.as_str(), d.entries, d.bytes);
    }
    st.metrics.record_push(
        validated.accepted_entries as u64,
        validated.accepted_bytes as u64,
    );
    // Live tail sessions get the entries once they are acknowledged.
    let tail_copy: Option<Vec<_>> = st.tail.wants(&tenant).then(|| {
        validated
            .streams
            .iter()
            .map(|s| {
                let entries = s.entries.iter().map(|e| e.to_entry()).collect();
                (s.labels.clone(), std::sync::Arc::new(entries))
            })
            .collect()
    });
    if !validated.streams.is_empty() {
        let push_limits = push_limits(&limits);
        let stored = store(&st, &tenant, &push_limits, validated.streams, {
            let (lines, bytes) = (validated.accepted_entries, validated.accepted_bytes);
            (lines as u64, bytes as u64)
        })
        .await;
        if let Err(e) = stored {
            if let Some(refused) = e.refused() {
                for d in &refused.discarded {
                    st.metrics.record_discarded(
                        tenant.as_str(),
                        d.reason.as_str(),
                        d.entries,
                        d.bytes,
                    );
                }
            }
            // The ingester's answer takes precedence over validation errors, as in Loki.
            return Err(ApiError::from_ingest(e));
        }
    }
    if let Some(streams) = tail_copy {
        st.tail.publish(&tenant, &streams);
    }
    match validated.errors {
        Some(msg) => Err(ApiError::bad_request(msg).with_newline()),
        None => Ok(StatusCode::NO_CONTENT),
    }
}

/// Loki's steps 8 and 9: the tenant rate limit over what survived validation (all or
/// nothing), then the ingester with its stream limits.
async fn store(
    st: &AppState,
    tenant: &Tenant,
    limits: &PushLimits,
    streams: Vec<fenrir_push::ValidStream>,
    (lines, bytes): (u64, u64),
) -> Result<(), fenrir_ingest::Error> {
    st.ingester
        .check_ingestion_rate(tenant, limits, lines, bytes)?;
    st.ingester
        .push_with_limits(
            tenant,
            streams.into_iter().map(|s| (s.labels, s.entries)).collect(),
            limits,
        )
        .await
}

/// A tenant's ingester limits from its effective `limits_config`.
fn push_limits(l: &Limits) -> PushLimits {
    // On one node the global stream limit is the local one; the lower non-zero wins.
    let max_streams = [l.max_global_streams_per_user, l.max_streams_per_user]
        .into_iter()
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0);
    PushLimits {
        ingestion_rate: l.ingestion_rate_mb * BYTES_PER_MB,
        ingestion_burst: l.ingestion_burst_size_mb * BYTES_PER_MB,
        per_stream_rate: l.per_stream_rate_limit as f64,
        per_stream_burst: l.per_stream_rate_limit_burst as f64,
        max_streams,
    }
}

/// A body the HTTP layer refused to buffer: too large gets Loki's 413 text (with the
/// announced size when there is one), anything else the rejection's own answer.
fn body_rejection(st: &AppState, headers: &HeaderMap, rejection: BytesRejection) -> ApiError {
    if rejection.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(rejection.status(), rejection.body_text());
    }
    let max = st.cfg.decode_limits.max_recv_msg_size;
    let size = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > max)
        .unwrap_or(max.saturating_add(1));
    ApiError::from_push(PushError::BodyTooLarge { size, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_limits_follow_the_tenants_limits() {
        let mut l = Limits::default();
        let p = push_limits(&l);
        assert_eq!(p, PushLimits::default());
        l.max_streams_per_user = 10;
        assert_eq!(push_limits(&l).max_streams, 10);
        l.max_global_streams_per_user = 0;
        assert_eq!(push_limits(&l).max_streams, 10);
        l.max_streams_per_user = 0;
        assert_eq!(push_limits(&l).max_streams, 0, "0 and 0 is no limit");
        l.ingestion_rate_mb = 0.5;
        assert_eq!(push_limits(&l).ingestion_rate, 524_288.0);
    }
}
