//! `ApprovalSweeper`: the actor under the `tools` supervisor that removes expired approvals
//! every `interval` (the store also sweeps on every use; this keeps
//! `sre_tools_approvals_pending` true while nobody calls). Its timer lives in its state, so a
//! failed or killed sweeper leaves nothing scheduled.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::gateway::ToolGateway;
use crate::timer::Timer;

/// The actor.
pub struct ApprovalSweeper;

/// Its arguments.
#[derive(Clone)]
pub struct SweeperArgs {
    /// The gateway whose approvals are swept.
    pub gateway: Arc<ToolGateway>,
    /// How often.
    pub interval: Duration,
}

/// Messages.
pub enum SweeperMsg {
    /// Time to sweep.
    Tick,
}

/// Private state.
pub struct SweeperState {
    args: SweeperArgs,
    timer: Timer<SweeperMsg>,
}

impl Actor for ApprovalSweeper {
    type Msg = SweeperMsg;
    type State = SweeperState;
    type Arguments = SweeperArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SweeperMsg>,
        args: SweeperArgs,
    ) -> Result<SweeperState, ActorProcessingErr> {
        let mut timer = Timer::default();
        timer.set(&myself, args.interval, || SweeperMsg::Tick);
        Ok(SweeperState { args, timer })
    }

    async fn handle(
        &self,
        myself: ActorRef<SweeperMsg>,
        msg: SweeperMsg,
        state: &mut SweeperState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SweeperMsg::Tick => on_tick(&myself, state),
        }
        Ok(())
    }
}

fn on_tick(myself: &ActorRef<SweeperMsg>, state: &mut SweeperState) {
    state.timer.fired();
    let removed = state.args.gateway.sweep();
    if removed > 0 {
        tracing::debug!(removed, "expired approvals removed");
    }
    state
        .timer
        .set(myself, state.args.interval, || SweeperMsg::Tick);
}

/// The sweep interval for approvals that live `ttl`: a tenth of it, between 1s and 60s.
pub fn interval_for(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}
