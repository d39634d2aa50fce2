//! Fenrir's object storage: the [`ObjectStore`] trait (the source of truth for flushed data)
//! with in-memory, local-filesystem and (feature `s3`) S3 implementations.
//!
//! Keys are `/`-separated strings with no directories, as on S3; [`validate_key`] holds the
//! rules every store applies. Errors say whether a retry may help
//! ([`Error::is_retryable`]). With the `testsuite` feature, [`conformance_suite`] checks any
//! implementation against the shared contract, and with `s3` as well, [`s3_test_store`]
//! gives a test its own bucket on a real S3 server.

#![warn(missing_docs)]

mod error;
mod local;
mod memory;
#[cfg(feature = "s3")]
mod s3;
#[cfg(all(feature = "s3", any(test, feature = "testsuite")))]
mod s3_testing;
mod store;
#[cfg(any(test, feature = "testsuite"))]
mod testsuite;

pub use error::{Error, Result};
pub use local::LocalFsStore;
pub use memory::InMemoryStore;
#[cfg(feature = "s3")]
pub use s3::{S3Options, S3Store, MIN_PART_SIZE};
#[cfg(all(feature = "s3", any(test, feature = "testsuite")))]
pub use s3_testing::{
    s3_test_endpoint, s3_test_options, s3_test_store, unique_bucket_name, S3_TEST_ENDPOINT_VAR,
};
pub use store::{validate_key, BlockingReader, ObjectMeta, ObjectStore};
#[cfg(any(test, feature = "testsuite"))]
pub use testsuite::conformance_suite;
