//! GitHub Issues (REST, `X-GitHub-Api-Version: 2022-11-28`) as a [`FactAction`] target named
//! `github`.
//!
//! | fact | calls |
//! |---|---|
//! | `IncidentCreated` | `GET /repos/<repo>/issues?labels=sre-incident:<id>&state=all` (every page, by `Link: rel="next"`; not the search API, whose index lags); when none: `POST /repos/<repo>/labels` for each label (`422 already_exists` is fine), `POST /repos/<repo>/issues` |
//! | `IncidentAcknowledged` | `GET …/issues/<n>/comments` (is this fact's comment there?), `POST …/issues/<n>/comments` |
//! | `IncidentResolved` | the comment as above, then the `resolved` label (`POST …/issues/<n>/labels`) |
//! | `IncidentClosed` | the comment, then `PATCH …/issues/<n>` with `state: closed`, `state_reason: completed` |
//!
//! Labels: `sre-incident:<id>` (GitHub's 50-character limit: a longer id is cut and suffixed
//! with a hash of the whole id), `severity:<sev>`, plus `labels`. The issue body is
//! [`render::markdown_body`].
//!
//! Rate limits: the shared client waits out a primary limit (`403`/`429` with
//! `x-ratelimit-remaining: 0`, until `x-ratelimit-reset`) and a `429` with `retry-after`, up
//! to `max_retry_after`; a secondary limit answered as `403` with `retry-after` (or GitHub's
//! "secondary rate limit" message) is not retried by the client and becomes
//! [`ActionError::Unavailable`] with that wait (60 s when GitHub gives none, as its docs
//! advise) — never a rejection. Other 4xx but 408/409 are [`ActionError::Rejected`] with
//! GitHub's `message` and `errors`. The token is a [`SecretString`]: never printed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use reqwest::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use sre_config::{GithubConfig, SecretStore, SecretString};
use sre_intents::facts::{Fact, FactBody, FactSeverity};
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
pub const TARGET: &str = "github";
/// The REST API version asked for.
pub const API_VERSION: &str = "2022-11-28";
/// Pages of a listing read at most (100 items each).
pub const MAX_PAGES: usize = 10;
/// The wait assumed for a secondary rate limit that names none (GitHub: "at least one minute").
pub const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The label that marks incident `id`'s issue: `sre-incident:<id>`, within GitHub's 50
/// characters and without commas (the listing's label separator).
pub fn incident_label(incident_id: &str) -> String {
    let clean: String = incident_id
        .chars()
        .map(|c| if c == ',' || c.is_control() { '_' } else { c })
        .collect();
    let full = format!("sre-incident:{clean}");
    if full.chars().count() <= 50 {
        return full;
    }
    // FNV-1a over the whole id: stable across versions and processes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in incident_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let head: String = clean.chars().take(20).collect();
    format!("sre-incident:{head}~{h:016x}")
}

fn severity_color(s: FactSeverity) -> &'static str {
    match s {
        FactSeverity::Critical => "b60205",
        FactSeverity::High => "d93f0b",
        FactSeverity::Medium => "fbca04",
        FactSeverity::Low => "0e8a16",
        FactSeverity::Info => "c5def5",
    }
}

/// GitHub's REST API, through the `github` circuit. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GithubClient {
    client: UpstreamClient,
    api: Url,
    token: SecretString,
}

/// An issue found or created.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IssueRef {
    /// Number.
    pub number: u64,
    /// Web link.
    #[serde(default)]
    pub html_url: String,
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

/// GitHub's error body (`message`, `errors`) as one line, or the start of the text.
pub fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        message: String,
        #[serde(default)]
        errors: Vec<Value>,
    }
    match serde_json::from_slice::<Wire>(body) {
        Ok(w) if !w.message.is_empty() => {
            let mut s = w.message;
            for e in w.errors {
                let part = match &e {
                    Value::String(t) => t.clone(),
                    _ => ["resource", "field", "code", "message"]
                        .iter()
                        .filter_map(|k| e.get(*k).and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                s.push_str("; ");
                s.push_str(&part);
            }
            capped(&s)
        }
        _ => capped(String::from_utf8_lossy(body).trim()),
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(resp: &UpstreamResponse) -> Option<Url> {
    let link = resp.headers().get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| Url::parse(url.trim().trim_start_matches('<').trim_end_matches('>')).ok())
            .flatten()
    })
}

impl GithubClient {
    /// A client for the API at `api` (`https://api.github.com`).
    pub fn new(client: UpstreamClient, api: Url, token: SecretString) -> Self {
        GithubClient { client, api, token }
    }

