//! Builds the components from the configuration, serves HTTP, flushes in the background
//! and shuts down gracefully.

use std::sync::Arc;

use anyhow::Context;
use fenrir_api::{ApiConfig, AppState, TailConfig};
use fenrir_common::{Matcher, Tenant, Timestamp};
use fenrir_config::TenantLimits;
use fenrir_config::{Config, ObjectStoreConfig};
use fenrir_index::Index;
use fenrir_ingest::{IngestConfig, Ingester};
use fenrir_push::DecodeLimits;
use fenrir_query::{Engine, RecentData, RecentStream};
use fenrir_storage::{LocalFsStore, ObjectStore};

/// The ingester's unflushed data, as the query engine asks for it.
struct Recent(Ingester);

impl RecentData for Recent {
    fn streams(
        &self,
        tenant: &Tenant,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<RecentStream> {
        self.0
            .recent_streams(tenant, matchers, start, end)
            .into_iter()
            .map(|r| RecentStream {
                labels: r.labels,
                chunks: r.chunks,
                head: r.head,
            })
            .collect()
    }
}

pub(crate) fn ingest_config(config: &Config) -> IngestConfig {
    let ing = &config.ingester;
    let mut c = IngestConfig::with_wal_dir(config.wal_dir());
    c.block_bytes = ing.chunk_block_size as usize;
    c.head_max_bytes = ing.chunk_target_size as usize;
    c.max_chunk_age = ing.max_chunk_age;
    c.chunk_idle_period = ing.chunk_idle_period;
    c.flush_check_period = ing.flush_check_period;
    c.out_of_order_window = ing.max_chunk_age / 2;
    c
}

fn api_config(config: &Config, limits: TenantLimits) -> ApiConfig {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    ApiConfig {
        auth_enabled: config.auth_enabled,
        decode_limits: DecodeLimits {
            max_recv_msg_size: size(config.distributor.max_recv_msg_size),
            max_decompressed_size: size(config.distributor.max_decompressed_size),
        },
        limits,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A fully wired server, not yet listening.
pub struct Built {
    /// The HTTP application.
    pub app: axum::Router,
    /// The write path, for flushing and shutdown.
    pub ingester: Ingester,
    /// Every tenant's limits, reloaded from `runtime_config.file` while the server runs.
    pub limits: TenantLimits,
    /// Readiness: cleared at shutdown so that `/ready` answers 503.
    pub(crate) state: AppState,
    _reloader: Option<crate::runtime::AbortOnDrop>,
}

/// Opens storage, the index (rebuilt from the store when empty), the WAL (replayed) and
/// wires the HTTP application.
pub async fn build(config: &Config) -> anyhow::Result<Built> {
    let data = config.data_dir().to_path_buf();
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let store: Arc<dyn ObjectStore> = match config.object_store()? {
        ObjectStoreConfig::Filesystem { directory } => Arc::new(LocalFsStore::new(directory)),
        ObjectStoreConfig::S3(_) => anyhow::bail!("s3 storage is not supported yet"),
    };
    let index_dir = data.join("index");
    let index = tokio::task::spawn_blocking(move || Index::open(&index_dir)).await??;
    if index.tenants()?.is_empty() {
        let chunks = fenrir_ingest::rebuild_index(store.as_ref(), &index).await?;
        if chunks > 0 {
            tracing::info!(chunks, "rebuilt the label index from the object store");
        }
    }
    let cfg = ingest_config(config);
    let (index2, store2) = (index.clone(), store.clone());
    let ingester =
        tokio::task::spawn_blocking(move || Ingester::open(cfg, index2, store2)).await??;
    let engine = Engine::new(index, store, Arc::new(Recent(ingester.clone())));
    let limits = crate::runtime::initial_limits(config)?;
    let reloader = config.runtime_config.file.clone().map(|path| {
        let period = config.runtime_config.period;
        crate::runtime::AbortOnDrop(crate::runtime::spawn_reloader(limits.clone(), path, period))
    });
    let state = AppState::new(api_config(config, limits.clone()), ingester.clone(), engine)
        .with_tail_config(TailConfig {
            // One node serves every tenant: the default tenant limit caps all sessions.
            max_sessions: config.limits_config.max_concurrent_tail_requests,
            max_duration: config.querier.tail_max_duration,
            ..TailConfig::default()
        });
    Ok(Built {
        app: fenrir_api::router(state.clone()),
        ingester,
        limits,
        state,
        _reloader: reloader,
    })
}
