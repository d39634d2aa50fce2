//! The log pipeline: line filters, parsers, label filters, formatting stages.
//!
//! A [`LogPipeline`] is compiled once per query; [`LogPipeline::for_stream`] gives the
//! per-stream state that runs lines. Line filters are moved ahead of parsers and label
//! stages as Loki does (not past `line_format`, `unpack` or a label filter); the label
//! sets a stream produces are interned, so repeated sets cost no allocation.

use std::borrow::Cow;

use fenrir_common::LabelSet;

use crate::ast::{Parser, Stage};
use crate::{Error, ParseError, Result};

mod convert;
mod extractor;
mod format;
mod ip;
mod json;
mod label_filter;
mod labels;
mod line_filter;
mod logfmt;
mod pattern;
mod regexp;
mod unpack;

pub use extractor::{SampleExtractor, StreamSampleExtractor};
pub use labels::ResultLabels;

#[allow(unused_imports)] // Go-compatible conversions, for the parser and the evaluator.
pub(crate) use convert::{
    duration_seconds, parse_go_duration, parse_go_float, parse_humanize_bytes,
};

use format::{
    compile_selections, drop_labels, keep_labels, Decolorize, LabelFormatStage, LineFormat,
    Selection,
};
use json::{JsonExpressionParser, JsonParser};
use label_filter::LabelFilterStage;
use labels::{LineLabels, ResultInterner};
use line_filter::LineFilterStage;
use logfmt::LogfmtParser;
use regexp::{PatternParser, RegexpParser};
use unpack::UnpackParser;

/// A stage compiled for execution. Per-stream copies hold the stages' scratch buffers.
#[derive(Debug, Clone)]
pub(crate) enum CompiledStage {
    LineFilter(LineFilterStage),
    Json(JsonParser),
    JsonExpr(JsonExpressionParser),
    Logfmt(LogfmtParser),
    Regexp(RegexpParser),
    Pattern(PatternParser),
    Unpack(UnpackParser),
    LabelFilter(LabelFilterStage),
    LineFormat(LineFormat),
    LabelFormat(LabelFormatStage),
    Drop(Vec<Selection>),
    Keep(Vec<Selection>),
    Decolorize(Decolorize),
}

impl CompiledStage {
    /// The labels the stage reads (Loki's "required label names"), which the parser
    /// hints of a metric query keep: label filters, and templates or renames that name
    /// a label. `drop` and `keep` do not count.
    fn required_label_names(&self, out: &mut Vec<String>) {
        match self {
            CompiledStage::LabelFilter(f) => f.label_names(out),
            CompiledStage::LineFormat(f) => f.label_names(out),
            CompiledStage::LabelFormat(f) => f.label_names(out),
            _ => {}
        }
    }

    /// Whether the stage looks at the line text. Label filters, `drop` and `keep` see only
    /// labels; everything else (filters, parsers, templates, which may name `__line__`)
    /// does.
    fn reads_line(&self) -> bool {
        !matches!(
            self,
            CompiledStage::LabelFilter(_) | CompiledStage::Drop(_) | CompiledStage::Keep(_)
        )
    }

    /// Whether the stage can change labels (and so defeats the stream-labels fast path).
    fn touches_labels(&self) -> bool {
        !matches!(
            self,
            CompiledStage::LineFilter(_) | CompiledStage::Decolorize(_)
        )
    }
}

pub(crate) fn parse_error(message: String) -> Error {
    Error::Parse(ParseError {
        position: None,
        message,
    })
}

/// Loki's reordering: line filters run before the parsers and label stages that precede
/// them, but never move past `line_format`, `unpack` or a label filter. `decolorize` is
/// no barrier, so `| decolorize |= "x"` tests the coloured line (as in Loki).
fn reorder(stages: &[Stage]) -> Vec<&Stage> {
    let mut out: Vec<&Stage> = Vec::with_capacity(stages.len());
    let mut insert_at = 0;
    for stage in stages {
        match stage {
            Stage::LineFilter(_) => {
                out.insert(insert_at, stage);
                insert_at += 1;
            }
            Stage::LineFormat(_) | Stage::Parser(Parser::Unpack) | Stage::LabelFilter(_) => {
                out.push(stage);
                insert_at = out.len();
            }
            _ => out.push(stage),
        }
    }
    out
}

