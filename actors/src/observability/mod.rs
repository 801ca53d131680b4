//! The observability stack's query clients (spec §4): a library the SLI scheduler and the agent
//! tools call.
//!
//! # Layout
//! - [`prometheus`]: instant and range queries, typed errors, capped results.
//! - [`loki`]: log searches from a label selector or raw LogQL, flattened and capped.
//! - [`tempo`]: a trace's spans (both API versions' shapes) and trace search by service.
//! - [`grafana`]: dashboard links for a time range, and annotations.
//! - [`annotations`]: the `grafana` facts target (incident regions on dashboards).
//! - [`credentials`]: the credentials a query backend is sent.
//! - [`probe`]: the `UpstreamProbe` actor (health checks of the configured upstreams).

pub mod annotations;
pub mod credentials;
pub mod grafana;
pub mod loki;
pub mod probe;
pub mod prometheus;
pub mod tempo;
