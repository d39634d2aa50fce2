//! `limits_config` and the per-tenant `overrides` of the runtime configuration file.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use crate::section::section;
use crate::units::{bytes_serde, duration_serde};
use crate::{Error, Result};

/// Loki's `bytesInMB`: the `_mb` limits are mebibytes.
const BYTES_PER_MB: f64 = 1_048_576.0;

const HOUR: u64 = 3600;

/// Loki's default list of labels copied into `service_name` when a stream lacks it.
pub const DEFAULT_DISCOVER_SERVICE_NAME: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

section! {
    /// Per-tenant limits (`limits_config`), with Loki's key names and defaults. The same
    /// struct holds each tenant's effective limits after runtime overrides are applied.
    pub struct Limits {
        /// `global` or `local`; Fenrir is one node, so both mean the same.
        ingestion_rate_strategy: String = "global".to_string(),
        /// Per-tenant ingestion rate in MiB per second (lines plus structured metadata).
        ingestion_rate_mb: f64 = 4.0,
        /// Per-tenant ingestion burst in MiB.
        ingestion_burst_size_mb: f64 = 6.0,
        /// Longest accepted label name, in bytes.
        max_label_name_length: usize = 1024,
        /// Longest accepted label value, in bytes.
        max_label_value_length: usize = 2048,
        /// Most label names per stream (`service_name` is not counted).
        max_label_names_per_series: usize = 15,
        /// Refuse entries older than `reject_old_samples_max_age`.
        reject_old_samples: bool = true,
        /// How old an entry may be when `reject_old_samples` is on.
        #[serde(with = "duration_serde")]
        reject_old_samples_max_age: Duration = Duration::from_secs(168 * HOUR),
        /// How far in the future an entry may be.
        #[serde(with = "duration_serde")]
        creation_grace_period: Duration = Duration::from_secs(600),
        /// Longest accepted line in bytes; 0 means no limit.
        #[serde(with = "bytes_serde")]
        max_line_size: u64 = 256 * 1024,
        /// Truncate over-long lines instead of refusing them.
        max_line_size_truncate: bool = false,
        /// Appended to a truncated line (counted within `max_line_size`).
        max_line_size_truncate_identifier: String = String::new(),
        /// Add 1ns to an entry whose timestamp equals the previous one of its stream.
        increment_duplicate_timestamp: bool = false,
        /// Labels copied into `service_name` when absent, first match wins; empty disables.
        discover_service_name: Vec<String> =
            DEFAULT_DISCOVER_SERVICE_NAME.iter().map(|s| s.to_string()).collect(),
        /// Detect a log level and store it as `detected_level` structured metadata.
        discover_log_levels: bool = true,
        /// Active streams per tenant on this node; 0 disables.
        max_streams_per_user: usize = 0,
        /// Active streams per tenant across the cluster (this node); 0 disables.
        max_global_streams_per_user: usize = 5000,
        /// Accept out-of-order entries within the window allowed by `max_chunk_age`.
        unordered_writes: bool = true,
        /// Bytes per second per stream.
        #[serde(with = "bytes_serde")]
        per_stream_rate_limit: u64 = 3 << 20,
        /// Burst bytes per stream.
        #[serde(with = "bytes_serde")]
        per_stream_rate_limit_burst: u64 = 15 << 20,
        /// Chunks one query may fetch (declared by Loki, not enforced by it in v3.7).
        max_chunks_per_query: usize = 2_000_000,
        /// Unique series a metric query may return.
        max_query_series: usize = 500,
        /// How far back queries may look; 0 means no limit. Start times are clamped.
        #[serde(with = "duration_serde")]
        max_query_lookback: Duration = Duration::ZERO,
        /// Longest `end - start` of a query; 0 disables.
        #[serde(with = "duration_serde")]
        max_query_length: Duration = Duration::from_secs(721 * HOUR),
        /// Longest `[range]` inside a LogQL query; 0 disables.
        #[serde(with = "duration_serde")]
        max_query_range: Duration = Duration::ZERO,
        /// Sub-queries scheduled in parallel.
        max_query_parallelism: usize = 32,
        /// Sub-queries scheduled in parallel for TSDB schemas.
        tsdb_max_query_parallelism: usize = 128,
        /// Cardinality limit for index queries.
        cardinality_limit: usize = 100_000,
        /// Most stream matchers in one query.
        max_streams_matchers_per_query: usize = 1000,
        /// Concurrent tail (live) requests per tenant.
        max_concurrent_tail_requests: usize = 10,
        /// Largest `limit` a log query may ask for.
        max_entries_limit_per_query: usize = 5000,
        /// Timeout of one query.
        #[serde(with = "duration_serde")]
        query_timeout: Duration = Duration::from_secs(60),
        /// Queries are split into intervals of this length; 0 disables.
        #[serde(with = "duration_serde")]
        split_queries_by_interval: Duration = Duration::from_secs(HOUR),
        /// Serve the log volume endpoints.
        volume_enabled: bool = true,
        /// Most series a volume response returns.
        volume_max_series: usize = 1000,
        /// `disabled`, `filter-only` or `filter-and-delete`.
        deletion_mode: String = "filter-and-delete".to_string(),
        /// Retention of the tenant's data; 0 keeps data forever.
        #[serde(with = "duration_serde")]
        retention_period: Duration = Duration::ZERO,
        /// Per-stream retention rules; the highest-priority matching rule wins.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        retention_stream: Vec<StreamRetention> = Vec::new(),
        /// Accept structured metadata in pushes.
        allow_structured_metadata: bool = true,
        /// Largest structured metadata per entry, in bytes; 0 means no limit.
        #[serde(with = "bytes_serde")]
        max_structured_metadata_size: u64 = 64 * 1024,
        /// Most structured metadata pairs per entry; 0 means no limit.
        max_structured_metadata_entries_count: usize = 128,
    }
    nested []
    ignored [
        log_level_fields, discover_generic_fields,
        use_owned_stream_count, tsdb_max_bytes_per_shard, tsdb_sharding_strategy,
        tsdb_precompute_chunks, max_cache_freshness_per_query, max_metadata_cache_freshness,
        max_stats_cache_freshness, max_queriers_per_tenant, max_query_capacity,
        query_ready_index_num_days, split_metadata_queries_by_interval,
        split_recent_metadata_queries_by_interval, recent_metadata_query_window,
        split_instant_metric_queries_by_interval, split_ingester_queries_by_interval,
        min_sharding_lookback, max_query_bytes_read, max_querier_bytes_read,
        ruler_max_rules_per_rule_group, ruler_max_rule_groups_per_tenant,
        ruler_alertmanager_config, ruler_tenant_shard_size, ruler_remote_write_disabled,
        ruler_remote_write_config, ruler_remote_evaluation_timeout,
        ruler_remote_evaluation_max_response_size, per_tenant_override_config,
        per_tenant_override_period, allow_deletes, shard_streams, blocked_queries,
        required_labels, minimum_labels_number, index_gateway_shard_size,
        bloom_gateway_shard_size, bloom_gateway_enable_filtering,
        bloom_gateway_cache_key_interval, bloom_build_max_builders,
        bloom_build_task_max_retries, bloom_build_builder_response_timeout,
        bloom_creation_enabled, bloom_planning_strategy, bloom_split_series_keyspace_by,
        bloom_block_encoding, bloom_max_block_size, bloom_max_bloom_size, otlp_config,
        block_ingestion_until, block_ingestion_status_code,
        ingestion_partitions_tenant_shard_size,
        pattern_ingester_tokenizable_json_fields_default,
        pattern_ingester_tokenizable_json_fields_append,
        pattern_ingester_tokenizable_json_fields_delete, metric_aggregation_enabled,
        pattern_persistence_enabled, enforced_labels, policy_enforced_labels,
        policy_stream_mapping, shard_aggregations,
    ]
}

