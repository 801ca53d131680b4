//! The AlertManager hot path: webhook → validate → fingerprint → dedup → translate → publish →
//! answer 200 only after the intents are durable.
//!
//! # Layout
//! - [`payload`]: AlertManager's version-4 payload and its validation.
//! - [`fingerprint`]: Prometheus' label-set fingerprint.
//! - [`severity`]: the severity ladder.
//! - [`batch`]: a request prepared for the actors.
//! - [`dedup`]: the `Dedup` actor (windows, in-flight claims).
//! - [`claim`]: claim → publish → settle, the delivery protocol every producer of intents uses.
//! - [`router`]: the `AlertRouter` actor (alerts → intent records).
//! - [`publisher`]: the `IntentPublisher` actor (owns the sink).
//! - [`webhook`]: the HTTP handler and the delivery semantics.
//! - [`metrics`]: the ingest metrics.

pub mod batch;
pub mod claim;
pub mod dedup;
pub mod fingerprint;
pub mod metrics;
pub mod payload;
pub mod publisher;
pub mod router;
pub mod severity;
pub mod webhook;
