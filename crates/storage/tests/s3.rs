//! The S3 store against a real S3 server (moto): the shared conformance suite, and how
//! failures are classified. Each test uses its own bucket, so they run in parallel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fenrir_storage::{
    conformance_suite, s3_test_endpoint, s3_test_options, s3_test_store, unique_bucket_name, Error,
    ObjectStore, S3Store,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passes_the_conformance_suite() {
    let store = s3_test_store("conformance").await;
    conformance_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn a_missing_bucket_is_refused_not_retried() {
    let endpoint = s3_test_endpoint().await;
    let store = S3Store::new(s3_test_options(&endpoint, &unique_bucket_name("absent")))
        .await
        .unwrap();
    match store.put("t/seg/x.seg", Bytes::from_static(b"x")).await {
        Err(e @ Error::Refused { .. }) => assert!(!e.is_retryable()),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(matches!(
        store.check_bucket().await,
        Err(Error::Refused { .. })
    ));
    store.create_bucket().await.unwrap();
    store.check_bucket().await.unwrap();
    // Creating it again is fine.
    store.create_bucket().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_after_bounded_retries() {
    // A port nothing listens on: connections are refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = s3_test_options(&format!("http://127.0.0.1:{port}"), "fenrir-nowhere");
    options.max_attempts = 3;
    options.initial_backoff = Duration::from_millis(50);
    let store = S3Store::new(options).await.unwrap();
    let started = Instant::now();
    let error = store
        .put("t/seg/x.seg", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { .. }) && error.is_retryable(),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "retries are bounded"
    );
    assert!(matches!(
        store.get("t/seg/x.seg").await,
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(
        store.list("t/").await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn buckets_keep_their_objects_apart() {
    let a = s3_test_store("apart-a").await;
    let b = s3_test_store("apart-b").await;
    a.put("t1/seg/2024-01-01/1.seg", Bytes::from_static(b"a"))
        .await
        .unwrap();
    assert_eq!(b.list("").await.unwrap(), vec![]);
    assert!(matches!(
        b.get("t1/seg/2024-01-01/1.seg").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(a.list("t1/").await.unwrap().len(), 1);
}
