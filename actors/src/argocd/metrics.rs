//! ArgoCD metrics (`env` comes from configuration; `outcome`, `health` and `sync` are ArgoCD's
//! own small sets):
//! - `sre_argocd_polls_total{env,outcome}`: `success`, `unauthorized`, `failed`.
//! - `sre_argocd_poll_duration_seconds{env}`: request and parse.
//! - `sre_argocd_applications{env,health,sync}`: applications by status at the last poll.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{env,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    /// Environment.
    pub env: String,
    /// Outcome.
    pub outcome: &'static str,
}

/// `{env}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabel {
    /// Environment.
    pub env: String,
}

/// `{env,health,sync}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// Environment.
    pub env: String,
    /// Health status.
    pub health: String,
    /// Sync status.
    pub sync: String,
}

fn poll_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The families.
#[derive(Clone, Debug)]
pub struct ArgoMetrics {
    pub(crate) polls: Family<PollLabels, Counter>,
    pub(crate) duration: Family<EnvLabel, Histogram, fn() -> Histogram>,
    pub(crate) apps: Family<AppLabels, Gauge>,
}

impl ArgoMetrics {
    /// Creates and registers the families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = ArgoMetrics {
            polls: Family::default(),
            duration: Family::new_with_constructor(poll_histogram),
            apps: Family::default(),
        };
        registry.register(
            "sre_argocd_polls",
            "ArgoCD polls by outcome",
            m.polls.clone(),
        );
        registry.register(
            "sre_argocd_poll_duration_seconds",
            "Time to fetch and parse one ArgoCD poll",
            m.duration.clone(),
        );
        registry.register(
            "sre_argocd_applications",
            "ArgoCD applications by health and sync status at the last poll",
            m.apps.clone(),
        );
        m
    }
}
