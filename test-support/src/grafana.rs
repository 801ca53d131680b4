//! A fake Grafana: `GET /api/search` (`type=dash-db`, `query` as a case-insensitive substring
//! of the title, `tag` — every one given must be on the dashboard —, `dashboardUIDs`, `limit`)
//! answering Grafana's hit shape (`id`, `uid`, `title`, `uri`, `url`, `slug`, `type`, `tags`,
//! `isStarred`, `folderTitle`); `GET /api/annotations` (`tags` — all must match —,
//! `dashboardUID`, `limit`; newest first, Grafana's list shape); `POST /api/annotations` (`{"message":"Annotation added","id":n}`)
//! and `PATCH /api/annotations/<id>` (`{"message":"Annotation patched"}`, 404 for an unknown
//! id), keeping the annotations for the test to read; `Authorization: Bearer <key>` required
//! when a key is set (401 otherwise). Faults are injected through
//! [`Server`], which it dereferences to.

use std::ops::Deref;
use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::faults::{Request, Server};

/// A dashboard.
#[derive(Clone, Debug)]
pub struct Dashboard {
    /// Uid.
    pub uid: String,
    /// Title.
    pub title: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Folder.
    pub folder: String,
}

/// A dashboard from its uid, title and tags, in the "General" folder.
pub fn dashboard(uid: &str, title: &str, tags: &[&str]) -> Dashboard {
    Dashboard {
        uid: uid.into(),
        title: title.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        folder: "General".into(),
    }
}

/// The fake's data.
#[derive(Clone, Debug, Default)]
pub struct Grafana {
    /// The accepted API key; none accepts anyone.
    pub api_key: Option<String>,
    /// Dashboards.
    pub dashboards: Vec<Dashboard>,
    /// Annotations as posted, each with its `id` added and `timeEnd` as patched.
    pub annotations: Vec<Value>,
}

/// A running fake Grafana; stops when dropped.
pub struct FakeGrafana(Server<Grafana>);

impl Deref for FakeGrafana {
    type Target = Server<Grafana>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FakeGrafana {
    /// Serves `dashboards`, requiring `api_key` when given.
    pub async fn start(api_key: Option<&str>, dashboards: Vec<Dashboard>) -> FakeGrafana {
        let state = Grafana {
            api_key: api_key.map(str::to_owned),
            dashboards,
            annotations: Vec::new(),
        };
        FakeGrafana(Server::start(state, handle).await)
    }

    /// The annotations so far.
    pub fn annotations(&self) -> Vec<Value> {
        self.with_state(|g| g.annotations.clone())
    }
}

/// Grafana's slug of a title.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"message": text}))).into_response()
}

fn handle(state: &Mutex<Grafana>, req: Request) -> Response {
    let mut g = state.lock().expect("fake");
    if let Some(key) = &g.api_key {
        let given = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {key}").as_str()) {
            return message(StatusCode::UNAUTHORIZED, "invalid API key");
        }
    }
    match (&req.method, req.path.as_str()) {
        (&Method::GET, "/api/search") => {
            let query = req.param("query").map(str::to_lowercase);
            let tags = req.params("tag");
            let uids = req.params("dashboardUIDs");
            let limit: usize = req
                .param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1000);
            let hits: Vec<Value> = g
                .dashboards
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    query
                        .as_ref()
                        .is_none_or(|q| d.title.to_lowercase().contains(q))
                })
                .filter(|(_, d)| tags.iter().all(|t| d.tags.iter().any(|x| x == t)))
                .filter(|(_, d)| uids.is_empty() || uids.contains(&d.uid.as_str()))
                .take(limit)
                .map(|(i, d)| {
                    let s = slug(&d.title);
                    json!({
                        "id": i + 1, "uid": d.uid, "title": d.title, "uri": format!("db/{s}"),
                        "url": format!("/d/{}/{s}", d.uid), "slug": "", "type": "dash-db",
                        "tags": d.tags, "isStarred": false, "folderTitle": d.folder,
                        "sortMeta": 0
                    })
                })
                .collect();
            Json(hits).into_response()
        }
        (&Method::GET, "/api/annotations") => {
            // Grafana: every tag given must be on the annotation (matchAny=false), newest
            // first, `limit` default 100; the list shape of the HTTP API.
            let tags = req.params("tags");
            let uid = req.param("dashboardUID");
            let limit: usize = req
                .param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100);
            let mut found: Vec<Value> = g
                .annotations
                .iter()
                .filter(|a| {
                    tags.iter().all(|t| {
                        a["tags"]
                            .as_array()
                            .is_some_and(|have| have.iter().any(|h| h.as_str() == Some(t)))
                    })
                })
                .filter(|a| uid.is_none_or(|u| a["dashboardUID"].as_str() == Some(u)))
                .map(|a| {
                    let time = a["time"].as_i64().unwrap_or(0);
                    json!({
                        "id": a["id"], "alertId": 0, "dashboardId": 0,
                        "dashboardUID": a.get("dashboardUID").cloned().unwrap_or(Value::Null),
                        "panelId": a.get("panelId").cloned().unwrap_or(0.into()),
                        "userId": 1, "newState": "", "prevState": "", "created": time,
                        "updated": time, "time": time,
                        "timeEnd": a["timeEnd"].as_i64().unwrap_or(time),
                        "text": a["text"], "tags": a["tags"], "login": "admin",
                        "email": "admin@localhost", "avatarUrl": "", "data": {}
                    })
                })
                .collect();
            found.sort_by_key(|a| std::cmp::Reverse(a["time"].as_i64()));
            found.truncate(limit);
            Json(found).into_response()
        }
        (&Method::POST, "/api/annotations") => {
            let Ok(mut a) = serde_json::from_slice::<Value>(&req.body) else {
                return message(StatusCode::BAD_REQUEST, "bad request data");
            };
            if !a["time"].is_i64() || !a["text"].is_string() {
                return message(StatusCode::BAD_REQUEST, "Failed to save annotation");
            }
            let id = g.annotations.len() as i64 + 1;
            a["id"] = id.into();
            g.annotations.push(a);
            Json(json!({"message": "Annotation added", "id": id})).into_response()
        }
        (&Method::PATCH, path) if path.starts_with("/api/annotations/") => {
            let id: Option<i64> = path["/api/annotations/".len()..].parse().ok();
            let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
                return message(StatusCode::BAD_REQUEST, "bad request data");
            };
            let Some(a) = g.annotations.iter_mut().find(|a| a["id"].as_i64() == id) else {
                return message(StatusCode::NOT_FOUND, "Could not find annotation to update");
            };
            if let Some(obj) = patch.as_object() {
                for (k, v) in obj {
                    a[k] = v.clone();
                }
            }
            Json(json!({"message": "Annotation patched"})).into_response()
        }
        _ => message(StatusCode::NOT_FOUND, "Not found"),
    }
}
