//! A fake ArgoCD API server: `GET /api/v1/applications` answering the real response shape
//! (`{metadata, items[]}` with `status.health.status`, `status.sync.status`,
//! `status.sync.revision`, `status.operationState.phase`, labels, project), filtered by the
//! `selector` query (`key=value`), behind a bearer token, failing on command: an error status,
//! no answer, an answer padded past a size (streamed without `Content-Length`), or headers
//! followed by a body that stalls.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};

/// What the fake does with the next requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answer normally.
    Normal,
    /// Answer with this status.
    Status(u16),
    /// Never answer.
    Stall,
    /// Answer normally, with the list padded by this many bytes and streamed in chunks
    /// without a `Content-Length` (a client only learns the size by reading).
    Oversized(usize),
    /// Send 200 and the start of the list, then never finish the body.
    StallBody,
}

struct Inner {
    token: String,
    apps: Vec<Value>,
    mode: Mode,
    requests: usize,
}

/// A running fake ArgoCD; stops when dropped.
pub struct FakeArgoCd {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeArgoCd {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An application in ArgoCD's shape.
pub fn app(name: &str, env: &str, health: &str, sync: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "argocd", "labels": {"environment": env}, "resourceVersion": "42"},
        "spec": {"project": "default", "source": {"repoURL": "https://git.example.com/apps", "path": name, "targetRevision": "HEAD"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": name}},
        "status": {
            "health": {"status": health},
            "sync": {"status": sync, "revision": "3f2a9c1"},
            "operationState": {"phase": "Succeeded", "message": "successfully synced"},
            "resources": [{"kind": "Deployment", "name": name, "status": sync, "health": {"status": health}}]
        }
    })
}

impl FakeArgoCd {
    /// Serves `apps` on 127.0.0.1, requiring `Authorization: Bearer <token>`.
    pub async fn start(token: &str, apps: Vec<Value>) -> FakeArgoCd {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_owned(),
            apps,
            mode: Mode::Normal,
            requests: 0,
        }));
        let router = Router::new()
            .route("/api/v1/applications", get(list))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeArgoCd {
            addr,
            inner,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces an application's health and sync.
    pub fn set(&self, name: &str, health: &str, sync: &str) {
        let mut i = self.inner.lock().expect("fake");
        for a in &mut i.apps {
            if a["metadata"]["name"] == name {
                a["status"]["health"]["status"] = health.into();
                a["status"]["sync"]["status"] = sync.into();
            }
        }
    }

    /// Removes an application.
    pub fn remove(&self, name: &str) {
        self.inner
            .lock()
            .expect("fake")
            .apps
            .retain(|a| a["metadata"]["name"] != name);
    }

    /// Sets how the next requests are answered.
    pub fn mode(&self, mode: Mode) {
        self.inner.lock().expect("fake").mode = mode;
    }

    /// Changes the accepted token.
    pub fn token(&self, token: &str) {
        self.inner.lock().expect("fake").token = token.to_owned();
    }

    /// Requests received.
    pub fn requests(&self) -> usize {
        self.inner.lock().expect("fake").requests
    }
}

async fn list(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let (mode, body) = {
        let mut i = inner.lock().expect("fake");
        i.requests += 1;
        let authorized = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", i.token));
        if !authorized {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid session", "code": 16})),
            )
                .into_response();
        }
        let selector = q
            .iter()
            .find(|(k, _)| k == "selector")
            .map(|(_, v)| v.clone());
        let items: Vec<Value> = i
            .apps
            .iter()
            .filter(
                |a| match selector.as_deref().and_then(|s| s.split_once('=')) {
                    Some((k, v)) => a["metadata"]["labels"][k] == v,
                    None => true,
                },
            )
            .cloned()
            .collect();
        (
            i.mode.clone(),
            json!({"metadata": {"resourceVersion": "1234"}, "items": items}),
        )
    };
    match mode {
        Mode::Normal => Json(body).into_response(),
        Mode::Status(code) => (
            StatusCode::from_u16(code).expect("status"),
            Json(json!({"error": "fake failure"})),
        )
            .into_response(),
        Mode::Stall => std::future::pending().await,
        Mode::Oversized(padding) => {
            let mut body = body;
            body["metadata"]["padding"] = "x".repeat(padding).into();
            let text = body.to_string().into_bytes();
            let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
                text.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
            (
                [("content-type", "application/json")],
                Body::from_stream(futures::stream::iter(chunks)),
            )
                .into_response()
        }
        Mode::StallBody => {
            let start = futures::stream::iter([Ok::<_, std::convert::Infallible>(
                "{\"metadata\": {}, \"items\": [".to_owned(),
            )]);
            (
                [("content-type", "application/json")],
                Body::from_stream(start.chain(futures::stream::pending())),
            )
                .into_response()
        }
    }
}
