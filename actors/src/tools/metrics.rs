//! The gateway's metrics.
//!
//! - `sre_tools_calls_total{tool,outcome}`: calls by tool (a registered tool's name, or
//!   `unknown`) and outcome (`done`, `approval_required`, or a `ToolError` label).
//! - `sre_tools_call_duration_seconds{tool}`: how long calls took through the gate (audit
//!   included).
//! - `sre_tools_approvals_pending`: approvals waiting for a decision (at most
//!   `tools.max_pending_approvals`).
//! - `sre_tools_approval_decisions_total{decision}`: `approved`, `denied`, `refused` (a
//!   decision attempt the store refused: not an approver, self-approval, not pending).
//! - `sre_tools_audit_failures_total`: audit records that could not be written (each failed
//!   its call).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{tool,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub tool: String,
    pub outcome: &'static str,
}

/// `{tool}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ToolLabel {
    pub tool: String,
}

/// `{decision}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DecisionLabel {
    pub decision: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The families (cheap to clone).
#[derive(Clone)]
pub struct ToolMetrics {
    pub(crate) calls: Family<CallLabels, Counter>,
    pub(crate) duration: Family<ToolLabel, Histogram, fn() -> Histogram>,
    pub(crate) pending: Gauge,
    pub(crate) decisions: Family<DecisionLabel, Counter>,
    pub(crate) audit_failures: Counter,
}

impl ToolMetrics {
    /// Creates and registers the families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = ToolMetrics {
            calls: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            pending: Gauge::default(),
            decisions: Family::default(),
            audit_failures: Counter::default(),
        };
        registry.register(
            "sre_tools_calls",
            "Tool calls through the gate, by tool and outcome",
            m.calls.clone(),
        );
        registry.register(
            "sre_tools_call_duration_seconds",
            "Time of a tool call through the gate, audit included",
            m.duration.clone(),
        );
        registry.register(
            "sre_tools_approvals_pending",
            "Write approvals waiting for a decision (at most tools.max_pending_approvals)",
            m.pending.clone(),
        );
        registry.register(
            "sre_tools_approval_decisions",
            "Approval decisions: approved, denied, refused",
            m.decisions.clone(),
        );
        registry.register(
            "sre_tools_audit_failures",
            "Audit records that could not be written (each failed its call)",
            m.audit_failures.clone(),
        );
        m
    }

    /// Metrics registered nowhere (tests, embedders without a registry).
    pub fn unregistered() -> Self {
        ToolMetrics::new(&mut Registry::default())
    }
}
