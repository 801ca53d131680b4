//! The read API across clusters that the agent tools (SRECoder) call: **get**, **list**,
//! **describe** (an object and its recent events), **events** and **pod logs**, for Pods,
//! Deployments, Services, ConfigMaps, Secrets, Events and any other kind by group / version /
//! kind (resolved through discovery), on any configured cluster by name.
//!
//! A [`ClusterReader`] connects to a cluster on its first use (its kubeconfig, see
//! [`super::client`]) and keeps the client; every request passes the cluster's circuit
//! `k8s:<cluster>` like the watcher's. A failed connect fails that call only and is retried on
//! the next one; a 401 drops the client, so the next call re-reads the kubeconfig (a rotated
//! Secret is picked up). Results are JSON objects with `apiVersion` and `kind` set (list items too) and
//! `metadata.managedFields` dropped.
//!
//! # Secrets: metadata only
//! Secrets are read only through the metadata-only API (`Accept:
//! application/json;as=PartialObjectMetadata…`), so their `data` never leaves the API server:
//! a Secret comes back as `apiVersion`, `kind` and `metadata` (name, namespace, labels,
//! annotations, …). This holds whichever way a Secret is asked for — [`Kind::Secrets`], or
//! `v1/Secret` (any spelling of the core kind) through [`Kind::Custom`] — and, as defence in
//! depth, anything returned whose `kind` is `Secret` keeps only `apiVersion`, `kind`,
//! `metadata`, `type` and `immutable` (never `data` or `stringData`), and loses the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, which would hold a copy of
//! the data of a Secret created with `kubectl apply`.
//!
//! # Limits
//! - **list**: [`DEFAULT_LIST_LIMIT`] objects unless asked, at most [`MAX_LIST_LIMIT`]; the
//!   rest is reachable through the returned continue token.
//! - **events**: newest first (by last, event, series or first time, then creation), at most
//!   [`MAX_EVENT_LIMIT`] ([`DEFAULT_EVENT_LIMIT`] unless asked; **describe** returns the newest
//!   [`DESCRIBE_EVENT_LIMIT`]); since the API does not sort, up to [`EVENT_SCAN_LIMIT`]
//!   matching events are fetched and sorted, so in a namespace with more matching events the
//!   newest may be missed.
//! - **logs**: `tail` lines (default `kubernetes_integration.log_tail_lines`, at most
//!   [`MAX_LOG_TAIL_LINES`]) and at most [`MAX_LOG_BYTES`] bytes (the API cuts at the byte
//!   limit, keeping the oldest of the selected lines).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret, Service};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, LogParams, ObjectList,
    PartialObjectMeta,
};
use kube::discovery::Scope;
use serde_json::{json, Value};
use sre_config::{ClusterConfig, SecretStore};

use super::client::{connect, Guard};

/// Objects a list returns unless asked for another number.
pub const DEFAULT_LIST_LIMIT: u32 = 500;
/// Most objects a list returns.
pub const MAX_LIST_LIMIT: u32 = 5000;
/// Events returned by [`ClusterReader::events`] unless asked for another number.
pub const DEFAULT_EVENT_LIMIT: u32 = 100;
/// Most events [`ClusterReader::events`] returns.
pub const MAX_EVENT_LIMIT: u32 = 1000;
/// Events returned with an object by [`ClusterReader::describe`].
pub const DESCRIBE_EVENT_LIMIT: u32 = 50;
/// Most matching events fetched (and sorted) for one events or describe call.
pub const EVENT_SCAN_LIMIT: u32 = 5000;
/// Most log lines one call returns.
pub const MAX_LOG_TAIL_LINES: u32 = 10_000;
/// Most log bytes one call returns.
pub const MAX_LOG_BYTES: i64 = 4 << 20;

