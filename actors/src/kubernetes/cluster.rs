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
//! The parts: this file is the actor (its messages, state, and what a batch of items does to
//! the trackers); [`pump`](super::pump) runs the watch streams; [`outbox`](super::outbox)
//! emits what is owed.
//!
//! **Failure.** 401/403 fail the actor at once with a `misconfigured` reason (shown in
//! `/v1/supervision` and `/readyz`); any other failure of one stream `MAX_FAILURES` times in a
//! row fails it too. Its supervisor restarts it alone, with backoff, and parks it if it keeps
//! failing; other clusters and the webhook path do not notice.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sre_config::{ClusterConfig, SecretStore, WatchConfig};
use sre_supervision::Readiness;
use tracing::Instrument;

use super::client::{connect, Guard};
use super::metrics::{
    ClusterLabel, KubeMetrics, RelistLabels, RelistReason, ResourceLabels, WarningDecision,
};
use super::observe::NamespaceFilter;
use super::outbox::{count_warning, flush, report_owed, Owed, OwedWarnings, MAX_OWED_WARNINGS};
use super::pump::{Credit, Credits, Pump, Pumps};
pub use super::pump::{Item, Resource, StreamId};
use super::records::Context;
use super::tracker::{EventLog, ObjectKind, ServiceJoin, Tracker};
use crate::ingest::claim::Delivery;
use crate::timer::Timer;

/// Failures of one stream in a row after which the actor fails.
pub const MAX_FAILURES: u32 = 5;

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
    /// Where intents go: health transitions and Warning events are claimed through the dedup
    /// actor (`DedupSource::Kubernetes`) and published with a deadline.
    pub delivery: Delivery,
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
        /// Held until the items are applied (bounds what the mailbox holds).
        credit: Credit,
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

#[derive(Default)]
struct StreamState {
    inits: u32,
    failures: u32,
    last_code: Option<u16>,
}

/// Private state.
pub struct WatcherState {
    pub(super) args: WatcherArgs,
    client: kube::Client,
    filter: NamespaceFilter,
    streams: HashMap<StreamId, StreamState>,
    tasks: Pumps,
    /// What bounds the items queued in the mailbox (shared by every stream).
    credits: Credits,
    generation: u64,
    pub(super) pods: Tracker,
    pub(super) deployments: Tracker,
    pub(super) services: ServiceJoin,
    pub(super) events: EventLog,
    pub(super) warnings: OwedWarnings,
    pub(super) retry_backoff: Option<Duration>,
    /// The pending `Retry` (one at a time).
    pub(super) retry: Timer<ClusterMsg>,
    /// The pending `Reconcile`.
    reconcile: Timer<ClusterMsg>,
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
        let queued = args
            .metrics
            .queued
            .get_or_create(&ClusterLabel {
                cluster: name.clone(),
            })
            .clone();
        let credits = Credits::new(queued);
        Ok(WatcherState {
            filter: NamespaceFilter::new(&args.watch.namespaces),
            args,
            client,
            streams: HashMap::new(),
            tasks: Pumps::default(),
            credits,
            generation: 0,
            pods: Tracker::new(ObjectKind::Pod),
            deployments: Tracker::new(ObjectKind::Deployment),
            services: ServiceJoin::default(),
            events: EventLog::default(),
            warnings: OwedWarnings::new(MAX_OWED_WARNINGS),
            retry_backoff: None,
            retry: Timer::default(),
            reconcile: Timer::default(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ClusterMsg>,
        state: &mut WatcherState,
    ) -> Result<(), ActorProcessingErr> {
        on_reconcile(&myself, state);
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ClusterMsg>,
        state: &mut WatcherState,
    ) -> Result<(), ActorProcessingErr> {
        state.tasks.abort_all();
        state.retry.cancel();
        state.reconcile.cancel();
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
                credit,
            } if generation == state.generation => {
                // One span per watch batch: the intents it emits carry it.
                let span =
                    tracing::info_span!("k8s_watch_batch", cluster = %state.args.cluster.name);
                on_watch(&myself, state, &stream, items, credit)
                    .instrument(span)
                    .await;
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
                on_reconcile(&myself, state);
                Ok(())
            }
            ClusterMsg::Retry => {
                let span =
                    tracing::info_span!("k8s_emit_retry", cluster = %state.args.cluster.name);
                on_retry(&myself, state).instrument(span).await;
                Ok(())
            }
        }
    }
}

/// Applies a stream's items, then emits what is owed (unless a retry is already scheduled).
async fn on_watch(
    myself: &ActorRef<ClusterMsg>,
    state: &mut WatcherState,
    stream: &StreamId,
    items: Vec<Item>,
    credit: Credit,
) {
    on_items(state, stream, items);
    // The items are applied: the stream may hand over more.
    drop(credit);
    report_owed(state);
    // While a retry is scheduled the sink is known to be failing: the retry emits (the newest
    // state per object), not every batch that arrives meanwhile.
    if !state.retry.is_pending() {
        flush(myself, state).await;
    }
}

/// The retry is due: emits what is owed.
async fn on_retry(myself: &ActorRef<ClusterMsg>, state: &mut WatcherState) {
    state.retry.fired();
    flush(myself, state).await;
}

/// Replaces the streams (their first list is a reconcile) and schedules the next time.
fn on_reconcile(myself: &ActorRef<ClusterMsg>, state: &mut WatcherState) {
    start_streams(myself, state);
    state
        .reconcile
        .set(myself, state.args.poll_interval, || ClusterMsg::Reconcile);
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
            let pump = Pump {
                me: myself.clone(),
                generation: state.generation,
                filter: state.filter.clone(),
                credits: state.credits.clone(),
                metrics: state.args.metrics.clone(),
                cluster: state.args.cluster.name.clone(),
                max_age: state.args.watch.event_max_age.as_secs() as i64,
            };
            state.tasks.push(pump.spawn(&state.client, id));
        }
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
                        reason: reason.as_str(),
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
                state.services.service(id, shape);
            }
            Item::ServiceGone(uid) => state.services.service_deleted(&uid),
            Item::Slice(info) => state.services.slice(info),
            Item::SliceGone(uid) => state.services.slice_deleted(&uid),
            Item::Warning(w) => {
                synced = true;
                if state.events.is_new(&w) {
                    match state.warnings.push(w) {
                        Owed::New => {}
                        Owed::Coalesced => count_warning(state, WarningDecision::Coalesced),
                        Owed::DroppedOldest(old) => {
                            count_warning(state, WarningDecision::Dropped);
                            tracing::warn!(cluster = %cluster, event = %old.uid, count = old.count, cap = MAX_OWED_WARNINGS, "too many Warning events owed; dropped the oldest");
                        }
                    }
                } else {
                    count_warning(state, WarningDecision::Duplicate);
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
fn relist_reason(state: &mut WatcherState, stream: &StreamId) -> RelistReason {
    let generation = state.generation;
    let s = state.streams.entry(stream.clone()).or_default();
    let reason = match (s.inits, s.last_code) {
        (0, _) if generation == 1 => RelistReason::Initial,
        (0, _) => RelistReason::Reconcile,
        (_, Some(410)) => RelistReason::Expired,
        _ => RelistReason::Error,
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
