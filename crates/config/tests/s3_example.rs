//! `config/fenrir.s3.example.yaml` parses, with and without its environment variables, to
//! the S3 settings it documents.

use std::collections::HashMap;
use std::time::Duration;

use fenrir_config::{expand_env, from_yaml, ObjectStoreConfig};

const EXAMPLE: &str = include_str!("../../../config/fenrir.s3.example.yaml");

fn parse(env: &[(&str, &str)]) -> fenrir_config::Config {
    let env: HashMap<_, _> = env.iter().copied().collect();
    let text = expand_env(EXAMPLE, |name| env.get(name).map(|v| v.to_string()));
    from_yaml(&text).unwrap()
}

#[test]
fn the_s3_example_parses_with_its_defaults() {
    let config = parse(&[]);
    let ObjectStoreConfig::S3(s3) = config.object_store().unwrap() else {
        panic!("expected s3");
    };
    assert_eq!(s3.endpoint, "http://127.0.0.1:9000");
    assert_eq!(s3.region, "us-east-1");
    assert_eq!(s3.bucketnames, "fenrir");
    assert!(s3.access_key_id.is_empty() && s3.secret_access_key.is_empty());
    assert!(s3.s3forcepathstyle && s3.insecure);
    assert_eq!(s3.http_config.timeout, Duration::from_secs(120));
    assert_eq!(s3.http_config.idle_conn_timeout, Duration::from_secs(90));
    assert_eq!(s3.backoff_config.min_period, Duration::from_millis(100));
    assert_eq!(s3.backoff_config.max_period, Duration::from_secs(3));
    assert_eq!(s3.backoff_config.max_retries, 5);
    assert_eq!(config.ingester.max_unflushed_bytes, 1 << 30);
    assert_eq!(
        config.ingester.flush_op_backoff.min_period,
        Duration::from_secs(10)
    );
    assert_eq!(
        config.ingester.flush_op_backoff.max_period,
        Duration::from_secs(60)
    );
    assert_eq!(config.data_dir(), std::path::Path::new("./data"));
    assert!(
        config.ignored_keys().is_empty(),
        "{:?}",
        config.ignored_keys()
    );
}

#[test]
fn the_s3_example_takes_its_settings_from_the_environment() {
    let config = parse(&[
        ("S3_ENDPOINT", "https://s3.example.net"),
        ("S3_BUCKET", "logs"),
        ("S3_ACCESS_KEY_ID", "AKIA1"),
        ("S3_SECRET_ACCESS_KEY", "hunter2"),
        ("FENRIR_DATA", "/var/lib/fenrir"),
    ]);
    let ObjectStoreConfig::S3(s3) = config.object_store().unwrap() else {
        panic!("expected s3");
    };
    assert_eq!(s3.endpoint, "https://s3.example.net");
    assert_eq!(s3.bucketnames, "logs");
    assert_eq!(s3.access_key_id, "AKIA1");
    assert_eq!(s3.secret_access_key.expose(), "hunter2");
    assert!(!format!("{s3:?}").contains("hunter2"));
    assert_eq!(config.data_dir(), std::path::Path::new("/var/lib/fenrir"));
}

#[test]
fn backoff_periods_must_be_ordered() {
    let yaml = "storage_config:\n  aws:\n    bucketnames: b\n    backoff_config:\n      min_period: 5s\n      max_period: 1s\ningester:\n  flush_op_backoff:\n    min_period: 0s\n";
    let message = from_yaml(yaml).unwrap_err().to_string();
    assert!(
        message.contains("storage_config.aws.backoff_config.min_period must not be longer than storage_config.aws.backoff_config.max_period"),
        "{message}"
    );
    assert!(
        message.contains("ingester.flush_op_backoff.min_period must be more than 0"),
        "{message}"
    );
}
