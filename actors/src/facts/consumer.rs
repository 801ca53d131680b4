//! `KafkaFacts`: the consumer group on `facts.topic` (DESIGN §3.2, §3.3a).
//!
//! - **Client.** rdkafka `StreamConsumer`, group `facts.group_id`, brokers and security from
//!   `intents.kafka` through [`client_config`] (`facts.brokers` overriding the brokers),
//!   `enable.auto.commit=false`, `enable.auto.offset.store=false`: nothing is committed but
//!   what this actor commits.
//! - **Partitions concurrently, incidents concurrently within one.** The reading loop hands
//!   each record to its partition's worker task (created on the partition's first record,
//!   after the ledger has read that partition's entries again); a worker handles up to
//!   `facts.concurrency` facts at once with the [`FactHandler`], one at a time per key
//!   ([`lanes`](super::lanes)), so one incident's facts (one key, one partition) keep their
//!   order while a throttled incident holds up no other.
//! - **Pausing.** A partition whose every fact in hand waits for an unavailable target, with
//!   as many in hand as its lanes take ([`LaneEvent::Full`]: an outage), is paused
//!   (`consumer.pause`) and resumed when one goes on; librdkafka then fetches again after the
//!   last record handed over, so nothing is skipped. Other partitions keep going.
//! - **Bounded intake.** The loop takes no more records while the partitions that are not
//!   full hold [`HIGH_WATER`] records each on average, handed over, not handled and not
//!   waiting (librdkafka's own prefetch limits bound what it holds meanwhile); facts that wait
//!   are bounded by the lanes, and a full partition is paused, so its backlog does not grow.
//!   So a throttled partition is fed on while its throttled facts wait. A slow partition may
//!   run ahead of that average while others have room, so it does not stop their intake until
//!   the whole budget is used.
//!   (Not by pausing it: a partition paused and resumed inside a record batch is fetched again
//!   from the middle of that batch, which tansu answers with the batches after it.)
//! - **Commits.** Every `facts.commit_interval`, each partition's offset after its longest
//!   *handled* prefix is committed: a later fact handled early moves nothing past an earlier
//!   one still in hand. Never anything beyond.
//! - **Rebalance.** Before partitions are revoked, what is done for them is committed
//!   (synchronously) and their workers are abandoned (the next owner replays the fact in hand;
//!   provider keys and the ledger's revisions make that harmless). Assigned partitions get a
//!   worker on their first record.
//! - **Stop.** Stop taking facts, abandon the facts in hand, commit what is done, leave the
//!   group. The task is tied to the actor's state (aborted if the actor is killed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sre_sink::kafka::{client_config, KafkaOptions, QuietContext, Redactor};
use tokio::sync::{mpsc, watch};

use super::dlq::DeadLetters;
use super::handler::{FactHandler, HandlerParts, RawFact, WaitBoard};
use super::lanes::{self, LaneEvent};
use super::ledger::LedgerClient;
use super::metrics::FactsMetrics;
use super::OwnedTask;

/// Records handed over, not handled and not waiting, per partition that is not full, on
/// average: the loop takes no more beyond that.
pub const HIGH_WATER: usize = 256;
/// How long a graceful stop waits.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// The actor.
pub struct KafkaFacts;

/// Its arguments.
#[derive(Clone)]
pub struct KafkaFactsArgs {
    /// Brokers, security, client id.
    pub options: KafkaOptions,
    /// The facts topic.
    pub topic: String,
    /// The consumer group.
    pub group_id: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// How often handled offsets are committed.
    pub commit_interval: Duration,
    /// The algorithm's parts.
    pub parts: HandlerParts,
}

/// Messages.
#[derive(Debug)]
pub enum KafkaFactsMsg {
    /// The consumer cannot go on (fatal librdkafka error): the actor fails and is restarted.
    Failed(String),
}

/// Private state: the loop and how to stop it.
pub struct KafkaFactsState {
    stop: watch::Sender<bool>,
    task: Option<OwnedTask>,
}

/// One assigned partition as the loop sees it.
struct Part {
    generation: u64,
    tx: mpsc::UnboundedSender<RawFact>,
    backlog: usize,
    /// Of the backlog, facts that wait for an unavailable target ([`LaneEvent::Waits`]).
    waits: usize,
    /// The offset after the longest handled prefix (what to commit).
    done: Option<i64>,
    committed: Option<i64>,
    /// Every fact in hand waits (on the board).
    waiting: bool,
    /// Waiting with as many facts in hand as the lanes take ([`LaneEvent::Full`]): paused.
    full: bool,
    paused: bool,
    _worker: OwnedTask,
}

