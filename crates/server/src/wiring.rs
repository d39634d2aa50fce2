//! Builds the components from the configuration, serves HTTP, flushes in the background
//! and shuts down gracefully.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fenrir_api::{ApiConfig, AppState, TailConfig};
use fenrir_common::{Matcher, Tenant, Timestamp};
use fenrir_config::TenantLimits;
use fenrir_config::{Config, ObjectStoreConfig, S3Config};
use fenrir_index::Index;
use fenrir_ingest::{IngestConfig, Ingester};
use fenrir_push::DecodeLimits;
use fenrir_query::{Engine, RecentData, RecentStream};
use fenrir_storage::{LocalFsStore, ObjectStore, S3Options, S3Store};

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
    c.memory_budget = usize::try_from(ing.memory_budget).unwrap_or(usize::MAX);
    c.max_unflushed_bytes = ing.max_unflushed_bytes;
    c
}

/// The S3 client settings from Loki's `storage_config.aws` / `common.storage.s3` keys.
async fn s3_options(s3: &S3Config) -> anyhow::Result<S3Options> {
    let http = &s3.http_config;
    if http.insecure_skip_verify {
        tracing::warn!("s3 http_config.insecure_skip_verify is not supported; certificates are verified (use ca_file for a private CA)");
    }
    let ca_pem = if http.ca_file.is_empty() {
        None
    } else {
        let path = http.ca_file.clone();
        let pem = tokio::task::spawn_blocking(move || std::fs::read(&path))
            .await?
            .with_context(|| format!("reading s3 http_config.ca_file {}", http.ca_file))?;
        Some(pem)
    };
    let bucket = s3.bucketnames.split(',').next().unwrap_or("").trim();
    if s3.bucketnames.contains(',') {
        tracing::warn!(
            bucket,
            "several bucketnames given; fenrir writes to the first"
        );
    }
    let defaults = S3Options::default();
    let backoff = &s3.backoff_config;
    Ok(S3Options {
        bucket: bucket.to_owned(),
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone(),
        access_key_id: s3.access_key_id.clone(),
        secret_access_key: s3.secret_access_key.expose().to_owned(),
        session_token: s3.session_token.expose().to_owned(),
        force_path_style: s3.s3forcepathstyle,
        insecure: s3.insecure,
        ca_pem,
        max_attempts: backoff.max_retries.saturating_add(1),
        initial_backoff: backoff.min_period,
        max_backoff: backoff.max_period,
        attempt_timeout: if http.timeout.is_zero() {
            defaults.attempt_timeout
        } else {
            http.timeout
        },
        response_header_timeout: (!http.response_header_timeout.is_zero())
            .then_some(http.response_header_timeout),
        idle_connection_timeout: http.idle_conn_timeout,
        ..defaults
    })
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match config.object_store()? {
        ObjectStoreConfig::Filesystem { directory } => Arc::new(LocalFsStore::new(directory)),
        ObjectStoreConfig::S3(s3) => {
            let options = s3_options(&s3).await?;
            tracing::info!(
                bucket = options.bucket,
                endpoint = options.endpoint,
                region = options.region,
                "storing chunks in s3"
            );
            Arc::new(S3Store::new(options).await?)
        }
    })
}

