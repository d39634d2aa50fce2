//! Builds the components from the configuration, serves HTTP, flushes in the background
//! and shuts down gracefully.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fenrir_api::{ApiConfig, AppState};
use fenrir_common::{Matcher, Tenant, Timestamp};
use fenrir_config::{Config, ObjectStoreConfig};
use fenrir_index::Index;
use fenrir_ingest::{IngestConfig, Ingester};
use fenrir_push::{DecodeLimits, ValidationConfig};
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

fn ingest_config(config: &Config) -> IngestConfig {
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

fn validation_config(config: &Config) -> ValidationConfig {
    let l = &config.limits_config;
    ValidationConfig {
        reject_old_samples: l.reject_old_samples,
        reject_old_samples_max_age_ns: l.reject_old_samples_max_age.as_nanos() as i64,
        creation_grace_period_ns: l.creation_grace_period.as_nanos() as i64,
        max_line_size: l.max_line_size as usize,
        max_line_size_truncate: l.max_line_size_truncate,
        max_label_names_per_series: l.max_label_names_per_series,
        max_label_name_length: l.max_label_name_length,
        max_label_value_length: l.max_label_value_length,
        allow_structured_metadata: l.allow_structured_metadata,
        max_structured_metadata_size: l.max_structured_metadata_size as usize,
        max_structured_metadata_entries_count: l.max_structured_metadata_entries_count,
        discover_service_name: l.discover_service_name.clone(),
        discover_log_levels: l.discover_log_levels,
        increment_duplicate_timestamp: l.increment_duplicate_timestamp,
        ..ValidationConfig::default()
    }
}

fn api_config(config: &Config) -> ApiConfig {
    let l = &config.limits_config;
    ApiConfig {
        auth_enabled: config.auth_enabled,
        decode_limits: DecodeLimits::default(),
        validation: validation_config(config),
        max_entries_limit_per_query: l.max_entries_limit_per_query,
        max_query_series: l.max_query_series,
        max_query_length: l.max_query_length.as_nanos() as i64,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A fully wired server, not yet listening.
pub struct Built {
    /// The HTTP application.
    pub app: axum::Router,
    /// The write path, for flushing and shutdown.
    pub ingester: Ingester,
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
    let state = AppState::new(api_config(config), ingester.clone(), engine);
    Ok(Built {
        app: fenrir_api::router(state),
        ingester,
    })
}

/// Runs the server until SIGTERM or Ctrl-C, then flushes and stops.
pub async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let Built { app, ingester } = build(&config).await?;
    let data = config.data_dir().to_path_buf();
    let flush_period = ingest_config(&config).flush_check_period;
    let addr = config.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, data = %data.display(), "fenrir listening");

    let flusher = {
        let ingester = ingester.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush_period.min(Duration::from_secs(10)));
            loop {
                tick.tick().await;
                if let Err(e) = ingester.flush_due().await {
                    tracing::warn!(error = %e, "flush failed; will retry");
                }
            }
        })
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    flusher.abort();
    tracing::info!("flushing before shutdown");
    if let Err(e) = ingester.flush_all().await {
        tracing::error!(error = %e, "final flush failed; the wal keeps the data");
    }
    ingester.shutdown_wal();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
