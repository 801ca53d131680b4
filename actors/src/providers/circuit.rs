//! `ProviderCircuit`: the actor that owns one upstream's circuit breaker, plus the handle that
//! callers use to ask it for permission and report outcomes.
//!
//! The actor writes its own reference into the handle's slot when it starts, so a restarted
//! circuit is found by callers without a global name. While no circuit actor runs (between a
//! crash and its restart) callers get [`CircuitError::Unavailable`] and fail fast.
//!
//! A granted call holds a [`CallPermit`], a drop guard: [`CallPermit::record`] reports the
//! outcome; a permit dropped without one (the caller's future was dropped mid-call — client
//! hung up, actor killed, a timeout around the call) is released, which counts as neither
//! success nor failure and frees a half-open trial slot. The permit goes back to the actor that
//! granted it: a restarted circuit never hears of its predecessor's permits.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use sre_supervision::ActorSlot;
use tokio::time::Instant;

use super::breaker::{Breaker, BreakerConfig, CircuitState, Permit, Rejected};
use super::metrics::{ProviderLabel, ProviderMetrics, TransitionLabels};

/// The actor.
pub struct ProviderCircuit;

/// Its arguments.
pub struct CircuitArgs {
    /// Breaker settings.
    pub config: BreakerConfig,
    /// The handle to publish itself in.
    pub handle: CircuitHandle,
    /// Metric families.
    pub metrics: ProviderMetrics,
    /// Shared view for `/v1/supervision`.
    pub board: CircuitBoard,
}

/// Messages.
pub enum CircuitMsg {
    /// May a call go ahead? The permit comes as its drop guard, so one lost on the way (the
    /// caller gone before reading the reply) is released too.
    Acquire(RpcReplyPort<Result<CallPermit, Rejected>>),
    /// A call's outcome.
    Record {
        /// The permit the call got.
        permit: Permit,
        /// Whether the upstream behaved (see [`super::outcome`] for what counts).
        success: bool,
    },
    /// A call ended without an outcome (it was cancelled): free its slot, count nothing.
    Release(Permit),
    /// The open period may have ended.
    OpenElapsed,
}

/// Private state.
pub struct CircuitActorState {
    name: String,
    breaker: Breaker,
    metrics: ProviderMetrics,
    board: CircuitBoard,
    handle: CircuitHandle,
}

/// What `/v1/supervision` shows of a circuit.
#[derive(Clone, Debug, Serialize)]
pub struct CircuitSnapshot {
    /// Current state.
    pub state: CircuitState,
    /// Outcomes in the sliding window.
    pub window_calls: u32,
    /// Failures among them.
    pub window_failures: u32,
    /// State changes since start.
    pub transitions: u64,
}

/// Every circuit's latest snapshot, by name. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct CircuitBoard(Arc<RwLock<BTreeMap<String, CircuitSnapshot>>>);

impl CircuitBoard {
    /// All snapshots by circuit name.
    pub fn snapshot(&self) -> BTreeMap<String, CircuitSnapshot> {
        self.0.read().expect("board lock").clone()
    }
    /// One circuit's snapshot.
    pub fn get(&self, name: &str) -> Option<CircuitSnapshot> {
        self.0.read().expect("board lock").get(name).cloned()
    }
}

/// Why a call may not go ahead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CircuitError {
    /// The circuit is open (or its trial slots are busy).
    #[error("circuit {provider} is open; retry in {:?}", retry_in)]
    Open {
        /// Circuit name.
        provider: String,
        /// Time until a call may be tried.
        retry_in: std::time::Duration,
    },
    /// No circuit actor is running right now (it is being restarted).
    #[error("circuit {provider} is restarting")]
    Unavailable {
        /// Circuit name.
        provider: String,
    },
}

/// How callers reach a circuit, across its restarts. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CircuitHandle {
    name: Arc<str>,
    slot: ActorSlot<CircuitMsg>,
}

impl CircuitHandle {
    /// A handle with no actor yet.
    pub fn new(name: &str) -> Self {
        CircuitHandle {
            name: name.into(),
            slot: ActorSlot::default(),
        }
    }

    /// The circuit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn current(&self) -> Option<ActorRef<CircuitMsg>> {
        self.slot.get()
    }

    /// Asks for permission to make a call. The permit is a drop guard: report the outcome
    /// with [`CallPermit::record`]; dropping it without one releases it.
    pub async fn acquire(&self) -> Result<CallPermit, CircuitError> {
        let unavailable = || CircuitError::Unavailable {
            provider: self.name.to_string(),
        };
        let actor = self.current().ok_or_else(unavailable)?;
        match ractor::call!(actor, CircuitMsg::Acquire) {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(r)) => Err(CircuitError::Open {
                provider: self.name.to_string(),
                retry_in: r.retry_in,
            }),
            Err(_) => Err(unavailable()),
        }
    }
}

