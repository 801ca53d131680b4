//! The observability stack's query clients (spec §4): a library the SLI scheduler and the agent
//! tools call.
//!
//! # Layout
//! - [`prometheus`]: instant and range queries, typed errors, capped results.

pub mod prometheus;
