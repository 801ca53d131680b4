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
//!
//! Failures on command: [`FakeKube::fail_with`], [`FakeKube::stall`],
//! [`FakeKube::expire_watches`] (in-stream 410 Expired plus compaction, so the watcher relists),
//! [`FakeKube::disconnect_watches`], [`FakeKube::kill`] / [`FakeKube::restart`].
//!
//! Everything runs on the caller's tokio runtime and uses only tokio time, so tests with paused
//! time are deterministic.

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
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

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
    /// What the request was: `version`, `discovery`, `list`, `watch`, `get`, `log` or `unknown`.
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

    /// Stops serving now: the listener is closed (new connections are refused), open
    /// connections are shut down and open watch streams end. A request already on its way over
    /// a pooled connection may see the connection closed or reset rather than refused.
    pub fn kill(&self) {
        self.shared.kill();
    }

    /// Listens again on the same port after [`kill`](Self::kill); does nothing while serving.
    pub fn restart(&self) {
        let mut slot = self.shared.slot.lock().expect("fake kube listener");
        if slot.listener.is_none() {
            slot.listener = Some(bind(self.shared.addr).expect("rebind the fake kube port"));
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// Adds a resource type (e.g. a CRD): served in discovery, listable and watchable.
    pub fn register_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) {
        self.shared
            .store()
            .register(group, version, kind, plural, namespaced);
    }

    /// Creates or replaces an object by (apiVersion, kind, namespace, name). Assigns
    /// `metadata.uid` when missing (the previous object's, else [`uid_for`]),
    /// `metadata.creationTimestamp` when missing (the previous object's, else now) and
    /// `metadata.resourceVersion` (the next global version); a namespaced object without a
    /// namespace goes to `default`. Records an ADDED or MODIFIED event and returns the stored
    /// object. Panics when the object has no apiVersion, kind or name, or its type is not
    /// registered.
    pub fn apply(&self, mut obj: Value) -> Value {
        let api_version = obj["apiVersion"]
            .as_str()
            .expect("fake kube: object without apiVersion")
            .to_owned();
        let kind = obj["kind"]
            .as_str()
            .expect("fake kube: object without kind")
            .to_owned();
        let mut st = self.shared.store();
        let ty = st.find_kind(&api_version, &kind).unwrap_or_else(|| {
            panic!("fake kube: {api_version} {kind} is not registered (register_kind)")
        });
        let namespaced = st.types[ty].namespaced;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("fake kube: object without metadata.name")
            .to_owned();
        let ns = if namespaced {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            obj["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            String::new()
        };
        let key = (ns, name);
        let prev = st.objects[ty].get(&key).cloned();
        st.rv += 1;
        let rv = st.rv;
        let now = st.now();
        let meta = obj["metadata"].as_object_mut().expect("metadata object");
        if !meta.get("uid").is_some_and(Value::is_string) {
            let uid = prev
                .as_ref()
                .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
                .unwrap_or_else(|| uid_for(&kind, &key.0, &key.1));
            meta.insert("uid".into(), json!(uid));
        }
        if !meta.get("creationTimestamp").is_some_and(Value::is_string) {
            let created = prev
                .as_ref()
                .map(|p| p["metadata"]["creationTimestamp"].clone())
                .filter(Value::is_string)
                .unwrap_or_else(|| json!(rfc3339(now)));
            meta.insert("creationTimestamp".into(), created);
        }
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        st.objects[ty].insert(key, obj.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        st.publish(HistEvent {
            ty,
            kind,
            object: obj.clone(),
            prev,
            rv,
        });
        obj
    }

    /// Removes an object; bumps the resource version and records DELETED with the final object
    /// (whose `resourceVersion` is the new version). False when there was no such object.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let mut st = self.shared.store();
        let Some(ty) = st.find_kind(api_version, kind) else {
            return false;
        };
        let key = st.key(ty, namespace, name);
        let Some(mut obj) = st.objects[ty].remove(&key) else {
            return false;
        };
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.publish(HistEvent {
            ty,
            kind: EventType::Deleted,
            object: obj.clone(),
            prev: Some(obj),
            rv,
        });
        true
    }

    /// The stored object, if any.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = self.shared.store();
        let ty = st.find_kind(api_version, kind)?;
        let key = st.key(ty, namespace, name);
        st.objects[ty].get(&key).cloned()
    }

    /// Every stored object of a type, sorted by namespace and name.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let st = self.shared.store();
        st.find_kind(api_version, kind)
            .map(|ty| st.objects[ty].values().cloned().collect())
            .unwrap_or_default()
    }

    /// The current global resource version.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    /// Sets a container's log lines (time, text without newline). The pod itself must be
    /// applied for `GET .../pods/{name}/log` to find it.
    pub fn set_logs<T, S>(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        lines: impl IntoIterator<Item = (T, S)>,
    ) where
        T: IntoTimestamp,
        S: Into<String>,
    {
        let lines = lines
            .into_iter()
            .map(|(t, s)| (t.into_timestamp(), s.into()))
            .collect();
        self.shared.store().logs.insert(
            (namespace.to_owned(), pod.to_owned(), container.to_owned()),
            lines,
        );
    }

    /// Sets the fake "now" (used by `sinceSeconds` and for new creation timestamps). Without
    /// it, `sinceSeconds` counts from the container's latest log line.
    pub fn set_now(&self, now: impl IntoTimestamp) {
        self.shared.store().now = Some(now.into_timestamp());
    }

    /// Every subsequent request (including `/version` and discovery) answers `status` with a
    /// `Status` body, until [`recover`](Self::recover).
    pub fn fail_with(&self, status: u16) {
        self.shared.mode.send_replace(Mode::Fail(status));
    }

    /// Subsequent requests are accepted but not answered until [`recover`](Self::recover).
    pub fn stall(&self) {
        self.shared.mode.send_replace(Mode::Stall);
    }

    /// Answers normally again; stalled requests proceed.
    pub fn recover(&self) {
        self.shared.mode.send_replace(Mode::Normal);
    }

    /// Every open watch gets an in-stream `ERROR` event (410 Expired, "too old resource
    /// version") and is closed, and the history is compacted so a later watch from an older
    /// resource version gets the same error: a watcher has to relist.
    pub fn expire_watches(&self) {
        let mut st = self.shared.store();
        let compacted = st.rv;
        for sub in st.subs.drain(..) {
            let _ = sub
                .tx
                .send(WatchMsg::Line(expired_line(sub.last_rv, compacted)));
        }
        st.history.clear();
        st.compacted = compacted;
    }

    /// Abruptly ends every open watch stream (the connection is dropped mid-body, no final
    /// event), as when an API server or a proxy goes away.
    pub fn disconnect_watches(&self) {
        for sub in self.shared.store().subs.drain(..) {
            let _ = sub.tx.send(WatchMsg::Abort);
        }
    }

    /// Drops the event history: watches from a resource version older than the current one get
    /// 410 Expired. Open watches are not affected.
    pub fn compact(&self) {
        let mut st = self.shared.store();
        st.history.clear();
        st.compacted = st.rv;
    }

    /// Sends a BOOKMARK event at the current resource version on every open watch that asked
    /// for `allowWatchBookmarks=true`.
    pub fn bookmark(&self) {
        let mut st = self.shared.store();
        let rv = st.rv;
        let lines: Vec<Option<Bytes>> = st
            .subs
            .iter()
            .map(|s| {
                s.spec
                    .bookmarks
                    .then(|| bookmark_line(&st.types[s.spec.ty], s.spec.metadata, rv, false))
            })
            .collect();
        for (sub, line) in st.subs.iter_mut().zip(lines) {
            if let Some(line) = line {
                sub.last_rv = rv;
                let _ = sub.tx.send(WatchMsg::Line(line));
            }
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.store().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.store().requests.clear();
    }

    /// How many list (not watch) requests a resource (plural, e.g. `pods`) received.
    pub fn lists(&self, plural: &str) -> usize {
        self.shared
            .store()
            .requests
            .iter()
            .filter(|r| r.verb == "list" && r.resource.as_deref() == Some(plural))
            .count()
    }

    /// Waits until exactly `n` watch streams are open (one counts as closed once its client is
    /// gone), woken by streams opening and closing rather than by a timer.
    pub async fn until_open_watches(&self, n: usize) {
        loop {
            let opened = self.shared.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            let open: Vec<mpsc::UnboundedSender<WatchMsg>> = {
                let mut st = self.shared.store();
                st.subs.retain(|s| !s.tx.is_closed());
                st.subs.iter().map(|s| s.tx.clone()).collect()
            };
            match open.len().cmp(&n) {
                std::cmp::Ordering::Equal => return,
                std::cmp::Ordering::Less => opened.await,
                std::cmp::Ordering::Greater => {
                    futures::future::select_all(open.iter().map(|tx| Box::pin(tx.closed()))).await;
                }
            }
        }
    }

    /// Watch streams opened so far (closed ones included).
    pub fn watches_opened(&self) -> u64 {
        self.shared.store().opened
    }

    /// Waits until `total` watch streams have been opened in all.
    pub async fn until_watches_opened(&self, total: u64) {
        loop {
            let opened = self.shared.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if self.watches_opened() >= total {
                return;
            }
            opened.await;
        }
    }

    /// Watch streams currently open.
    pub fn open_watches(&self) -> usize {
        let mut st = self.shared.store();
        st.subs.retain(|s| !s.tx.is_closed());
        st.subs.len()
    }
}

