//! The behaviour every [`ObjectStore`] must show, as one async function to call from each
//! implementation's tests.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Error;
use crate::store::{ObjectMeta, ObjectStore};

/// Every key the suite writes starts with this; the suite deletes them all at the end.
const ROOT: &str = "fenrir-conformance/";

fn key(suffix: &str) -> String {
    format!("{ROOT}{suffix}")
}

/// A deterministic, non-repeating-looking pattern so that misplaced bytes are caught.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// Runs the shared conformance checks against `store`. Panics on the first difference.
///
/// The store must have no objects under `fenrir-conformance/` and nothing else may write
/// there while the suite runs; objects elsewhere are left alone.
pub async fn conformance_suite(store: Arc<dyn ObjectStore>) {
    missing_keys(&*store).await;
    put_get_head_overwrite(&*store).await;
    empty_objects(&*store).await;
    ranges(&*store).await;
    listing(&*store).await;
    deletes(&*store).await;
    invalid_keys(&*store).await;
    large_object(&*store).await;
    many_objects(&store).await;
    concurrent_writers(&store).await;
    concurrent_large_writers(&store).await;
    concurrent_overwrite(&store).await;
    blocking_reads(&store).await;

    for meta in store.list(ROOT).await.expect("list for cleanup") {
        store.delete(&meta.key).await.expect("cleanup delete");
    }
    assert_eq!(store.list(ROOT).await.expect("list after cleanup"), vec![]);
}

fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>, key: &str) {
    match result {
        Err(Error::NotFound { key: got }) => assert_eq!(got, key),
        other => panic!("expected NotFound for {key}, got {other:?}"),
    }
}

async fn missing_keys(store: &dyn ObjectStore) {
    let missing = key("missing/object");
    assert_not_found(store.get(&missing).await, &missing);
    assert_not_found(store.head(&missing).await, &missing);
    assert_not_found(store.get_range(&missing, 0..1).await, &missing);
    store
        .delete(&missing)
        .await
        .expect("deleting a missing key is ok");
    assert_eq!(store.list(&missing).await.expect("list"), vec![]);
}

async fn put_get_head_overwrite(store: &dyn ObjectStore) {
    let k = key("basic/object.bin");
    let first = pattern(1000, 1);
    store.put(&k, first.clone()).await.expect("put");
    assert_eq!(store.get(&k).await.expect("get"), first);
    assert_eq!(
        store.head(&k).await.expect("head"),
        ObjectMeta {
            key: k.clone(),
            size: 1000
        }
    );
    let second = pattern(10, 2);
    store.put(&k, second.clone()).await.expect("overwrite");
    assert_eq!(store.get(&k).await.expect("get after overwrite"), second);
    assert_eq!(store.head(&k).await.expect("head after overwrite").size, 10);
    store.delete(&k).await.expect("delete");
}

async fn empty_objects(store: &dyn ObjectStore) {
    let k = key("empty");
    store.put(&k, Bytes::new()).await.expect("put empty");
    assert_eq!(store.get(&k).await.expect("get empty"), Bytes::new());
    assert_eq!(store.head(&k).await.expect("head empty").size, 0);
    assert_eq!(
        store.get_range(&k, 0..0).await.expect("empty range"),
        Bytes::new()
    );
    assert!(matches!(
        store.get_range(&k, 0..1).await,
        Err(Error::InvalidRange { size: 0, .. })
    ));
    assert_eq!(
        store.list(&k).await.expect("list empty"),
        vec![ObjectMeta {
            key: k.clone(),
            size: 0
        }]
    );
    store.delete(&k).await.expect("delete empty");
}

async fn ranges(store: &dyn ObjectStore) {
    let k = key("ranges/object");
    let data = pattern(4096, 3);
    store.put(&k, data.clone()).await.expect("put");
    for range in [0..4096u64, 0..1, 100..2000, 4095..4096, 4096..4096, 17..17] {
        let got = store.get_range(&k, range.clone()).await.expect("get_range");
        assert_eq!(
            got,
            data.slice(range.start as usize..range.end as usize),
            "{range:?}"
        );
    }
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 10..5;
    for bad in [0..4097u64, 4096..4097, 5000..6000, reversed] {
        match store.get_range(&k, bad.clone()).await {
            Err(Error::InvalidRange {
                key: got,
                start,
                end,
                size,
            }) => assert_eq!(
                (got.as_str(), start, end, size),
                (k.as_str(), bad.start, bad.end, 4096)
            ),
            other => panic!("range {bad:?}: expected InvalidRange, got {other:?}"),
        }
    }
    store.delete(&k).await.expect("delete");
}

