//! The whole configuration file: loading, validation and derived paths.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::components::{
    AnalyticsConfig, CompactorConfig, DistributorConfig, FrontendConfig, IngesterConfig,
    QuerierConfig, QueryRangeConfig, RuntimeConfig,
};
use crate::limits::Limits;
use crate::section::{section, Section};
use crate::server::ServerConfig;
use crate::storage::{
    CommonConfig, ObjectStoreConfig, S3Config, SchemaConfig, StorageConfig, StoreKind,
};
use crate::{expand_env, Error, Result};

/// Larger configuration files are refused before being read into memory.
pub(crate) const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

/// Chunk encodings Loki accepts for `ingester.chunk_encoding`.
const LOKI_CHUNK_ENCODINGS: &[&str] = &[
    "none", "gzip", "lz4-64k", "snappy", "lz4-256k", "lz4-1M", "lz4", "flate", "zstd",
];

section! {
    /// Fenrir's configuration: a Loki `config.yaml` with the same key names. The
    /// [`Default`] is the zero-config single node: `127.0.0.1:3100`, data under `./data`,
    /// filesystem storage, `auth_enabled: false` (Loki defaults to true), Loki's limits.
    ///
    /// Every block rejects unknown keys. Loki keys with no meaning in a single Fenrir
    /// process (rings, gRPC, caches, ruler, ...) are accepted and reported by
    /// [`Config::ignored_keys`] so the server can log them.
    pub struct Config {
        /// Components to run; only `all` is supported.
        target: String = "all".to_string(),
        /// Require `X-Scope-OrgID`; when false every request belongs to tenant `fake`.
        auth_enabled: bool = false,
        /// `server` block.
        server: ServerConfig = ServerConfig::default(),
        /// `common` block.
        common: CommonConfig = CommonConfig::default(),
        /// `storage_config` block.
        storage_config: StorageConfig = StorageConfig::default(),
        /// `schema_config` block.
        schema_config: SchemaConfig = SchemaConfig::default(),
        /// `ingester` block.
        ingester: IngesterConfig = IngesterConfig::default(),
        /// `limits_config` block: default limits of every tenant.
        limits_config: Limits = Limits::default(),
        /// `query_range` block.
        query_range: QueryRangeConfig = QueryRangeConfig::default(),
        /// `frontend` block.
        frontend: FrontendConfig = FrontendConfig::default(),
        /// `querier` block.
        querier: QuerierConfig = QuerierConfig::default(),
        /// `compactor` block.
        compactor: CompactorConfig = CompactorConfig::default(),
        /// `distributor` block.
        distributor: DistributorConfig = DistributorConfig::default(),
        /// `analytics` block (accepted, unused).
        analytics: AnalyticsConfig = AnalyticsConfig::default(),
        /// `runtime_config` block.
        runtime_config: RuntimeConfig = RuntimeConfig::default(),
    }
    nested [
        server, common, storage_config, schema_config, ingester, limits_config, query_range,
        frontend, querier, compactor, distributor, analytics, runtime_config,
    ]
    ignored [
        ballast_bytes, ui, query_engine, query_scheduler, ruler, ruler_storage,
        ingester_client, pattern_ingester, index_gateway, bloom_build, bloom_gateway,
        bloom_compactor, chunk_store_config, compactor_grpc_client, compactor_client,
        frontend_worker, table_manager, memberlist, operational_config, tracing,
        shutdown_delay, metrics_namespace, profiling, kafka_config, dataobj, block_builder,
        block_scheduler, ingest_limits, ingest_limits_frontend, ingest_limits_frontend_client,
        partition_ring, ingester_rf1, metastore, metastore_client, consumer, querier_rf1,
        pattern_ingester_client,
    ]
}

/// Parses a configuration from YAML text (already env-expanded if wanted) and validates
/// it. An empty document is the default configuration.
pub fn from_yaml(text: &str) -> Result<Config> {
    let config = serde_yaml_ng::from_str::<Option<Config>>(text)
        .map_err(parse_error)?
        .unwrap_or_default();
    config.validate()?;
    Ok(config)
}

