//! Fenrir's write-ahead log: opaque records, group-committed, in numbered segment files.
//!
//! Many tasks call [`Wal::append`]; a dedicated writer thread writes whatever is queued with one
//! `write_all` and one `fdatasync`, then completes every caller, so an acknowledged record is
//! on disk. On open every segment is replayed in order; a torn tail or bad checksum ends the
//! replay of that segment with a warning. Once the data of a segment is stored elsewhere,
//! [`Wal::release_through`] deletes it.
//!
//! Segment file `<dir>/<20-digit seq>.wal`: `b"FWAL" | version u32 LE`, then records
//! `len u32 LE | crc32c(payload) u32 LE | payload`.

#![warn(missing_docs)]

mod error;
mod segment;
mod wal;
mod writer;

pub use error::{Error, Result};
pub use wal::{ReplayedRecord, Wal, WalOptions, WalStats};
