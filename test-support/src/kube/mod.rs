//! A fake Kubernetes API server good enough for the real kube-rs client (`Api`, discovery,
//! `kube::runtime::watcher`) through an ordinary kubeconfig.
//!
//! Objects are `serde_json::Value`s stored per resource type; [`FakeKube::apply`] and
//! [`FakeKube::delete`] bump a global `resourceVersion` and record ADDED / MODIFIED / DELETED
//! events in a history that watches replay from their `resourceVersion` and then follow live.
//! The HTTP surface has the real shapes: `/version`, discovery (`/api`, `/api/v1`, `/apis`,
//! `/apis/{group}/{version}`, aggregated discovery on request), collections cluster-wide and per
//! namespace with `limit`/`continue`, `labelSelector`, `fieldSelector`, the
//! `PartialObjectMetadata` forms, watches (newline-delimited JSON events, bookmarks,
//! `timeoutSeconds`, streaming lists with `sendInitialEvents`), pod logs, and `Status` errors.
//! Writes too: server-side apply (with `dryRun=All`), merge / strategic-merge patches and
//! deletes (`mutate`), and `pods/exec` over the websocket channel protocol (`exec`), each
//! recorded as a [`Mutation`] ([`FakeKube::mutations`], [`FakeKube::changes`]).
//!
//! Failures on command: [`FakeKube::fail_with`], [`FakeKube::stall`],
//! [`FakeKube::expire_watches`] (in-stream 410 Expired plus compaction, so the watcher relists),
//! [`FakeKube::disconnect_watches`], [`FakeKube::kill`] / [`FakeKube::restart`].
//!
//! Everything runs on the caller's tokio runtime and uses only tokio time, so tests with paused
//! time are deterministic.
//!
//! # Layout
//! - `mod.rs`: the shared state, [`FakeKube`] itself (start, URL, kubeconfig).
//! - `store`: objects, `resourceVersion`s and the event history ([`FakeKube::apply`],
//!   [`FakeKube::delete`], ...).
//! - `control`: failures and observation on command (fail, stall, expire, disconnect, kill,
//!   requests seen, open watches).
//! - `server`: the listener and connections that can be killed at once.
//! - `http`: routing a request and the `Status` responses.
//! - `discovery`: `/version`, `/api`, `/apis`, aggregated discovery.
//! - `list`: collections (paging, `PartialObjectMetadata`).
//! - `watches`: watch streams (history replay, bookmarks, streaming lists, 410 Expired).
//! - `select`: label and field selectors.
//! - `logs`: pod logs.
//! - `mutate`: server-side apply, patch, delete, and the record of mutations.
//! - `exec`: `pods/exec` over a websocket (`v5.channel.k8s.io` / `v4.channel.k8s.io`).
//! - `builders`: ready-made objects (pods, deployments, services, events, ...).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

mod builders;
mod control;
mod discovery;
mod exec;
mod http;
mod list;
mod logs;
mod mutate;
mod select;
mod server;
mod store;
mod watches;

pub use builders::*;
use discovery::*;
use exec::*;
pub use exec::{ExecCall, ExecReply, EXEC_PROTOCOLS};
use http::*;
use list::*;
use logs::*;
pub use mutate::Mutation;
use mutate::*;
use select::*;
use server::*;
use watches::*;

/// A resource type the fake serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `pods`.
    pub plural: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl ResourceType {
    /// `v1` for core, `<group>/<version>` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Raw query string (`""` when none).
    pub query: String,
    /// Decoded query parameters, in order.
    pub params: Vec<(String, String)>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// What the request was: `version`, `discovery`, `list`, `watch`, `get`, `log`, `exec`,
    /// `patch`, `delete` or `unknown`.
    pub verb: String,
    /// The plural resource name for `list`, `watch`, `get` and `log` (`pods` for logs).
    pub resource: Option<String>,
}

impl Request {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this was a watch.
    pub fn is_watch(&self) -> bool {
        self.verb == "watch"
    }
}

/// A point in time given as a chrono timestamp or an RFC 3339 string.
pub trait IntoTimestamp {
    /// The timestamp; panics on a string that is not RFC 3339.
    fn into_timestamp(self) -> DateTime<Utc>;
}

impl IntoTimestamp for DateTime<Utc> {
    fn into_timestamp(self) -> DateTime<Utc> {
        self
    }
}

impl IntoTimestamp for &str {
    fn into_timestamp(self) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(self)
            .unwrap_or_else(|e| panic!("fake kube: {self:?} is not RFC 3339: {e}"))
            .with_timezone(&Utc)
    }
}

