//! `IntentPublisher`: the actor that owns the sink. It opens (and recovers) the embedded log in
//! `pre_start`, hands records to the group-commit writer and confirms each publish once its
//! records are durable. A writer failure fails the actor, so its supervisor reopens the log;
//! meanwhile readiness reports the sink as down and webhooks answer 503.

use std::path::PathBuf;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sre_intents::IntentRecord;
use sre_sink::embedded::{Log, LogOptions, Writer};
use sre_sink::SinkError;
use sre_supervision::{ActorSlot, Readiness};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::metrics::IngestMetrics;

/// The readiness condition this actor reports.
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
}

impl SinkSpec {
    /// The `sink` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            SinkSpec::Embedded { .. } => "embedded",
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
    /// Readiness, to report the sink down.
    pub readiness: Readiness,
}

/// Messages.
pub enum PublisherMsg {
    /// Make these durable; the sender learns the outcome.
    Publish(Vec<IntentRecord>, oneshot::Sender<Result<(), SinkError>>),
    /// The writer stopped after an error.
    WriterFailed(String),
}

/// Private state.
pub struct PublisherState {
    writer: Option<Writer>,
    thread: Option<std::thread::JoinHandle<()>>,
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
        let SinkSpec::Embedded { dir, options } = &args.sink;
        let (dir, options) = (dir.clone(), options.clone());
        let opened = tokio::task::spawn_blocking(move || Log::open(&dir, options)).await?;
        let log = match opened {
            Ok(log) => log,
            Err(e) => {
                let why = format!("cannot open the intent log: {e}");
                args.readiness
                    .set_condition(SINK_CONDITION, Some(why.clone()));
                return Err(why.into());
            }
        };
        tracing::info!(dir = %log.dir().display(), next_offset = log.next_offset(), "intent log open");
        let me = myself.clone();
        let (writer, thread) = Writer::spawn(log, move |why| {
            let _ = me.cast(PublisherMsg::WriterFailed(why));
        });
        args.readiness.set_condition(SINK_CONDITION, None);
        args.slot.publish(myself);
        let sink = args.sink.label();
        Ok(PublisherState {
            writer: Some(writer),
            thread: Some(thread),
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
        // Dropping the last writer lets its thread confirm what it holds and end.
        state.writer.take();
        if let Some(thread) = state.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<PublisherMsg>,
        msg: PublisherMsg,
        state: &mut PublisherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PublisherMsg::Publish(records, reply) => on_publish(state, records, reply),
            PublisherMsg::WriterFailed(why) => return on_writer_failed(state, why),
        }
        Ok(())
    }
}

fn on_publish(
    state: &PublisherState,
    records: Vec<IntentRecord>,
    reply: oneshot::Sender<Result<(), SinkError>>,
) {
    let Some(writer) = &state.writer else {
        let _ = reply.send(Err(SinkError::Closed));
        return;
    };
    let kinds: Arc<[&'static str]> = records
        .iter()
        .map(|r| r.kind().map_or("unknown", |k| k.as_str()))
        .collect();
    let started = Instant::now();
    let durable = writer.append(records);
    let metrics = state.args.metrics.clone();
    let sink = state.sink;
    tokio::spawn(async move {
        let result = durable.await.unwrap_or(Err(SinkError::Closed)).map(|_| ());
        match &result {
            Ok(()) => {
                metrics
                    .publish_duration(sink)
                    .observe(started.elapsed().as_secs_f64());
                for kind in kinds.iter() {
                    metrics.published(kind, sink).inc();
                }
            }
            Err(e) => {
                metrics.failure(sink, e.reason()).inc();
            }
        }
        let _ = reply.send(result);
    });
}

fn on_writer_failed(state: &mut PublisherState, why: String) -> Result<(), ActorProcessingErr> {
    state
        .args
        .readiness
        .set_condition(SINK_CONDITION, Some(why.clone()));
    Err(format!("intent log writer failed: {why}").into())
}