section! {
    /// One `retention_stream` rule of `limits_config`.
    pub struct StreamRetention {
        /// Stream selector, e.g. `{namespace="dev"}`.
        selector: String = String::new(),
        /// Higher wins when several rules match.
        priority: i64 = 0,
        /// Retention of matching streams; at least 24h.
        #[serde(with = "duration_serde")]
        period: Duration = Duration::ZERO,
    }
    nested []
    ignored []
}

impl Limits {
    /// `ingestion_rate_mb` in bytes per second.
    pub fn ingestion_rate_bytes(&self) -> f64 {
        self.ingestion_rate_mb * BYTES_PER_MB
    }

    /// `ingestion_burst_size_mb` in bytes.
    pub fn ingestion_burst_bytes(&self) -> f64 {
        self.ingestion_burst_size_mb * BYTES_PER_MB
    }

    /// Problems with these limits, each naming its key under `prefix` (e.g. `limits_config.`).
    pub(crate) fn problems(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !matches!(self.ingestion_rate_strategy.as_str(), "global" | "local") {
            problems.push(format!(
                "{prefix}ingestion_rate_strategy must be \"global\" or \"local\", not {:?}",
                self.ingestion_rate_strategy
            ));
        }
        for (key, value) in [
            ("ingestion_rate_mb", self.ingestion_rate_mb),
            ("ingestion_burst_size_mb", self.ingestion_burst_size_mb),
        ] {
            if !value.is_finite() || value < 0.0 {
                problems.push(format!("{prefix}{key} must be a number >= 0, not {value}"));
            }
        }
        if !matches!(
            self.deletion_mode.as_str(),
            "disabled" | "filter-only" | "filter-and-delete"
        ) {
            problems.push(format!(
                "{prefix}deletion_mode must be one of disabled, filter-only, filter-and-delete, not {:?}",
                self.deletion_mode
            ));
        }
        for (index, rule) in self.retention_stream.iter().enumerate() {
            if rule.selector.trim().is_empty() {
                problems.push(format!(
                    "{prefix}retention_stream[{index}].selector must not be empty"
                ));
            }
            if rule.period < Duration::from_secs(24 * HOUR) {
                problems.push(format!(
                    "{prefix}retention_stream[{index}].period must be at least 24h, not {}",
                    crate::format_duration(rule.period)
                ));
            }
        }
        problems
    }
}