/// Reads, optionally env-expands (`-config.expand-env=true`), parses and validates the
/// configuration file at `path`.
pub fn load(path: &Path, expand_env_vars: bool) -> Result<Config> {
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            max: MAX_CONFIG_FILE_BYTES,
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::Parse(format!(
            "{}: config file is not valid UTF-8",
            path.display()
        ))
    })?;
    let text = if expand_env_vars {
        expand_env(&text, |name| std::env::var(name).ok())
    } else {
        text
    };
    // Loki gives the same hint when a file with references fails to load.
    let hint = (!expand_env_vars && text.contains("${")).then_some(
        "use `-config.expand-env=true` flag if you want to expand environment variables in your config file",
    );
    from_yaml(&text).map_err(|err| match err {
        Error::Parse(message) => Error::Parse(match hint {
            Some(hint) => format!("{}: {message}; {hint}", path.display()),
            None => format!("{}: {message}", path.display()),
        }),
        Error::Invalid { mut problems } => {
            problems.extend(hint.map(str::to_string));
            Error::Invalid { problems }
        }
        other => other,
    })
}

/// Turns a serde_yaml_ng error into [`Error::Parse`], dropping the list of every valid
/// key that follows an unknown one (over a hundred for `limits_config`) but keeping the
/// key path and the line.
pub(crate) fn parse_error(err: serde_yaml_ng::Error) -> Error {
    let message = err.to_string();
    if !message.contains("unknown field `") {
        return Error::Parse(message);
    }
    let Some(list_start) = message
        .find(", expected ")
        .or_else(|| message.find(", there are no fields"))
    else {
        return Error::Parse(message);
    };
    let location = message[list_start..]
        .find(" at line ")
        .map(|offset| &message[list_start + offset..])
        .unwrap_or("");
    Error::Parse(format!("{}{location}", &message[..list_start]))
}

impl Config {
    /// Checks everything serde cannot: returns [`Error::Invalid`] listing every problem,
    /// each naming its key and saying what to write instead.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let target = self.target.trim();
        if target != "all" {
            problems.push(format!(
                "target must be \"all\" (Fenrir runs every component in one process), not {target:?}"
            ));
        }
        self.server_problems(&mut problems);
        self.common_problems(&mut problems);
        self.storage_problems(&mut problems);
        self.ingester_problems(&mut problems);
        problems.extend(self.limits_config.problems("limits_config."));
        if !matches!(self.frontend.encoding.as_str(), "json" | "protobuf") {
            problems.push(format!(
                "frontend.encoding must be \"json\" or \"protobuf\", not {:?}",
                self.frontend.encoding
            ));
        }
        if self.querier.max_concurrent == 0 {
            problems.push("querier.max_concurrent must be at least 1".to_string());
        }
        if self.runtime_config.file.is_some() && self.runtime_config.period.is_zero() {
            problems.push(
                "runtime_config.period must be more than 0s when runtime_config.file is set"
                    .to_string(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid { problems })
        }
    }

    fn server_problems(&self, problems: &mut Vec<String>) {
        let server = &self.server;
        if let Err(problem) = self.listen_addr_checked() {
            problems.push(problem);
        }
        if !matches!(
            server.log_level.as_str(),
            "debug" | "info" | "warn" | "error"
        ) {
            problems.push(format!(
                "server.log_level must be one of debug, info, warn, error, not {:?}",
                server.log_level
            ));
        }
        if !matches!(server.log_format.as_str(), "logfmt" | "json") {
            problems.push(format!(
                "server.log_format must be \"logfmt\" or \"json\", not {:?}",
                server.log_format
            ));
        }
        let prefix = &server.http_path_prefix;
        if !prefix.is_empty() && !prefix.starts_with('/') {
            problems.push(format!(
                "server.http_path_prefix must start with '/', as in \"/{prefix}\""
            ));
        }
    }

    fn common_problems(&self, problems: &mut Vec<String>) {
        if self.common.path_prefix.as_os_str().is_empty() {
            problems
                .push("common.path_prefix must not be empty; the default is ./data".to_string());
        }
        if self.common.replication_factor != 1 {
            problems.push(format!(
                "common.replication_factor must be 1 (Fenrir is a single node), not {}",
                self.common.replication_factor
            ));
        }
        let store = &self.common.ring.kvstore.store;
        if !matches!(store.as_str(), "inmemory" | "memberlist") {
            problems.push(format!(
                "common.ring.kvstore.store {store:?} is not supported: Fenrir is a single node; use inmemory"
            ));
        }
    }