/// Events fetched per request while scanning.
const EVENT_PAGE: u32 = 500;
/// The annotation `kubectl apply` keeps the applied object in (a Secret's data included).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No cluster of that name is configured.
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    /// The cluster cannot be reached: its client could not be built, its circuit is open, or
    /// the request failed in transport or timed out.
    #[error("cluster {cluster} is unavailable: {reason}")]
    Unavailable {
        /// The cluster.
        cluster: String,
        /// What happened.
        reason: String,
    },
    /// The object (or its namespace) does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The cluster's credentials may not do this (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The cluster rejected the credentials (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request is not valid: a kind, selector or parameter we or the API (400 / 422)
    /// rejected.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Discovery could not resolve the group / version / kind on that cluster.
    #[error("unknown kind {0}")]
    UnknownKind(String),
    /// The API server answered, but not with what was asked for.
    #[error("unreadable answer from the API server: {0}")]
    Malformed(String),
    /// Any other error status of the API.
    #[error("API error {code}: {message}")]
    Api {
        /// HTTP status.
        code: u16,
        /// The `Status` message.
        message: String,
    },
}

/// A kind of object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// core/v1 Pods.
    Pods,
    /// apps/v1 Deployments.
    Deployments,
    /// core/v1 Services.
    Services,
    /// core/v1 ConfigMaps.
    ConfigMaps,
    /// core/v1 Secrets — metadata only.
    Secrets,
    /// core/v1 Events.
    Events,
    /// Any other kind, resolved through discovery on the cluster. A core Secret given this way
    /// is read as [`Kind::Secrets`] (metadata only).
    Custom {
        /// API group, `""` for core.
        group: String,
        /// Version, e.g. `v1`.
        version: String,
        /// Kind, e.g. `Application`.
        kind: String,
    },
}

impl Kind {
    /// Parses `pods` / `pod` / `po`, `deployments` / `deployment` / `deploy`, `services` /
    /// `service` / `svc`, `configmaps` / `configmap` / `cm`, `secrets` / `secret`, `events` /
    /// `event` / `ev` (any case), or `group/version/Kind` and `version/Kind` (core group).
    /// Built-in kinds given by group / version / kind come back as their variant (`v1/Secret`
    /// is [`Kind::Secrets`]).
    pub fn parse(s: &str) -> Result<Kind, ReadError> {
        let s = s.trim();
        if s.contains('/') {
            let parts: Vec<&str> = s.split('/').map(str::trim).collect();
            let (group, version, kind) = match parts.as_slice() {
                [v, k] => ("", *v, *k),
                [g, v, k] => (*g, *v, *k),
                _ => return Err(invalid_kind(s)),
            };
            if version.is_empty() || kind.is_empty() {
                return Err(invalid_kind(s));
            }
            return Ok(Kind::custom(group, version, kind));
        }
        match s.to_ascii_lowercase().as_str() {
            "pods" | "pod" | "po" => Ok(Kind::Pods),
            "deployments" | "deployment" | "deploy" => Ok(Kind::Deployments),
            "services" | "service" | "svc" => Ok(Kind::Services),
            "configmaps" | "configmap" | "cm" => Ok(Kind::ConfigMaps),
            "secrets" | "secret" => Ok(Kind::Secrets),
            "events" | "event" | "ev" => Ok(Kind::Events),
            _ => Err(invalid_kind(s)),
        }
    }

