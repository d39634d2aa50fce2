use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fenrir_common::{Fingerprint, LabelSet, Matcher, Tenant, Timestamp};
use fenrir_index::Index;
use fenrir_logql::ast::{MetricExpr, RangeAgg};
use fenrir_logql::{evaluate, EvalParams, QueryValue, SampleExtractor, SampleSource};
use fenrir_storage::ObjectStore;

use crate::detected::{detect_fields, detect_labels, field_values};
use crate::logs::run_log_query;
use crate::patterns::Miner;
use crate::scan::{scan_stream, ChunkFetcher, Piece, StreamData};
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
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over flushed data (`index` + `store`) and unflushed data (`recent`).
    pub fn new(index: Index, store: Arc<dyn ObjectStore>, recent: Arc<dyn RecentData>) -> Self {
        Engine {
            index,
            store,
            recent,
        }
    }

    /// Runs a log query.
    pub async fn query_logs(&self, q: LogQuery) -> Result<LogResult> {
        let this = self.clone();
        self.blocking(move |fetcher| {
            let streams = this.select(&q.tenant, &q.expr.selector, q.start, q.end)?;
            run_log_query(fetcher, &streams, &q)
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
        self.blocking(move |fetcher| {
            let mut source = Source {
                engine: &this,
                fetcher,
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
                            s.bytes += h.iter().map(|e| e.line.len() as u64).sum::<u64>();
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
        self.blocking(move |fetcher| {
            let pipeline = fenrir_logql::LogPipeline::new(&q.expr.stages)?;
            let streams = this.select(&q.tenant, &q.expr.selector, q.start, q.end)?;
            let mut miner = Miner::new(q.step);
            for data in &streams {
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
                scan_stream(
                    fetcher,
                    data,
                    q.start,
                    q.end,
                    Direction::Forward,
                    &mut visit,
                )?;
            }
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

    /// Runs `f` on a blocking thread with a fetcher that can wait on the object store.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ChunkFetcher) -> Result<T> + Send + 'static,
    {
        let fetcher = ChunkFetcher {
            store: self.store.clone(),
            handle: tokio::runtime::Handle::current(),
        };
        tokio::task::spawn_blocking(move || f(&fetcher))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }
}

/// Feeds the evaluator from the engine: one pass over the selected streams per range
/// aggregation.
struct Source<'a> {
    engine: &'a Engine,
    fetcher: &'a ChunkFetcher,
    tenant: &'a Tenant,
}

impl SampleSource for Source<'_> {
    fn samples(
        &mut self,
        agg: &RangeAgg,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(&LabelSet, i64, f64),
    ) -> fenrir_logql::Result<()> {
        // Samples are wanted for (from, to]: in scan terms [from + 1, to + 1).
        let (start, end) = (from.saturating_add(1), to.saturating_add(1));
        let mut run = || -> Result<()> {
            let extractor = SampleExtractor::new(agg)?;
            let streams = self
                .engine
                .select(self.tenant, &agg.range.log.selector, start, end)?;
            for data in &streams {
                let mut ex = extractor.for_stream(&data.labels);
                let mut visit = |ts: Timestamp, line: &str, md: &[(&str, &str)]| -> bool {
                    if let Some((labels, value)) = ex.process(ts, line, md) {
                        sink(labels, ts, value);
                    }
                    true
                };
                scan_stream(
                    self.fetcher,
                    data,
                    start,
                    end,
                    Direction::Forward,
                    &mut visit,
                )?;
            }
            Ok(())
        };
        run().map_err(|e| match e {
            Error::BadQuery(m) => fenrir_logql::Error::Query(m),
            other => fenrir_logql::Error::Query(other.to_string()),
        })
    }
}
