//! Paging (spec §7, DESIGN §3.3a–b): PagerDuty and OpsGenie as
//! [`FactAction`] targets of the facts consumer.
//!
//! # What a fact does
//! | fact | record before | call | record after |
//! |---|---|---|---|
//! | `IncidentCreated`, routed here, policy `immediate` (or `business_hours_only` inside business hours) | none | trigger / create | `triggered` |
//! | `IncidentCreated`, `business_hours_only` outside business hours | none | — | `deferred`, `due` = next business-hours start |
//! | `IncidentCreated`, policy `never`, or routed to the other provider | none | — | none |
//! | `IncidentAcknowledged` | `triggered` | acknowledge | `acknowledged` |
//! | `IncidentResolved` / `IncidentClosed` | `triggered` / `acknowledged` | resolve / close | `resolved` |
//! | `IncidentAcknowledged` / `Resolved` / `Closed` | `deferred` | — | `dropped`, `due` cleared |
//! | anything | none (never paged), or already finished | — | none |
//!
//! [`FactAction::fire_due`] on a `deferred` record pages (`triggered`) unless the incident was
//! acknowledged, resolved or closed meanwhile (`dropped`); if it is called outside business
//! hours (the process was down through the whole window) the page waits for the next window.
//!
//! Every provider call carries the provider's own dedup key (PagerDuty `dedup_key`, OpsGenie
//! `alias` = the incident id), so a call repeated after a crash changes nothing there, and goes
//! through the shared [`UpstreamClient`](crate::providers::UpstreamClient) (the provider's
//! circuit, retries with backoff) with the fact's correlation id. A throttle's `Retry-After`
//! is handed back at once as [`ActionError::Unavailable`] with that wait, which the facts
//! consumer honours without holding a place another incident could use. The route
//! chosen at the trigger is kept in the record's `detail` and reused by the acknowledge and the
//! resolve.
//!
//! # Layout
//! - [`escalation`]: policies per severity and the business-hours calendar.
//! - [`routes`]: which provider, routing key and team an incident pages.
//! - [`pagerduty`], [`opsgenie`]: the two APIs.
//! - [`metrics`]: `sre_paging_pages_total`, `sre_paging_deferred_pages`.

pub mod escalation;
pub mod metrics;
pub mod opsgenie;
pub mod pagerduty;
pub mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use sre_config::{Config, PageProvider, SecretStore};
use sre_intents::facts::{Created, Fact, FactBody};
use url::Url;

use crate::facts::action::{ActionError, FactAction};
use crate::facts::entry::{IncidentEntry, Lifecycle, TargetRecord};
use crate::providers::{Providers, UpstreamError};
use escalation::{Decision, Escalation};
use metrics::{PageAction, PagingMetrics};
use routes::{RouteChoice, Router};

/// Record state: the page is open at the provider.
pub const STATE_TRIGGERED: &str = "triggered";
/// Record state: acknowledged at the provider.
pub const STATE_ACKNOWLEDGED: &str = "acknowledged";
/// Record state: resolved (PagerDuty) / closed (OpsGenie) at the provider.
pub const STATE_RESOLVED: &str = "resolved";
/// Record state: waiting for business hours (`due` set).
pub const STATE_DEFERRED: &str = "deferred";
/// Record state: a deferred page that never went out.
pub const STATE_DROPPED: &str = "dropped";

