//! Per-component blocks: `ingester`, `querier`, `frontend`, `query_range`, `compactor`,
//! `distributor`, `analytics`, `runtime_config`.

use std::path::PathBuf;
use std::time::Duration;

use crate::section::section;
use crate::storage::BackoffConfig;
use crate::units::{bytes_serde, duration_serde};

section! {
    /// `ingester`: in-memory heads, chunk cutting and flushing.
    pub struct IngesterConfig {
        /// Flushes that may run at once.
        concurrent_flushes: usize = 32,
        /// How often streams are checked for chunks to cut and flush.
        #[serde(with = "duration_serde")]
        flush_check_period: Duration = Duration::from_secs(30),
        /// Timeout of one flush.
        #[serde(with = "duration_serde")]
        flush_op_timeout: Duration = Duration::from_secs(600),
        /// A stream's head is cut after receiving nothing for this long.
        #[serde(with = "duration_serde")]
        chunk_idle_period: Duration = Duration::from_secs(1800),
        /// Uncompressed size of one block inside a chunk.
        #[serde(with = "bytes_serde")]
        chunk_block_size: u64 = 262_144,
        /// Compressed size at which a chunk is cut (Loki's meaning; Fenrir uses it as the
        /// raw size target).
        #[serde(with = "bytes_serde")]
        chunk_target_size: u64 = 1_572_864,
        /// Accepted for compatibility (`gzip`, `snappy`, `lz4`, `zstd`, ...): Fenrir always
        /// writes zstd.
        chunk_encoding: String = "zstd".to_string(),
        /// A chunk is cut when its first entry is this old; also bounds how far behind
        /// out-of-order entries may be (`max_chunk_age / 2`).
        #[serde(with = "duration_serde")]
        max_chunk_age: Duration = Duration::from_secs(2 * 3600),
        /// Fenrir only: memory that heads and unflushed chunks may hold before the largest
        /// are sealed, flushed or compressed early (0: no budget).
        #[serde(with = "bytes_serde")]
        memory_budget: u64 = 48 << 20,
        /// Per-stream errors listed in a push error response.
        max_returned_stream_errors: usize = 10,
        /// Write-ahead log.
        wal: WalConfig = WalConfig::default(),
        /// Compressed bytes of sealed chunks that may wait for the object store (while it
        /// is slow or down) before pushes are refused with 503. Fenrir only.
        #[serde(with = "bytes_serde")]
        max_unflushed_bytes: u64 = 1 << 30,
        /// Backoff between flush attempts after a failed flush; flushes are retried until
        /// they succeed (the WAL keeps the data), so `max_retries` is accepted and unused.
        flush_op_backoff: BackoffConfig = BackoffConfig {
            min_period: Duration::from_secs(10),
            max_period: Duration::from_secs(60),
            max_retries: 10,
        },
    }
    nested [wal, flush_op_backoff]
    ignored [
        lifecycler, chunk_retain_period, autoforget_unhealthy, sync_period,
        sync_min_utilization, query_store_max_look_back_period, index_shards,
        max_dropped_streams, shutdown_marker_path, owned_streams_check_interval,
        kafka_ingestion, tailer, client, chunk_filterer,
    ]
}

section! {
    /// `ingester.wal`.
    pub struct WalConfig {
        /// Write every push to the WAL before acknowledging it.
        enabled: bool = true,
        /// WAL directory; unset means `<common.path_prefix>/wal`.
        dir: Option<PathBuf> = None,
        /// Flush all heads to storage on shutdown (Loki's default is false).
        flush_on_shutdown: bool = true,
        /// Memory replay may use before flushing early.
        #[serde(with = "bytes_serde")]
        replay_memory_ceiling: u64 = 4 << 30,
    }
    nested []
    ignored [checkpoint_duration]
}

section! {
    /// `querier`.
    pub struct QuerierConfig {
        /// Queries run at once.
        max_concurrent: usize = 4,
        /// Only query in-memory data for time ranges within this long of now; 0 always does.
        #[serde(with = "duration_serde")]
        query_ingesters_within: Duration = Duration::from_secs(3 * 3600),
        /// Longest a tail session may last.
        #[serde(with = "duration_serde")]
        tail_max_duration: Duration = Duration::from_secs(3600),
        /// Accept `X-Scope-OrgID: a|b` on queries.
        multi_tenant_queries_enabled: bool = false,
    }
    nested []
    ignored [
        engine, extra_query_delay, query_ingester_only, query_store_only,
        per_request_limits_enabled, query_partition_ingesters, query_timeout,
        ingester_query_store_only, max_concurrent_tail_requests,
    ]
}

