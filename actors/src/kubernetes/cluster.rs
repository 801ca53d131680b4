//! `ClusterWatcher`: one actor per configured cluster, with its own kube client behind the
//! circuit `k8s:<cluster>`.
//!
//! **Watch.** For every configured resource type it runs kube-rs `watcher` streams (with
//! kube's default backoff between retries): cluster-wide with the namespace globs applied
//! client-side, or one stream per namespace when every pattern is a plain name (so
//! per-namespace Roles suffice). Services are joined with their EndpointSlices. The streams
//! turn objects into small [`Item`]s (health assessed, Warning events extracted, out-of-scope
//! namespaces and too-old events dropped) and hand them to the actor in batches.
//!
//! **Poll.** Every `poll_interval` the streams are replaced by fresh ones, whose full list is a
//! reconcile: anything a watch missed shows up as a change, anything gone as `Deleted`. A 410
//! Expired (or any other watch failure that makes kube relist) is handled the same way: the
//! relist brackets the tracker, so deletions during the gap are reported, never lost.
//!
//! **Emit.** After each batch the actor emits what the trackers owe (`RecordHealthCheckRequested`
//! per state change) and the new Warning events (`IngestAlertRequested`). Both are claimed
//! through the dedup actor first (`k8s:<cluster>:<uid>:<state>:<episode>`,
//! `k8sevent:<cluster>:<uid>:<count>`), so a restarted watcher's baseline within the window
//! repeats nothing. Trackers advance only once the intents are accepted; a failed emit is
//! retried with backoff.
//!
//! **Failure.** 401/403 fail the actor at once with a `misconfigured` reason (shown in
//! `/v1/supervision` and `/readyz`); any other failure of one stream `MAX_FAILURES` times in a
//! row fails it too. Its supervisor restarts it alone, with backoff, and parks it if it keeps
//! failing; other clusters and the webhook path do not notice.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::de::DeserializeOwned;
use sre_config::{ClusterConfig, ResourceType, SecretStore, WatchConfig};
use sre_supervision::{ActorSlot, Readiness};

use super::client::{connect, Guard};
use super::health::ServiceShape;
use super::metrics::{
    EventLabels, KubeMetrics, RelistLabels, ResourceLabels, TransitionLabels, WarningLabels,
};
use super::observe::{identity, NamespaceFilter, Observation, SliceInfo, WarningEvent};
use super::records::{self, Context};
use super::tracker::{EventLog, ServiceJoin, Tracker, Transition};
use super::view::{EventView, PodView};
use crate::emit::{EmitError, Emitter};
use crate::ingest::claim::{Delivered, Delivery};
use crate::ingest::dedup::{key_hash, DedupMsg, DedupSource};

/// Failures of one stream in a row after which the actor fails.
pub const MAX_FAILURES: u32 = 5;
/// Most watch events handed over in one message.
const BATCH: usize = 512;
/// Longest a batch's publish waits for durability (its claims are then released).
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);
/// Most intents emitted in one go.
const EMIT_BATCH: usize = 1000;

/// A watched resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// core/v1 Pods.
    Pods,
    /// apps/v1 Deployments.
    Deployments,
    /// core/v1 Services.
    Services,
    /// discovery.k8s.io/v1 EndpointSlices (for Services).
    EndpointSlices,
    /// core/v1 Events.
    Events,
}

impl Resource {
    /// Its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::Deployments => "deployments",
            Resource::Services => "services",
            Resource::EndpointSlices => "endpointslices",
            Resource::Events => "events",
        }
    }

    /// The resources a configured type needs.
    pub fn for_type(t: ResourceType) -> &'static [Resource] {
        match t {
            ResourceType::Pods => &[Resource::Pods],
            ResourceType::Deployments => &[Resource::Deployments],
            ResourceType::Services => &[Resource::Services, Resource::EndpointSlices],
            ResourceType::Events => &[Resource::Events],
        }
    }
}

