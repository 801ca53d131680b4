//! The part of ArgoCD's `GET /api/v1/applications` answer the poller needs, and what changed
//! between two polls. Only the needed fields are deserialized (serde skips the rest without
//! building it), so a fleet of thousands of applications parses into a few hundred bytes each.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `{metadata, items[]}`.
#[derive(Debug, Deserialize)]
pub struct ApplicationList {
    /// The applications (`null` when there are none).
    #[serde(default)]
    pub items: Option<Vec<Application>>,
}

/// One application.
#[derive(Debug, Deserialize)]
pub struct Application {
    /// `metadata`.
    pub metadata: Metadata,
    /// `spec`.
    #[serde(default)]
    pub spec: Spec,
    /// `status`.
    #[serde(default)]
    pub status: Status,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    /// Name.
    pub name: String,
}

/// `spec`.
#[derive(Debug, Default, Deserialize)]
pub struct Spec {
    /// ArgoCD project.
    #[serde(default)]
    pub project: String,
}

/// `status`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `status.health`.
    #[serde(default)]
    pub health: Option<StatusField>,
    /// `status.sync`.
    #[serde(default)]
    pub sync: Option<SyncField>,
    /// `status.operationState`.
    #[serde(default)]
    pub operation_state: Option<OperationState>,
}

/// `{status}`.
#[derive(Debug, Default, Deserialize)]
pub struct StatusField {
    /// The status.
    #[serde(default)]
    pub status: Option<String>,
}

/// `status.sync`.
#[derive(Debug, Default, Deserialize)]
pub struct SyncField {
    /// `Synced`, `OutOfSync`, `Unknown`.
    #[serde(default)]
    pub status: Option<String>,
    /// Synced revision.
    #[serde(default)]
    pub revision: Option<String>,
}

/// `status.operationState`.
#[derive(Debug, Default, Deserialize)]
pub struct OperationState {
    /// `Running`, `Succeeded`, `Failed`, `Error`, `Terminating`.
    #[serde(default)]
    pub phase: Option<String>,
}

/// What the poller keeps of an application between polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppState {
    /// ArgoCD project.
    pub project: String,
    /// Health status (`Unknown` when absent).
    pub health: String,
    /// Sync status (`Unknown` when absent).
    pub sync: String,
    /// Synced revision.
    pub revision: Option<String>,
    /// Last operation's phase.
    pub operation: Option<String>,
}

/// Parses a list into name → state.
pub fn parse(body: &[u8]) -> Result<BTreeMap<String, AppState>, serde_json::Error> {
    let list: ApplicationList = serde_json::from_slice(body)?;
    Ok(list
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let st = a.status;
            (
                a.metadata.name,
                AppState {
                    project: a.spec.project,
                    health: st
                        .health
                        .and_then(|h| h.status)
                        .unwrap_or_else(|| "Unknown".into()),
                    sync: st
                        .sync
                        .as_ref()
                        .and_then(|s| s.status.clone())
                        .unwrap_or_else(|| "Unknown".into()),
                    revision: st.sync.and_then(|s| s.revision),
                    operation: st.operation_state.and_then(|o| o.phase),
                },
            )
        })
        .collect())
}

/// A change to report.
#[derive(Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// Application name.
    pub name: &'a str,
    /// Before (none for baseline and created).
    pub previous: Option<&'a AppState>,
    /// Now (for deleted: the last known state).
    pub current: &'a AppState,
    /// `baseline`, `changed`, `created`, `deleted`.
    pub reason: &'static str,
}

/// What to report between `before` (none on the first poll) and `now`: every application on
/// the first poll, then those whose health or sync changed, appeared, or disappeared.
pub fn changes<'a>(
    before: Option<&'a BTreeMap<String, AppState>>,
    now: &'a BTreeMap<String, AppState>,
) -> Vec<Change<'a>> {
    let Some(before) = before else {
        return now
            .iter()
            .map(|(name, current)| Change {
                name,
                previous: None,
                current,
                reason: "baseline",
            })
            .collect();
    };
    let mut out = Vec::new();
    for (name, current) in now {
        match before.get(name) {
            None => out.push(Change {
                name,
                previous: None,
                current,
                reason: "created",
            }),
            Some(prev) if prev.health != current.health || prev.sync != current.sync => {
                out.push(Change {
                    name,
                    previous: Some(prev),
                    current,
                    reason: "changed",
                })
            }
            Some(_) => {}
        }
    }
    for (name, prev) in before {
        if !now.contains_key(name) {
            out.push(Change {
                name,
                previous: Some(prev),
                current: prev,
                reason: "deleted",
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(apps: &[(&str, &str, &str)]) -> Vec<u8> {
        let items: Vec<_> = apps
            .iter()
            .map(|(n, h, s)| {
                serde_json::json!({"metadata": {"name": n, "namespace": "argocd", "labels": {"environment": "dev"}},
                    "spec": {"project": "default", "source": {"repoURL": "https://git"}},
                    "status": {"health": {"status": h}, "sync": {"status": s, "revision": "abc"}, "resources": [{"kind": "Deployment"}]}})
            })
            .collect();
        serde_json::json!({"metadata": {"resourceVersion": "1"}, "items": items})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn parses_only_what_it_needs_and_diffs() {
        let a = parse(&list(&[
            ("api", "Healthy", "Synced"),
            ("web", "Healthy", "Synced"),
        ]))
        .unwrap();
        assert_eq!(a["api"].health, "Healthy");
        assert_eq!(a["api"].revision.as_deref(), Some("abc"));
        let first = changes(None, &a);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|c| c.reason == "baseline"));
        assert!(
            changes(Some(&a), &a).is_empty(),
            "nothing changed, nothing to report"
        );

        let b = parse(&list(&[
            ("api", "Degraded", "Synced"),
            ("db", "Healthy", "OutOfSync"),
        ]))
        .unwrap();
        let c = changes(Some(&a), &b);
        let reasons: Vec<_> = c.iter().map(|c| (c.name, c.reason)).collect();
        assert_eq!(
            reasons,
            [("api", "changed"), ("db", "created"), ("web", "deleted")]
        );
    }

    #[test]
    fn an_empty_fleet_is_null_items() {
        assert!(parse(br#"{"metadata":{},"items":null}"#)
            .unwrap()
            .is_empty());
    }
}
