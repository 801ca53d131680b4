//! Grafana's HTTP API: links to dashboards for a time range (the spec's `dashboard_url`) and
//! annotations (create, then set the end time), for the agent's tools and the tickets flow.
//!
//! - Every call goes through the `grafana` circuit and the shared upstream client, with
//!   `Authorization: Bearer <api_key>` when Grafana's `secret_ref` (key `api_key`) is
//!   configured. The key is a [`SecretString`]: it never prints.
//! - [`GrafanaClient::dashboard_url`] builds
//!   `<grafana>/d/<uid>/<slug>?orgId=<n>&from=<ms>&to=<ms>&var-<name>=<value>`. The dashboard is
//!   looked up with `GET /api/search?type=dash-db` — by uid (`dashboardUIDs`), or by title
//!   (`query`) and/or tag (`tag`): a title search prefers exact (case-insensitive) title
//!   matches; more than one candidate is [`GrafanaError::Ambiguous`] with the candidates, none
//!   is [`GrafanaError::NotFound`].
//! - Annotations: [`GrafanaClient::create_annotation`] (`POST /api/annotations`, returns the
//!   id) is sent **once**, never retried, since a retry after a lost answer would create a
//!   duplicate; [`GrafanaClient::end_annotation`] (`PATCH /api/annotations/<id>` with
//!   `timeEnd`) sets a value, so it is retried like a read, as is
//!   [`GrafanaClient::update_annotation`] (text and/or end); [`GrafanaClient::find_annotations`]
//!   (`GET /api/annotations?tags=..`) finds the annotations of an incident before creating one.
//! - Grafana's refusals become typed errors: 401/403 → [`GrafanaError::Unauthorized`], 404 →
//!   [`GrafanaError::NotFound`], other 4xx → [`GrafanaError::Rejected`].

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::RequestBuilder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sre_config::SecretString;
use url::Url;

use crate::providers::{UpstreamClient, UpstreamError, UpstreamResponse};

/// Dashboards read from one search at most.
pub const MAX_SEARCH_HITS: usize = 100;
/// Characters of an error body kept in an error.
const ERROR_TEXT_CHARS: usize = 500;

/// Why a Grafana call failed.
#[derive(Debug, thiserror::Error)]
pub enum GrafanaError {
    /// No such dashboard or annotation.
    #[error("grafana: not found: {0}")]
    NotFound(String),
    /// More than one dashboard matches the search.
    #[error("grafana: {} dashboards match: {}", .0.len(), describe(.0))]
    Ambiguous(Vec<DashboardHit>),
    /// Grafana refused the API key (HTTP 401/403).
    #[error("grafana: HTTP {status}: the API key was refused: {message}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// Grafana's message.
        message: String,
    },
    /// Grafana refused the request for another reason.
    #[error("grafana: HTTP {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Grafana's message.
        message: String,
    },
    /// Grafana could not be reached or answered an HTTP error (retries exhausted).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// An answer that is not Grafana's JSON.
    #[error("grafana: unexpected answer (HTTP {status}): {reason}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// A request this client refuses to send.
    #[error("grafana: {0}")]
    Invalid(String),
}

