//! Paging metrics. Every label value is from a fixed set.
//!
//! - `sre_paging_pages_total{provider,action,outcome}`: page actions, `provider` ∈ pagerduty,
//!   opsgenie; `action` ∈ trigger, acknowledge, resolve, defer, drop; `outcome` ∈ success,
//!   rejected (the provider refused it for good: the fact is dead-lettered), unavailable (the
//!   provider is down or throttling past the retries: the fact waits and is applied again).
//! - `sre_paging_deferred_pages`: pages waiting for business hours. The targets keep it as they
//!   defer, fire and drop pages; after a restart the facts consumer seeds it from the ledger
//!   through [`PagingMetrics::observe_entry`] (deferred records not yet due are otherwise only
//!   seen when they fire).
//!
//! The provider circuits have their own metrics (`sre_circuit_state{provider="pagerduty"}`,
//! `sre_upstream_requests_total{provider="opsgenie",outcome}`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::facts::action::ActionError;
use crate::facts::entry::IncidentEntry;

/// Deferred pages tracked at most (beyond it the gauge stops growing and a warning says so).
pub const MAX_TRACKED_DEFERRED: usize = 100_000;

/// What a page action did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageAction {
    /// Opened (or re-sent) the page.
    Trigger,
    /// Acknowledged it.
    Acknowledge,
    /// Resolved (PagerDuty) / closed (OpsGenie) it.
    Resolve,
    /// Deferred it to business hours.
    Defer,
    /// Dropped a deferred page (the incident moved on first).
    Drop,
}

impl PageAction {
    /// The `action` label.
    pub fn label(self) -> &'static str {
        match self {
            PageAction::Trigger => "trigger",
            PageAction::Acknowledge => "acknowledge",
            PageAction::Resolve => "resolve",
            PageAction::Defer => "defer",
            PageAction::Drop => "drop",
        }
    }
}

/// `{provider,action,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PageLabels {
    provider: &'static str,
    action: &'static str,
    outcome: &'static str,
}

/// The paging metrics, shared by both targets. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct PagingMetrics {
    pages: Family<PageLabels, Counter>,
    deferred: Gauge,
    deferred_set: Arc<Mutex<HashSet<(&'static str, String)>>>,
}

impl PagingMetrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &mut Registry) -> Self {
        let m = PagingMetrics::default();
        registry.register(
            "sre_paging_pages",
            "Page actions by provider, action (trigger, acknowledge, resolve, defer, drop) and outcome (success, rejected, unavailable)",
            m.pages.clone(),
        );
        registry.register(
            "sre_paging_deferred_pages",
            "Pages waiting for business hours",
            m.deferred.clone(),
        );
        m
    }

    /// Counts one action's outcome.
    pub fn count(
        &self,
        provider: &'static str,
        action: PageAction,
        result: Result<(), &ActionError>,
    ) {
        let outcome = match result {
            Ok(()) => "success",
            Err(ActionError::Rejected { .. }) => "rejected",
            Err(ActionError::Unavailable { .. }) => "unavailable",
        };
        self.pages
            .get_or_create(&PageLabels {
                provider,
                action: action.label(),
                outcome,
            })
            .inc();
    }

    /// The count of one `{provider,action,outcome}` (for tests and the CLI).
    pub fn pages(
        &self,
        provider: &'static str,
        action: &'static str,
        outcome: &'static str,
    ) -> u64 {
        self.pages
            .get_or_create(&PageLabels {
                provider,
                action,
                outcome,
            })
            .get()
    }

    /// Pages deferred now.
    pub fn deferred(&self) -> i64 {
        self.deferred.get()
    }

    /// Notes whether `provider`'s page for `incident` is deferred now.
    pub fn set_deferred(&self, provider: &'static str, incident: &str, deferred: bool) {
        let mut set = self.deferred_set.lock().unwrap_or_else(|p| p.into_inner());
        if deferred {
            if set.len() >= MAX_TRACKED_DEFERRED {
                tracing::warn!(
                    max = MAX_TRACKED_DEFERRED,
                    "too many deferred pages to track; sre_paging_deferred_pages undercounts"
                );
            } else {
                set.insert((provider, incident.to_owned()));
            }
        } else {
            set.remove(&(provider, incident.to_owned()));
        }
        self.deferred.set(set.len() as i64);
    }

    /// Seeds the gauge from a ledger entry (call it for every entry the ledger rebuilds).
    pub fn observe_entry(&self, entry: &IncidentEntry) {
        for provider in ["pagerduty", "opsgenie"] {
            if let Some(record) = entry.target(provider) {
                let deferred = record.state == super::STATE_DEFERRED && record.due.is_some();
                self.set_deferred(provider, &entry.incident_id, deferred);
            }
        }
    }
}
