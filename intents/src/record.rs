//! The record: key, headers, value. Serialized the same way into Kafka (headers as Kafka
//! headers) and into the embedded log (one JSON object per line).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Namespace of the UUIDv5 `ce_id`s (a fixed random UUID, never to change).
const CE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1f_8a4e_52b1_4c3e_9d0a_7b7e_2c5d_1a90);

/// The intent types this program emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntentType {
    /// An alert arrived (AlertManager, Kubernetes warning event).
    IngestAlertRequested,
    /// An alert qualifies for an incident.
    CreateIncidentRequested,
    /// A health state changed (Kubernetes, ArgoCD).
    RecordHealthCheckRequested,
    /// An ArgoCD fleet poll.
    RecordFleetStateRequested,
    /// A scheduled SLI window.
    #[serde(rename = "RecordSLIWindowRequested")]
    RecordSliWindowRequested,
}

impl IntentType {
    /// The `ce_type` and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentType::IngestAlertRequested => "IngestAlertRequested",
            IntentType::CreateIncidentRequested => "CreateIncidentRequested",
            IntentType::RecordHealthCheckRequested => "RecordHealthCheckRequested",
            IntentType::RecordFleetStateRequested => "RecordFleetStateRequested",
            IntentType::RecordSliWindowRequested => "RecordSLIWindowRequested",
        }
    }

    /// Parses a `ce_type`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            IntentType::IngestAlertRequested,
            IntentType::CreateIncidentRequested,
            IntentType::RecordHealthCheckRequested,
            IntentType::RecordFleetStateRequested,
            IntentType::RecordSliWindowRequested,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// The deterministic CloudEvents id of an idempotency key.
pub fn ce_id(idempotency_key: &str) -> String {
    uuid::Uuid::new_v5(&CE_ID_NAMESPACE, idempotency_key.as_bytes()).to_string()
}

/// One header (Kafka headers are ordered byte pairs; ours are text). Names are mostly the
/// fixed CloudEvents ones, so they are borrowed statics rather than allocated per record.
pub type Header = (Cow<'static, str>, String);

/// One intent, ready for any sink.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntentRecord {
    /// Topic (`sre.domain.intents.v1`).
    pub topic: String,
    /// Partition key: the subject the domain orders by (`alert:<fingerprint>`).
    pub key: String,
    /// CloudEvents binary-mode headers plus `idempotency_key`, `correlation_id`, `traceparent`.
    pub headers: Vec<Header>,
    /// The JSON payload.
    pub value: Box<serde_json::value::RawValue>,
}

/// What a record is made from.
#[derive(Clone, Debug)]
pub struct RecordMeta<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Intent type.
    pub kind: IntentType,
    /// `ce_source`: which integration and instance.
    pub source: &'a str,
    /// Key (= `ce_subject`).
    pub key: String,
    /// Idempotency key (→ `ce_id`).
    pub idempotency_key: String,
    /// Correlation id of whatever caused it.
    pub correlation_id: &'a str,
    /// W3C trace context, when a trace is active.
    pub traceparent: Option<&'a str>,
    /// `ce_time`, RFC 3339.
    pub time: &'a str,
}

impl IntentRecord {
    /// Builds the record: headers from `meta`, value from `payload`.
    pub fn new<T: Serialize>(meta: RecordMeta<'_>, payload: &T) -> Result<Self, serde_json::Error> {
        let value = serde_json::value::to_raw_value(payload)?;
        let mut headers = Vec::with_capacity(10);
        headers.push((Cow::Borrowed("ce_specversion"), "1.0".to_owned()));
        headers.push((Cow::Borrowed("ce_id"), ce_id(&meta.idempotency_key)));
        headers.push((Cow::Borrowed("ce_type"), meta.kind.as_str().to_owned()));
        headers.push((Cow::Borrowed("ce_source"), meta.source.to_owned()));
        headers.push((Cow::Borrowed("ce_time"), meta.time.to_owned()));
        headers.push((Cow::Borrowed("ce_subject"), meta.key.clone()));
        headers.push((Cow::Borrowed("content-type"), "application/json".to_owned()));
        headers.push((Cow::Borrowed("idempotency_key"), meta.idempotency_key));
        headers.push((
            Cow::Borrowed("correlation_id"),
            meta.correlation_id.to_owned(),
        ));
        if let Some(tp) = meta.traceparent {
            headers.push((Cow::Borrowed("traceparent"), tp.to_owned()));
        }
        Ok(IntentRecord {
            topic: meta.topic.to_owned(),
            key: meta.key,
            headers,
            value,
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The intent type, from `ce_type`.
    pub fn kind(&self) -> Option<IntentType> {
        self.header("ce_type").and_then(IntentType::parse)
    }

    /// The idempotency key.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency_key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ce_id_is_deterministic_and_distinct() {
        assert_eq!(ce_id("am:abc:firing:t"), ce_id("am:abc:firing:t"));
        assert_ne!(ce_id("am:abc:firing:t"), ce_id("am:abc:resolved:t"));
        assert_eq!(
            uuid::Uuid::parse_str(&ce_id("x"))
                .unwrap()
                .get_version_num(),
            5
        );
    }

    #[test]
    fn record_carries_the_cloudevents_headers() {
        let r = IntentRecord::new(
            RecordMeta {
                topic: "sre.domain.intents.v1",
                kind: IntentType::IngestAlertRequested,
                source: "sre-integration/alertmanager",
                key: "alert:fbab788ec4c1018b".into(),
                idempotency_key: "am:fbab788ec4c1018b:resolved:2022-07-29T11:13:27.3Z".into(),
                correlation_id: "c-1",
                traceparent: None,
                time: "2026-01-01T00:00:00Z",
            },
            &serde_json::json!({"a": 1}),
        )
        .unwrap();
        assert_eq!(r.header("ce_subject"), Some("alert:fbab788ec4c1018b"));
        assert_eq!(r.header("ce_type"), Some("IngestAlertRequested"));
        assert_eq!(r.kind(), Some(IntentType::IngestAlertRequested));
        assert_eq!(
            r.header("ce_id").unwrap(),
            ce_id("am:fbab788ec4c1018b:resolved:2022-07-29T11:13:27.3Z")
        );
        assert_eq!(r.header("traceparent"), None);
        assert_eq!(r.value.get(), r#"{"a":1}"#);
    }
}