impl Store {
    fn register(&mut self, group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) {
        let t = ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
        };
        if let Some(i) = self.find(group, version, plural) {
            self.types[i] = t;
        } else {
            self.types.push(t);
            self.objects.push(BTreeMap::new());
        }
    }

    fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.group == group && t.version == version && t.plural == plural)
    }

    fn find_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.types
            .iter()
            .position(|t| t.api_version() == api_version && t.kind == kind)
    }

    fn key(&self, ty: usize, namespace: Option<&str>, name: &str) -> (String, String) {
        let ns = if self.types[ty].namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        (ns.to_owned(), name.to_owned())
    }

    fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    fn publish(&mut self, ev: HistEvent) {
        self.subs
            .retain_mut(|sub| match render_event(&ev, &sub.spec) {
                Some(line) => {
                    sub.last_rv = ev.rv;
                    sub.tx.send(WatchMsg::Line(line)).is_ok()
                }
                None => !sub.tx.is_closed(),
            });
        self.history.push(ev);
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

// ---------------------------------------------------------------------------------------------
// Listener and connections that can be killed at once.

struct Acceptor(Arc<Shared>);

impl axum::serve::Listener for Acceptor {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let accepted = std::future::poll_fn(|cx| {
                let mut slot = self.0.slot.lock().expect("fake kube listener");
                slot.waker = Some(cx.waker().clone());
                match &slot.listener {
                    Some(l) => l.poll_accept(cx),
                    None => Poll::Pending,
                }
            })
            .await;
            match accepted.and_then(|(stream, peer)| Ok((Conn::new(&self.0, stream)?, peer))) {
                Ok(conn) => return conn,
                Err(e) => {
                    tracing::debug!(error = %e, "fake kube: accept failed");
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.addr)
    }
}

/// An accepted connection; its socket is shut down when the server is killed.
struct Conn {
    id: u64,
    io: Option<TcpStream>,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    conns: Conns,
}

impl Conn {
    fn new(shared: &Shared, stream: TcpStream) -> io::Result<Conn> {
        // Like a real API server: each watch event goes out at once. With Nagle's algorithm an
        // event written while the previous one is unacknowledged waits for the client's
        // delayed ACK (40 ms of wall time), and a paused tokio clock meanwhile jumps to the
        // next timer (a watch timeout, the caller's own timeout).
        stream.set_nodelay(true)?;
        let std = stream.into_std()?;
        let dup = std.try_clone()?;
        let io = TcpStream::from_std(std)?;
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let killed = shared.killed();
        shared
            .conns
            .lock()
            .expect("fake kube conns")
            .insert(id, dup);
        Ok(Conn {
            id,
            io: Some(io),
            killed,
            conns: shared.conns.clone(),
        })
    }

    fn io(&mut self, cx: &mut Context<'_>) -> io::Result<Pin<&mut TcpStream>> {
        if self.io.is_some() && self.killed.as_mut().poll(cx).is_ready() {
            self.io = None;
        }
        match self.io.as_mut() {
            Some(io) => Ok(Pin::new(io)),
            None => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fake kube killed",
            )),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&self.id);
        }
    }
}

