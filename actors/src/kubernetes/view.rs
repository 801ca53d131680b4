//! Slim views of the two high-volume watched kinds, Pods and Events: only the fields the
//! health model and the Warning translation read are decoded, everything else (spec,
//! managedFields, annotations, ...) is skipped without being built. A Pod watch event is
//! mostly spec and metadata the watcher never reads, so decoding the view instead of the full
//! `k8s_openapi` object is what lets one core translate well over 100k events/s (the
//! benchmark's target 5). Both views are kube `Resource`s with the real kinds' URLs, so
//! kube's `Api` and `watcher` use them as they are.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaView {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    creation_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Decodes the identity fields of `metadata` only.
fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<MetaView>::deserialize(d)?;
    Ok(m.map(|m| ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        ..ObjectMeta::default()
    })
    .unwrap_or_default())
}

macro_rules! resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                "".into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn api_version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A Pod as the health model reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodView {
    /// name, namespace, uid, resourceVersion, creationTimestamp.
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    /// The status.
    #[serde(default)]
    pub status: Option<PodStatusView>,
}
resource!(PodView, "Pod", "pods");

/// `status` of a Pod.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusView {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: Option<String>,
    /// Why the pod is in this phase (`Evicted`).
    pub reason: Option<String>,
    /// Details.
    pub message: Option<String>,
    /// Conditions.
    pub conditions: Option<Vec<ConditionView>>,
    /// Regular containers.
    pub container_statuses: Option<Vec<ContainerStatusView>>,
    /// Init containers.
    pub init_container_statuses: Option<Vec<ContainerStatusView>>,
}

/// A condition.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// `Ready`, `PodScheduled`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    pub reason: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
    /// When the status last changed (RFC 3339, as the API wrote it).
    pub last_transition_time: Option<String>,
}

/// A container's status.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatusView {
    /// Whether it passes its readiness probe.
    #[serde(default)]
    pub ready: bool,
    /// Restarts so far.
    #[serde(default)]
    pub restart_count: i32,
    /// Now.
    pub state: Option<ContainerStateView>,
    /// Its previous termination.
    pub last_state: Option<ContainerStateView>,
}

/// A container state (only one of the fields is set).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainerStateView {
    /// Waiting, and why.
    pub waiting: Option<ReasonView>,
    /// Terminated, and why.
    pub terminated: Option<TerminatedView>,
}

/// A reason and a message.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReasonView {
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// A termination.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminatedView {
    /// Exit code.
    #[serde(default)]
    pub exit_code: i32,
    /// Reason (`OOMKilled`, `Error`, `Completed`).
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// A core/v1 Event as the Warning translation reads it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// name, namespace, uid, resourceVersion, creationTimestamp.
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// The object it is about.
    #[serde(default)]
    pub involved_object: ObjectRefView,
    /// Occurrences (legacy field).
    pub count: Option<i32>,
    /// First occurrence (legacy field).
    pub first_timestamp: Option<String>,
    /// Last occurrence (legacy field).
    pub last_timestamp: Option<String>,
    /// When it was first observed (events.k8s.io/v1 field, MicroTime).
    pub event_time: Option<String>,
    /// Repeats (events.k8s.io/v1 field).
    pub series: Option<SeriesView>,
    /// Who reported it (legacy field).
    pub source: Option<SourceView>,
    /// Who reported it (events.k8s.io/v1 field).
    pub reporting_component: Option<String>,
}
resource!(EventView, "Event", "events");

/// `involvedObject`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRefView {
    /// Kind.
    pub kind: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// UID.
    pub uid: Option<String>,
    /// API version.
    pub api_version: Option<String>,
    /// Field path.
    pub field_path: Option<String>,
}

/// `series`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesView {
    /// Occurrences.
    pub count: Option<i32>,
    /// Last occurrence (MicroTime).
    pub last_observed_time: Option<String>,
}

/// `source`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SourceView {
    /// Component.
    pub component: Option<String>,
}
