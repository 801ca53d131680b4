//! The supervisor actor: one-for-one restarts with exponential backoff and jitter, an intensity
//! limit after which the child is parked and retried after a cool-down, and top-down shutdown.
//!
//! ractor's default `handle_supervisor_evt` stops the parent when a child ends; this one never
//! does: a failing child is restarted (or parked) alone and its siblings keep running.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort,
    SupervisionEvent as RactorEvent,
};
use tokio::time::Instant;

use crate::observer::{ChildStatus, SupervisionEvent};
use crate::spec::{ChildSpec, SupervisorSpec};

/// How long shutdown waits for each child to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The supervisor actor (arguments: its [`SupervisorSpec`]).
pub struct Supervisor;

/// Messages a supervisor handles.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// A backoff or cool-down elapsed: start the child again (ignored when `generation` is stale).
    Restart {
        /// Child index.
        child: usize,
        /// The failure this timer belongs to.
        generation: u64,
    },
    /// The status of every child of this supervisor.
    Children(RpcReplyPort<Vec<ChildStatus>>),
    /// The current cell of a child, by name, while it runs.
    Lookup(String, RpcReplyPort<Option<ActorCell>>),
    /// Answers once this supervisor and every nested supervisor have made their first start of
    /// every child (whether or not each child came up).
    AwaitStarted(RpcReplyPort<()>),
}

/// Waits until the whole tree under `root` has made its first start of every child.
pub async fn wait_started(
    root: &ActorRef<SupervisorMsg>,
) -> Result<(), ractor::RactorErr<SupervisorMsg>> {
    ractor::call!(root, SupervisorMsg::AwaitStarted)
}

/// One child's runtime record.
struct ChildRecord {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    /// Failures within the intensity period.
    recent: VecDeque<Instant>,
    /// Bumped on every failure so stale restart timers are ignored.
    generation: u64,
}

