//! The fenrir server as a library: wiring of storage, index, WAL, ingester, query engine
//! and HTTP API, so that tests can run a whole server in-process.

mod malloc;
mod runtime;
mod serve;
mod wiring;

pub use malloc::tune_malloc;
pub use serve::serve;
pub use wiring::{build, spawn_flusher, Built};