/// Why the paging targets could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PagingError {
    /// Neither `default_provider` nor a single configured provider says where to page.
    #[error("paging_integration: no default provider (set default_provider)")]
    NoDefaultProvider,
    /// The provider's circuit is not among the upstreams.
    #[error("paging_integration: no upstream circuit for {0}")]
    NoCircuit(&'static str),
    /// A provider URL cannot take the API's path.
    #[error("paging_integration: {path}: {reason}")]
    Url {
        /// Config key path.
        path: &'static str,
        /// Why.
        reason: String,
    },
    /// A key could not be read (the error names the secret and key, never a value).
    #[error("paging_integration: {path}: {reason}")]
    Secret {
        /// Config key path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The paging targets of `config` (none when paging is off): one per configured provider, each
/// acting on the incidents routed to it. Every call goes through `providers`' client of the
/// same name; keys are read from `secrets` now (a missing one fails here, not at the first
/// page). `metrics` is shared with the caller so it can seed the deferred gauge from the ledger
/// ([`PagingMetrics::observe_entry`]).
pub fn targets(
    config: &Config,
    providers: &Providers,
    secrets: &SecretStore,
    metrics: &PagingMetrics,
) -> Result<Vec<Arc<dyn FactAction>>, PagingError> {
    let Some(pg) = config.paging() else {
        return Ok(Vec::new());
    };
    let router = Arc::new(Router::from_config(pg).ok_or(PagingError::NoDefaultProvider)?);
    let escalation = Arc::new(Escalation::from_config(&pg.escalation));
    let mut out: Vec<Arc<dyn FactAction>> = Vec::new();
    if let Some(pd) = &pg.pagerduty {
        // A throttled call comes back to the fact at once with the provider's wait: the fact
        // waits that long without holding a place another incident's page could use.
        let client = providers
            .client("pagerduty")
            .ok_or(PagingError::NoCircuit("pagerduty"))?
            .handing_back_throttles();
        let pager = pagerduty::PagerDuty::new(client, pd, &router.routing_keys(), secrets)?;
        out.push(Arc::new(PagingTarget::new(
            pager,
            router.clone(),
            escalation.clone(),
            metrics.clone(),
        )));
    }
    if let Some(og) = &pg.opsgenie {
        // A throttled call comes back to the fact at once with the provider's wait: the fact
        // waits that long without holding a place another incident's page could use.
        let client = providers
            .client("opsgenie")
            .ok_or(PagingError::NoCircuit("opsgenie"))?
            .handing_back_throttles();
        let pager = opsgenie::OpsGenie::new(client, og, secrets)?;
        out.push(Arc::new(PagingTarget::new(
            pager,
            router.clone(),
            escalation.clone(),
            metrics.clone(),
        )));
    }
    Ok(out)
}

/// One call to a provider.
#[derive(Debug)]
pub struct PageCall<'a> {
    /// Trigger, acknowledge or resolve.
    pub action: PageAction,
    /// The incident (the dedup key / alias).
    pub incident_id: &'a str,
    /// `IncidentCreated`'s fields (needed by a trigger).
    pub created: Option<&'a Created>,
    /// When the incident was created (a trigger's timestamp), when known.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The route.
    pub route: &'a RouteChoice,
    /// Who acknowledged / resolved, and how (a note for the provider).
    pub note: Option<String>,
    /// On the call and in the record.
    pub correlation_id: &'a str,
}

/// A paging API: PagerDuty or OpsGenie.
pub trait Pager: Send + Sync + 'static {
    /// Which provider.
    fn provider(&self) -> PageProvider;

    /// Makes the call; returns what to add to the record's `detail`.
    fn call<'a>(
        &'a self,
        call: PageCall<'a>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, ActionError>>;
}

/// A paging provider as a facts target: escalation, routes and deferral around a [`Pager`].
pub struct PagingTarget<P> {
    pager: P,
    router: Arc<Router>,
    escalation: Arc<Escalation>,
    metrics: PagingMetrics,
}

