//! `ProviderCircuit`: the actor that owns one upstream's circuit breaker, plus the handle that
//! callers use to ask it for permission and report outcomes.
//!
//! The actor writes its own reference into the handle's slot when it starts, so a restarted
//! circuit is found by callers without a global name. While no circuit actor runs (between a
//! crash and its restart) callers get [`CircuitError::Unavailable`] and fail fast.

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
    /// May a call go ahead?
    Acquire(RpcReplyPort<Result<Permit, Rejected>>),
    /// A call's outcome.
    Record {
        /// The permit the call got.
        permit: Permit,
        /// Whether the upstream behaved (see the client for what counts).
        success: bool,
    },
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

    /// Asks for permission to make a call.
    pub async fn acquire(&self) -> Result<Permit, CircuitError> {
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

    /// Reports a call's outcome (fire and forget).
    pub fn record(&self, permit: Permit, success: bool) {
        if let Some(actor) = self.current() {
            let _ = actor.cast(CircuitMsg::Record { permit, success });
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
            CircuitMsg::OpenElapsed => on_open_elapsed(&myself, state),
        }
        Ok(())
    }
}

fn on_acquire(
    myself: &ActorRef<CircuitMsg>,
    state: &mut CircuitActorState,
    reply: RpcReplyPort<Result<Permit, Rejected>>,
) {
    let (verdict, changed) = state.breaker.try_acquire(Instant::now());
    let _ = reply.send(verdict);
    transitioned(myself, state, changed);
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