fn describe(hits: &[DashboardHit]) -> String {
    hits.iter()
        .map(|h| format!("{:?} (uid {})", h.title, h.uid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DashboardRef {
    /// By uid.
    Uid(String),
    /// By title and/or tag (at least one).
    Search {
        /// Title (Grafana matches substrings; exact matches win).
        title: Option<String>,
        /// Tag.
        tag: Option<String>,
    },
}

/// A dashboard found by a search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardHit {
    /// Uid.
    pub uid: String,
    /// Title.
    pub title: String,
    /// Grafana's path to it (`/d/<uid>/<slug>`).
    #[serde(default)]
    pub url: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Folder.
    #[serde(default)]
    pub folder_title: Option<String>,
}

impl DashboardHit {
    /// The slug: from Grafana's url when it has one, else made from the title.
    pub fn slug(&self) -> String {
        let mut parts = self.url.trim_end_matches('/').rsplit('/');
        match (parts.next(), parts.next()) {
            (Some(slug), Some(uid)) if uid == self.uid && !slug.is_empty() => slug.to_owned(),
            _ => slugify(&self.title),
        }
    }
}

/// A new annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAnnotation {
    /// Dashboard it belongs to; an organisation-wide annotation when absent.
    pub dashboard_uid: Option<String>,
    /// Panel it belongs to.
    pub panel_id: Option<i64>,
    /// Start.
    pub time: DateTime<Utc>,
    /// End, for a region; set later with [`GrafanaClient::end_annotation`].
    pub time_end: Option<DateTime<Utc>>,
    /// Tags.
    pub tags: Vec<String>,
    /// Text.
    pub text: String,
}

/// Annotations read from one lookup at most.
pub const MAX_ANNOTATIONS_READ: usize = 100;

/// An annotation as `GET /api/annotations` lists it (the fields used here).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    /// Id.
    pub id: i64,
    /// Dashboard uid; absent or empty for an organisation-wide annotation.
    #[serde(default, rename = "dashboardUID")]
    pub dashboard_uid: Option<String>,
    /// Start (epoch ms).
    #[serde(default)]
    pub time: i64,
    /// End (epoch ms; equal to `time` for a point).
    #[serde(default)]
    pub time_end: i64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Text.
    #[serde(default)]
    pub text: String,
}

/// The client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GrafanaClient {
    client: UpstreamClient,
    base: Url,
    api_key: Option<SecretString>,
    org_id: u64,
}

impl GrafanaClient {
    /// A client for the Grafana at `base` (e.g. `https://grafana.example.com/`), through
    /// `client` (the `grafana` upstream), sending `api_key` as a bearer token.
    pub fn new(client: UpstreamClient, base: Url, api_key: Option<SecretString>) -> Self {
        GrafanaClient {
            client,
            base,
            api_key,
            org_id: 1,
        }
    }

    /// The organisation dashboard links point into (default 1).
    pub fn with_org_id(mut self, org_id: u64) -> Self {
        self.org_id = org_id;
        self
    }

