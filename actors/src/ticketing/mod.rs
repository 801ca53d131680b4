//! Tickets (spec §6, DESIGN §3.3b): the Jira and GitHub Issues [`FactAction`] targets that
//! follow each incident's lifecycle — a ticket on `IncidentCreated`, a comment on
//! `IncidentAcknowledged`, a comment and the done state on `IncidentResolved`, closed on
//! `IncidentClosed`.
//!
//! # Layout
//! - [`jira`]: Jira Cloud REST v3 ([`jira::JiraTarget`], target `jira`).
//! - [`github`]: GitHub Issues REST ([`github::GithubTarget`], target `github`).
//! - [`render`]: the content both share (ADF for Jira, markdown for GitHub).
//! - [`routes`]: which provider and project / repository an incident's ticket goes to.
//!
//! # No duplicate ticket
//! The ledger record's `key` is the ticket (Jira key, GitHub issue number); a fact for an
//! incident whose record has a key never creates. Without one, the provider is searched for
//! the incident's label (Jira `sre-incident-<id>` by JQL, GitHub `sre-incident:<id>` by listing
//! issues with `state=all`) before creating, so a crash between the create and the ledger
//! write, or a replayed fact, finds the existing ticket. Creates and comments are sent once
//! (never retried by the client: a lost answer would duplicate them); a failure is
//! [`ActionError::Unavailable`] and the consumer applies the fact again, which looks first.
//! Each comment carries a marker `sre-fact:<ce_id>`, and the ticket's recent comments are
//! read before commenting, so a fact applied again (a transition that failed after its
//! comment, a crash before the ledger write) does not comment twice.
//!
//! # Which facts open a ticket
//! The destination is chosen once, by [`routes::Router`], and kept in the record's `detail`.
//! An incident already finished (its entry resolved or closed, or the fact itself a
//! resolve/close) gets no ticket unless `create_for_resolved` is set. A fact for an incident
//! with no ticket and no `IncidentCreated` fields (never seen) does nothing here.

pub mod github;
pub mod jira;
pub mod metrics;
pub mod render;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use sre_config::{Config, SecretError, SecretStore};
use sre_intents::facts::{Created, Fact, FactBody};

use crate::facts::action::{ActionError, FactAction};
use crate::facts::entry::{IncidentEntry, TargetRecord};
use crate::providers::{Providers, UpstreamError};

pub use metrics::TicketMetrics;

/// Why the ticket targets could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TicketingError {
    /// A credential could not be read (the message names the secret and key, never a value).
    #[error("ticketing_integration.{provider}.secret_ref: {source}")]
    Secret {
        /// `jira` or `github`.
        provider: &'static str,
        /// What went wrong.
        source: SecretError,
    },
    /// The provider's circuit is not among the configured upstreams.
    #[error("ticketing_integration.{0}: no upstream client (is the section enabled?)")]
    NoClient(&'static str),
    /// A URL could not be formed.
    #[error("ticketing_integration.{provider}: {message}")]
    Url {
        /// `jira` or `github`.
        provider: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// Every ticket target of the configuration: `jira` and/or `github`, or none when
/// `ticketing_integration` is disabled. Reads the credentials now, so a missing secret fails
/// the start.
pub fn targets(
    config: &Config,
    providers: &Providers,
    secrets: &SecretStore,
    metrics: &TicketMetrics,
) -> Result<Vec<Arc<dyn FactAction>>, TicketingError> {
    let Some(t) = config.ticketing() else {
        return Ok(Vec::new());
    };
    let Some(router) = routes::Router::new(t) else {
        return Ok(Vec::new());
    };
    let router = Arc::new(router);
    let mut out: Vec<Arc<dyn FactAction>> = Vec::new();
    if let Some(j) = &t.jira {
        // A throttle comes back to the fact with its wait (see the paging targets).
        let client = providers
            .client("jira")
            .ok_or(TicketingError::NoClient("jira"))?
            .handing_back_throttles();
        let jira = jira::JiraClient::from_config(j, client, secrets)?;
        out.push(Arc::new(jira::JiraTarget::new(
            jira,
            j,
            router.clone(),
            t.create_for_resolved,
            metrics.clone(),
        )));
    }
    if let Some(g) = &t.github {
        // A throttle comes back to the fact with its wait (see the paging targets).
        let client = providers
            .client("github")
            .ok_or(TicketingError::NoClient("github"))?
            .handing_back_throttles();
        let gh = github::GithubClient::from_config(g, client, secrets)?;
        out.push(Arc::new(github::GithubTarget::new(
            gh,
            g,
            router.clone(),
            t.create_for_resolved,
            metrics.clone(),
        )));
    }
    Ok(out)
}

/// What a fact means for a ticket target, before any call.
#[derive(Debug)]
pub(crate) enum Plan<'a> {
    /// Nothing to do here.
    Skip,
    /// The ticket exists (the record's key).
    Existing(&'a TargetRecord),
    /// No ticket yet: find or open one for these fields.
    Open(&'a Created),
}

/// The plan for `fact` on target `target` (see the module docs).
pub(crate) fn plan<'a>(
    target: &str,
    fact: &'a Fact,
    entry: &'a IncidentEntry,
    create_for_resolved: bool,
) -> Plan<'a> {
    if let Some(rec) = entry.target(target).filter(|r| r.key.is_some()) {
        return Plan::Existing(rec);
    }
    let Some(created) = fact.created().or(entry.created.as_ref()) else {
        return Plan::Skip;
    };
    let finishing = matches!(
        fact.body,
        FactBody::IncidentResolved { .. } | FactBody::IncidentClosed { .. }
    );
    if (entry.lifecycle.is_finished() || finishing) && !create_for_resolved {
        return Plan::Skip;
    }
    Plan::Open(created)
}

/// An upstream failure as the consumer sees it: always worth waiting for.
pub(crate) fn unavailable(target: &'static str, e: &UpstreamError) -> ActionError {
    let retry_after = match e {
        UpstreamError::Throttled { retry_after, .. } => *retry_after,
        UpstreamError::CircuitOpen { retry_in, .. } => Some(*retry_in),
        _ => None,
    };
    ActionError::Unavailable {
        target,
        reason: e.to_string(),
        retry_after,
    }
}

/// A provider answer that says "later" (408, 409, a throttling 403/429 the client did not
/// retry): wait `retry_after` when given.
pub(crate) fn later(
    target: &'static str,
    status: u16,
    reason: String,
    retry_after: Option<Duration>,
) -> ActionError {
    ActionError::Unavailable {
        target,
        reason: format!("HTTP {status}: {reason}"),
        retry_after,
    }
}

/// Characters of a provider's error text kept in an [`ActionError`].
pub(crate) const ERROR_TEXT_CHARS: usize = 1_000;

/// `s`, at most [`ERROR_TEXT_CHARS`] characters.
pub(crate) fn capped(s: &str) -> String {
    s.chars().take(ERROR_TEXT_CHARS).collect()
}