/// One watch stream: a resource in one namespace (`None`: all of them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    /// The resource.
    pub resource: Resource,
    /// The namespace.
    pub namespace: Option<String>,
}

/// What a stream hands the actor.
#[derive(Debug)]
pub enum Item {
    /// A full list begins.
    Init,
    /// The full list is complete.
    InitDone,
    /// A Pod or Deployment, assessed.
    Object(Observation),
    /// A Pod or Deployment was deleted.
    ObjectGone(String),
    /// A Service.
    Service {
        /// uid, namespace, name, resourceVersion.
        id: (String, String, String, String),
        /// What its health depends on.
        shape: ServiceShape,
    },
    /// A Service was deleted.
    ServiceGone(String),
    /// An EndpointSlice.
    Slice(SliceInfo),
    /// An EndpointSlice was deleted.
    SliceGone(String),
    /// A Warning event (recent enough).
    Warning(WarningEvent),
    /// An Event object was deleted.
    EventGone(String),
}

/// The actor.
pub struct ClusterWatcher;

/// Its arguments.
#[derive(Clone)]
pub struct WatcherArgs {
    /// The cluster.
    pub cluster: ClusterConfig,
    /// What to watch.
    pub watch: WatchConfig,
    /// Reconcile period.
    pub poll_interval: Duration,
    /// Where the kubeconfig secret is read.
    pub secrets: SecretStore,
    /// The circuit, timeout and metrics every request goes through.
    pub guard: Guard,
    /// Cluster, topic, `ce_source`.
    pub context: Context,
    /// Where intents go.
    pub emitter: Emitter,
    /// The dedup actor Warning events are claimed through (`None`: in-memory only).
    pub dedup: Option<ActorSlot<DedupMsg>>,
    /// Metrics.
    pub metrics: KubeMetrics,
    /// Readiness, for the `misconfigured` detail.
    pub readiness: Readiness,
}

/// Messages.
pub enum ClusterMsg {
    /// Items from a stream.
    Watch {
        /// Which.
        stream: StreamId,
        /// The streams' generation (older ones are ignored).
        generation: u64,
        /// What it saw.
        items: Vec<Item>,
    },
    /// A stream failed (kube retries it after its backoff).
    Failed {
        /// Which.
        stream: StreamId,
        /// The streams' generation.
        generation: u64,
        /// What happened.
        error: String,
        /// The API's status code, when it answered.
        code: Option<u16>,
    },
    /// Time to reconcile (replace the streams).
    Reconcile,
    /// Time to retry a failed emit.
    Retry,
}

/// The stream tasks, aborted when dropped: ractor skips `post_stop` when an actor fails or is
/// killed, but the state is always dropped, so no watch outlives its actor.
#[derive(Default)]
struct Pumps(Vec<tokio::task::JoinHandle<()>>);

