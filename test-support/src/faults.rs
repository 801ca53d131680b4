//! What the observability fakes ([`crate::loki`], [`crate::tempo`], [`crate::grafana`]) share:
//! a loopback server that records every request and answers it either normally (the fake's own
//! handler) or with an injected fault — replies queued to replace the next normal answers (a
//! 5xx, a 429 with `Retry-After`, a stall, an oversized or stalling body: any [`Reply`]), or
//! one replacing them all until cleared.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;

use crate::upstream::{answer, Recorded, Reply};

/// A request as the fake's own handler sees it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Query pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of query parameter `name`.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

struct Faults {
    queue: VecDeque<Reply>,
    always: Option<Reply>,
    seen: Vec<Recorded>,
    arrived: tokio::sync::watch::Sender<usize>,
}

type Handler<S> = fn(&Mutex<S>, Request) -> Response;

struct Shared<S> {
    faults: Mutex<Faults>,
    state: Mutex<S>,
    handler: Handler<S>,
}

/// A running fake with state `S`; stops when dropped.
pub struct Server<S> {
    addr: SocketAddr,
    shared: Arc<Shared<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for Server<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Send + 'static> Server<S> {
    /// Serves on 127.0.0.1 (a free port) on the current runtime, answering with `handler`.
    pub async fn start(state: S, handler: Handler<S>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults {
                queue: VecDeque::new(),
                always: None,
                seen: Vec::new(),
                arrived: tokio::sync::watch::Sender::new(0),
            }),
            state: Mutex::new(state),
            handler,
        });
        let app = Router::new()
            .fallback(handle::<S>)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next request with `reply` instead of normally (queued after earlier ones).
    pub fn push(&self, reply: Reply) {
        self.faults().queue.push_back(reply);
    }

    /// Answers every request with `reply` until [`clear`](Self::clear).
    pub fn fail_with(&self, reply: Reply) {
        let mut f = self.faults();
        f.queue.clear();
        f.always = Some(reply);
    }

    /// Answers normally again.
    pub fn clear(&self) {
        let mut f = self.faults();
        f.queue.clear();
        f.always = None;
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.faults().seen.clone()
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.faults().arrived.subscribe();
        rx.wait_for(|c| *c >= n).await.expect("server alive");
    }

    /// Runs `f` on the fake's state.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut S) -> T) -> T {
        f(&mut self.shared.state.lock().expect("fake state"))
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.shared.faults.lock().expect("fake faults")
    }
}

async fn handle<S: Send + 'static>(
    State(shared): State<Arc<Shared<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut f = shared.faults.lock().expect("fake faults");
        f.seen.push(Recorded {
            method: method.clone(),
            uri: uri.to_string(),
            headers: headers.clone(),
            body: body.clone(),
        });
        let n = f.seen.len();
        f.arrived.send_replace(n);
        f.queue.pop_front().or_else(|| f.always.clone())
    };
    if let Some(reply) = fault {
        return answer(reply).await;
    }
    let query = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let req = Request {
        method,
        path: uri.path().to_owned(),
        query,
        headers,
        body,
    };
    (shared.handler)(&shared.state, req)
}