impl Conn {
    /// Runs an I/O operation on the socket unless the server was killed.
    fn op<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        f: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match self.get_mut().io(cx) {
            Ok(io) => f(io, cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.op(cx, |io, cx| io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.op(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.op(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.op(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.op(cx, |io, cx| io.poll_shutdown(cx))
    }
}

// ---------------------------------------------------------------------------------------------
// Routing.

enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Collection {
        ty: usize,
        ns: Option<String>,
    },
    Item {
        ty: usize,
        ns: Option<String>,
        name: String,
    },
    Log {
        ns: String,
        name: String,
    },
    NotFound,
}

fn route(st: &Store, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::Resources(String::new(), (*v).to_owned()),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group((*g).to_owned()),
        ["apis", g, v] => Route::Resources((*g).to_owned(), (*v).to_owned()),
        ["api", v, rest @ ..] => resource_route(st, "", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(st, g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(st: &Store, group: &str, version: &str, rest: &[&str]) -> Route {
    let find = |plural: &str| st.find(group, version, plural);
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(ty) = find(plural).filter(|&ty| st.types[ty].namespaced) {
            let ns = (*ns).to_owned();
            return match tail {
                [] => Route::Collection { ty, ns: Some(ns) },
                [name] => Route::Item {
                    ty,
                    ns: Some(ns),
                    name: (*name).to_owned(),
                },
                [name, "log"] if group.is_empty() && *plural == "pods" => Route::Log {
                    ns,
                    name: (*name).to_owned(),
                },
                _ => Route::NotFound,
            };
        }
    }
    match rest {
        [plural] => match find(plural) {
            Some(ty) => Route::Collection { ty, ns: None },
            None => Route::NotFound,
        },
        [plural, name] => match find(plural).filter(|&ty| !st.types[ty].namespaced) {
            Some(ty) => Route::Item {
                ty,
                ns: None,
                name: (*name).to_owned(),
            },
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn flag(params: &[(String, String)], name: &str) -> bool {
    matches!(param(params, name), Some("true" | "1"))
}

async fn handle(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params: Vec<(String, String)> = Query::try_from_uri(&uri)
        .map(|q: Query<Vec<(String, String)>>| q.0)
        .unwrap_or_default();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let watch = flag(&params, "watch");
    {
        let mut st = sh.store();
        let (verb, resource) = match route(&st, uri.path()) {
            Route::Version => ("version", None),
            Route::CoreVersions | Route::Groups | Route::Group(_) | Route::Resources(..) => {
                ("discovery", None)
            }
            Route::Collection { ty, .. } => (
                if watch { "watch" } else { "list" },
                Some(st.types[ty].plural.clone()),
            ),
            Route::Item { ty, .. } => ("get", Some(st.types[ty].plural.clone())),
            Route::Log { .. } => ("log", Some("pods".to_owned())),
            Route::NotFound => ("unknown", None),
        };
        st.requests.push(Request {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            params: params.clone(),
            accept: accept.clone(),
            verb: verb.to_owned(),
            resource,
        });
    }

    // Injected failures.
    let mut mode = sh.mode.subscribe();
    let mut killed = sh.killed();
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Normal => break,
            Mode::Fail(code) => return injected_failure(code),
            Mode::Stall => {
                tokio::select! {
                    changed = mode.changed() => if changed.is_err() {
                        return status_response(503, "ServiceUnavailable", "fake kube stopped", None);
                    },
                    () = &mut killed => {
                        return status_response(503, "ServiceUnavailable", "fake kube stopped", None);
                    }
                }
            }
        }
    }

    if let Some(token) = &sh.token {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {token}"));
        if !ok {
            return status_response(401, "Unauthorized", "Unauthorized", None);
        }
    }
    if method != Method::GET {
        return status_response(
            405,
            "MethodNotAllowed",
            format!(
                "the fake server does not allow this method ({method}) on the requested resource"
            ),
            None,
        );
    }

    let accept = accept.unwrap_or_default();
    let metadata = accept.contains("as=PartialObjectMetadata");
    let aggregated = accept.contains("as=APIGroupDiscoveryList");
    let mut st = sh.store();
    let rt = route(&st, uri.path());
    match rt {
        Route::Version => json_response(version_info()),
        Route::CoreVersions if aggregated => aggregated_response(&st, true),
        Route::CoreVersions => json_response(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": sh.addr.to_string()}],
        })),
        Route::Groups if aggregated => aggregated_response(&st, false),
        Route::Groups => json_response(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": st.groups().iter().map(|(g, vs)| api_group(g, vs)).collect::<Vec<_>>(),
        })),
        Route::Group(g) => match st.groups().into_iter().find(|(name, _)| *name == g) {
            Some((g, vs)) => {
                let mut v = api_group(&g, &vs);
                v["apiVersion"] = json!("v1");
                json_response(v)
            }
            None => not_found_path(),
        },
        Route::Resources(g, v) => match resource_list(&st, &g, &v) {
            Some(list) => json_response(list),
            None => not_found_path(),
        },
        Route::Collection { ty, ns } if watch => {
            start_watch(&sh, &mut st, ty, ns, &params, metadata)
        }
        Route::Collection { ty, ns } => list(&st, ty, ns.as_deref(), &params, metadata),
        Route::Item { ty, ns, name } => {
            let key = (ns.unwrap_or_default(), name);
            match st.objects[ty].get(&key) {
                Some(obj) if metadata => json_response(partial(obj)),
                Some(obj) => json_response(obj.clone()),
                None => not_found(&st.types[ty], &key.1),
            }
        }
        Route::Log { ns, name } => logs(&st, &ns, &name, &params),
        Route::NotFound => not_found_path(),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses.

fn json_response(v: Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// A `Status` object as the API server sends it.
fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn status_response(
    code: u16,
    reason: &str,
    message: impl AsRef<str>,
    details: Option<Value>,
) -> Response {
    let body = status(code, reason, message.as_ref(), details);
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, json_response(body)).into_response()
}

fn injected_failure(code: u16) -> Response {
    let reason = reason_for(code);
    let message = match code {
        401 => "Unauthorized".to_owned(),
        403 => "forbidden: the fake API server was told to refuse this request".to_owned(),
        429 => "Too many requests, please try again later.".to_owned(),
        _ => format!("fake kube: injected failure ({code} {reason})"),
    };
    let mut res = status_response(code, reason, message, None);
    if code == 429 {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

fn not_found_path() -> Response {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(
            json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}),
        ),
    )
}

fn not_found(t: &ResourceType, name: &str) -> Response {
    let what = if t.group.is_empty() {
        t.plural.clone()
    } else {
        format!("{}.{}", t.plural, t.group)
    };
    let mut details = json!({"name": name, "kind": t.plural});
    if !t.group.is_empty() {
        details["group"] = json!(t.group);
    }
    status_response(
        404,
        "NotFound",
        format!("{what} \"{name}\" not found"),
        Some(details),
    )
}

fn bad_request(message: impl AsRef<str>) -> Response {
    status_response(400, "BadRequest", message, None)
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:04:32Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

// ---------------------------------------------------------------------------------------------
// Discovery.

impl Store {
    /// Non-core groups with their versions, in registration order.
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) if !vs.contains(&t.version) => vs.push(t.version.clone()),
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "kind": "APIGroup",
        "name": group,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": gv(&versions[0]),
    })
}

fn resource_list(st: &Store, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = st
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources: Vec<Value> = Vec::new();
    for t in types {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.kind.to_lowercase(),
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": ["get", "list", "watch"],
        }));
        if group.is_empty() && t.plural == "pods" {
            resources.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) for `/api` (core) or
/// `/apis` (every other group).
fn aggregated_response(st: &Store, core: bool) -> Response {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_owned()])]
    } else {
        st.groups()
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = st
                        .types
                        .iter()
                        .filter(|t| t.group == *g && t.version == *v)
                        .map(|t| {
                            json!({
                                "resource": t.plural,
                                "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
                                "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": t.kind.to_lowercase(),
                                "verbs": ["get", "list", "watch"],
                            })
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g}, "versions": versions})
        })
        .collect();
    let mut res = json_response(json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
    );
    res
}

