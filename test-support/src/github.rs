//! A fake GitHub REST API for issues, on [`Server`] (records every request; fails, stalls and
//! throttles on command):
//!
//! - `POST /repos/<o>/<r>/labels` (`201`, or `422` `{"message":"Validation Failed","errors":
//!   [{"resource":"Label","code":"already_exists","field":"name"}]}`; names over 50
//!   characters are `422` too).
//! - `GET /repos/<o>/<r>/issues`: `labels` (comma separated, all must match), `state`
//!   (`open` by default, as GitHub's — `closed`, `all`), `sort=created`, `direction`,
//!   `per_page` (capped by the fake's `page_size`), `page`, and a `Link` header with
//!   `rel="next"`/`rel="last"`; pull requests are listed too (with `pull_request`), as GitHub
//!   does.
//! - `POST /repos/<o>/<r>/issues` (`201`; labels that do not exist are created grey, as GitHub
//!   does for a user with push access), `GET`/`PATCH /repos/<o>/<r>/issues/<n>` (`state`,
//!   `state_reason`), `GET`/`POST …/issues/<n>/comments` (paging; `since` is ignored),
//!   `POST …/issues/<n>/labels`.
//! - `Authorization: Bearer <token>` (or `token <token>`) required (`401` "Bad credentials");
//!   a request without `User-Agent` is refused with `403` as GitHub does; unknown repos and
//!   issues are `404` `{"message":"Not Found"}`. Every answer carries `x-ratelimit-*`.
//!
//! [`primary_limit`] and [`secondary_limit`] build GitHub's rate-limit answers.

use std::ops::Deref;
use std::sync::Mutex;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::faults::{Request, Server};
use crate::upstream::Reply;

const DOCS: &str = "https://docs.github.com/rest";

/// A label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Name.
    pub name: String,
    /// Hex colour.
    pub color: String,
    /// Description.
    pub description: String,
}

/// An issue (or, with `pull_request`, a pull request).
#[derive(Clone, Debug)]
pub struct Issue {
    /// Number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Label names.
    pub labels: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    /// `completed`, `not_planned`, `reopened` or none.
    pub state_reason: Option<String>,
    /// Comment bodies, oldest first.
    pub comments: Vec<String>,
    /// Whether this is a pull request.
    pub pull_request: bool,
}

/// The fake's data (one repository).
#[derive(Clone, Debug)]
pub struct Github {
    /// `owner/repo` served.
    pub repo: String,
    /// Accepted token.
    pub token: String,
    /// Labels.
    pub labels: Vec<Label>,
    /// Issues and pull requests.
    pub issues: Vec<Issue>,
    /// Largest page.
    pub page_size: usize,
}

/// A running fake GitHub; stops when dropped.
pub struct FakeGithub(Server<Github>);

impl Deref for FakeGithub {
    type Target = Server<Github>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A primary rate limit: `403`, `x-ratelimit-remaining: 0`, `x-ratelimit-reset` in
/// `reset_in_secs`.
pub fn primary_limit(reset_in_secs: u64) -> Reply {
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + reset_in_secs;
    Reply::status(403)
        .with_header("x-ratelimit-limit", "5000")
        .with_header("x-ratelimit-remaining", "0")
        .with_header("x-ratelimit-used", "5000")
        .with_header("x-ratelimit-reset", &reset.to_string())
        .with_header("x-ratelimit-resource", "core")
        .with_body(
            json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS}),
        )
}