impl<P: std::fmt::Debug> std::fmt::Debug for PagingTarget<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagingTarget")
            .field("pager", &self.pager)
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl<P: Pager> PagingTarget<P> {
    /// A target paging through `pager`.
    pub fn new(
        pager: P,
        router: Arc<Router>,
        escalation: Arc<Escalation>,
        metrics: PagingMetrics,
    ) -> Self {
        PagingTarget {
            pager,
            router,
            escalation,
            metrics,
        }
    }

    fn name(&self) -> &'static str {
        self.pager.provider().as_str()
    }

    async fn on_apply(
        &self,
        fact: &Fact,
        entry: &IncidentEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        let record = entry.target(self.name());
        match &fact.body {
            FactBody::IncidentCreated(created) => {
                if record.is_some() || entry.lifecycle.is_finished() {
                    return Ok(None);
                }
                self.on_created(fact, created, now).await
            }
            FactBody::IncidentAcknowledged { acknowledged_by } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                let note = acknowledged_by
                    .as_ref()
                    .map(|by| format!("Acknowledged by {by}"));
                match record.state.as_str() {
                    STATE_TRIGGERED => {
                        self.follow_up(fact, record, PageAction::Acknowledge, note, now)
                            .await
                    }
                    STATE_DEFERRED => Ok(Some(self.drop_deferred(fact, record, now))),
                    _ => Ok(None),
                }
            }
            FactBody::IncidentResolved {
                resolved_by,
                resolution,
            } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                let note = describe("Resolved", resolved_by, resolution);
                self.on_finished(fact, record, note, now).await
            }
            FactBody::IncidentClosed { closed_by, reason } => {
                let Some(record) = record else {
                    return Ok(None);
                };
                let note = describe("Closed", closed_by, reason);
                self.on_finished(fact, record, note, now).await
            }
        }
    }

    async fn on_created(
        &self,
        fact: &Fact,
        created: &Created,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        let route = self.router.pick(created);
        if route.provider != self.pager.provider() {
            return Ok(None);
        }
        match self.escalation.decide(created.severity, now) {
            Decision::Skip => Ok(None),
            Decision::Page => {
                let mut record = TargetRecord::for_fact(fact, STATE_TRIGGERED, now);
                route.to_detail(&mut record.detail);
                let call = PageCall {
                    action: PageAction::Trigger,
                    incident_id: &fact.incident_id,
                    created: Some(created),
                    occurred_at: Some(fact.occurred_at),
                    route: &route,
                    note: None,
                    correlation_id: &fact.correlation_id,
                };
                self.send(call, record).await.map(Some)
            }
            Decision::Defer(due) => {
                let mut record = TargetRecord::for_fact(fact, STATE_DEFERRED, now);
                record.due = Some(due);
                route.to_detail(&mut record.detail);
                tracing::info!(
                    incident = %fact.incident_id,
                    provider = self.name(),
                    due = %due.to_rfc3339_opts(SecondsFormat::Secs, true),
                    correlation_id = %fact.correlation_id,
                    "page deferred to business hours"
                );
                self.metrics.count(self.name(), PageAction::Defer, Ok(()));
                self.metrics
                    .set_deferred(self.name(), &fact.incident_id, true);
                Ok(Some(record))
            }
        }
    }

    async fn on_finished(
        &self,
        fact: &Fact,
        record: &TargetRecord,
        note: String,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        match record.state.as_str() {
            STATE_TRIGGERED | STATE_ACKNOWLEDGED => {
                self.follow_up(fact, record, PageAction::Resolve, Some(note), now)
                    .await
            }
            STATE_DEFERRED => Ok(Some(self.drop_deferred(fact, record, now))),
            _ => Ok(None),
        }
    }

    /// Acknowledge or resolve a page, on the trigger's route.
    async fn follow_up(
        &self,
        fact: &Fact,
        previous: &TargetRecord,
        action: PageAction,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        let route =
            RouteChoice::from_detail(self.pager.provider(), &previous.detail).ok_or_else(|| {
                ActionError::Rejected {
                    target: self.name(),
                    reason: "the ledger record names no route".into(),
                }
            })?;
        let state = match action {
            PageAction::Acknowledge => STATE_ACKNOWLEDGED,
            _ => STATE_RESOLVED,
        };
        let mut record = TargetRecord::for_fact(fact, state, now);
        record.key = previous.key.clone();
        record.detail = previous.detail.clone();
        let call = PageCall {
            action,
            incident_id: &fact.incident_id,
            created: None,
            occurred_at: Some(fact.occurred_at),
            route: &route,
            note,
            correlation_id: &fact.correlation_id,
        };
        self.send(call, record).await.map(Some)
    }

    fn drop_deferred(
        &self,
        fact: &Fact,
        previous: &TargetRecord,
        now: DateTime<Utc>,
    ) -> TargetRecord {
        let mut record = TargetRecord::for_fact(fact, STATE_DROPPED, now);
        record.detail = previous.detail.clone();
        self.dropped(&fact.incident_id, &fact.correlation_id);
        record
    }

    fn dropped(&self, incident: &str, correlation_id: &str) {
        tracing::info!(
            incident = %incident,
            provider = self.name(),
            correlation_id = %correlation_id,
            "deferred page dropped: the incident moved on first"
        );
        self.metrics.count(self.name(), PageAction::Drop, Ok(()));
        self.metrics.set_deferred(self.name(), incident, false);
    }

    /// Makes `call` and returns `record` (key set, detail extended) when it succeeded.
    async fn send(
        &self,
        call: PageCall<'_>,
        mut record: TargetRecord,
    ) -> Result<TargetRecord, ActionError> {
        let action = call.action;
        let incident = call.incident_id.to_owned();
        let correlation_id = call.correlation_id.to_owned();
        let result = self.pager.call(call).await;
        self.metrics
            .count(self.name(), action, result.as_ref().map(|_| ()));
        match result {
            Ok(detail) => {
                tracing::info!(
                    incident = %incident,
                    provider = self.name(),
                    action = action.label(),
                    correlation_id = %correlation_id,
                    "page action done"
                );
                record.key = Some(incident);
                record.detail.extend(detail);
                Ok(record)
            }
            // The fact waits and logs that (a throttle is routine); a refusal is a warning.
            Err(e @ ActionError::Unavailable { .. }) => {
                tracing::info!(
                    incident = %incident,
                    provider = self.name(),
                    action = action.label(),
                    correlation_id = %correlation_id,
                    error = %e,
                    "page action not done yet"
                );
                Err(e)
            }
            Err(e) => {
                tracing::warn!(
                    incident = %incident,
                    provider = self.name(),
                    action = action.label(),
                    correlation_id = %correlation_id,
                    error = %e,
                    "page action failed"
                );
                Err(e)
            }
        }
    }

    async fn on_fire_due(
        &self,
        entry: &IncidentEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        let Some(previous) = entry.target(self.name()) else {
            return Ok(None);
        };
        match previous.due {
            Some(due) if previous.state == STATE_DEFERRED && due <= now => {}
            _ => return Ok(None),
        }
        let mut record = previous.clone();
        record.due = None;
        record.updated_at = now;
        let moved_on = matches!(
            entry.lifecycle,
            Lifecycle::Acknowledged | Lifecycle::Resolved | Lifecycle::Closed
        );
        let Some(created) = entry.created.as_ref().filter(|_| !moved_on) else {
            record.state = STATE_DROPPED.into();
            self.dropped(&entry.incident_id, &previous.correlation_id);
            return Ok(Some(record));
        };
        match self.escalation.decide(created.severity, now) {
            Decision::Skip => {
                record.state = STATE_DROPPED.into();
                self.dropped(&entry.incident_id, &previous.correlation_id);
                Ok(Some(record))
            }
            Decision::Defer(due) => {
                record.due = Some(due);
                Ok(Some(record))
            }
            Decision::Page => {
                let route = RouteChoice::from_detail(self.pager.provider(), &previous.detail)
                    .unwrap_or_else(|| self.router.pick(created));
                record.state = STATE_TRIGGERED.into();
                if let Some(due) = previous.due {
                    record.detail.insert(
                        "deferred_until".into(),
                        due.to_rfc3339_opts(SecondsFormat::Secs, true),
                    );
                }
                let call = PageCall {
                    action: PageAction::Trigger,
                    incident_id: &entry.incident_id,
                    created: Some(created),
                    occurred_at: None,
                    route: &route,
                    note: None,
                    correlation_id: &previous.correlation_id,
                };
                let record = self.send(call, record).await?;
                self.metrics
                    .set_deferred(self.name(), &entry.incident_id, false);
                Ok(Some(record))
            }
        }
    }
}