fn compile_stage(stage: &Stage) -> Result<CompiledStage> {
    Ok(match stage {
        Stage::LineFilter(f) => {
            CompiledStage::LineFilter(LineFilterStage::new(f).map_err(parse_error)?)
        }
        Stage::Parser(Parser::Json(params)) if params.is_empty() => {
            CompiledStage::Json(JsonParser::default())
        }
        Stage::Parser(Parser::Json(params)) => {
            CompiledStage::JsonExpr(JsonExpressionParser::new(params).map_err(parse_error)?)
        }
        Stage::Parser(Parser::Logfmt {
            strict,
            keep_empty,
            params,
        }) => CompiledStage::Logfmt(LogfmtParser::new(*strict, *keep_empty, params)),
        Stage::Parser(Parser::Regexp(src)) => {
            CompiledStage::Regexp(RegexpParser::new(src).map_err(parse_error)?)
        }
        Stage::Parser(Parser::Pattern(src)) => {
            CompiledStage::Pattern(PatternParser::new(src).map_err(parse_error)?)
        }
        Stage::Parser(Parser::Unpack) => CompiledStage::Unpack(UnpackParser::default()),
        Stage::LabelFilter(f) => {
            CompiledStage::LabelFilter(LabelFilterStage::new(f).map_err(parse_error)?)
        }
        Stage::LineFormat(src) => {
            CompiledStage::LineFormat(LineFormat::new(src).map_err(parse_error)?)
        }
        Stage::LabelFormat(formats) => {
            CompiledStage::LabelFormat(LabelFormatStage::new(formats).map_err(parse_error)?)
        }
        Stage::Drop(items) => CompiledStage::Drop(compile_selections(items).map_err(parse_error)?),
        Stage::Keep(items) => CompiledStage::Keep(compile_selections(items).map_err(parse_error)?),
        Stage::Decolorize => CompiledStage::Decolorize(Decolorize::new()),
    })
}

/// Compiled stages, in execution order.
#[derive(Debug, Clone)]
pub(crate) struct CompiledStages {
    stages: Vec<CompiledStage>,
    touches_labels: bool,
    line_filters_only: bool,
    /// Whether any stage looks at the line text (see [`CompiledStage::reads_line`]).
    reads_line: bool,
    /// How many stages at the start are line filters: they read only the raw line, so
    /// they run before any label work ([`CompiledStages::prefilter`]).
    leading_filters: usize,
}

impl CompiledStages {
    pub(crate) fn new(stages: &[Stage]) -> Result<CompiledStages> {
        let stages = reorder(stages)
            .into_iter()
            .map(compile_stage)
            .collect::<Result<Vec<_>>>()?;
        let touches_labels = stages.iter().any(CompiledStage::touches_labels);
        let reads_line = stages.iter().any(CompiledStage::reads_line);
        let line_filters_only = stages
            .iter()
            .all(|s| matches!(s, CompiledStage::LineFilter(_)));
        let leading_filters = stages
            .iter()
            .take_while(|s| matches!(s, CompiledStage::LineFilter(_)))
            .count();
        Ok(CompiledStages {
            stages,
            touches_labels,
            line_filters_only,
            reads_line,
            leading_filters,
        })
    }

    /// Runs the leading line filters on the raw line: `false` when one drops it. Most
    /// lines of a filtered query end here, before their labels are even set up.
    #[inline]
    pub(crate) fn prefilter(&self, line: &str) -> bool {
        self.stages[..self.leading_filters].iter().all(|s| match s {
            CompiledStage::LineFilter(f) => f.keep(line),
            _ => true,
        })
    }

    /// The labels any stage reads (see [`CompiledStage::required_label_names`]).
    pub(crate) fn required_label_names(&self, out: &mut Vec<String>) {
        for stage in &self.stages {
            stage.required_label_names(out);
        }
    }