    /// A link to `dashboard` showing `[from, to]` with template `variables` (a name may
    /// repeat for a multi-value variable).
    pub async fn dashboard_url(
        &self,
        dashboard: &DashboardRef,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        variables: &[(String, String)],
        correlation_id: Option<&str>,
    ) -> Result<Url, GrafanaError> {
        if to <= from {
            return Err(GrafanaError::Invalid("to is not after from".into()));
        }
        if let Some((name, _)) = variables
            .iter()
            .find(|(n, _)| n.is_empty() || !n.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            return Err(GrafanaError::Invalid(format!(
                "variable name {name:?} is not letters, digits and _"
            )));
        }
        let hit = self.find_dashboard(dashboard, correlation_id).await?;
        let mut url = self.join(&format!("d/{}/{}", hit.uid, hit.slug()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("orgId", &self.org_id.to_string())
                .append_pair("from", &from.timestamp_millis().to_string())
                .append_pair("to", &to.timestamp_millis().to_string());
            for (name, value) in variables {
                q.append_pair(&format!("var-{name}"), value);
            }
        }
        Ok(url)
    }

    /// The one dashboard `dashboard` designates.
    pub async fn find_dashboard(
        &self,
        dashboard: &DashboardRef,
        correlation_id: Option<&str>,
    ) -> Result<DashboardHit, GrafanaError> {
        let mut params = vec![
            ("type", "dash-db".to_owned()),
            ("limit", MAX_SEARCH_HITS.to_string()),
        ];
        let (exact_title, wanted) = match dashboard {
            DashboardRef::Uid(uid) if uid.trim().is_empty() => {
                return Err(GrafanaError::Invalid("empty dashboard uid".into()))
            }
            DashboardRef::Uid(uid) => {
                params.push(("dashboardUIDs", uid.clone()));
                (None, format!("dashboard uid {uid:?}"))
            }
            DashboardRef::Search { title, tag } => {
                let title = title.as_deref().filter(|t| !t.trim().is_empty());
                let tag = tag.as_deref().filter(|t| !t.trim().is_empty());
                if title.is_none() && tag.is_none() {
                    return Err(GrafanaError::Invalid(
                        "a dashboard search needs a title or a tag".into(),
                    ));
                }
                if let Some(t) = title {
                    params.push(("query", t.to_owned()));
                }
                if let Some(t) = tag {
                    params.push(("tag", t.to_owned()));
                }
                (
                    title.map(str::to_owned),
                    format!("dashboard with title {title:?} and tag {tag:?}"),
                )
            }
        };
        let mut url = self.join("api/search")?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let resp = self
            .client
            .send(correlation_id, |http| self.auth(http.get(url.clone())))
            .await?;
        let status = check(&resp)?;
        let mut hits: Vec<DashboardHit> = resp.json().map_err(|e| GrafanaError::Decode {
            status,
            reason: e.to_string(),
        })?;
        hits.truncate(MAX_SEARCH_HITS);
        if let DashboardRef::Uid(uid) = dashboard {
            hits.retain(|h| &h.uid == uid);
        }
        if let Some(title) = exact_title {
            let exact: Vec<DashboardHit> = hits
                .iter()
                .filter(|h| h.title.to_lowercase() == title.to_lowercase())
                .cloned()
                .collect();
            if !exact.is_empty() {
                hits = exact;
            }
        }
        match hits.len() {
            0 => Err(GrafanaError::NotFound(wanted)),
            1 => Ok(hits.remove(0)),
            _ => Err(GrafanaError::Ambiguous(hits)),
        }
    }

    /// Creates an annotation; returns its id. Sent once (see the module docs).
    pub async fn create_annotation(
        &self,
        annotation: &NewAnnotation,
        correlation_id: Option<&str>,
    ) -> Result<i64, GrafanaError> {
        if let Some(end) = annotation.time_end {
            if end < annotation.time {
                return Err(GrafanaError::Invalid("timeEnd is before time".into()));
            }
        }
        let mut body = json!({
            "time": annotation.time.timestamp_millis(),
            "tags": annotation.tags,
            "text": annotation.text,
        });
        if let Some(uid) = &annotation.dashboard_uid {
            body["dashboardUID"] = uid.clone().into();
        }
        if let Some(panel) = annotation.panel_id {
            body["panelId"] = panel.into();
        }
        if let Some(end) = annotation.time_end {
            body["timeEnd"] = end.timestamp_millis().into();
        }
        let url = self.join("api/annotations")?;
        let resp = self
            .client
            .with_max_attempts(1)
            .send(correlation_id, |http| {
                self.auth(http.post(url.clone())).json(&body)
            })
            .await?;
        let status = check(&resp)?;
        #[derive(Deserialize)]
        struct Created {
            id: i64,
        }
        let created: Created = resp.json().map_err(|e| GrafanaError::Decode {
            status,
            reason: e.to_string(),
        })?;
        Ok(created.id)
    }

    /// Sets the end time of annotation `id` (making it a region).
    pub async fn end_annotation(
        &self,
        id: i64,
        time_end: DateTime<Utc>,
        correlation_id: Option<&str>,
    ) -> Result<(), GrafanaError> {
        let url = self.join(&format!("api/annotations/{id}"))?;
        let body = json!({"timeEnd": time_end.timestamp_millis()});
        let resp = self
            .client
            .send(correlation_id, |http| {
                self.auth(http.patch(url.clone())).json(&body)
            })
            .await?;
        if resp.status().as_u16() == 404 {
            return Err(GrafanaError::NotFound(format!("annotation {id}")));
        }
        check(&resp)?;
        Ok(())
    }

    /// Annotations carrying every one of `tags` (`GET /api/annotations?tags=..`), newest
    /// first, at most `limit` (capped at [`MAX_ANNOTATIONS_READ`]).
    pub async fn find_annotations(
        &self,
        tags: &[String],
        limit: usize,
        correlation_id: Option<&str>,
    ) -> Result<Vec<Annotation>, GrafanaError> {
        if tags.is_empty() {
            return Err(GrafanaError::Invalid(
                "an annotation lookup needs at least one tag".into(),
            ));
        }
        let mut url = self.join("api/annotations")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("type", "annotation")
                .append_pair("limit", &limit.min(MAX_ANNOTATIONS_READ).to_string());
            for t in tags {
                q.append_pair("tags", t);
            }
        }
        let resp = self
            .client
            .send(correlation_id, |http| self.auth(http.get(url.clone())))
            .await?;
        let status = check(&resp)?;
        let mut found: Vec<Annotation> = resp.json().map_err(|e| GrafanaError::Decode {
            status,
            reason: e.to_string(),
        })?;
        found.truncate(MAX_ANNOTATIONS_READ);
        Ok(found)
    }