/// Permission to make one call, from the circuit actor that granted it. Report the outcome
/// with [`record`](Self::record); dropped without one, it is released (neither success nor
/// failure, its trial slot freed).
#[derive(Debug)]
#[must_use = "a permit dropped at once is released without an outcome"]
pub struct CallPermit {
    actor: Option<ActorRef<CircuitMsg>>,
    permit: Permit,
}

impl CallPermit {
    /// Reports the call's outcome (fire and forget).
    pub fn record(mut self, success: bool) {
        if let Some(actor) = self.actor.take() {
            let _ = actor.cast(CircuitMsg::Record {
                permit: self.permit,
                success,
            });
        }
    }

    /// Gives the permit back without an outcome (what dropping it does).
    pub fn release(self) {}
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if let Some(actor) = self.actor.take() {
            let _ = actor.cast(CircuitMsg::Release(self.permit));
        }
    }
}

impl Actor for ProviderCircuit {
    type Msg = CircuitMsg;
    type State = CircuitActorState;
    type Arguments = CircuitArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CircuitMsg>,
        args: CircuitArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let name = args.handle.name().to_owned();
        args.handle.slot.publish(myself);
        let state = CircuitActorState {
            name,
            breaker: Breaker::new(args.config),
            metrics: args.metrics,
            board: args.board,
            handle: args.handle,
        };
        publish(&state, 0);
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<CircuitMsg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.handle.slot.clear(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CircuitMsg>,
        msg: CircuitMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CircuitMsg::Acquire(reply) => on_acquire(&myself, state, reply),
            CircuitMsg::Record { permit, success } => on_record(&myself, state, permit, success),
            CircuitMsg::Release(permit) => on_release(state, permit),
            CircuitMsg::OpenElapsed => on_open_elapsed(&myself, state),
        }
        Ok(())
    }
}

fn on_acquire(
    myself: &ActorRef<CircuitMsg>,
    state: &mut CircuitActorState,
    reply: RpcReplyPort<Result<CallPermit, Rejected>>,
) {
    let (verdict, changed) = state.breaker.try_acquire(Instant::now());
    // Were the caller gone already, the permit is dropped with the reply and comes back as a
    // release.
    let _ = reply.send(verdict.map(|permit| CallPermit {
        actor: Some(myself.clone()),
        permit,
    }));
    transitioned(myself, state, changed);
}

fn on_release(state: &mut CircuitActorState, permit: Permit) {
    state.breaker.release(permit);
    tracing::debug!(provider = %state.name, "a call was cancelled; its permit is released");
}

fn on_record(
    myself: &ActorRef<CircuitMsg>,
    state: &mut CircuitActorState,
    permit: Permit,
    success: bool,
) {
    let changed = state.breaker.record(Instant::now(), permit, success);
    transitioned(myself, state, changed);
}

fn on_open_elapsed(myself: &ActorRef<CircuitMsg>, state: &mut CircuitActorState) {
    let changed = state.breaker.poll(Instant::now());
    transitioned(myself, state, changed);
}

/// Logs and counts a state change, and arms the open timer.
fn transitioned(
    myself: &ActorRef<CircuitMsg>,
    state: &mut CircuitActorState,
    changed: Option<CircuitState>,
) {
    let transitions = state.board.get(&state.name).map_or(0, |s| s.transitions);
    let Some(to) = changed else {
        publish(state, transitions);
        return;
    };
    match to {
        CircuitState::Open => tracing::warn!(provider = %state.name, "circuit opened"),
        _ => tracing::info!(provider = %state.name, to = to.label(), "circuit state changed"),
    }
    state
        .metrics
        .transitions
        .get_or_create(&TransitionLabels {
            provider: state.name.clone(),
            to: to.label(),
        })
        .inc();
    if to == CircuitState::Open {
        let me = myself.clone();
        let after = state.breaker_open_duration();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = me.cast(CircuitMsg::OpenElapsed);
        });
    }
    publish(state, transitions + 1);
}

fn publish(state: &CircuitActorState, transitions: u64) {
    let (window_calls, window_failures) = state.breaker.window_counts();
    let s = state.breaker.state();
    state
        .metrics
        .state
        .get_or_create(&ProviderLabel {
            provider: state.name.clone(),
        })
        .set(s.gauge());
    state.board.0.write().expect("board lock").insert(
        state.name.clone(),
        CircuitSnapshot {
            state: s,
            window_calls,
            window_failures,
            transitions,
        },
    );
}

impl CircuitActorState {
    fn breaker_open_duration(&self) -> std::time::Duration {
        self.breaker.config().open_duration
    }
}
