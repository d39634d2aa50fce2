//! The fenrir server as a library: wiring of storage, index, WAL, ingester, query engine
//! and HTTP API, so that tests can run a whole server in-process.

mod wiring;

pub use wiring::{build, serve, spawn_flusher, Built};
