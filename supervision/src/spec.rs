//! What a supervisor supervises: child specs (a logical name and how to start the actor) and the
//! supervisor's own spec, which is itself a child spec so trees nest.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, SpawnErr};

use crate::observer::Observer;
use crate::policy::RestartPolicy;
use crate::supervisor::Supervisor;

type StartFn = dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync;

/// A child: a stable logical name and a function that spawns it linked to a supervisor.
///
/// Children are spawned without a global ractor name, so a restart never races the registry;
/// the supervisor knows each child by its `ActorId` and this name.
///
/// The start function should return quickly: the supervisor awaits it (the child's `pre_start`),
/// so slow I/O belongs in the child's `post_start` or message handlers.
#[derive(Clone)]
pub struct ChildSpec {
    /// Logical name, stable across restarts; a metric label, so bounded.
    pub name: String,
    start: Arc<StartFn>,
    /// Whether the child is itself a [`Supervisor`] (it then answers `SupervisorMsg`).
    pub(crate) is_supervisor: bool,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .finish()
    }
}

impl ChildSpec {
    /// A child started by `start(supervisor)`.
    pub fn new<F, Fut>(name: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        ChildSpec {
            name: name.into(),
            start: Arc::new(move |sup| Box::pin(start(sup))),
            is_supervisor: false,
        }
    }

    /// A child actor built afresh by `make` for every (re)start.
    pub fn actor<A, F>(name: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        ChildSpec::new(name, move |sup| {
            let (actor, args) = make();
            async move {
                A::spawn_linked(None, actor, args, sup)
                    .await
                    .map(|(r, _)| r.get_cell())
            }
        })
    }

    /// A nested supervisor.
    pub fn supervisor(spec: SupervisorSpec) -> Self {
        let name = spec.name.clone();
        let mut child = ChildSpec::actor(name, move || (Supervisor, spec.clone()));
        child.is_supervisor = true;
        child
    }

    pub(crate) async fn start(&self, supervisor: ActorCell) -> Result<ActorCell, SpawnErr> {
        (self.start)(supervisor).await
    }
}

/// A supervisor: its name (unique in the tree), policy, children in start order, and the
/// observer that records what happens to them.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// Unique name in the tree; the `supervisor` metric label of its children.
    pub name: String,
    /// Restart policy for every child.
    pub policy: RestartPolicy,
    /// Children, started in this order and stopped in reverse.
    pub children: Vec<ChildSpec>,
    /// Where events go.
    pub observer: Observer,
}

impl SupervisorSpec {
    /// A supervisor with no children yet.
    pub fn new(name: impl Into<String>, policy: RestartPolicy, observer: Observer) -> Self {
        SupervisorSpec {
            name: name.into(),
            policy,
            children: Vec::new(),
            observer,
        }
    }

    /// Adds a child.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }
}
