//! AlertManager's webhook payload, version 4, and its validation. Unknown fields — newer
//! AlertManagers add some (`notification_reason`, `routeLabels`, ...) — are ignored. Every
//! rejection names the field: `{"error": "...", "field": "alerts[0].startsAt"}`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The webhook body (`alertmanager/notify/webhook.Message`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Must be `"4"`.
    pub version: String,
    /// The notification's group key.
    #[serde(default)]
    pub group_key: String,
    /// Alerts dropped by `max_alerts` in AlertManager.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// The group's status.
    #[serde(default)]
    pub status: String,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// Labels the group is keyed by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert shares.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert shares.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// The AlertManager's URL.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339 (`0001-01-01T00:00:00Z` while firing).
    #[serde(default)]
    pub ends_at: String,
    /// Link to the rule's expression.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// 16 hex digits; computed from the labels when absent.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// A rejected payload: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PayloadError {
    /// JSON path of the offending field (`alerts[2].status`), or empty for the document.
    pub field: String,
    /// What is wrong and what was expected.
    pub reason: String,
}

impl PayloadError {
    fn at(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PayloadError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parses and validates a body.
pub fn parse(body: &[u8]) -> Result<WebhookPayload, PayloadError> {
    let payload: WebhookPayload = match serde_json::from_slice(body) {
        Ok(p) => p,
        // The fast path failed: parse again, tracking the path, to say where.
        Err(_) => {
            let de = &mut serde_json::Deserializer::from_slice(body);
            match serde_path_to_error::deserialize::<_, WebhookPayload>(de) {
                Ok(p) => p,
                Err(e) => {
                    let path = e.path().to_string();
                    let field = if path == "." { String::new() } else { path };
                    return Err(PayloadError::at(field, e.into_inner().to_string()));
                }
            }
        }
    };
    validate(&payload)?;
    Ok(payload)
}

fn validate(p: &WebhookPayload) -> Result<(), PayloadError> {
    if p.version != "4" {
        return Err(PayloadError::at(
            "version",
            format!(
                "unsupported payload version {:?}: expected \"4\"",
                p.version
            ),
        ));
    }
    for (i, a) in p.alerts.iter().enumerate() {
        if a.status != "firing" && a.status != "resolved" {
            return Err(PayloadError::at(
                format!("alerts[{i}].status"),
                format!("{:?}: expected \"firing\" or \"resolved\"", a.status),
            ));
        }
        if chrono::DateTime::parse_from_rfc3339(&a.starts_at).is_err() {
            return Err(PayloadError::at(
                format!("alerts[{i}].startsAt"),
                format!("{:?} is not an RFC 3339 time", a.starts_at),
            ));
        }
        if !a.ends_at.is_empty() && chrono::DateTime::parse_from_rfc3339(&a.ends_at).is_err() {
            return Err(PayloadError::at(
                format!("alerts[{i}].endsAt"),
                format!("{:?} is not an RFC 3339 time", a.ends_at),
            ));
        }
        if let Some(fp) = &a.fingerprint {
            if fp.len() != 16 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(PayloadError::at(
                    format!("alerts[{i}].fingerprint"),
                    format!("{fp:?}: expected 16 hexadecimal digits"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str =
        include_str!("../../tests/fixtures/alertmanager_webhook_v4_resolved_k8s.json");

    #[test]
    fn the_fixture_parses() {
        let p = parse(FIXTURE.as_bytes()).unwrap();
        assert_eq!(p.receiver, "web\\.hook");
        assert_eq!(p.alerts[0].fingerprint.as_deref(), Some("fbab788ec4c1018b"));
        assert!(p.alerts[0]
            .generator_url
            .starts_with("/metrics/viewer/graph?g0.expr=kube_deployment_spec_replicas"));
    }

    #[test]
    fn newer_fields_are_tolerated() {
        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        v["notification_reason"] = "repeat_interval".into();
        v["routeLabels"] = serde_json::json!({"team": "sre"});
        v["alerts"][0]["somethingNew"] = true.into();
        assert!(parse(v.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn rejections_name_the_field() {
        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        v["version"] = "3".into();
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err().field,
            "version"
        );

        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        v["alerts"][0]["labels"]["severity"] = 3.into();
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, "alerts[0].labels.severity", "{e}");

        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        v["alerts"][0]["startsAt"] = "yesterday".into();
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err().field,
            "alerts[0].startsAt"
        );

        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        v["alerts"][0].as_object_mut().unwrap().remove("labels");
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.reason.contains("missing field `labels`"), "{e}");

        let e = parse(b"{not json").unwrap_err();
        assert!(e.reason.contains("key must be a string"), "{e}");
    }
}
