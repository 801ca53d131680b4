//! OpsGenie Alert API (`<api_url>/v2/alerts`, `Authorization: GenieKey <key>`; the US or EU
//! instance by `api_url`).
//!
//! - create: `POST /v2/alerts` with `alias` = the incident id (OpsGenie de-duplicates an open
//!   alert's alias), `message` = the title (at most 130 characters), `priority` P1–P5 from the
//!   severity (critical P1, high P2, medium P3, low P4, info P5), `description`, `tags`,
//!   `details`, `entity`, `source`, and `responders` (the route's team) when there is one;
//! - acknowledge: `POST /v2/alerts/<alias>/acknowledge?identifierType=alias`;
//! - close: `POST /v2/alerts/<alias>/close?identifierType=alias`.
//!
//! OpsGenie processes requests asynchronously: it answers `202 {"result":…,"requestId":…}`,
//! and only `GET /v2/alerts/requests/<requestId>` says what happened. The action counts as done
//! only once that lookup answers `isSuccess: true`; `isSuccess: false` is a refusal for good
//! ([`ActionError::Rejected`] with OpsGenie's `status` text). A request not processed yet (the
//! lookup answers 404 for a while) is looked up again, with growing pauses, until
//! `confirm_timeout`; past it the action is [`ActionError::Unavailable`] and the fact is
//! applied again later (the alias makes that harmless). 4xx answers to the request itself are
//! refusals with OpsGenie's `message` and `errors`; 429, 5xx and transport failures are retried
//! by the shared client. The key never prints.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sre_config::{OpsGenieConfig, PageProvider, SecretStore, SecretString};
use sre_intents::facts::{Created, FactSeverity};
use url::Url;

use super::metrics::PageAction;
use super::{client_error, scrub, truncate, upstream_error, PageCall, Pager, PagingError};
use crate::facts::action::ActionError;
use crate::providers::UpstreamClient;

const TARGET: &str = "opsgenie";
/// Longest `message` OpsGenie takes.
pub const MAX_MESSAGE_CHARS: usize = 130;
const MAX_DESCRIPTION_CHARS: usize = 15_000;
const MAX_TAGS: usize = 20;
const MAX_TAG_CHARS: usize = 50;
/// OpsGenie's limit for all of `details`, keys and values.
const MAX_DETAILS_CHARS: usize = 8000;
const MAX_DETAIL_VALUE_CHARS: usize = 500;
/// First pause between request-status lookups; doubled up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(500);
const MAX_POLL: Duration = Duration::from_secs(5);

/// The Alert API client.
pub struct OpsGenie {
    client: UpstreamClient,
    alerts: Url,
    key: SecretString,
    confirm_timeout: Duration,
}

impl std::fmt::Debug for OpsGenie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsGenie")
            .field("alerts", &self.alerts.as_str())
            .field("key", &self.key)
            .field("confirm_timeout", &self.confirm_timeout)
            .finish_non_exhaustive()
    }
}

