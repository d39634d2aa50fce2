//! Loki's push protobuf messages, written by hand with `prost` derive (no `build.rs`, no
//! `protoc`).
//!
//! Upstream: `pkg/push/push.proto` in `grafana/loki` (proto3, package `logproto`), the
//! body of `POST /loki/api/v1/push` after snappy block decompression. Field numbers:
//!
//! | message            | field                 | no. | type                         |
//! |--------------------|-----------------------|-----|------------------------------|
//! | `PushRequest`      | `streams`             | 1   | repeated `StreamAdapter`     |
//! | `PushRequest`      | `format`              | 2   | string (internal; ignored)   |
//! | `StreamAdapter`    | `labels`              | 1   | string, e.g. `{app="x"}`     |
//! | `StreamAdapter`    | `entries`             | 2   | repeated `EntryAdapter`      |
//! | `StreamAdapter`    | `hash`                | 3   | uint64 (internal; ignored)   |
//! | `EntryAdapter`     | `timestamp`           | 1   | `google.protobuf.Timestamp`  |
//! | `EntryAdapter`     | `line`                | 2   | string                       |
//! | `EntryAdapter`     | `structuredMetadata`  | 3   | repeated `LabelPairAdapter`  |
//! | `EntryAdapter`     | `parsed`              | 4   | repeated `LabelPairAdapter`  |
//! | `LabelPairAdapter` | `name`                | 1   | string                       |
//! | `LabelPairAdapter` | `value`               | 2   | string                       |
//! | `Timestamp`        | `seconds` / `nanos`   | 1/2 | int64 / int32                |
//!
//! Proto `string` fields are declared as `bytes` here: the wire encoding is identical, and
//! Loki (Go) accepts lines and labels that are not valid UTF-8, which prost would reject
//! for `String` fields. `bytes::Bytes` also lets decoding borrow from the request buffer.
//! Converting to text is the caller's job.
//!
//! The [`otlp`] module holds the subset of OpenTelemetry's `ExportLogsServiceRequest`
//! (`opentelemetry/proto/collector/logs/v1/logs_service.proto`) that `POST /otlp/v1/logs`
//! needs.

pub mod otlp;
mod push;
mod shared;

pub use prost::{DecodeError, EncodeError, Message};
pub use push::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};
pub use shared::{PushEntry, SharedText};
