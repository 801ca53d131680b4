//! Incidents on Grafana dashboards: the [`FactAction`] target named `grafana`
//! (`observability_integration.grafana.annotations`).
//!
//! - `IncidentCreated` → an annotation at the incident's start on each configured dashboard
//!   (`dashboard_uids`), or one organisation-wide; tags `sre-incident:<id>`,
//!   `severity:<sev>`, `service:<service>`; text: the title, severity, service/environment,
//!   summary and links.
//! - `IncidentAcknowledged` → the text gains the ticket's link once the Jira or GitHub target
//!   has one (from the incident's ledger entry).
//! - `IncidentResolved` (or `IncidentClosed` when never resolved) → each annotation's end time
//!   is set to the fact's time, making it a region from start to resolution.
//!
//! Grafana's create is sent once (a retried create after a lost answer would duplicate), so
//! idempotency rests on two things: the ledger record's `key` (the annotation ids, comma
//! separated) makes a replayed fact do nothing, and without a record the incident's
//! annotations are looked up by tag (`GET /api/annotations?tags=sre-incident:<id>`) before
//! creating, so a crash between the create and the ledger write finds them.
//! Grafana refusing a request (4xx) is [`ActionError::Rejected`]; Grafana down, throttling or
//! an open `grafana` circuit is [`ActionError::Unavailable`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sre_config::{Config, SecretError, SecretStore};
use sre_intents::facts::{Created, Fact, FactBody};

use super::grafana::{Annotation, GrafanaClient, GrafanaError, NewAnnotation};
use crate::facts::action::{ActionError, FactAction};
use crate::facts::entry::{IncidentEntry, TargetRecord};
use crate::providers::{Providers, UpstreamError};
use crate::ticketing::metrics::{outcome, TicketMetrics};

/// The target's name.
pub const TARGET: &str = "grafana";
/// Characters of annotation text at most.
pub const MAX_TEXT_CHARS: usize = 4_000;

/// Why the annotation target could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    /// The API key could not be read (names the secret and key, never the value).
    #[error("observability_integration.grafana.secret_ref: {0}")]
    Secret(#[from] SecretError),
    /// The `grafana` circuit is not among the configured upstreams.
    #[error("observability_integration.grafana: no upstream client (is observability_integration enabled?)")]
    NoClient,
}

/// The `grafana` target when Grafana is configured with annotations enabled, else `None`.
pub fn target(
    config: &Config,
    providers: &Providers,
    secrets: &SecretStore,
    metrics: &TicketMetrics,
) -> Result<Option<Arc<dyn FactAction>>, AnnotationError> {
    let Some(g) = config.observability().and_then(|o| o.grafana.as_ref()) else {
        return Ok(None);
    };
    if !g.annotations.enabled {
        return Ok(None);
    }
    // A throttle comes back to the fact with its wait (see the paging targets).
    let client = providers
        .client("grafana")
        .ok_or(AnnotationError::NoClient)?
        .handing_back_throttles();
    let api_key = match &g.secret_ref {
        Some(r) => Some(secrets.read(r, "api_key")?),
        None => None,
    };
    let grafana = GrafanaClient::new(client, g.url.clone(), api_key);
    Ok(Some(Arc::new(AnnotationTarget::new(
        grafana,
        g.annotations.dashboard_uids.clone(),
        metrics.clone(),
    ))))
}

/// The tag that marks incident `id`'s annotations.
pub fn incident_tag(incident_id: &str) -> String {
    format!("sre-incident:{incident_id}")
}

/// The `grafana` target.
#[derive(Debug)]
pub struct AnnotationTarget {
    grafana: GrafanaClient,
    /// One annotation per entry: a dashboard uid, or `None` for organisation-wide.
    dashboards: Vec<Option<String>>,
    metrics: TicketMetrics,
}

fn to_action(e: GrafanaError) -> ActionError {
    match e {
        GrafanaError::Upstream(u) => {
            let retry_after = match &u {
                UpstreamError::Throttled { retry_after, .. } => *retry_after,
                UpstreamError::CircuitOpen { retry_in, .. } => Some(*retry_in),
                _ => None,
            };
            ActionError::Unavailable {
                target: TARGET,
                reason: u.to_string(),
                retry_after,
            }
        }
        GrafanaError::Rejected {
            status: 408 | 409, ..
        } => ActionError::Unavailable {
            target: TARGET,
            reason: e.to_string(),
            retry_after: None,
        },
        other => ActionError::Rejected {
            target: TARGET,
            reason: other.to_string(),
        },
    }
}

