//! The facts subtree (DESIGN §3.3a–b): the consumer of `sre.domain.facts.v1`, the incident
//! ledger, and the contract every external action (paging, tickets, Grafana annotations)
//! implements.
//!
//! ```text
//! facts
//! ├── ledger     IncidentLedger: every incident's entry, durable (Kafka topic or local log)
//! ├── waker      DueWaker: deferred target records fired at their due time
//! └── consumer   KafkaFacts (consumer group) or EmbeddedFacts (local log): each fact through
//!                the FactHandler to every target, committed only once handled
//! ```
//!
//! # Layout
//! - [`action`]: [`FactAction`](action::FactAction), what one external system does for a fact,
//!   and the [`ActionError`](action::ActionError) that decides between waiting and
//!   dead-lettering.
//! - [`entry`]: [`IncidentEntry`](entry::IncidentEntry), one incident's ledger entry, and the
//!   per-target [`TargetRecord`](entry::TargetRecord).
//! - [`handler`]: the per-fact algorithm both sources share; [`lanes`]: one partition's facts
//!   in flight (different incidents at once, one incident in order), also shared.
//! - [`ledger`] (actor) over a [`store`]; [`waker`] (actor); [`consumer`] (actor, Kafka) and
//!   [`embedded`] (actor, local log); [`dlq`], where dead letters go; [`metrics`].

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

pub mod action;
pub mod consumer;
pub mod dlq;
pub mod embedded;
pub mod entry;
pub mod handler;
pub mod lanes;
pub mod ledger;
pub mod metrics;
pub mod store;
pub mod waker;

/// A task owned by an actor's state: aborted when dropped (a killed actor leaves none behind).
#[derive(Debug)]
pub struct OwnedTask(Option<JoinHandle<()>>);

impl OwnedTask {
    /// Spawns `fut`.
    pub fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> OwnedTask {
        OwnedTask(Some(tokio::spawn(fut)))
    }

    /// Waits up to `timeout` for the task to end (then aborts it); whether it ended.
    pub async fn join(mut self, timeout: Duration) -> bool {
        let Some(mut h) = self.0.take() else {
            return true;
        };
        match tokio::time::timeout(timeout, &mut h).await {
            Ok(_) => true,
            Err(_) => {
                h.abort();
                false
            }
        }
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}