    fn storage_problems(&self, problems: &mut Vec<String>) {
        let mut previous_from: Option<&str> = None;
        for (index, period) in self.schema_config.configs.iter().enumerate() {
            let key = format!("schema_config.configs[{index}]");
            if !is_iso_date(&period.from) {
                problems.push(format!(
                    "{key}.from must be a date like 2024-04-01, not {:?}",
                    period.from
                ));
            } else if previous_from.is_some_and(|previous| previous >= period.from.as_str()) {
                problems.push(format!(
                    "{key}.from must be later than the period before it"
                ));
            }
            previous_from = Some(&period.from);
            if !period.object_store.is_empty() {
                if let Err(message) = StoreKind::parse(&period.object_store) {
                    problems.push(format!("{key}.{message}"));
                }
            }
        }
        if let Some((key, s3)) = self.s3_config() {
            backoff_problems(
                &format!("{key}.backoff_config"),
                &s3.backoff_config,
                problems,
            );
        }
        if let Err(problem) = self.resolve_object_store() {
            // A bad object_store of the last period is already reported above.
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }

    fn ingester_problems(&self, problems: &mut Vec<String>) {
        let ingester = &self.ingester;
        if !LOKI_CHUNK_ENCODINGS.contains(&ingester.chunk_encoding.as_str()) {
            problems.push(format!(
                "ingester.chunk_encoding must be one of {}, not {:?} (Fenrir always writes zstd)",
                LOKI_CHUNK_ENCODINGS.join(", "),
                ingester.chunk_encoding
            ));
        }
        for (key, is_zero) in [
            ("chunk_block_size", ingester.chunk_block_size == 0),
            ("chunk_target_size", ingester.chunk_target_size == 0),
            ("max_chunk_age", ingester.max_chunk_age.is_zero()),
            ("chunk_idle_period", ingester.chunk_idle_period.is_zero()),
            ("flush_check_period", ingester.flush_check_period.is_zero()),
            ("concurrent_flushes", ingester.concurrent_flushes == 0),
            ("max_unflushed_bytes", ingester.max_unflushed_bytes == 0),
            (
                "flush_op_backoff.min_period",
                ingester.flush_op_backoff.min_period.is_zero(),
            ),
        ] {
            if is_zero {
                problems.push(format!("ingester.{key} must be more than 0"));
            }
        }
        backoff_problems(
            "ingester.flush_op_backoff",
            &ingester.flush_op_backoff,
            problems,
        );
    }

    /// Loki keys that are set in this configuration but have no effect in Fenrir, as
    /// dotted paths (`server.grpc_listen_port`, `schema_config.configs[0].row_shards`),
    /// for the server to log at start.
    pub fn ignored_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        self.collect_ignored("", &mut keys);
        keys
    }

    /// Root of local data: `common.path_prefix`.
    pub fn data_dir(&self) -> &Path {
        &self.common.path_prefix
    }

