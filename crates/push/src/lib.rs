//! Decoding and validating Loki push requests, without any HTTP framework.
//!
//! The HTTP layer hands over plain values and gets Loki's answers back:
//! 1. [`decode_push`] turns a body (with its `Content-Type`, `Content-Encoding` and the
//!    path's [`Dialect`]) into a [`RawPush`]: snappy-block protobuf, v1 JSON or legacy
//!    JSON, gzip/deflate-decoded, every size capped by [`DecodeLimits`] before allocation.
//! 2. [`validate`] applies Loki's distributor rules (label parsing and canonical form,
//!    `service_name`, label limits, timestamps, line size, structured metadata, its name
//!    normalisation, `detected_level`) and returns the [`ValidatedPush`] to store plus the
//!    grouped 400 message for whatever was dropped.
//!
//! [`decode_otlp`] does step 1 for `POST /otlp/v1/logs` (OTLP protobuf or JSON).
//!
//! Every [`PushError`] knows its HTTP status and renders Loki's message text. Rate limits,
//! stream limits, de-duplication and out-of-order windows need state and live in ingest.

mod decode;
mod error;
mod json;
mod labels;
mod level;
mod otlp;
mod time;
mod validate;

pub use decode::{decode_push, DecodeLimits, Dialect, RawPush, RawStream};
pub use error::{PushError, Result};
pub use labels::parse_label_set;
pub use otlp::decode_otlp;
pub use validate::{
    validate, DiscardReason, Discarded, ValidStream, ValidatedPush, ValidationConfig,
};
