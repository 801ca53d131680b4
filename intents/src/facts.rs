//! The facts this program consumes (DESIGN §3.3a): the SRE domain's incident lifecycle on
//! `sre.domain.facts.v1`, keyed `incident:<incidentId>`, CloudEvents binary headers as for
//! intents. Unknown fields are tolerated; unknown `ce_type`s are reported as
//! [`FactError::UnknownType`] so the consumer can skip and count them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The fact types acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum FactType {
    /// An incident was opened.
    IncidentCreated,
    /// Someone took it.
    IncidentAcknowledged,
    /// It is fixed.
    IncidentResolved,
    /// It is closed (after review, or without resolution).
    IncidentClosed,
}

impl FactType {
    /// The `ce_type` and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FactType::IncidentCreated => "IncidentCreated",
            FactType::IncidentAcknowledged => "IncidentAcknowledged",
            FactType::IncidentResolved => "IncidentResolved",
            FactType::IncidentClosed => "IncidentClosed",
        }
    }

    /// Parses a `ce_type`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            FactType::IncidentCreated,
            FactType::IncidentAcknowledged,
            FactType::IncidentResolved,
            FactType::IncidentClosed,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// An incident's severity as the domain states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum FactSeverity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl FactSeverity {
    /// The wire name and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FactSeverity::Info => "info",
            FactSeverity::Low => "low",
            FactSeverity::Medium => "medium",
            FactSeverity::High => "high",
            FactSeverity::Critical => "critical",
        }
    }
}

/// A link the domain attached to an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Text.
    pub title: String,
    /// Target.
    pub url: String,
}

/// `IncidentCreated`'s own fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// One-line title.
    pub title: String,
    /// Severity.
    pub severity: FactSeverity,
    /// Longer text.
    #[serde(default)]
    pub summary: String,
    /// Owning service.
    #[serde(default)]
    pub service: Option<String>,
    /// Environment (`prod`).
    #[serde(default)]
    pub environment: Option<String>,
    /// Cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Fingerprints of the alerts behind it.
    #[serde(default)]
    pub alert_fingerprints: Vec<String>,
    /// Links (runbook, dashboard).
    #[serde(default)]
    pub links: Vec<Link>,
}

/// What a fact says beyond the common fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FactBody {
    /// `IncidentCreated`.
    IncidentCreated(Created),
    /// `IncidentAcknowledged`.
    IncidentAcknowledged {
        /// Who.
        #[serde(default, rename = "acknowledgedBy")]
        acknowledged_by: Option<String>,
    },
    /// `IncidentResolved`.
    IncidentResolved {
        /// Who.
        #[serde(default, rename = "resolvedBy")]
        resolved_by: Option<String>,
        /// How.
        #[serde(default)]
        resolution: Option<String>,
    },
    /// `IncidentClosed`.
    IncidentClosed {
        /// Who.
        #[serde(default, rename = "closedBy")]
        closed_by: Option<String>,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
}

impl FactBody {
    /// The fact's type.
    pub fn fact_type(&self) -> FactType {
        match self {
            FactBody::IncidentCreated(_) => FactType::IncidentCreated,
            FactBody::IncidentAcknowledged { .. } => FactType::IncidentAcknowledged,
            FactBody::IncidentResolved { .. } => FactType::IncidentResolved,
            FactBody::IncidentClosed { .. } => FactType::IncidentClosed,
        }
    }
}

/// One fact, parsed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// `ce_id`: unique per fact.
    pub ce_id: String,
    /// The incident.
    pub incident_id: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Increases with every change of the incident.
    pub revision: u64,
    /// `correlation_id` header when present (else the `ce_id`): carried on every call it causes.
    pub correlation_id: String,
    /// `traceparent` header when present.
    pub traceparent: Option<String>,
    /// The type-specific part.
    pub body: FactBody,
}

/// Why a record is not a fact this program acts on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FactError {
    /// `ce_type` names another kind of fact (skipped and counted, not dead-lettered).
    #[error("fact type {0:?} is not one this program acts on")]
    UnknownType(String),
    /// A required header is absent.
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    /// The value is not the JSON the type requires.
    #[error("value of {fact_type} does not parse: {reason}")]
    BadValue {
        /// The `ce_type`.
        fact_type: &'static str,
        /// serde's message, with the path.
        reason: String,
    },
    /// The key is not `incident:<incidentId>` of the value's incident.
    #[error("key {key:?} does not name incident {incident_id:?}")]
    KeyMismatch {
        /// The record key.
        key: String,
        /// The value's `incidentId`.
        incident_id: String,
    },
}

