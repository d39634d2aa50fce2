//! Fenrir's configuration: Loki's YAML file format, typed.
//!
//! A Loki `config.yaml` for a single binary parses as is: every block uses Loki's key
//! names and defaults (`limits_config`, `ingester`, `server`, ...). Keys Fenrir has no use
//! for in a single process (rings, gRPC, caches, ruler) are accepted and listed by
//! [`Config::ignored_keys`]; any other unknown key is an error naming its path and line.
//! Durations read `1h30m`, `7d`, `500ms`; byte sizes read `256KB` (base 2, as in Loki).
//!
//! Precedence (flags > environment > file > defaults) is applied by the server: this crate
//! turns the file, after optional `${VAR:-default}` expansion, into a validated [`Config`]
//! whose [`Default`] is the zero-config single node. Per-tenant limits from the runtime
//! configuration file come from [`parse_overrides`]; [`TenantLimits`] holds them at run time.
#![warn(missing_docs)]

mod components;
mod config;
mod env;
mod error;
mod limits;
mod section;
mod server;
mod storage;
mod tenant;
mod units;

pub use components::{
    AnalyticsConfig, CompactorConfig, DistributorConfig, FrontendConfig, IngesterConfig,
    QuerierConfig, QueryRangeConfig, RuntimeConfig, WalConfig,
};
pub use config::{from_yaml, load, Config};
pub use env::expand_env;
pub use error::{Error, Result};
pub use limits::{parse_overrides, Limits, StreamRetention, DEFAULT_DISCOVER_SERVICE_NAME};
pub use server::ServerConfig;
pub use storage::{
    BackoffConfig, CommonConfig, CommonFilesystem, CommonStorage, FilesystemStorage, IndexPeriod,
    KvStoreConfig, ObjectStoreConfig, PeriodConfig, RingConfig, S3Config, S3HttpConfig,
    SchemaConfig, Secret, StorageConfig,
};
pub use tenant::TenantLimits;
pub use units::{format_byte_size, format_duration, parse_byte_size, parse_duration};
