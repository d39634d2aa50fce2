//! `common`, `storage_config` and `schema_config`: where data lives.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::section::section;
use crate::units::duration_serde;

section! {
    /// `common`: settings shared by every component.
    pub struct CommonConfig {
        /// Root directory of everything Fenrir stores locally (WAL, index, chunks).
        path_prefix: PathBuf = PathBuf::from("./data"),
        /// Object storage used when `storage_config` does not name one.
        storage: CommonStorage = CommonStorage::default(),
        /// Accepted for Loki compatibility; Fenrir is one node, so it must be 1.
        replication_factor: u32 = 1,
        /// Accepted for Loki compatibility; only a single-node ring is supported.
        ring: RingConfig = RingConfig::default(),
        /// Address this node advertises; kept for compatibility, unused.
        instance_addr: Option<String> = None,
    }
    nested [storage, ring]
    ignored [persist_tokens, instance_interface_names, compactor_address, compactor_grpc_address]
}

section! {
    /// `common.storage`: `filesystem` or `s3`.
    pub struct CommonStorage {
        /// Local directories.
        filesystem: Option<CommonFilesystem> = None,
        /// S3-compatible object storage, same keys as `storage_config.aws`.
        s3: Option<S3Config> = None,
    }
    nested [filesystem, s3]
    ignored [gcs, azure, swift, bos, cos, alibabacloud, hedging, congestion_control, object_prefix]
}

section! {
    /// `common.storage.filesystem`.
    pub struct CommonFilesystem {
        /// Where chunks (segment objects) are written.
        chunks_directory: Option<PathBuf> = None,
        /// Where rule files live; accepted, unused (Fenrir has no ruler).
        rules_directory: Option<PathBuf> = None,
    }
    nested []
    ignored []
}

section! {
    /// `common.ring`: accepted for compatibility; Fenrir never forms a ring.
    pub struct RingConfig {
        /// The ring's key-value store.
        kvstore: KvStoreConfig = KvStoreConfig::default(),
        /// Address advertised in the ring; unused.
        instance_addr: Option<String> = None,
    }
    nested [kvstore]
    ignored [
        heartbeat_period, heartbeat_timeout, tokens_file_path, zone_awareness_enabled,
        num_tokens, replication_factor, instance_id, instance_interface_names, instance_port,
        instance_availability_zone, instance_enable_ipv6, excluded_zones,
    ]
}

section! {
    /// `common.ring.kvstore`.
    pub struct KvStoreConfig {
        /// `inmemory` (or `memberlist`, accepted as Loki's single binary allows it).
        store: String = "inmemory".to_string(),
    }
    nested []
    ignored [prefix, consul, etcd, multi]
}

section! {
    /// `storage_config`: object storage clients and (ignored) index shippers.
    pub struct StorageConfig {
        /// Local filesystem object store.
        filesystem: Option<FilesystemStorage> = None,
        /// S3-compatible object store.
        aws: Option<S3Config> = None,
    }
    nested [filesystem, aws]
    ignored [
        tsdb_shipper, boltdb_shipper, named_stores, use_thanos_objstore, object_store,
        object_prefix, gcs, azure, swift, bos, cos, alibabacloud, bigtable, cassandra,
        grpc_store, congestion_control, hedging, index_cache_validity,
        index_queries_cache_config, disable_broad_index_queries, max_parallel_get_chunk,
        max_chunk_batch_size,
    ]
}

section! {
    /// `storage_config.filesystem`.
    pub struct FilesystemStorage {
        /// Directory holding the objects.
        directory: Option<PathBuf> = None,
    }
    nested []
    ignored []
}

section! {
    /// S3 client settings (`storage_config.aws`, `common.storage.s3`).
    pub struct S3Config {
        /// Endpoint URL, e.g. `http://minio:9000`; empty means AWS for `region`.
        endpoint: String = String::new(),
        /// Region; some S3-compatible stores want any non-empty value.
        region: String = String::new(),
        /// Bucket name (Loki allows a comma-separated list; Fenrir uses the first).
        bucketnames: String = String::new(),
        /// Access key; empty uses the default AWS credential chain.
        access_key_id: String = String::new(),
        /// Secret key.
        secret_access_key: Secret = Secret::default(),
        /// Session token for temporary credentials.
        session_token: Secret = Secret::default(),
        /// Loki's URL form `s3://key:secret@region/bucket`; refused by validation.
        s3: Option<String> = None,
        /// Path-style addressing (`endpoint/bucket/key`), needed by MinIO.
        s3forcepathstyle: bool = false,
        /// Plain HTTP instead of HTTPS.
        insecure: bool = false,
        /// S3 storage class for uploads.
        storage_class: String = "STANDARD".to_string(),
        /// HTTP client settings.
        http_config: S3HttpConfig = S3HttpConfig::default(),
        /// Retries of failed requests (5xx, throttling, timeouts, connection errors).
        backoff_config: BackoffConfig = BackoffConfig::default(),
    }
    nested [http_config, backoff_config]
    ignored [
        signature_version, sse, sse_encryption, disable_dualstack, dynamodb,
        chunk_delimiter, max_retries,
    ]
}

