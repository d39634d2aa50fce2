//! LogQL for Fenrir, targeting the grammar and semantics of Grafana Loki 3.x.
//!
//! - [`parse_expr`] turns query text into an [`Expr`] ([`ast`]), with Loki's error texts;
//!   `Display` on the tree prints LogQL that parses back to the same tree.
//! - [`LogPipeline`] runs a log query's stages over lines, one stream at a time.
//! - [`SampleExtractor`] turns lines into samples for range aggregations.
//! - [`evaluate`] computes metric expressions from samples over Loki's step grid.
//!
//! Pure: no I/O, no clocks, no threads.

pub mod ast;
mod error;
mod eval;
mod fxhash;
mod parser;
mod pipeline;
mod printer;
mod template;

pub use ast::Expr;
pub use error::{Error, Result};
pub use eval::{
    evaluate, format_sample_value, format_timestamp_seconds, EvalParams, QueryValue, Sample,
    SampleSink, SampleSource, Series,
};
pub use parser::{parse_expr, ParseError};
pub use pipeline::{
    LogPipeline, Processed, ResultLabels, SampleExtractor, StreamPipeline, StreamSampleExtractor,
};
