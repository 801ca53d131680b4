//! Metrics of the ticket and annotation targets. Every label has a fixed set of values.
//!
//! - `sre_tickets_operations_total{provider,action,outcome}`: provider ∈ `jira`, `github`;
//!   action ∈ `create` (a ticket opened), `found` (an existing ticket found by its label
//!   instead), `comment`, `transition` (Jira), `label` (GitHub), `close` (GitHub), `skip` (a
//!   fact that means nothing for this target: routed elsewhere, finished incident);
//!   outcome ∈ `success`, `unavailable` (the consumer waits and retries), `rejected`
//!   (dead-lettered).
//! - `sre_annotations_operations_total{action,outcome}`: action ∈ `create`, `found`, `end`,
//!   `update`, `skip`; outcome as above.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::facts::action::ActionError;

/// `{provider,action,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TicketLabels {
    /// `jira` or `github`.
    pub provider: &'static str,
    /// What was done.
    pub action: &'static str,
    /// How it went.
    pub outcome: &'static str,
}

/// `{action,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnnotationLabels {
    /// What was done.
    pub action: &'static str,
    /// How it went.
    pub outcome: &'static str,
}

/// The families. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TicketMetrics {
    tickets: Family<TicketLabels, Counter>,
    annotations: Family<AnnotationLabels, Counter>,
}

/// The `outcome` label of a result.
pub fn outcome<T>(r: &Result<T, ActionError>) -> &'static str {
    match r {
        Ok(_) => "success",
        Err(ActionError::Unavailable { .. }) => "unavailable",
        Err(ActionError::Rejected { .. }) => "rejected",
    }
}

impl TicketMetrics {
    /// Registers both families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = TicketMetrics::default();
        registry.register(
            "sre_tickets_operations",
            "Ticket operations by provider, action and outcome",
            m.tickets.clone(),
        );
        registry.register(
            "sre_annotations_operations",
            "Grafana incident annotation operations by action and outcome",
            m.annotations.clone(),
        );
        m
    }

    /// Counts one ticket operation.
    pub fn ticket(&self, provider: &'static str, action: &'static str, outcome: &'static str) {
        self.tickets
            .get_or_create(&TicketLabels {
                provider,
                action,
                outcome,
            })
            .inc();
    }

    /// Counts one annotation operation.
    pub fn annotation(&self, action: &'static str, outcome: &'static str) {
        self.annotations
            .get_or_create(&AnnotationLabels { action, outcome })
            .inc();
    }

    /// The count of a ticket operation (for tests and the status page).
    pub fn ticket_count(
        &self,
        provider: &'static str,
        action: &'static str,
        outcome: &'static str,
    ) -> u64 {
        self.tickets
            .get_or_create(&TicketLabels {
                provider,
                action,
                outcome,
            })
            .get()
    }

    /// The count of an annotation operation.
    pub fn annotation_count(&self, action: &'static str, outcome: &'static str) -> u64 {
        self.annotations
            .get_or_create(&AnnotationLabels { action, outcome })
            .get()
    }
}
