//! From API objects to what the watcher keeps: an [`Observation`] (uid, name, assessment) per
//! Pod or Deployment, a [`SliceInfo`] per EndpointSlice, a [`WarningEvent`] per Warning event,
//! and the [`NamespaceFilter`] that decides which namespaces count. Run inside the watch
//! streams, so only these small values reach the actor.

use k8s_openapi::api::apps::v1::Deployment;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::health::{self, Assessment};
use super::view::{EventView, PodView};

/// An object's current health.
#[derive(Clone, Debug)]
pub struct Observation {
    /// uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// resourceVersion.
    pub resource_version: String,
    /// Health.
    pub assessment: Assessment,
}

/// Who an object is: uid, namespace, name and resourceVersion (empty strings when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectId {
    /// uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// resourceVersion.
    pub resource_version: String,
}

/// The [`ObjectId`] in `m`.
pub fn identity(m: &ObjectMeta) -> ObjectId {
    ObjectId {
        uid: m.uid.clone().unwrap_or_default(),
        namespace: m.namespace.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
        resource_version: m.resource_version.clone().unwrap_or_default(),
    }
}

fn observation(m: &ObjectMeta, assessment: Assessment) -> Observation {
    let ObjectId {
        uid,
        namespace,
        name,
        resource_version,
    } = identity(m);
    Observation {
        uid,
        namespace,
        name,
        resource_version,
        assessment,
    }
}

impl Observation {
    /// A Pod's.
    pub fn pod(p: &PodView) -> Self {
        observation(&p.metadata, health::pod(p))
    }

    /// A Deployment's.
    pub fn deployment(d: &Deployment) -> Self {
        observation(&d.metadata, health::deployment(d))
    }
}

/// What the Service join keeps of an EndpointSlice.
#[derive(Clone, Debug)]
pub struct SliceInfo {
    /// Slice uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// The Service it belongs to (`kubernetes.io/service-name`).
    pub service: String,
    /// Endpoints whose `conditions.ready` is not false (unset means ready, per the API).
    pub ready: usize,
}

impl SliceInfo {
    /// A slice's, when it names its Service.
    pub fn of(s: &EndpointSlice) -> Option<Self> {
        let service = s
            .metadata
            .labels
            .as_ref()?
            .get("kubernetes.io/service-name")?
            .clone();
        let ready = s
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .count();
        Some(SliceInfo {
            uid: s.metadata.uid.clone().unwrap_or_default(),
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            service,
            ready,
        })
    }
}

/// A Warning event, with the fallbacks core/v1 and events.k8s.io/v1 need already applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarningEvent {
    /// The Event object's uid.
    pub uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Involved object kind.
    pub kind: String,
    /// Involved object namespace (the event's when the reference has none).
    pub object_namespace: String,
    /// Involved object name.
    pub name: String,
    /// Involved object uid.
    pub object_uid: String,
    /// Involved object apiVersion.
    pub api_version: String,
    /// Involved object field path.
    pub field_path: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// `count`, else `series.count`, else 1.
    pub count: u64,
    /// `firstTimestamp`, else `eventTime`, else `metadata.creationTimestamp` (RFC 3339).
    pub first_seen: String,
    /// `lastTimestamp`, else `series.lastObservedTime`, else `eventTime`, else `first_seen`.
    pub last_seen: String,
    /// Seconds since the epoch of `last_seen` (0 when unknown).
    pub last_seen_unix: i64,
    /// `source.component`, else `reportingComponent`.
    pub component: String,
}

impl WarningEvent {
    /// The Warning in `e`, or `None` for other types.
    pub fn of(e: &EventView) -> Option<Self> {
        if e.type_.as_deref() != Some("Warning") {
            return None;
        }
        let r = &e.involved_object;
        let namespace = e.metadata.namespace.clone().unwrap_or_default();
        let created = e
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string());
        let first = e
            .first_timestamp
            .clone()
            .or_else(|| e.event_time.clone())
            .or(created);
        let series = e.series.as_ref();
        let last = e
            .last_timestamp
            .clone()
            .or_else(|| series.and_then(|s| s.last_observed_time.clone()))
            .or_else(|| e.event_time.clone())
            .or_else(|| first.clone());
        let count = e.count.or(series.and_then(|s| s.count)).unwrap_or(1).max(1) as u64;
        let last_seen_unix = last
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp());
        Some(WarningEvent {
            uid: e.metadata.uid.clone().unwrap_or_default(),
            kind: r.kind.clone().unwrap_or_default(),
            object_namespace: r.namespace.clone().unwrap_or_else(|| namespace.clone()),
            namespace,
            name: r.name.clone().unwrap_or_default(),
            object_uid: r.uid.clone().unwrap_or_default(),
            api_version: r.api_version.clone().unwrap_or_default(),
            field_path: r.field_path.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count,
            first_seen: first.unwrap_or_default(),
            last_seen: last.unwrap_or_default(),
            last_seen_unix,
            component: e
                .source
                .as_ref()
                .and_then(|s| s.component.clone())
                .or_else(|| e.reporting_component.clone())
                .unwrap_or_default(),
        })
    }

    /// Whether it was last seen more than `max_age_secs` before `now_unix`.
    pub fn older_than(&self, now_unix: i64, max_age_secs: i64) -> bool {
        self.last_seen_unix != 0 && now_unix - self.last_seen_unix > max_age_secs
    }

    /// A minimal one, for tests.
    #[doc(hidden)]
    pub fn for_test(uid: &str, count: u64) -> Self {
        WarningEvent {
            uid: uid.into(),
            namespace: "ns".into(),
            kind: "Pod".into(),
            object_namespace: "ns".into(),
            name: "p".into(),
            object_uid: String::new(),
            api_version: "v1".into(),
            field_path: String::new(),
            reason: "BackOff".into(),
            message: "Back-off".into(),
            count,
            first_seen: String::new(),
            last_seen: String::new(),
            last_seen_unix: 0,
            component: String::new(),
        }
    }
}

