//! Fenrir's label index: which streams exist, which labels they carry, and where their
//! chunks are, stored in sled.
//!
//! Only stream label sets are indexed, never line content. The index is derived data:
//! everything in it comes from segment footers in the object store, so a lost or
//! incompatible index is rebuilt by [`Index::clear`] followed by [`Index::add_chunks`]
//! for every chunk of every footer.
//!
//! The API is synchronous and does disk I/O; async callers run it on blocking threads.
//! Tenants are fully isolated: every key starts with the tenant.
#![warn(missing_docs)]

mod error;
mod keys;
mod lookup;
mod model;
mod store;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use model::{ChunkRef, IndexStats};
pub use store::Index;