// ---------------------------------------------------------------------------------------------
// Lists and items.

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    })
}

fn in_namespace(obj: &Value, ns: Option<&str>) -> bool {
    ns.is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": [ns, name]});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v["rv"].as_u64()?,
        v["start"][0].as_str()?.to_owned(),
        v["start"][1].as_str()?.to_owned(),
    ))
}

fn list(
    st: &Store,
    ty: usize,
    ns: Option<&str>,
    params: &[(String, String)],
    metadata: bool,
) -> Response {
    let filter = match Filter::parse(params) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let limit = match param(params, "limit").map(str::parse::<usize>) {
        None | Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("limit: Invalid value: not a number"),
    };
    let (rv, after) = match param(params, "continue").filter(|c| !c.is_empty()) {
        None => (st.rv, None),
        Some(token) => match decode_continue(token) {
            Some((rv, _, _)) if rv < st.compacted => return status_response(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                None,
            ),
            Some((rv, ns, name)) => (rv, Some((ns, name))),
            None => return bad_request("continue: Invalid value: the continue token is malformed"),
        },
    };
    let t = &st.types[ty];
    let range = match &after {
        Some(k) => st.objects[ty].range::<(String, String), _>((
            std::ops::Bound::Excluded(k.clone()),
            std::ops::Bound::Unbounded,
        )),
        None => st.objects[ty].range::<(String, String), _>(..),
    };
    let matching: Vec<(&(String, String), &Value)> = range
        .filter(|(_, o)| in_namespace(o, ns) && filter.matches(o))
        .collect();
    let take = limit.unwrap_or(matching.len()).min(matching.len());
    let items: Vec<Value> = matching[..take]
        .iter()
        .map(|(_, o)| if metadata { partial(o) } else { (*o).clone() })
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if take < matching.len() {
        let (kns, kname) = matching[take - 1].0;
        meta["continue"] = json!(encode_continue(rv, kns, kname));
        meta["remainingItemCount"] = json!(matching.len() - take);
    }
    let (kind, api_version) = if metadata {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (format!("{}List", t.kind), t.api_version())
    };
    json_response(json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": meta,
        "items": items,
    }))
}

