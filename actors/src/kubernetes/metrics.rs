//! Kubernetes metrics. `cluster` comes from configuration; `resource` is one of the watched
//! kinds (`pods`, `deployments`, `services`, `endpointslices`, `events`); the other labels are
//! small fixed sets:
//! - `sre_k8s_watch_events_total{cluster,resource,event}`: `listed` (in a full list), `applied`
//!   (added or modified: kube's watcher does not tell them apart), `deleted`, `error`.
//! - `sre_k8s_relists_total{cluster,resource,reason}`: full lists, by why: `initial`,
//!   `expired` (410 Gone), `error` (after another failure), `reconcile` (the periodic poll).
//! - `sre_k8s_objects{cluster,resource}`: objects remembered.
//! - `sre_k8s_last_sync_timestamp_seconds{cluster,resource}`: when the last full list completed
//!   or the last watch event arrived.
//! - `sre_k8s_health_transitions_total{cluster,kind,to}`: transitions emitted, by kind and new
//!   state.
//! - `sre_k8s_warning_events_total{cluster,decision}`: Warning events `published`, `duplicate`
//!   (already published), `too_old` (older than `event_max_age`), `coalesced` (a newer count
//!   of an event still owed replaced it), `dropped` (the oldest owed event, dropped because
//!   more than `MAX_OWED_WARNINGS` distinct events were owed).
//! - `sre_k8s_owed_transitions{cluster}`: health transitions observed and not yet accepted
//!   downstream (one per object at most: a newer state replaces an owed one).
//! - `sre_k8s_owed_warning_events{cluster}`: Warning events not yet accepted downstream.
//! - `sre_k8s_health_transitions_coalesced_total{cluster,kind}`: owed transitions superseded
//!   by a newer state of the same object before they were emitted.
//! - `sre_k8s_watch_items_queued{cluster}`: watch items handed to the watcher and not yet
//!   applied (bounded: the streams wait when the watcher falls behind).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What a watch stream saw (`event` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchEvent {
    /// An object in a full list.
    Listed,
    /// An object added or modified.
    Applied,
    /// An object deleted.
    Deleted,
    /// The stream failed.
    Error,
}

impl WatchEvent {
    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEvent::Listed => "listed",
            WatchEvent::Applied => "applied",
            WatchEvent::Deleted => "deleted",
            WatchEvent::Error => "error",
        }
    }
}

/// Why a stream lists again (`reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelistReason {
    /// The first list of the first generation.
    Initial,
    /// The first list of a later generation (the periodic poll).
    Reconcile,
    /// After a 410 Gone.
    Expired,
    /// After another failure.
    Error,
}

impl RelistReason {
    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RelistReason::Initial => "initial",
            RelistReason::Reconcile => "reconcile",
            RelistReason::Expired => "expired",
            RelistReason::Error => "error",
        }
    }
}

/// What became of a Warning event (`decision` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WarningDecision {
    /// Published.
    Published,
    /// Already published.
    Duplicate,
    /// Older than `event_max_age`.
    TooOld,
    /// Replaced by a newer count of the same event while owed.
    Coalesced,
    /// Dropped: the oldest owed event when too many distinct ones are owed.
    Dropped,
}

impl WarningDecision {
    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningDecision::Published => "published",
            WarningDecision::Duplicate => "duplicate",
            WarningDecision::TooOld => "too_old",
            WarningDecision::Coalesced => "coalesced",
            WarningDecision::Dropped => "dropped",
        }
    }
}

/// `{cluster,resource,event}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Cluster.
    pub cluster: String,
    /// Resource.
    pub resource: &'static str,
    /// Event type.
    pub event: &'static str,
}

/// `{cluster,resource,reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelistLabels {
    /// Cluster.
    pub cluster: String,
    /// Resource.
    pub resource: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// `{cluster,resource}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// Cluster.
    pub cluster: String,
    /// Resource.
    pub resource: &'static str,
}

/// `{cluster}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    /// Cluster.
    pub cluster: String,
}

/// `{cluster,kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Cluster.
    pub cluster: String,
    /// Kind.
    pub kind: &'static str,
}

/// `{cluster,kind,to}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// Cluster.
    pub cluster: String,
    /// Kind.
    pub kind: &'static str,
    /// New state.
    pub to: &'static str,
}

/// `{cluster,decision}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WarningLabels {
    /// Cluster.
    pub cluster: String,
    /// Decision.
    pub decision: &'static str,
}

/// The families.
#[derive(Clone, Debug, Default)]
pub struct KubeMetrics {
    pub(crate) events: Family<EventLabels, Counter>,
    pub(crate) relists: Family<RelistLabels, Counter>,
    pub(crate) objects: Family<ResourceLabels, Gauge>,
    pub(crate) last_sync: Family<ResourceLabels, Gauge>,
    pub(crate) transitions: Family<TransitionLabels, Counter>,
    pub(crate) warnings: Family<WarningLabels, Counter>,
    pub(crate) owed_transitions: Family<ClusterLabel, Gauge>,
    pub(crate) owed_warnings: Family<ClusterLabel, Gauge>,
    pub(crate) coalesced: Family<KindLabels, Counter>,
    pub(crate) queued: Family<ClusterLabel, Gauge>,
}

impl KubeMetrics {
    /// Creates and registers the families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = KubeMetrics::default();
        registry.register(
            "sre_k8s_watch_events",
            "Kubernetes watch events by resource and type",
            m.events.clone(),
        );
        registry.register(
            "sre_k8s_relists",
            "Full lists of a Kubernetes resource, by reason",
            m.relists.clone(),
        );
        registry.register(
            "sre_k8s_objects",
            "Kubernetes objects remembered per resource",
            m.objects.clone(),
        );
        registry.register(
            "sre_k8s_last_sync_timestamp_seconds",
            "When a Kubernetes resource was last in sync (list completed or watch event)",
            m.last_sync.clone(),
        );
        registry.register(
            "sre_k8s_health_transitions",
            "Kubernetes health transitions emitted, by kind and new state",
            m.transitions.clone(),
        );
        registry.register(
            "sre_k8s_warning_events",
            "Kubernetes Warning events by decision",
            m.warnings.clone(),
        );
        registry.register(
            "sre_k8s_owed_transitions",
            "Kubernetes health transitions observed and not yet accepted downstream",
            m.owed_transitions.clone(),
        );
        registry.register(
            "sre_k8s_owed_warning_events",
            "Kubernetes Warning events not yet accepted downstream",
            m.owed_warnings.clone(),
        );
        registry.register(
            "sre_k8s_health_transitions_coalesced",
            "Owed Kubernetes health transitions superseded by a newer state of the same object",
            m.coalesced.clone(),
        );
        registry.register(
            "sre_k8s_watch_items_queued",
            "Kubernetes watch items handed to the watcher and not yet applied",
            m.queued.clone(),
        );
        m
    }
}