impl FactError {
    /// A short, bounded label for metrics and `dlq_reason` prefixes.
    pub fn label(&self) -> &'static str {
        match self {
            FactError::UnknownType(_) => "unknown_type",
            FactError::MissingHeader(_) => "missing_header",
            FactError::BadValue { .. } => "bad_value",
            FactError::KeyMismatch { .. } => "key_mismatch",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Common {
    incident_id: String,
    occurred_at: DateTime<Utc>,
    revision: u64,
}

impl Fact {
    /// Parses a record's key, headers (`(name, value)` pairs) and value.
    pub fn parse(
        key: Option<&str>,
        headers: &[(&str, &str)],
        value: &[u8],
    ) -> Result<Fact, FactError> {
        let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let ce_type = header("ce_type").ok_or(FactError::MissingHeader("ce_type"))?;
        let fact_type =
            FactType::parse(ce_type).ok_or_else(|| FactError::UnknownType(ce_type.to_owned()))?;
        let ce_id = header("ce_id").ok_or(FactError::MissingHeader("ce_id"))?;
        let bad = |e: serde_json::Error| FactError::BadValue {
            fact_type: fact_type.as_str(),
            reason: e.to_string(),
        };
        let common: Common = serde_json::from_slice(value).map_err(bad)?;
        if let Some(key) = key {
            if key.strip_prefix("incident:") != Some(common.incident_id.as_str()) {
                return Err(FactError::KeyMismatch {
                    key: key.to_owned(),
                    incident_id: common.incident_id,
                });
            }
        }
        let body = match fact_type {
            FactType::IncidentCreated => {
                FactBody::IncidentCreated(serde_json::from_slice(value).map_err(bad)?)
            }
            _ => {
                let mut object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(value).map_err(bad)?;
                object.insert("type".into(), fact_type.as_str().into());
                serde_json::from_value(serde_json::Value::Object(object)).map_err(bad)?
            }
        };
        Ok(Fact {
            ce_id: ce_id.to_owned(),
            incident_id: common.incident_id,
            occurred_at: common.occurred_at,
            revision: common.revision,
            correlation_id: header("correlation_id").unwrap_or(ce_id).to_owned(),
            traceparent: header("traceparent").map(str::to_owned),
            body,
        })
    }

    /// The fact's type.
    pub fn fact_type(&self) -> FactType {
        self.body.fact_type()
    }

    /// The `IncidentCreated` fields, when this is one.
    pub fn created(&self) -> Option<&Created> {
        match &self.body {
            FactBody::IncidentCreated(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(t: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![("ce_type", t), ("ce_id", "f-1"), ("correlation_id", "c-1")]
    }

    #[test]
    fn created_parses_with_unknown_fields() {
        let v = br#"{"incidentId":"inc-1","occurredAt":"2026-12-07T09:00:00Z","revision":1,
            "title":"Checkout down","severity":"critical","summary":"5xx","service":"checkout",
            "environment":"prod","cluster":"c1","namespace":"shop","labels":{"team":"pay"},
            "alertFingerprints":["abc"],"links":[{"title":"runbook","url":"https://r"}],"extra":true}"#;
        let f = Fact::parse(Some("incident:inc-1"), &headers("IncidentCreated"), v).unwrap();
        assert_eq!(f.incident_id, "inc-1");
        assert_eq!(f.revision, 1);
        assert_eq!(f.correlation_id, "c-1");
        let c = f.created().unwrap();
        assert_eq!(c.severity, FactSeverity::Critical);
        assert_eq!(c.links[0].url, "https://r");
    }

    #[test]
    fn lifecycle_facts_parse() {
        let v = br#"{"incidentId":"inc-1","occurredAt":"2026-12-07T09:00:00Z","revision":3,"resolvedBy":"ana","resolution":"rolled back"}"#;
        let f = Fact::parse(Some("incident:inc-1"), &headers("IncidentResolved"), v).unwrap();
        assert_eq!(
            f.body,
            FactBody::IncidentResolved {
                resolved_by: Some("ana".into()),
                resolution: Some("rolled back".into())
            }
        );
    }

    #[test]
    fn bad_records_say_why() {
        let v = br#"{"incidentId":"inc-1","occurredAt":"2026-12-07T09:00:00Z","revision":1}"#;
        assert_eq!(
            Fact::parse(None, &headers("SomethingElse"), v).unwrap_err(),
            FactError::UnknownType("SomethingElse".into())
        );
        assert_eq!(
            Fact::parse(None, &[("ce_type", "IncidentClosed")], v).unwrap_err(),
            FactError::MissingHeader("ce_id")
        );
        assert!(matches!(
            Fact::parse(Some("incident:other"), &headers("IncidentClosed"), v).unwrap_err(),
            FactError::KeyMismatch { .. }
        ));
        assert_eq!(
            Fact::parse(None, &headers("IncidentCreated"), v)
                .unwrap_err()
                .label(),
            "bad_value"
        );
        assert_eq!(
            Fact::parse(None, &headers("IncidentCreated"), b"not json")
                .unwrap_err()
                .label(),
            "bad_value"
        );
    }
}
