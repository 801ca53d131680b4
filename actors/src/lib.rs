//! The SRE actors of sre-integration, one per file, grouped by area.
//!
//! # Layout
//! - [`argocd`]: one `EnvPoller` per ArgoCD environment (fleet and health intents).
//! - [`emit`]: where actors hand their intents (the publisher, or a channel).
//! - [`facts`]: the facts consumer's contract with external actions, and the incident ledger entry.
//! - [`ingest`]: the AlertManager webhook, the `Dedup`, `AlertRouter` and `IntentPublisher`
//!   actors.
//! - [`observability`]: query clients for the observability stack (Prometheus).
//! - [`paging`]: PagerDuty and OpsGenie as facts targets: escalation with business hours,
//!   routes, deferred pages.
//! - [`providers`]: one `ProviderCircuit` actor per upstream and the outbound
//!   [`UpstreamClient`](providers::UpstreamClient) (timeout, bounded body reads, retry with
//!   backoff and jitter, `Retry-After`, correlation ids, the circuit's verdict), and the one
//!   outcome classification the Kubernetes client shares.
//! - [`ticketing`]: the Jira and GitHub Issues facts targets (tickets that follow incidents).
//! - [`timer`]: an actor's self-scheduled message (`send_after`), cancelled with its state.
//! - [`sli`]: the SLI scheduler (cron → Prometheus → SLI window intents).
//! - [`tools`]: the SRECoder tool gateway's contract (tools, the gate, callers, approvals).
//! - [`trace`]: W3C trace context from requests into spans and from spans into intents.

pub mod argocd;
pub mod emit;
pub mod facts;
pub mod ingest;
pub mod kubernetes;
pub mod observability;
pub mod paging;
pub mod providers;
pub mod sli;
pub mod ticketing;
pub mod timer;
pub mod tools;
pub mod trace;
