//! One incident's ledger entry (DESIGN §3.3b): what the integration has done for it, per
//! target, and the last fact applied. Serialized as one JSON value per incident (the value of
//! the compacted `sre.integration.incidents.v1` topic, or a line of the local ledger log).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sre_intents::facts::{Created, Fact, FactBody};

/// Where an incident stands, as far as the facts applied say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// No fact applied yet.
    #[default]
    Unknown,
    /// `IncidentCreated` applied.
    Open,
    /// `IncidentAcknowledged` applied.
    Acknowledged,
    /// `IncidentResolved` applied.
    Resolved,
    /// `IncidentClosed` applied.
    Closed,
}

impl Lifecycle {
    /// The lifecycle after `fact`.
    pub fn after(fact: &Fact) -> Lifecycle {
        match fact.body {
            FactBody::IncidentCreated(_) => Lifecycle::Open,
            FactBody::IncidentAcknowledged { .. } => Lifecycle::Acknowledged,
            FactBody::IncidentResolved { .. } => Lifecycle::Resolved,
            FactBody::IncidentClosed { .. } => Lifecycle::Closed,
        }
    }

    /// Resolved or closed: nothing should page or open a ticket any more.
    pub fn is_finished(self) -> bool {
        matches!(self, Lifecycle::Resolved | Lifecycle::Closed)
    }
}

/// What one target (a pager, a ticket tracker, Grafana) has done for an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The provider-side key: PagerDuty `dedup_key`, OpsGenie `alias`, Jira issue key, GitHub
    /// issue number, Grafana annotation id. `None` until something exists there.
    #[serde(default)]
    pub key: Option<String>,
    /// The last thing done, from the target's own small vocabulary (`triggered`,
    /// `acknowledged`, `resolved`, `deferred`, `dropped`, `created`, `commented`, `closed`, …):
    /// shown by `incidents show`, never a metric label.
    pub state: String,
    /// When a deferred action is due (a high page outside business hours); `None` otherwise.
    /// The consumer wakes the target at this time through
    /// [`FactAction::fire_due`](super::action::FactAction::fire_due).
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
    /// Revision of the last fact applied to this target: a fact at or below it is a replay and
    /// is not applied again.
    pub revision: u64,
    /// `ce_id` of that fact.
    pub ce_id: String,
    /// Correlation id of the call that made this state (also on the provider call).
    pub correlation_id: String,
    /// When this record was written.
    pub updated_at: DateTime<Utc>,
    /// Provider-specific facts worth showing and needed later (route, team, URL, request id).
    #[serde(default)]
    pub detail: BTreeMap<String, String>,
}

impl TargetRecord {
    /// A record for `fact` with `state`, stamped now; fill in `key`, `due` and `detail`.
    pub fn for_fact(fact: &Fact, state: impl Into<String>, now: DateTime<Utc>) -> TargetRecord {
        TargetRecord {
            key: None,
            state: state.into(),
            due: None,
            revision: fact.revision,
            ce_id: fact.ce_id.clone(),
            correlation_id: fact.correlation_id.clone(),
            updated_at: now,
            detail: BTreeMap::new(),
        }
    }
}

/// One incident's ledger entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentEntry {
    /// The incident.
    pub incident_id: String,
    /// `IncidentCreated`'s fields, kept so later facts and deferred actions can route and
    /// describe the incident.
    #[serde(default)]
    pub created: Option<Created>,
    /// Where the incident stands after the last fully applied fact.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Revision of the last fact applied to every target (a fact at or below it is a replay).
    #[serde(default)]
    pub revision: u64,
    /// `ce_id` of that fact.
    #[serde(default)]
    pub last_ce_id: Option<String>,
    /// When the entry last changed.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Per target name (`pagerduty`, `opsgenie`, `jira`, `github`, `grafana`).
    #[serde(default)]
    pub targets: BTreeMap<String, TargetRecord>,
}

impl IncidentEntry {
    /// An empty entry for `incident_id`.
    pub fn new(incident_id: impl Into<String>) -> IncidentEntry {
        IncidentEntry {
            incident_id: incident_id.into(),
            ..IncidentEntry::default()
        }
    }

    /// The record of `target`, if it did anything yet.
    pub fn target(&self, target: &str) -> Option<&TargetRecord> {
        self.targets.get(target)
    }
}
