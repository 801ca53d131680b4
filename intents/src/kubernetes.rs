//! Payloads of the Kubernetes intents.
//!
//! `RecordHealthCheckRequested` (key `health:<cluster>/<namespace>/<kind>/<name>`, idempotency
//! key `k8s:<cluster>:<uid>:<state>:<episode>`, where the episode marker is stable for as long
//! as the object stays in that state — see the README's health table — so a restart may re-send
//! the same fact but never makes a new one):
//!
//! ```json
//! {"source":"kubernetes","cluster":"dev",
//!  "subject":{"kind":"Pod","namespace":"ameide-core","name":"api-7d9f","uid":"5f0c..."},
//!  "previous":{"state":"Healthy","reason":"Ready"},
//!  "current":{"state":"Failing","reason":"CrashLoopBackOff","message":"back-off 5m0s restarting failed container=app"},
//!  "reason":"changed","observedAt":"2026-11-29T01:00:00.000Z"}
//! ```
//! `reason` is `baseline` (in the watcher's first full list), `created` (appeared later),
//! `changed` or `deleted`.
//!
//! `IngestAlertRequested` from a Warning event (key `alert:<fingerprint>`, the fingerprint
//! computed as Prometheus does over the `labels`, so repeats of one reason on one object order
//! together; idempotency key `k8sevent:<cluster>:<event uid>:<count>`):
//!
//! ```json
//! {"source":"kubernetes","cluster":"dev","fingerprint":"3c5d0e8f1a2b4c6d","status":"firing",
//!  "severity":"medium","alertname":"BackOff",
//!  "labels":{"alertname":"BackOff","cluster":"dev","kind":"Pod","name":"api-7d9f","namespace":"ameide-core","reason":"BackOff"},
//!  "annotations":{"summary":"Pod ameide-core/api-7d9f: BackOff","description":"Back-off restarting failed container"},
//!  "involvedObject":{"kind":"Pod","namespace":"ameide-core","name":"api-7d9f","uid":"5f0c...","apiVersion":"v1","fieldPath":"spec.containers{app}"},
//!  "reason":"BackOff","message":"Back-off restarting failed container","count":7,
//!  "startsAt":"2026-11-29T00:50:00Z","firstSeen":"2026-11-29T00:50:00Z","lastSeen":"2026-11-29T00:59:30Z",
//!  "eventUid":"a1b2...","component":"kubelet","receivedAt":"2026-11-29T01:00:00.000Z"}
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

/// The object a health check is about.
#[derive(Debug, Serialize)]
pub struct ObjectRef<'a> {
    /// `Pod`, `Deployment`, `Service`.
    pub kind: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// UID.
    pub uid: &'a str,
}

/// One health state.
#[derive(Debug, Serialize)]
pub struct ObjectHealth<'a> {
    /// `Healthy`, `Pending`, `Progressing`, `Degraded`, `Failing`, `Failed`, `Succeeded`, `Deleted`.
    pub state: &'a str,
    /// Why, in Kubernetes' words (`CrashLoopBackOff`, `ProgressDeadlineExceeded`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Kubernetes' message, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

/// `RecordHealthCheckRequested` for a Kubernetes object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectHealthCheck<'a> {
    /// Always `kubernetes`.
    pub source: &'a str,
    /// The configured cluster name.
    pub cluster: &'a str,
    /// The object.
    pub subject: ObjectRef<'a>,
    /// The state reported before, if any.
    pub previous: Option<ObjectHealth<'a>>,
    /// The state now.
    pub current: ObjectHealth<'a>,
    /// `baseline`, `created`, `changed` or `deleted`.
    pub reason: &'a str,
    /// When this program observed it.
    pub observed_at: &'a str,
}

/// The object a Warning event is about.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject<'a> {
    /// Kind.
    pub kind: &'a str,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// UID, when the event names it.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub uid: &'a str,
    /// API version, when the event names it.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub api_version: &'a str,
    /// Field path (`spec.containers{app}`), when the event names it.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub field_path: &'a str,
}

/// The annotations of a Warning alert.
#[derive(Debug, Serialize)]
pub struct WarningAnnotations<'a> {
    /// `<kind> <namespace>/<name>: <reason>`.
    pub summary: &'a str,
    /// The event's message.
    pub description: &'a str,
}

/// `IngestAlertRequested` from a Kubernetes Warning event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesWarning<'a> {
    /// Always `kubernetes`.
    pub source: &'a str,
    /// The configured cluster name.
    pub cluster: &'a str,
    /// Prometheus-style fingerprint of `labels`.
    pub fingerprint: &'a str,
    /// Always `firing` (Kubernetes does not resolve events).
    pub status: &'a str,
    /// Normalised severity of a Warning.
    pub severity: &'a str,
    /// The event's reason.
    pub alertname: &'a str,
    /// cluster, namespace, kind, name, reason, alertname.
    pub labels: &'a BTreeMap<&'a str, &'a str>,
    /// summary and description.
    pub annotations: WarningAnnotations<'a>,
    /// The object.
    pub involved_object: InvolvedObject<'a>,
    /// The event's reason.
    pub reason: &'a str,
    /// The event's message.
    pub message: &'a str,
    /// How many times it happened (`count`, or `series.count`, or 1).
    pub count: u64,
    /// = `firstSeen`, in AlertManager's vocabulary.
    pub starts_at: &'a str,
    /// `firstTimestamp`, else `eventTime`, else the creation time.
    pub first_seen: &'a str,
    /// `lastTimestamp`, else `series.lastObservedTime`, else `eventTime`, else `firstSeen`.
    pub last_seen: &'a str,
    /// The Event object's uid.
    pub event_uid: &'a str,
    /// `source.component`, else `reportingComponent`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub component: &'a str,
    /// When this program received it.
    pub received_at: &'a str,
}
