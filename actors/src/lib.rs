//! The SRE actors of sre-integration, one per file, grouped by area.
//!
//! # Layout
//! - [`providers`]: one `ProviderCircuit` actor per upstream and the outbound
//!   [`UpstreamClient`](providers::UpstreamClient) (timeout, retry with backoff and jitter,
//!   `Retry-After`, correlation ids, the circuit's verdict).

pub mod providers;