/// The runtime configuration file (`runtime_config.file`), of which Fenrir reads the
/// per-tenant `overrides`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RuntimeFile {
    overrides: Option<BTreeMap<String, Value>>,
    /// Per-tenant runtime configs (Loki's `configs`): accepted, not used.
    #[allow(dead_code)]
    configs: Option<Value>,
    /// Ring KV store switching: accepted, not used.
    #[allow(dead_code)]
    multi_kv_config: Option<Value>,
}

/// Parses a runtime configuration file (`overrides: { <tenant>: { <limits_config keys> } }`)
/// into each tenant's effective limits: keys a tenant does not set keep their value from
/// `base` (the server's `limits_config`), nested maps such as `otlp_config` are merged key
/// by key, and lists replace the base list. Tenant IDs must be valid Loki tenant IDs, and
/// an unknown key is an error naming the tenant and the key.
pub fn parse_overrides(text: &str, base: &Limits) -> Result<HashMap<String, Limits>> {
    let file: RuntimeFile = if text.trim().is_empty() {
        RuntimeFile::default()
    } else {
        serde_yaml_ng::from_str::<Option<RuntimeFile>>(text)
            .map_err(crate::config::parse_error)?
            .unwrap_or_default()
    };
    let base_value = serde_yaml_ng::to_value(base).map_err(|err| Error::Parse(err.to_string()))?;
    let mut limits = HashMap::new();
    for (tenant, overrides) in file.overrides.unwrap_or_default() {
        let fail = |message: String| Error::Override {
            tenant: tenant.clone(),
            message,
        };
        fenrir_common::Tenant::new(&tenant).map_err(|err| fail(err.to_string()))?;
        let merged = merge_yaml(base_value.clone(), overrides);
        let tenant_limits: Limits =
            serde_yaml_ng::from_value(merged).map_err(|err| fail(err.to_string()))?;
        let problems = tenant_limits.problems("");
        if !problems.is_empty() {
            return Err(fail(problems.join("; ")));
        }
        limits.insert(tenant, tenant_limits);
    }
    Ok(limits)
}