/// What the loop and the rebalance callbacks share.
struct Shared {
    topic: String,
    parts: Mutex<HashMap<i32, Part>>,
    /// The partitions assigned now (some may have no record yet).
    assigned: Mutex<std::collections::BTreeSet<i32>>,
    ledger: LedgerClient,
    metrics: FactsMetrics,
    board: WaitBoard,
}

/// librdkafka's callbacks: logs (quietly, redacted), rebalances and commit results.
struct FactsContext {
    quiet: QuietContext,
    shared: Arc<Shared>,
}

impl ClientContext for FactsContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.quiet.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.quiet.error(error, reason);
    }
}

impl ConsumerContext for FactsContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let s = &self.shared;
        let revoked: Vec<i32> = tpl
            .elements_for_topic(&s.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        {
            let mut assigned = s.assigned.lock().expect("assigned");
            for p in &revoked {
                assigned.remove(p);
            }
        }
        let (commit, paused) = {
            let mut parts = s.parts.lock().expect("partitions");
            let mut commit = TopicPartitionList::new();
            let mut paused = TopicPartitionList::new();
            for p in &revoked {
                if let Some(part) = parts.remove(p) {
                    if let Some(done) = part.done.filter(|d| part.committed != Some(*d)) {
                        let _ = commit.add_partition_offset(&s.topic, *p, Offset::Offset(done));
                    }
                    if part.paused {
                        paused.add_partition(&s.topic, *p);
                        s.metrics.paused().dec();
                    }
                    // Dropping the part aborts its worker: the facts in hand are abandoned.
                    if part.waiting {
                        s.board.set(*p, None);
                    }
                }
                s.metrics.forget_lag(*p);
            }
            (commit, paused)
        };
        // librdkafka keeps a partition's pause across a revoke: one assigned again later
        // must not come back paused with nobody to resume it.
        if paused.count() > 0 {
            if let Err(e) = consumer.resume(&paused) {
                tracing::warn!(error = %e, "facts: resuming revoked partitions failed");
            }
        }
        if commit.count() > 0 {
            match consumer.commit(&commit, CommitMode::Sync) {
                Ok(()) => {
                    tracing::info!(partitions = ?revoked, "facts partitions revoked: handled offsets committed")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "facts partitions revoked: commit failed (the next owner replays)")
                }
            }
        } else {
            tracing::info!(partitions = ?revoked, "facts partitions revoked");
        }
        s.ledger.revoke(revoked);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let ps: Vec<i32> = tpl
                    .elements_for_topic(&self.shared.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                tracing::info!(partitions = ?ps, "facts partitions assigned");
                self.shared.assigned.lock().expect("assigned").extend(ps);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "facts consumer rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "facts offset commit failed (retried at the next interval)");
            return;
        }
        let mut parts = self.shared.parts.lock().expect("partitions");
        for e in offsets.elements_for_topic(&self.shared.topic) {
            if let (Some(part), Offset::Offset(o)) = (parts.get_mut(&e.partition()), e.offset()) {
                part.committed = Some(o);
            }
        }
    }
}

/// What a worker tells the loop: its partition's [`LaneEvent`].
struct Event {
    partition: i32,
    generation: u64,
    lane: LaneEvent,
}

type Client = StreamConsumer<FactsContext>;

/// What the loop does next.
enum Next {
    Stop,
    Event(Event),
    Commit,
    Lag,
    Record(RawFact),
    Error(String),
}

