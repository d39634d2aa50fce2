//! Property: the label index is derived data. After any sequence of pushes and flushes (any
//! tenants, label sets, sizes), an index rebuilt from the object store's segment footers
//! answers every lookup exactly as the live index does, and rebuilding again over a full
//! index changes nothing.

use std::sync::Arc;

use fenrir_common::{Entry, LabelSet, MatchOp, Matcher, Tenant};
use fenrir_index::{ChunkRef, Index, IndexStats};
use fenrir_ingest::{rebuild_index, IngestConfig, Ingester};
use fenrir_storage::{InMemoryStore, ObjectStore};
use proptest::prelude::*;

const TENANTS: [&str; 3] = ["t0", "tenant-1", "t2"];
const NAMES: [&str; 3] = ["app", "env", "pod"];
const VALUES: [&str; 3] = ["api", "web", "db-0"];

/// One push: tenant, label set (name index → value index), entry count, line length.
type PushSpec = (usize, Vec<(usize, usize)>, usize, usize);

fn round() -> impl Strategy<Value = Vec<PushSpec>> {
    let labels = prop::collection::vec((0..NAMES.len(), 0..VALUES.len()), 1..3);
    prop::collection::vec((0..TENANTS.len(), labels, 1..60usize, 1..80usize), 1..6)
}

fn labels_of(pairs: &[(usize, usize)]) -> LabelSet {
    LabelSet::from_pairs(pairs.iter().map(|&(n, v)| (NAMES[n], VALUES[v])))
}

/// Everything the index answers for one tenant, over the whole range and a middle window.
#[derive(Debug, PartialEq)]
struct TenantView {
    tenant: String,
    series: Vec<(u64, LabelSet, Vec<ChunkRef>)>,
    window_series: Vec<(u64, LabelSet)>,
    regex_series: Vec<(u64, LabelSet)>,
    names: Vec<String>,
    values: Vec<(String, Vec<String>)>,
    stats: IndexStats,
    window_stats: IndexStats,
}

fn view(index: &Index, window: (i64, i64)) -> Vec<TenantView> {
    let regex = Matcher::new(MatchOp::Re, "app", "a.*|w.+").expect("matcher");
    let mut out = Vec::new();
    for tenant in index.tenants().expect("tenants") {
        let series = index
            .series(&tenant, &[], i64::MIN, i64::MAX)
            .expect("series")
            .into_iter()
            .map(|(fp, labels)| {
                let chunks = index
                    .chunks(&tenant, fp, i64::MIN, i64::MAX)
                    .expect("chunks");
                (fp, labels, chunks)
            })
            .collect();
        let names = index
            .label_names(&tenant, i64::MIN, i64::MAX)
            .expect("names");
        let values = names
            .iter()
            .map(|n| {
                let v = index
                    .label_values(&tenant, n, &[], i64::MIN, i64::MAX)
                    .expect("values");
                (n.clone(), v)
            })
            .collect();
        out.push(TenantView {
            tenant: tenant.to_string(),
            series,
            window_series: index
                .series(&tenant, &[], window.0, window.1)
                .expect("window series"),
            regex_series: index
                .series(&tenant, std::slice::from_ref(&regex), i64::MIN, i64::MAX)
                .expect("regex series"),
            names,
            values,
            stats: index
                .stats(&tenant, &[], i64::MIN, i64::MAX)
                .expect("stats"),
            window_stats: index
                .stats(&tenant, &[], window.0, window.1)
                .expect("window stats"),
        });
    }
    out
}

async fn run(rounds: Vec<Vec<PushSpec>>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemoryStore::new());
    let mut cfg = IngestConfig::with_wal_dir(dir.path().join("wal"));
    cfg.wal_fsync = false;
    // Small heads and blocks: several chunks per stream and blocks per chunk.
    cfg.head_max_bytes = 600;
    cfg.block_bytes = 200;
    let live = Index::temporary().expect("index");
    let ingester = Ingester::open(cfg, live.clone(), store.clone()).expect("ingester");
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut pushed = 0;
    for round in &rounds {
        for (tenant, pairs, count, line_len) in round {
            let tenant = Tenant::new(TENANTS[*tenant]).expect("tenant");
            let entries: Vec<Entry> = (0..*count)
                .map(|i| {
                    ts += 1_000_003;
                    Entry::new(ts, format!("{i:>width$}", width = *line_len))
                })
                .collect();
            pushed += entries.len();
            ingester
                .push(&tenant, vec![(labels_of(pairs), entries)])
                .await
                .expect("push");
        }
        ingester.flush_all().await.expect("flush");
    }
    ingester.shutdown_wal();

    let first = 1_700_000_000_000_000_000i64;
    let window = (first + (ts - first) / 3, first + 2 * (ts - first) / 3);
    let live_view = view(&live, window);
    let indexed: u64 = live_view.iter().map(|v| v.stats.entries).sum();
    prop_assert_eq!(indexed, pushed as u64, "the live index holds every entry");

    let rebuilt = Index::temporary().expect("index");
    rebuild_index(store.as_ref(), &rebuilt)
        .await
        .expect("rebuild");
    prop_assert_eq!(&view(&rebuilt, window), &live_view);
    // Rebuilding over a complete index is a no-op.
    rebuild_index(store.as_ref(), &live)
        .await
        .expect("rebuild again");
    prop_assert_eq!(&view(&live, window), &live_view);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rebuilt_index_equals_live_index(rounds in prop::collection::vec(round(), 1..4)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(rounds))?;
    }
}
