//! Where actors other than the webhook hand their intents: the `IntentPublisher` (the
//! configured sink), or a channel (an in-process consumer, and the tests that run pollers on
//! paused time, where a sink's own threads would let the clock run ahead).

use sre_intents::IntentRecord;
use sre_supervision::ActorSlot;
use tokio::sync::{mpsc, oneshot};

use crate::ingest::publisher::PublisherMsg;

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
    pub async fn emit(&self, records: Vec<IntentRecord>) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Emitter::Publisher(slot) => {
                let publisher = slot.get().ok_or("intent sink unavailable")?;
                let (tx, rx) = oneshot::channel();
                publisher
                    .cast(PublisherMsg::Publish(records, tx))
                    .map_err(|_| "intent sink unavailable".to_string())?;
                match rx.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("intent sink failed: {e}")),
                    Err(_) => Err("intent sink stopped".into()),
                }
            }
            Emitter::Channel(tx) => tx
                .send(records)
                .map_err(|_| "intent channel closed".to_string()),
        }
    }
}