async fn listing(store: &dyn ObjectStore) {
    // Written out of order; `list` must sort by key bytes.
    let objects = [
        ("list/b/x", 3),
        ("list/a/2", 2),
        ("list/c", 5),
        ("list/ab", 4),
        ("list/a/1", 1),
        ("list/a/1z", 6),
        ("list/A", 7),
    ];
    for (suffix, size) in objects {
        store
            .put(&key(suffix), pattern(size, 4))
            .await
            .expect("put");
    }
    let listed = |prefix: &str| {
        let prefix = key(prefix);
        async move {
            store
                .list(&prefix)
                .await
                .expect("list")
                .into_iter()
                .map(|m| (m.key.trim_start_matches(ROOT).to_owned(), m.size))
                .collect::<Vec<_>>()
        }
    };
    let owned = |items: &[(&str, u64)]| {
        items
            .iter()
            .map(|(k, s)| (k.to_string(), *s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed("list/").await,
        owned(&[
            ("list/A", 7),
            ("list/a/1", 1),
            ("list/a/1z", 6),
            ("list/a/2", 2),
            ("list/ab", 4),
            ("list/b/x", 3),
            ("list/c", 5),
        ])
    );
    assert_eq!(listed("list").await, listed("list/").await);
    assert_eq!(
        listed("list/a").await,
        owned(&[
            ("list/a/1", 1),
            ("list/a/1z", 6),
            ("list/a/2", 2),
            ("list/ab", 4)
        ])
    );
    assert_eq!(
        listed("list/a/").await,
        owned(&[("list/a/1", 1), ("list/a/1z", 6), ("list/a/2", 2)])
    );
    assert_eq!(
        listed("list/a/1").await,
        owned(&[("list/a/1", 1), ("list/a/1z", 6)])
    );
    assert_eq!(listed("list/b/x").await, owned(&[("list/b/x", 3)]));
    assert_eq!(listed("list/zzz").await, owned(&[]));
    assert_eq!(listed("list/zzz/").await, owned(&[]));
    assert_eq!(listed("lisp").await, owned(&[]));
    // The empty prefix lists the whole store, which includes the suite's objects.
    let everything = store.list("").await.expect("list all");
    assert!(everything.windows(2).all(|w| w[0].key < w[1].key));
    for (suffix, _) in objects {
        assert!(everything.iter().any(|m| m.key == key(suffix)), "{suffix}");
    }
    for (suffix, _) in objects {
        store.delete(&key(suffix)).await.expect("delete");
    }
    assert_eq!(listed("list/").await, owned(&[]));
}

async fn deletes(store: &dyn ObjectStore) {
    let kept = key("delete/kept");
    let gone = key("delete/gone");
    store.put(&kept, pattern(8, 5)).await.expect("put");
    store.put(&gone, pattern(8, 6)).await.expect("put");
    store.delete(&gone).await.expect("delete");
    assert_not_found(store.get(&gone).await, &gone);
    assert_not_found(store.head(&gone).await, &gone);
    store.delete(&gone).await.expect("second delete");
    assert_eq!(
        store.list(&key("delete/")).await.expect("list"),
        vec![ObjectMeta {
            key: kept.clone(),
            size: 8
        }]
    );
    assert_eq!(store.get(&kept).await.expect("get kept"), pattern(8, 5));
    store.delete(&kept).await.expect("delete");
}

async fn invalid_keys(store: &dyn ObjectStore) {
    for bad in [
        String::new(),
        "/abs/key".into(),
        key("a//b"),
        key("trailing/"),
        key("up/../escape"),
        "../escape".into(),
        key("back\\slash"),
        key("nul\0byte"),
        key("x.tmp-1"),
    ] {
        let is_invalid = |r: Result<(), Error>| matches!(r, Err(Error::InvalidKey { .. }));
        assert!(
            is_invalid(store.put(&bad, Bytes::from_static(b"x")).await),
            "put {bad:?}"
        );
        assert!(is_invalid(store.get(&bad).await.map(drop)), "get {bad:?}");
        assert!(
            is_invalid(store.get_range(&bad, 0..0).await.map(drop)),
            "get_range {bad:?}"
        );
        assert!(is_invalid(store.head(&bad).await.map(drop)), "head {bad:?}");
        assert!(is_invalid(store.delete(&bad).await), "delete {bad:?}");
    }
    for bad_prefix in ["/", "../", "a//", "a\\"] {
        assert!(
            matches!(store.list(bad_prefix).await, Err(Error::InvalidKey { .. })),
            "list {bad_prefix:?}"
        );
    }
}

/// Objects larger than any multipart threshold down to S3's 5 MiB minimum part, with ranges
/// across part boundaries; sizes that are and are not multiples of the part size.
async fn large_object(store: &dyn ObjectStore) {
    for (name, size) in [
        ("large/20mib", 20 << 20),
        ("large/odd", (11 << 20) + 12_345),
    ] {
        let k = key(name);
        let data = pattern(size, 7);
        store.put(&k, data.clone()).await.expect("put large object");
        assert_eq!(store.head(&k).await.expect("head").size, size as u64);
        let got = store.get(&k).await.expect("get large object");
        assert!(got == data, "{name}: object differs after a round trip");
        let boundary = 5u64 << 20;
        let size64 = size as u64;
        for range in [
            size64 - 1000..size64,
            boundary - 10..boundary + 10,
            2 * boundary - 1..2 * boundary + 1,
            0..size64,
        ] {
            let got = store.get_range(&k, range.clone()).await.expect("range");
            assert!(
                got == data.slice(range.start as usize..range.end as usize),
                "{name}: range {range:?} differs"
            );
        }
        assert!(matches!(
            store.get_range(&k, size64 - 1..size64 + 1).await,
            Err(Error::InvalidRange { size: s, .. }) if s == size64
        ));
        store.delete(&k).await.expect("delete");
        assert_not_found(store.head(&k).await, &k);
    }
}

/// More objects than one S3 listing page (1000) holds: `list` must page through them all.
async fn many_objects(store: &Arc<dyn ObjectStore>) {
    const COUNT: usize = 1_100;
    let mut tasks: tokio::task::JoinSet<crate::Result<()>> = tokio::task::JoinSet::new();
    for i in 0..COUNT {
        if tasks.len() >= 16 {
            tasks
                .join_next()
                .await
                .expect("task")
                .expect("writer task")
                .expect("put");
        }
        let store = Arc::clone(store);
        tasks.spawn(async move {
            store
                .put(&key(&format!("many/{i:05}")), Bytes::from(vec![1u8; i % 7]))
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer task").expect("put");
    }
    let listed = store.list(&key("many/")).await.expect("list many");
    assert_eq!(listed.len(), COUNT);
    for (i, meta) in listed.iter().enumerate() {
        assert_eq!(meta.key, key(&format!("many/{i:05}")));
        assert_eq!(meta.size, (i % 7) as u64);
    }
    let listed = store.list(&key("many/010")).await.expect("list one page");
    assert_eq!(listed.len(), 100);
    for meta in store.list(&key("many/")).await.expect("list") {
        if tasks.len() >= 16 {
            tasks
                .join_next()
                .await
                .expect("task")
                .expect("delete task")
                .expect("delete");
        }
        let store = Arc::clone(store);
        tasks.spawn(async move { store.delete(&meta.key).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("delete task").expect("delete");
    }
    assert_eq!(store.list(&key("many/")).await.expect("list"), vec![]);
}

async fn concurrent_writers(store: &Arc<dyn ObjectStore>) {
    let writers: Vec<_> = (0..16u8)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let k = key(&format!("concurrent/{i:02}"));
                store.put(&k, pattern(64 * 1024 + usize::from(i), i)).await
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer task").expect("concurrent put");
    }
    let listed = store.list(&key("concurrent/")).await.expect("list");
    assert_eq!(listed.len(), 16);
    for (i, meta) in (0..16u8).zip(&listed) {
        assert_eq!(meta.key, key(&format!("concurrent/{i:02}")));
        let expected = pattern(64 * 1024 + usize::from(i), i);
        assert_eq!(meta.size, expected.len() as u64);
        assert!(
            store.get(&meta.key).await.expect("get") == expected,
            "{}",
            meta.key
        );
        store.delete(&meta.key).await.expect("delete");
    }
}

/// Several large (multipart on S3) uploads at once, to different keys.
async fn concurrent_large_writers(store: &Arc<dyn ObjectStore>) {
    let size = (6 << 20) + 1;
    let writers: Vec<_> = (0..3u8)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .put(
                        &key(&format!("concurrent-large/{i}")),
                        pattern(size, 40 + i),
                    )
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer
            .await
            .expect("writer task")
            .expect("concurrent large put");
    }
    for i in 0..3u8 {
        let k = key(&format!("concurrent-large/{i}"));
        assert!(
            store.get(&k).await.expect("get") == pattern(size, 40 + i),
            "{k} differs"
        );
        store.delete(&k).await.expect("delete");
    }
}

/// Writers replace one key with whole versions (every byte = version number) while a reader
/// reads it: every read must be exactly one version.
async fn concurrent_overwrite(store: &Arc<dyn ObjectStore>) {
    const SIZE: usize = 256 * 1024;
    const VERSIONS: u8 = 16;
    let k = key("overwrite/one");
    let version = |v: u8| Bytes::from(vec![v; SIZE]);
    store.put(&k, version(0)).await.expect("initial put");

    let writers: Vec<_> = (1..=VERSIONS)
        .map(|v| {
            let store = Arc::clone(store);
            let k = k.clone();
            tokio::spawn(async move { store.put(&k, version(v)).await })
        })
        .collect();
    let reader = {
        let store = Arc::clone(store);
        let k = k.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            for _ in 0..50 {
                let got = store.get(&k).await.expect("get during overwrite");
                assert_eq!(got.len(), SIZE, "read a partial object");
                let first = got[0];
                assert!(got.iter().all(|&b| b == first), "read a mix of versions");
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    for writer in writers {
        writer.await.expect("writer task").expect("overwrite put");
    }
    assert_eq!(reader.await.expect("reader task"), 50);
    let last = store.get(&k).await.expect("final get");
    assert_eq!(last.len(), SIZE);
    assert!(
        (1..=VERSIONS).contains(&last[0]),
        "final version {}",
        last[0]
    );
    assert!(
        last.iter().all(|&b| b == last[0]),
        "final object mixes versions"
    );
    store.delete(&k).await.expect("delete");
}

/// A store's blocking reader (if it has one) answers as `get_range` does; a new reader sees
/// the newest version.
async fn blocking_reads(store: &Arc<dyn ObjectStore>) {
    let Some(reader) = store.blocking_reader() else {
        return;
    };
    let k = key("blocking/object");
    let empty = key("blocking/empty");
    let data = pattern(4096, 8);
    store.put(&k, data.clone()).await.expect("put");
    store.put(&empty, Bytes::new()).await.expect("put empty");
    let (reader, data) = {
        let (k, empty) = (k.clone(), empty.clone());
        tokio::task::spawn_blocking(move || {
            for range in [0..4096u64, 0..1, 100..2000, 4095..4096, 4096..4096, 17..17] {
                // Twice: the second read may come from what the first one opened.
                for _ in 0..2 {
                    let got = reader.read_range(&k, range.clone()).expect("read_range");
                    assert!(
                        got == data.slice(range.start as usize..range.end as usize),
                        "{range:?}"
                    );
                }
            }
            #[allow(clippy::reversed_empty_ranges)]
            let reversed = 10..5;
            for bad in [0..4097u64, 4096..4097, 5000..6000, reversed] {
                match reader.read_range(&k, bad.clone()) {
                    Err(Error::InvalidRange {
                        start, end, size, ..
                    }) => {
                        assert_eq!((start, end, size), (bad.start, bad.end, 4096))
                    }
                    other => panic!("range {bad:?}: expected InvalidRange, got {other:?}"),
                }
            }
            assert_eq!(
                reader.read_range(&empty, 0..0).expect("empty"),
                Bytes::new()
            );
            assert!(matches!(
                reader.read_range(&empty, 0..1),
                Err(Error::InvalidRange { size: 0, .. })
            ));
            let missing = key("blocking/missing");
            assert_not_found(reader.read_range(&missing, 0..1), &missing);
            for bad in ["", "/abs", "a//b", "../escape", "x.tmp-1"] {
                assert!(
                    matches!(reader.read_range(bad, 0..0), Err(Error::InvalidKey { .. })),
                    "{bad:?}"
                );
            }
            (reader, data)
        })
        .await
        .expect("blocking reads")
    };
    // Replaced: the old reader sees one whole version, a new one the new version.
    let second = pattern(100, 9);
    store.put(&k, second.clone()).await.expect("overwrite");
    let fresh = store.blocking_reader().expect("a second reader");
    tokio::task::spawn_blocking(move || {
        let old = reader.read_range(&k, 0..100).expect("old reader");
        assert!(
            old == data.slice(0..100) || old == second,
            "read a mix of versions"
        );
        assert!(fresh.read_range(&k, 0..100).expect("new reader") == second);
    })
    .await
    .expect("blocking reads after overwrite");
    for k in [key("blocking/object"), empty] {
        store.delete(&k).await.expect("delete");
    }
}