    /// WAL directory: `ingester.wal.dir`, else `<common.path_prefix>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        match &self.ingester.wal.dir {
            Some(dir) => dir.clone(),
            None => self.common.path_prefix.join("wal"),
        }
    }

    /// Compactor scratch directory: `compactor.working_directory`, else
    /// `<common.path_prefix>/compactor`.
    pub fn compactor_dir(&self) -> PathBuf {
        match &self.compactor.working_directory {
            Some(dir) => dir.clone(),
            None => self.common.path_prefix.join("compactor"),
        }
    }

    /// The HTTP socket address. `http_listen_address` must be an IP address; an empty
    /// one means all interfaces (`0.0.0.0`), as in Loki.
    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen_addr_checked()
            .map_err(|problem| Error::Invalid {
                problems: vec![problem],
            })
    }

    fn listen_addr_checked(&self) -> Result<SocketAddr, String> {
        let address = self.server.http_listen_address.trim();
        let ip = if address.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            let unbracketed = address
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .unwrap_or(address);
            unbracketed.parse::<IpAddr>().map_err(|_| {
                format!(
                    "server.http_listen_address must be an IP address such as 127.0.0.1 or 0.0.0.0, not {address:?}"
                )
            })?
        };
        Ok(SocketAddr::new(ip, self.server.http_listen_port))
    }

    /// The object store segments are written to. The kind is the `object_store` of the
    /// last `schema_config` period if there is one, else S3 when `storage_config.aws` or
    /// `common.storage.s3` is set, else the filesystem. The filesystem directory is
    /// `storage_config.filesystem.directory`, else `common.storage.filesystem.chunks_directory`,
    /// else `<common.path_prefix>/chunks`.
    pub fn object_store(&self) -> Result<ObjectStoreConfig> {
        self.resolve_object_store()
            .map_err(|problem| Error::Invalid {
                problems: vec![problem],
            })
    }

    fn resolve_object_store(&self) -> Result<ObjectStoreConfig, String> {
        match self.store_kind()? {
            StoreKind::S3 => {
                let Some((key, s3)) = self.s3_config() else {
                    return Err("the object store is s3 but neither storage_config.aws nor common.storage.s3 is set".to_string());
                };
                if s3.s3.is_some() {
                    return Err(format!(
                        "{key}.s3 (the s3:// URL form) is not supported; set {key}.endpoint, region, bucketnames and the keys instead"
                    ));
                }
                if s3.bucketnames.trim().is_empty() {
                    return Err(format!(
                        "{key}.bucketnames must name the bucket to write to"
                    ));
                }
                Ok(ObjectStoreConfig::S3(Box::new(s3.clone())))
            }
            StoreKind::Filesystem => {
                let configured = self
                    .storage_config
                    .filesystem
                    .as_ref()
                    .and_then(|fs| fs.directory.clone())
                    .or_else(|| {
                        self.common
                            .storage
                            .filesystem
                            .as_ref()
                            .and_then(|fs| fs.chunks_directory.clone())
                    });
                let directory =
                    configured.unwrap_or_else(|| self.common.path_prefix.join("chunks"));
                Ok(ObjectStoreConfig::Filesystem { directory })
            }
        }
    }

    fn store_kind(&self) -> Result<StoreKind, String> {
        if let Some((index, period)) = self.schema_config.configs.iter().enumerate().next_back() {
            if !period.object_store.is_empty() {
                return StoreKind::parse(&period.object_store)
                    .map_err(|message| format!("schema_config.configs[{index}].{message}"));
            }
        }
        Ok(if self.s3_config().is_some() {
            StoreKind::S3
        } else {
            StoreKind::Filesystem
        })
    }

    /// The S3 settings in effect and the key they came from.
    fn s3_config(&self) -> Option<(&'static str, &S3Config)> {
        if let Some(aws) = &self.storage_config.aws {
            return Some(("storage_config.aws", aws));
        }
        self.common
            .storage
            .s3
            .as_ref()
            .map(|s3| ("common.storage.s3", s3))
    }
}

fn backoff_problems(key: &str, backoff: &crate::BackoffConfig, problems: &mut Vec<String>) {
    if backoff.min_period > backoff.max_period {
        problems.push(format!(
            "{key}.min_period must not be longer than {key}.max_period"
        ));
    }
}