/// Which namespaces are watched: globs where `*` matches any run of characters.
#[derive(Clone, Debug)]
pub struct NamespaceFilter {
    patterns: Vec<String>,
}

impl NamespaceFilter {
    /// From `watch.namespaces`.
    pub fn new(patterns: &[String]) -> Self {
        NamespaceFilter {
            patterns: patterns.to_vec(),
        }
    }

    /// Whether `namespace` is watched.
    pub fn matches(&self, namespace: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| glob(p.as_bytes(), namespace.as_bytes()))
    }

    /// The namespaces to watch one by one when every pattern is a plain name (so per-namespace
    /// Roles suffice); `None` when a pattern has a `*` and the watch must be cluster-wide.
    pub fn literal(&self) -> Option<Vec<String>> {
        if self.patterns.iter().any(|p| p.contains('*')) {
            return None;
        }
        let mut names = self.patterns.clone();
        names.sort();
        names.dedup();
        Some(names)
    }
}

/// `*` matches any run (also empty); everything else matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_globs() {
        let f = NamespaceFilter::new(&["ameide-*".into(), "argocd".into()]);
        for ns in ["ameide-core", "ameide-", "argocd"] {
            assert!(f.matches(ns), "{ns}");
        }
        for ns in ["ameide", "kube-system", "argocd-extra", "x-ameide-core"] {
            assert!(!f.matches(ns), "{ns}");
        }
        assert!(f.literal().is_none());
        assert!(NamespaceFilter::new(&["*".into()]).matches("anything"));
        assert!(NamespaceFilter::new(&["a*b*c".into()]).matches("a-b-b-c"));
        assert!(!NamespaceFilter::new(&["a*b*c".into()]).matches("a-b-b-d"));
        let lit = NamespaceFilter::new(&["b".into(), "a".into(), "b".into()]);
        assert_eq!(lit.literal(), Some(vec!["a".to_string(), "b".to_string()]));
    }

    #[test]
    fn warning_event_fallbacks() {
        // core/v1 with the legacy fields.
        let legacy: EventView = serde_json::from_value(json!({
            "metadata": {"name": "e", "namespace": "ns", "uid": "u1", "creationTimestamp": "2026-11-29T00:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": "api", "uid": "p1", "apiVersion": "v1", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "message": "Back-off restarting failed container", "type": "Warning",
            "count": 7, "firstTimestamp": "2026-11-29T00:01:00Z", "lastTimestamp": "2026-11-29T00:09:00Z",
            "source": {"component": "kubelet"}
        }))
        .unwrap();
        let w = WarningEvent::of(&legacy).unwrap();
        assert_eq!(
            (w.count, w.first_seen.as_str(), w.last_seen.as_str()),
            (7, "2026-11-29T00:01:00Z", "2026-11-29T00:09:00Z")
        );
        assert_eq!(
            (w.object_namespace.as_str(), w.component.as_str()),
            ("ns", "kubelet")
        );

        // events.k8s.io/v1 style, as core/v1 shows it: eventTime + series, no count/timestamps.
        let series: EventView = serde_json::from_value(json!({
            "metadata": {"name": "e2", "namespace": "ns", "uid": "u2", "creationTimestamp": "2026-11-29T00:00:00Z"},
            "involvedObject": {"kind": "Deployment", "name": "api", "namespace": "ns"},
            "reason": "FailedCreate", "message": "quota", "type": "Warning",
            "eventTime": "2026-11-29T00:02:00.000000Z", "series": {"count": 4, "lastObservedTime": "2026-11-29T00:05:00.000000Z"},
            "reportingComponent": "deployment-controller", "reportingInstance": "kcm"
        }))
        .unwrap();
        let w = WarningEvent::of(&series).unwrap();
        assert_eq!(w.count, 4);
        assert!(
            w.first_seen.starts_with("2026-11-29T00:02:00"),
            "{}",
            w.first_seen
        );
        assert!(
            w.last_seen.starts_with("2026-11-29T00:05:00"),
            "{}",
            w.last_seen
        );
        assert_eq!(w.component, "deployment-controller");
        assert!(w.older_than(w.last_seen_unix + 301, 300));
        assert!(!w.older_than(w.last_seen_unix + 299, 300));

        // Only the creation time.
        let bare: EventView = serde_json::from_value(json!({
            "metadata": {"name": "e3", "namespace": "ns", "uid": "u3", "creationTimestamp": "2026-11-29T00:00:00Z"},
            "involvedObject": {"kind": "Node", "name": "n1"}, "type": "Warning", "reason": "Rebooted"
        }))
        .unwrap();
        let w = WarningEvent::of(&bare).unwrap();
        assert_eq!((w.count, w.last_seen.as_str()), (1, "2026-11-29T00:00:00Z"));

        let normal: EventView = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "involvedObject": {}, "type": "Normal"}),
        )
        .unwrap();
        assert!(WarningEvent::of(&normal).is_none());
    }

    #[test]
    fn slices_count_ready_endpoints() {
        let s: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "api-x", "namespace": "ns", "uid": "s1", "labels": {"kubernetes.io/service-name": "api"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                          {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                          {"addresses": ["10.0.0.3"]}]
        }))
        .unwrap();
        let i = SliceInfo::of(&s).unwrap();
        assert_eq!((i.service.as_str(), i.ready), ("api", 2));
    }
}
