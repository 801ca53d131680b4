//! [`Timer`]: one message an actor schedules for itself with ractor's
//! [`ActorRef::send_after`], cancelled when it is replaced or dropped.
//!
//! ractor runs no `post_stop` for an actor that fails or is killed, but its state is always
//! dropped: an actor that keeps its timers in its state leaves none behind, and a timer that
//! is set again replaces the one pending, so at most one of each is ever scheduled.

use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{ActorRef, Message, MessagingErr};

/// A pending `send_after`, aborted when replaced or dropped.
pub struct Timer<M: Message>(Option<JoinHandle<Result<(), MessagingErr<M>>>>);

impl<M: Message> Default for Timer<M> {
    fn default() -> Self {
        Timer(None)
    }
}

impl<M: Message> std::fmt::Debug for Timer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Timer").field(&self.is_pending()).finish()
    }
}

impl<M: Message> Timer<M> {
    /// Sends `msg()` to `actor` after `after`, replacing (aborting) any message still pending.
    pub fn set(
        &mut self,
        actor: &ActorRef<M>,
        after: Duration,
        msg: impl FnOnce() -> M + Send + 'static,
    ) {
        self.cancel();
        self.0 = Some(actor.send_after(after, msg));
    }

    /// Whether a message is scheduled and not sent yet.
    pub fn is_pending(&self) -> bool {
        self.0.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Called when the scheduled message arrives: nothing is pending any more.
    pub fn fired(&mut self) {
        self.0 = None;
    }

    /// Aborts the message still pending, if any.
    pub fn cancel(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

impl<M: Message> Drop for Timer<M> {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ractor::{Actor, ActorProcessingErr};

    use super::*;

    struct Sleeper;

    impl Actor for Sleeper {
        type Msg = ();
        type State = Timer<()>;
        type Arguments = Arc<()>;

        async fn pre_start(
            &self,
            myself: ActorRef<()>,
            token: Arc<()>,
        ) -> Result<Timer<()>, ActorProcessingErr> {
            let mut t = Timer::default();
            t.set(&myself, Duration::from_secs(3600), move || drop(token));
            Ok(t)
        }
    }

    /// A killed actor (no `post_stop`) leaves no timer behind: the task that would send the
    /// message is aborted with the state, and drops what it held.
    #[tokio::test(start_paused = true)]
    async fn a_killed_actor_leaves_no_timer() {
        let token = Arc::new(());
        let (actor, handle) = Actor::spawn(None, Sleeper, token.clone()).await.unwrap();
        assert_eq!(Arc::strong_count(&token), 2, "the timer holds the message");
        actor.kill();
        handle.await.unwrap();
        for _ in 0..100 {
            if Arc::strong_count(&token) == 1 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the timer outlived its actor");
    }

    #[tokio::test(start_paused = true)]
    async fn setting_again_replaces_the_pending_message() {
        let (actor, handle) = Actor::spawn(None, Sleeper, Arc::new(())).await.unwrap();
        let first = Arc::new(());
        let second = Arc::new(());
        let mut t = Timer::default();
        let f = first.clone();
        t.set(&actor, Duration::from_secs(60), move || drop(f));
        let s = second.clone();
        t.set(&actor, Duration::from_secs(60), move || drop(s));
        for _ in 0..100 {
            if Arc::strong_count(&first) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(Arc::strong_count(&first), 1, "the first timer was aborted");
        assert!(t.is_pending());
        assert_eq!(Arc::strong_count(&second), 2);
        t.cancel();
        assert!(!t.is_pending());
        actor.stop(None);
        handle.await.unwrap();
    }
}
