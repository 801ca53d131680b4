//! The intent contract (DESIGN §3.1): every intent, whatever the sink, is one [`IntentRecord`]
//! — topic, key, CloudEvents headers (Kafka binding, binary mode) and a JSON value.
//!
//! `ce_id` is derived from the idempotency key (UUIDv5), so a replay carries the same id and the
//! domain can drop it.
//!
//! # Layout
//! - [`record`]: the record and its headers.
//! - [`alert`]: `IngestAlertRequested` and `CreateIncidentRequested` payloads.
//! - [`argocd`]: `RecordFleetStateRequested` and ArgoCD `RecordHealthCheckRequested` payloads.
//! - [`kubernetes`]: Kubernetes `RecordHealthCheckRequested` and Warning-event
//!   `IngestAlertRequested` payloads.
//! - [`sli`]: the `RecordSLIWindowRequested` payload.
//! - [`facts`]: the incident facts consumed from the SRE domain (DESIGN §3.3a).

pub mod alert;
pub mod argocd;
pub mod facts;
pub mod kubernetes;
pub mod record;
pub mod sli;

pub use record::{ce_id, Header, IntentRecord, IntentType};
