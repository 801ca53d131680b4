//! `IntentPublisher`: the actor that owns the sink.
//!
//! - **embedded**: opens (and recovers) the log in `pre_start` and hands records to the
//!   group-commit writer; a writer failure fails the actor, so its supervisor reopens the log.
//! - **kafka**: creates the idempotent producer in `pre_start` and awaits the delivery reports of
//!   every publish; a librdkafka fatal error fails the actor, so the producer is recreated.
//!
//! Each publish is confirmed only once its records are durable. Sink trouble is shown in the
//! readiness report's `degraded` detail (the webhook answers 503 meanwhile); it does not take
//! the process out of rotation, since AlertManager retries either way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sre_intents::IntentRecord;
use sre_sink::embedded::{Log, LogOptions, Writer};
use sre_sink::kafka::{KafkaOptions, KafkaSink};
use sre_sink::SinkError;
use sre_supervision::{ActorSlot, Readiness};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::metrics::IngestMetrics;

/// The readiness detail this actor reports.
pub const SINK_CONDITION: &str = "intent sink";

/// Which sink and how to open it.
#[derive(Clone, Debug)]
pub enum SinkSpec {
    /// The embedded log in this directory.
    Embedded {
        /// `<data_dir>/<topic>`.
        dir: PathBuf,
        /// Rotation and retention.
        options: LogOptions,
    },
    /// Kafka.
    Kafka(KafkaOptions),
}

impl SinkSpec {
    /// The `sink` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            SinkSpec::Embedded { .. } => "embedded",
            SinkSpec::Kafka(_) => "kafka",
        }
    }
}

/// The actor.
pub struct IntentPublisher;

/// Its arguments.
#[derive(Clone)]
pub struct PublisherArgs {
    /// The sink.
    pub sink: SinkSpec,
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

/// The open sink.
enum Open {
    Embedded {
        writer: Option<Writer>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    Kafka(Arc<KafkaSink>),
}

/// Private state.
pub struct PublisherState {
    open: Open,
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
        let open = match &args.sink {
            SinkSpec::Embedded { dir, options } => {
                open_embedded(&myself, dir.clone(), options.clone()).await
            }
            SinkSpec::Kafka(options) => KafkaSink::new(options)
                .map(|s| Open::Kafka(Arc::new(s)))
                .map_err(|e| format!("cannot create the Kafka producer: {e}")),
        };
        let open = match open {
            Ok(o) => o,
            Err(why) => {
                args.readiness
                    .set_degraded(SINK_CONDITION, Some(why.clone()));
                return Err(why.into());
            }
        };
        args.readiness.set_degraded(SINK_CONDITION, None);
        args.slot.publish(myself);
        let sink = args.sink.label();
        Ok(PublisherState { open, args, sink })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<PublisherMsg>,
        state: &mut PublisherState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.slot.clear(&myself);
        match &mut state.open {
            Open::Embedded { writer, thread } => {
                // Dropping the last writer lets its thread confirm what it holds and end.
                writer.take();
                if let Some(thread) = thread.take() {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
            Open::Kafka(sink) => {
                let sink = sink.clone();
                let _ =
                    tokio::task::spawn_blocking(move || sink.flush(Duration::from_secs(10))).await;
            }
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
            PublisherMsg::Publish(records, reply) => on_publish(&myself, state, records, reply),
            PublisherMsg::SinkFailed(why) => return on_sink_failed(state, why),
        }
        Ok(())
    }
}

async fn open_embedded(
    myself: &ActorRef<PublisherMsg>,
    dir: PathBuf,
    options: LogOptions,
) -> Result<Open, String> {
    let log = tokio::task::spawn_blocking(move || Log::open(&dir, options))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot open the intent log: {e}"))?;
    tracing::info!(dir = %log.dir().display(), next_offset = log.next_offset(), "intent log open");
    let me = myself.clone();
    let (writer, thread) = Writer::spawn(log, move |why| {
        let _ = me.cast(PublisherMsg::SinkFailed(why));
    });
    Ok(Open::Embedded {
        writer: Some(writer),
        thread: Some(thread),
    })
}

fn on_publish(
    myself: &ActorRef<PublisherMsg>,
    state: &PublisherState,
    records: Vec<IntentRecord>,
    reply: oneshot::Sender<Result<(), SinkError>>,
) {
    let kinds: Arc<[&'static str]> = records
        .iter()
        .map(|r| r.kind().map_or("unknown", |k| k.as_str()))
        .collect();
    let (metrics, readiness, sink, me) = (
        state.args.metrics.clone(),
        state.args.readiness.clone(),
        state.sink,
        myself.clone(),
    );
    let started = Instant::now();
    let pending: futures::future::BoxFuture<'static, Result<(), SinkError>> = match &state.open {
        Open::Embedded {
            writer: Some(w), ..
        } => {
            let durable = w.append(records);
            Box::pin(async move { durable.await.unwrap_or(Err(SinkError::Closed)).map(|_| ()) })
        }
        Open::Embedded { writer: None, .. } => Box::pin(async { Err(SinkError::Closed) }),
        Open::Kafka(k) => {
            let k = k.clone();
            Box::pin(async move {
                let result = k.send(&records).await;
                if let (Err(_), Some(fatal)) = (&result, k.fatal_error()) {
                    let _ = me.cast(PublisherMsg::SinkFailed(fatal));
                }
                result
            })
        }
    };
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

fn on_sink_failed(state: &mut PublisherState, why: String) -> Result<(), ActorProcessingErr> {
    state
        .args
        .readiness
        .set_degraded(SINK_CONDITION, Some(why.clone()));
    Err(format!("intent sink failed: {why}").into())
}
