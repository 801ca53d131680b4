//! The SRE actors of sre-integration, one per file, grouped by area.
//!
//! # Layout
//! - [`ingest`]: the AlertManager webhook, the `Dedup`, `AlertRouter` and `IntentPublisher`
//!   actors.
//! - [`providers`]: one `ProviderCircuit` actor per upstream and the outbound
//!   [`UpstreamClient`](providers::UpstreamClient) (timeout, retry with backoff and jitter,
//!   `Retry-After`, correlation ids, the circuit's verdict).

pub mod ingest;
pub mod providers;