/// Private state of a supervisor.
pub struct SupervisorState {
    spec: SupervisorSpec,
    children: Vec<ChildRecord>,
    by_id: HashMap<ActorId, usize>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        spec: SupervisorSpec,
    ) -> Result<Self::State, ActorProcessingErr> {
        let children = spec
            .children
            .iter()
            .map(|c| {
                SupervisionEvent::ChildDeclared {
                    supervisor: &spec.name,
                    child: &c.name,
                }
                .emit(&spec.observer);
                ChildRecord {
                    spec: c.clone(),
                    cell: None,
                    recent: VecDeque::new(),
                    generation: 0,
                }
            })
            .collect();
        Ok(SupervisorState {
            spec,
            children,
            by_id: HashMap::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for idx in 0..state.children.len() {
            start_child(&myself, state, idx).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart { child, generation } => {
                on_restart(&myself, state, child, generation).await
            }
            SupervisorMsg::Children(reply) => on_children(state, reply),
            SupervisorMsg::Lookup(name, reply) => on_lookup(state, &name, reply),
            SupervisorMsg::AwaitStarted(reply) => on_await_started(state, reply).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: RactorEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            RactorEvent::ActorFailed(cell, err) => {
                on_child_exit(&myself, state, cell.get_id(), &err.to_string())
            }
            RactorEvent::ActorTerminated(cell, _, reason) => {
                let reason = reason.unwrap_or_else(|| "exited".into());
                on_child_exit(
                    &myself,
                    state,
                    cell.get_id(),
                    &format!("exited unexpectedly: {reason}"),
                )
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Top-down: children stop in reverse start order, each finishing its own subtree first.
        for rec in state.children.iter_mut().rev() {
            if let Some(cell) = rec.cell.take() {
                if let Err(e) = cell
                    .stop_and_wait(Some("shutdown".into()), Some(STOP_TIMEOUT))
                    .await
                {
                    tracing::warn!(supervisor = %state.spec.name, child = %rec.spec.name, error = %e, "child did not stop in time; killing it");
                    cell.kill();
                }
                SupervisionEvent::ChildStopped {
                    supervisor: &state.spec.name,
                    child: &rec.spec.name,
                }
                .emit(&state.spec.observer);
            }
        }
        Ok(())
    }
}

async fn start_child(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, idx: usize) {
    let spec = state.children[idx].spec.clone();
    match spec.start(myself.get_cell()).await {
        Ok(cell) => {
            SupervisionEvent::ChildStarted {
                supervisor: &state.spec.name,
                child: &spec.name,
                actor_id: cell.get_id().to_string(),
            }
            .emit(&state.spec.observer);
            state.by_id.insert(cell.get_id(), idx);
            state.children[idx].cell = Some(cell);
        }
        Err(e) => record_failure(myself, state, idx, &format!("failed to start: {e}")),
    }
}

fn on_child_exit(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: ActorId,
    reason: &str,
) {
    // Events from a previous incarnation (or a non-child) carry an id we no longer track.
    let Some(idx) = state.by_id.remove(&id) else {
        return;
    };
    state.children[idx].cell = None;
    record_failure(myself, state, idx, reason);
}

/// Counts a failure against the intensity limit and schedules the restart or the park.
fn record_failure(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    idx: usize,
    reason: &str,
) {
    let policy = &state.spec.policy;
    let observer = &state.spec.observer;
    let supervisor = state.spec.name.as_str();
    let rec = &mut state.children[idx];
    let child = rec.spec.name.as_str();
    SupervisionEvent::ChildFailed {
        supervisor,
        child,
        reason,
    }
    .emit(observer);

    let now = Instant::now();
    while rec
        .recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= policy.period)
    {
        rec.recent.pop_front();
    }
    rec.recent.push_back(now);
    rec.generation += 1;
    let failures = rec.recent.len() as u32;
    let delay = if failures > policy.max_restarts {
        rec.recent.clear();
        SupervisionEvent::ChildParked {
            supervisor,
            child,
            failures,
            cool_down: policy.cool_down,
        }
        .emit(observer);
        policy.cool_down
    } else {
        let delay = policy.backoff(failures, fastrand::f64());
        SupervisionEvent::RestartScheduled {
            supervisor,
            child,
            attempt: failures,
            delay,
        }
        .emit(observer);
        delay
    };
    let myself = myself.clone();
    let generation = rec.generation;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        // The supervisor may have stopped meanwhile; then there is nothing to restart.
        let _ = myself.cast(SupervisorMsg::Restart {
            child: idx,
            generation,
        });
    });
}

async fn on_restart(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    idx: usize,
    generation: u64,
) {
    let Some(rec) = state.children.get(idx) else {
        return;
    };
    if rec.generation != generation || rec.cell.is_some() {
        return;
    }
    SupervisionEvent::Restarting {
        supervisor: &state.spec.name,
        child: &rec.spec.name,
    }
    .emit(&state.spec.observer);
    start_child(myself, state, idx).await;
}

fn on_children(state: &SupervisorState, reply: RpcReplyPort<Vec<ChildStatus>>) {
    let statuses = state
        .children
        .iter()
        .filter_map(|c| state.spec.observer.child(&state.spec.name, &c.spec.name))
        .collect();
    let _ = reply.send(statuses);
}

fn on_lookup(state: &SupervisorState, name: &str, reply: RpcReplyPort<Option<ActorCell>>) {
    let cell = state
        .children
        .iter()
        .find(|c| c.spec.name == name)
        .and_then(|c| c.cell.clone());
    let _ = reply.send(cell);
}

async fn on_await_started(state: &SupervisorState, reply: RpcReplyPort<()>) {
    for rec in state.children.iter().filter(|c| c.spec.is_supervisor) {
        if let Some(cell) = &rec.cell {
            let child: ActorRef<SupervisorMsg> = cell.clone().into();
            // A child supervisor that stops meanwhile has nothing left to wait for.
            let _ = wait_started(&child).await;
        }
    }
    let _ = reply.send(());
}
