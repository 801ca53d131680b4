//! Where actors hand their intents: the `IntentPublisher` (the configured sink), or a channel
//! (an in-process consumer, and the tests that run pollers on paused time, where a sink's own
//! threads would let the clock run ahead). [`EmitError`] is the typed error of the whole emit
//! path (claim, publish, settle: see [`crate::ingest::claim`]).

use std::time::Duration;

use sre_intents::IntentRecord;
use sre_sink::SinkError;
use sre_supervision::ActorSlot;
use tokio::sync::{mpsc, oneshot};

use crate::ingest::dedup::ClaimRefused;
use crate::ingest::publisher::PublisherMsg;

/// Why intents were not made durable (or not claimed).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmitError {
    /// The dedup actor is not running (restarting) or did not answer.
    #[error("deduplication unavailable")]
    DedupUnavailable,
    /// The dedup actor refused the claim.
    #[error(transparent)]
    Refused(#[from] ClaimRefused),
    /// The publisher actor is not running (restarting).
    #[error("intent sink unavailable")]
    SinkUnavailable,
    /// The sink failed the records.
    #[error("intent sink failed: {0}")]
    Sink(#[from] SinkError),
    /// The publisher stopped before answering.
    #[error("intent sink stopped before confirming")]
    SinkStopped,
    /// Not confirmed within the deadline (the write may still complete).
    #[error("intents not durable within {0:?}")]
    Timeout(Duration),
    /// The in-process consumer is gone.
    #[error("intent channel closed")]
    ChannelClosed,
    /// A record could not be built.
    #[error("cannot encode an intent: {0}")]
    Encode(String),
    /// Every key was being published by another producer, and none of those publishes
    /// became durable: still owed.
    #[error("a concurrent publish of the same intents did not become durable")]
    Undecided,
    /// A component on the way (the alert router) is unavailable.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
}

impl EmitError {
    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EmitError::DedupUnavailable => "dedup_unavailable",
            EmitError::Refused(ClaimRefused::WindowFull { .. }) => "window_full",
            EmitError::SinkUnavailable | EmitError::SinkStopped => "sink_unavailable",
            EmitError::Sink(e) => e.reason(),
            EmitError::Timeout(_) => "timeout",
            EmitError::ChannelClosed => "closed",
            EmitError::Encode(_) => "encode",
            EmitError::Undecided => "undecided",
            EmitError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<serde_json::Error> for EmitError {
    fn from(e: serde_json::Error) -> Self {
        EmitError::Encode(e.to_string())
    }
}

/// A destination for intents. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Emitter {
    /// The publisher actor: confirmed once durable.
    Publisher(ActorSlot<PublisherMsg>),
    /// A channel: confirmed once queued.
    Channel(mpsc::UnboundedSender<Vec<IntentRecord>>),
}

impl Emitter {
    /// Hands over `records`; `Ok` once they are durable (publisher) or queued (channel).
    pub async fn emit(&self, records: Vec<IntentRecord>) -> Result<(), EmitError> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Emitter::Publisher(slot) => {
                let publisher = slot.get().ok_or(EmitError::SinkUnavailable)?;
                let (tx, rx) = oneshot::channel();
                publisher
                    .cast(PublisherMsg::Publish(records, tx))
                    .map_err(|_| EmitError::SinkUnavailable)?;
                match rx.await {
                    Ok(result) => result.map_err(EmitError::Sink),
                    Err(_) => Err(EmitError::SinkStopped),
                }
            }
            Emitter::Channel(tx) => tx.send(records).map_err(|_| EmitError::ChannelClosed),
        }
    }
}