    /// From `ticketing_integration.github`, reading the token now.
    pub fn from_config(
        g: &GithubConfig,
        client: UpstreamClient,
        secrets: &SecretStore,
    ) -> Result<Self, TicketingError> {
        let token =
            secrets
                .read(&g.secret_ref, "token")
                .map_err(|source| TicketingError::Secret {
                    provider: TARGET,
                    source,
                })?;
        Ok(GithubClient::new(client, g.api_url.clone(), token))
    }

    fn url(&self, repo: &str, segments: &[&str]) -> Result<Url, ActionError> {
        let Some((owner, name)) = repo.split_once('/') else {
            return Err(ActionError::Rejected {
                target: TARGET,
                reason: format!("{repo:?} is not owner/repo"),
            });
        };
        let mut url = self.api.clone();
        url.path_segments_mut()
            .map_err(|_| ActionError::Rejected {
                target: TARGET,
                reason: format!("API URL {} cannot take a path", self.api),
            })?
            .pop_if_empty()
            .extend(["repos", owner, name])
            .extend(segments);
        Ok(url)
    }

    /// Sends a request; the answer whatever its status (only upstream failures are errors).
    async fn raw(
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
        client
            .send(Some(correlation_id), |http| {
                let b = http
                    .request(method.clone(), url.clone())
                    .header(ACCEPT, "application/vnd.github+json")
                    .header("x-github-api-version", API_VERSION)
                    .header(
                        USER_AGENT,
                        concat!("sre-integration/", env!("CARGO_PKG_VERSION")),
                    )
                    .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()));
                match body {
                    Some(v) => b.json(v),
                    None => b,
                }
            })
            .await
            .map_err(|e| unavailable(TARGET, &e))
    }

    /// The answer when it is a success, else the error it means.
    fn check(resp: UpstreamResponse) -> Result<UpstreamResponse, ActionError> {
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = error_text(resp.body());
        let h = resp.headers();
        let exhausted = h
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        let throttled = matches!(status, 403 | 429)
            && (exhausted
                || h.contains_key("retry-after")
                || text.to_ascii_lowercase().contains("rate limit"));
        if throttled {
            let wait = retry_after(h).or(Some(SECONDARY_LIMIT_WAIT));
            return Err(later(TARGET, status, text, wait));
        }
        if matches!(status, 408 | 409) || status >= 500 {
            return Err(later(TARGET, status, text, retry_after(h)));
        }
        Err(ActionError::Rejected {
            target: TARGET,
            reason: format!("HTTP {status}: {text}"),
        })
    }

    async fn call(
        &self,
        correlation_id: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        once: bool,
    ) -> Result<UpstreamResponse, ActionError> {
        Self::check(self.raw(correlation_id, method, url, body, once).await?)
    }

    /// Every page of a listing starting at `url`, bounded by [`MAX_PAGES`]; `next` links
    /// outside the API's origin are not followed (the token goes nowhere else).
    async fn list(&self, correlation_id: &str, url: Url) -> Result<Vec<Value>, ActionError> {
        let mut out = Vec::new();
        let mut next = Some(url);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let resp = self
                .call(correlation_id, Method::GET, url, None, false)
                .await?;
            let items: Vec<Value> = decode(&resp)?;
            out.extend(items);
            next = next_link(&resp).filter(|u| u.origin() == self.api.origin());
        }
        Ok(out)
    }

    /// Creates label `name` unless it exists (`422 already_exists`).
    pub async fn ensure_label(
        &self,
        repo: &str,
        name: &str,
        color: &str,
        description: &str,
        correlation_id: &str,
    ) -> Result<(), ActionError> {
        let url = self.url(repo, &["labels"])?;
        let body = json!({"name": name, "color": color, "description": description});
        let resp = self
            .raw(correlation_id, Method::POST, url, Some(&body), false)
            .await?;
        if resp.status().as_u16() == 422
            && String::from_utf8_lossy(resp.body()).contains("already_exists")
        {
            return Ok(());
        }
        Self::check(resp).map(|_| ())
    }

    /// The oldest issue (pull requests excluded) carrying `label`, open or closed.
    pub async fn find_by_label(
        &self,
        repo: &str,
        label: &str,
        correlation_id: &str,
    ) -> Result<Option<IssueRef>, ActionError> {
        let mut url = self.url(repo, &["issues"])?;
        url.query_pairs_mut()
            .append_pair("labels", label)
            .append_pair("state", "all")
            .append_pair("sort", "created")
            .append_pair("direction", "asc")
            .append_pair("per_page", "100");
        let items = self.list(correlation_id, url).await?;
        let mut found: Vec<IssueRef> = items
            .into_iter()
            .filter(|i| i.get("pull_request").is_none())
            .filter_map(|i| serde_json::from_value(i).ok())
            .collect();
        found.sort_by_key(|i| i.number);
        if found.len() > 1 {
            tracing::warn!(
                repo,
                label,
                count = found.len(),
                "more than one GitHub issue carries the incident's label; using the oldest"
            );
        }
        Ok(found.into_iter().next())
    }

    /// Opens an issue. Sent once.
    pub async fn create_issue(
        &self,
        repo: &str,
        title: &str,
        body: &str,
        labels: &[String],
        correlation_id: &str,
    ) -> Result<IssueRef, ActionError> {
        let url = self.url(repo, &["issues"])?;
        let req = json!({"title": title, "body": body, "labels": labels});
        let resp = self
            .call(correlation_id, Method::POST, url, Some(&req), true)
            .await?;
        decode(&resp)
    }

    /// The bodies of the issue's comments updated since `since`.
    pub async fn comments_since(
        &self,
        repo: &str,
        number: u64,
        since: DateTime<Utc>,
        correlation_id: &str,
    ) -> Result<Vec<String>, ActionError> {
        let n = number.to_string();
        let mut url = self.url(repo, &["issues", &n, "comments"])?;
        url.query_pairs_mut()
            .append_pair(
                "since",
                &since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
            .append_pair("per_page", "100");
        let items = self.list(correlation_id, url).await?;
        Ok(items
            .into_iter()
            .filter_map(|c| c.get("body").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Comments on the issue. Sent once.
    pub async fn add_comment(
        &self,
        repo: &str,
        number: u64,
        body: &str,
        correlation_id: &str,
    ) -> Result<(), ActionError> {
        let n = number.to_string();
        let url = self.url(repo, &["issues", &n, "comments"])?;
        self.call(
            correlation_id,
            Method::POST,
            url,
            Some(&json!({ "body": body })),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Adds labels to the issue (idempotent).
    pub async fn add_labels(
        &self,
        repo: &str,
        number: u64,
        labels: &[&str],
        correlation_id: &str,
    ) -> Result<(), ActionError> {
        let n = number.to_string();
        let url = self.url(repo, &["issues", &n, "labels"])?;
        self.call(
            correlation_id,
            Method::POST,
            url,
            Some(&json!({ "labels": labels })),
            false,
        )
        .await
        .map(|_| ())
    }

    /// Closes the issue as completed (idempotent).
    pub async fn close(
        &self,
        repo: &str,
        number: u64,
        correlation_id: &str,
    ) -> Result<(), ActionError> {
        let n = number.to_string();
        let url = self.url(repo, &["issues", &n])?;
        let body = json!({"state": "closed", "state_reason": "completed"});
        self.call(correlation_id, Method::PATCH, url, Some(&body), false)
            .await
            .map(|_| ())
    }
}

/// The `github` target.
pub struct GithubTarget {
    github: GithubClient,
    labels: Vec<String>,
    resolved_label: String,
    router: Arc<Router>,
    create_for_resolved: bool,
    metrics: TicketMetrics,
}

impl std::fmt::Debug for GithubTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubTarget")
            .field("github", &self.github)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl GithubTarget {
    /// The target, from `ticketing_integration.github`.
    pub fn new(
        github: GithubClient,
        config: &GithubConfig,
        router: Arc<Router>,
        create_for_resolved: bool,
        metrics: TicketMetrics,
    ) -> Self {
        GithubTarget {
            github,
            labels: config.labels.clone(),
            resolved_label: config.resolved_label.clone(),
            router,
            create_for_resolved,
            metrics,
        }
    }

    fn count<T>(&self, action: &'static str, r: Result<T, ActionError>) -> Result<T, ActionError> {
        self.metrics.ticket(TARGET, action, outcome(&r));
        r
    }

    async fn comment_once(
        &self,
        repo: &str,
        number: u64,
        note: &Note,
        fact: &Fact,
        now: DateTime<Utc>,
    ) -> Result<(), ActionError> {
        let cid = fact.correlation_id.as_str();
        let since = fact.occurred_at.min(now) - chrono::Duration::hours(24);
        let r = async {
            let recent = self.github.comments_since(repo, number, since, cid).await?;
            if recent.iter().any(|b| note.is_in_markdown(b)) {
                tracing::info!(repo, number, "this fact's comment is already on the issue");
                return Ok(());
            }
            self.github
                .add_comment(repo, number, &note.markdown(), cid)
                .await
        }
        .await;
        self.count("comment", r)
    }

    async fn open(
        &self,
        repo: &str,
        fact: &Fact,
        created: &sre_intents::facts::Created,
    ) -> Result<(IssueRef, &'static str), ActionError> {
        let cid = fact.correlation_id.as_str();
        let label = incident_label(&fact.incident_id);
        let found = self.github.find_by_label(repo, &label, cid).await;
        if let Some(issue) = self.count("found", found)? {
            tracing::info!(repo, number = issue.number, incident = %fact.incident_id, "found the incident's existing GitHub issue");
            return Ok((issue, "found"));
        }
        let severity = format!("severity:{}", created.severity.as_str());
        let mut labels = vec![label.clone(), severity.clone()];
        let r = async {
            self.github
                .ensure_label(
                    repo,
                    &label,
                    "5319e7",
                    "Incident tracked by sre-integration",
                    cid,
                )
                .await?;
            self.github
                .ensure_label(
                    repo,
                    &severity,
                    severity_color(created.severity),
                    "Incident severity",
                    cid,
                )
                .await?;
            for l in &self.labels {
                if !labels.contains(l) {
                    self.github.ensure_label(repo, l, "ededed", "", cid).await?;
                    labels.push(l.clone());
                }
            }
            Ok(())
        }
        .await;
        self.count("label", r)?;
        let made = self
            .github
            .create_issue(
                repo,
                &render::title(created),
                &render::markdown_body(&fact.incident_id, created),
                &labels,
                cid,
            )
            .await;
        let made = self.count("create", made)?;
        tracing::info!(repo, number = made.number, incident = %fact.incident_id, "opened a GitHub issue");
        Ok((made, "created"))
    }

    async fn run(
        &self,
        fact: &Fact,
        entry: &IncidentEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<TargetRecord>, ActionError> {
        let cid = fact.correlation_id.as_str();
        let (number, repo, mut state, mut detail) =
            match plan(TARGET, fact, entry, self.create_for_resolved) {
                Plan::Skip => {
                    self.metrics.ticket(TARGET, "skip", "success");
                    return Ok(None);
                }
                Plan::Existing(rec) => {
                    let number = rec
                        .key
                        .as_deref()
                        .and_then(|k| k.parse::<u64>().ok())
                        .ok_or_else(|| ActionError::Rejected {
                            target: TARGET,
                            reason: format!("ledger key {:?} is not an issue number", rec.key),
                        })?;
                    let repo =
                        rec.detail
                            .get("repo")
                            .cloned()
                            .ok_or_else(|| ActionError::Rejected {
                                target: TARGET,
                                reason: "ledger record has no repo".into(),
                            })?;
                    (number, repo, rec.state.clone(), rec.detail.clone())
                }
                Plan::Open(created) => {
                    let Some(Destination::Github { repo }) = self.router.route(created) else {
                        self.metrics.ticket(TARGET, "skip", "success");
                        return Ok(None);
                    };
                    let (issue, state) = self.open(&repo, fact, created).await?;
                    let mut detail = std::collections::BTreeMap::new();
                    detail.insert("url".to_owned(), issue.html_url.clone());
                    (issue.number, repo, state.to_owned(), detail)
                }
            };
        match &fact.body {
            FactBody::IncidentCreated(_) => {}
            FactBody::IncidentAcknowledged { .. } => {
                if let Some(note) = render::note(fact) {
                    self.comment_once(&repo, number, &note, fact, now).await?;
                }
                state = "acknowledged".into();
            }
            FactBody::IncidentResolved { .. } => {
                if let Some(note) = render::note(fact) {
                    self.comment_once(&repo, number, &note, fact, now).await?;
                }
                let r = async {
                    self.github
                        .ensure_label(
                            &repo,
                            &self.resolved_label,
                            "0e8a16",
                            "Incident resolved",
                            cid,
                        )
                        .await?;
                    self.github
                        .add_labels(&repo, number, &[self.resolved_label.as_str()], cid)
                        .await
                }
                .await;
                self.count("label", r)?;
                state = "resolved".into();
            }
            FactBody::IncidentClosed { .. } => {
                if let Some(note) = render::note(fact) {
                    self.comment_once(&repo, number, &note, fact, now).await?;
                }
                let r = self.github.close(&repo, number, cid).await;
                self.count("close", r)?;
                state = "closed".into();
            }
        }
        let mut rec = TargetRecord::for_fact(fact, state, now);
        detail.insert("repo".into(), repo);
        rec.key = Some(number.to_string());
        rec.detail = detail;
        Ok(Some(rec))
    }
}

impl FactAction for GithubTarget {
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
    fn labels_fit_githubs_limit_and_stay_distinct() {
        assert_eq!(incident_label("inc-1"), "sre-incident:inc-1");
        assert_eq!(incident_label("a,b"), "sre-incident:a_b");
        let long_a = incident_label(&format!("{}a", "x".repeat(60)));
        let long_b = incident_label(&format!("{}b", "x".repeat(60)));
        assert!(long_a.chars().count() <= 50, "{long_a}");
        assert_ne!(long_a, long_b);
        assert_eq!(long_a, incident_label(&format!("{}a", "x".repeat(60))));
    }

    #[test]
    fn error_text_reads_message_and_errors() {
        let b = br#"{"message":"Validation Failed","errors":[{"resource":"Label","code":"already_exists","field":"name"}]}"#;
        assert_eq!(
            error_text(b),
            "Validation Failed; Label name already_exists"
        );
    }
}