    /// A kind by group / version / kind; the built-in kinds come back as their variant.
    pub fn custom(group: &str, version: &str, kind: &str) -> Kind {
        Kind::Custom {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
        .normalized()
    }

    /// Built-in kinds given by group / version / kind as their variant. A core Secret is
    /// recognised whatever the version and the spelling (`Secret`, `secret`, `secrets`).
    fn normalized(self) -> Kind {
        let Kind::Custom {
            group,
            version,
            kind,
        } = &self
        else {
            return self;
        };
        let lower = kind.to_ascii_lowercase();
        match (group.as_str(), version.as_str(), lower.as_str()) {
            ("", _, "secret" | "secrets") => Kind::Secrets,
            ("", "v1", "pod" | "pods") => Kind::Pods,
            ("", "v1", "service" | "services") => Kind::Services,
            ("", "v1", "configmap" | "configmaps") => Kind::ConfigMaps,
            ("", "v1", "event" | "events") => Kind::Events,
            ("apps", "v1", "deployment" | "deployments") => Kind::Deployments,
            _ => self,
        }
    }

    /// The API's kind name (`Pod`, `Deployment`, …, or the custom kind).
    pub fn kind_name(&self) -> &str {
        match self {
            Kind::Pods => "Pod",
            Kind::Deployments => "Deployment",
            Kind::Services => "Service",
            Kind::ConfigMaps => "ConfigMap",
            Kind::Secrets => "Secret",
            Kind::Events => "Event",
            Kind::Custom { kind, .. } => kind,
        }
    }

    /// The resource of a built-in kind.
    fn builtin(&self) -> Option<ApiResource> {
        Some(match self {
            Kind::Pods => ApiResource::erase::<Pod>(&()),
            Kind::Deployments => ApiResource::erase::<Deployment>(&()),
            Kind::Services => ApiResource::erase::<Service>(&()),
            Kind::ConfigMaps => ApiResource::erase::<ConfigMap>(&()),
            Kind::Secrets => ApiResource::erase::<Secret>(&()),
            Kind::Events => ApiResource::erase::<Event>(&()),
            Kind::Custom { .. } => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Pods => f.write_str("pods"),
            Kind::Deployments => f.write_str("deployments"),
            Kind::Services => f.write_str("services"),
            Kind::ConfigMaps => f.write_str("configmaps"),
            Kind::Secrets => f.write_str("secrets"),
            Kind::Events => f.write_str("events"),
            Kind::Custom {
                group,
                version,
                kind,
            } if group.is_empty() => write!(f, "{version}/{kind}"),
            Kind::Custom {
                group,
                version,
                kind,
            } => write!(f, "{group}/{version}/{kind}"),
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = ReadError;

    fn from_str(s: &str) -> Result<Kind, ReadError> {
        Kind::parse(s)
    }
}

fn invalid_kind(s: &str) -> ReadError {
    ReadError::Invalid(format!(
        "unknown kind {s:?}: use pods, deployments, services, configmaps, secrets, events, \
         group/version/Kind or v1/Kind"
    ))
}

/// What to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this namespace (`None`: all namespaces; ignored for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// A label selector, e.g. `app=web,tier!=db`.
    pub label_selector: Option<String>,
    /// A field selector, e.g. `status.phase=Running`.
    pub field_selector: Option<String>,
    /// At most this many ([`DEFAULT_LIST_LIMIT`] when `None` or 0, at most
    /// [`MAX_LIST_LIMIT`]).
    pub limit: Option<u32>,
    /// Continue a previous list ([`Listed::continue_token`]) with the same query.
    pub continue_token: Option<String>,
}

/// A page of a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listed {
    /// The objects.
    pub items: Vec<Value>,
    /// Set when there are more: pass it as [`ListQuery::continue_token`] for the next page.
    pub continue_token: Option<String>,
    /// How many more there are, when the API says.
    pub remaining: Option<i64>,
}

/// An object and what happened to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    /// The object.
    pub object: Value,
    /// Its events (matched by involved object name, namespace and kind), newest first, at most
    /// [`DESCRIBE_EVENT_LIMIT`].
    pub events: Vec<Value>,
}

/// The object events are about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Involved {
    /// Its kind (any kind matches when `None`).
    pub kind: Option<Kind>,
    /// Its name.
    pub name: String,
}

/// Which events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this namespace (`None`: all namespaces).
    pub namespace: Option<String>,
    /// Only events about this object (in [`namespace`](Self::namespace) when set).
    pub involved: Option<Involved>,
    /// Only `type=Warning` events.
    pub warnings_only: bool,
    /// At most this many ([`DEFAULT_EVENT_LIMIT`] when `None` or 0, at most
    /// [`MAX_EVENT_LIMIT`]).
    pub limit: Option<u32>,
}

/// Which log lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// The container (required by the API when the pod has more than one).
    pub container: Option<String>,
    /// The last this many lines (default `log_tail_lines`, at most [`MAX_LOG_TAIL_LINES`]).
    pub tail: Option<u32>,
    /// Only lines from this long ago (rounded up to whole seconds).
    pub since: Option<Duration>,
    /// The previous (terminated) instance of the container, e.g. before a crash.
    pub previous: bool,
}

/// The read API across the configured clusters. Cheap to clone.
#[derive(Clone)]
pub struct ClusterReader {
    inner: Arc<Inner>,
}

