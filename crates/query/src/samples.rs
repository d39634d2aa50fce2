//! Samples of one range aggregation, from the selected streams into the evaluator's sink.
//!
//! When the aggregation's result does not depend on the order samples arrive in (counts,
//! sums of lines or bytes), every decoding thread takes whole streams in turn and runs the
//! whole pipeline on them — decode, filters, parsers, accumulation — into its own fork of
//! the sink; the forks are merged at the end. Otherwise one thread visits the samples in
//! scan order while the others decode ahead of it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use fenrir_chunk::BlockParts;
use fenrir_common::Timestamp;
use fenrir_logql::{SampleExtractor, SampleSink};

use crate::scan::{with_scanner, ScanContext, ScanRange, StreamData};
use crate::Result;

/// Feeds `sink` with `extractor`'s samples of `streams` in `range`, stopping once the sink
/// is full (the series limit).
pub(crate) fn extract_samples(
    ctx: &ScanContext,
    streams: &[StreamData],
    range: ScanRange,
    extractor: &SampleExtractor,
    sink: &mut SampleSink,
) -> Result<()> {
    let threads = ctx.workers.min(streams.len());
    let forks: Vec<SampleSink> = (1..threads).map_while(|_| sink.fork()).collect();
    let parts = BlockParts {
        lines: extractor.reads_line(),
        metadata: extractor.reads_metadata(),
    };
    if forks.is_empty() {
        return with_scanner(ctx, streams, range, None, parts, |scanner| {
            for (i, data) in streams.iter().enumerate() {
                let mut ex = extractor.for_stream(&data.labels);
                let mut visit = |ts: Timestamp, line: &str, md: &[(&str, &str)]| match ex
                    .process(ts, line, md)
                {
                    Some((labels, value)) => sink.add(labels, ts, value),
                    None => true,
                };
                scanner.scan_stream(i, &mut visit)?;
                if sink.is_full() {
                    break;
                }
            }
            Ok(())
        });
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let share = Share {
        ctx,
        streams,
        range,
        extractor,
        parts,
        next: &next,
        stop: &stop,
    };
    let (mine, theirs) = std::thread::scope(|scope| {
        let handles: Vec<_> = forks
            .into_iter()
            .map(|mut fork| {
                let share = &share;
                scope.spawn(move || {
                    let result = share.run(&mut fork);
                    (fork, result)
                })
            })
            .collect();
        let mine = share.run(sink);
        let theirs: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (mine, theirs)
    });
    mine?;
    for joined in theirs {
        let (fork, result) =
            joined.map_err(|_| crate::Error::Internal("scan thread panicked".into()))?;
        result?;
        if !sink.merge(fork) {
            break;
        }
    }
    Ok(())
}

/// What the threads of a parallel extraction share: streams are handed out in order.
struct Share<'a> {
    ctx: &'a ScanContext,
    streams: &'a [StreamData],
    range: ScanRange,
    extractor: &'a SampleExtractor,
    parts: BlockParts,
    next: &'a AtomicUsize,
    /// Set when any thread failed or filled its sink: the others stop too.
    stop: &'a AtomicBool,
}

impl Share<'_> {
    /// Takes streams until none is left, decoding on this thread only.
    fn run(&self, sink: &mut SampleSink) -> Result<()> {
        let ctx = ScanContext {
            workers: 0,
            ..self.ctx.clone()
        };
        let result = with_scanner(
            &ctx,
            self.streams,
            self.range,
            None,
            self.parts,
            |scanner| {
                while !self.stop.load(Ordering::Relaxed) {
                    let i = self.next.fetch_add(1, Ordering::Relaxed);
                    let Some(data) = self.streams.get(i) else {
                        break;
                    };
                    let mut ex = self.extractor.for_stream(&data.labels);
                    let stop = self.stop;
                    let mut visit = |ts: Timestamp, line: &str, md: &[(&str, &str)]| match ex
                        .process(ts, line, md)
                    {
                        Some((labels, value)) => {
                            sink.add(labels, ts, value) && !stop.load(Ordering::Relaxed)
                        }
                        None => true,
                    };
                    scanner.scan_stream(i, &mut visit)?;
                    if sink.is_full() {
                        // Tell the other threads at once, not when this one returns.
                        self.stop.store(true, Ordering::Relaxed);
                    }
                }
                Ok(())
            },
        );
        if result.is_err() || sink.is_full() {
            self.stop.store(true, Ordering::Relaxed);
        }
        result
    }
}