impl OpsGenie {
    /// A client for `config`'s instance, reading its key from `secrets` now.
    pub fn new(
        client: UpstreamClient,
        config: &OpsGenieConfig,
        secrets: &SecretStore,
    ) -> Result<Self, PagingError> {
        let key =
            secrets
                .read(&config.api_key_ref, "api_key")
                .map_err(|e| PagingError::Secret {
                    path: "paging_integration.opsgenie.api_key_ref".into(),
                    reason: e.to_string(),
                })?;
        let alerts = super::join(
            &config.api_url,
            "v2/alerts",
            "paging_integration.opsgenie.api_url",
        )?;
        Ok(OpsGenie {
            client,
            alerts,
            key,
            confirm_timeout: config.confirm_timeout,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.alerts.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn genie_key(&self) -> String {
        format!("GenieKey {}", self.key.expose())
    }

    async fn on_call(&self, call: PageCall<'_>) -> Result<BTreeMap<String, String>, ActionError> {
        let (url, body) = match (call.action, call.created) {
            (PageAction::Trigger, Some(created)) => (self.url(&[]), create(&call, created)),
            (PageAction::Trigger, None) => {
                return Err(ActionError::Rejected {
                    target: TARGET,
                    reason: "no incident fields to page with".into(),
                })
            }
            (action, _) => {
                let verb = if action == PageAction::Acknowledge {
                    "acknowledge"
                } else {
                    "close"
                };
                let mut url = self.url(&[call.incident_id, verb]);
                url.query_pairs_mut().append_pair("identifierType", "alias");
                let mut body = json!({"source": "sre-integration", "user": "sre-integration"});
                if let Some(note) = &call.note {
                    body["note"] = truncate(note, 25_000).into();
                }
                (url, body)
            }
        };
        let resp = self
            .client
            .send(Some(call.correlation_id), |http| {
                http.post(url.clone())
                    .header(AUTHORIZATION, self.genie_key())
                    .json(&body)
            })
            .await
            .map_err(|e| upstream_error(TARGET, e, self.key.expose()))?;
        let status = resp.status().as_u16();
        let answer: Answer = resp.json().unwrap_or_default();
        if !resp.status().is_success() {
            let text = if answer.message.is_some() {
                answer.describe()
            } else {
                String::from_utf8_lossy(resp.body())
                    .chars()
                    .take(500)
                    .collect()
            };
            return Err(client_error(TARGET, status, self.scrub(&text)));
        }
        let request_id = answer.request_id.ok_or_else(|| ActionError::Unavailable {
            target: TARGET,
            reason: format!("HTTP {status} without a requestId"),
            retry_after: None,
        })?;
        let outcome = self.confirm(&request_id, call.correlation_id).await?;
        let mut detail = BTreeMap::new();
        detail.insert("request_id".into(), request_id);
        if let Some(id) = outcome.alert_id.filter(|id| !id.is_empty()) {
            detail.insert("alert_id".into(), id);
        }
        Ok(detail)
    }

    /// Looks the request up until OpsGenie has processed it or `confirm_timeout` passes.
    async fn confirm(
        &self,
        request_id: &str,
        correlation_id: &str,
    ) -> Result<RequestStatus, ActionError> {
        let url = self.url(&["requests", request_id]);
        let deadline = tokio::time::Instant::now() + self.confirm_timeout;
        let mut pause = FIRST_POLL;
        loop {
            let resp = self
                .client
                .send(Some(correlation_id), |http| {
                    http.get(url.clone())
                        .header(AUTHORIZATION, self.genie_key())
                })
                .await
                .map_err(|e| upstream_error(TARGET, e, self.key.expose()))?;
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                let found: Found = resp.json().map_err(|e| ActionError::Unavailable {
                    target: TARGET,
                    reason: format!("request {request_id}: unexpected status answer: {e}"),
                    retry_after: None,
                })?;
                let data = found.data;
                if data.is_success {
                    return Ok(data);
                }
                return Err(ActionError::Rejected {
                    target: TARGET,
                    reason: self.scrub(&format!(
                        "request {request_id} ({}) failed: {}",
                        data.action.as_deref().unwrap_or("?"),
                        data.status.as_deref().unwrap_or("no status given")
                    )),
                });
            }
            if status != 404 {
                let answer: Answer = resp.json().unwrap_or_default();
                return Err(client_error(TARGET, status, self.scrub(&answer.describe())));
            }
            // Not processed yet.
            let now = tokio::time::Instant::now();
            if now + pause > deadline {
                return Err(ActionError::Unavailable {
                    target: TARGET,
                    reason: format!(
                        "request {request_id} not processed within {}",
                        humantime::format_duration(self.confirm_timeout)
                    ),
                    retry_after: None,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    fn scrub(&self, text: &str) -> String {
        scrub(text, self.key.expose())
    }
}

impl Pager for OpsGenie {
    fn provider(&self) -> PageProvider {
        PageProvider::Opsgenie
    }

    fn call<'a>(
        &'a self,
        call: PageCall<'a>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, ActionError>> {
        Box::pin(self.on_call(call))
    }
}

/// An answer to a request (`202`), or an error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    errors: BTreeMap<String, Value>,
}

impl Answer {
    fn describe(&self) -> String {
        let mut s = self.message.clone().unwrap_or_default();
        if !self.errors.is_empty() {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(text) => format!("{k}: {text}"),
                    None => format!("{k}: {v}"),
                })
                .collect();
            s.push_str(" (");
            s.push_str(&errors.join("; "));
            s.push(')');
        }
        s
    }
}

/// `GET /v2/alerts/requests/<id>`'s answer.
#[derive(Debug, Deserialize)]
struct Found {
    data: RequestStatus,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestStatus {
    #[serde(default)]
    is_success: bool,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    alert_id: Option<String>,
}

/// OpsGenie's priority for an incident's severity.
pub fn priority(s: FactSeverity) -> &'static str {
    match s {
        FactSeverity::Critical => "P1",
        FactSeverity::High => "P2",
        FactSeverity::Medium => "P3",
        FactSeverity::Low => "P4",
        FactSeverity::Info => "P5",
    }
}

fn create(call: &PageCall<'_>, c: &Created) -> Value {
    let title = if c.title.trim().is_empty() {
        format!("Incident {}", call.incident_id)
    } else {
        c.title.clone()
    };
    let mut tags = vec![
        "sre-incident".to_owned(),
        format!("severity:{}", c.severity.as_str()),
    ];
    for (name, value) in [
        ("service", &c.service),
        ("env", &c.environment),
        ("cluster", &c.cluster),
    ] {
        if let Some(v) = value {
            tags.push(truncate(&format!("{name}:{v}"), MAX_TAG_CHARS));
        }
    }
    tags.truncate(MAX_TAGS);
    let mut details = Details::default();
    details.add("incident_id", call.incident_id);
    details.add("severity", c.severity.as_str());
    details.add("correlation_id", call.correlation_id);
    details.add("route", &call.route.name);
    for (name, value) in [
        ("service", &c.service),
        ("environment", &c.environment),
        ("cluster", &c.cluster),
        ("namespace", &c.namespace),
    ] {
        if let Some(v) = value {
            details.add(name, v);
        }
    }
    for l in &c.links {
        details.add(&format!("link: {}", l.title), &l.url);
    }
    for (k, v) in &c.labels {
        details.add(&format!("label: {k}"), v);
    }
    let mut body = json!({
        "message": truncate(&title, MAX_MESSAGE_CHARS),
        "alias": call.incident_id,
        "description": truncate(&description(c), MAX_DESCRIPTION_CHARS),
        "tags": tags,
        "details": details.0,
        "source": "sre-integration",
        "user": "sre-integration",
        "priority": priority(c.severity),
    });
    if let Some(s) = &c.service {
        body["entity"] = truncate(s, 512).into();
    }
    if let Some(team) = &call.route.team {
        body["responders"] = json!([{"type": "team", "name": team}]);
    }
    body
}

/// The title, the summary, and the links.
fn description(c: &Created) -> String {
    let mut s = c.summary.clone();
    if !c.links.is_empty() {
        s.push_str("\n\n");
        for l in &c.links {
            s.push_str(&format!("{}: {}\n", l.title, l.url));
        }
    }
    s
}

/// `details`, kept within OpsGenie's size limit (later entries are left out).
#[derive(Default)]
struct Details(Map<String, Value>, usize);

impl Details {
    fn add(&mut self, key: &str, value: &str) {
        let key = truncate(key, 100);
        let value = truncate(value, MAX_DETAIL_VALUE_CHARS);
        let size = key.chars().count() + value.chars().count();
        if self.1 + size <= MAX_DETAILS_CHARS && !self.0.contains_key(&key) {
            self.1 += size;
            self.0.insert(key, value.into());
        }
    }
}
