//! A scripted fake HTTP upstream. Replies are taken from a queue, in order, falling back to a
//! default; each can set a status, headers and a JSON body, stream its body in chunks (without
//! a `Content-Length`), send its headers and then stall mid-body, or stall forever. Every
//! request is recorded (method, path and query, headers, body), and a test can wait for the
//! n-th one to arrive.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use futures::StreamExt;

/// What the fake does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer with a status, headers and a body.
    Respond {
        /// HTTP status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body (JSON unless a content type header says otherwise).
        body: String,
    },
    /// Send the status and headers, then these body chunks (chunked, no `Content-Length`),
    /// then end the body — or, with `stall`, never end it.
    Chunked {
        /// HTTP status.
        status: u16,
        /// Body chunks, sent at once.
        chunks: Vec<String>,
        /// Keep the body open forever after the chunks.
        stall: bool,
    },
    /// Never answer; the client has to time out.
    Stall,
    /// Wait (on the tokio clock), then answer.
    Delay(Duration, Box<Reply>),
}

impl Reply {
    /// `status` with an empty JSON object.
    pub fn status(status: u16) -> Self {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: "{}".into(),
        }
    }
    /// 200 with `body`.
    pub fn json(body: serde_json::Value) -> Self {
        Reply::status(200).with_body(body)
    }
    /// 429 with `Retry-After: <secs>`.
    pub fn throttle(retry_after_secs: u64) -> Self {
        Reply::status(429).with_header("retry-after", &retry_after_secs.to_string())
    }
    /// 200 whose body is `prefix` and then nothing, never ending: the headers arrive, the
    /// body stalls.
    pub fn stall_body(prefix: &str) -> Self {
        Reply::Chunked {
            status: 200,
            chunks: vec![prefix.to_owned()],
            stall: true,
        }
    }
    /// `status` with a body of `bytes` bytes (a JSON string), sent with a `Content-Length`.
    pub fn sized(status: u16, bytes: usize) -> Self {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: format!("\"{}\"", "x".repeat(bytes.saturating_sub(2))),
        }
    }
    /// 200 with `chunks` chunks of `chunk_bytes` bytes each, chunked (no `Content-Length`).
    pub fn chunked(chunks: usize, chunk_bytes: usize) -> Self {
        Reply::Chunked {
            status: 200,
            chunks: vec!["x".repeat(chunk_bytes); chunks],
            stall: false,
        }
    }
    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
    /// Replaces the body.
    pub fn with_body(mut self, value: serde_json::Value) -> Self {
        if let Reply::Respond { body, .. } = &mut self {
            *body = value.to_string();
        }
        self
    }
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Recorded {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Script {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
    seen: Vec<Recorded>,
    arrived: tokio::sync::watch::Sender<usize>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            queue: VecDeque::new(),
            default: None,
            seen: Vec::new(),
            arrived: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// A running fake upstream; stops when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Builds a [`FakeUpstream`].
#[derive(Default)]
pub struct FakeUpstreamBuilder {
    script: Script,
}

impl FakeUpstreamBuilder {
    /// Queues a reply.
    pub fn then(mut self, reply: Reply) -> Self {
        self.script.queue.push_back(reply);
        self
    }
    /// The reply once the queue is empty (default: 200 `{}`).
    pub fn otherwise(mut self, reply: Reply) -> Self {
        self.script.default = Some(reply);
        self
    }
    /// Binds 127.0.0.1 on a free port and serves on the current runtime.
    pub async fn start(self) -> FakeUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let script = Arc::new(Mutex::new(self.script));
        let app = Router::new().fallback(handle).with_state(script.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream {
            addr,
            script,
            server,
        }
    }
}

impl FakeUpstream {
    /// A builder.
    pub fn builder() -> FakeUpstreamBuilder {
        FakeUpstreamBuilder::default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply.
    pub fn push(&self, reply: Reply) {
        self.script.lock().expect("script").queue.push_back(reply);
    }

    /// Replaces the default reply and clears the queue.
    pub fn set(&self, reply: Reply) {
        let mut s = self.script.lock().expect("script");
        s.queue.clear();
        s.default = Some(reply);
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().expect("script").seen.clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.script.lock().expect("script").seen.len()
    }

    /// Waits until at least `n` requests have been received (their replies may still be
    /// under way).
    pub async fn wait_for_requests(&self, n: usize) {
        let mut arrived = self.script.lock().expect("script").arrived.subscribe();
        arrived
            .wait_for(|count| *count >= n)
            .await
            .expect("the fake's script outlives its server");
    }
}

async fn handle(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut s = script.lock().expect("script");
        s.seen.push(Recorded {
            method,
            uri: uri.to_string(),
            headers,
            body,
        });
        s.arrived.send_replace(s.seen.len());
        s.queue
            .pop_front()
            .or_else(|| s.default.clone())
            .unwrap_or_else(|| Reply::status(200))
    };
    answer(reply).await
}

pub(crate) async fn answer(mut reply: Reply) -> Response {
    loop {
        match reply {
            Reply::Stall => std::future::pending::<()>().await,
            Reply::Chunked {
                status,
                chunks,
                stall,
            } => {
                let sent = futures::stream::iter(
                    chunks
                        .into_iter()
                        .map(|c| Ok::<_, std::convert::Infallible>(Bytes::from(c))),
                );
                let body = if stall {
                    Body::from_stream(sent.chain(futures::stream::pending()))
                } else {
                    Body::from_stream(sent)
                };
                let mut resp = Response::new(body);
                *resp.status_mut() = StatusCode::from_u16(status).expect("valid status");
                return resp;
            }
            Reply::Delay(d, next) => {
                tokio::time::sleep(d).await;
                reply = *next;
            }
            Reply::Respond {
                status,
                headers,
                body,
            } => {
                let mut resp = Response::new(Body::from(body));
                *resp.status_mut() = StatusCode::from_u16(status).expect("valid status");
                let h = resp.headers_mut();
                h.insert("content-type", HeaderValue::from_static("application/json"));
                for (k, v) in headers {
                    h.insert(
                        HeaderName::try_from(k.as_str()).expect("header name"),
                        HeaderValue::try_from(v.as_str()).expect("header value"),
                    );
                }
                return resp;
            }
        }
    }
}
