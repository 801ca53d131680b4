//! PagerDuty Events API v2: `POST <events_url>/v2/enqueue` with the route's routing key.
//!
//! - trigger: `dedup_key` = the incident id (a trigger for an open incident with the same key
//!   opens nothing new), `payload.summary` = the title (at most 1024 characters, cut on a
//!   character boundary), `payload.source` = cluster/namespace (else the service, else
//!   `sre-integration`), `payload.severity` mapped (critical→critical, high→error,
//!   medium→warning, low/info→info), `payload.timestamp`, `component` = service, `group` =
//!   environment, `class` = the `alertname` label when there is one, `custom_details` with the
//!   incident's fields, labels and links, and `links`;
//! - acknowledge / resolve: `event_action` with the same `dedup_key`.
//!
//! `202 {"status":"success","message":"Event processed","dedup_key":…}` is success; `400` with
//! `errors` is a refusal for good ([`ActionError::Rejected`] with PagerDuty's messages); `429`
//! (PagerDuty limits events per routing key), 5xx, timeouts and transport failures are retried
//! by the shared client and, once it gives up, make the action
//! [`ActionError::Unavailable`]. The routing key is a [`SecretString`]: it never prints, and is
//! scrubbed from any text PagerDuty sends back.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sre_config::{PageProvider, PagerDutyConfig, SecretRef, SecretStore, SecretString};
use sre_intents::facts::{Created, FactSeverity};
use url::Url;

use super::metrics::PageAction;
use super::{client_error, scrub, truncate, upstream_error, PageCall, Pager, PagingError};
use crate::facts::action::ActionError;
use crate::providers::UpstreamClient;

const TARGET: &str = "pagerduty";
/// Longest `payload.summary` PagerDuty takes.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// Links sent at most.
const MAX_LINKS: usize = 20;
/// Labels copied into `custom_details` at most.
const MAX_LABELS: usize = 100;
/// Characters kept of a label value or of the incident's longer summary.
const MAX_VALUE_CHARS: usize = 1024;
const MAX_TEXT_CHARS: usize = 8192;

/// The Events API client with every routing key it may use.
pub struct PagerDuty {
    client: UpstreamClient,
    enqueue: Url,
    keys: BTreeMap<String, SecretString>,
    secrets: SecretStore,
}

impl std::fmt::Debug for PagerDuty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDuty")
            .field("enqueue", &self.enqueue.as_str())
            .field("routing_keys", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PagerDuty {
    /// A client for `config`'s Events API reading every key of `routing_keys` (by reference)
    /// from `secrets` now.
    pub fn new(
        client: UpstreamClient,
        config: &PagerDutyConfig,
        routing_keys: &[SecretRef],
        secrets: &SecretStore,
    ) -> Result<Self, PagingError> {
        let enqueue = super::join(
            &config.events_url,
            "v2/enqueue",
            "paging_integration.pagerduty.events_url",
        )?;
        let mut keys = BTreeMap::new();
        for r in routing_keys {
            let key = secrets
                .read(r, "routing_key")
                .map_err(|e| PagingError::Secret {
                    path: "paging_integration routing_key_ref".into(),
                    reason: e.to_string(),
                })?;
            keys.insert(r.to_string(), key);
        }
        Ok(PagerDuty {
            client,
            enqueue,
            keys,
            secrets: secrets.clone(),
        })
    }

    fn key(&self, r: Option<&SecretRef>) -> Result<SecretString, ActionError> {
        let r = r.ok_or_else(|| ActionError::Rejected {
            target: TARGET,
            reason: "the route names no routing key".into(),
        })?;
        if let Some(k) = self.keys.get(&r.to_string()) {
            return Ok(k.clone());
        }
        // A route from before a configuration change: read its key now.
        self.secrets
            .read(r, "routing_key")
            .map_err(|e| ActionError::Rejected {
                target: TARGET,
                reason: format!("routing key of the page's route is unreadable: {e}"),
            })
    }

    async fn on_call(&self, call: PageCall<'_>) -> Result<BTreeMap<String, String>, ActionError> {
        let key = self.key(call.route.routing_key_ref.as_ref())?;
        let mut event = match (call.action, call.created) {
            (PageAction::Trigger, Some(created)) => trigger(&call, created),
            (PageAction::Trigger, None) => {
                return Err(ActionError::Rejected {
                    target: TARGET,
                    reason: "no incident fields to page with".into(),
                })
            }
            (PageAction::Acknowledge, _) => {
                json!({"event_action": "acknowledge", "dedup_key": call.incident_id})
            }
            _ => json!({"event_action": "resolve", "dedup_key": call.incident_id}),
        };
        event["routing_key"] = key.expose().into();
        let resp = self
            .client
            .send(Some(call.correlation_id), |http| {
                http.post(self.enqueue.clone()).json(&event)
            })
            .await
            .map_err(|e| upstream_error(TARGET, e, key.expose()))?;
        let status = resp.status().as_u16();
        let body: Answer = resp.json().unwrap_or_default();
        if resp.status().is_success() {
            if body.status.as_deref().is_some_and(|s| s != "success") {
                return Err(ActionError::Rejected {
                    target: TARGET,
                    reason: scrub(&body.describe(), key.expose()),
                });
            }
            let mut detail = BTreeMap::new();
            if let Some(dedup_key) = body.dedup_key {
                detail.insert("dedup_key".into(), dedup_key);
            }
            return Ok(detail);
        }
        let text = if body.message.is_some() || !body.errors.is_empty() {
            body.describe()
        } else {
            String::from_utf8_lossy(resp.body())
                .chars()
                .take(500)
                .collect()
        };
        Err(client_error(TARGET, status, scrub(&text, key.expose())))
    }
}

impl Pager for PagerDuty {
    fn provider(&self) -> PageProvider {
        PageProvider::Pagerduty
    }

    fn call<'a>(
        &'a self,
        call: PageCall<'a>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, ActionError>> {
        Box::pin(self.on_call(call))
    }
}

