//! Jira Cloud (REST v3) as a [`FactAction`] target named `jira`.
//!
//! | fact | calls |
//! |---|---|
//! | `IncidentCreated` | `POST /rest/api/3/search/jql` for `labels = "sre-incident-<id>"` (all pages, `nextPageToken`); when none: `POST /rest/api/3/issue` |
//! | `IncidentAcknowledged` | `GET …/issue/<key>/comment` (is this fact's comment there?), `POST …/issue/<key>/comment` |
//! | `IncidentResolved` | the comment as above, then `GET …/issue/<key>?fields=status`; unless already done, `GET …/issue/<key>/transitions` and `POST` the first one into the `done` category (or `resolve_transition`) |
//! | `IncidentClosed` | the comment, then `close_transition` (default as resolve) unless the ticket is already there or no such transition is available (then the comment stands alone) |
//!
//! Issues are created with `summary` (the title, ≤ 255 characters), an ADF `description`
//! ([`render::jira_description`]), `issuetype` (`issue_type`, default `Task`), `priority` by
//! severity, and labels `sre-incident-<id>`, `severity-<sev>` plus `labels`.
//!
//! Every call goes through the `jira` circuit. Reads and transitions' reads are retried by the
//! shared client (5xx, timeouts, 429 with `Retry-After`, or `X-RateLimit-Reset`); creates and
//! comments are sent once (see [`super`]). Jira's 4xx other than 408/409/429 become
//! [`ActionError::Rejected`] with Jira's `errorMessages` and `errors`; anything that says
//! "later" becomes [`ActionError::Unavailable`] (with the wait Jira asked for, if any).
//! Credentials: basic auth with `email` and `api_token`; the values are [`SecretString`]s
//! and never appear in errors or `Debug` output.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use reqwest::header::ACCEPT;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use sre_config::{JiraConfig, JiraPriorities, SecretStore, SecretString};
use sre_intents::facts::{Created, Fact, FactBody, FactSeverity};
use url::Url;

use super::metrics::{outcome, TicketMetrics};
use super::render::{self, Note};
use super::routes::{Destination, Router};
use super::{capped, later, plan, unavailable, Plan, TicketingError};
use crate::facts::action::{ActionError, FactAction};
use crate::facts::entry::{IncidentEntry, TargetRecord};
use crate::providers::outcome::retry_after;
use crate::providers::{UpstreamClient, UpstreamResponse};

/// The target's name.
pub const TARGET: &str = "jira";
/// Search pages read at most (50 issues each).
pub const MAX_SEARCH_PAGES: usize = 10;
/// Most recent comments read to find this fact's comment.
pub const COMMENTS_READ: usize = 100;

/// The label that marks incident `id`'s ticket (Jira labels have no spaces).
pub fn incident_label(incident_id: &str) -> String {
    let clean: String = incident_id
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("sre-incident-{clean}").chars().take(255).collect()
}

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum JiraCredentials {
    /// Jira Cloud: `email` and `api_token`, basic auth.
    Basic {
        /// The account's email.
        email: SecretString,
        /// Its API token.
        api_token: SecretString,
    },
}

/// Jira's REST API, through the `jira` circuit. Cheap to clone.
#[derive(Clone, Debug)]
pub struct JiraClient {
    client: UpstreamClient,
    base: Url,
    credentials: JiraCredentials,
}

/// An issue found or created.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IssueRef {
    /// Numeric id (as text).
    pub id: String,
    /// `SRE-12`.
    pub key: String,
}

/// A workflow status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Name (`Done`).
    pub name: String,
    /// Category key (`new`, `indeterminate`, `done`).
    pub category: String,
}

/// A transition available from the issue's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Id to post.
    pub id: String,
    /// Transition name.
    pub name: String,
    /// Target status.
    pub to: Status,
}

#[derive(Deserialize)]
struct StatusWire {
    name: String,
    #[serde(rename = "statusCategory")]
    category: CategoryWire,
}

#[derive(Deserialize)]
struct CategoryWire {
    key: String,
}

