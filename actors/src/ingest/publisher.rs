//! `IntentPublisher`: the actor that owns the open sink.
//!
//! It opens the configured [`Sink`] in `pre_start` (the embedded log is recovered and locked,
//! a Kafka producer created) and hands every publish to its [`SinkWriter`], confirming each once
//! its records are durable. When the sink cannot go on (the embedded writer stopped after an
//! I/O error, a librdkafka fatal error) the actor fails, so its supervisor opens it afresh.
//!
//! The writer lives in the actor's state: a killed actor (ractor runs no `post_stop` then) still
//! drops it, which ends the embedded writer thread and releases the log's lock — the next
//! publisher waits for that lock rather than writing beside the old one.
//!
//! Sink trouble is shown in the readiness report's `degraded` detail (the webhook answers 503
//! meanwhile); it does not take the process out of rotation, since AlertManager retries either
//! way. [`rebuild_from`] adapts the same sink to the dedup window's rebuild.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sre_intents::IntentRecord;
use sre_sink::{Sink, SinkError, SinkWriter};
use sre_supervision::{ActorSlot, Readiness};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::dedup::Rebuild;
use super::metrics::IngestMetrics;

/// The readiness detail this actor reports.
pub const SINK_CONDITION: &str = "intent sink";

/// How long a graceful stop waits for the sink to confirm what it holds.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The actor.
pub struct IntentPublisher;

/// Its arguments.
#[derive(Clone)]
pub struct PublisherArgs {
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// Where callers find it.
    pub slot: ActorSlot<PublisherMsg>,
    /// Metrics.
    pub metrics: IngestMetrics,
    /// Readiness, to report the sink's trouble.
    pub readiness: Readiness,
}

/// Messages.
pub enum PublisherMsg {
    /// Make these durable; the sender learns the outcome.
    Publish(Vec<IntentRecord>, oneshot::Sender<Result<(), SinkError>>),
    /// The sink cannot go on (embedded writer stopped, Kafka producer fatal error).
    SinkFailed(String),
}

/// Private state. Dropping it drops the writer (see the module docs).
pub struct PublisherState {
    writer: Box<dyn SinkWriter>,
    args: PublisherArgs,
    sink: &'static str,
}

impl Actor for IntentPublisher {
    type Msg = PublisherMsg;
    type State = PublisherState;
    type Arguments = PublisherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PublisherMsg>,
        args: PublisherArgs,
    ) -> Result<PublisherState, ActorProcessingErr> {
        let sink = args.sink.clone();
        let me = myself.clone();
        let on_fatal: sre_sink::OnFatal = Arc::new(move |why| {
            let _ = me.cast(PublisherMsg::SinkFailed(why));
        });
        let opened = tokio::task::spawn_blocking(move || sink.open(on_fatal))
            .await
            .unwrap_or(Err(SinkError::Closed));
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                let why = format!("cannot open the intent sink: {e}");
                args.readiness
                    .set_degraded(SINK_CONDITION, Some(why.clone()));
                return Err(why.into());
            }
        };
        args.metrics
            .log_recovered_bytes()
            .inc_by(opened.recovered_bytes);
        args.metrics
            .log_skipped_lines("open")
            .inc_by(opened.skipped_lines);
        args.readiness.set_degraded(SINK_CONDITION, None);
        args.slot.publish(myself);
        let sink = args.sink.label();
        Ok(PublisherState {
            writer: opened.writer,
            args,
            sink,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<PublisherMsg>,
        state: &mut PublisherState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.slot.clear(&myself);
        if let Err(e) = state.writer.flush(FLUSH_TIMEOUT).await {
            tracing::warn!(error = %e, "the intent sink did not confirm everything before stopping");
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<PublisherMsg>,
        msg: PublisherMsg,
        state: &mut PublisherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PublisherMsg::Publish(records, reply) => on_publish(state, records, reply),
            PublisherMsg::SinkFailed(why) => return on_sink_failed(&myself, state, why),
        }
        Ok(())
    }
}

fn on_publish(
    state: &PublisherState,
    records: Vec<IntentRecord>,
    reply: oneshot::Sender<Result<(), SinkError>>,
) {
    let kinds: Arc<[&'static str]> = records
        .iter()
        .map(|r| r.kind().map_or("unknown", |k| k.as_str()))
        .collect();
    let (metrics, readiness, sink) = (
        state.args.metrics.clone(),
        state.args.readiness.clone(),
        state.sink,
    );
    let started = Instant::now();
    let pending = state.writer.append(records);
    tokio::spawn(async move {
        let result = pending.await;
        match &result {
            Ok(()) => {
                metrics
                    .publish_duration(sink)
                    .observe(started.elapsed().as_secs_f64());
                for kind in kinds.iter() {
                    metrics.published(kind, sink).inc();
                }
                readiness.set_degraded(SINK_CONDITION, None);
            }
            Err(e) => {
                metrics.failure(sink, e.reason()).inc();
                readiness.set_degraded(SINK_CONDITION, Some(e.to_string()));
            }
        }
        let _ = reply.send(result);
    });
}

fn on_sink_failed(
    _myself: &ActorRef<PublisherMsg>,
    state: &mut PublisherState,
    why: String,
) -> Result<(), ActorProcessingErr> {
    state
        .args
        .readiness
        .set_degraded(SINK_CONDITION, Some(why.clone()));
    Err(format!("intent sink failed: {why}").into())
}

/// The dedup window's rebuild from `sink`'s recent keys; unreadable lines skipped on the way
/// are counted in `sre_intent_log_skipped_lines_total{reader="rebuild"}`.
pub fn rebuild_from(sink: Arc<dyn Sink>, metrics: IngestMetrics) -> Rebuild {
    Arc::new(move |window| {
        let recent = sink.recent_keys(window).map_err(|e| e.to_string())?;
        metrics
            .log_skipped_lines("rebuild")
            .inc_by(recent.skipped_lines);
        Ok(recent.keys)
    })
}
