//! Payloads of the ArgoCD intents.
//!
//! `RecordFleetStateRequested` (key `fleet:<env>`, idempotency key `fleet:<env>:<polledAt ms>`),
//! once per successful poll:
//!
//! ```json
//! {"source":"argocd","environment":"dev","polledAt":"2026-11-28T22:00:00.000Z","applications":3,
//!  "health":{"Healthy":2,"Degraded":1},"sync":{"Synced":3},
//!  "failingOperations":[{"name":"payments","phase":"Failed"}],
//!  "unhealthy":[{"name":"payments","health":"Degraded","sync":"Synced"}],"outOfSync":[]}
//! ```
//!
//! `RecordHealthCheckRequested` (key `argocd:<env>/<app>`, idempotency key
//! `argocd:<env>:<app>:<health>:<sync>:<revision>`, so the same state always has the same key,
//! across restarts too):
//!
//! ```json
//! {"source":"argocd","environment":"dev","subject":{"kind":"Application","name":"payments","project":"default"},
//!  "previous":{"health":"Healthy","sync":"Synced"},"current":{"health":"Degraded","sync":"Synced","revision":"abc123"},
//!  "reason":"changed","observedAt":"2026-11-28T22:00:00.000Z"}
//! ```
//! `reason` is `baseline` (first poll), `changed`, `created` or `deleted`.

use std::collections::BTreeMap;

use serde::Serialize;

/// An application as the fleet lists it.
#[derive(Debug, Serialize)]
pub struct AppRef<'a> {
    /// Application name.
    pub name: &'a str,
    /// Health status.
    pub health: &'a str,
    /// Sync status.
    pub sync: &'a str,
}

/// A failing operation.
#[derive(Debug, Serialize)]
pub struct FailingOperation<'a> {
    /// Application name.
    pub name: &'a str,
    /// `Failed` or `Error`.
    pub phase: &'a str,
}

/// `RecordFleetStateRequested`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordFleetStateRequested<'a> {
    /// Always `argocd`.
    pub source: &'a str,
    /// Environment.
    pub environment: &'a str,
    /// When the poll completed.
    pub polled_at: &'a str,
    /// Applications seen.
    pub applications: usize,
    /// Counts by health status.
    pub health: BTreeMap<&'a str, usize>,
    /// Counts by sync status.
    pub sync: BTreeMap<&'a str, usize>,
    /// Applications whose last operation failed.
    pub failing_operations: Vec<FailingOperation<'a>>,
    /// Applications not Healthy.
    pub unhealthy: Vec<AppRef<'a>>,
    /// Applications not Synced.
    pub out_of_sync: Vec<AppRef<'a>>,
}

/// The checked subject.
#[derive(Debug, Serialize)]
pub struct Subject<'a> {
    /// `Application`.
    pub kind: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its ArgoCD project.
    pub project: &'a str,
}

/// A health state.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct HealthState<'a> {
    /// Health status (`Healthy`, `Degraded`, ..., `Deleted`).
    pub health: &'a str,
    /// Sync status.
    pub sync: &'a str,
    /// Synced revision, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<&'a str>,
}

/// `RecordHealthCheckRequested` for an ArgoCD application.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordHealthCheckRequested<'a> {
    /// Always `argocd`.
    pub source: &'a str,
    /// Environment.
    pub environment: &'a str,
    /// The application.
    pub subject: Subject<'a>,
    /// The state before, if known.
    pub previous: Option<HealthState<'a>>,
    /// The state now.
    pub current: HealthState<'a>,
    /// `baseline`, `changed`, `created` or `deleted`.
    pub reason: &'a str,
    /// When it was observed.
    pub observed_at: &'a str,
}
