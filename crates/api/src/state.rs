use fenrir_common::Tenant;
use fenrir_config::TenantLimits;
use fenrir_ingest::Ingester;
use fenrir_push::DecodeLimits;
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
    /// Push body caps (`distributor.max_recv_msg_size`, `max_decompressed_size`).
    pub decode_limits: DecodeLimits,
    /// Each tenant's `limits_config` with its runtime overrides: validation, rate and
    /// stream limits on push, entry, series, length and time limits on queries.
    pub limits: TenantLimits,
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

    /// Marks the server as stopping: `/ready` answers 503 from now on, so that load
    /// balancers stop sending work while in-flight requests finish.
    pub fn set_stopping(&self) {
        self.ready
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The ingester, for the server's background tasks.
    pub fn ingester(&self) -> &Ingester {
        &self.ingester
    }
}