    /// Runs the stages after the leading line filters (which [`CompiledStages::prefilter`]
    /// has passed) on one line; `None` when a filter drops it.
    pub(crate) fn run<'l>(
        &mut self,
        ts: i64,
        line: &'l str,
        labels: &mut LineLabels,
        names: &mut Vec<String>,
    ) -> Option<Cow<'l, str>> {
        let mut line = Cow::Borrowed(line);
        for stage in &mut self.stages[self.leading_filters..] {
            match stage {
                CompiledStage::LineFilter(f) => {
                    if !f.keep(&line) {
                        return None;
                    }
                }
                // Parser hints (Loki's `NoLabels()`): these parsers skip a line that
                // needs no (more) labels, so they raise no errors on it either.
                CompiledStage::Json(_)
                | CompiledStage::JsonExpr(_)
                | CompiledStage::Logfmt(_)
                | CompiledStage::Pattern(_)
                | CompiledStage::Unpack(_)
                    if labels.parsers_done() => {}
                CompiledStage::Json(p) => p.process(&line, labels),
                CompiledStage::JsonExpr(p) => p.process(&line, labels),
                CompiledStage::Logfmt(p) => p.process(&line, labels),
                CompiledStage::Regexp(p) => p.process(&line, labels),
                CompiledStage::Pattern(p) => p.process(&line, labels),
                CompiledStage::Unpack(p) => {
                    if let Some(new) = p.process(&line, labels) {
                        line = Cow::Owned(new);
                    }
                }
                CompiledStage::LabelFilter(f) => {
                    if !f.keep(labels) {
                        return None;
                    }
                }
                CompiledStage::LineFormat(f) => {
                    if let Some(new) = f.process(ts, &line, labels) {
                        line = Cow::Owned(new);
                    }
                }
                CompiledStage::LabelFormat(f) => f.process(ts, &line, labels),
                CompiledStage::Drop(s) => drop_labels(s, labels),
                CompiledStage::Keep(s) => keep_labels(s, labels, names),
                CompiledStage::Decolorize(d) => {
                    if let Some(new) = d.process(&line) {
                        line = Cow::Owned(new);
                    }
                }
            }
        }
        Some(line)
    }

    fn required_substrings(&self) -> Vec<&str> {
        self.stages
            .iter()
            .map_while(|s| match s {
                CompiledStage::LineFilter(f) => Some(f),
                _ => None,
            })
            .filter_map(LineFilterStage::required_substring)
            .collect()
    }
}

/// A log query's stages, compiled once per query.
#[derive(Debug, Clone)]
pub struct LogPipeline {
    stages: CompiledStages,
    noop: bool,
}

impl LogPipeline {
    /// Compiles regexes, patterns, templates and JSON paths; errors carry Loki's texts.
    pub fn new(stages: &[Stage]) -> Result<LogPipeline> {
        Ok(LogPipeline {
            stages: CompiledStages::new(stages)?,
            noop: stages.is_empty(),
        })
    }

    /// The per-stream runner for a stream with these labels.
    pub fn for_stream(&self, stream_labels: &LabelSet) -> StreamPipeline<'_> {
        StreamPipeline {
            pipeline: self,
            stages: self.stages.clone(),
            labels: LineLabels::new(stream_labels.clone()),
            plain: ResultLabels::stream_only(stream_labels),
            interner: ResultInterner::default(),
            names: Vec::new(),
        }
    }

    /// Whether the query has no stages at all.
    pub fn is_noop(&self) -> bool {
        self.noop
    }

    /// Literal substrings every kept line must contain, taken from the `|= "…"` filters
    /// that test the raw line; a reader may skip blocks that contain none of them.
    pub fn required_substrings(&self) -> Vec<&str> {
        self.stages.required_substrings()
    }
}

/// The result of one line that passed the pipeline.
#[derive(Debug)]
pub struct Processed<'l, 'p> {
    /// The line after the stages (borrowed unless a stage rewrote it).
    pub line: Cow<'l, str>,
    /// The line's labels, interned per stream.
    pub labels: &'p ResultLabels,
}

/// Runs a [`LogPipeline`] over the lines of one stream.
#[derive(Debug)]
pub struct StreamPipeline<'a> {
    pipeline: &'a LogPipeline,
    stages: CompiledStages,
    labels: LineLabels,
    plain: ResultLabels,
    interner: ResultInterner,
    names: Vec<String>,
}

impl StreamPipeline<'_> {
    /// Runs one entry; `None` when it is filtered out.
    pub fn process<'l>(
        &mut self,
        ts: i64,
        line: &'l str,
        structured_metadata: &[(&str, &str)],
    ) -> Option<Processed<'l, '_>> {
        if !self.stages.prefilter(line) {
            return None;
        }
        if structured_metadata.is_empty() && self.stages.line_filters_only {
            // The hot path: no label work at all.
            return Some(Processed {
                line: Cow::Borrowed(line),
                labels: &self.plain,
            });
        }
        self.labels.reset(structured_metadata);
        let line = self
            .stages
            .run(ts, line, &mut self.labels, &mut self.names)?;
        let labels = if !self.stages.touches_labels && structured_metadata.is_empty()
            || self.labels.is_plain_stream()
        {
            &self.plain
        } else {
            self.interner.intern(&self.labels)
        };
        Some(Processed { line, labels })
    }

    /// The pipeline this runner belongs to.
    pub fn pipeline(&self) -> &LogPipeline {
        self.pipeline
    }
}

#[cfg(test)]
mod spec_tests;
#[cfg(test)]
mod tests;
