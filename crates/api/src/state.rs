use fenrir_common::Tenant;
use fenrir_ingest::Ingester;
use fenrir_push::{DecodeLimits, ValidationConfig};
use fenrir_query::Engine;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::tail::{TailConfig, TailHub};
use crate::ApiError;

/// Settings the HTTP layer enforces.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Require `X-Scope-OrgID`; otherwise every request is tenant `fake`.
    pub auth_enabled: bool,
    /// Push body caps.
    pub decode_limits: DecodeLimits,
    /// Loki's per-entry and per-stream validation rules.
    pub validation: ValidationConfig,
    /// `max_entries_limit_per_query`.
    pub max_entries_limit_per_query: usize,
    /// `max_query_series`.
    pub max_query_series: usize,
    /// `max_query_length` in ns (0: unlimited).
    pub max_query_length: i64,
    /// Version reported by buildinfo.
    pub version: String,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub(crate) cfg: Arc<ApiConfig>,
    pub(crate) ingester: Ingester,
    pub(crate) engine: Engine,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ready: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) tail: Arc<TailHub>,
}

impl AppState {
    /// Wires the API to the write and read paths.
    pub fn new(cfg: ApiConfig, ingester: Ingester, engine: Engine) -> Self {
        AppState {
            cfg: Arc::new(cfg),
            ingester,
            engine,
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            tail: Arc::new(TailHub::new(TailConfig::default())),
        }
    }

    /// Replaces the live-tail limits (defaults: Loki's).
    pub fn with_tail_config(mut self, cfg: TailConfig) -> Self {
        self.tail = Arc::new(TailHub::new(cfg));
        self
    }

    /// The request's tenant: `X-Scope-OrgID` when auth is on, `fake` otherwise.
    pub(crate) fn tenant(&self, headers: &axum::http::HeaderMap) -> Result<Tenant, ApiError> {
        if !self.cfg.auth_enabled {
            return Ok(Tenant::single());
        }
        let id = headers
            .get("x-scope-orgid")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(ApiError::no_org_id)?;
        if id.contains('|') {
            return Err(ApiError::bad_request(
                "multiple org IDs present in the request are not supported",
            ));
        }
        Tenant::new(id).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// The ingester, for the server's background tasks.
    pub fn ingester(&self) -> &Ingester {
        &self.ingester
    }
}