// ---------------------------------------------------------------------------------------------
// Watches.

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn expired_line(requested: u64, oldest: u64) -> Bytes {
    event_line(
        "ERROR",
        status(
            410,
            "Expired",
            &format!("too old resource version: {requested} ({oldest})"),
            None,
        ),
    )
}

fn bookmark_line(t: &ResourceType, metadata: bool, rv: u64, initial_end: bool) -> Bytes {
    let (kind, api_version) = if metadata {
        (
            "PartialObjectMetadata".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (t.kind.clone(), t.api_version())
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
    )
}

fn render_object(obj: &Value, metadata: bool) -> Value {
    if metadata {
        partial(obj)
    } else {
        obj.clone()
    }
}

fn render_event(ev: &HistEvent, spec: &WatchSpec) -> Option<Bytes> {
    if ev.ty != spec.ty {
        return None;
    }
    let matches = |o: &Value| in_namespace(o, spec.ns.as_deref()) && spec.filter.matches(o);
    let kind = match ev.kind {
        EventType::Added => matches(&ev.object).then_some("ADDED")?,
        EventType::Deleted => matches(&ev.object).then_some("DELETED")?,
        EventType::Modified => match (ev.prev.as_ref().is_some_and(matches), matches(&ev.object)) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
    };
    Some(event_line(kind, render_object(&ev.object, spec.metadata)))
}

fn start_watch(
    sh: &Shared,
    st: &mut Store,
    ty: usize,
    ns: Option<String>,
    params: &[(String, String)],
    metadata: bool,
) -> Response {
    let filter = match Filter::parse(params) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let spec = WatchSpec {
        ty,
        ns,
        filter,
        metadata,
        bookmarks: flag(params, "allowWatchBookmarks"),
    };
    let timeout = match param(params, "timeoutSeconds").map(str::parse::<u64>) {
        None | Some(Ok(0)) => None,
        Some(Ok(s)) => Some(Duration::from_secs(s)),
        Some(Err(_)) => return bad_request("timeoutSeconds: Invalid value: not a number"),
    };
    let send_initial = flag(params, "sendInitialEvents");
    let mut lines = VecDeque::new();
    match param(params, "resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0") {
        Some(rv) if !send_initial => {
            let Ok(from) = rv.parse::<u64>() else {
                return bad_request(format!("resourceVersion: Invalid value: {rv:?}"));
            };
            if from < st.compacted {
                let body = Body::from(expired_line(from, st.compacted));
                return watch_response(body);
            }
            lines.extend(
                st.history
                    .iter()
                    .filter(|e| e.rv > from)
                    .filter_map(|e| render_event(e, &spec)),
            );
        }
        _ => {
            // The current state as synthetic ADDED events.
            lines.extend(
                st.objects[ty]
                    .values()
                    .filter(|o| in_namespace(o, spec.ns.as_deref()) && spec.filter.matches(o))
                    .map(|o| event_line("ADDED", render_object(o, metadata))),
            );
            if send_initial {
                lines.push_back(bookmark_line(&st.types[ty], metadata, st.rv, true));
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    st.subs.push(Sub {
        spec,
        last_rv: st.rv,
        tx,
    });
    st.opened += 1;
    sh.opened.notify_waiters();
    watch_response(watch_body(lines, rx, timeout, sh.killed()))
}

fn watch_response(body: Body) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

struct WatchState {
    initial: VecDeque<Bytes>,
    rx: mpsc::UnboundedReceiver<WatchMsg>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

fn watch_body(
    initial: VecDeque<Bytes>,
    rx: mpsc::UnboundedReceiver<WatchMsg>,
    timeout: Option<Duration>,
    killed: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Body {
    let state = WatchState {
        initial,
        rx,
        deadline: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
        killed,
        done: false,
    };
    let stream = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if let Some(line) = st.initial.pop_front() {
            return Some((Ok(line), st));
        }
        let aborted = || io::Error::new(io::ErrorKind::ConnectionAborted, "watch disconnected");
        let deadline = async {
            match st.deadline.as_mut() {
                Some(d) => d.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = st.killed.as_mut() => {
                st.done = true;
                Some((Err(aborted()), st))
            }
            msg = st.rx.recv() => match msg {
                Some(WatchMsg::Line(line)) => Some((Ok(line), st)),
                Some(WatchMsg::Abort) => {
                    st.done = true;
                    Some((Err(aborted()), st))
                }
                None => None,
            },
            () = deadline => None,
        }
    });
    Body::from_stream(stream.boxed())
}

// ---------------------------------------------------------------------------------------------
// Selectors.

#[derive(Debug)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug)]
struct FieldReq {
    path: String,
    value: String,
    equal: bool,
}

#[derive(Debug, Default)]
struct Filter {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    fn parse(params: &[(String, String)]) -> Result<Filter, String> {
        let mut f = Filter::default();
        if let Some(s) = param(params, "labelSelector") {
            f.labels = parse_label_selector(s)?;
        }
        if let Some(s) = param(params, "fieldSelector") {
            f.fields = parse_field_selector(s)?;
        }
        Ok(f)
    }

    fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        }) && self
            .fields
            .iter()
            .all(|r| (field_value(obj, &r.path) == r.value) == r.equal)
    }
}

fn field_value(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn valid_key(k: &str) -> Result<String, String> {
    if k.is_empty() || k.chars().any(|c| c.is_whitespace() || "=!(),".contains(c)) {
        Err(format!(
            "unable to parse requirement: invalid label key {k:?}"
        ))
    } else {
        Ok(k.to_owned())
    }
}

fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    let mut reqs = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let req = if let Some((head, vals)) = part.strip_suffix(')').and_then(|p| p.split_once('('))
        {
            let mut words = head.split_whitespace();
            let (Some(k), Some(op), None) = (words.next(), words.next(), words.next()) else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            let vals: Vec<String> = vals
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            match op {
                "in" => LabelReq::In(valid_key(k)?, vals),
                "notin" => LabelReq::NotIn(valid_key(k)?, vals),
                _ => {
                    return Err(format!(
                        "unable to parse requirement: unknown operator {op:?}"
                    ))
                }
            }
        } else if let Some(k) = part.strip_prefix('!') {
            LabelReq::NotExists(valid_key(k.trim())?)
        } else if let Some((k, v)) = part.split_once("!=") {
            LabelReq::NotEq(valid_key(k.trim())?, v.trim().to_owned())
        } else if let Some((k, v)) = part.split_once("==") {
            LabelReq::Eq(valid_key(k.trim())?, v.trim().to_owned())
        } else if let Some((k, v)) = part.split_once('=') {
            LabelReq::Eq(valid_key(k.trim())?, v.trim().to_owned())
        } else {
            LabelReq::Exists(valid_key(part)?)
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn parse_field_selector(s: &str) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (path, value, equal) = if let Some((p, v)) = part.split_once("!=") {
            (p, v, false)
        } else if let Some((p, v)) = part.split_once("==") {
            (p, v, true)
        } else if let Some((p, v)) = part.split_once('=') {
            (p, v, true)
        } else {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        };
        reqs.push(FieldReq {
            path: path.trim().to_owned(),
            value: value.trim().to_owned(),
            equal,
        });
    }
    Ok(reqs)
}

// ---------------------------------------------------------------------------------------------
// Logs.

fn logs(st: &Store, ns: &str, name: &str, params: &[(String, String)]) -> Response {
    let pods = st.find("", "v1", "pods").expect("pods registered");
    let Some(pod) = st.objects[pods].get(&(ns.to_owned(), name.to_owned())) else {
        return not_found(&st.types[pods], name);
    };
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let mut valid = containers.clone();
    valid.extend(names("initContainers"));
    valid.extend(names("ephemeralContainers"));
    let container = match param(params, "container").filter(|c| !c.is_empty()) {
        Some(c) => c.to_owned(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            ))
        }
    };
    if !valid.contains(&container) {
        return bad_request(format!("container {container} is not valid for pod {name}"));
    }
    let empty = Vec::new();
    let lines = st
        .logs
        .get(&(ns.to_owned(), name.to_owned(), container))
        .unwrap_or(&empty);
    let now = st
        .now
        .or_else(|| lines.iter().map(|(t, _)| *t).max())
        .unwrap_or_else(Utc::now);
    let since = match (param(params, "sinceSeconds"), param(params, "sinceTime")) {
        (Some(s), _) => match s.parse::<i64>() {
            Ok(s) => Some(now - chrono::Duration::seconds(s)),
            Err(_) => return bad_request("sinceSeconds: Invalid value: not a number"),
        },
        (None, Some(t)) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => return bad_request("sinceTime: Invalid value: not RFC 3339"),
        },
        (None, None) => None,
    };
    let mut selected: Vec<&(DateTime<Utc>, String)> = lines
        .iter()
        .filter(|(t, _)| since.is_none_or(|s| *t >= s))
        .collect();
    if let Some(n) = param(params, "tailLines") {
        let Ok(n) = n.parse::<usize>() else {
            return bad_request("tailLines: Invalid value: not a number");
        };
        let skip = selected.len().saturating_sub(n);
        selected.drain(..skip);
    }
    let timestamps = flag(params, "timestamps");
    let mut text = String::new();
    for (t, line) in selected {
        if timestamps {
            text.push_str(&t.to_rfc3339_opts(SecondsFormat::Nanos, true));
            text.push(' ');
        }
        text.push_str(line);
        text.push('\n');
    }
    if let Some(Ok(limit)) = param(params, "limitBytes").map(str::parse::<usize>) {
        let mut cut = limit.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        text,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Object builders.

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now_str() -> String {
    rfc3339(Utc::now())
}

fn hash(parts: &[&str]) -> u64 {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A stable, UUID-shaped uid for an object (the same for the same kind, namespace and name);
/// what [`FakeKube::apply`] assigns when an object has none, and what the builders use, so an
/// event's `involvedObject.uid` matches the object's.
pub fn uid_for(kind: &str, namespace: &str, name: &str) -> String {
    let a = hash(&[kind, namespace, name]);
    let b = hash(&[name, namespace, kind, "uid"]);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn ip(prefix: &str, parts: &[&str]) -> String {
    let h = hash(parts);
    format!("{prefix}.{}.{}", (h >> 8) % 254 + 1, h % 254 + 1)
}

fn short_hash(parts: &[&str], len: usize) -> String {
    // Kubernetes' generated-name alphabet (no vowels).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = hash(parts);
    (0..len)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn api_version_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        "Ingress" => "networking.k8s.io/v1",
        "HorizontalPodAutoscaler" => "autoscaling/v2",
        _ => "v1",
    }
}

/// A running, Ready pod with one container `app` (image `registry.example.com/<name>:1.0.0`,
/// port 8080), labels `app=<name>`, on node `node-1`.
pub fn pod(namespace: &str, name: &str) -> Value {
    let t = now_str();
    let image = format!("registry.example.com/{name}:1.0.0");
    let pod_ip = ip("10.244", &["pod", namespace, name]);
    let condition = |ty: &str| json!({"type": ty, "status": "True", "lastProbeTime": null, "lastTransitionTime": t});
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Pod", namespace, name),
            "labels": {"app": name},
            "creationTimestamp": t,
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "nodeName": "node-1",
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
        },
        "status": {
            "phase": "Running",
            "conditions": [
                condition("PodReadyToStartContainers"),
                condition("Initialized"),
                condition("Ready"),
                condition("ContainersReady"),
                condition("PodScheduled"),
            ],
            "hostIP": "10.0.0.11",
            "hostIPs": [{"ip": "10.0.0.11"}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": t,
            "qosClass": "BestEffort",
            "containerStatuses": [{
                "name": "app",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "image": image,
                "imageID": format!("registry.example.com/{name}@sha256:{:016x}{:016x}{:016x}{:016x}",
                    hash(&[name, "1"]), hash(&[name, "2"]), hash(&[name, "3"]), hash(&[name, "4"])),
                "containerID": format!("containerd://{:016x}{:016x}", hash(&[namespace, name, "c1"]), hash(&[namespace, name, "c2"])),
                "state": {"running": {"startedAt": t}},
                "lastState": {},
            }],
        },
    })
}

