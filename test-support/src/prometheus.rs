//! A fake Prometheus query API (`GET`/`POST /api/v1/query`) for paused-time tests: each query's
//! answer comes from a function of the PromQL and the evaluation time (a one-series vector, or
//! an empty vector for no data), in Prometheus' response shape; it fails on command with a
//! status and Prometheus' error body, or never answers. Every evaluated query is recorded.
//! `/api/v1/query_range` answers a one-series matrix: the function at each step from `start`
//! to `end` (steps without data left out), as Prometheus does.
//! (Exact numbers against the real Prometheus are tested with promtool-backfilled data.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// What the fake does with the next queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromMode {
    /// Answer from the function.
    Normal,
    /// Answer this status with `{"status":"error","errorType":"internal",...}`.
    Status(u16),
    /// Never answer.
    Stall,
}

/// The value of `query` at Unix time `t`: `Ok(None)` is no series, `Err(status)` a failure
/// with that HTTP status.
pub type Answer = Box<dyn Fn(&str, f64) -> Result<Option<f64>, u16> + Send + Sync>;

struct Inner {
    answer: Answer,
    mode: PromMode,
    queries: Vec<(String, f64)>,
}

/// A running fake; stops when dropped.
pub struct FakePrometheus {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakePrometheus {
    /// Starts on a free loopback port.
    pub async fn start(
        answer: impl Fn(&str, f64) -> Result<Option<f64>, u16> + Send + Sync + 'static,
    ) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            answer: Box::new(answer),
            mode: PromMode::Normal,
            queries: Vec::new(),
        }));
        let app = Router::new()
            .route("/api/v1/query", get(query).post(query))
            .route("/api/v1/query_range", get(query_range).post(query_range))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePrometheus {
            addr,
            inner,
            server,
        }
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Sets what the next queries get.
    pub fn set_mode(&self, mode: PromMode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// Every query answered normally so far: (PromQL, time).
    pub fn queries(&self) -> Vec<(String, f64)> {
        self.inner.lock().unwrap().queries.clone()
    }
}

async fn query(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    headers: HeaderMap,
    Query(url): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let mut params = url;
    let form = headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    if method == Method::POST && form {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mode = inner.lock().unwrap().mode;
    match mode {
        PromMode::Stall => return std::future::pending::<Response>().await,
        PromMode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            return (
                status,
                Json(json!({"status": "error", "errorType": "internal", "error": "injected failure"})),
            )
                .into_response();
        }
        PromMode::Normal => {}
    }
    let Some(q) = get("query") else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "error", "errorType": "bad_data", "error": "no query"})),
        )
            .into_response();
    };
    let t: f64 = get("time").and_then(|t| t.parse().ok()).unwrap_or(0.0);
    let mut guard = inner.lock().unwrap();
    let result = match (guard.answer)(&q, t) {
        Ok(Some(v)) => json!([{"metric": {}, "value": [t, v.to_string()]}]),
        Ok(None) => json!([]),
        Err(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            return (
                status,
                Json(json!({"status": "error", "errorType": "internal", "error": "injected failure"})),
            )
                .into_response();
        }
    };
    guard.queries.push((q.clone(), t));
    Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        .into_response()
}

async fn query_range(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(params): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let mut params = params;
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let bad = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "error", "errorType": "bad_data", "error": why})),
        )
            .into_response()
    };
    let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok());
    let (Some(q), Some(start), Some(end), Some(step)) =
        (get("query"), num("start"), num("end"), num("step"))
    else {
        return bad("query, start, end and step are required");
    };
    if step <= 0.0 || end < start {
        return bad("invalid range");
    }
    let mut guard = inner.lock().unwrap();
    let mut values = Vec::new();
    let mut t = start;
    while t <= end {
        match (guard.answer)(&q, t) {
            Ok(Some(v)) => values.push(json!([t, v.to_string()])),
            Ok(None) => {}
            Err(code) => {
                return (
                    StatusCode::from_u16(code).unwrap(),
                    Json(json!({"status": "error", "errorType": "internal", "error": "injected failure"})),
                )
                    .into_response()
            }
        }
        guard.queries.push((q.clone(), t));
        t += step;
    }
    let result = if values.is_empty() {
        json!([])
    } else {
        json!([{"metric": {}, "values": values}])
    };
    Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
        .into_response()
}
