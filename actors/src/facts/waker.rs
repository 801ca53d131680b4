//! `DueWaker`: wakes deferred target records (a high page held until business hours) at their
//! due time through [`FactAction::fire_due`], and writes what came back to the ledger.
//!
//! It asks the [ledger](super::ledger) for the records due now and the next due time, fires
//! the due ones (each under its incident's lock, after reading the entry again so a fact
//! handled meanwhile wins), and sleeps until the next due time — at most an hour, so a clock
//! that jumps is caught up. The ledger wakes it when a new due time is written, and when it
//! starts (a restart's rebuilt ledger fires what fell due meanwhile). A target that is
//! unavailable is tried again after the wait it asked for (a throttle's `Retry-After`, an open
//! circuit's remaining time), else after the consumer's backoff; one that refuses gets its record
//! marked `rejected` (due cleared) and counted. Time comes from a [`Clock`] (paused in tests).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sre_supervision::ActorSlot;

use super::action::{ActionError, FactAction};
use super::handler::{Backoff, IncidentLocks};
use super::ledger::LedgerClient;
use super::metrics::FactsMetrics;
use crate::sli::scheduler::Clock;
use crate::timer::Timer;

/// Longest sleep between two looks.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// The actor.
pub struct DueWaker;

/// Its arguments.
#[derive(Clone)]
pub struct WakerArgs {
    /// Where the ledger wakes it.
    pub slot: ActorSlot<WakerMsg>,
    /// The ledger.
    pub ledger: LedgerClient,
    /// The targets.
    pub targets: Arc<[Arc<dyn FactAction>]>,
    /// Shared with the consumer.
    pub locks: IncidentLocks,
    /// Time.
    pub clock: Clock,
    /// Waits after an unavailable target.
    pub backoff: Backoff,
    /// Metrics.
    pub metrics: FactsMetrics,
}

/// Messages.
pub enum WakerMsg {
    /// Look for due records now.
    Wake,
    /// Answered once every earlier message is handled (tests, orderly checks).
    Flush(ractor::RpcReplyPort<()>),
}

/// Private state (its timer goes with it).
pub struct WakerState {
    timer: Timer<WakerMsg>,
    failures: u32,
    args: WakerArgs,
}

impl Actor for DueWaker {
    type Msg = WakerMsg;
    type State = WakerState;
    type Arguments = WakerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WakerMsg>,
        args: WakerArgs,
    ) -> Result<WakerState, ActorProcessingErr> {
        args.slot.publish(myself.clone());
        let _ = myself.cast(WakerMsg::Wake);
        Ok(WakerState {
            timer: Timer::default(),
            failures: 0,
            args,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<WakerMsg>,
        state: &mut WakerState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.slot.clear(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WakerMsg>,
        msg: WakerMsg,
        state: &mut WakerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WakerMsg::Wake => on_wake(&myself, state).await,
            WakerMsg::Flush(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

async fn on_wake(myself: &ActorRef<WakerMsg>, state: &mut WakerState) {
    state.timer.fired();
    let now = (state.args.clock)();
    let (due, next) = match state.args.ledger.due(now).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "deferred actions: ledger unavailable");
            retry_later(myself, state, None);
            return;
        }
    };
    let mut unavailable = false;
    // The longest wait a target asked for (the due records are tried again together).
    let mut asked: Option<Duration> = None;
    for (entry, target) in due {
        match fire(&state.args, &entry.incident_id, &target, now).await {
            Ok(()) => {}
            Err((e, wait)) => {
                tracing::warn!(incident = %entry.incident_id, target = %target, error = %e, "deferred action waits");
                unavailable = true;
                asked = asked.max(Backoff::asked(wait));
            }
        }
    }
    if unavailable {
        retry_later(myself, state, asked);
        return;
    }
    state.failures = 0;
    schedule(myself, state, next, now);
}

/// Wakes again after `asked` (what a target asked for), else after the growing backoff.
fn retry_later(myself: &ActorRef<WakerMsg>, state: &mut WakerState, asked: Option<Duration>) {
    let wait = asked.unwrap_or_else(|| {
        state.failures += 1;
        state.args.backoff.wait(state.failures)
    });
    state.timer.set(myself, wait, || WakerMsg::Wake);
}

fn schedule(
    myself: &ActorRef<WakerMsg>,
    state: &mut WakerState,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let sleep = next.map_or(MAX_SLEEP, |at| {
        at.signed_duration_since(now)
            .to_std()
            .unwrap_or_default()
            .min(MAX_SLEEP)
    });
    state.timer.set(myself, sleep, || WakerMsg::Wake);
}

/// Fires one due record; `Err` (why, and the wait asked for) when the target (or the ledger)
/// is unavailable.
async fn fire(
    args: &WakerArgs,
    incident_id: &str,
    target: &str,
    now: DateTime<Utc>,
) -> Result<(), (String, Option<Duration>)> {
    let Some(action) = args.targets.iter().find(|t| t.target() == target) else {
        tracing::warn!(
            incident = incident_id,
            target,
            "a deferred record of a target no longer configured stays as it is"
        );
        return Ok(());
    };
    let name = action.target();
    let _guard = args.locks.lock(incident_id).await;
    let entry = args
        .ledger
        .get(incident_id)
        .await
        .map_err(|e| (e.to_string(), None))?;
    let Some(record) = entry
        .target(name)
        .filter(|r| r.due.is_some_and(|d| d <= now))
        .cloned()
    else {
        return Ok(()); // a fact changed it meanwhile
    };
    let new = match action.fire_due(&entry, now).await {
        Ok(Some(mut r)) => {
            args.metrics.action(name, "fired");
            if r.due.is_some_and(|d| d <= now) {
                // A target that answers with the same due time would be woken forever.
                r.due = None;
            }
            r
        }
        Ok(None) => {
            args.metrics.action(name, "fired");
            let mut r = record;
            r.due = None;
            r.updated_at = now;
            r
        }
        Err(ActionError::Unavailable {
            reason,
            retry_after,
            ..
        }) => {
            args.metrics.action(name, "unavailable");
            return Err((reason, retry_after));
        }
        Err(e @ ActionError::Rejected { .. }) => {
            args.metrics.action(name, "fire_failed");
            tracing::warn!(incident = incident_id, target = name, error = %e, "deferred action rejected");
            let mut r = record;
            r.due = None;
            r.state = "rejected".into();
            r.updated_at = now;
            r.detail.insert("error".into(), e.to_string());
            r
        }
    };
    args.ledger
        .put_target_in_place(incident_id, name, new)
        .await
        .map_err(|e| (e.to_string(), None))
}