impl Pumps {
    fn abort_all(&mut self) {
        for t in self.0.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Pumps {
    fn drop(&mut self) {
        self.abort_all();
    }
}

#[derive(Default)]
struct StreamState {
    inits: u32,
    failures: u32,
    last_code: Option<u16>,
}

/// Private state.
pub struct WatcherState {
    args: WatcherArgs,
    client: kube::Client,
    filter: NamespaceFilter,
    streams: HashMap<StreamId, StreamState>,
    tasks: Pumps,
    generation: u64,
    pods: Tracker,
    deployments: Tracker,
    services: ServiceJoin,
    events: EventLog,
    warnings: Vec<WarningEvent>,
    retry_backoff: Option<Duration>,
    retry_scheduled: bool,
}

impl Actor for ClusterWatcher {
    type Msg = ClusterMsg;
    type State = WatcherState;
    type Arguments = WatcherArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ClusterMsg>,
        args: WatcherArgs,
    ) -> Result<WatcherState, ActorProcessingErr> {
        let name = args.cluster.name.clone();
        let client = match connect(&args.cluster, &args.secrets, args.guard.clone()).await {
            Ok(c) => c,
            Err(e) => {
                let why = format!("misconfigured: {e}");
                args.readiness
                    .set_degraded(&format!("k8s:{name}"), Some(why.clone()));
                return Err(format!("k8s:{name}: {why}").into());
            }
        };
        Ok(WatcherState {
            filter: NamespaceFilter::new(&args.watch.namespaces),
            args,
            client,
            streams: HashMap::new(),
            tasks: Pumps::default(),
            generation: 0,
            pods: Tracker::new("Pod"),
            deployments: Tracker::new("Deployment"),
            services: ServiceJoin::default(),
            events: EventLog::default(),
            warnings: Vec::new(),
            retry_backoff: None,
            retry_scheduled: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ClusterMsg>,
        state: &mut WatcherState,
    ) -> Result<(), ActorProcessingErr> {
        start_streams(&myself, state);
        schedule(&myself, ClusterMsg::Reconcile, state.args.poll_interval);
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ClusterMsg>,
        state: &mut WatcherState,
    ) -> Result<(), ActorProcessingErr> {
        state.tasks.abort_all();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ClusterMsg>,
        msg: ClusterMsg,
        state: &mut WatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ClusterMsg::Watch {
                stream,
                generation,
                items,
            } if generation == state.generation => {
                on_items(state, &stream, items);
                flush(&myself, state).await;
                Ok(())
            }
            ClusterMsg::Failed {
                stream,
                generation,
                error,
                code,
            } if generation == state.generation => on_failed(state, &stream, error, code),
            ClusterMsg::Watch { .. } | ClusterMsg::Failed { .. } => Ok(()),
            ClusterMsg::Reconcile => {
                start_streams(&myself, state);
                schedule(&myself, ClusterMsg::Reconcile, state.args.poll_interval);
                Ok(())
            }
            ClusterMsg::Retry => {
                state.retry_scheduled = false;
                flush(&myself, state).await;
                Ok(())
            }
        }
    }
}

fn schedule(myself: &ActorRef<ClusterMsg>, msg: ClusterMsg, after: Duration) {
    let me = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = me.cast(msg);
    });
}

/// Replaces every stream with a fresh one (a new generation: their first list is a reconcile).
fn start_streams(myself: &ActorRef<ClusterMsg>, state: &mut WatcherState) {
    state.tasks.abort_all();
    state.generation += 1;
    // A fresh generation lists anew; failures in a row still count across it, so a cluster
    // that keeps failing is not forgiven by the reconcile.
    for s in state.streams.values_mut() {
        s.inits = 0;
    }
    let scopes: Vec<Option<String>> = match state.filter.literal() {
        Some(names) => names.into_iter().map(Some).collect(),
        None => vec![None],
    };
    let mut resources: Vec<Resource> = Vec::new();
    for t in &state.args.watch.resource_types {
        for r in Resource::for_type(*t) {
            if !resources.contains(r) {
                resources.push(*r);
            }
        }
    }
    for resource in resources {
        for namespace in &scopes {
            let id = StreamId {
                resource,
                namespace: namespace.clone(),
            };
            let task = spawn_stream(myself, state, id);
            state.tasks.0.push(task);
        }
    }
}