impl IntoTimestamp for String {
    fn into_timestamp(self) -> DateTime<Utc> {
        self.as_str().into_timestamp()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    Fail(u16),
    Stall,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

struct HistEvent {
    ty: usize,
    kind: EventType,
    object: Value,
    prev: Option<Value>,
    rv: u64,
}

enum WatchMsg {
    Line(Bytes),
    Abort,
}

struct WatchSpec {
    ty: usize,
    ns: Option<String>,
    filter: Filter,
    metadata: bool,
    bookmarks: bool,
}

struct Sub {
    spec: WatchSpec,
    last_rv: u64,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

type LogKey = (String, String, String);

struct Store {
    types: Vec<ResourceType>,
    objects: Vec<BTreeMap<(String, String), Value>>,
    rv: u64,
    compacted: u64,
    history: Vec<HistEvent>,
    subs: Vec<Sub>,
    /// Watch streams opened so far.
    opened: u64,
    requests: Vec<Request>,
    logs: HashMap<LogKey, Vec<(DateTime<Utc>, String)>>,
    now: Option<DateTime<Utc>>,
    /// Mutating requests, in order.
    mutations: Vec<Mutation>,
    /// The exec script.
    exec_handler: Option<ExecHandler>,
    /// Exec subprotocols accepted, preferred first.
    exec_protocols: Vec<String>,
    /// Execs run.
    execs: Vec<ExecCall>,
}

struct Slot {
    listener: Option<TcpListener>,
    waker: Option<Waker>,
}

type Conns = Arc<Mutex<HashMap<u64, std::net::TcpStream>>>;

struct Shared {
    store: Mutex<Store>,
    token: Option<String>,
    mode: watch::Sender<Mode>,
    epoch: watch::Sender<u64>,
    conns: Conns,
    next_conn: AtomicU64,
    slot: Mutex<Slot>,
    addr: SocketAddr,
    /// Signalled whenever a watch stream opens.
    opened: tokio::sync::Notify,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().expect("fake kube store")
    }

    /// Closes the listener and every open connection, now.
    fn kill(&self) {
        {
            let mut slot = self.slot.lock().expect("fake kube listener");
            slot.listener = None;
        }
        self.epoch.send_modify(|e| *e += 1);
        for (_, conn) in self.conns.lock().expect("fake kube conns").drain() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        self.store().subs.clear();
    }

    /// A future that completes when the server is killed after now.
    fn killed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut rx = self.epoch.subscribe();
        let mine = *rx.borrow_and_update();
        Box::pin(async move {
            let _ = rx.wait_for(|e| *e != mine).await;
        })
    }
}

/// A running fake Kubernetes API server on 127.0.0.1; stops when dropped.
pub struct FakeKube {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.kill();
        self.server.abort();
    }
}

impl FakeKube {
    /// Serves on 127.0.0.1 (a free port) without authentication.
    pub async fn start() -> FakeKube {
        Self::launch(None)
    }

    /// Serves on 127.0.0.1, requiring `Authorization: Bearer <token>` (401 `Status` otherwise).
    pub async fn start_with_token(token: &str) -> FakeKube {
        Self::launch(Some(token.to_owned()))
    }

    fn launch(token: Option<String>) -> FakeKube {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let mut store = Store {
            types: Vec::new(),
            objects: Vec::new(),
            rv: 1,
            compacted: 0,
            history: Vec::new(),
            subs: Vec::new(),
            opened: 0,
            requests: Vec::new(),
            logs: HashMap::new(),
            now: None,
            mutations: Vec::new(),
            exec_handler: None,
            exec_protocols: EXEC_PROTOCOLS.iter().map(|p| (*p).to_owned()).collect(),
            execs: Vec::new(),
        };
        for (group, version, kind, plural, namespaced) in [
            ("", "v1", "Pod", "pods", true),
            ("", "v1", "Service", "services", true),
            ("", "v1", "Event", "events", true),
            ("", "v1", "ConfigMap", "configmaps", true),
            ("", "v1", "Secret", "secrets", true),
            ("", "v1", "Namespace", "namespaces", false),
            ("", "v1", "Endpoints", "endpoints", true),
            ("apps", "v1", "Deployment", "deployments", true),
            (
                "discovery.k8s.io",
                "v1",
                "EndpointSlice",
                "endpointslices",
                true,
            ),
            ("events.k8s.io", "v1", "Event", "events", true),
        ] {
            store.register(group, version, kind, plural, namespaced);
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            token,
            mode: watch::Sender::new(Mode::Normal),
            epoch: watch::Sender::new(0),
            conns: Arc::default(),
            next_conn: AtomicU64::new(0),
            slot: Mutex::new(Slot {
                listener: Some(listener),
                waker: None,
            }),
            addr,
            opened: tokio::sync::Notify::new(),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let acceptor = Acceptor(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(acceptor, router).await;
        });
        FakeKube { shared, server }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig (cluster `fake` at [`url`](Self::url), user `fake` with the token if any,
    /// context `fake` with namespace `default`, current context `fake`) that
    /// `kube::config::Kubeconfig::from_yaml` and `kube::Config::from_custom_kubeconfig` accept.
    pub fn kubeconfig(&self) -> String {
        let user = match &self.shared.token {
            Some(t) => format!("\n    token: {}", serde_json::to_string(t).expect("token")),
            None => " {}".to_owned(),
        };
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
users:
- name: fake
  user:{user}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
preferences: {{}}
",
            url = self.url()
        )
    }
}