section! {
    /// Exponential backoff between retries (`backoff_config`, `flush_op_backoff`).
    pub struct BackoffConfig {
        /// Wait before the first retry.
        #[serde(with = "duration_serde")]
        min_period: Duration = Duration::from_millis(100),
        /// Longest wait between two tries.
        #[serde(with = "duration_serde")]
        max_period: Duration = Duration::from_secs(3),
        /// Retries after the first try.
        max_retries: u32 = 5,
    }
    nested []
    ignored []
}

section! {
    /// `http_config` of an S3 client.
    pub struct S3HttpConfig {
        /// How long an idle connection is kept.
        #[serde(with = "duration_serde")]
        idle_conn_timeout: Duration = Duration::from_secs(90),
        /// Time to wait for response headers; 0 means no timeout.
        #[serde(with = "duration_serde")]
        response_header_timeout: Duration = Duration::ZERO,
        /// Time allowed for one request attempt, body included; 0 means Fenrir's 2m.
        #[serde(with = "duration_serde")]
        timeout: Duration = Duration::ZERO,
        /// Skip TLS certificate verification.
        insecure_skip_verify: bool = false,
        /// CA bundle to trust, PEM.
        ca_file: String = String::new(),
    }
    nested []
    ignored []
}

section! {
    /// `schema_config`: accepted as in Loki; Fenrir only reads `object_store` of the
    /// newest period to choose between the filesystem and S3.
    pub struct SchemaConfig {
        /// Schema periods, oldest first.
        configs: Vec<PeriodConfig> = Vec::new(),
    }
    nested [configs]
    ignored []
}

section! {
    /// One `schema_config.configs` entry.
    pub struct PeriodConfig {
        /// First day of the period, `YYYY-MM-DD`.
        from: String = String::new(),
        /// Index store (`tsdb`, `boltdb-shipper`); Fenrir always uses its own index.
        store: String = String::new(),
        /// `filesystem`, `s3` or `aws`.
        object_store: String = String::new(),
        /// Schema version (`v13`); accepted, unused.
        schema: String = String::new(),
        /// Index table settings; accepted, unused.
        index: IndexPeriod = IndexPeriod::default(),
    }
    nested [index]
    ignored [chunks, row_shards]
}

section! {
    /// `schema_config.configs[].index`.
    pub struct IndexPeriod {
        /// Table name prefix.
        prefix: String = String::new(),
        /// Table period.
        #[serde(with = "duration_serde")]
        period: Duration = Duration::from_secs(24 * 3600),
    }
    nested []
    ignored [tags]
}

/// A credential that never appears in `Debug` output or serialised configs.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no credential was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn masked(&self) -> &'static str {
        // Loki prints set secrets as asterisks in /config.
        if self.0.is_empty() {
            ""
        } else {
            "********"
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.masked())
    }
}

/// The object store Fenrir writes segments to, resolved from `schema_config`,
/// `storage_config` and `common` by [`crate::Config::object_store`].
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectStoreConfig {
    /// Objects are files under this directory.
    Filesystem {
        /// Root directory of the objects.
        directory: PathBuf,
    },
    /// Objects live in an S3-compatible bucket.
    S3(Box<S3Config>),
}

/// Object store kinds Loki's `object_store` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Filesystem,
    S3,
}

impl StoreKind {
    /// Reads Loki's `object_store` value; `Err` carries an actionable message.
    pub(crate) fn parse(name: &str) -> Result<StoreKind, String> {
        match name {
            "filesystem" => Ok(StoreKind::Filesystem),
            "s3" | "aws" => Ok(StoreKind::S3),
            "gcs" | "azure" | "swift" | "bos" | "cos" | "alibabacloud" | "bigtable"
            | "cassandra" | "grpc-store" | "local" => Err(format!(
                "object_store {name:?} is not supported by Fenrir; use \"filesystem\" or \"s3\""
            )),
            other => Err(format!(
                "unknown object_store {other:?}; use \"filesystem\" or \"s3\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_debug_and_serialised_output() {
        let s3 = S3Config {
            secret_access_key: Secret::new("hunter2"),
            ..Default::default()
        };
        assert!(!format!("{s3:?}").contains("hunter2"));
        let yaml = serde_yaml_ng::to_string(&s3).unwrap();
        assert!(!yaml.contains("hunter2"), "{yaml}");
        assert!(yaml.contains("secret_access_key: '********'"), "{yaml}");
        assert_eq!(s3.secret_access_key.expose(), "hunter2");
        assert!(s3.session_token.is_empty());
    }

    #[test]
    fn store_kinds() {
        assert_eq!(StoreKind::parse("filesystem"), Ok(StoreKind::Filesystem));
        assert_eq!(StoreKind::parse("aws"), Ok(StoreKind::S3));
        assert_eq!(StoreKind::parse("s3"), Ok(StoreKind::S3));
        assert!(StoreKind::parse("gcs")
            .unwrap_err()
            .contains("not supported"));
        assert!(StoreKind::parse("s4")
            .unwrap_err()
            .contains("unknown object_store"));
    }
}