struct Inner {
    clusters: BTreeMap<String, Entry>,
    log_tail_lines: u32,
}

/// How to reach a cluster.
struct Source {
    cluster: ClusterConfig,
    secrets: SecretStore,
    guard: Option<Guard>,
}

/// Resolved custom kinds by group, version and kind: the resource and whether it is namespaced.
type KindCache = HashMap<(String, String, String), (ApiResource, bool)>;

struct Entry {
    source: Option<Source>,
    /// The connected client; dropped on a 401 so the next call re-reads the kubeconfig (a
    /// rotated token is picked up).
    client: Mutex<Option<kube::Client>>,
    /// Custom kinds resolved so far.
    kinds: Mutex<KindCache>,
}

impl fmt::Debug for ClusterReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterReader")
            .field("clusters", &self.clusters())
            .field("log_tail_lines", &self.inner.log_tail_lines)
            .finish()
    }
}

/// What a kind resolved to on a cluster.
enum Target {
    /// Core Secrets, through the metadata-only API.
    Secrets,
    /// Anything else.
    Dynamic { ar: ApiResource, namespaced: bool },
}

impl ClusterReader {
    /// A reader for `clusters`, whose kubeconfigs are read from `secrets` and whose requests
    /// pass the guard `guards` gives for a cluster's name (a cluster without one is
    /// [`ReadError::Unavailable`]). Nothing is connected until first used.
    pub fn new(
        clusters: Vec<ClusterConfig>,
        secrets: SecretStore,
        guards: impl Fn(&str) -> Option<Guard>,
        log_tail_lines: u32,
    ) -> Self {
        let clusters = clusters
            .into_iter()
            .map(|cluster| {
                let guard = guards(&cluster.name);
                let name = cluster.name.clone();
                let source = Source {
                    cluster,
                    secrets: secrets.clone(),
                    guard,
                };
                (name, Entry::new(Some(source), None))
            })
            .collect();
        Self::with(clusters, log_tail_lines)
    }

    /// A reader over ready clients, by cluster name (tests, or clients built elsewhere).
    pub fn from_clients(clients: BTreeMap<String, kube::Client>, log_tail_lines: u32) -> Self {
        let clusters = clients
            .into_iter()
            .map(|(name, client)| (name, Entry::new(None, Some(client))))
            .collect();
        Self::with(clusters, log_tail_lines)
    }

    fn with(clusters: BTreeMap<String, Entry>, log_tail_lines: u32) -> Self {
        ClusterReader {
            inner: Arc::new(Inner {
                clusters,
                log_tail_lines,
            }),
        }
    }

    /// The cluster names, sorted.
    pub fn clusters(&self) -> Vec<String> {
        self.inner.clusters.keys().cloned().collect()
    }

