//! The watch streams of a [`ClusterWatcher`](super::cluster::ClusterWatcher): one task per
//! resource and namespace scope runs a kube-rs `watcher` (with kube's default backoff between
//! retries), turns every event into a small [`Item`] (health assessed, Warning events
//! extracted, out-of-scope namespaces and too-old events dropped) and hands them to the actor
//! in batches ([`Pump::hand_over`]). A stream failure is reported as [`ClusterMsg::Failed`].

use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use ractor::ActorRef;
use serde::de::DeserializeOwned;
use sre_config::ResourceType;

use super::cluster::ClusterMsg;
use super::health::ServiceShape;
use super::metrics::{EventLabels, KubeMetrics, WarningDecision, WarningLabels, WatchEvent};
use super::observe::{identity, NamespaceFilter, ObjectId, Observation, SliceInfo, WarningEvent};
use super::view::{EventView, PodView};

/// Most watch events handed over in one message.
const BATCH: usize = 512;

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
        /// Who it is.
        id: ObjectId,
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

/// The stream tasks, aborted when dropped: ractor skips `post_stop` when an actor fails or is
/// killed, but the state is always dropped, so no watch outlives its actor.
#[derive(Default)]
pub(super) struct Pumps(Vec<tokio::task::JoinHandle<()>>);

impl Pumps {
    /// Adds a task.
    pub(super) fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.0.push(task);
    }

    /// Aborts every task.
    pub(super) fn abort_all(&mut self) {
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

/// A stream's task: watches, converts, batches, hands over.
pub(super) struct Pump {
    /// The actor.
    pub(super) me: ActorRef<ClusterMsg>,
    /// The streams' generation.
    pub(super) generation: u64,
    /// Which namespaces count.
    pub(super) filter: NamespaceFilter,
    /// Metrics.
    pub(super) metrics: KubeMetrics,
    /// Cluster name (metric label).
    pub(super) cluster: String,
    /// `watch.event_max_age` in seconds.
    pub(super) max_age: i64,
}

impl Pump {
    /// Starts the stream `id` on `client`.
    pub(super) fn spawn(self, client: &kube::Client, id: StreamId) -> tokio::task::JoinHandle<()> {
        let ns = id.namespace.clone();
        match id.resource {
            Resource::Pods => tokio::spawn(self.run(
                api::<PodView>(client, &ns),
                id,
                |p: PodView| Some(Item::Object(Observation::pod(&p))),
                |p: PodView| Item::ObjectGone(identity(&p.metadata).uid),
            )),
            Resource::Deployments => tokio::spawn(self.run(
                api::<Deployment>(client, &ns),
                id,
                |d: Deployment| Some(Item::Object(Observation::deployment(&d))),
                |d: Deployment| Item::ObjectGone(identity(&d.metadata).uid),
            )),
            Resource::Services => tokio::spawn(self.run(
                api::<Service>(client, &ns),
                id,
                |s: Service| {
                    Some(Item::Service {
                        id: identity(&s.metadata),
                        shape: ServiceShape::of(&s),
                    })
                },
                |s: Service| Item::ServiceGone(identity(&s.metadata).uid),
            )),
            Resource::EndpointSlices => tokio::spawn(self.run(
                api::<EndpointSlice>(client, &ns),
                id,
                |s: EndpointSlice| match SliceInfo::of(&s) {
                    Some(i) => Some(Item::Slice(i)),
                    // A slice no Service owns: nothing to join, forget any old one.
                    None => Some(Item::SliceGone(identity(&s.metadata).uid)),
                },
                |s: EndpointSlice| Item::SliceGone(identity(&s.metadata).uid),
            )),
            Resource::Events => tokio::spawn(self.run(
                api::<EventView>(client, &ns),
                id,
                |e: EventView| WarningEvent::of(&e).map(Item::Warning),
                |e: EventView| Item::EventGone(identity(&e.metadata).uid),
            )),
        }
    }

    fn count(&self, resource: Resource, event: WatchEvent) {
        self.metrics
            .events
            .get_or_create(&EventLabels {
                cluster: self.cluster.clone(),
                resource: resource.as_str(),
                event: event.as_str(),
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
                self.count(resource, WatchEvent::Listed);
                applied(k)?
            }
            Event::Apply(k) if self.keep(&k) => {
                self.count(resource, WatchEvent::Applied);
                applied(k)?
            }
            Event::Delete(k) if self.keep(&k) => {
                self.count(resource, WatchEvent::Deleted);
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
                        decision: WarningDecision::TooOld.as_str(),
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
                        self.count(id.resource, WatchEvent::Error);
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
