//! Loki's HTTP API for Fenrir: routes, parameter parsing in Loki's formats, Loki's JSON
//! response shapes, tenancy, and the one mapping from errors to status codes.
//!
//! [`router`] builds the whole axum application from an [`AppState`]; tests drive it
//! with `tower::ServiceExt::oneshot`, no socket needed.

mod drilldown;
mod error;
mod json;
mod metrics;
mod ops;
mod params;
mod push;
mod query;
mod routes;
mod rules;
mod state;
mod tail;

pub use error::ApiError;
pub use routes::router;
pub use state::{ApiConfig, AppState};
pub use tail::TailConfig;