impl<P: Pager> FactAction for PagingTarget<P> {
    fn target(&self) -> &'static str {
        self.name()
    }

    fn observe(&self, entry: &IncidentEntry) {
        self.metrics.observe_entry(entry);
    }

    fn apply<'a>(
        &'a self,
        fact: &'a Fact,
        entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>> {
        Box::pin(self.on_apply(fact, entry, now))
    }

    fn fire_due<'a>(
        &'a self,
        entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>> {
        Box::pin(self.on_fire_due(entry, now))
    }
}

/// "Resolved by ana: rolled back".
fn describe(verb: &str, by: &Option<String>, how: &Option<String>) -> String {
    let mut s = verb.to_owned();
    if let Some(by) = by {
        s.push_str(" by ");
        s.push_str(by);
    }
    if let Some(how) = how {
        s.push_str(": ");
        s.push_str(how);
    }
    s
}

/// `text` cut to at most `max` characters (never inside a character), an ellipsis marking the
/// cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `base` (with or without a trailing slash) joined with `path`.
pub(crate) fn join(base: &Url, path: &str, key: &'static str) -> Result<Url, PagingError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path).map_err(|e| PagingError::Url {
        path: key,
        reason: e.to_string(),
    })
}

/// `text` with every occurrence of `secret` replaced (a provider may echo what it was sent).
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    }
}

/// An upstream failure as an action error: the provider is down, throttling, or its circuit is
/// open — the fact waits; a request that could not even be built is rejected. `secret` is
/// scrubbed from the text (a 5xx body may echo the request).
pub(crate) fn upstream_error(target: &'static str, e: UpstreamError, secret: &str) -> ActionError {
    let retry_after = match &e {
        UpstreamError::CircuitOpen { retry_in, .. } => Some(*retry_in),
        UpstreamError::Throttled { retry_after, .. } => *retry_after,
        _ => None,
    };
    match e {
        UpstreamError::Request { message, .. } => ActionError::Rejected {
            target,
            reason: scrub(&format!("invalid request: {message}"), secret),
        },
        e => ActionError::Unavailable {
            target,
            reason: scrub(&e.to_string(), secret),
            retry_after,
        },
    }
}

/// A 4xx answer as an action error: 408 and 409 are worth another try later, the rest are
/// refusals for good (DESIGN §3.3a).
pub(crate) fn client_error(target: &'static str, status: u16, reason: String) -> ActionError {
    if status == 408 || status == 409 {
        ActionError::Unavailable {
            target,
            reason: format!("HTTP {status}: {reason}"),
            retry_after: None,
        }
    } else {
        ActionError::Rejected {
            target,
            reason: format!("HTTP {status}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        let s = "ä".repeat(2000);
        let t = truncate(&s, 1024);
        assert_eq!(t.chars().count(), 1024);
        assert!(t.starts_with("ää"));
        assert_eq!(
            scrub("key K1 and K1", "K1"),
            "key [redacted] and [redacted]"
        );
    }
}