    /// One object. `namespace` is required for namespaced kinds and ignored otherwise.
    pub async fn get(
        &self,
        cluster: &str,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ReadError> {
        let c = self.cluster(cluster).await?;
        let name = required("name", Some(name))?;
        match c.resolve(kind).await? {
            Target::Secrets => {
                let ns = required("namespace", namespace)?;
                let api: Api<Secret> = Api::namespaced(c.client.clone(), ns);
                let meta = api.get_metadata(name).await.map_err(|e| c.error(e))?;
                Ok(secret_value(meta))
            }
            Target::Dynamic { ar, namespaced } => {
                let api = if namespaced {
                    let ns = required("namespace", namespace)?;
                    Api::<DynamicObject>::namespaced_with(c.client.clone(), ns, &ar)
                } else {
                    Api::all_with(c.client.clone(), &ar)
                };
                let obj = api.get(name).await.map_err(|e| c.error(e))?;
                object_value(obj, &ar)
            }
        }
    }

    /// A page of objects (see [`ListQuery`] for the limits).
    pub async fn list(
        &self,
        cluster: &str,
        kind: &Kind,
        query: &ListQuery,
    ) -> Result<Listed, ReadError> {
        let c = self.cluster(cluster).await?;
        let limit = match query.limit {
            None | Some(0) => DEFAULT_LIST_LIMIT,
            Some(n) => n.min(MAX_LIST_LIMIT),
        };
        let lp = ListParams {
            label_selector: non_empty(query.label_selector.as_deref()),
            field_selector: non_empty(query.field_selector.as_deref()),
            limit: Some(limit),
            continue_token: non_empty(query.continue_token.as_deref()),
            ..ListParams::default()
        };
        let namespace = non_empty(query.namespace.as_deref());
        match c.resolve(kind).await? {
            Target::Secrets => {
                let api: Api<Secret> = match &namespace {
                    Some(ns) => Api::namespaced(c.client.clone(), ns),
                    None => Api::all(c.client.clone()),
                };
                let list = api.list_metadata(&lp).await.map_err(|e| c.error(e))?;
                let (items, continue_token, remaining) = split(list);
                Ok(Listed {
                    items: items.into_iter().map(secret_value).collect(),
                    continue_token,
                    remaining,
                })
            }
            Target::Dynamic { ar, namespaced } => {
                let api = dynamic_api(&c.client, &ar, namespaced, namespace.as_deref());
                let list = api.list(&lp).await.map_err(|e| c.error(e))?;
                let (items, continue_token, remaining) = split(list);
                Ok(Listed {
                    items: items
                        .into_iter()
                        .map(|o| object_value(o, &ar))
                        .collect::<Result<_, _>>()?,
                    continue_token,
                    remaining,
                })
            }
        }
    }

    /// One object (as [`get`](Self::get)) with its newest events: those whose involved object
    /// has its name, namespace and kind.
    pub async fn describe(
        &self,
        cluster: &str,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Description, ReadError> {
        let object = self.get(cluster, kind, namespace, name).await?;
        let meta = &object["metadata"];
        let name = meta["name"].as_str().unwrap_or(name);
        let kind_name = object["kind"].as_str().unwrap_or(kind.kind_name());
        let ns = meta["namespace"].as_str().filter(|s| !s.is_empty());
        let mut selector = format!("involvedObject.name={name},involvedObject.kind={kind_name}");
        if let Some(ns) = ns {
            selector.push_str(&format!(",involvedObject.namespace={ns}"));
        }
        let c = self.cluster(cluster).await?;
        let events = c.events(ns, selector, DESCRIBE_EVENT_LIMIT).await?;
        Ok(Description { object, events })
    }

    /// Events, newest first (see [`EventQuery`] for the filters and limits).
    pub async fn events(&self, cluster: &str, query: &EventQuery) -> Result<Vec<Value>, ReadError> {
        let c = self.cluster(cluster).await?;
        let namespace = non_empty(query.namespace.as_deref());
        let mut fields = Vec::new();
        if let Some(inv) = &query.involved {
            fields.push(format!(
                "involvedObject.name={}",
                required("involved object name", Some(&inv.name))?
            ));
            if let Some(k) = &inv.kind {
                fields.push(format!("involvedObject.kind={}", k.kind_name()));
            }
            if let Some(ns) = &namespace {
                fields.push(format!("involvedObject.namespace={ns}"));
            }
        }
        if query.warnings_only {
            fields.push("type=Warning".to_owned());
        }
        let limit = match query.limit {
            None | Some(0) => DEFAULT_EVENT_LIMIT,
            Some(n) => n.min(MAX_EVENT_LIMIT),
        };
        c.events(namespace.as_deref(), fields.join(","), limit)
            .await
    }

    /// A pod's log (see [`LogQuery`] for the limits).
    pub async fn logs(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
        query: &LogQuery,
    ) -> Result<String, ReadError> {
        let c = self.cluster(cluster).await?;
        let ns = required("namespace", Some(namespace))?;
        let pod = required("pod name", Some(pod))?;
        let tail = query
            .tail
            .unwrap_or(self.inner.log_tail_lines)
            .min(MAX_LOG_TAIL_LINES);
        let since_seconds = query.since.map(|d| {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
        });
        let lp = LogParams {
            container: non_empty(query.container.as_deref()),
            tail_lines: Some(i64::from(tail)),
            since_seconds,
            limit_bytes: Some(MAX_LOG_BYTES),
            previous: query.previous,
            ..LogParams::default()
        };
        let api: Api<Pod> = Api::namespaced(c.client.clone(), ns);
        api.logs(pod, &lp).await.map_err(|e| c.error(e))
    }

    /// The cluster's entry and client, connecting on first use.
    async fn cluster<'a>(&'a self, name: &'a str) -> Result<Cluster<'a>, ReadError> {
        let entry = self
            .inner
            .clusters
            .get(name)
            .ok_or_else(|| ReadError::UnknownCluster(name.to_owned()))?;
        let unavailable = |reason: String| ReadError::Unavailable {
            cluster: name.to_owned(),
            reason,
        };
        let cached = entry.client.lock().expect("client lock").clone();
        let client = match cached {
            Some(c) => c,
            None => {
                let Some(source) = &entry.source else {
                    return Err(unavailable("no client".to_owned()));
                };
                let Some(guard) = source.guard.clone() else {
                    return Err(unavailable(format!("no circuit k8s:{name} is configured")));
                };
                let c = connect(&source.cluster, &source.secrets, guard)
                    .await
                    .map_err(|e| unavailable(format!("cannot connect: {e}")))?;
                *entry.client.lock().expect("client lock") = Some(c.clone());
                c
            }
        };
        Ok(Cluster {
            name,
            entry,
            client,
        })
    }
}

impl Entry {
    fn new(source: Option<Source>, client: Option<kube::Client>) -> Self {
        Entry {
            source,
            client: Mutex::new(client),
            kinds: Mutex::new(HashMap::new()),
        }
    }
}

/// A connected cluster, for one call.
struct Cluster<'a> {
    name: &'a str,
    entry: &'a Entry,
    client: kube::Client,
}

impl Cluster<'_> {
    /// A kube error of this cluster as a [`ReadError`].
    fn error(&self, e: kube::Error) -> ReadError {
        kube_error(self.name, self.entry, e)
    }
}

