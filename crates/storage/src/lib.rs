//! Fenrir's object storage: the [`ObjectStore`] trait (the source of truth for flushed data)
//! with an in-memory and a local-filesystem implementation.
//!
//! Keys are `/`-separated strings with no directories, as on S3; [`validate_key`] holds the
//! rules every store applies. Errors say whether a retry may help
//! ([`Error::is_retryable`]). With the `testsuite` feature, [`conformance_suite`] checks any
//! implementation against the shared contract.

#![warn(missing_docs)]

mod error;
mod local;
mod memory;
mod store;
#[cfg(any(test, feature = "testsuite"))]
mod testsuite;

pub use error::{Error, Result};
pub use local::LocalFsStore;
pub use memory::InMemoryStore;
pub use store::{validate_key, ObjectMeta, ObjectStore};
#[cfg(any(test, feature = "testsuite"))]
pub use testsuite::conformance_suite;
