//! Test support for sre-integration: builder-style fake upstream servers that speak HTTP on
//! loopback and can be told to answer, fail, stall or throttle, and record what they received.
//!
//! The servers run on the caller's tokio runtime, so tests that pause tokio time drive them
//! deterministically: a stalled request times out on the client's (virtual) clock.
//!
//! # Layout
//! - [`upstream`]: [`FakeUpstream`], a scripted HTTP server for any JSON API.
//! - [`argocd`]: [`argocd::FakeArgoCd`], ArgoCD's application list with auth and failures.
//! - [`kube`]: [`kube::FakeKube`], a Kubernetes API server (lists, watches, discovery, logs)
//!   for the real kube-rs client, with expiring and dropped watches and failures on command.
//! - [`prometheus`]: [`prometheus::FakePrometheus`], the instant-query API with answers computed
//!   from the query and its time.
//! - [`loki`], [`tempo`], [`grafana`]: the observability APIs the query clients call, in
//!   their real response shapes, on [`faults::Server`], which records requests and injects
//!   failures, throttling and stalls.
//! - [`pagerduty`], [`opsgenie`]: the paging APIs (PagerDuty Events API v2 with its dedup
//!   semantics; OpsGenie's asynchronous Alert API with request-status lookups), also on
//!   [`faults::Server`].
//! - [`jira`], [`github`]: Jira Cloud's and GitHub's issue APIs (ADF bodies, JQL search with
//!   `nextPageToken`, transitions; labels, issues and comments with `Link` paging), with their
//!   rate-limit answers, on [`faults::Server`] too.

pub mod argocd;
pub mod faults;
pub mod github;
pub mod grafana;
pub mod jira;
pub mod kube;
pub mod loki;
pub mod opsgenie;
pub mod pagerduty;
pub mod prometheus;
pub mod tempo;
pub mod upstream;

pub use upstream::{FakeUpstream, Recorded, Reply};