impl From<StatusWire> for Status {
    fn from(s: StatusWire) -> Status {
        Status {
            name: s.name,
            category: s.category.key,
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(resp: &UpstreamResponse) -> Result<T, ActionError> {
    resp.json().map_err(|e| ActionError::Rejected {
        target: TARGET,
        reason: format!(
            "unexpected answer (HTTP {}): {}",
            resp.status().as_u16(),
            capped(&e.to_string())
        ),
    })
}

/// Jira's error body (`errorMessages` and `errors`) as one line, or the start of the text.
pub fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default, rename = "errorMessages")]
        messages: Vec<String>,
        #[serde(default)]
        errors: std::collections::BTreeMap<String, String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.messages.is_empty() || !e.errors.is_empty() => {
            let mut parts = e.messages;
            parts.extend(e.errors.into_iter().map(|(k, v)| format!("{k}: {v}")));
            capped(&parts.join("; "))
        }
        _ => capped(String::from_utf8_lossy(body).trim()),
    }
}

impl JiraClient {
    /// A client for the Jira at `base`.
    pub fn new(client: UpstreamClient, base: Url, credentials: JiraCredentials) -> Self {
        JiraClient {
            client,
            base,
            credentials,
        }
    }

    /// From `ticketing_integration.jira`, reading the credentials now.
    pub fn from_config(
        j: &JiraConfig,
        client: UpstreamClient,
        secrets: &SecretStore,
    ) -> Result<Self, TicketingError> {
        let read = |key: &str| {
            secrets
                .read(&j.secret_ref, key)
                .map_err(|source| TicketingError::Secret {
                    provider: TARGET,
                    source,
                })
        };
        let credentials = JiraCredentials::Basic {
            email: read("email")?,
            api_token: read("api_token")?,
        };
        Ok(JiraClient::new(client, j.base_url.clone(), credentials))
    }