/// A kube error of cluster `name` as a [`ReadError`]; a 401 drops the cluster's client so the
/// next call re-reads the kubeconfig.
fn kube_error(name: &str, entry: &Entry, e: kube::Error) -> ReadError {
    {
        use kube::Error as E;
        match e {
            E::Api(s) => {
                let message = if s.message.is_empty() {
                    s.reason.clone()
                } else {
                    s.message.clone()
                };
                match s.code {
                    401 => {
                        // Reconnect next time: the kubeconfig may have been rotated.
                        if entry.source.is_some() {
                            *entry.client.lock().expect("client lock") = None;
                        }
                        ReadError::Unauthorized(message)
                    }
                    403 => ReadError::Forbidden(message),
                    404 => ReadError::NotFound(message),
                    400 | 422 => ReadError::Invalid(message),
                    code => ReadError::Api { code, message },
                }
            }
            E::Discovery(d) => ReadError::UnknownKind(d.to_string()),
            E::SerdeError(e) => ReadError::Malformed(e.to_string()),
            E::FromUtf8(e) => ReadError::Malformed(e.to_string()),
            E::BuildRequest(e) => ReadError::Invalid(e.to_string()),
            e => ReadError::Unavailable {
                cluster: name.to_owned(),
                reason: e.to_string(),
            },
        }
    }
}

