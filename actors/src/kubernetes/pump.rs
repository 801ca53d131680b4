//! The watch streams of a [`ClusterWatcher`](super::cluster::ClusterWatcher): one task per
//! resource and namespace scope runs a kube-rs `watcher` (with kube's default backoff between
//! retries), turns every event into a small [`Item`] (health assessed, Warning events
//! extracted, out-of-scope namespaces and too-old events dropped) and hands them to the actor
//! in batches (`Pump::hand_over`). A stream failure is reported as [`ClusterMsg::Failed`].
//!
//! **Backpressure.** A batch travels with a [`Credit`], one of [`WATCH_CREDITS`] shared by the
//! watcher's streams and given back when the actor has applied the batch (or dropped it, with
//! its mailbox, when it stops). A stream that finds none waits, and stops reading its watch:
//! the API server's connection carries the pressure, not the watcher's memory. At most
//! `WATCH_CREDITS × BATCH` items are ever queued (`sre_k8s_watch_items_queued`).

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use prometheus_client::metrics::gauge::Gauge;
use ractor::ActorRef;
use serde::de::DeserializeOwned;
use sre_config::ResourceType;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::cluster::ClusterMsg;
use super::health::ServiceShape;
use super::metrics::{EventLabels, KubeMetrics, WarningDecision, WarningLabels, WatchEvent};
use super::observe::{identity, NamespaceFilter, ObjectId, Observation, SliceInfo, WarningEvent};
use super::view::{EventView, PodView};

/// Most watch events handed over in one message.
pub const BATCH: usize = 512;
/// Batches queued for a watcher at most (all its streams together).
pub const WATCH_CREDITS: usize = 8;

/// The credits of one watcher's streams, and the gauge of items queued. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Credits {
    semaphore: Arc<Semaphore>,
    queued: Gauge,
}

impl Credits {
    /// [`WATCH_CREDITS`] credits; `queued` counts the items they carry.
    pub fn new(queued: Gauge) -> Self {
        Credits {
            semaphore: Arc::new(Semaphore::new(WATCH_CREDITS)),
            queued,
        }
    }

    /// Waits for a credit to hand over `items` items.
    pub async fn acquire(&self, items: usize) -> Credit {
        let permit = self
            .semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the credits semaphore is never closed");
        self.queued.inc_by(items as i64);
        Credit {
            _permit: permit,
            items: items as i64,
            queued: self.queued.clone(),
        }
    }
}

/// A batch's place in the mailbox: given back (and its items uncounted) when dropped.
#[derive(Debug)]
pub struct Credit {
    _permit: OwnedSemaphorePermit,
    items: i64,
    queued: Gauge,
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.queued.dec_by(self.items);
    }
}

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
    /// What bounds the batches queued.
    pub(super) credits: Credits,
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
                        if !items.is_empty()
                            && !self.hand_over(&id, std::mem::take(&mut items)).await
                        {
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
            if !items.is_empty() && !self.hand_over(&id, items).await {
                return;
            }
        }
    }

    /// Hands `items` over once a credit is free; false when the actor is gone.
    async fn hand_over(&self, id: &StreamId, items: Vec<Item>) -> bool {
        let credit = self.credits.acquire(items.len()).await;
        self.me
            .cast(ClusterMsg::Watch {
                stream: id.clone(),
                generation: self.generation,
                items,
                credit,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The streams wait when `WATCH_CREDITS` batches are queued, and go on as soon as the
    /// actor has applied one; the gauge counts the items queued.
    #[tokio::test(start_paused = true)]
    async fn a_stream_waits_when_the_watcher_is_behind() {
        let queued = Gauge::default();
        let credits = Credits::new(queued.clone());
        let mut held = Vec::new();
        for _ in 0..WATCH_CREDITS {
            held.push(credits.acquire(BATCH).await);
        }
        assert_eq!(queued.get(), (WATCH_CREDITS * BATCH) as i64);
        let more = tokio::time::timeout(Duration::from_secs(3600), credits.acquire(1)).await;
        assert!(more.is_err(), "no credit is free: the stream waits");
        drop(held.pop());
        let next = tokio::time::timeout(Duration::from_secs(1), credits.acquire(3))
            .await
            .expect("a credit given back is taken at once");
        assert_eq!(queued.get(), ((WATCH_CREDITS - 1) * BATCH + 3) as i64);
        drop(next);
        drop(held);
        assert_eq!(
            queued.get(),
            0,
            "every item uncounted when applied or dropped"
        );
    }
}