    /// `<base>/browse/<key>`.
    pub fn browse_url(&self, key: &str) -> String {
        let mut url = self.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty().push("browse").push(key);
        }
        url.to_string()
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ActionError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| ActionError::Rejected {
                target: TARGET,
                reason: format!("base URL {} cannot take a path", self.base),
            })?
            .pop_if_empty()
            .extend(["rest", "api", "3"])
            .extend(segments);
        Ok(url)
    }

    async fn call(
        &self,
        correlation_id: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        once: bool,
    ) -> Result<UpstreamResponse, ActionError> {
        let client = if once {
            self.client.with_max_attempts(1)
        } else {
            self.client.clone()
        };
        let resp = client
            .send(Some(correlation_id), |http| {
                let mut b = http
                    .request(method.clone(), url.clone())
                    .header(ACCEPT, "application/json");
                let JiraCredentials::Basic { email, api_token } = &self.credentials;
                b = b.basic_auth(email.expose(), Some(api_token.expose()));
                match body {
                    Some(v) => b.json(v),
                    None => b,
                }
            })
            .await
            .map_err(|e| unavailable(TARGET, &e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = error_text(resp.body());
        if matches!(status, 408 | 409 | 429) || status >= 500 {
            return Err(later(TARGET, status, text, retry_after(resp.headers())));
        }
        Err(ActionError::Rejected {
            target: TARGET,
            reason: format!("HTTP {status}: {text}"),
        })
    }

    /// The oldest issue carrying `label`, reading every page of the JQL search.
    pub async fn find_by_label(
        &self,
        label: &str,
        correlation_id: &str,
    ) -> Result<Option<IssueRef>, ActionError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            issues: Vec<IssueRef>,
            #[serde(default, rename = "nextPageToken")]
            next: Option<String>,
            #[serde(default, rename = "isLast")]
            is_last: Option<bool>,
        }
        let jql = format!(
            "labels = \"{}\" ORDER BY created ASC",
            label.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let url = self.url(&["search", "jql"])?;
        let mut found: Vec<IssueRef> = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_SEARCH_PAGES {
            let mut body = json!({"jql": jql, "fields": ["status"], "maxResults": 50});
            if let Some(t) = &token {
                body["nextPageToken"] = t.clone().into();
            }
            let resp = self
                .call(
                    correlation_id,
                    Method::POST,
                    url.clone(),
                    Some(&body),
                    false,
                )
                .await?;
            let page: Page = decode(&resp)?;
            found.extend(page.issues);
            match page.next {
                Some(t) if page.is_last != Some(true) => token = Some(t),
                _ => break,
            }
        }
        found.sort_by_key(|i| (i.id.parse::<u64>().unwrap_or(u64::MAX), i.key.clone()));
        if found.len() > 1 {
            tracing::warn!(label, count = found.len(), keys = ?found.iter().map(|i| &i.key).collect::<Vec<_>>(), "more than one Jira issue carries the incident's label; using the oldest");
        }
        Ok(found.into_iter().next())
    }

    /// Creates an issue with `fields`. Sent once.
    pub async fn create_issue(
        &self,
        fields: Value,
        correlation_id: &str,
    ) -> Result<IssueRef, ActionError> {
        let url = self.url(&["issue"])?;
        let body = json!({ "fields": fields });
        let resp = self
            .call(correlation_id, Method::POST, url, Some(&body), true)
            .await?;
        decode(&resp)
    }

    /// The ADF bodies of the issue's most recent comments, newest first.
    pub async fn recent_comments(
        &self,
        key: &str,
        correlation_id: &str,
    ) -> Result<Vec<Value>, ActionError> {
        #[derive(Deserialize)]
        struct Comments {
            #[serde(default)]
            comments: Vec<CommentWire>,
        }
        #[derive(Deserialize)]
        struct CommentWire {
            #[serde(default)]
            body: Value,
        }
        let mut url = self.url(&["issue", key, "comment"])?;
        url.query_pairs_mut()
            .append_pair("orderBy", "-created")
            .append_pair("maxResults", &COMMENTS_READ.to_string());
        let resp = self
            .call(correlation_id, Method::GET, url, None, false)
            .await?;
        let c: Comments = decode(&resp)?;
        Ok(c.comments.into_iter().map(|c| c.body).collect())
    }

    /// Adds a comment (ADF `body`). Sent once.
    pub async fn add_comment(
        &self,
        key: &str,
        body: Value,
        correlation_id: &str,
    ) -> Result<(), ActionError> {
        let url = self.url(&["issue", key, "comment"])?;
        self.call(
            correlation_id,
            Method::POST,
            url,
            Some(&json!({ "body": body })),
            true,
        )
        .await?;
        Ok(())
    }

    /// The issue's status.
    pub async fn status(&self, key: &str, correlation_id: &str) -> Result<Status, ActionError> {
        #[derive(Deserialize)]
        struct Issue {
            fields: Fields,
        }
        #[derive(Deserialize)]
        struct Fields {
            status: StatusWire,
        }
        let mut url = self.url(&["issue", key])?;
        url.query_pairs_mut().append_pair("fields", "status");
        let resp = self
            .call(correlation_id, Method::GET, url, None, false)
            .await?;
        let i: Issue = decode(&resp)?;
        Ok(i.fields.status.into())
    }

    /// The transitions available from the issue's status.
    pub async fn transitions(
        &self,
        key: &str,
        correlation_id: &str,
    ) -> Result<Vec<Transition>, ActionError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            transitions: Vec<TransitionWire>,
        }
        #[derive(Deserialize)]
        struct TransitionWire {
            id: String,
            name: String,
            to: StatusWire,
        }
        let url = self.url(&["issue", key, "transitions"])?;
        let resp = self
            .call(correlation_id, Method::GET, url, None, false)
            .await?;
        let l: List = decode(&resp)?;
        Ok(l.transitions
            .into_iter()
            .map(|t| Transition {
                id: t.id,
                name: t.name,
                to: t.to.into(),
            })
            .collect())
    }

    /// Applies transition `id`. Sent once (a repeat is refused by Jira once the status moved).
    pub async fn transition(
        &self,
        key: &str,
        id: &str,
        correlation_id: &str,
    ) -> Result<(), ActionError> {
        let url = self.url(&["issue", key, "transitions"])?;
        self.call(
            correlation_id,
            Method::POST,
            url,
            Some(&json!({"transition": {"id": id}})),
            true,
        )
        .await?;
        Ok(())
    }
}