impl Cluster<'_> {
    /// Where requests for `kind` go on this cluster; custom kinds through discovery (cached
    /// once resolved).
    async fn resolve(&self, kind: &Kind) -> Result<Target, ReadError> {
        let kind = kind.clone().normalized();
        if kind == Kind::Secrets {
            return Ok(Target::Secrets);
        }
        if let Some(ar) = kind.builtin() {
            return Ok(Target::Dynamic {
                ar,
                namespaced: true,
            });
        }
        let Kind::Custom {
            group,
            version,
            kind: k,
        } = &kind
        else {
            unreachable!("built-in kinds are resolved above");
        };
        let key = (group.clone(), version.clone(), k.clone());
        let cached = self.kinds().get(&key).cloned();
        let (ar, namespaced) = match cached {
            Some(found) => found,
            None => {
                let gvk = GroupVersionKind::gvk(group, version, k);
                let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
                    .await
                    .map_err(|e| match e {
                        kube::Error::Api(s) if s.code == 404 => {
                            ReadError::UnknownKind(kind.to_string())
                        }
                        kube::Error::Discovery(_) => ReadError::UnknownKind(kind.to_string()),
                        e => self.error(e),
                    })?;
                let found = (ar, caps.scope == Scope::Namespaced);
                self.kinds().insert(key, found.clone());
                found
            }
        };
        if ar.group.is_empty() && ar.kind == "Secret" {
            return Ok(Target::Secrets);
        }
        Ok(Target::Dynamic { ar, namespaced })
    }

    fn kinds(&self) -> std::sync::MutexGuard<'_, KindCache> {
        self.entry
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Up to [`EVENT_SCAN_LIMIT`] events matching `fields`, newest first, the first `limit`.
    async fn events(
        &self,
        namespace: Option<&str>,
        fields: String,
        limit: u32,
    ) -> Result<Vec<Value>, ReadError> {
        let ar = ApiResource::erase::<Event>(&());
        let api = dynamic_api(&self.client, &ar, true, namespace);
        let mut lp = ListParams {
            field_selector: non_empty(Some(&fields)),
            limit: Some(EVENT_PAGE),
            ..ListParams::default()
        };
        let mut events = Vec::new();
        loop {
            let page = api.list(&lp).await.map_err(|e| self.error(e))?;
            let (items, next, _) = split(page);
            for item in items {
                events.push(object_value(item, &ar)?);
            }
            match next {
                Some(token) if events.len() < EVENT_SCAN_LIMIT as usize => {
                    lp.continue_token = Some(token);
                }
                _ => break,
            }
        }
        events.sort_by_cached_key(|e| std::cmp::Reverse(event_time(e)));
        events.truncate(limit as usize);
        Ok(events)
    }
}

/// The API of a dynamic resource in `namespace` (all namespaces when `None`, or cluster-scoped).
fn dynamic_api(
    client: &kube::Client,
    ar: &ApiResource,
    namespaced: bool,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if namespaced => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn required<'a>(what: &str, s: Option<&'a str>) -> Result<&'a str, ReadError> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReadError::Invalid(format!("a {what} is required")))
}

fn split<T: Clone>(list: ObjectList<T>) -> (Vec<T>, Option<String>, Option<i64>) {
    let next = list.metadata.continue_.filter(|t| !t.is_empty());
    (list.items, next, list.metadata.remaining_item_count)
}

/// A Secret's metadata as a `v1` `Secret` object.
fn secret_value(meta: PartialObjectMeta<Secret>) -> Value {
    let metadata = serde_json::to_value(&meta.metadata).unwrap_or_else(|_| json!({}));
    redact(json!({"apiVersion": "v1", "kind": "Secret", "metadata": metadata}))
}

/// An object as JSON with `apiVersion` and `kind` set, redacted.
fn object_value(obj: DynamicObject, ar: &ApiResource) -> Result<Value, ReadError> {
    let mut v = serde_json::to_value(&obj).map_err(|e| ReadError::Malformed(e.to_string()))?;
    let Some(map) = v.as_object_mut() else {
        return Err(ReadError::Malformed(
            "an object that is not a JSON object".into(),
        ));
    };
    map.insert("apiVersion".into(), json!(ar.api_version));
    map.insert("kind".into(), json!(ar.kind));
    Ok(redact(v))
}

/// Drops `metadata.managedFields`; a `Secret` keeps only `apiVersion`, `kind`, `metadata`,
/// `type` and `immutable`, without the last-applied-configuration annotation.
fn redact(mut v: Value) -> Value {
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if map.get("kind").and_then(Value::as_str) == Some("Secret") {
        map.retain(|k, _| {
            matches!(
                k.as_str(),
                "apiVersion" | "kind" | "metadata" | "type" | "immutable"
            )
        });
        if let Some(annotations) = map
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut)
        {
            annotations.remove(LAST_APPLIED);
        }
    }
    v
}