fn api<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn spawn_stream(
    myself: &ActorRef<ClusterMsg>,
    state: &WatcherState,
    id: StreamId,
) -> tokio::task::JoinHandle<()> {
    let client = &state.client;
    let pump = Pump {
        me: myself.clone(),
        generation: state.generation,
        filter: state.filter.clone(),
        metrics: state.args.metrics.clone(),
        cluster: state.args.cluster.name.clone(),
        max_age: state.args.watch.event_max_age.as_secs() as i64,
    };
    let ns = id.namespace.clone();
    match id.resource {
        Resource::Pods => tokio::spawn(pump.run(
            api::<PodView>(client, &ns),
            id,
            |p: PodView| Some(Item::Object(Observation::pod(&p))),
            |p: PodView| Item::ObjectGone(identity(&p.metadata).0),
        )),
        Resource::Deployments => tokio::spawn(pump.run(
            api::<Deployment>(client, &ns),
            id,
            |d: Deployment| Some(Item::Object(Observation::deployment(&d))),
            |d: Deployment| Item::ObjectGone(identity(&d.metadata).0),
        )),
        Resource::Services => tokio::spawn(pump.run(
            api::<Service>(client, &ns),
            id,
            |s: Service| {
                Some(Item::Service {
                    id: identity(&s.metadata),
                    shape: ServiceShape::of(&s),
                })
            },
            |s: Service| Item::ServiceGone(identity(&s.metadata).0),
        )),
        Resource::EndpointSlices => tokio::spawn(pump.run(
            api::<EndpointSlice>(client, &ns),
            id,
            |s: EndpointSlice| match SliceInfo::of(&s) {
                Some(i) => Some(Item::Slice(i)),
                // A slice no Service owns: nothing to join, forget any old one.
                None => Some(Item::SliceGone(identity(&s.metadata).0)),
            },
            |s: EndpointSlice| Item::SliceGone(identity(&s.metadata).0),
        )),
        Resource::Events => tokio::spawn(pump.run(
            api::<EventView>(client, &ns),
            id,
            |e: EventView| WarningEvent::of(&e).map(Item::Warning),
            |e: EventView| Item::EventGone(identity(&e.metadata).0),
        )),
    }
}

/// A stream's task: watches, converts, batches, hands over.
struct Pump {
    me: ActorRef<ClusterMsg>,
    generation: u64,
    filter: NamespaceFilter,
    metrics: KubeMetrics,
    cluster: String,
    max_age: i64,
}

impl Pump {
    fn count(&self, resource: Resource, event: &'static str) {
        self.metrics
            .events
            .get_or_create(&EventLabels {
                cluster: self.cluster.clone(),
                resource: resource.as_str(),
                event,
            })
            .inc();
    }

    /// Whether an applied object is handed over.
    fn keep<K: kube::Resource>(&self, k: &K) -> bool {
        self.filter
            .matches(k.meta().namespace.as_deref().unwrap_or_default())
    }

    fn convert<K: kube::Resource>(
        &self,
        resource: Resource,
        event: Event<K>,
        applied: &impl Fn(K) -> Option<Item>,
        deleted: &impl Fn(K) -> Item,
    ) -> Option<Item> {
        let now = chrono::Utc::now().timestamp();
        let item = match event {
            Event::Init => return Some(Item::Init),
            Event::InitDone => return Some(Item::InitDone),
            Event::InitApply(k) if self.keep(&k) => {
                self.count(resource, "listed");
                applied(k)?
            }
            Event::Apply(k) if self.keep(&k) => {
                self.count(resource, "applied");
                applied(k)?
            }
            Event::Delete(k) if self.keep(&k) => {
                self.count(resource, "deleted");
                deleted(k)
            }
            _ => return None,
        };
        match item {
            Item::Warning(w) if w.older_than(now, self.max_age) => {
                self.metrics
                    .warnings
                    .get_or_create(&WarningLabels {
                        cluster: self.cluster.clone(),
                        decision: "too_old",
                    })
                    .inc();
                None
            }
            other => Some(other),
        }
    }