/// The annotation's text: title, severity, where, summary, links and the ticket.
pub fn text(created: &Created, ticket_url: Option<&str>) -> String {
    let mut lines = vec![format!(
        "[{}] {}",
        created.severity.as_str(),
        created.title.trim()
    )];
    let place: Vec<&str> = [&created.service, &created.environment]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .collect();
    if !place.is_empty() {
        lines.push(place.join(" / "));
    }
    if !created.summary.trim().is_empty() {
        lines.push(created.summary.trim().to_owned());
    }
    for l in created.links.iter().take(10) {
        lines.push(format!("{}: {}", l.title.trim(), l.url));
    }
    if let Some(t) = ticket_url {
        lines.push(format!("Ticket: {t}"));
    }
    let mut s = lines.join("\n");
    if s.chars().count() > MAX_TEXT_CHARS {
        s = s.chars().take(MAX_TEXT_CHARS - 1).collect();
        s.push('…');
    }
    s
}

/// The link of the incident's ticket, when a ticket target recorded one.
fn ticket_url(entry: &IncidentEntry) -> Option<&str> {
    ["jira", "github"]
        .iter()
        .filter_map(|t| entry.target(t))
        .find_map(|r| r.detail.get("url").map(String::as_str))
        .filter(|u| !u.is_empty())
}