/// The Events API's answer.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
}

impl Answer {
    fn describe(&self) -> String {
        let mut s = self.message.clone().unwrap_or_default();
        if let Some(status) = &self.status {
            s = format!("{status}: {s}");
        }
        if !self.errors.is_empty() {
            s.push_str(" (");
            s.push_str(&self.errors.join("; "));
            s.push(')');
        }
        s
    }
}

/// PagerDuty's severity for an incident's.
pub fn severity(s: FactSeverity) -> &'static str {
    match s {
        FactSeverity::Critical => "critical",
        FactSeverity::High => "error",
        FactSeverity::Medium => "warning",
        FactSeverity::Low | FactSeverity::Info => "info",
    }
}

fn trigger(call: &PageCall<'_>, c: &Created) -> Value {
    let title = if c.title.trim().is_empty() {
        format!("Incident {}", call.incident_id)
    } else {
        c.title.clone()
    };
    let source = match (&c.cluster, &c.namespace, &c.service) {
        (Some(cl), Some(ns), _) => format!("{cl}/{ns}"),
        (Some(cl), None, _) => cl.clone(),
        (None, _, Some(svc)) => svc.clone(),
        _ => "sre-integration".to_owned(),
    };
    let labels: Map<String, Value> = c
        .labels
        .iter()
        .take(MAX_LABELS)
        .map(|(k, v)| (k.clone(), truncate(v, MAX_VALUE_CHARS).into()))
        .collect();
    let links: Vec<Value> = c
        .links
        .iter()
        .take(MAX_LINKS)
        .map(|l| json!({"href": l.url, "text": l.title}))
        .collect();
    let mut details = json!({
        "incident_id": call.incident_id,
        "title": c.title,
        "summary": truncate(&c.summary, MAX_TEXT_CHARS),
        "severity": c.severity.as_str(),
        "service": c.service,
        "environment": c.environment,
        "cluster": c.cluster,
        "namespace": c.namespace,
        "labels": labels,
        "alert_fingerprints": c.alert_fingerprints.iter().take(MAX_LABELS).collect::<Vec<_>>(),
        "links": links,
        "correlation_id": call.correlation_id,
        "route": call.route.name,
    });
    if let Some(obj) = details.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    let mut payload = json!({
        "summary": truncate(&title, MAX_SUMMARY_CHARS),
        "source": source,
        "severity": severity(c.severity),
        "custom_details": details,
    });
    if let Some(at) = call.occurred_at {
        payload["timestamp"] = at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into();
    }
    if let Some(s) = &c.service {
        payload["component"] = s.clone().into();
    }
    if let Some(e) = &c.environment {
        payload["group"] = e.clone().into();
    }
    if let Some(class) = c.labels.get("alertname") {
        payload["class"] = class.clone().into();
    }
    json!({
        "event_action": "trigger",
        "dedup_key": call.incident_id,
        "payload": payload,
        "links": links,
        "client": "sre-integration",
    })
}
