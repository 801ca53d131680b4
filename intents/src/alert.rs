//! Payloads of the alert intents. Field names follow AlertManager's where they come from it
//! (`startsAt`, `generatorURL`, `groupKey`, ...), so the domain reads one vocabulary.
//!
//! `IngestAlertRequested` (key `alert:<fingerprint>`, idempotency key
//! `am:<fingerprint>:<status>:<startsAt>`):
//!
//! ```json
//! {"source":"alertmanager","fingerprint":"fbab788ec4c1018b","status":"resolved",
//!  "severity":"medium","alertname":"Deployment",
//!  "labels":{"alertname":"Deployment","severity":"Warning"},
//!  "annotations":{"summary":"Kubernetes Deployment Replicas Mismatch"},
//!  "startsAt":"2022-07-29T11:13:27.3Z","endsAt":"2022-07-29T11:17:27.3Z",
//!  "generatorURL":"/metrics/viewer/graph?g0.expr=...","receiver":"web\\.hook",
//!  "groupKey":"{}:{alertname=\"Deployment\"}","externalURL":"http://localhost:9093",
//!  "receivedAt":"2026-11-28T22:00:00.000Z"}
//! ```
//!
//! `CreateIncidentRequested` (key `alert:<fingerprint>`, idempotency key
//! `am-incident:<fingerprint>:<startsAt>`: one incident request per firing episode):
//!
//! ```json
//! {"source":"alertmanager","fingerprint":"...","severity":"critical","title":"KubePodCrashLooping: ...",
//!  "labels":{...},"annotations":{...},"startsAt":"...","generatorURL":"...",
//!  "alertIdempotencyKey":"am:...:firing:...","receivedAt":"..."}
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

/// `IngestAlertRequested`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestAlertRequested<'a> {
    /// `alertmanager` or `kubernetes`.
    pub source: &'a str,
    /// The alert's fingerprint (16 hex digits).
    pub fingerprint: &'a str,
    /// `firing` or `resolved`.
    pub status: &'a str,
    /// Normalised severity (`critical`, `high`, `medium`, `low`, `info`).
    pub severity: &'a str,
    /// The `alertname` label, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertname: Option<&'a str>,
    /// Every label.
    pub labels: &'a BTreeMap<String, String>,
    /// Every annotation.
    pub annotations: &'a BTreeMap<String, String>,
    /// When the alert started.
    pub starts_at: &'a str,
    /// When it ended (or the zero time while firing).
    pub ends_at: &'a str,
    /// Link to the expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    /// The AlertManager receiver.
    pub receiver: &'a str,
    /// The AlertManager group key.
    pub group_key: &'a str,
    /// The AlertManager's external URL.
    #[serde(rename = "externalURL")]
    pub external_url: &'a str,
    /// When this program received it.
    pub received_at: &'a str,
}

/// `CreateIncidentRequested`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIncidentRequested<'a> {
    /// Where the alert came from.
    pub source: &'a str,
    /// The alert's fingerprint.
    pub fingerprint: &'a str,
    /// Normalised severity.
    pub severity: &'a str,
    /// `alertname: summary`, or what of it exists.
    pub title: String,
    /// Every label.
    pub labels: &'a BTreeMap<String, String>,
    /// Every annotation.
    pub annotations: &'a BTreeMap<String, String>,
    /// When the alert started.
    pub starts_at: &'a str,
    /// Link to the expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    /// Idempotency key of the `IngestAlertRequested` this comes with.
    pub alert_idempotency_key: &'a str,
    /// When this program received it.
    pub received_at: &'a str,
}
