//! The ArgoCD integration: one `EnvPoller` per environment under the `argocd` supervisor, each
//! behind its own circuit `argocd:<env>`.
//!
//! # Layout
//! - [`app`]: the application list (only the fields used) and the diff between polls.
//! - [`poller`]: the `EnvPoller` actor.
//! - [`metrics`]: the ArgoCD metrics.

pub mod app;
pub mod metrics;
pub mod poller;