    async fn run<K>(
        self,
        api: Api<K>,
        id: StreamId,
        applied: impl Fn(K) -> Option<Item> + Send + 'static,
        deleted: impl Fn(K) -> Item + Send + 'static,
    ) where
        K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .ready_chunks(BATCH)
            .boxed();
        while let Some(chunk) = stream.next().await {
            let mut items = Vec::with_capacity(chunk.len());
            for result in chunk {
                match result {
                    Ok(event) => items.extend(self.convert(id.resource, event, &applied, &deleted)),
                    Err(e) => {
                        self.count(id.resource, "error");
                        if !items.is_empty() && !self.hand_over(&id, std::mem::take(&mut items)) {
                            return;
                        }
                        let failed = ClusterMsg::Failed {
                            stream: id.clone(),
                            generation: self.generation,
                            code: status_code(&e),
                            error: e.to_string(),
                        };
                        if self.me.cast(failed).is_err() {
                            return;
                        }
                    }
                }
            }
            if !items.is_empty() && !self.hand_over(&id, items) {
                return;
            }
        }
    }

    fn hand_over(&self, id: &StreamId, items: Vec<Item>) -> bool {
        self.me
            .cast(ClusterMsg::Watch {
                stream: id.clone(),
                generation: self.generation,
                items,
            })
            .is_ok()
    }
}

/// The HTTP status the API answered with, when it did.
fn status_code(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::WatchError(s) => Some(s.code),
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

fn on_items(state: &mut WatcherState, stream: &StreamId, items: Vec<Item>) {
    let cluster = state.args.cluster.name.clone();
    let resource = stream.resource.as_str();
    let mut synced = false;
    for item in items {
        match item {
            Item::Init => {
                let reason = relist_reason(state, stream);
                state
                    .args
                    .metrics
                    .relists
                    .get_or_create(&RelistLabels {
                        cluster: cluster.clone(),
                        resource,
                        reason,
                    })
                    .inc();
                let ns = stream.namespace.clone();
                match stream.resource {
                    Resource::Pods => state.pods.relist_start(ns),
                    Resource::Deployments => state.deployments.relist_start(ns),
                    Resource::Services => state.services.services_relist_start(ns),
                    Resource::EndpointSlices => state.services.slices_relist_start(ns),
                    Resource::Events => state.events.relist_start(),
                }
            }
            Item::InitDone => {
                synced = true;
                let gone = match stream.resource {
                    Resource::Pods => state.pods.relist_done(),
                    Resource::Deployments => state.deployments.relist_done(),
                    Resource::Services => state.services.services_relist_done(),
                    Resource::EndpointSlices => {
                        state.services.slices_relist_done();
                        0
                    }
                    Resource::Events => {
                        state.events.relist_done();
                        0
                    }
                };
                if gone > 0 {
                    tracing::info!(cluster = %cluster, resource, gone, "relist found objects deleted while unwatched");
                }
            }
            Item::Object(o) => {
                synced = true;
                match stream.resource {
                    Resource::Deployments => state.deployments.observe(o),
                    _ => state.pods.observe(o),
                }
            }
            Item::ObjectGone(uid) => {
                synced = true;
                match stream.resource {
                    Resource::Deployments => state.deployments.delete(&uid),
                    _ => state.pods.delete(&uid),
                }
            }
            Item::Service { id, shape } => {
                synced = true;
                let (uid, ns, name, rv) = id;
                state.services.service(uid, ns, name, rv, shape);
            }
            Item::ServiceGone(uid) => state.services.service_deleted(&uid),
            Item::Slice(info) => state.services.slice(info),
            Item::SliceGone(uid) => state.services.slice_deleted(&uid),
            Item::Warning(w) => {
                synced = true;
                if state.events.is_new(&w) {
                    state.warnings.retain(|o| o.uid != w.uid);
                    state.warnings.push(w);
                } else {
                    count_warning(state, "duplicate");
                }
            }
            Item::EventGone(uid) => state.events.forget(&uid),
        }
    }
    if synced {
        let s = state.streams.entry(stream.clone()).or_default();
        s.failures = 0;
        s.last_code = None;
        state
            .args
            .readiness
            .set_degraded(&format!("k8s:{cluster}"), None);
        state
            .args
            .metrics
            .last_sync
            .get_or_create(&ResourceLabels {
                cluster: cluster.clone(),
                resource,
            })
            .set(chrono::Utc::now().timestamp());
    }
    let objects = match stream.resource {
        Resource::Pods => state.pods.len(),
        Resource::Deployments => state.deployments.len(),
        Resource::Services => state.services.tracker.len(),
        Resource::EndpointSlices => state.services.slices(),
        Resource::Events => state.events.len(),
    };
    state
        .args
        .metrics
        .objects
        .get_or_create(&ResourceLabels { cluster, resource })
        .set(objects as i64);
}

/// Why a stream lists again: its first list in the first generation is `initial`, in later
/// generations `reconcile`; later lists follow a 410 (`expired`) or another failure.
fn relist_reason(state: &mut WatcherState, stream: &StreamId) -> &'static str {
    let generation = state.generation;
    let s = state.streams.entry(stream.clone()).or_default();
    let reason = match (s.inits, s.last_code) {
        (0, _) if generation == 1 => "initial",
        (0, _) => "reconcile",
        (_, Some(410)) => "expired",
        _ => "error",
    };
    s.inits += 1;
    reason
}

