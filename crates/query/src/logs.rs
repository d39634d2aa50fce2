//! Log queries: the best `limit` entries over all streams, in `direction` order, grouped
//! into response streams by their labels after the pipeline.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use fenrir_common::{LabelSet, Tenant, Timestamp};
use fenrir_logql::ast::LogExpr;
use fenrir_logql::LogPipeline;

use fenrir_chunk::BlockParts;

use crate::scan::{with_scanner, Cutoff, ScanContext, ScanRange, StreamData};
use crate::Result;

/// Which entries a limited log query keeps, and the order it returns them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    Backward,
}

/// A log query over `[start, end)`.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// Whose data.
    pub tenant: Tenant,
    /// Selector and pipeline.
    pub expr: LogExpr,
    /// Inclusive start, ns.
    pub start: Timestamp,
    /// Exclusive end, ns.
    pub end: Timestamp,
    /// How many entries at most, over all streams.
    pub limit: usize,
    /// Order and which end of the range wins when limited.
    pub direction: Direction,
    /// Group by stream labels only and return metadata and parsed labels per entry
    /// (`X-Loki-Response-Encoding-Flags: categorize-labels`).
    pub categorize: bool,
}

/// One returned entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultEntry {
    /// ns
    pub ts: Timestamp,
    /// The line after the pipeline.
    pub line: String,
    /// Structured metadata (categorized responses only).
    pub structured_metadata: Vec<(String, String)>,
    /// Parsed labels (categorized responses only).
    pub parsed: Vec<(String, String)>,
}

/// One response stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultStream {
    /// Its labels.
    pub labels: LabelSet,
    /// Its entries in the query's direction.
    pub entries: Vec<ResultEntry>,
}

/// The answer of a log query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogResult {
    /// Streams sorted by their label string.
    pub streams: Vec<ResultStream>,
    /// Entries read from storage and memory.
    pub entries_scanned: u64,
    /// Line bytes read.
    pub bytes_scanned: u64,
}

struct Candidate {
    ts: Timestamp,
    seq: u64,
    backward: bool,
    labels: LabelSet,
    entry: ResultEntry,
}

impl Candidate {
    /// Greater means worse: the heap's top is the entry to drop first.
    fn badness(&self, other: &Self) -> Ordering {
        let by_ts = if self.backward {
            other.ts.cmp(&self.ts)
        } else {
            self.ts.cmp(&other.ts)
        };
        by_ts.then(self.seq.cmp(&other.seq))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.badness(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.badness(other)
    }
}

/// Runs a log query over the selected streams. Blocking.
pub(crate) fn run_log_query(
    ctx: &ScanContext,
    streams: &[StreamData],
    q: &LogQuery,
) -> Result<LogResult> {
    let pipeline = LogPipeline::new(&q.expr.stages)?;
    let backward = q.direction == Direction::Backward;
    let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(q.limit.min(1 << 16) + 1);
    let mut seq = 0u64;
    let mut scanned = 0u64;
    let mut bytes = 0u64;
    let cutoff = Cutoff::new(q.direction);
    let range = ScanRange {
        start: q.start,
        end: q.end,
        direction: q.direction,
    };
    // Log queries return lines and metadata.
    with_scanner(
        ctx,
        streams,
        range,
        Some(&cutoff),
        BlockParts::ALL,
        |scanner| {
            for (i, data) in streams.iter().enumerate() {
                let mut sp = pipeline.for_stream(&data.labels);
                let mut visit = |ts: Timestamp, line: &str, md: &[(&str, &str)]| -> bool {
                    if heap.len() >= q.limit {
                        if let Some(worst) = heap.peek() {
                            let cannot_win = if backward {
                                ts <= worst.ts
                            } else {
                                ts >= worst.ts
                            };
                            if cannot_win {
                                return false;
                            }
                        }
                    }
                    scanned += 1;
                    bytes += line.len() as u64;
                    let Some(out) = sp.process(ts, line, md) else {
                        return true;
                    };
                    let (labels, entry) = if q.categorize {
                        (
                            out.labels.stream.clone(),
                            ResultEntry {
                                ts,
                                line: out.line.into_owned(),
                                structured_metadata: out.labels.structured_metadata.clone(),
                                parsed: out.labels.parsed.clone(),
                            },
                        )
                    } else {
                        (
                            out.labels.all.clone(),
                            ResultEntry {
                                ts,
                                line: out.line.into_owned(),
                                structured_metadata: Vec::new(),
                                parsed: Vec::new(),
                            },
                        )
                    };
                    seq += 1;
                    heap.push(Candidate {
                        ts,
                        seq,
                        backward,
                        labels,
                        entry,
                    });
                    if heap.len() > q.limit {
                        heap.pop();
                    }
                    if heap.len() >= q.limit {
                        if let Some(worst) = heap.peek() {
                            cutoff.raise(worst.ts);
                        }
                    }
                    true
                };
                scanner.scan_stream(i, &mut visit)?;
            }
            Ok(())
        },
    )?;
    let mut grouped: HashMap<LabelSet, Vec<(u64, ResultEntry)>> = HashMap::new();
    for c in heap.into_vec() {
        grouped.entry(c.labels).or_default().push((c.seq, c.entry));
    }
    let mut streams: Vec<ResultStream> = grouped
        .into_iter()
        .map(|(labels, mut entries)| {
            entries.sort_by(|a, b| {
                let o = a.1.ts.cmp(&b.1.ts).then(a.0.cmp(&b.0));
                if backward {
                    o.reverse()
                } else {
                    o
                }
            });
            ResultStream {
                labels,
                entries: entries.into_iter().map(|(_, e)| e).collect(),
            }
        })
        .collect();
    // Loki orders response streams by their label string, byte by byte.
    let mut keyed: Vec<(String, ResultStream)> = streams
        .drain(..)
        .map(|s| (s.labels.to_string(), s))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(LogResult {
        streams: keyed.into_iter().map(|(_, s)| s).collect(),
        entries_scanned: scanned,
        bytes_scanned: bytes,
    })
}