/// Lays `overlay` over `base`: mappings merge key by key, anything else replaces.
/// A null overlay (a tenant listed with no keys) keeps the base.
fn merge_yaml(base: Value, overlay: Value) -> Value {
    match (base, overlay) {
        (base, Value::Null) => base,
        (Value::Mapping(mut base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                let merged = match base.remove(&key) {
                    Some(existing) => merge_yaml(existing, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            Value::Mapping(base)
        }
        (Value::Null, Value::Mapping(overlay)) => {
            merge_yaml(Value::Mapping(Mapping::new()), Value::Mapping(overlay))
        }
        (_, overlay) => overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_lokis() {
        let limits = Limits::default();
        assert_eq!(limits.ingestion_rate_strategy, "global");
        assert!(limits.reject_old_samples);
        assert_eq!(
            limits.reject_old_samples_max_age,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(limits.creation_grace_period, Duration::from_secs(10 * 60));
        assert_eq!(limits.max_line_size, 262_144);
        assert!(!limits.max_line_size_truncate);
        assert_eq!(limits.max_label_names_per_series, 15);
        assert_eq!(limits.max_label_name_length, 1024);
        assert_eq!(limits.max_label_value_length, 2048);
        assert_eq!(limits.ingestion_rate_mb, 4.0);
        assert_eq!(limits.ingestion_burst_size_mb, 6.0);
        assert_eq!(limits.ingestion_rate_bytes(), 4.0 * 1024.0 * 1024.0);
        assert_eq!(limits.ingestion_burst_bytes(), 6.0 * 1024.0 * 1024.0);
        assert_eq!(limits.per_stream_rate_limit, 3 * 1024 * 1024);
        assert_eq!(limits.per_stream_rate_limit_burst, 15 * 1024 * 1024);
        assert_eq!(limits.max_global_streams_per_user, 5000);
        assert_eq!(limits.max_streams_per_user, 0);
        assert_eq!(limits.max_entries_limit_per_query, 5000);
        assert_eq!(limits.max_query_series, 500);
        assert_eq!(limits.max_query_length, Duration::from_secs(721 * 3600));
        assert_eq!(limits.max_query_lookback, Duration::ZERO);
        assert_eq!(limits.max_query_range, Duration::ZERO);
        assert_eq!(limits.query_timeout, Duration::from_secs(60));
        assert!(limits.allow_structured_metadata);
        assert_eq!(limits.max_structured_metadata_size, 65_536);
        assert_eq!(limits.max_structured_metadata_entries_count, 128);
        assert_eq!(
            limits.discover_service_name,
            [
                "service",
                "app",
                "application",
                "app_name",
                "name",
                "app_kubernetes_io_name",
                "container",
                "container_name",
                "k8s_container_name",
                "component",
                "workload",
                "job",
                "k8s_job_name"
            ]
        );
        assert!(limits.discover_log_levels);
        assert!(!limits.increment_duplicate_timestamp);
        assert!(limits.unordered_writes);
        assert_eq!(limits.retention_period, Duration::ZERO);
        assert_eq!(limits.split_queries_by_interval, Duration::from_secs(3600));
        assert!(limits.volume_enabled);
        assert_eq!(limits.volume_max_series, 1000);
        assert_eq!(limits.max_concurrent_tail_requests, 10);
        assert_eq!(limits.max_streams_matchers_per_query, 1000);
        assert_eq!(limits.max_chunks_per_query, 2_000_000);
        assert_eq!(limits.max_query_parallelism, 32);
        assert_eq!(limits.tsdb_max_query_parallelism, 128);
        assert_eq!(limits.deletion_mode, "filter-and-delete");
        assert!(limits.problems("").is_empty());
    }

    #[test]
    fn limits_survive_a_yaml_round_trip() {
        // The override merge relies on serialising the base limits and reading them back.
        let mut limits = Limits {
            max_line_size: 1000,
            query_timeout: Duration::from_millis(1500),
            ..Default::default()
        };
        limits.retention_stream.push(StreamRetention {
            selector: "{a=\"b\"}".into(),
            priority: 2,
            period: Duration::from_secs(48 * 3600),
        });
        let text = serde_yaml_ng::to_string(&limits).unwrap();
        assert!(text.contains("max_line_size: 1000B"), "{text}");
        assert!(text.contains("reject_old_samples_max_age: 1w"), "{text}");
        let back: Limits = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, limits);
    }

    #[test]
    fn overrides_take_unset_keys_from_the_base() {
        let base = Limits {
            max_query_series: 42,
            ..Default::default()
        };
        let text = r#"
overrides:
  tenant-a:
    ingestion_rate_mb: 10
    max_line_size: 1MB
    discover_service_name: [svc]
    otlp_config:
      resource_attributes:
        ignore_defaults: true
  "tenant_b":
    retention_period: 744h
  tenant-c:
  123:
    max_line_size: 1KB
"#;
        let overrides = parse_overrides(text, &base).unwrap();
        assert_eq!(overrides.len(), 4);
        assert_eq!(
            overrides["123"].max_line_size, 1024,
            "numeric tenant IDs are IDs too"
        );
        let a = &overrides["tenant-a"];
        assert_eq!(a.ingestion_rate_mb, 10.0);
        assert_eq!(a.max_line_size, 1 << 20);
        assert_eq!(a.discover_service_name, ["svc"]);
        assert_eq!(a.max_query_series, 42, "unset key keeps the base value");
        assert_eq!(a.ingestion_burst_size_mb, 6.0);
        let b = &overrides["tenant_b"];
        assert_eq!(b.retention_period, Duration::from_secs(744 * 3600));
        assert_eq!(b.max_line_size, 262_144);
        assert_eq!(b.max_query_series, 42);
        assert_eq!(overrides["tenant-c"], base);
    }

    #[test]
    fn nested_override_maps_merge_key_by_key() {
        let base_yaml: Value = serde_yaml_ng::from_str("a: {x: 1, y: 2}\nlist: [1, 2]\n").unwrap();
        let overlay: Value = serde_yaml_ng::from_str("a: {y: 3}\nlist: [9]\n").unwrap();
        let merged = merge_yaml(base_yaml, overlay);
        let want: Value = serde_yaml_ng::from_str("a: {x: 1, y: 3}\nlist: [9]\n").unwrap();
        assert_eq!(merged, want);
    }

    #[test]
    fn override_errors_name_the_tenant_and_key() {
        let err = parse_overrides(
            "overrides:\n  acme:\n    max_line_sise: 1MB\n",
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"acme\""), "{err}");
        assert!(err.contains("unknown field `max_line_sise`"), "{err}");

        let err = parse_overrides(
            "overrides:\n  a/b:\n    max_line_size: 1MB\n",
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unsupported character '/'"), "{err}");

        let err = parse_overrides(
            "overrides:\n  acme:\n    ingestion_rate_mb: -1\n",
            &Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ingestion_rate_mb must be a number >= 0"),
            "{err}"
        );

        let err = parse_overrides("overides: {}\n", &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `overides`"), "{err}");
    }

    #[test]
    fn empty_runtime_files_have_no_overrides() {
        assert!(parse_overrides("", &Limits::default()).unwrap().is_empty());
        assert!(parse_overrides("# nothing\n", &Limits::default())
            .unwrap()
            .is_empty());
        assert!(parse_overrides("overrides:\n", &Limits::default())
            .unwrap()
            .is_empty());
        assert!(parse_overrides("configs: {}\n", &Limits::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn retention_rules_are_checked() {
        let mut limits = Limits::default();
        limits.retention_stream.push(StreamRetention {
            selector: String::new(),
            priority: 1,
            period: Duration::from_secs(3600),
        });
        let problems = limits.problems("limits_config.");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("limits_config.retention_stream[0].selector"));
        assert!(problems[1].contains("at least 24h, not 1h"));
    }
}
