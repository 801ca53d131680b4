//! A fake Jira Cloud (REST v3), on [`Server`] (so it records every request and can fail,
//! stall and throttle on command):
//!
//! - `POST /rest/api/3/issue`: checks the project, issue type, priority, summary (≤ 255),
//!   labels (no spaces) and that `description` is an ADF document; answers `201`
//!   `{"id","key","self"}` or `400` `{"errorMessages":[],"errors":{<field>: <message>}}` with
//!   Jira's messages.
//! - `POST /rest/api/3/search/jql`: `labels = "<label>"` (optionally `ORDER BY created ASC`),
//!   `maxResults` (capped by the fake's `page_size`), `nextPageToken` paging
//!   (`{"issues":[…],"nextPageToken":…,"isLast":…}`); other JQL is a `400` with
//!   `errorMessages`.
//! - `GET /rest/api/3/issue/<key>` (`fields=status`), `GET|POST …/<key>/comment` (ADF bodies
//!   stored as sent; `orderBy=-created`, `maxResults`), `GET|POST …/<key>/transitions`
//!   (To Do → In Progress → Done, each with its `statusCategory`; a transition to the current
//!   status is not offered; an unknown id is a `400`).
//! - Basic auth (`email:api_token`) required; `401` otherwise. Unknown issues are `404`
//!   `{"errorMessages":["Issue does not exist or you do not have permission to see it."]}`.
//!
//! [`throttle`] builds Jira's `429` (with `Retry-After` and the `X-RateLimit-*` headers).

use std::ops::Deref;
use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::faults::{Request, Server};
use crate::upstream::Reply;

/// A workflow status: name and category key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Id.
    pub id: &'static str,
    /// Name.
    pub name: &'static str,
    /// `new`, `indeterminate` or `done`.
    pub category: &'static str,
}

/// The workflow: To Do, In Progress, Done (a fresh Jira Software project's).
pub const WORKFLOW: [Status; 3] = [
    Status {
        id: "10000",
        name: "To Do",
        category: "new",
    },
    Status {
        id: "3",
        name: "In Progress",
        category: "indeterminate",
    },
    Status {
        id: "10001",
        name: "Done",
        category: "done",
    },
];

/// Transition ids and names, one per target status of [`WORKFLOW`].
const TRANSITIONS: [(&str, &str, usize); 3] = [
    ("11", "To Do", 0),
    ("21", "In Progress", 1),
    ("31", "Done", 2),
];

/// An issue.
#[derive(Clone, Debug)]
pub struct Issue {
    /// Numeric id.
    pub id: u64,
    /// `SRE-1`.
    pub key: String,
    /// Project key.
    pub project: String,
    /// Summary.
    pub summary: String,
    /// Issue type name.
    pub issue_type: String,
    /// Priority name, if set.
    pub priority: Option<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// The ADF description as sent.
    pub description: Value,
    /// Index into [`WORKFLOW`].
    pub status: usize,
    /// ADF comment bodies as sent, oldest first.
    pub comments: Vec<Value>,
}

impl Issue {
    /// The status name.
    pub fn status_name(&self) -> &'static str {
        WORKFLOW[self.status].name
    }
}

/// The fake's data.
#[derive(Clone, Debug)]
pub struct Jira {
    /// Accepted `email`.
    pub email: String,
    /// Accepted API token.
    pub api_token: String,
    /// Projects.
    pub projects: Vec<String>,
    /// Issue types of every project.
    pub issue_types: Vec<String>,
    /// Priorities.
    pub priorities: Vec<String>,
    /// Issues.
    pub issues: Vec<Issue>,
    /// Largest search page.
    pub page_size: usize,
    /// Next issue id.
    pub next_id: u64,
}

/// A running fake Jira; stops when dropped.
pub struct FakeJira(Server<Jira>);

impl Deref for FakeJira {
    type Target = Server<Jira>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Jira's `429`: `Retry-After: <secs>`, `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0`,
/// `X-RateLimit-Reset` (ISO 8601), `RateLimit-Reason`.
pub fn throttle(retry_after_secs: u64) -> Reply {
    let reset = (chrono::Utc::now() + chrono::Duration::seconds(retry_after_secs as i64))
        .format("%Y-%m-%dT%H:%MZ")
        .to_string();
    Reply::status(429)
        .with_header("retry-after", &retry_after_secs.to_string())
        .with_header("x-ratelimit-limit", "100")
        .with_header("x-ratelimit-remaining", "0")
        .with_header("x-ratelimit-reset", &reset)
        .with_header("ratelimit-reason", "jira-quota-tenant-based")
        .with_body(json!({"errorMessages": ["Rate limit exceeded."], "errors": {}}))
}

impl FakeJira {
    /// Projects `projects` (Jira Software's issue types and default priorities), accepting
    /// `email` / `api_token`.
    pub async fn start(email: &str, api_token: &str, projects: &[&str]) -> FakeJira {
        let state = Jira {
            email: email.into(),
            api_token: api_token.into(),
            projects: projects.iter().map(|p| p.to_string()).collect(),
            issue_types: ["Epic", "Story", "Task", "Bug", "Subtask"]
                .map(String::from)
                .to_vec(),
            priorities: ["Highest", "High", "Medium", "Low", "Lowest"]
                .map(String::from)
                .to_vec(),
            issues: Vec::new(),
            page_size: 50,
            next_id: 10001,
        };
        FakeJira(Server::start(state, handle).await)
    }

