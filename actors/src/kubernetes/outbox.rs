//! What a [`ClusterWatcher`](super::cluster::ClusterWatcher) owes downstream, and how it is
//! paid: after each batch of watch items the actor calls `flush` — emits what the trackers owe
//! (`RecordHealthCheckRequested` per state change) and the new Warning events
//! (`IngestAlertRequested`), up to [`EMIT_BATCH`] at a time. Both go through the shared
//! claim → publish → settle protocol ([`crate::ingest::claim`]) by their keys
//! (`k8s:<cluster>:<uid>:<state>:<episode>`, `k8sevent:<cluster>:<uid>:<count>`), so a
//! restarted watcher's baseline within the window repeats nothing. Trackers advance (settle) only once the intents are accepted; a failed
//! emit is retried with backoff (one retry scheduled at a time).
//!
//! **Bounded backlog.** While the sink is down nothing here grows with the number of updates,
//! only with the number of objects:
//! - health transitions are owed per object in the trackers (a newer state replaces the owed
//!   one: newest state wins; `sre_k8s_owed_transitions`,
//!   `sre_k8s_health_transitions_coalesced_total`);
//! - Warning events are owed per event uid in [`OwedWarnings`] (the highest count wins), with
//!   a hard cap of [`MAX_OWED_WARNINGS`] distinct events past which the oldest is dropped and
//!   counted (`sre_k8s_owed_warning_events`, `sre_k8s_warning_events_total{decision}`);
//! - while a retry is scheduled, new batches update what is owed but do not try to emit (the
//!   retry does), so an outage costs one attempt per backoff step, not one per batch;
//! - the watch streams wait for the watcher (`pump`'s credits) instead of queueing without
//!   bound in its mailbox.
//!
//! Why coalesce Warning events rather than back-pressure their stream: a held Events watch
//! keeps nothing either — the API server expires it (410), the relist returns only the events
//! their TTL has not deleted yet, and of those the watcher drops the ones older than
//! `event_max_age`. Coalescing keeps the newest occurrence of every event at a cost bounded by
//! the number of distinct events, and the cap turns an event storm into counted drops of the
//! oldest rather than unbounded memory.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ractor::ActorRef;

use super::cluster::{ClusterMsg, WatcherState};
use super::metrics::{ClusterLabel, KindLabels, TransitionLabels, WarningDecision, WarningLabels};
use super::observe::WarningEvent;
use super::records::{self, Stamp};
use super::tracker::{ObjectKind, Tracker, Transition};
use crate::emit::EmitError;
use crate::ingest::claim::Delivered;
use crate::ingest::dedup::key_hash;

/// Most intents emitted in one go.
pub const EMIT_BATCH: usize = 1000;
/// Most distinct Warning events owed per cluster; past it the oldest is dropped (counted).
pub const MAX_OWED_WARNINGS: usize = 10_000;

/// What [`OwedWarnings::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Owed {
    /// A new event is owed.
    New,
    /// The event was owed already: the higher count is kept.
    Coalesced,
    /// A new event is owed and the oldest owed one was dropped to stay within the cap.
    DroppedOldest(Box<WarningEvent>),
}

/// The Warning events owed downstream, one per event uid (the highest count wins), oldest
/// first, at most `cap` of them.
#[derive(Debug)]
pub struct OwedWarnings {
    by_uid: HashMap<String, (u64, WarningEvent)>,
    order: BTreeMap<u64, String>,
    next: u64,
    cap: usize,
}

