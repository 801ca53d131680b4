//! The Kubernetes integration (spec §2): one [`cluster::ClusterWatcher`] per configured
//! cluster turns watches (with a periodic full reconcile) into `RecordHealthCheckRequested`
//! and Warning events into `IngestAlertRequested`; [`read::ClusterReader`] is the read API
//! across clusters that the agent tools use, and [`write::ClusterWriter`] the write API beside
//! it.
//!
//! # Layout
//! - [`client`]: a cluster's kube client from its kubeconfig, behind its circuit.
//! - [`health`]: the health model (the table) — pure functions.
//! - [`view`]: slim Pod and Event views (only what is read is decoded).
//! - [`observe`]: API objects → observations, Warning events, namespace globs.
//! - [`tracker`]: what a watcher remembers and still owes downstream — pure state machines.
//! - [`records`]: intent records from transitions and Warning events.
//! - [`cluster`]: the `ClusterWatcher` actor.
//! - [`pump`]: its watch streams (watch, convert, hand over in batches).
//! - [`outbox`]: what it owes downstream and how that is emitted (claim, emit, settle, retry).
//! - [`read`]: get / list / describe / events / logs across clusters (Secrets: metadata only).
//! - [`write`]: exec / apply / delete / rollout restart across clusters, with previews.
//! - [`metrics`]: the `sre_k8s_*` metrics.

pub mod client;
pub mod cluster;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod outbox;
pub mod pump;
pub mod read;
pub mod records;
pub mod tracker;
pub mod view;
pub mod write;
