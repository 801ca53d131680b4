//! [`ActorSlot`]: how callers reach an actor across its restarts without a global name. The
//! actor publishes itself in `pre_start` and clears the slot in `post_stop` (only if the slot
//! still holds it); callers read the current reference, or find none while it restarts.

use std::sync::{Arc, RwLock};

use ractor::ActorRef;

/// A shared, replaceable reference to the current incarnation of an actor. Cheap to clone.
pub struct ActorSlot<M>(Arc<RwLock<Option<ActorRef<M>>>>);

impl<M> std::fmt::Debug for ActorSlot<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self
            .0
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|a| a.get_id()));
        f.debug_tuple("ActorSlot").field(&id).finish()
    }
}

impl<M> Clone for ActorSlot<M> {
    fn clone(&self) -> Self {
        ActorSlot(self.0.clone())
    }
}

impl<M> Default for ActorSlot<M> {
    fn default() -> Self {
        ActorSlot(Arc::new(RwLock::new(None)))
    }
}

impl<M: ractor::Message> ActorSlot<M> {
    /// The current incarnation, if one runs.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.0.read().expect("slot lock").clone()
    }

    /// Called by the actor in `pre_start`.
    pub fn publish(&self, me: ActorRef<M>) {
        *self.0.write().expect("slot lock") = Some(me);
    }

    /// Called by the actor in `post_stop`: clears the slot unless a newer incarnation took it.
    pub fn clear(&self, me: &ActorRef<M>) {
        let mut slot = self.0.write().expect("slot lock");
        if slot.as_ref().is_some_and(|a| a.get_id() == me.get_id()) {
            *slot = None;
        }
    }
}