fn parse_ids(key: &str) -> Vec<i64> {
    key.split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

impl AnnotationTarget {
    /// Annotations on `dashboard_uids`, or organisation-wide when empty.
    pub fn new(
        grafana: GrafanaClient,
        dashboard_uids: Vec<String>,
        metrics: TicketMetrics,
    ) -> Self {
        let dashboards = if dashboard_uids.is_empty() {
            vec![None]
        } else {
            dashboard_uids.into_iter().map(Some).collect()
        };
        AnnotationTarget {
            grafana,
            dashboards,
            metrics,
        }
    }

    fn count<T>(&self, action: &'static str, r: Result<T, ActionError>) -> Result<T, ActionError> {
        self.metrics.annotation(action, outcome(&r));
        r
    }

    async fn existing(&self, incident_id: &str, cid: &str) -> Result<Vec<Annotation>, ActionError> {
        let r = self
            .grafana
            .find_annotations(&[incident_tag(incident_id)], 100, Some(cid))
            .await
            .map_err(to_action);
        self.count("found", r)
    }

    /// The incident's annotation on every configured dashboard: found, else created.
    async fn ensure(
        &self,
        fact: &Fact,
        created: &Created,
        ticket: Option<&str>,
    ) -> Result<Vec<i64>, ActionError> {
        let cid = fact.correlation_id.as_str();
        let have = self.existing(&fact.incident_id, cid).await?;
        let mut tags = vec![
            incident_tag(&fact.incident_id),
            format!("severity:{}", created.severity.as_str()),
        ];
        if let Some(s) = &created.service {
            tags.push(format!("service:{s}"));
        }
        let mut ids = Vec::new();
        for dash in &self.dashboards {
            let same = |a: &&Annotation| {
                a.dashboard_uid.as_deref().filter(|u| !u.is_empty()) == dash.as_deref()
            };
            if let Some(a) = have.iter().find(same) {
                ids.push(a.id);
                continue;
            }
            let new = NewAnnotation {
                dashboard_uid: dash.clone(),
                panel_id: None,
                time: fact.occurred_at,
                time_end: None,
                tags: tags.clone(),
                text: text(created, ticket),
            };
            let r = self
                .grafana
                .create_annotation(&new, Some(cid))
                .await
                .map_err(to_action);
            ids.push(self.count("create", r)?);
        }
        Ok(ids)
    }

    /// Sets the end time (and the text, when given) of every annotation in `ids`; one that
    /// is gone from Grafana is skipped.
    async fn end(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
        text: Option<&str>,
        cid: &str,
    ) -> Result<(), ActionError> {
        for id in ids {
            let r = match self
                .grafana
                .update_annotation(*id, text, Some(at), Some(cid))
                .await
            {
                Err(GrafanaError::NotFound(_)) => {
                    tracing::warn!(id, "the incident's annotation is gone from Grafana");
                    Ok(())
                }
                other => other.map_err(to_action),
            };
            self.count("end", r)?;
        }
        Ok(())
    }

    async fn run(
        &self,
        fact: &Fact,
        entry: &IncidentEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        let cid = fact.correlation_id.as_str();
        let prev = entry.target(TARGET).filter(|r| r.key.is_some());
        let ticket = ticket_url(entry);
        let record = |state: &str, ids: &[i64], detail: BTreeMap<String, String>| {
            let mut rec = TargetRecord::for_fact(fact, state, now);
            rec.key = Some(join_ids(ids));
            rec.detail = detail;
            Some(rec)
        };
        match &fact.body {
            FactBody::IncidentCreated(created) => {
                if let Some(p) = prev {
                    let ids = parse_ids(p.key.as_deref().unwrap_or_default());
                    return Ok(record(&p.state, &ids, p.detail.clone()));
                }
                if entry.lifecycle.is_finished() {
                    self.metrics.annotation("skip", "success");
                    return Ok(None);
                }
                let ids = self.ensure(fact, created, ticket).await?;
                let mut detail = BTreeMap::new();
                detail.insert(
                    "start_ms".into(),
                    fact.occurred_at.timestamp_millis().to_string(),
                );
                Ok(record("open", &ids, detail))
            }
            FactBody::IncidentAcknowledged { .. } => {
                let Some(p) = prev else {
                    self.metrics.annotation("skip", "success");
                    return Ok(None);
                };
                let ids = parse_ids(p.key.as_deref().unwrap_or_default());
                let mut detail = p.detail.clone();
                if let (Some(url), Some(created)) = (ticket, &entry.created) {
                    if detail.get("ticket_url").map(String::as_str) != Some(url) {
                        let body = text(created, Some(url));
                        for id in &ids {
                            let r = match self
                                .grafana
                                .update_annotation(*id, Some(&body), None, Some(cid))
                                .await
                            {
                                Err(GrafanaError::NotFound(_)) => Ok(()),
                                other => other.map_err(to_action),
                            };
                            self.count("update", r)?;
                        }
                        detail.insert("ticket_url".into(), url.to_owned());
                    }
                }
                Ok(record("acknowledged", &ids, detail))
            }
            FactBody::IncidentResolved { .. } | FactBody::IncidentClosed { .. } => {
                if let Some(p) = prev.filter(|p| p.state == "ended") {
                    let ids = parse_ids(p.key.as_deref().unwrap_or_default());
                    return Ok(record("ended", &ids, p.detail.clone()));
                }
                let (ids, mut detail) = match prev {
                    Some(p) => (
                        parse_ids(p.key.as_deref().unwrap_or_default()),
                        p.detail.clone(),
                    ),
                    None => {
                        // No record: a crash after the create, before the ledger write, or an
                        // incident annotated before this target's records existed.
                        let found = self.existing(&fact.incident_id, cid).await?;
                        let ids: Vec<i64> = found.iter().map(|a| a.id).collect();
                        if ids.is_empty() {
                            self.metrics.annotation("skip", "success");
                            return Ok(None);
                        }
                        (ids, BTreeMap::new())
                    }
                };
                let start = detail
                    .get("start_ms")
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(DateTime::<Utc>::from_timestamp_millis);
                let end_at = start.map_or(fact.occurred_at, |s| s.max(fact.occurred_at));
                let body = match (ticket, &entry.created) {
                    (Some(url), Some(created))
                        if detail.get("ticket_url").map(String::as_str) != Some(url) =>
                    {
                        detail.insert("ticket_url".into(), url.to_owned());
                        Some(text(created, Some(url)))
                    }
                    _ => None,
                };
                self.end(&ids, end_at, body.as_deref(), cid).await?;
                Ok(record("ended", &ids, detail))
            }
        }
    }
}

impl FactAction for AnnotationTarget {
    fn target(&self) -> &'static str {
        TARGET
    }

    fn apply<'a>(
        &'a self,
        fact: &'a Fact,
        entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>> {
        Box::pin(self.run(fact, entry, now))
    }
}