fn on_failed(
    state: &mut WatcherState,
    stream: &StreamId,
    error: String,
    code: Option<u16>,
) -> Result<(), ActorProcessingErr> {
    let cluster = &state.args.cluster.name;
    let resource = stream.resource.as_str();
    let why = if let Some(code @ (401 | 403)) = code {
        format!(
            "misconfigured: the API server rejected the credentials (HTTP {code}) for {resource}"
        )
    } else {
        let s = state.streams.entry(stream.clone()).or_default();
        s.failures += 1;
        s.last_code = code;
        tracing::warn!(cluster = %cluster, resource, failures = s.failures, error = %error, "watch failed");
        if s.failures < MAX_FAILURES {
            return Ok(());
        }
        format!(
            "{} watch failures of {resource} in a row; last: {error}",
            s.failures
        )
    };
    state
        .args
        .readiness
        .set_degraded(&format!("k8s:{cluster}"), Some(why.clone()));
    Err(why.into())
}

fn count_warning(state: &WatcherState, decision: &'static str) {
    state
        .args
        .metrics
        .warnings
        .get_or_create(&WarningLabels {
            cluster: state.args.cluster.name.clone(),
            decision,
        })
        .inc();
}

/// Emits what is owed; on failure schedules a retry with backoff.
async fn flush(myself: &ActorRef<ClusterMsg>, state: &mut WatcherState) {
    loop {
        match emit_some(state).await {
            Ok(true) => continue,
            Ok(false) => {
                state.retry_backoff = None;
                return;
            }
            Err(e) => {
                let next = state.retry_backoff.map_or(Duration::from_secs(1), |d| {
                    (d * 2).min(Duration::from_secs(60))
                });
                state.retry_backoff = Some(next);
                tracing::warn!(cluster = %state.args.cluster.name, error = %e, retry_in = ?next, "Kubernetes intents not accepted; retrying");
                if !state.retry_scheduled {
                    state.retry_scheduled = true;
                    schedule(myself, ClusterMsg::Retry, next);
                }
                return;
            }
        }
    }
}