section! {
    /// `frontend`.
    pub struct FrontendConfig {
        /// Queued queries per tenant before 429.
        max_outstanding_per_tenant: usize = 2048,
        /// Gzip responses when the client accepts it.
        compress_responses: bool = true,
        /// Log queries slower than this; 0 disables.
        #[serde(with = "duration_serde")]
        log_queries_longer_than: Duration = Duration::ZERO,
        /// `json` or `protobuf`; Fenrir answers JSON either way.
        encoding: String = "json".to_string(),
    }
    nested []
    ignored [
        downstream_url, tail_proxy_url, tail_tls_config, scheduler_address,
        scheduler_dns_lookup_period, scheduler_worker_concurrency, grpc_client_config,
        graceful_shutdown_timeout, instance_interface_names, instance_addr, instance_port,
        instance_enable_ipv6, query_stats_enabled, max_body_size, querier_forget_delay,
        log_query_request_headers, max_query_capacity, support_parquet_encoding,
    ]
}

section! {
    /// `query_range`.
    pub struct QueryRangeConfig {
        /// Align start and end of range queries to the step.
        align_queries_with_step: bool = false,
        /// Cache query results (Fenrir has no results cache: accepted, unused).
        cache_results: bool = false,
        /// Retries of a failed sub-query.
        max_retries: usize = 5,
        /// Shard queries that can be sharded.
        parallelise_shardable_queries: bool = true,
    }
    nested []
    ignored [
        results_cache, cache_index_stats_results, index_stats_results_cache,
        cache_volume_results, volume_results_cache, cache_series_results,
        series_results_cache, cache_label_results, label_results_cache,
        cache_instant_metric_results, instant_metric_results_cache,
        instant_metric_query_split_align, shard_aggregations, split_queries_by_interval,
        query_ingesters_within,
    ]
}

section! {
    /// `compactor`: retention and deletes.
    pub struct CompactorConfig {
        /// Scratch directory; unset means `<common.path_prefix>/compactor`.
        working_directory: Option<PathBuf> = None,
        /// How often compaction and retention run.
        #[serde(with = "duration_serde")]
        compaction_interval: Duration = Duration::from_secs(600),
        /// Delete data older than each tenant's `retention_period`.
        retention_enabled: bool = false,
        /// Delay between marking data for deletion and deleting it.
        #[serde(with = "duration_serde")]
        retention_delete_delay: Duration = Duration::from_secs(2 * 3600),
    }
    nested []
    ignored [
        apply_retention_interval, retention_delete_worker_count, retention_table_timeout,
        delete_request_store, delete_request_store_key_prefix, delete_request_store_db_type,
        delete_batch_size, delete_request_cancel_period, delete_max_interval,
        max_compaction_parallelism, upload_parallelism, compactor_ring, runs_compactor,
        tables_to_compact, skip_latest_n_tables, horizontal_scaling_mode,
        shared_store, shared_store_key_prefix, worker_config, jobs_config,
    ]
}

section! {
    /// `distributor`: push request limits.
    pub struct DistributorConfig {
        /// Largest accepted push body, compressed.
        #[serde(with = "bytes_serde")]
        max_recv_msg_size: u64 = 100 << 20,
        /// Largest accepted push body after decompression.
        #[serde(with = "bytes_serde")]
        max_decompressed_size: u64 = 5000 << 20,
    }
    nested []
    ignored [
        ring, push_worker_count, rate_store, write_failures_logging, otlp_config,
        tenant_topic, kafka_writes_enabled, ingester_writes_enabled, ingest_limits_enabled,
        ingest_limits_dry_run_enabled, default_policy_stream_mappings,
    ]
}

section! {
    /// `analytics`: Fenrir never sends usage reports; every key is accepted and ignored.
    pub struct AnalyticsConfig {}
    nested []
    ignored [reporting_enabled, usage_stats_url, proxy_url]
}

section! {
    /// `runtime_config`: the file holding per-tenant `overrides`.
    pub struct RuntimeConfig {
        /// The runtime configuration file; unset means no overrides.
        file: Option<PathBuf> = None,
        /// How often the file is re-read.
        #[serde(with = "duration_serde")]
        period: Duration = Duration::from_secs(10),
    }
    nested []
    ignored []
}