/// The `jira` target.
pub struct JiraTarget {
    jira: JiraClient,
    issue_type: String,
    priorities: Option<JiraPriorities>,
    labels: Vec<String>,
    resolve_transition: Option<String>,
    close_transition: Option<String>,
    router: Arc<Router>,
    create_for_resolved: bool,
    metrics: TicketMetrics,
}

impl std::fmt::Debug for JiraTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraTarget")
            .field("jira", &self.jira)
            .field("issue_type", &self.issue_type)
            .finish_non_exhaustive()
    }
}

/// Where a transition should lead.
enum Wanted<'a> {
    /// Any status of the `done` category.
    Done,
    /// A transition or status by name.
    Named(&'a str),
}

impl JiraTarget {
    /// The target, from `ticketing_integration.jira`.
    pub fn new(
        jira: JiraClient,
        config: &JiraConfig,
        router: Arc<Router>,
        create_for_resolved: bool,
        metrics: TicketMetrics,
    ) -> Self {
        JiraTarget {
            jira,
            issue_type: config.issue_type.clone(),
            priorities: config.priorities.enabled.then(|| config.priorities.clone()),
            labels: config.labels.clone(),
            resolve_transition: config.resolve_transition.clone(),
            close_transition: config.close_transition.clone(),
            router,
            create_for_resolved,
            metrics,
        }
    }

    fn count<T>(&self, action: &'static str, r: Result<T, ActionError>) -> Result<T, ActionError> {
        self.metrics.ticket(TARGET, action, outcome(&r));
        r
    }

