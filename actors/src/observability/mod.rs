//! The observability stack's query clients (spec §4): a library the SLI scheduler and the agent
//! tools call.
//!
//! # Layout
//! - [`prometheus`]: instant and range queries, typed errors, capped results.
//! - [`probe`]: the `UpstreamProbe` actor (health checks of the configured upstreams).

pub mod probe;
pub mod prometheus;
