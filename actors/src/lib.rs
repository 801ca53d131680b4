//! The SRE actors of sre-integration, one per file, grouped by area.
//!
//! # Layout
//! - [`argocd`]: one `EnvPoller` per ArgoCD environment (fleet and health intents).
//! - [`emit`]: where actors hand their intents (the publisher, or a channel).
//! - [`ingest`]: the AlertManager webhook, the `Dedup`, `AlertRouter` and `IntentPublisher`
//!   actors.
//! - [`providers`]: one `ProviderCircuit` actor per upstream and the outbound
//!   [`UpstreamClient`](providers::UpstreamClient) (timeout, retry with backoff and jitter,
//!   `Retry-After`, correlation ids, the circuit's verdict).
//! - [`timer`]: an actor's self-scheduled message (`send_after`), cancelled with its state.

pub mod argocd;
pub mod emit;
pub mod ingest;
pub mod kubernetes;
pub mod providers;
pub mod timer;