fn create(args: &KafkaFactsArgs, shared: Arc<Shared>) -> Result<(Client, Redactor), String> {
    let o = &args.options;
    let (mut c, r) = client_config(&o.brokers, &o.security, &o.secrets, &o.properties)
        .map_err(|e| e.to_string())?;
    c.set("client.id", format!("{}-facts", o.client_id))
        .set("group.id", &args.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    let consumer: Client = c
        .create_with_context(FactsContext {
            quiet: QuietContext::new(r.clone()),
            shared,
        })
        .map_err(|e| r.redact(&e.to_string()))?;
    consumer
        .subscribe(&[&args.topic])
        .map_err(|e| r.redact(&e.to_string()))?;
    Ok((consumer, r))
}

impl Actor for KafkaFacts {
    type Msg = KafkaFactsMsg;
    type State = KafkaFactsState;
    type Arguments = KafkaFactsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<KafkaFactsMsg>,
        args: KafkaFactsArgs,
    ) -> Result<KafkaFactsState, ActorProcessingErr> {
        let dlq = DeadLetters::kafka(&args.options, &args.dead_letter_topic)?;
        let shared = Arc::new(Shared {
            topic: args.topic.clone(),
            parts: Mutex::default(),
            assigned: Mutex::default(),
            ledger: args.parts.ledger.clone(),
            metrics: args.parts.metrics.clone(),
            board: args.parts.board.clone(),
        });
        let (consumer, redactor) = create(&args, shared.clone())?;
        tracing::info!(topic = %args.topic, group = %args.group_id, "facts consumer subscribed");
        let handler = Arc::new(FactHandler::new(args.parts.clone(), dlq));
        let (stop, stopped) = watch::channel(false);
        let task = OwnedTask::spawn(run(
            Arc::new(consumer),
            redactor,
            shared,
            handler,
            args.commit_interval,
            stopped,
            myself,
        ));
        Ok(KafkaFactsState {
            stop,
            task: Some(task),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<KafkaFactsMsg>,
        state: &mut KafkaFactsState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.stop.send(true);
        if let Some(task) = state.task.take() {
            if !task.join(STOP_TIMEOUT).await {
                tracing::warn!("facts consumer did not stop in time");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<KafkaFactsMsg>,
        msg: KafkaFactsMsg,
        _state: &mut KafkaFactsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            KafkaFactsMsg::Failed(why) => Err(format!("facts consumer failed: {why}").into()),
        }
    }
}

fn raw_of(m: &BorrowedMessage<'_>) -> RawFact {
    RawFact {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

fn one(topic: &str, partition: i32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    tpl
}

/// The commits due: every partition whose handled offset moved past the committed one.
fn due_commits(shared: &Shared) -> TopicPartitionList {
    let parts = shared.parts.lock().expect("partitions");
    let mut tpl = TopicPartitionList::new();
    for (p, part) in parts.iter() {
        if let Some(done) = part.done.filter(|d| part.committed != Some(*d)) {
            let _ = tpl.add_partition_offset(&shared.topic, *p, Offset::Offset(done));
        }
    }
    tpl
}

#[allow(clippy::too_many_arguments)]
async fn run(
    consumer: Arc<Client>,
    redactor: Redactor,
    shared: Arc<Shared>,
    handler: Arc<FactHandler>,
    commit_interval: Duration,
    mut stop: watch::Receiver<bool>,
    myself: ActorRef<KafkaFactsMsg>,
) {
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut commit_tick = tokio::time::interval(commit_interval);
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lag_tick = tokio::time::interval(LAG_EVERY);
    lag_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut generation = 0u64;
    let topic = shared.topic.clone();
    loop {
        let full = intake_full(&shared);
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => Next::Stop,
            Some(ev) = events.recv() => Next::Event(ev),
            _ = commit_tick.tick() => Next::Commit,
            _ = lag_tick.tick() => Next::Lag,
            m = consumer.recv(), if !full => match m {
                Ok(m) => Next::Record(raw_of(&m)),
                Err(e) => Next::Error(redactor.redact(&e.to_string())),
            },
        };
        match next {
            Next::Stop => break,
            Next::Event(ev) => on_event(&consumer, &shared, ev),
            Next::Commit => {
                let tpl = due_commits(&shared);
                if tpl.count() > 0 {
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                        tracing::warn!(error = %redactor.redact(&e.to_string()), "facts offset commit failed");
                    }
                }
            }
            Next::Lag => measure_lag(&consumer, &shared).await,
            Next::Record(raw) => {
                generation += 1;
                dispatch(&shared, &handler, &events_tx, raw, generation);
            }
            Next::Error(e) => {
                tracing::warn!(error = %e, "facts consumer error");
                if let Some((code, why)) = consumer.client().fatal_error() {
                    let _ = myself.cast(KafkaFactsMsg::Failed(
                        redactor.redact(&format!("{code:?}: {why}")),
                    ));
                    break;
                }
            }
        }
    }
    // Stop: abandon the facts in hand, commit what is done, leave the group.
    let tpl = due_commits(&shared);
    let parts: Vec<(i32, Part)> = shared.parts.lock().expect("partitions").drain().collect();
    for (p, part) in &parts {
        if part.waiting {
            shared.board.set(*p, None);
        }
        if part.paused {
            shared.metrics.paused().dec();
        }
    }
    drop(parts);
    // Closing the consumer blocks (it leaves the group): done off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || {
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                tracing::warn!(error = %e, "facts: final commit failed (the next owner replays)");
            }
        }
        drop(consumer);
    })
    .await;
    tracing::info!(topic = %topic, "facts consumer stopped");
}