/// A rolled-out deployment: `replicas` ready and available, `Available=True`
/// (MinimumReplicasAvailable), `Progressing=True` (NewReplicaSetAvailable), generation 1
/// observed; selector and pod template labels `app=<name>`.
pub fn deployment(namespace: &str, name: &str, replicas: u32) -> Value {
    let t = now_str();
    let rs = format!("{name}-{}", short_hash(&["rs", namespace, name], 10));
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Deployment", namespace, name),
            "generation": 1,
            "labels": {"app": name},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "creationTimestamp": t,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": format!("registry.example.com/{name}:1.0.0"),
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {},
                    }],
                    "restartPolicy": "Always",
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": t,
                    "lastTransitionTime": t,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": format!("ReplicaSet \"{rs}\" has successfully progressed."),
                    "lastUpdateTime": t,
                    "lastTransitionTime": t,
                },
            ],
        },
    })
}

/// A ClusterIP service selecting `app=<name>`, port `http` 80 → 8080.
pub fn service(namespace: &str, name: &str) -> Value {
    let cluster_ip = ip("10.96", &["svc", namespace, name]);
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Service", namespace, name),
            "labels": {"app": name},
            "creationTimestamp": now_str(),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    })
}

/// The EndpointSlice of a service (`kubernetes.io/service-name` label, owner reference) with
/// `ready_addresses` ready endpoints, each backed by pod `<service>-<i>`.
pub fn endpoint_slice(namespace: &str, service: &str, ready_addresses: usize) -> Value {
    let name = format!("{service}-{}", short_hash(&["eps", namespace, service], 5));
    let endpoints: Vec<Value> = (0..ready_addresses)
        .map(|i| {
            let pod = format!("{service}-{i}");
            json!({
                "addresses": [ip("10.244", &["pod", namespace, &pod])],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-1",
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": uid_for("Pod", namespace, &pod)},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("EndpointSlice", namespace, &name),
            "generateName": format!("{service}-"),
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Service",
                "name": service,
                "uid": uid_for("Service", namespace, service),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "creationTimestamp": now_str(),
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// A core/v1 `Warning` event about an object (`involvedObject` with its kind, name, namespace,
/// apiVersion and [`uid_for`] uid), seen `count` times, the first 30 s apart before the last
/// (now); the source is the kubelet for pods, the kind's controller otherwise.
pub fn warning_event(
    namespace: &str,
    name: &str,
    involved_kind: &str,
    involved_name: &str,
    reason: &str,
    message: &str,
    count: u32,
) -> Value {
    let last = Utc::now();
    let first = last - chrono::Duration::seconds(30 * i64::from(count.saturating_sub(1)));
    let mut involved = json!({
        "kind": involved_kind,
        "namespace": namespace,
        "name": involved_name,
        "uid": uid_for(involved_kind, namespace, involved_name),
        "apiVersion": api_version_of(involved_kind),
    });
    let source = if involved_kind == "Pod" {
        involved["fieldPath"] = json!("spec.containers{app}");
        json!({"component": "kubelet", "host": "node-1"})
    } else {
        let controller = match involved_kind {
            "Deployment" => "deployment-controller".to_owned(),
            "ReplicaSet" => "replicaset-controller".to_owned(),
            "Service" => "service-controller".to_owned(),
            other => format!("{}-controller", other.to_lowercase()),
        };
        json!({"component": controller})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Event", namespace, name),
            "creationTimestamp": rfc3339(first),
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": rfc3339(first),
        "lastTimestamp": rfc3339(last),
        "count": count,
        "type": "Warning",
        "eventTime": null,
        "reportingComponent": source["component"],
        "reportingInstance": source.get("host").cloned().unwrap_or(json!("")),
    })
}

/// An active namespace (label `kubernetes.io/metadata.name`).
pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid_for("Namespace", "", name),
            "labels": {"kubernetes.io/metadata.name": name},
            "creationTimestamp": now_str(),
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// An `Opaque` secret; `data` values are base64-encoded as the API does.
pub fn secret<K, V>(namespace: &str, name: &str, data: impl IntoIterator<Item = (K, V)>) -> Value
where
    K: Into<String>,
    V: AsRef<[u8]>,
{
    let data: serde_json::Map<String, Value> = data
        .into_iter()
        .map(|(k, v)| {
            (
                k.into(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("Secret", namespace, name),
            "creationTimestamp": now_str(),
        },
        "type": "Opaque",
        "data": data,
    })
}

/// A config map with one key, `config.yaml`.
pub fn config_map(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid_for("ConfigMap", namespace, name),
            "creationTimestamp": now_str(),
        },
        "data": {"config.yaml": "log_level: info\n"},
    })
}