fn api_config(config: &Config, limits: TenantLimits) -> ApiConfig {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    ApiConfig {
        auth_enabled: config.auth_enabled,
        decode_limits: DecodeLimits {
            max_recv_msg_size: size(config.distributor.max_recv_msg_size),
            max_decompressed_size: size(config.distributor.max_decompressed_size),
            ..DecodeLimits::default()
        },
        limits,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Creates the data, WAL and filesystem chunk directories and checks that each takes a
/// file, so that a bad path stops the start with an error naming it rather than failing
/// every push or flush later.
async fn prepare_dirs(config: &Config) -> anyhow::Result<()> {
    let mut dirs = vec![
        ("data directory", config.data_dir().to_path_buf()),
        ("wal directory", config.wal_dir()),
    ];
    if let ObjectStoreConfig::Filesystem { directory } = config.object_store()? {
        dirs.push(("chunks directory", directory));
    }
    tokio::task::spawn_blocking(move || {
        dirs.iter()
            .try_for_each(|(what, dir)| check_writable_dir(what, dir))
    })
    .await?
}

/// Creates `dir` and writes, syncs and removes a probe file in it.
fn check_writable_dir(what: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let fail = |e: std::io::Error| anyhow::anyhow!("{what} {} is not usable: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".fenrir-write-check-{}", std::process::id()));
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(b"fenrir")?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(&probe);
    written.map_err(fail)?;
    removed.map_err(fail)
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
    prepare_dirs(config).await?;
    let store = open_store(config).await?;
    let index_dir = data.join("index");
    let index = tokio::task::spawn_blocking(move || Index::open(&index_dir)).await??;
    if index.tenants()?.is_empty() {
        let stats = fenrir_ingest::rebuild_index(store.as_ref(), &index)
            .await
            .context("rebuilding the empty label index from the object store")?;
        if stats.segments + stats.skipped > 0 {
            tracing::info!(
                segments = stats.segments,
                chunks = stats.chunks,
                skipped = stats.skipped,
                "rebuilt the label index from the object store"
            );
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

/// Starts the background flusher: a flush cycle every `flush_check_period` (at most 10s);
/// after a failure, the next try comes after `flush_op_backoff` (doubling from
/// `min_period` to `max_period`), for as long as it takes: the WAL holds the data.
pub fn spawn_flusher(ingester: Ingester, config: &Config) -> tokio::task::JoinHandle<()> {
    let period = config
        .ingester
        .flush_check_period
        .min(Duration::from_secs(10));
    let backoff = &config.ingester.flush_op_backoff;
    let (min_backoff, max_backoff) = (
        backoff.min_period,
        backoff.max_period.max(backoff.min_period),
    );
    tokio::spawn(async move {
        let mut delay = period;
        let mut next_backoff = min_backoff;
        loop {
            tokio::time::sleep(delay).await;
            match ingester.flush_due().await {
                Ok(_) => {
                    delay = period;
                    next_backoff = min_backoff;
                }
                Err(e) => {
                    let backlog = ingester.backlog();
                    tracing::warn!(
                        error = %e,
                        retry_in = ?next_backoff,
                        unflushed_bytes = backlog.unflushed_bytes,
                        unflushed_chunks = backlog.unflushed_chunks,
                        "flush failed; the wal keeps the data"
                    );
                    delay = next_backoff;
                    next_backoff = (next_backoff * 2).min(max_backoff);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn s3_options_follow_lokis_keys() {
        let yaml = "storage_config:\n  aws:\n    endpoint: minio:9000\n    bucketnames: first, second\n    access_key_id: ak\n    secret_access_key: sk\n    s3forcepathstyle: true\n    insecure: true\n    http_config:\n      timeout: 30s\n      response_header_timeout: 5s\n    backoff_config:\n      min_period: 50ms\n      max_period: 2s\n      max_retries: 3\ningester:\n  max_unflushed_bytes: 64MB\n";
        let config = fenrir_config::from_yaml(yaml).unwrap();
        let ObjectStoreConfig::S3(s3) = config.object_store().unwrap() else {
            panic!("expected s3");
        };
        let options = s3_options(&s3).await.unwrap();
        assert_eq!(options.bucket, "first");
        assert_eq!(options.endpoint, "minio:9000");
        assert_eq!(
            (
                options.access_key_id.as_str(),
                options.secret_access_key.as_str()
            ),
            ("ak", "sk")
        );
        assert!(options.force_path_style && options.insecure);
        assert_eq!(options.max_attempts, 4);
        assert_eq!(options.initial_backoff, Duration::from_millis(50));
        assert_eq!(options.max_backoff, Duration::from_secs(2));
        assert_eq!(options.attempt_timeout, Duration::from_secs(30));
        assert_eq!(
            options.response_header_timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(options.part_size, S3Options::default().part_size);
        assert_eq!(ingest_config(&config).max_unflushed_bytes, 64 << 20);
    }
}
