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
use crate::storage::{CommonConfig, ObjectStoreConfig, S3Config, SchemaConfig, StorageConfig, StoreKind};
use crate::{expand_env, Error, Result};

/// Larger configuration files are refused before being read into memory.
const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

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
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Parse(format!("{}: config file is not valid UTF-8", path.display())))?;
    let text = if expand_env_vars {
        expand_env(&text, |name| std::env::var(name).ok())
    } else {
        text
    };
    from_yaml(&text).map_err(|err| match err {
        Error::Parse(message) => {
            // Loki gives the same hint when a file with references fails to parse.
            let hint = if !expand_env_vars && text.contains("${") {
                ". Use `-config.expand-env=true` flag if you want to expand environment variables in your config file"
            } else {
                ""
            };
            Error::Parse(format!("{}: {message}{hint}", path.display()))
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
            problems.push("runtime_config.period must be more than 0s when runtime_config.file is set".to_string());
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
        if !matches!(server.log_level.as_str(), "debug" | "info" | "warn" | "error") {
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
            problems.push(format!("server.http_path_prefix must start with '/', as in \"/{prefix}\""));
        }
    }

    fn common_problems(&self, problems: &mut Vec<String>) {
        if self.common.path_prefix.as_os_str().is_empty() {
            problems.push("common.path_prefix must not be empty; the default is ./data".to_string());
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
                problems.push(format!("{key}.from must be later than the period before it"));
            }
            previous_from = Some(&period.from);
            if !period.object_store.is_empty() {
                if let Err(message) = StoreKind::parse(&period.object_store) {
                    problems.push(format!("{key}.{message}"));
                }
            }
        }
        if let Ok(StoreKind::S3) = self.store_kind() {
            match self.s3_config() {
                None => problems.push(
                    "the object store is s3 but neither storage_config.aws nor common.storage.s3 is set"
                        .to_string(),
                ),
                Some((key, s3)) => {
                    if s3.s3.is_some() {
                        problems.push(format!(
                            "{key}.s3 (the s3:// URL form) is not supported; set {key}.endpoint, region, bucketnames and the keys instead"
                        ));
                    } else if s3.bucketnames.trim().is_empty() {
                        problems.push(format!("{key}.bucketnames must name the bucket to write to"));
                    }
                }
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
        ] {
            if is_zero {
                problems.push(format!("ingester.{key} must be more than 0"));
            }
        }
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
            .map_err(|problem| Error::Invalid { problems: vec![problem] })
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
        let invalid = |problem: String| Error::Invalid { problems: vec![problem] };
        match self.store_kind().map_err(invalid)? {
            StoreKind::S3 => match self.s3_config() {
                Some((_, s3)) => Ok(ObjectStoreConfig::S3(s3.clone())),
                None => Err(invalid(
                    "the object store is s3 but neither storage_config.aws nor common.storage.s3 is set".to_string(),
                )),
            },
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
                let directory = configured.unwrap_or_else(|| self.common.path_prefix.join("chunks"));
                Ok(ObjectStoreConfig::Filesystem { directory })
            }
        }
    }

    fn store_kind(&self) -> Result<StoreKind, String> {
        let last = self.schema_config.configs.iter().enumerate().next_back();
        if let Some((index, period)) = last {
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
        self.common.storage.s3.as_ref().map(|s3| ("common.storage.s3", s3))
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
