//! The single place where errors become HTTP statuses. Bodies are plain text, as Loki
//! answers: the query path without a trailing newline, the push path with one.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer: status and Loki's message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
    newline: bool,
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Any status with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            newline: false,
        }
    }

    /// Go's `http.Error` appends a newline; the push path and auth use it.
    pub(crate) fn with_newline(mut self) -> Self {
        self.newline = true;
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn no_org_id() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "no org id").with_newline()
    }

    pub(crate) fn from_push(e: fenrir_push::PushError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(status, e.to_string()).with_newline()
    }

    pub(crate) fn from_ingest(e: fenrir_ingest::Error) -> Self {
        use fenrir_ingest::ErrorKind;
        let status = match e.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => {
                // Disk full, an unwritable WAL, or the unflushed backlog at its limit while
                // the object store is down: nothing of the push was acknowledged, so the
                // client's retry loses nothing.
                if let fenrir_ingest::Error::BacklogFull { .. } = e {
                    // Expected while the object store is down; /metrics counts these.
                    tracing::debug!(error = %e, "push refused");
                    return Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                        .with_newline();
                }
                tracing::error!(error = %e, "push not stored");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("push not stored, retry later: {e}"),
                )
                .with_newline();
            }
            ErrorKind::Internal => {
                tracing::error!(error = %e, "push failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self::new(status, e.to_string()).with_newline()
    }

    /// A query that ran past its tenant's `query_timeout` (Loki's 504 and text).
    pub(crate) fn query_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed",
        )
    }

    pub(crate) fn from_query(e: fenrir_query::Error) -> Self {
        match e {
            fenrir_query::Error::BadQuery(m) => Self::bad_request(m),
            other => {
                tracing::error!(error = %other, "query failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

impl From<fenrir_logql::Error> for ApiError {
    fn from(e: fenrir_logql::Error) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.message;
        if self.newline {
            body.push('\n');
        }
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_backlog_is_503_with_the_reason() {
        let e = ApiError::from_ingest(fenrir_ingest::Error::BacklogFull {
            unflushed_bytes: 2048,
            limit: 1024,
        });
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            e.to_string(),
            "ingester backlog full: 2048 bytes of chunks wait for the object store (limit 1024); retry later"
        );
    }
}