    /// The issues.
    pub fn issues(&self) -> Vec<Issue> {
        self.with_state(|j| j.issues.clone())
    }

    /// Adds an issue as if created earlier (labels given); returns its key.
    pub fn seed(&self, project: &str, summary: &str, labels: &[&str]) -> String {
        self.with_state(|j| {
            let issue = new_issue(
                j,
                project,
                summary,
                "Task",
                None,
                labels.iter().map(|l| l.to_string()).collect(),
                json!({"type":"doc","version":1,"content":[]}),
            );
            issue.key.clone()
        })
    }
}

fn new_issue<'a>(
    j: &'a mut Jira,
    project: &str,
    summary: &str,
    issue_type: &str,
    priority: Option<String>,
    labels: Vec<String>,
    description: Value,
) -> &'a Issue {
    let id = j.next_id;
    j.next_id += 1;
    let n = j.issues.iter().filter(|i| i.project == project).count() + 1;
    j.issues.push(Issue {
        id,
        key: format!("{project}-{n}"),
        project: project.into(),
        summary: summary.into(),
        issue_type: issue_type.into(),
        priority,
        labels,
        description,
        status: 0,
        comments: Vec::new(),
    });
    j.issues.last().expect("just pushed")
}

fn errors(status: StatusCode, messages: &[&str], fields: Value) -> Response {
    (
        status,
        Json(json!({"errorMessages": messages, "errors": fields})),
    )
        .into_response()
}

fn not_found() -> Response {
    errors(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

/// Whether `v` is an ADF document (`type: doc`, `version: 1`, `content` an array of nodes
/// with a `type`; text nodes non-empty).
pub fn is_adf(v: &Value) -> bool {
    fn node(v: &Value, depth: usize) -> bool {
        if depth > 32 || !v["type"].is_string() {
            return false;
        }
        if v["type"] == "text" && v["text"].as_str().is_none_or(str::is_empty) {
            return false;
        }
        match v.get("content") {
            None => true,
            Some(Value::Array(c)) => c.iter().all(|n| node(n, depth + 1)),
            Some(_) => false,
        }
    }
    v["type"] == "doc" && v["version"] == 1 && v["content"].is_array() && node(v, 0)
}

fn issue_json(base: &str, i: &Issue) -> Value {
    let s = &WORKFLOW[i.status];
    json!({
        "id": i.id.to_string(), "key": i.key, "self": format!("{base}/rest/api/3/issue/{}", i.id),
        "fields": {
            "summary": i.summary, "labels": i.labels,
            "status": {"id": s.id, "name": s.name, "statusCategory": {"key": s.category, "name": s.name}},
            "issuetype": {"name": i.issue_type},
        }
    })
}

fn handle(state: &Mutex<Jira>, req: Request) -> Response {
    let mut j = state.lock().expect("fake");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", j.email, j.api_token))
    );
    let given = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            "Client must be authenticated to access this resource.",
        )
            .into_response();
    }
    let base = req
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let path = req.path.trim_end_matches('/').to_owned();
    let Some(rest) = path.strip_prefix("/rest/api/3/") else {
        return not_found();
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match (&req.method, parts.as_slice()) {
        (&Method::POST, ["issue"]) => create(&mut j, &base, &body),
        (&Method::POST, ["search", "jql"]) => search(&j, &base, &body),
        (&Method::GET, ["issue", key]) => match j.issues.iter().find(|i| i.key == *key) {
            Some(i) => Json(issue_json(&base, i)).into_response(),
            None => not_found(),
        },
        (&Method::GET, ["issue", key, "comment"]) => {
            let Some(i) = j.issues.iter().find(|i| i.key == *key) else {
                return not_found();
            };
            let max: usize = req
                .param("maxResults")
                .and_then(|m| m.parse().ok())
                .unwrap_or(5000);
            let mut all: Vec<(usize, &Value)> = i.comments.iter().enumerate().collect();
            if req.param("orderBy") == Some("-created") {
                all.reverse();
            }
            let comments: Vec<Value> = all
                .into_iter()
                .take(max)
                .map(|(n, b)| json!({"id": (n + 1).to_string(), "body": b, "created": "2026-12-07T09:00:00.000+0000"}))
                .collect();
            Json(json!({"startAt": 0, "maxResults": max, "total": i.comments.len(), "comments": comments}))
                .into_response()
        }
        (&Method::POST, ["issue", key, "comment"]) => {
            let Some(i) = j.issues.iter_mut().find(|i| i.key == *key) else {
                return not_found();
            };
            if !is_adf(&body["body"]) {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &[],
                    json!({"comment": "Comment body is not valid!"}),
                );
            }
            i.comments.push(body["body"].clone());
            let n = i.comments.len();
            (
                StatusCode::CREATED,
                Json(json!({"id": n.to_string(), "self": format!("{base}/rest/api/3/issue/{}/comment/{n}", i.id), "body": body["body"]})),
            )
                .into_response()
        }
        (&Method::GET, ["issue", key, "transitions"]) => {
            let Some(i) = j.issues.iter().find(|i| i.key == *key) else {
                return not_found();
            };
            let list: Vec<Value> = TRANSITIONS
                .iter()
                .filter(|(_, _, to)| *to != i.status)
                .map(|(id, name, to)| {
                    let s = &WORKFLOW[*to];
                    json!({"id": id, "name": name, "hasScreen": false, "isGlobal": true,
                        "to": {"id": s.id, "name": s.name, "statusCategory": {"key": s.category, "name": s.name}}})
                })
                .collect();
            Json(json!({"expand": "transitions", "transitions": list})).into_response()
        }
        (&Method::POST, ["issue", key, "transitions"]) => {
            let Some(i) = j.issues.iter_mut().find(|i| i.key == *key) else {
                return not_found();
            };
            let id = body["transition"]["id"].as_str().unwrap_or_default();
            match TRANSITIONS
                .iter()
                .find(|(t, _, to)| *t == id && *to != i.status)
            {
                Some((_, _, to)) => {
                    i.status = *to;
                    StatusCode::NO_CONTENT.into_response()
                }
                None => errors(
                    StatusCode::BAD_REQUEST,
                    &[&format!(
                        "Transition id '{id}' is not valid for this issue."
                    )],
                    json!({}),
                ),
            }
        }
        _ => not_found(),
    }
}