    /// Changes annotation `id`'s text and/or end time (`PATCH /api/annotations/<id>`, which
    /// keeps the fields not sent). Sets values, so it is retried like a read.
    pub async fn update_annotation(
        &self,
        id: i64,
        text: Option<&str>,
        time_end: Option<DateTime<Utc>>,
        correlation_id: Option<&str>,
    ) -> Result<(), GrafanaError> {
        let mut body = json!({});
        if let Some(text) = text {
            body["text"] = text.into();
        }
        if let Some(end) = time_end {
            body["timeEnd"] = end.timestamp_millis().into();
        }
        let url = self.join(&format!("api/annotations/{id}"))?;
        let resp = self
            .client
            .send(correlation_id, |http| {
                self.auth(http.patch(url.clone())).json(&body)
            })
            .await?;
        if resp.status().as_u16() == 404 {
            return Err(GrafanaError::NotFound(format!("annotation {id}")));
        }
        check(&resp)?;
        Ok(())
    }

    fn join(&self, path: &str) -> Result<Url, GrafanaError> {
        self.base
            .join(path)
            .map_err(|e| GrafanaError::Invalid(e.to_string()))
    }

    fn auth(&self, req: RequestBuilder) -> RequestBuilder {
        let req = req.header(ACCEPT, "application/json");
        match &self.api_key {
            Some(key) => req.header(AUTHORIZATION, format!("Bearer {}", key.expose())),
            None => req,
        }
    }
}

/// The status of a 2xx answer, or Grafana's refusal as a typed error.
fn check(resp: &UpstreamResponse) -> Result<u16, GrafanaError> {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(status);
    }
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let message = resp
        .json::<Message>()
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(resp.body()).trim().to_owned())
        .chars()
        .take(ERROR_TEXT_CHARS)
        .collect();
    Err(match status {
        401 | 403 => GrafanaError::Unauthorized { status, message },
        404 => GrafanaError::NotFound(message),
        _ => GrafanaError::Rejected { status, message },
    })
}

/// Grafana's slug of a title: lowercase, runs of anything but letters and digits as one `-`.
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(uid: &str, title: &str, url: &str) -> DashboardHit {
        DashboardHit {
            uid: uid.into(),
            title: title.into(),
            url: url.into(),
            tags: vec![],
            folder_title: None,
        }
    }

    #[test]
    fn slugs_come_from_grafanas_url_or_the_title() {
        assert_eq!(
            hit("abc", "X", "/grafana/d/abc/api-latency").slug(),
            "api-latency"
        );
        assert_eq!(
            hit("abc", "API Latency (p99) / EU", "").slug(),
            "api-latency-p99-eu"
        );
        assert_eq!(hit("abc", "Über Dash", "/d/other/x").slug(), "über-dash");
        assert_eq!(slugify("  --a__b--  "), "a-b");
    }

    #[test]
    fn ambiguity_lists_every_candidate() {
        let e = GrafanaError::Ambiguous(vec![hit("a", "API", ""), hit("b", "API v2", "")]);
        let s = e.to_string();
        assert!(
            s.contains("2 dashboards") && s.contains("uid a") && s.contains("uid b"),
            "{s}"
        );
    }
}