/// When an event last happened: the latest of its last, series, event and first times, else
/// its creation.
fn event_time(e: &Value) -> Option<DateTime<Utc>> {
    let parse = |v: &Value| {
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    [
        &e["lastTimestamp"],
        &e["series"]["lastObservedTime"],
        &e["eventTime"],
        &e["firstTimestamp"],
    ]
    .into_iter()
    .filter_map(parse)
    .max()
    .or_else(|| parse(&e["metadata"]["creationTimestamp"]))
}

/// What the write API ([`super::write`]) shares with the reader: the clusters' clients (behind
/// their circuits), resolved kinds, and the error mapping.
impl ClusterReader {
    /// The client of `cluster`, connecting on first use.
    pub(crate) async fn client(&self, cluster: &str) -> Result<kube::Client, ReadError> {
        Ok(self.cluster(cluster).await?.client)
    }

    /// The resource of `kind` on `cluster` (discovery for custom kinds) and whether it is
    /// namespaced. Secrets resolve to the full `v1` Secret resource: the caller masks data.
    pub(crate) async fn resource(
        &self,
        cluster: &str,
        kind: &Kind,
    ) -> Result<(ApiResource, bool), ReadError> {
        let c = self.cluster(cluster).await?;
        Ok(match c.resolve(kind).await? {
            Target::Secrets => (ApiResource::erase::<Secret>(&()), true),
            Target::Dynamic { ar, namespaced } => (ar, namespaced),
        })
    }

    /// A kube error of `cluster` as a [`ReadError`] (a 401 drops its client).
    pub(crate) fn map_error(&self, cluster: &str, e: kube::Error) -> ReadError {
        match self.inner.clusters.get(cluster) {
            Some(entry) => kube_error(cluster, entry, e),
            None => ReadError::UnknownCluster(cluster.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse() {
        assert_eq!(Kind::parse("po").unwrap(), Kind::Pods);
        assert_eq!(Kind::parse("Deploy").unwrap(), Kind::Deployments);
        assert_eq!(Kind::parse("svc").unwrap(), Kind::Services);
        assert_eq!(Kind::parse("configmaps").unwrap(), Kind::ConfigMaps);
        assert_eq!(Kind::parse("secret").unwrap(), Kind::Secrets);
        assert_eq!(Kind::parse("events").unwrap(), Kind::Events);
        assert_eq!(Kind::parse("v1/Secret").unwrap(), Kind::Secrets);
        assert_eq!(Kind::parse("v1/secrets").unwrap(), Kind::Secrets);
        assert_eq!(Kind::parse("/v1/Secret").unwrap(), Kind::Secrets);
        assert_eq!(
            Kind::parse("apps/v1/Deployment").unwrap(),
            Kind::Deployments
        );
        assert_eq!(
            Kind::parse("argoproj.io/v1alpha1/Application").unwrap(),
            Kind::custom("argoproj.io", "v1alpha1", "Application")
        );
        assert_eq!(
            Kind::parse("v1/Node").unwrap().to_string(),
            "v1/Node".to_owned()
        );
        for bad in ["", "widgets", "a/b/c/d", "v1/", "/Secret"] {
            assert!(
                matches!(Kind::parse(bad), Err(ReadError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_whatever_their_path() {
        let v = redact(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "s",
                "annotations": {LAST_APPLIED: "{\"data\":{\"k\":\"c2VjcmV0\"}}", "a": "b"},
                "managedFields": [{"manager": "kubectl"}],
            },
            "type": "Opaque",
            "data": {"k": "c2VjcmV0"},
            "stringData": {"k": "secret"},
        }));
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "annotations": {"a": "b"}},
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn events_sort_by_their_latest_time() {
        let a = json!({"lastTimestamp": "2025-01-01T00:00:10Z"});
        let b = json!({"eventTime": "2025-01-01T00:00:20.000000Z"});
        let c = json!({
            "metadata": {"creationTimestamp": "2025-01-01T00:00:50Z"},
            "firstTimestamp": "2025-01-01T00:00:05Z",
        });
        let d = json!({"metadata": {"creationTimestamp": "2025-01-01T00:00:01Z"}});
        let mut v = [d.clone(), a.clone(), b.clone(), c.clone()];
        v.sort_by_cached_key(|e| std::cmp::Reverse(event_time(e)));
        assert_eq!(v, [b, a, c, d]);
    }
}
