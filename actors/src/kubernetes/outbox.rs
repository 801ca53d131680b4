//! What a [`ClusterWatcher`](super::cluster::ClusterWatcher) owes downstream, and how it is
//! paid: after each batch of watch items the actor [`flush`]es — emits what the trackers owe
//! (`RecordHealthCheckRequested` per state change) and the new Warning events
//! (`IngestAlertRequested`), up to [`EMIT_BATCH`] at a time. Both are claimed through the
//! dedup actor first (`k8s:<cluster>:<uid>:<state>:<episode>`,
//! `k8sevent:<cluster>:<uid>:<count>`), so a restarted watcher's baseline within the window
//! repeats nothing. Trackers advance (settle) only once the intents are accepted; a failed
//! emit is retried with backoff (one retry scheduled at a time).

use std::collections::HashMap;
use std::time::Duration;

use ractor::ActorRef;
use sre_intents::IntentRecord;

use super::cluster::{ClusterMsg, WatcherState};
use super::metrics::{TransitionLabels, WarningDecision, WarningLabels};
use super::observe::WarningEvent;
use super::records;
use super::tracker::{ObjectKind, Transition};
use crate::ingest::dedup::{key_hash, Claim, DedupMsg, DedupSource};

/// Most intents emitted in one go.
pub const EMIT_BATCH: usize = 1000;

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
/// Health transitions and Warning events are claimed through the dedup actor first: a key
/// published within the window (a restarted watcher's baseline repeating facts the domain
/// already has, an event relisted) is settled without being sent again.
async fn emit_some(state: &mut WatcherState) -> Result<bool, String> {
    let mut transitions: Vec<Transition> = Vec::new();
    for t in [&state.pods, &state.deployments, &state.services.tracker] {
        transitions.extend(t.pending(EMIT_BATCH - transitions.len()));
    }
    let warnings = state.warnings.clone();
    if transitions.is_empty() && warnings.is_empty() {
        return Ok(false);
    }
    let cluster = state.args.cluster.name.clone();
    let health_keys: Vec<u64> = transitions
        .iter()
        .map(|t| key_hash(&records::health_key(&cluster, t)))
        .collect();
    let event_keys: Vec<u64> = warnings
        .iter()
        .map(|w| key_hash(&records::event_key(&cluster, w)))
        .collect();
    let keys: Vec<u64> = health_keys.iter().chain(&event_keys).copied().collect();
    let verdicts = claim(state, keys).await?;
    let (health_verdicts, event_verdicts) = verdicts.split_at(health_keys.len());

    let (mut fresh_t, mut known_t, mut fresh_keys) = (Vec::new(), Vec::new(), Vec::new());
    for ((t, key), verdict) in transitions
        .into_iter()
        .zip(health_keys)
        .zip(health_verdicts)
    {
        match verdict {
            Verdict::Fresh => {
                fresh_t.push(t);
                fresh_keys.push(key);
            }
            Verdict::Published => known_t.push(t),
            Verdict::Undecided => {}
        }
    }
    let (mut fresh_w, mut known_w) = (Vec::new(), Vec::new());
    for ((w, key), verdict) in warnings.into_iter().zip(event_keys).zip(event_verdicts) {
        match verdict {
            Verdict::Fresh => {
                fresh_w.push(w);
                fresh_keys.push(key);
            }
            Verdict::Published => known_w.push(w),
            Verdict::Undecided => {}
        }
    }
    let progress = !known_t.is_empty() || !known_w.is_empty() || !fresh_keys.is_empty();
    settle_transitions(state, known_t);
    for w in &known_w {
        state.events.settle(w);
        count_warning(state, WarningDecision::Duplicate);
    }
    drop_warnings(state, &known_w);
    if fresh_keys.is_empty() {
        if !progress && (owed(state) || !state.warnings.is_empty()) {
            // Everything is being published by someone else whose publish failed: ask again.
            return Err("waiting for a concurrent publish of the same intents".into());
        }
        return Ok(progress && owed(state));
    }

    let ctx = &state.args.context;
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let mut batch: Vec<IntentRecord> = Vec::with_capacity(fresh_keys.len());
    let built: Result<(), serde_json::Error> = (|| {
        for t in &fresh_t {
            batch.push(records::health(ctx, t, &at, &correlation_id)?);
        }
        for w in &fresh_w {
            batch.push(records::warning(ctx, w, &at, &correlation_id)?);
        }
        Ok(())
    })();
    let result = match built {
        Ok(()) => state.args.emitter.emit(batch).await,
        Err(e) => Err(format!("cannot encode an intent: {e}")),
    };
    if let Some(dedup) = state.args.dedup.as_ref().and_then(|s| s.get()) {
        let _ = dedup.cast(DedupMsg::Settle {
            keys: fresh_keys,
            durable: result.is_ok(),
        });
    }
    result?;
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
    drop_warnings(state, &fresh_w);
    Ok(owed(state))
}

/// Whether any transition is still owed.
fn owed(state: &WatcherState) -> bool {
    state.pods.dirty() + state.deployments.dirty() + state.services.tracker.dirty() > 0
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

/// What the dedup actor said of a key.
enum Verdict {
    /// Claimed: publish it, then settle it.
    Fresh,
    /// Published within the window: settle without sending.
    Published,
    /// Being published elsewhere and that failed: still owed, asked again next time.
    Undecided,
}

/// Claims `keys` (distinct) through the dedup actor; all fresh when there is none configured.
async fn claim(state: &WatcherState, keys: Vec<u64>) -> Result<Vec<Verdict>, String> {
    let Some(slot) = &state.args.dedup else {
        return Ok(keys.iter().map(|_| Verdict::Fresh).collect());
    };
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let dedup = slot.get().ok_or("deduplication unavailable")?;
    let claims = ractor::call!(dedup, DedupMsg::Claim, DedupSource::Kubernetes, keys)
        .map_err(|_| "deduplication unavailable".to_string())?;
    let mut verdicts = Vec::with_capacity(claims.len());
    for claim in claims {
        verdicts.push(match claim {
            Claim::Fresh => Verdict::Fresh,
            Claim::Duplicate => Verdict::Published,
            Claim::Pending(rx) => {
                if rx.await.unwrap_or(false) {
                    Verdict::Published
                } else {
                    Verdict::Undecided
                }
            }
        });
    }
    Ok(verdicts)
}
