use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fenrir_chunk::BlockParts;
use fenrir_common::{Fingerprint, LabelSet, Matcher, Tenant, Timestamp};
use fenrir_index::Index;
use fenrir_logql::ast::{MetricExpr, RangeAgg};
use fenrir_logql::{evaluate, EvalParams, QueryValue, SampleExtractor, SampleSink, SampleSource};
use fenrir_storage::ObjectStore;

use crate::detected::{detect_fields, detect_labels, field_values};
use crate::logs::run_log_query;
use crate::patterns::Miner;
use crate::samples::extract_samples;
use crate::scan::{with_scanner, DecodeCounts, Piece, ScanContext, ScanRange, StreamData};
use crate::volume::compute_volume;
use crate::{
    DetectedField, DetectedLabel, Direction, Error, LogQuery, LogResult, PatternQuery,
    PatternResult, RecentData, Result, VolumeQuery, VolumeSeries,
};

/// Index statistics of the streams a selector picks (`/loki/api/v1/index/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesStats {
    /// Distinct streams.
    pub streams: u64,
    /// Chunks (sealed in memory ones included; heads count as one).
    pub chunks: u64,
    /// Entries.
    pub entries: u64,
    /// Raw bytes.
    pub bytes: u64,
}

/// The query engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    index: Index,
    store: Arc<dyn ObjectStore>,
    recent: Arc<dyn RecentData>,
    /// Threads that decode blocks ahead of each scan.
    workers: usize,
    decoded: Arc<DecodeCounts>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over flushed data (`index` + `store`) and unflushed data (`recent`).
    pub fn new(index: Index, store: Arc<dyn ObjectStore>, recent: Arc<dyn RecentData>) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        Engine {
            index,
            store,
            recent,
            workers,
            decoded: Arc::default(),
        }
    }

    /// The same engine with `workers` decoding threads per scan, the query's own included
    /// (0 or 1: the query's own thread does everything). The default is one per core.
    pub fn with_decode_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Blocks decompressed and decoded by this engine and its clones so far.
    pub fn blocks_decoded(&self) -> u64 {
        self.decoded.blocks.load(Ordering::Relaxed)
    }

    /// Runs a log query.
    pub async fn query_logs(&self, q: LogQuery) -> Result<LogResult> {
        let this = self.clone();
        self.blocking(move |ctx| {
            let streams = this.select(&q.tenant, &q.expr.selector, q.start, q.end)?;
            run_log_query(ctx, &streams, &q)
        })
        .await
    }

    /// Evaluates a metric query.
    pub async fn query_metric(
        &self,
        tenant: Tenant,
        expr: MetricExpr,
        params: EvalParams,
    ) -> Result<QueryValue> {
        let this = self.clone();
        self.blocking(move |ctx| {
            let mut source = Source {
                engine: &this,
                ctx,
                tenant: &tenant,
            };
            Ok(evaluate(&expr, &params, &mut source)?)
        })
        .await
    }

    /// Label names of streams with data in `[start, end)`, sorted.
    pub async fn label_names(
        &self,
        tenant: Tenant,
        matchers: Vec<Matcher>,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>> {
        let series = self.series(tenant, vec![matchers], start, end).await?;
        let names: BTreeSet<String> = series
            .iter()
            .flat_map(|l| l.iter().map(|(k, _)| k.to_string()))
            .collect();
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` over streams matching `matchers` with data in `[start, end)`.
    pub async fn label_values(
        &self,
        tenant: Tenant,
        name: String,
        matchers: Vec<Matcher>,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<String>> {
        let series = self.series(tenant, vec![matchers], start, end).await?;
        let values: BTreeSet<String> = series
            .iter()
            .filter_map(|l| l.get(&name).map(str::to_string))
            .collect();
        Ok(values.into_iter().collect())
    }

    /// Label sets of streams matching any of the matcher groups (an empty group matches
    /// every stream) with data in `[start, end)`.
    pub async fn series(
        &self,
        tenant: Tenant,
        groups: Vec<Vec<Matcher>>,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<LabelSet>> {
        let this = self.clone();
        self.blocking(move |_| {
            let mut all: BTreeMap<Fingerprint, LabelSet> = BTreeMap::new();
            for matchers in &groups {
                for (fp, labels) in this.index.series(&tenant, matchers, start, end - 1)? {
                    all.insert(fp, labels);
                }
                for r in this.recent.streams(&tenant, matchers, start, end) {
                    all.insert(r.labels.fingerprint(), r.labels);
                }
            }
            Ok(all.into_values().collect())
        })
        .await
    }

    /// Stream, chunk, entry and byte counts over streams matching `matchers`.
    pub async fn stats(
        &self,
        tenant: Tenant,
        matchers: Vec<Matcher>,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<SeriesStats> {
        let this = self.clone();
        self.blocking(move |_| {
            let streams = this.select(&tenant, &matchers, start, end)?;
            let mut s = SeriesStats {
                streams: streams.len() as u64,
                ..SeriesStats::default()
            };
            for d in &streams {
                for p in &d.pieces {
                    s.chunks += 1;
                    match p {
                        Piece::Stored(r) => {
                            s.entries += u64::from(r.entries);
                            s.bytes += r.raw_bytes;
                        }
                        Piece::Sealed(c) => {
                            s.entries += u64::from(c.meta.entries);
                            s.bytes += c.meta.raw_bytes;
                        }
                        Piece::Head(h) => {
                            s.entries += h.len() as u64;
                            // As chunks count them: line and structured metadata.
                            s.bytes += h
                                .iter()
                                .map(|e| {
                                    let md: usize = e
                                        .structured_metadata
                                        .iter()
                                        .map(|(k, v)| k.len() + v.len())
                                        .sum();
                                    (e.line.len() + md) as u64
                                })
                                .sum::<u64>();
                        }
                    }
                }
            }
            Ok(s)
        })
        .await
    }

    /// Bytes per aggregated label set (`index/volume`, `index/volume_range`).
    pub async fn volume(&self, q: VolumeQuery) -> Result<Vec<VolumeSeries>> {
        let this = self.clone();
        self.blocking(move |_| {
            let from = match q.step {
                Some(step) => q.start.saturating_sub(step.max(1) - 1),
                None => q.start,
            };
            let streams = this.select(&q.tenant, &q.matchers, from, q.end.saturating_add(1))?;
            Ok(compute_volume(&streams, &q))
        })
        .await
    }

    /// Stream labels worth breaking down by, with their cardinality (`detected_labels`).
    pub async fn detected_labels(
        &self,
        tenant: Tenant,
        matchers: Vec<Matcher>,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<DetectedLabel>> {
        let series = self.series(tenant, vec![matchers], start, end).await?;
        Ok(detect_labels(&series))
    }

    /// Fields of the newest `q.limit` lines of a log query (`detected_fields`), at most
    /// `field_limit`.
    pub async fn detected_fields(
        &self,
        mut q: LogQuery,
        field_limit: usize,
    ) -> Result<Vec<DetectedField>> {
        q.categorize = true;
        let sample = self.query_logs(q).await?;
        Ok(detect_fields(&sample, field_limit))
    }

    /// Values of field `name` in the newest `q.limit` lines of a log query.
    pub async fn detected_field_values(
        &self,
        mut q: LogQuery,
        name: String,
        limit: usize,
    ) -> Result<Vec<String>> {
        q.categorize = true;
        let sample = self.query_logs(q).await?;
        Ok(field_values(&sample, &name, limit))
    }

    /// Patterns of the lines a log query selects, with counts per step.
    pub async fn patterns(&self, q: PatternQuery) -> Result<Vec<PatternResult>> {
        let this = self.clone();
        self.blocking(move |ctx| {
            let pipeline = fenrir_logql::LogPipeline::new(&q.expr.stages)?;
            let streams = this.select(&q.tenant, &q.expr.selector, q.start, q.end)?;
            let mut miner = Miner::new(q.step);
            let range = ScanRange {
                start: q.start,
                end: q.end,
                direction: Direction::Forward,
            };
            with_scanner(ctx, &streams, range, None, BlockParts::ALL, |scanner| {
                for (i, data) in streams.iter().enumerate() {
                    let mut sp = pipeline.for_stream(&data.labels);
                    let stream_level = data
                        .labels
                        .get("detected_level")
                        .or_else(|| data.labels.get("level"))
                        .map(str::to_string);
                    let mut visit = |ts: Timestamp, line: &str, md: &[(&str, &str)]| -> bool {
                        let level = md
                            .iter()
                            .find(|(k, _)| *k == "detected_level")
                            .map(|(_, v)| v.to_string())
                            .or_else(|| stream_level.clone());
                        if let Some(out) = sp.process(ts, line, md) {
                            miner.add(ts, &out.line, level.as_deref());
                        }
                        true
                    };
                    scanner.scan_stream(i, &mut visit)?;
                }
                Ok(())
            })?;
            Ok(miner.finish())
        })
        .await
    }

    /// Streams matching `matchers` with their pieces overlapping `[start, end)`. Blocking.
    fn select(
        &self,
        tenant: &Tenant,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<StreamData>> {
        let mut by_fp: BTreeMap<Fingerprint, StreamData> = BTreeMap::new();
        if end > start {
            for (fp, labels) in self.index.series(tenant, matchers, start, end - 1)? {
                let refs = self.index.chunks(tenant, fp, start, end - 1)?;
                by_fp.insert(
                    fp,
                    StreamData {
                        labels,
                        pieces: refs.into_iter().map(Piece::Stored).collect(),
                    },
                );
            }
        }
        for r in self.recent.streams(tenant, matchers, start, end) {
            let fp = r.labels.fingerprint();
            let data = by_fp.entry(fp).or_insert_with(|| StreamData {
                labels: r.labels.clone(),
                pieces: Vec::new(),
            });
            data.pieces.extend(r.chunks.into_iter().map(Piece::Sealed));
            if !r.head.is_empty() {
                data.pieces.push(Piece::Head(Arc::new(r.head)));
            }
        }
        Ok(by_fp
            .into_values()
            .filter(|d| !d.pieces.is_empty())
            .collect())
    }

    /// Runs `f` on a blocking thread with a context that can wait on the object store.
    /// Dropping the returned future (the API's `query_timeout`, or a client gone) cancels
    /// the scan: it stops at its next block and frees its threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ScanContext) -> Result<T> + Send + 'static,
    {
        let cancel = Arc::new(AtomicBool::new(false));
        let ctx = ScanContext {
            store: self.store.clone(),
            reader: self.store.blocking_reader().map(Arc::from),
            handle: tokio::runtime::Handle::current(),
            cancel: cancel.clone(),
            workers: self.workers,
            decoded: self.decoded.clone(),
        };
        let _cancel_on_drop = CancelOnDrop(cancel);
        tokio::task::spawn_blocking(move || {
            ctx.check_cancel()?;
            let result = f(&ctx);
            // Errors of a cancelled scan (wrapped by the evaluator, say) are its cancellation.
            ctx.check_cancel()?;
            result
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }
}

/// Sets a query's cancel flag when its future is dropped before it finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        // Harmless once the scan is over; stops it when it is still running.
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Feeds the evaluator from the engine: one pass over the selected streams per range
/// aggregation.
struct Source<'a> {
    engine: &'a Engine,
    ctx: &'a ScanContext,
    tenant: &'a Tenant,
}

impl SampleSource for Source<'_> {
    fn samples(
        &mut self,
        agg: &RangeAgg,
        from: i64,
        to: i64,
        sink: &mut SampleSink,
    ) -> fenrir_logql::Result<()> {
        // Samples are wanted for (from, to]: in scan terms [from + 1, to + 1).
        let (start, end) = (from.saturating_add(1), to.saturating_add(1));
        let mut run = || -> Result<()> {
            let extractor = SampleExtractor::new(agg)?;
            let streams = self
                .engine
                .select(self.tenant, &agg.range.log.selector, start, end)?;
            let range = ScanRange {
                start,
                end,
                direction: Direction::Forward,
            };
            extract_samples(self.ctx, &streams, range, &extractor, sink)
        };
        run().map_err(|e| match e {
            Error::BadQuery(m) => fenrir_logql::Error::Query(m),
            other => fenrir_logql::Error::Query(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Mutex;

    use fenrir_chunk::{ChunkBuilder, EncodedChunk};
    use fenrir_index::ChunkRef;
    use fenrir_logql::ast::Expr;
    use fenrir_storage::InMemoryStore;

    use super::*;
    use crate::RecentStream;

    fn labels(pod: usize) -> LabelSet {
        LabelSet::from_pairs([("app", "a".to_string()), ("pod", pod.to_string())])
    }

    /// A chunk of `n` lines from `t0`, with blocks of a few lines each.
    fn chunk(labels: &LabelSet, t0: i64, n: i64) -> EncodedChunk {
        let mut b = ChunkBuilder::new(labels, 512);
        for ts in t0..t0 + n {
            b.push(ts, &format!("level=info line {ts} {}", "x".repeat(60)), &[]);
        }
        b.finish(1).unwrap()
    }

    /// Unflushed data that holds `select` until the test opens the gate.
    struct Gated {
        streams: Vec<RecentStream>,
        entered: Mutex<mpsc::Sender<()>>,
        gate: Mutex<mpsc::Receiver<()>>,
    }

    impl RecentData for Gated {
        fn streams(
            &self,
            _: &Tenant,
            _: &[Matcher],
            _: Timestamp,
            _: Timestamp,
        ) -> Vec<RecentStream> {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.gate.lock().unwrap().recv();
            self.streams.clone()
        }
    }

    struct NoRecent;

    impl RecentData for NoRecent {
        fn streams(
            &self,
            _: &Tenant,
            _: &[Matcher],
            _: Timestamp,
            _: Timestamp,
        ) -> Vec<RecentStream> {
            Vec::new()
        }
    }

    fn metric(q: &str) -> MetricExpr {
        match fenrir_logql::parse_expr(q).unwrap() {
            Expr::Metric(m) => m,
            Expr::Log(_) => panic!("not a metric query"),
        }
    }

    fn one_worker_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_dropped_query_stops_its_scan() {
        let rt = one_worker_runtime();
        let streams: Vec<RecentStream> = (0..10)
            .map(|pod| {
                let l = labels(pod);
                RecentStream {
                    chunks: vec![Arc::new(chunk(&l, 1, 2000))],
                    labels: l,
                    head: Vec::new(),
                }
            })
            .collect();
        let (entered_tx, entered) = mpsc::channel();
        let (gate, gate_rx) = mpsc::channel();
        let recent = Arc::new(Gated {
            streams,
            entered: Mutex::new(entered_tx),
            gate: Mutex::new(gate_rx),
        });
        let engine = Engine::new(
            Index::temporary().unwrap(),
            Arc::new(InMemoryStore::new()),
            recent,
        )
        .with_decode_workers(2);
        let expr = metric(r#"sum(count_over_time({app="a"}[1h]))"#);
        let params = EvalParams::instant(3_600_000_000_000, 1000);
        let run = |engine: &Engine| {
            let (engine, expr) = (engine.clone(), expr.clone());
            rt.spawn(async move { engine.query_metric(Tenant::single(), expr, params).await })
        };

        // Uncancelled, the query reads every block.
        let task = run(&engine);
        entered.recv().unwrap();
        gate.send(()).unwrap();
        let value = rt.block_on(task).unwrap().unwrap();
        let QueryValue::Vector(v) = value else {
            panic!("{value:?}")
        };
        assert_eq!(v[0].value, 20_000.0);
        let all = engine.blocks_decoded();
        assert!(all >= 100, "{all} blocks");

        // Dropped while its thread selects streams: the scan decodes nothing.
        let task = run(&engine);
        entered.recv().unwrap();
        task.abort();
        assert!(rt.block_on(task).unwrap_err().is_cancelled());
        gate.send(()).unwrap();
        // Dropping the runtime waits for its blocking threads: the scan is over.
        drop(rt);
        assert_eq!(engine.blocks_decoded(), all);
    }

    #[test]
    fn newest_lines_read_only_the_newest_blocks() {
        let rt = one_worker_runtime();
        let store = Arc::new(InMemoryStore::new());
        let index = Index::temporary().unwrap();
        let mut object = Vec::new();
        let mut refs = Vec::new();
        for pod in 0..5 {
            let l = labels(pod);
            // Two chunks per stream, streams interleaved in time.
            for part in 0..2 {
                let c = chunk(&l, part * 100_000 + pod as i64, 3000);
                refs.push((l.clone(), append_chunk(&mut object, &c)));
            }
        }
        let tenant = Tenant::single();
        rt.block_on(store.put("fake/seg/x.seg", object.into()))
            .unwrap();
        index.add_chunks(&tenant, &refs).unwrap();
        let engine = Engine::new(index, store, Arc::new(NoRecent)).with_decode_workers(2);
        let Expr::Log(expr) = fenrir_logql::parse_expr(r#"{app="a"}"#).unwrap() else {
            unreachable!()
        };
        let query = LogQuery {
            tenant,
            expr,
            start: 0,
            end: 1_000_000,
            limit: 20,
            direction: Direction::Backward,
            categorize: false,
        };
        let result = rt.block_on(engine.query_logs(query)).unwrap();
        let mut got: Vec<i64> = result
            .streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.ts))
            .collect();
        got.sort_unstable();
        let mut want: Vec<i64> = (0..5i64)
            .flat_map(|pod| (0..3000).map(move |i| 100_000 + pod + i))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want[want.len() - 20..]);
        // Hundreds of blocks exist; each stream needs its newest one, plus the read-ahead.
        // Workers race the query thread, so how far they run ahead before the skip varies
        // by a few blocks from run to run: bound it by a read-ahead on every stream.
        let decoded = engine.blocks_decoded();
        assert!(decoded <= 5 * 4, "{decoded} blocks decoded");
    }

    /// Unflushed data, handed out as is.
    struct Fixed(Vec<RecentStream>);

    impl RecentData for Fixed {
        fn streams(
            &self,
            _: &Tenant,
            _: &[Matcher],
            _: Timestamp,
            _: Timestamp,
        ) -> Vec<RecentStream> {
            self.0.clone()
        }
    }

    #[test]
    fn exploding_series_are_refused_while_scanning() {
        let rt = one_worker_runtime();
        // Every line has its own request id: one series per line once parsed.
        let streams: Vec<RecentStream> = (0..4)
            .map(|pod| {
                let l = labels(pod);
                let mut b = ChunkBuilder::new(&l, 512);
                for ts in 1..=3000i64 {
                    b.push(
                        ts,
                        &format!(
                            r#"{{"request_id":"{pod}-{ts}","pad":"{}"}}"#,
                            "x".repeat(40)
                        ),
                        &[],
                    );
                }
                RecentStream {
                    chunks: vec![Arc::new(b.finish(1).unwrap())],
                    labels: l,
                    head: Vec::new(),
                }
            })
            .collect();
        for workers in [0, 2] {
            let engine = Engine::new(
                Index::temporary().unwrap(),
                Arc::new(InMemoryStore::new()),
                Arc::new(Fixed(streams.clone())),
            )
            .with_decode_workers(workers);
            let run = |q: &str, max_series: usize| {
                let params = EvalParams::instant(3_600_000_000_000, max_series);
                rt.block_on(engine.query_metric(Tenant::single(), metric(q), params))
            };
            // Without a limit the query reads everything: 12,000 series.
            let q = r#"sum by (request_id) (count_over_time({app="a"} | json [1h]))"#;
            let before = engine.blocks_decoded();
            let QueryValue::Vector(v) = run(q, 0).unwrap() else {
                panic!("not a vector")
            };
            assert_eq!(v.len(), 12_000);
            let all = engine.blocks_decoded() - before;
            assert!(all >= 400, "{all} blocks");
            for q in [
                q,
                r#"count_over_time({app="a"} | json [1h])"#,
                r#"(count_over_time({app="a"} | json [1h]))"#,
            ] {
                let before = engine.blocks_decoded();
                let err = run(q, 50).unwrap_err();
                assert!(
                    err.to_string()
                        .starts_with("maximum number of series (50) reached for a single query"),
                    "{err}"
                );
                // 51 series fit in the first 8 blocks (7 lines each) of a stream; each
                // scanning thread stops at 51 series of its own (or when another one
                // did), so the scan stopped within a few blocks per thread instead of
                // reading them all.
                let decoded = engine.blocks_decoded() - before;
                assert!(
                    decoded <= 24,
                    "{workers} workers, {q}: {decoded} of {all} blocks"
                );
            }
            // Aggregated away, the same series are within the limit.
            let q = r#"sum(count_over_time({app="a"} | json request_id [1h]))"#;
            let QueryValue::Vector(v) = run(q, 50).unwrap() else {
                panic!("not a vector")
            };
            assert_eq!(v[0].value, 12_000.0);
        }
    }

    /// A chunk of `entries` with blocks of a few lines each.
    /// Appends `c` to the fake segment `object`, returning its index entry.
    fn append_chunk(object: &mut Vec<u8>, c: &EncodedChunk) -> ChunkRef {
        let offset = object.len() as u64;
        object.extend_from_slice(&c.bytes);
        ChunkRef {
            chunk_id: offset,
            object_key: "fake/seg/x.seg".into(),
            offset,
            len: c.bytes.len() as u64,
            min_ts: c.meta.min_ts,
            max_ts: c.meta.max_ts,
            entries: c.meta.entries,
            raw_bytes: c.meta.raw_bytes,
        }
    }

    fn chunk_of(labels: &LabelSet, entries: &[fenrir_common::Entry]) -> EncodedChunk {
        let mut b = ChunkBuilder::new(labels, 512);
        for e in entries {
            b.push(e.ts, &e.line, &e.structured_metadata);
        }
        b.finish(1).unwrap()
    }

    #[test]
    fn queries_that_skip_lines_or_metadata_answer_as_those_that_read_them() {
        let rt = one_worker_runtime();
        let levels = ["info", "warn", "error"];
        let entries = |pod: usize, from: i64, to: i64| -> Vec<fenrir_common::Entry> {
            (from..to)
                .map(|ts| fenrir_common::Entry {
                    ts,
                    line: format!(
                        "level={} {pod} {ts} {}",
                        levels[ts as usize % 3],
                        "x".repeat(30)
                    ),
                    structured_metadata: vec![(
                        "detected_level".to_string(),
                        levels[ts as usize / 7 % 3].to_string(),
                    )],
                })
                .collect()
        };
        let index = Index::temporary().unwrap();
        let store = Arc::new(InMemoryStore::new());
        let tenant = Tenant::single();
        let (mut object, mut refs, mut recent) = (Vec::new(), Vec::new(), Vec::new());
        let mut merged_blocks = 0;
        for pod in 0..4 {
            let l = labels(pod);
            let mut sealed = Vec::new();
            for part in 0..2i64 {
                let c = chunk_of(&l, &entries(pod, part * 5_000, part * 5_000 + 1_000));
                refs.push((l.clone(), append_chunk(&mut object, &c)));
                let blocks = fenrir_chunk::ChunkReader::open(&c.bytes)
                    .unwrap()
                    .blocks()
                    .len();
                match (pod, part) {
                    // A flush in flight: the stored chunk is still in memory too.
                    (0, 1) => {
                        merged_blocks += 2 * blocks;
                        sealed.push(Arc::new(c));
                    }
                    // Out-of-order pushes across a seal: a chunk overlapping the stored
                    // one, holding some of its entries again and new ones.
                    (1, 1) => {
                        let again = chunk_of(&l, &entries(pod, 5_900, 6_300));
                        merged_blocks += blocks
                            + fenrir_chunk::ChunkReader::open(&again.bytes)
                                .unwrap()
                                .blocks()
                                .len();
                        sealed.push(Arc::new(again));
                    }
                    _ => {}
                }
            }
            recent.push(RecentStream {
                labels: l,
                chunks: sealed,
                head: entries(pod, 9_000, 9_010),
            });
        }
        rt.block_on(store.put("fake/seg/x.seg", object.into()))
            .unwrap();
        index.add_chunks(&tenant, &refs).unwrap();
        // Each query, and one that reads everything (`|= ""` keeps every line but reads it;
        // a label filter reads metadata) and must answer the same.
        let cases = [
            (
                r#"sum by (pod, detected_level) (count_over_time({app="a"} | drop __error__ [1m]))"#,
                r#"sum by (pod, detected_level) (count_over_time({app="a"} | drop __error__ |= "" [1m]))"#,
                BlockParts {
                    lines: false,
                    metadata: true,
                },
            ),
            (
                r#"sum(count_over_time({app="a"} | detected_level="warn" [1m]))"#,
                r#"sum(count_over_time({app="a"} | detected_level="warn" |= "" [1m]))"#,
                BlockParts {
                    lines: false,
                    metadata: true,
                },
            ),
            (
                r#"sum(count_over_time({app="a"} |= "error" [1m]))"#,
                r#"sum(count_over_time({app="a"} |= "error" | detected_level=~".*" [1m]))"#,
                BlockParts {
                    lines: true,
                    metadata: false,
                },
            ),
            (
                r#"sum(rate({app="a"}[1m]))"#,
                r#"sum(rate({app="a"} |= "" | drop detected_level [1m]))"#,
                BlockParts {
                    lines: false,
                    metadata: false,
                },
            ),
        ];
        for workers in [0, 2] {
            let engine = Engine::new(
                index.clone(),
                store.clone(),
                Arc::new(Fixed(recent.clone())),
            )
            .with_decode_workers(workers);
            let counts = || {
                let d = &engine.decoded;
                [&d.blocks, &d.without_lines, &d.without_metadata]
                    .map(|c| c.load(Ordering::Relaxed))
            };
            let run = |q: &str| {
                let params = EvalParams::range(0, 10_000_000, 60_000_000_000 / 1000, 0);
                let before = counts();
                let value = rt
                    .block_on(engine.query_metric(tenant.clone(), metric(q), params))
                    .unwrap();
                let after = counts();
                (value, [0, 1, 2].map(|i| after[i] - before[i]))
            };
            for (q, reading, parts) in &cases {
                let (got, [blocks, no_lines, no_metadata]) = run(q);
                let (want, [all_blocks, read_no_lines, read_no_metadata]) = run(reading);
                assert_eq!(got, want, "{workers} workers: {q}");
                assert!(
                    !matches!(&got, QueryValue::Matrix(m) if m.is_empty()),
                    "{q}"
                );
                assert_eq!(blocks, all_blocks, "{q}");
                // Merged pieces are decoded whole; every other block skips what the
                // query does not read.
                let skipped = blocks - merged_blocks as u64;
                let want_skipped = |read: bool| if read { 0 } else { skipped };
                assert_eq!(
                    (no_lines, no_metadata),
                    (want_skipped(parts.lines), want_skipped(parts.metadata)),
                    "{workers} workers, {q}: {blocks} blocks"
                );
                assert_eq!((read_no_lines, read_no_metadata), (0, 0), "{reading}");
            }
        }
    }
}