fn on_event(consumer: &Client, shared: &Shared, ev: Event) {
    let mut parts = shared.parts.lock().expect("partitions");
    let Some(part) = parts
        .get_mut(&ev.partition)
        .filter(|p| p.generation == ev.generation)
    else {
        return; // a revoked partition's late word
    };
    match ev.lane {
        LaneEvent::Handled { count, next } => {
            part.done = Some(next);
            part.backlog = part.backlog.saturating_sub(count);
        }
        LaneEvent::Waiting(on) => part.waiting = on,
        LaneEvent::Waits(n) => part.waits = n,
        LaneEvent::Full(on) => {
            part.full = on;
            let (topic, metrics) = (&shared.topic, &shared.metrics);
            set_paused(consumer, topic, metrics, ev.partition, part, on);
        }
    }
}

fn set_paused(
    consumer: &Client,
    topic: &str,
    metrics: &FactsMetrics,
    partition: i32,
    part: &mut Part,
    paused: bool,
) {
    if part.paused == paused {
        return;
    }
    let tpl = one(topic, partition);
    let r = if paused {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    match r {
        Ok(()) => {
            part.paused = paused;
            metrics.paused().inc_by(if paused { 1 } else { -1 });
            tracing::debug!(partition, paused, "facts partition pause state");
        }
        Err(e) => tracing::warn!(partition, error = %e, "facts partition pause/resume failed"),
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    handler: &Arc<FactHandler>,
    events: &mpsc::UnboundedSender<Event>,
    raw: RawFact,
    generation: u64,
) {
    let partition = raw.partition;
    let mut parts = shared.parts.lock().expect("partitions");
    let part = parts.entry(partition).or_insert_with(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = OwnedTask::spawn(worker(
            partition,
            generation,
            rx,
            handler.clone(),
            events.clone(),
        ));
        Part {
            generation,
            tx,
            backlog: 0,
            waits: 0,
            done: None,
            committed: None,
            waiting: false,
            full: false,
            paused: false,
            _worker: worker,
        }
    });
    part.backlog += 1;
    let _ = part.tx.send(raw);
}

/// Whether the assigned partitions that are not full hold [`HIGH_WATER`] records each on
/// average, handed over, not handled and not waiting.
fn intake_full(shared: &Shared) -> bool {
    let assigned = shared.assigned.lock().expect("assigned").len();
    let parts = shared.parts.lock().expect("partitions");
    let (full, backlog) = parts.values().fold((0, 0), |(w, b), p| {
        if p.full {
            (w + 1, b)
        } else {
            // Facts that wait (a throttle's `Retry-After`) take no place in the lanes, nor
            // here: a throttled partition is fed on, within the lanes' own bound.
            (w, b + p.backlog.saturating_sub(p.waits))
        }
    });
    backlog >= HIGH_WATER * assigned.saturating_sub(full).max(1)
}

async fn worker(
    partition: i32,
    generation: u64,
    rx: mpsc::UnboundedReceiver<RawFact>,
    handler: Arc<FactHandler>,
    events: mpsc::UnboundedSender<Event>,
) {
    // Own the partition's ledger entries (read again: another replica may have written them).
    let parts = handler.parts();
    let mut attempt = 0;
    while let Err(e) = parts.ledger.assign(vec![partition]).await {
        attempt += 1;
        let wait = parts.backoff.wait(attempt);
        tracing::warn!(partition, error = %e, wait_ms = wait.as_millis() as u64, "facts partition waits for the ledger");
        parts.board.set(partition, Some(e.to_string()));
        tokio::time::sleep(wait).await;
    }
    if attempt > 0 {
        parts.board.set(partition, None);
    }
    let limit = parts.concurrency;
    let board = parts.board.clone();
    lanes::run(
        partition,
        limit,
        rx,
        lanes::handler_fn(handler),
        Some(board),
        move |lane| {
            let _ = events.send(Event {
                partition,
                generation,
                lane,
            });
        },
    )
    .await;
}

async fn measure_lag(consumer: &Arc<Client>, shared: &Arc<Shared>) {
    let positions: Vec<(i32, Option<i64>)> = shared
        .parts
        .lock()
        .expect("partitions")
        .iter()
        .map(|(p, part)| (*p, part.done))
        .collect();
    if positions.is_empty() {
        return;
    }
    let (c, s) = (consumer.clone(), shared.clone());
    let _ = tokio::task::spawn_blocking(move || {
        for (p, done) in positions {
            if let Ok((low, high)) = c.fetch_watermarks(&s.topic, p, Duration::from_secs(2)) {
                s.metrics.lag(p, high - done.unwrap_or(low));
            }
        }
    })
    .await;
}
