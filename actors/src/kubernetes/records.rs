//! Intent records of the Kubernetes integration (payloads in `sre_intents::kubernetes`):
//! `RecordHealthCheckRequested` from a [`Transition`], `IngestAlertRequested` from a
//! [`WarningEvent`].

use std::collections::BTreeMap;

use sre_intents::kubernetes::{
    InvolvedObject, KubernetesWarning, ObjectHealth, ObjectHealthCheck, ObjectRef,
    WarningAnnotations,
};
use sre_intents::record::RecordMeta;
use sre_intents::{IntentRecord, IntentType};

use super::observe::WarningEvent;
use super::tracker::Transition;
use crate::ingest::fingerprint::fingerprint_hex;

/// What every record of one cluster shares.
#[derive(Clone, Debug)]
pub struct Context {
    /// Cluster name.
    pub cluster: String,
    /// Intent topic.
    pub topic: String,
    /// `ce_source`.
    pub source: String,
}

/// The idempotency key of a health transition.
pub fn health_key(cluster: &str, t: &Transition) -> String {
    format!(
        "k8s:{cluster}:{}:{}:{}",
        t.uid,
        t.current.state.as_str(),
        t.episode
    )
}

/// The idempotency key of a Warning event.
pub fn event_key(cluster: &str, w: &WarningEvent) -> String {
    format!("k8sevent:{cluster}:{}:{}", w.uid, w.count)
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// What every record of one emitted batch shares.
#[derive(Clone, Copy, Debug)]
pub struct Stamp<'a> {
    /// When the batch was built (RFC 3339).
    pub at: &'a str,
    /// Ties the batch's intents together.
    pub correlation_id: &'a str,
    /// The W3C trace context of the batch's span, when one is recorded.
    pub traceparent: Option<&'a str>,
}

/// `RecordHealthCheckRequested` for `t`.
pub fn health(
    ctx: &Context,
    t: &Transition,
    stamp: &Stamp,
) -> Result<IntentRecord, serde_json::Error> {
    let Stamp {
        at,
        correlation_id,
        traceparent,
    } = *stamp;
    let payload = ObjectHealthCheck {
        source: "kubernetes",
        cluster: &ctx.cluster,
        subject: ObjectRef {
            kind: t.kind.as_str(),
            namespace: &t.namespace,
            name: &t.name,
            uid: &t.uid,
        },
        previous: t.previous.as_ref().map(|p| ObjectHealth {
            state: p.state.as_str(),
            reason: non_empty(&p.reason),
            message: non_empty(&p.message),
        }),
        current: ObjectHealth {
            state: t.current.state.as_str(),
            reason: non_empty(&t.current.reason),
            message: non_empty(&t.current.message),
        },
        reason: t.reason.as_str(),
        observed_at: at,
    };
    IntentRecord::new(
        RecordMeta {
            topic: &ctx.topic,
            kind: IntentType::RecordHealthCheckRequested,
            source: &ctx.source,
            key: format!(
                "health:{}/{}/{}/{}",
                ctx.cluster,
                t.namespace,
                t.kind.as_str(),
                t.name
            ),
            idempotency_key: health_key(&ctx.cluster, t),
            correlation_id,
            traceparent,
            time: at,
        },
        &payload,
    )
}

/// `IngestAlertRequested` for `w`.
pub fn warning(
    ctx: &Context,
    w: &WarningEvent,
    stamp: &Stamp,
) -> Result<IntentRecord, serde_json::Error> {
    let Stamp {
        at,
        correlation_id,
        traceparent,
    } = *stamp;
    let labels: BTreeMap<&str, &str> = [
        ("alertname", w.reason.as_str()),
        ("cluster", ctx.cluster.as_str()),
        ("kind", w.kind.as_str()),
        ("name", w.name.as_str()),
        ("namespace", w.object_namespace.as_str()),
        ("reason", w.reason.as_str()),
    ]
    .into_iter()
    .collect();
    let summary = format!("{} {}/{}: {}", w.kind, w.object_namespace, w.name, w.reason);
    let fingerprint = fingerprint_hex(&labels);
    let payload = KubernetesWarning {
        source: "kubernetes",
        cluster: &ctx.cluster,
        fingerprint: &fingerprint,
        status: "firing",
        severity: "medium",
        alertname: &w.reason,
        labels: &labels,
        annotations: WarningAnnotations {
            summary: &summary,
            description: &w.message,
        },
        involved_object: InvolvedObject {
            kind: &w.kind,
            namespace: &w.object_namespace,
            name: &w.name,
            uid: &w.object_uid,
            api_version: &w.api_version,
            field_path: &w.field_path,
        },
        reason: &w.reason,
        message: &w.message,
        count: w.count,
        starts_at: &w.first_seen,
        first_seen: &w.first_seen,
        last_seen: &w.last_seen,
        event_uid: &w.uid,
        component: &w.component,
        received_at: at,
    };
    IntentRecord::new(
        RecordMeta {
            topic: &ctx.topic,
            kind: IntentType::IngestAlertRequested,
            source: &ctx.source,
            key: format!("alert:{fingerprint}"),
            idempotency_key: event_key(&ctx.cluster, w),
            correlation_id,
            traceparent,
            time: at,
        },
        &payload,
    )
}