fn is_iso_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_at = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    if !(digits_at(0..4) && digits_at(5..7) && digits_at(8..10)) {
        return false;
    }
    let month = (bytes[5] - b'0') * 10 + (bytes[6] - b'0');
    let day = (bytes[8] - b'0') * 10 + (bytes[9] - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_byte_size, parse_duration};
    use std::time::Duration;

    const LOKI_LOCAL: &str = include_str!("../tests/data/loki-local-config.yaml");
    const LOKI_S3: &str = include_str!("../tests/data/loki-s3-config.yaml");
    const EXAMPLE_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/fenrir.example.yaml"
    );

    fn problems_of(yaml: &str) -> Vec<String> {
        match from_yaml(yaml) {
            Err(Error::Invalid { problems }) => problems,
            other => panic!("expected validation problems, got {other:?}"),
        }
    }

    fn parse_message(yaml: &str) -> String {
        match from_yaml(yaml) {
            Err(Error::Parse(message)) => message,
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn default_is_the_zero_config_single_node() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.target, "all");
        assert!(!config.auth_enabled);
        assert_eq!(
            config.listen_addr().unwrap(),
            "127.0.0.1:3100".parse().unwrap()
        );
        assert_eq!(config.data_dir(), Path::new("./data"));
        assert_eq!(config.wal_dir(), Path::new("./data/wal"));
        assert_eq!(config.compactor_dir(), Path::new("./data/compactor"));
        assert_eq!(
            config.object_store().unwrap(),
            ObjectStoreConfig::Filesystem {
                directory: PathBuf::from("./data/chunks")
            }
        );
        assert_eq!(
            config.server.graceful_shutdown_timeout,
            Duration::from_secs(30)
        );
        assert_eq!(config.server.log_level, "info");
        assert_eq!(config.ingester.chunk_target_size, 1_572_864);
        assert_eq!(config.ingester.chunk_block_size, 262_144);
        assert_eq!(config.ingester.max_chunk_age, Duration::from_secs(2 * 3600));
        assert_eq!(
            config.ingester.chunk_idle_period,
            Duration::from_secs(30 * 60)
        );
        assert_eq!(config.ingester.flush_check_period, Duration::from_secs(30));
        assert_eq!(config.ingester.flush_op_timeout, Duration::from_secs(600));
        assert!(config.ingester.wal.enabled);
        assert!(config.ingester.wal.flush_on_shutdown);
        assert_eq!(config.distributor.max_recv_msg_size, 100 << 20);
        assert_eq!(config.distributor.max_decompressed_size, 5000 << 20);
        assert_eq!(config.runtime_config.period, Duration::from_secs(10));
        assert_eq!(config.limits_config, Limits::default());
        assert!(config.ignored_keys().is_empty());
    }

    #[test]
    fn empty_documents_are_the_default() {
        for text in ["", "\n", "# only a comment\n", "{}", "---\n"] {
            assert_eq!(from_yaml(text).unwrap(), Config::default(), "{text:?}");
        }
        // A block present but empty keeps its defaults.
        assert_eq!(
            from_yaml("server:\nlimits_config: {}\n").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn default_config_round_trips_through_yaml() {
        let text = serde_yaml_ng::to_string(&Config::default()).unwrap();
        assert_eq!(from_yaml(&text).unwrap(), Config::default(), "{text}");
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let message = parse_message("auth_enabled: true\nlimits_cofnig:\n  max_line_size: 1MB\n");
        assert_eq!(message, "unknown field `limits_cofnig` at line 2 column 1");
    }

    #[test]
    fn unknown_nested_key_names_its_section() {
        let message = parse_message("limits_config:\n  max_line_sise: 1MB\n");
        assert_eq!(
            message,
            "limits_config: unknown field `max_line_sise` at line 2 column 3"
        );

        let deep = "storage_config:\n  aws:\n    http_config:\n      bogus: 1\n";
        let message = parse_message(deep);
        assert_eq!(
            message,
            "storage_config.aws.http_config: unknown field `bogus` at line 4 column 7"
        );

        let message =
            parse_message("schema_config:\n  configs:\n    - from: 2024-01-01\n      shema: v13\n");
        assert!(
            message.starts_with("schema_config.configs[0]: unknown field `shema`"),
            "{message}"
        );

        let message = parse_message("analytics:\n  reporting: false\n");
        assert_eq!(
            message,
            "analytics: unknown field `reporting` at line 2 column 3"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let message = parse_message("limits_config:\n  max_line_size: 12XB\n");
        assert!(
            message.starts_with("limits_config.max_line_size: invalid byte size \"12XB\""),
            "{message}"
        );
        let message = parse_message("limits_config:\n  query_timeout: 10\n");
        assert!(
            message
                .starts_with("limits_config.query_timeout: invalid duration \"10\": missing unit"),
            "{message}"
        );
        let message = parse_message("limits_config:\n  max_query_series: -1\n");
        assert!(
            message.starts_with("limits_config.max_query_series: invalid type: integer `-1`"),
            "{message}"
        );
        let message = parse_message("server:\n  http_listen_port: 70000\n");
        assert!(
            message.starts_with("server.http_listen_port: invalid value"),
            "{message}"
        );
        let message = parse_message("auth_enabled: maybe\n");
        assert!(
            message.starts_with("auth_enabled: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn lokis_local_config_parses() {
        let config = from_yaml(LOKI_LOCAL).unwrap();
        assert!(!config.auth_enabled);
        assert_eq!(
            config.listen_addr().unwrap(),
            "127.0.0.1:3100".parse().unwrap()
        );
        assert_eq!(config.server.log_level, "debug");
        assert_eq!(config.data_dir(), Path::new("/tmp/loki"));
        assert_eq!(config.wal_dir(), Path::new("/tmp/loki/wal"));
        assert_eq!(
            config.object_store().unwrap(),
            ObjectStoreConfig::Filesystem {
                directory: PathBuf::from("/tmp/loki/chunks")
            }
        );
        assert_eq!(config.common.instance_addr.as_deref(), Some("127.0.0.1"));
        assert!(config.query_range.align_queries_with_step);
        assert_eq!(
            config.limits_config.split_queries_by_interval,
            Duration::from_secs(15 * 60)
        );
        assert_eq!(config.frontend.encoding, "protobuf");
        assert_eq!(config.schema_config.configs[0].from, "2020-10-24");
        assert_eq!(config.schema_config.configs[0].index.prefix, "index_");
        assert_eq!(
            config.ignored_keys(),
            [
                "ruler",
                "pattern_ingester",
                "server.grpc_listen_port",
                "server.grpc_server_max_concurrent_streams",
                "limits_config.metric_aggregation_enabled",
                "query_range.results_cache",
            ]
        );
    }

    #[test]
    fn a_typical_loki_s3_config_parses() {
        let config = from_yaml(LOKI_S3).unwrap();
        assert!(config.auth_enabled);
        assert_eq!(
            config.listen_addr().unwrap(),
            "0.0.0.0:3100".parse().unwrap()
        );
        assert_eq!(
            config.server.http_server_read_timeout,
            Duration::from_secs(300)
        );
        assert_eq!(config.wal_dir(), Path::new("/loki/wal"));
        assert_eq!(config.compactor_dir(), Path::new("/loki/compactor"));
        assert!(config.compactor.retention_enabled);
        assert_eq!(config.ingester.chunk_encoding, "snappy");
        assert_eq!(config.ingester.chunk_target_size, 1_536_000);
        assert_eq!(config.limits_config.ingestion_rate_mb, 16.0);
        assert_eq!(config.limits_config.per_stream_rate_limit, 5 << 20);
        assert_eq!(config.limits_config.per_stream_rate_limit_burst, 20 << 20);
        assert_eq!(
            config.limits_config.retention_period,
            Duration::from_secs(744 * 3600)
        );
        assert_eq!(config.querier.max_concurrent, 16);
        assert_eq!(config.frontend.max_outstanding_per_tenant, 4096);
        assert_eq!(
            config.frontend.log_queries_longer_than,
            Duration::from_secs(5)
        );
        assert_eq!(
            config.runtime_config.file.as_deref(),
            Some(Path::new("/etc/loki/runtime.yaml"))
        );
        assert_eq!(config.runtime_config.period, Duration::from_secs(30));
        let ObjectStoreConfig::S3(s3) = config.object_store().unwrap() else {
            panic!("expected s3");
        };
        assert_eq!(s3.endpoint, "minio:9000");
        assert_eq!(s3.bucketnames, "loki-data");
        assert_eq!(s3.access_key_id, "loki");
        assert_eq!(s3.secret_access_key.expose(), "supersecret");
        assert!(s3.s3forcepathstyle && s3.insecure && s3.http_config.insecure_skip_verify);
        assert_eq!(s3.http_config.idle_conn_timeout, Duration::from_secs(90));
        let ignored = config.ignored_keys();
        for key in [
            "memberlist",
            "query_scheduler",
            "tracing",
            "analytics.reporting_enabled",
            "server.grpc_server_max_recv_msg_size",
            "ingester.lifecycler",
            "storage_config.tsdb_shipper",
            "compactor.retention_delete_worker_count",
            "compactor.delete_request_store",
            "limits_config.otlp_config",
            "limits_config.max_cache_freshness_per_query",
            "query_range.results_cache",
        ] {
            assert!(
                ignored.iter().any(|k| k == key),
                "{key} missing from {ignored:?}"
            );
        }
    }

    #[test]
    fn the_example_file_parses_to_the_documented_values() {
        let text = std::fs::read_to_string(EXAMPLE_PATH).unwrap();
        let config = from_yaml(&expand_env(&text, |_| None)).unwrap();
        let mut want = Config::default();
        want.common.storage.filesystem = Some(crate::CommonFilesystem {
            chunks_directory: Some(PathBuf::from("./data/chunks")),
            rules_directory: None,
        });
        want.ingester.wal.dir = Some(PathBuf::from("./data/wal"));
        want.schema_config.configs = vec![crate::PeriodConfig {
            from: "2024-04-01".into(),
            store: "tsdb".into(),
            object_store: "filesystem".into(),
            schema: "v13".into(),
            index: crate::IndexPeriod {
                prefix: "index_".into(),
                ..Default::default()
            },
            ..Default::default()
        }];
        want.analytics.reporting_enabled = Some(serde_yaml_ng::Value::Bool(false));
        // Everything else the example spells out is the default.
        assert_eq!(config, want);
        assert_eq!(config.ignored_keys(), ["analytics.reporting_enabled"]);
        assert_eq!(
            config.limits_config.max_line_size,
            parse_byte_size("256KB").unwrap()
        );
        assert_eq!(
            config.limits_config.reject_old_samples_max_age,
            parse_duration("7d").unwrap()
        );

        let env_set = from_yaml(&expand_env(&text, |name| {
            (name == "FENRIR_LISTEN_ADDRESS").then(|| "0.0.0.0".to_string())
        }))
        .unwrap();
        assert_eq!(
            env_set.listen_addr().unwrap(),
            "0.0.0.0:3100".parse().unwrap()
        );
    }

    #[test]
    fn validation_lists_every_problem_with_its_key() {
        let yaml = r#"
target: read
server:
  http_listen_address: localhost
  log_level: verbose
  http_path_prefix: loki
common:
  replication_factor: 3
  ring:
    kvstore:
      store: consul
ingester:
  chunk_encoding: brotli
  max_chunk_age: 0s
limits_config:
  ingestion_rate_mb: -4
  deletion_mode: sometimes
frontend:
  encoding: xml
schema_config:
  configs:
    - from: 2024-13-01
      object_store: gcs
"#;
        let problems = problems_of(yaml);
        let expected = [
            "target must be \"all\"",
            "server.http_listen_address must be an IP address",
            "server.log_level must be one of debug, info, warn, error, not \"verbose\"",
            "server.http_path_prefix must start with '/', as in \"/loki\"",
            "common.replication_factor must be 1",
            "common.ring.kvstore.store \"consul\" is not supported",
            "schema_config.configs[0].from must be a date like 2024-04-01, not \"2024-13-01\"",
            "schema_config.configs[0].object_store \"gcs\" is not supported by Fenrir",
            "ingester.chunk_encoding must be one of",
            "ingester.max_chunk_age must be more than 0",
            "limits_config.ingestion_rate_mb must be a number >= 0, not -4",
            "limits_config.deletion_mode must be one of",
            "frontend.encoding must be \"json\" or \"protobuf\"",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "missing {want:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        // The Display form joins them into one line.
        let text = from_yaml(yaml).unwrap_err().to_string();
        assert!(
            text.starts_with("invalid configuration: target must be"),
            "{text}"
        );
    }

    #[test]
    fn s3_selection_requires_a_bucket() {
        let yaml = "schema_config:\n  configs:\n    - from: 2024-01-01\n      object_store: s3\n";
        let problems = problems_of(yaml);
        assert_eq!(problems, ["the object store is s3 but neither storage_config.aws nor common.storage.s3 is set"]);

        let yaml = "storage_config:\n  aws:\n    endpoint: http://minio:9000\n";
        assert_eq!(
            problems_of(yaml),
            ["storage_config.aws.bucketnames must name the bucket to write to"]
        );

        let yaml = "storage_config:\n  aws:\n    s3: s3://key:secret@us-east-1/bucket\n";
        assert!(problems_of(yaml)[0]
            .starts_with("storage_config.aws.s3 (the s3:// URL form) is not supported"));

        // S3 settings present but the schema says filesystem: the schema wins.
        let yaml = "storage_config:\n  aws:\n    bucketnames: b\nschema_config:\n  configs:\n    - from: 2024-01-01\n      object_store: filesystem\n";
        assert!(matches!(
            from_yaml(yaml).unwrap().object_store().unwrap(),
            ObjectStoreConfig::Filesystem { .. }
        ));
    }

    #[test]
    fn storage_directory_precedence() {
        let yaml = "common:\n  path_prefix: /var/fenrir\nstorage_config:\n  filesystem:\n    directory: /objects\n";
        let config = from_yaml(yaml).unwrap();
        assert_eq!(
            config.object_store().unwrap(),
            ObjectStoreConfig::Filesystem {
                directory: "/objects".into()
            }
        );
        assert_eq!(config.wal_dir(), Path::new("/var/fenrir/wal"));
        let config = from_yaml("common:\n  path_prefix: /var/fenrir\n").unwrap();
        assert_eq!(
            config.object_store().unwrap(),
            ObjectStoreConfig::Filesystem {
                directory: "/var/fenrir/chunks".into()
            }
        );
    }

    #[test]
    fn listen_address_forms() {
        let config =
            from_yaml("server:\n  http_listen_address: \"\"\n  http_listen_port: 8080\n").unwrap();
        assert_eq!(
            config.listen_addr().unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        let config = from_yaml("server:\n  http_listen_address: \"[::1]\"\n").unwrap();
        assert_eq!(config.listen_addr().unwrap(), "[::1]:3100".parse().unwrap());
        let config = from_yaml("server:\n  http_listen_address: \"::\"\n").unwrap();
        assert_eq!(config.listen_addr().unwrap(), "[::]:3100".parse().unwrap());
    }

    #[test]
    fn schema_periods_must_increase() {
        let yaml = "schema_config:\n  configs:\n    - from: 2024-02-01\n    - from: 2024-01-01\n";
        assert_eq!(
            problems_of(yaml),
            ["schema_config.configs[1].from must be later than the period before it"]
        );
        assert_eq!(
            from_yaml("schema_config:\n  configs:\n    - from: 2024-01-01\n      row_shards: 16\n")
                .unwrap()
                .ignored_keys(),
            ["schema_config.configs[0].row_shards"]
        );
    }

    fn temp_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn load_expands_the_environment_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = temp_file(
            &dir,
            "expand.yaml",
            "server:\n  http_listen_port: ${FENRIR_CONFIG_TEST_SURELY_UNSET_PORT:-4100}\n",
        );
        let config = load(&path, true).unwrap();
        assert_eq!(config.server.http_listen_port, 4100);

        let message = load(&path, false).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "{}: server.http_listen_port: invalid type",
                path.display()
            )),
            "{message}"
        );
        assert!(message.ends_with("use `-config.expand-env=true` flag if you want to expand environment variables in your config file"), "{message}");
    }

    #[test]
    fn load_reports_missing_and_oversized_files() {
        let missing = Path::new("/nonexistent/fenrir/config.yaml");
        let err = load(missing, false).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with("reading config file /nonexistent/fenrir/config.yaml: "));

        let big = "# padding\n".repeat((MAX_CONFIG_FILE_BYTES / 10 + 1) as usize);
        let dir = tempfile::tempdir().unwrap();
        let path = temp_file(&dir, "big.yaml", &big);
        let err = load(&path, false).unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { max, .. } if max == MAX_CONFIG_FILE_BYTES),
            "{err:?}"
        );
    }

    #[test]
    fn iso_dates() {
        for good in ["2020-10-24", "2024-01-31", "1999-12-01"] {
            assert!(is_iso_date(good), "{good}");
        }
        for bad in [
            "2020-1-24",
            "2020-00-10",
            "2020-10-32",
            "20201024",
            "2020/10/24",
            "",
            "2020-10-2x",
        ] {
            assert!(!is_iso_date(bad), "{bad}");
        }
    }
}