    fn fields(&self, incident_id: &str, project: &str, c: &Created) -> Value {
        let mut labels = vec![
            incident_label(incident_id),
            format!("severity-{}", c.severity.as_str()),
        ];
        for l in &self.labels {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        let mut fields = json!({
            "project": {"key": project},
            "summary": render::title(c),
            "issuetype": {"name": self.issue_type},
            "description": render::jira_description(incident_id, c),
            "labels": labels,
        });
        if let Some(p) = &self.priorities {
            let name = match c.severity {
                FactSeverity::Critical => &p.critical,
                FactSeverity::High => &p.high,
                FactSeverity::Medium => &p.medium,
                FactSeverity::Low => &p.low,
                FactSeverity::Info => &p.info,
            };
            fields["priority"] = json!({ "name": name });
        }
        fields
    }

    /// Posts `note` unless the issue already has it.
    async fn comment_once(&self, key: &str, note: &Note, cid: &str) -> Result<(), ActionError> {
        let r = async {
            let recent = self.jira.recent_comments(key, cid).await?;
            if recent.iter().any(|b| note.is_in_adf(b)) {
                tracing::info!(key, "this fact's comment is already on the issue");
                return Ok(());
            }
            self.jira.add_comment(key, note.adf(), cid).await
        }
        .await;
        self.count("comment", r)
    }

    /// Moves the issue to `wanted` unless it is there; returns the status it ends in. With no
    /// such transition available: [`ActionError::Rejected`] when `required`, else the issue
    /// stays where it is (the fact's comment says what happened).
    async fn move_to(
        &self,
        key: &str,
        wanted: Wanted<'_>,
        required: bool,
        cid: &str,
    ) -> Result<String, ActionError> {
        let r = async {
            let now = self.jira.status(key, cid).await?;
            let there = match wanted {
                Wanted::Done => now.category == "done",
                Wanted::Named(n) => now.name.eq_ignore_ascii_case(n),
            };
            if there {
                return Ok(now.name);
            }
            let all = self.jira.transitions(key, cid).await?;
            let pick = all.iter().find(|t| match wanted {
                Wanted::Done => t.to.category == "done",
                Wanted::Named(n) => {
                    t.name.eq_ignore_ascii_case(n) || t.to.name.eq_ignore_ascii_case(n)
                }
            });
            let Some(t) = pick else {
                if !required {
                    tracing::info!(key, status = %now.name, "no closing transition available; the comment stands alone");
                    return Ok(now.name);
                }
                let what = match wanted {
                    Wanted::Done => "into the done category".to_owned(),
                    Wanted::Named(n) => format!("named {n:?}"),
                };
                let available: Vec<String> = all
                    .iter()
                    .map(|t| format!("{} → {}", t.name, t.to.name))
                    .collect();
                return Err(ActionError::Rejected {
                    target: TARGET,
                    reason: capped(&format!(
                        "{key} in status {:?} has no transition {what} (available: {})",
                        now.name,
                        available.join(", ")
                    )),
                });
            };
            self.jira.transition(key, &t.id, cid).await?;
            Ok(t.to.name.clone())
        }
        .await;
        self.count("transition", r)
    }

    async fn run(
        &self,
        fact: &Fact,
        entry: &IncidentEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        let cid = fact.correlation_id.as_str();
        let (key, project, mut state, mut detail) = match plan(
            TARGET,
            fact,
            entry,
            self.create_for_resolved,
        ) {
            Plan::Skip => {
                self.metrics.ticket(TARGET, "skip", "success");
                return Ok(None);
            }
            Plan::Existing(rec) => (
                rec.key.clone().unwrap_or_default(),
                rec.detail.get("project").cloned().unwrap_or_default(),
                rec.state.clone(),
                rec.detail.clone(),
            ),
            Plan::Open(created) => {
                let Some(Destination::Jira { project }) = self.router.route(created) else {
                    self.metrics.ticket(TARGET, "skip", "success");
                    return Ok(None);
                };
                let label = incident_label(&fact.incident_id);
                let found = self.jira.find_by_label(&label, cid).await;
                let found = self.count("found", found)?;
                let (key, state) = match found {
                    Some(issue) => {
                        tracing::info!(key = %issue.key, incident = %fact.incident_id, "found the incident's existing Jira issue");
                        (issue.key, "found")
                    }
                    None => {
                        let fields = self.fields(&fact.incident_id, &project, created);
                        let made = self.jira.create_issue(fields, cid).await;
                        let made = self.count("create", made)?;
                        tracing::info!(key = %made.key, incident = %fact.incident_id, "opened a Jira issue");
                        (made.key, "created")
                    }
                };
                (key, project, state.to_owned(), Default::default())
            }
        };
        match &fact.body {
            FactBody::IncidentCreated(_) => {}
            FactBody::IncidentAcknowledged { .. } => {
                if let Some(note) = render::note(fact) {
                    self.comment_once(&key, &note, cid).await?;
                }
                state = "acknowledged".into();
            }
            FactBody::IncidentResolved { .. } => {
                if let Some(note) = render::note(fact) {
                    self.comment_once(&key, &note, cid).await?;
                }
                let wanted = self
                    .resolve_transition
                    .as_deref()
                    .map_or(Wanted::Done, Wanted::Named);
                let status = self.move_to(&key, wanted, true, cid).await?;
                detail.insert("status".into(), status);
                state = "resolved".into();
            }
            FactBody::IncidentClosed { .. } => {
                if let Some(note) = render::note(fact) {
                    self.comment_once(&key, &note, cid).await?;
                }
                let wanted = self
                    .close_transition
                    .as_deref()
                    .or(self.resolve_transition.as_deref())
                    .map_or(Wanted::Done, Wanted::Named);
                let status = self.move_to(&key, wanted, false, cid).await?;
                detail.insert("status".into(), status);
                state = "closed".into();
            }
        }
        let mut rec = TargetRecord::for_fact(fact, state, now);
        detail.insert("project".into(), project);
        detail.insert("url".into(), self.jira.browse_url(&key));
        rec.key = Some(key);
        rec.detail = detail;
        Ok(Some(rec))
    }
}

impl FactAction for JiraTarget {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_no_spaces_and_errors_read_both_lists() {
        assert_eq!(incident_label("inc 1\t2"), "sre-incident-inc_1_2");
        let body =
            br#"{"errorMessages":["Oops"],"errors":{"issuetype":"Specify a valid issue type"}}"#;
        assert_eq!(
            error_text(body),
            "Oops; issuetype: Specify a valid issue type"
        );
        assert_eq!(
            error_text(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn credentials_never_print() {
        let c = JiraCredentials::Basic {
            email: SecretString::new("ana@example.com"),
            api_token: SecretString::new("ATATT-very-secret"),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("ATATT") && !s.contains("ana@"), "{s}");
    }
}