fn create(j: &mut Jira, base: &str, body: &Value) -> Response {
    let f = &body["fields"];
    let mut errs = serde_json::Map::new();
    let project = f["project"]["key"].as_str().unwrap_or_default().to_owned();
    if !j.projects.contains(&project) {
        errs.insert("project".into(), "valid project is required".into());
    }
    let issue_type = f["issuetype"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !j.issue_types.contains(&issue_type) {
        errs.insert("issuetype".into(), "Specify a valid issue type".into());
    }
    let summary = f["summary"].as_str().unwrap_or_default().to_owned();
    if summary.trim().is_empty() {
        errs.insert(
            "summary".into(),
            "You must specify a summary of the issue.".into(),
        );
    } else if summary.chars().count() > 255 || summary.contains('\n') {
        errs.insert(
            "summary".into(),
            "Summary must be less than 255 characters.".into(),
        );
    }
    if !f["description"].is_null() && !is_adf(&f["description"]) {
        errs.insert(
            "description".into(),
            "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                .into(),
        );
    }
    let priority = f["priority"]["name"].as_str().map(str::to_owned);
    if let Some(p) = &priority {
        if !j.priorities.contains(p) {
            errs.insert(
                "priority".into(),
                format!("Specify Priority (name) in the proper format: {p} is not valid").into(),
            );
        }
    }
    let labels: Vec<String> = f["labels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if labels.iter().any(|l| l.contains(' ') || l.len() > 255) {
        errs.insert("labels".into(), "The label can't contain spaces.".into());
    }
    if !errs.is_empty() {
        return errors(StatusCode::BAD_REQUEST, &[], Value::Object(errs));
    }
    let i = new_issue(
        j,
        &project,
        &summary,
        &issue_type,
        priority,
        labels,
        f["description"].clone(),
    );
    (
        StatusCode::CREATED,
        Json(json!({"id": i.id.to_string(), "key": i.key, "self": format!("{base}/rest/api/3/issue/{}", i.id)})),
    )
        .into_response()
}

fn search(j: &Jira, base: &str, body: &Value) -> Response {
    let jql = body["jql"].as_str().unwrap_or_default();
    let clause = jql.split(" ORDER BY ").next().unwrap_or_default().trim();
    let label = clause
        .strip_prefix("labels = \"")
        .and_then(|r| r.strip_suffix('"'))
        .map(|l| l.replace("\\\"", "\"").replace("\\\\", "\\"));
    let Some(label) = label else {
        return errors(
            StatusCode::BAD_REQUEST,
            &[&format!(
                "Error in the JQL Query: the fake understands only labels = \"…\" (got {jql:?})"
            )],
            json!({}),
        );
    };
    let start: usize = match body["nextPageToken"].as_str() {
        None => 0,
        Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return errors(
                    StatusCode::BAD_REQUEST,
                    &["The provided next page token is invalid or expired."],
                    json!({}),
                )
            }
        },
    };
    let size = body["maxResults"]
        .as_u64()
        .map_or(50, |m| m as usize)
        .min(j.page_size)
        .max(1);
    let hits: Vec<&Issue> = j
        .issues
        .iter()
        .filter(|i| i.labels.contains(&label))
        .collect();
    let page: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(size)
        .map(|i| issue_json(base, i))
        .collect();
    let last = start + size >= hits.len();
    let mut out = json!({"issues": page, "isLast": last});
    if !last {
        out["nextPageToken"] = format!("page-{}", start + size).into();
    }
    Json(out).into_response()
}