/// Emits up to one batch. `Ok(true)` when more is owed and progress was made.
///
/// Health transitions and Warning events go through the shared claim protocol
/// ([`crate::ingest::claim`]): a key published within the window (a restarted watcher's
/// baseline repeating facts the domain already has, an event relisted) is settled without
/// being sent again.
async fn emit_some(state: &mut WatcherState) -> Result<bool, EmitError> {
    let mut transitions: Vec<Transition> = Vec::new();
    for t in [&state.pods, &state.deployments, &state.services.tracker] {
        transitions.extend(t.pending(EMIT_BATCH - transitions.len()));
    }
    let warnings = state.warnings.clone();
    if transitions.is_empty() && warnings.is_empty() {
        return Ok(false);
    }
    let cluster = state.args.cluster.name.clone();
    let keys: Vec<u64> = transitions
        .iter()
        .map(|t| key_hash(&records::health_key(&cluster, t)))
        .chain(
            warnings
                .iter()
                .map(|w| key_hash(&records::event_key(&cluster, w))),
        )
        .collect();
    let delivery = Delivery::new(
        state.args.dedup.clone(),
        DedupSource::Kubernetes,
        state.args.emitter.clone(),
        DELIVERY_DEADLINE,
    );
    let ctx = &state.args.context;
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let n_health = transitions.len();
    let delivered = delivery
        .deliver(keys, |fresh| {
            let mut batch = Vec::with_capacity(fresh.len());
            for &i in fresh {
                batch.push(match i.checked_sub(n_health) {
                    None => records::health(ctx, &transitions[i], &at, &correlation_id)?,
                    Some(w) => records::warning(ctx, &warnings[w], &at, &correlation_id)?,
                });
            }
            Ok(batch)
        })
        .await?;
    let (health_delivered, event_delivered) = delivered.split_at(n_health);

    let (mut fresh_t, mut known_t) = (Vec::new(), Vec::new());
    for (t, d) in transitions.into_iter().zip(health_delivered) {
        match d {
            Delivered::Published => fresh_t.push(t),
            Delivered::Duplicate => known_t.push(t),
            Delivered::Undecided => {}
        }
    }
    let (mut fresh_w, mut known_w) = (Vec::new(), Vec::new());
    for (w, d) in warnings.into_iter().zip(event_delivered) {
        match d {
            Delivered::Published => fresh_w.push(w),
            Delivered::Duplicate => known_w.push(w),
            Delivered::Undecided => {}
        }
    }
    let progress =
        !known_t.is_empty() || !known_w.is_empty() || !fresh_t.is_empty() || !fresh_w.is_empty();
    settle_transitions(state, known_t);
    for w in &known_w {
        state.events.settle(w);
        count_warning(state, "duplicate");
    }
    drop_warnings(state, &known_w);
    for t in &fresh_t {
        state
            .args
            .metrics
            .transitions
            .get_or_create(&TransitionLabels {
                cluster: cluster.clone(),
                kind: t.kind,
                to: t.current.state.as_str(),
            })
            .inc();
    }
    settle_transitions(state, fresh_t);
    for w in &fresh_w {
        state.events.settle(w);
        count_warning(state, "published");
    }
    drop_warnings(state, &fresh_w);
    if !progress {
        // Everything is being published by someone else whose publish failed: ask again.
        return Err(EmitError::Undecided);
    }
    Ok(owed(state))
}

/// Whether any transition is still owed.
fn owed(state: &WatcherState) -> bool {
    state.pods.dirty() + state.deployments.dirty() + state.services.tracker.dirty() > 0
}

/// Marks transitions reported in their trackers.
fn settle_transitions(state: &mut WatcherState, transitions: Vec<Transition>) {
    let (pods, rest): (Vec<Transition>, Vec<Transition>) =
        transitions.into_iter().partition(|t| t.kind == "Pod");
    let (deployments, services): (Vec<Transition>, Vec<Transition>) =
        rest.into_iter().partition(|t| t.kind == "Deployment");
    state.pods.settle(&pods);
    state.deployments.settle(&deployments);
    state.services.tracker.settle(&services);
}

/// Forgets owed Warning events that are done (a newer count of the same event stays owed).
fn drop_warnings(state: &mut WatcherState, done: &[WarningEvent]) {
    if done.is_empty() {
        return;
    }
    let done: HashMap<&str, u64> = done.iter().map(|w| (w.uid.as_str(), w.count)).collect();
    state
        .warnings
        .retain(|o| done.get(o.uid.as_str()).is_none_or(|c| *c < o.count));
}