/// A secondary rate limit: `403` with `retry-after` (the remaining primary quota is not 0).
pub fn secondary_limit(retry_after_secs: u64) -> Reply {
    Reply::status(403)
        .with_header("retry-after", &retry_after_secs.to_string())
        .with_header("x-ratelimit-limit", "5000")
        .with_header("x-ratelimit-remaining", "4990")
        .with_body(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": DOCS}))
}

impl FakeGithub {
    /// Serves `repo`, accepting `token`.
    pub async fn start(repo: &str, token: &str) -> FakeGithub {
        let state = Github {
            repo: repo.into(),
            token: token.into(),
            labels: Vec::new(),
            issues: Vec::new(),
            page_size: 100,
        };
        FakeGithub(Server::start(state, handle).await)
    }

    /// The issues (pull requests excluded).
    pub fn issues(&self) -> Vec<Issue> {
        self.with_state(|g| {
            g.issues
                .iter()
                .filter(|i| !i.pull_request)
                .cloned()
                .collect()
        })
    }

    /// The labels.
    pub fn labels(&self) -> Vec<Label> {
        self.with_state(|g| g.labels.clone())
    }

    /// Adds an issue (or a pull request) as if opened earlier; returns its number.
    pub fn seed(&self, title: &str, labels: &[&str], state: &str, pull_request: bool) -> u64 {
        self.with_state(|g| {
            for l in labels {
                ensure_label(g, l);
            }
            let number = g.issues.len() as u64 + 1;
            g.issues.push(Issue {
                number,
                title: title.into(),
                body: String::new(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                state: state.into(),
                state_reason: (state == "closed").then(|| "completed".into()),
                comments: Vec::new(),
                pull_request,
            });
            number
        })
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(json!({"message": text, "documentation_url": DOCS})),
    )
        .into_response()
}

fn ensure_label(g: &mut Github, name: &str) {
    if !g.labels.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
        g.labels.push(Label {
            name: name.into(),
            color: "ededed".into(),
            description: String::new(),
        });
    }
}

fn issue_json(base: &str, repo: &str, i: &Issue) -> Value {
    let mut v = json!({
        "id": 1000 + i.number, "number": i.number, "title": i.title, "body": i.body,
        "state": i.state, "state_reason": i.state_reason,
        "labels": i.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        "comments": i.comments.len(),
        "url": format!("{base}/repos/{repo}/issues/{}", i.number),
        "html_url": format!("https://github.com/{repo}/issues/{}", i.number),
    });
    if i.pull_request {
        v["pull_request"] = json!({"url": format!("{base}/repos/{repo}/pulls/{}", i.number)});
    }
    v
}

/// One page of `items` and its `Link` header.
fn paged(req: &Request, base: &str, page_size: usize, items: Vec<Value>) -> Response {
    let per_page = req
        .param("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100)
        .min(page_size);
    let page = req
        .param("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link_to = |n: usize| {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        q.push(("page".into(), n.to_string()));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        format!("<{base}{}?{query}>", req.path)
    };
    let mut resp = Json(slice).into_response();
    if page < last {
        let link = format!(
            "{}; rel=\"next\", {}; rel=\"last\"",
            link_to(page + 1),
            link_to(last)
        );
        resp.headers_mut()
            .insert("link", HeaderValue::from_str(&link).expect("link"));
    }
    resp
}

fn handle(state: &Mutex<Github>, req: Request) -> Response {
    let mut g = state.lock().expect("fake");
    let mut resp = route(&mut g, &req);
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
    h.entry("x-ratelimit-remaining")
        .or_insert(HeaderValue::from_static("4999"));
    h.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
    resp
}

fn route(g: &mut Github, req: &Request) -> Response {
    if req.headers.get("user-agent").is_none() {
        return message(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        );
    }
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {}", g.token) && auth != format!("token {}", g.token) {
        return message(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    let base = req
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let prefix = format!("/repos/{}/", g.repo);
    let Some(rest) = req.path.strip_prefix(&prefix) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let repo = g.repo.clone();
    let number = |s: &str| s.parse::<u64>().ok();
    match (&req.method, parts.as_slice()) {
        (&Method::POST, ["labels"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            if name.is_empty() || name.chars().count() > 50 {
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation Failed", "errors": [{"resource": "Label", "code": "invalid", "field": "name"}], "documentation_url": DOCS}))).into_response();
            }
            if g.labels.iter().any(|l| l.name.eq_ignore_ascii_case(&name)) {
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation Failed", "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}], "documentation_url": DOCS}))).into_response();
            }
            let label = Label {
                name: name.clone(),
                color: body["color"].as_str().unwrap_or("ededed").to_owned(),
                description: body["description"].as_str().unwrap_or_default().to_owned(),
            };
            g.labels.push(label.clone());
            (StatusCode::CREATED, Json(json!({"id": g.labels.len(), "name": label.name, "color": label.color, "description": label.description, "default": false}))).into_response()
        }
        (&Method::GET, ["issues"]) => {
            let want: Vec<&str> = req
                .param("labels")
                .map(|l| l.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let state = req.param("state").unwrap_or("open");
            let mut items: Vec<&Issue> = g
                .issues
                .iter()
                .filter(|i| want.iter().all(|w| i.labels.iter().any(|l| l == w)))
                .filter(|i| state == "all" || i.state == state)
                .collect();
            if req.param("direction") != Some("asc") {
                items.reverse();
            }
            let items = items.iter().map(|i| issue_json(&base, &repo, i)).collect();
            paged(req, &base, g.page_size, items)
        }
        (&Method::POST, ["issues"]) => {
            let Some(title) = body["title"].as_str().filter(|t| !t.is_empty()) else {
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}], "documentation_url": DOCS}))).into_response();
            };
            let labels: Vec<String> = body["labels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for l in &labels {
                ensure_label(g, l);
            }
            let issue = Issue {
                number: g.issues.len() as u64 + 1,
                title: title.to_owned(),
                body: body["body"].as_str().unwrap_or_default().to_owned(),
                labels,
                state: "open".into(),
                state_reason: None,
                comments: Vec::new(),
                pull_request: false,
            };
            let out = issue_json(&base, &repo, &issue);
            g.issues.push(issue);
            (StatusCode::CREATED, Json(out)).into_response()
        }
        (m, ["issues", n, tail @ ..]) => {
            let page_size = g.page_size;
            let Some(i) = number(n).and_then(|n| g.issues.iter_mut().find(|i| i.number == n))
            else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            match (m, tail) {
                (&Method::GET, []) => Json(issue_json(&base, &repo, i)).into_response(),
                (&Method::PATCH, []) => {
                    if let Some(s) = body["state"].as_str() {
                        if s != "open" && s != "closed" {
                            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "invalid", "field": "state"}]}))).into_response();
                        }
                        i.state = s.into();
                    }
                    if let Some(r) = body["state_reason"].as_str() {
                        i.state_reason = Some(r.into());
                    }
                    if let Some(t) = body["title"].as_str() {
                        i.title = t.into();
                    }
                    Json(issue_json(&base, &repo, i)).into_response()
                }
                (&Method::GET, ["comments"]) => {
                    let items = i
                        .comments
                        .iter()
                        .enumerate()
                        .map(|(k, b)| json!({"id": k + 1, "body": b, "created_at": "2026-12-07T09:00:00Z", "updated_at": "2026-12-07T09:00:00Z"}))
                        .collect();
                    paged(req, &base, page_size, items)
                }
                (&Method::POST, ["comments"]) => {
                    let Some(b) = body["body"].as_str().filter(|b| !b.is_empty()) else {
                        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation Failed", "errors": [{"resource": "IssueComment", "code": "missing_field", "field": "body"}]}))).into_response();
                    };
                    i.comments.push(b.to_owned());
                    let id = i.comments.len();
                    (StatusCode::CREATED, Json(json!({"id": id, "body": b, "html_url": format!("https://github.com/{repo}/issues/{}#issuecomment-{id}", i.number)}))).into_response()
                }
                (&Method::POST, ["labels"]) => {
                    let add: Vec<String> = body["labels"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|l| l.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    for l in &add {
                        if !i.labels.contains(l) {
                            i.labels.push(l.clone());
                        }
                    }
                    let out: Vec<Value> = i.labels.iter().map(|l| json!({"name": l})).collect();
                    for l in &add {
                        ensure_label(g, l);
                    }
                    Json(out).into_response()
                }
                _ => message(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}
