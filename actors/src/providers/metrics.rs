//! Metrics of the provider circuits and the outbound client. The `provider` label is a circuit
//! name from the configuration (`jira`, `argocd:dev`, `k8s:prod`, ...), so it is bounded;
//! `to` and `outcome` are fixed sets.
//!
//! - `sre_circuit_state{provider}`: 0 closed, 1 open, 2 half-open.
//! - `sre_circuit_transitions_total{provider,to}`: state changes, `to` ∈ closed/open/half_open.
//! - `sre_upstream_requests_total{provider,outcome}`: attempts by outcome, the labels of
//!   [`Outcome::label`] (success, client_error, server_error, throttled, timeout, transport,
//!   body_timeout, body_too_large, circuit_open).
//! - `sre_upstream_request_duration_seconds{provider}`: time per attempt.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::outcome::Outcome;

/// `{provider}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    /// Circuit name.
    pub provider: String,
}

/// `{provider,to}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// Circuit name.
    pub provider: String,
    /// New state.
    pub to: &'static str,
}

/// `{provider,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Circuit name.
    pub provider: String,
    /// Outcome of the attempt.
    pub outcome: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The families, shared by every circuit and client.
#[derive(Clone, Debug)]
pub struct ProviderMetrics {
    pub(crate) state: Family<ProviderLabel, Gauge>,
    pub(crate) transitions: Family<TransitionLabels, Counter>,
    pub(crate) requests: Family<OutcomeLabels, Counter>,
    pub(crate) duration: Family<ProviderLabel, Histogram, fn() -> Histogram>,
}

impl Default for ProviderMetrics {
    fn default() -> Self {
        ProviderMetrics {
            state: Family::default(),
            transitions: Family::default(),
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        }
    }
}

impl ProviderMetrics {
    /// Counts one attempt (or refused call) of `provider` by its outcome.
    pub fn count(&self, provider: &str, outcome: Outcome) {
        self.requests
            .get_or_create(&OutcomeLabels {
                provider: provider.to_owned(),
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Observes the time of one attempt of `provider`.
    pub fn observe(&self, provider: &str, seconds: f64) {
        self.duration
            .get_or_create(&ProviderLabel {
                provider: provider.to_owned(),
            })
            .observe(seconds);
    }

    /// Creates and registers the families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = ProviderMetrics::default();
        registry.register(
            "sre_circuit_state",
            "Circuit state per upstream: 0 closed, 1 open, 2 half-open",
            m.state.clone(),
        );
        registry.register(
            "sre_circuit_transitions",
            "Circuit state changes per upstream, by the state entered",
            m.transitions.clone(),
        );
        registry.register(
            "sre_upstream_requests",
            "Outbound request attempts per upstream, by outcome",
            m.requests.clone(),
        );
        registry.register(
            "sre_upstream_request_duration_seconds",
            "Time per outbound request attempt",
            m.duration.clone(),
        );
        m
    }
}