impl OwedWarnings {
    /// None owed; at most `cap` (at least 1) at a time.
    pub fn new(cap: usize) -> Self {
        OwedWarnings {
            by_uid: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    /// Events owed.
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Whether none are owed.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// Owes `w`: replaces a lower count of the same event, keeping its place in line.
    pub fn push(&mut self, w: WarningEvent) -> Owed {
        if let Some((_, owed)) = self.by_uid.get_mut(&w.uid) {
            if w.count >= owed.count {
                *owed = w;
            }
            return Owed::Coalesced;
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, w.uid.clone());
        self.by_uid.insert(w.uid.clone(), (seq, w));
        if self.by_uid.len() > self.cap {
            if let Some((_, uid)) = self.order.pop_first() {
                if let Some((_, oldest)) = self.by_uid.remove(&uid) {
                    return Owed::DroppedOldest(Box::new(oldest));
                }
            }
        }
        Owed::New
    }

    /// The `limit` oldest owed events.
    pub fn oldest(&self, limit: usize) -> Vec<WarningEvent> {
        self.order
            .values()
            .take(limit)
            .filter_map(|uid| self.by_uid.get(uid).map(|(_, w)| w.clone()))
            .collect()
    }

    /// These were published (or found published): forgets them, unless a higher count of
    /// the same event arrived meanwhile (that one stays owed).
    pub fn done(&mut self, done: &[WarningEvent]) {
        for d in done {
            let Some((seq, w)) = self.by_uid.get(&d.uid) else {
                continue;
            };
            if w.count <= d.count {
                let seq = *seq;
                self.by_uid.remove(&d.uid);
                self.order.remove(&seq);
            }
        }
    }
}

/// Sets the owed gauges, and counts the transitions the trackers coalesced.
pub(super) fn report_owed(state: &mut WatcherState) {
    let cluster = state.args.cluster.name.clone();
    let metrics = &state.args.metrics;
    for t in [
        &mut state.pods,
        &mut state.deployments,
        &mut state.services.tracker,
    ] {
        count_coalesced(metrics, &cluster, t);
    }
    let label = ClusterLabel { cluster };
    metrics
        .owed_transitions
        .get_or_create(&label)
        .set(owed_transitions(state) as i64);
    metrics
        .owed_warnings
        .get_or_create(&label)
        .set(state.warnings.len() as i64);
}

fn count_coalesced(metrics: &super::metrics::KubeMetrics, cluster: &str, t: &mut Tracker) {
    let n = t.take_coalesced();
    if n > 0 {
        metrics
            .coalesced
            .get_or_create(&KindLabels {
                cluster: cluster.to_owned(),
                kind: t.kind().as_str(),
            })
            .inc_by(n);
    }
}

pub(super) fn count_warning(state: &WatcherState, decision: WarningDecision) {
    state
        .args
        .metrics
        .warnings
        .get_or_create(&WarningLabels {
            cluster: state.args.cluster.name.clone(),
            decision: decision.as_str(),
        })
        .inc();
}

/// Emits what is owed; on failure schedules a retry with backoff.
pub(super) async fn flush(myself: &ActorRef<ClusterMsg>, state: &mut WatcherState) {
    loop {
        let result = emit_some(state).await;
        report_owed(state);
        match result {
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
                if !state.retry.is_pending() {
                    state.retry.set(myself, next, || ClusterMsg::Retry);
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
    let warnings = state
        .warnings
        .oldest(EMIT_BATCH.saturating_sub(transitions.len()));
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
    let ctx = &state.args.context;
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let correlation_id = uuid::Uuid::new_v4().to_string();
    // The batch's intents carry the span of the watch batch (or retry) that emits them.
    let traceparent = crate::trace::current();
    let stamp = Stamp {
        at: &at,
        correlation_id: &correlation_id,
        traceparent: traceparent.as_deref(),
    };
    let n_health = transitions.len();
    let delivered = state
        .args
        .delivery
        .deliver(keys, |fresh| {
            let mut batch = Vec::with_capacity(fresh.len());
            for &i in fresh {
                batch.push(match i.checked_sub(n_health) {
                    None => records::health(ctx, &transitions[i], &stamp)?,
                    Some(w) => records::warning(ctx, &warnings[w], &stamp)?,
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
        count_warning(state, WarningDecision::Duplicate);
    }
    state.warnings.done(&known_w);
    for t in &fresh_t {
        state
            .args
            .metrics
            .transitions
            .get_or_create(&TransitionLabels {
                cluster: cluster.clone(),
                kind: t.kind.as_str(),
                to: t.current.state.as_str(),
            })
            .inc();
    }
    settle_transitions(state, fresh_t);
    for w in &fresh_w {
        state.events.settle(w);
        count_warning(state, WarningDecision::Published);
    }
    state.warnings.done(&fresh_w);
    if !progress {
        // Everything is being published by someone else whose publish failed: ask again.
        return Err(EmitError::Undecided);
    }
    Ok(owed(state))
}

/// Whether any transition or Warning event is still owed.
fn owed(state: &WatcherState) -> bool {
    owed_transitions(state) > 0 || !state.warnings.is_empty()
}

/// Health transitions owed.
fn owed_transitions(state: &WatcherState) -> usize {
    state.pods.dirty() + state.deployments.dirty() + state.services.tracker.dirty()
}

/// Marks transitions reported in their trackers.
fn settle_transitions(state: &mut WatcherState, transitions: Vec<Transition>) {
    let (pods, rest): (Vec<Transition>, Vec<Transition>) = transitions
        .into_iter()
        .partition(|t| t.kind == ObjectKind::Pod);
    let (deployments, services): (Vec<Transition>, Vec<Transition>) = rest
        .into_iter()
        .partition(|t| t.kind == ObjectKind::Deployment);
    state.pods.settle(&pods);
    state.deployments.settle(&deployments);
    state.services.tracker.settle(&services);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_warnings_coalesce_by_uid_and_keep_the_highest_count() {
        let mut owed = OwedWarnings::new(10);
        assert_eq!(owed.push(WarningEvent::for_test("a", 1)), Owed::New);
        assert_eq!(owed.push(WarningEvent::for_test("b", 1)), Owed::New);
        for count in 2..100 {
            assert_eq!(
                owed.push(WarningEvent::for_test("a", count)),
                Owed::Coalesced
            );
        }
        // A stale, lower count (a relist racing a watch) does not win.
        assert_eq!(owed.push(WarningEvent::for_test("a", 5)), Owed::Coalesced);
        assert_eq!(owed.len(), 2, "one per event, however often it repeats");
        let oldest = owed.oldest(10);
        assert_eq!(
            oldest
                .iter()
                .map(|w| (w.uid.as_str(), w.count))
                .collect::<Vec<_>>(),
            [("a", 99), ("b", 1)],
            "in the order first owed, each at its newest count"
        );
        // Published at 99 while 100 arrived: the newer one stays owed.
        owed.push(WarningEvent::for_test("a", 100));
        owed.done(&oldest);
        assert_eq!(owed.len(), 1);
        assert_eq!(owed.oldest(10)[0].count, 100);
        owed.done(&owed.oldest(10));
        assert!(owed.is_empty());
    }

    #[test]
    fn past_the_cap_the_oldest_owed_event_is_dropped() {
        let mut owed = OwedWarnings::new(3);
        for uid in ["a", "b", "c"] {
            assert_eq!(owed.push(WarningEvent::for_test(uid, 1)), Owed::New);
        }
        // Coalescing never drops anything.
        assert_eq!(owed.push(WarningEvent::for_test("a", 2)), Owed::Coalesced);
        match owed.push(WarningEvent::for_test("d", 1)) {
            Owed::DroppedOldest(w) => assert_eq!((w.uid.as_str(), w.count), ("a", 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(owed.len(), 3);
        assert_eq!(
            owed.oldest(10)
                .iter()
                .map(|w| w.uid.as_str())
                .collect::<Vec<_>>(),
            ["b", "c", "d"]
        );
    }
}
