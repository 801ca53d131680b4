//! The contract between the facts consumer and an external system a fact drives (a pager, a
//! ticket tracker, Grafana annotations).
//!
//! The consumer, for each fact, in key order per incident:
//! 1. reads the incident's [`IncidentEntry`]; a fact whose `revision` is at or below
//!    `entry.revision` is a replay and does nothing;
//! 2. calls [`FactAction::apply`] on every configured target whose own record has not applied
//!    this revision yet, and writes each returned [`TargetRecord`] to the ledger as soon as it
//!    comes back (so a crash never repeats a non-idempotent call such as a Jira comment);
//! 3. once every target is done, sets the entry's `lifecycle`/`revision`/`last_ce_id` (and
//!    `created` for `IncidentCreated`), writes it, and only then lets the offset be committed.
//!
//! [`ActionError::Unavailable`] makes the consumer wait and retry the same fact (its partition
//! paused, nothing committed past it); [`ActionError::Rejected`] dead-letters the fact with the
//! reason and moves on. A record with `due` set is woken at that time through
//! [`FactAction::fire_due`], after a restart too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sre_intents::facts::Fact;

use super::entry::{IncidentEntry, TargetRecord};

/// Why an action did not happen.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    /// The provider is down, its circuit is open, or it throttled past the retries: the
    /// consumer waits (at least `retry_after` when given) and applies the same fact again.
    #[error("{target} unavailable: {reason}")]
    Unavailable {
        /// The target (`pagerduty`).
        target: &'static str,
        /// What failed (no secrets).
        reason: String,
        /// How long the provider asked to wait, if it did.
        retry_after: Option<Duration>,
    },
    /// The provider refused the fact for good (a 4xx other than 408/409/429, with its error
    /// text), or the fact cannot be acted on here (no route, no configuration): the fact goes
    /// to the dead-letter topic with this reason.
    #[error("{target} rejected the fact: {reason}")]
    Rejected {
        /// The target.
        target: &'static str,
        /// The provider's own error messages, or what is missing.
        reason: String,
    },
}

impl ActionError {
    /// The target that failed.
    pub fn target(&self) -> &'static str {
        match self {
            ActionError::Unavailable { target, .. } | ActionError::Rejected { target, .. } => {
                target
            }
        }
    }
}

/// One external system driven by facts.
pub trait FactAction: Send + Sync + 'static {
    /// The target's name: the ledger's key for its record and a metric label
    /// (`pagerduty`, `opsgenie`, `jira`, `github`, `grafana`).
    fn target(&self) -> &'static str;

    /// Applies `fact` for this target. `entry` is the incident's entry *before* this fact
    /// (its `created` fields, its lifecycle, and this target's previous record). Returns the
    /// target's new record, or `None` when the fact means nothing here (never paged, severity
    /// that does not page, incident already finished). `now` is the consumer's clock.
    fn apply<'a>(
        &'a self,
        fact: &'a Fact,
        entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>>;

    /// Called with every entry the ledger loads at start and every entry it writes, so a
    /// target can keep gauges that must be right after a restart (deferred pages). Cheap and
    /// synchronous; the default does nothing.
    fn observe(&self, entry: &IncidentEntry) {
        let _ = entry;
    }

    /// This target's record has `due` at or before `now`: do the deferred action (or drop it
    /// if the incident moved on) and return the new record (with `due` cleared). The default
    /// is for targets that never defer.
    fn fire_due<'a>(
        &'a self,
        entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>> {
        let _ = (entry, now);
        Box::pin(async { Ok(None) })
    }
}
