//! `IncidentLedger`: the actor that owns every incident's [`IncidentEntry`] (DESIGN §3.3b).
//!
//! It opens its [`LedgerStore`] in `pre_start` (the local log recovered, or the Kafka topic
//! read to its end) and holds the live entries in memory. Every change is written whole and
//! the caller hears back only once it is durable, so the consumer commits an offset only after
//! the ledger has what the fact did. Changes are applied to one incident at a time inside the
//! actor (a target's record, or the fact's completion), so a deferred wake-up and a fact never
//! overwrite each other's record.
//!
//! - **Due index.** Target records with `due` are indexed by time; the
//!   [`DueWaker`](super::waker) asks for those due and is woken when a new due time appears.
//! - **Ownership (Kafka).** Entries are written to the facts partition their incident comes
//!   from; when the consumer is assigned a partition, the ledger reads that partition of the
//!   topic again (another replica may have written it), and only owned partitions' dues fire.
//! - **Retention.** Every hour (and at start), resolved or closed incidents unchanged for
//!   `facts.ledger_retention` are forgotten (a tombstone on Kafka, a `null` line locally).
//! - **Compaction (local).** Past the bound, the log is rewritten with the live entries only.
//!
//! When the local log's writer fails the actor fails, and its supervisor reopens the log.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sre_intents::facts::Fact;
use sre_supervision::ActorSlot;
use tokio::sync::oneshot;

use super::action::FactAction;
use super::entry::{IncidentEntry, Lifecycle, TargetRecord};
use super::metrics::FactsMetrics;
use super::store::{LedgerError, LedgerStore, Loaded};
use super::waker::WakerMsg;
use crate::sli::scheduler::Clock;
use crate::timer::Timer;

/// How often finished incidents past retention are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Longest a sweep waits for its tombstones to be durable.
const SWEEP_WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a caller waits for the ledger to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes the store afresh for every (re)start.
pub type StoreFactory = Arc<dyn Fn() -> LedgerStore + Send + Sync>;

/// The actor.
pub struct IncidentLedger;

/// Its arguments.
#[derive(Clone)]
pub struct LedgerArgs {
    /// The store.
    pub store: StoreFactory,
    /// Where callers find it.
    pub slot: ActorSlot<LedgerMsg>,
    /// The waker to tell of new due times.
    pub waker: ActorSlot<WakerMsg>,
    /// Finished incidents are forgotten this long after their last change.
    pub retention: Duration,
    /// Time.
    pub clock: Clock,
    /// Metrics.
    pub metrics: FactsMetrics,
    /// The fact targets, shown every entry loaded and written ([`FactAction::observe`]).
    pub targets: Arc<[Arc<dyn FactAction>]>,
}

/// What a fact's completion sets on its entry.
#[derive(Clone, Debug)]
pub struct Completion {
    /// The incident.
    pub incident_id: String,
    /// The fact's revision.
    pub revision: u64,
    /// Its `ce_id`.
    pub ce_id: String,
    /// The lifecycle after it.
    pub lifecycle: Lifecycle,
    /// `IncidentCreated`'s fields.
    pub created: Option<sre_intents::facts::Created>,
}

impl Completion {
    /// The completion of `fact`.
    pub fn of(fact: &Fact) -> Completion {
        Completion {
            incident_id: fact.incident_id.clone(),
            revision: fact.revision,
            ce_id: fact.ce_id.clone(),
            lifecycle: Lifecycle::after(fact),
            created: fact.created().cloned(),
        }
    }
}

type Reply = oneshot::Sender<Result<(), LedgerError>>;

/// A due record: the incident's entry and the target's name.
pub type DueRecord = (IncidentEntry, String);

/// Messages.
pub enum LedgerMsg {
    /// The incident's entry (an empty one when unknown).
    Get(String, oneshot::Sender<IncidentEntry>),
    /// Sets one target's record; answered once durable.
    PutTarget {
        /// The incident.
        incident_id: String,
        /// The facts partition it comes from (`None`: the one the entry has).
        partition: Option<i32>,
        /// The target.
        target: String,
        /// Its record.
        record: TargetRecord,
        /// Durable or failed.
        reply: Reply,
    },
    /// Marks a fact applied on its entry; answered once durable.
    Complete(Completion, i32, Reply),
    /// Records due at or before the time (owned partitions only), and the next due time after.
    Due(
        DateTime<Utc>,
        oneshot::Sender<(Vec<DueRecord>, Option<DateTime<Utc>>)>,
    ),
    /// Partitions assigned to this consumer: read them again (Kafka) and own them.
    Assign(Vec<i32>, Reply),
    /// Partitions revoked.
    Revoke(Vec<i32>),
    /// Forget finished incidents past retention.
    Sweep,
    /// The store cannot go on.
    StoreFailed(String),
}

/// Private state.
pub struct LedgerState {
    store: Option<LedgerStore>,
    entries: HashMap<String, (IncidentEntry, i32)>,
    due: BTreeSet<(DateTime<Utc>, String, String)>,
    /// `None`: every partition (the local ledger, one consumer).
    owned: Option<HashSet<i32>>,
    sweep: Timer<LedgerMsg>,
    args: LedgerArgs,
}

fn dues(e: &IncidentEntry) -> impl Iterator<Item = (DateTime<Utc>, String, String)> + '_ {
    e.targets
        .iter()
        .filter_map(|(t, r)| r.due.map(|d| (d, e.incident_id.clone(), t.clone())))
}

impl LedgerState {
    fn replace(&mut self, entry: Option<IncidentEntry>, id: &str, partition: i32) {
        if let Some((old, _)) = self.entries.remove(id) {
            for d in dues(&old) {
                self.due.remove(&d);
            }
        }
        if let Some(e) = entry {
            for t in self.args.targets.iter() {
                t.observe(&e);
            }
            self.due.extend(dues(&e));
            self.entries.insert(id.to_owned(), (e, partition));
        }
        self.args.metrics.entries().set(self.entries.len() as i64);
        self.args.metrics.deferred().set(self.due.len() as i64);
    }

    fn load(&mut self, loaded: Loaded) {
        self.entries.clear();
        self.due.clear();
        for (id, (e, p)) in loaded.entries {
            self.replace(Some(e), &id, p);
        }
        self.args.metrics.entries().set(self.entries.len() as i64);
        self.args.metrics.deferred().set(self.due.len() as i64);
    }

    fn owns(&self, partition: i32) -> bool {
        self.owned.as_ref().is_none_or(|o| o.contains(&partition))
    }

    /// Writes the incident's current entry (or its absence) and answers `reply` once durable.
    fn write(&mut self, id: &str, reply: Option<Reply>) {
        let (entry, partition) = match self.entries.get(id) {
            Some((e, p)) => (Some(e.clone()), *p),
            None => (None, 0),
        };
        let Some(store) = self.store.as_mut() else {
            if let Some(r) = reply {
                let _ = r.send(Err(LedgerError::Unavailable("compacting".into())));
            }
            return;
        };
        let written = store.write(id, partition, entry.as_ref());
        let id = id.to_owned();
        tokio::spawn(async move {
            let result = written.await;
            if let Err(e) = &result {
                tracing::warn!(incident = %id, error = %e, "incident ledger write failed");
            }
            if let Some(r) = reply {
                let _ = r.send(result);
            }
        });
    }
}

impl Actor for IncidentLedger {
    type Msg = LedgerMsg;
    type State = LedgerState;
    type Arguments = LedgerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LedgerMsg>,
        args: LedgerArgs,
    ) -> Result<LedgerState, ActorProcessingErr> {
        let mut store = (args.store)();
        let me = myself.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let loaded = store.open(move |why| {
                let _ = me.cast(LedgerMsg::StoreFailed(why));
            });
            (store, loaded)
        })
        .await?;
        let (store, loaded) = opened;
        let loaded = loaded.map_err(|e| {
            tracing::error!(error = %e, "cannot open the incident ledger");
            e
        })?;
        args.metrics.skipped_lines().inc_by(loaded.skipped_lines);
        args.metrics
            .recovered_bytes()
            .inc_by(loaded.recovered_bytes);
        let owned = store.is_kafka().then(HashSet::new);
        let mut state = LedgerState {
            store: Some(store),
            entries: HashMap::new(),
            due: BTreeSet::new(),
            owned,
            sweep: Timer::default(),
            args,
        };
        state.load(loaded);
        tracing::info!(
            entries = state.entries.len(),
            deferred = state.due.len(),
            "incident ledger open"
        );
        state.args.slot.publish(myself.clone());
        let _ = myself.cast(LedgerMsg::Sweep);
        if let Some(w) = state.args.waker.get() {
            let _ = w.cast(WakerMsg::Wake);
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<LedgerMsg>,
        state: &mut LedgerState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.slot.clear(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<LedgerMsg>,
        msg: LedgerMsg,
        state: &mut LedgerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LedgerMsg::Get(id, reply) => on_get(state, id, reply),
            LedgerMsg::PutTarget {
                incident_id,
                partition,
                target,
                record,
                reply,
            } => on_put_target(state, incident_id, partition, target, record, reply),
            LedgerMsg::Complete(c, partition, reply) => on_complete(state, c, partition, reply),
            LedgerMsg::Due(now, reply) => on_due(state, now, reply),
            LedgerMsg::Assign(partitions, reply) => on_assign(state, partitions, reply).await,
            LedgerMsg::Revoke(partitions) => on_revoke(state, partitions),
            LedgerMsg::Sweep => on_sweep(&myself, state).await,
            LedgerMsg::StoreFailed(why) => {
                return Err(format!("incident ledger failed: {why}").into())
            }
        }
        maybe_compact(&myself, state).await
    }
}

fn on_get(state: &LedgerState, id: String, reply: oneshot::Sender<IncidentEntry>) {
    let entry = state
        .entries
        .get(&id)
        .map(|(e, _)| e.clone())
        .unwrap_or_else(|| IncidentEntry::new(id));
    let _ = reply.send(entry);
}

fn on_put_target(
    state: &mut LedgerState,
    id: String,
    partition: Option<i32>,
    target: String,
    record: TargetRecord,
    reply: Reply,
) {
    let now = (state.args.clock)();
    let partition = partition
        .or_else(|| state.entries.get(&id).map(|(_, p)| *p))
        .unwrap_or(0);
    let has_due = record.due.is_some();
    let mut entry = state
        .entries
        .get(&id)
        .map(|(e, _)| e.clone())
        .unwrap_or_else(|| IncidentEntry::new(id.clone()));
    entry.targets.insert(target, record);
    entry.updated_at = Some(now);
    state.replace(Some(entry), &id, partition);
    state.write(&id, Some(reply));
    if has_due {
        if let Some(w) = state.args.waker.get() {
            let _ = w.cast(WakerMsg::Wake);
        }
    }
}

fn on_complete(state: &mut LedgerState, c: Completion, partition: i32, reply: Reply) {
    let now = (state.args.clock)();
    let mut entry = state
        .entries
        .get(&c.incident_id)
        .map(|(e, _)| e.clone())
        .unwrap_or_else(|| IncidentEntry::new(c.incident_id.clone()));
    entry.lifecycle = c.lifecycle;
    entry.revision = entry.revision.max(c.revision);
    entry.last_ce_id = Some(c.ce_id);
    if let Some(created) = c.created {
        entry.created = Some(created);
    }
    entry.updated_at = Some(now);
    state.replace(Some(entry), &c.incident_id, partition);
    state.write(&c.incident_id, Some(reply));
}

fn on_due(
    state: &LedgerState,
    now: DateTime<Utc>,
    reply: oneshot::Sender<(Vec<DueRecord>, Option<DateTime<Utc>>)>,
) {
    let mut due = Vec::new();
    let mut next = None;
    for (at, id, target) in &state.due {
        let Some((entry, partition)) = state.entries.get(id) else {
            continue;
        };
        if !state.owns(*partition) {
            continue;
        }
        if *at <= now {
            due.push((entry.clone(), target.clone()));
        } else {
            next = Some(*at);
            break;
        }
    }
    let _ = reply.send((due, next));
}

async fn on_assign(state: &mut LedgerState, partitions: Vec<i32>, reply: Reply) {
    let reader = state.store.as_ref().and_then(LedgerStore::reader);
    let Some(reader) = reader else {
        let _ = reply.send(Ok(()));
        return;
    };
    let ps = partitions.clone();
    let read = tokio::task::spawn_blocking(move || reader.read(&ps))
        .await
        .unwrap_or_else(|e| Err(LedgerError::Unavailable(e.to_string())));
    match read {
        Ok(records) => {
            for (p, id, entry) in records {
                state.replace(entry, &id, p);
            }
            state
                .owned
                .get_or_insert_with(HashSet::new)
                .extend(partitions.iter().copied());
            tracing::info!(
                ?partitions,
                entries = state.entries.len(),
                "incident ledger partitions read again on assignment"
            );
            if let Some(w) = state.args.waker.get() {
                let _ = w.cast(WakerMsg::Wake);
            }
            let _ = reply.send(Ok(()));
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

fn on_revoke(state: &mut LedgerState, partitions: Vec<i32>) {
    if let Some(owned) = state.owned.as_mut() {
        for p in partitions {
            owned.remove(&p);
        }
    }
}

async fn on_sweep(myself: &ActorRef<LedgerMsg>, state: &mut LedgerState) {
    let now = (state.args.clock)();
    let retention =
        chrono::Duration::from_std(state.args.retention).unwrap_or(chrono::Duration::MAX);
    let expired: Vec<String> = state
        .entries
        .iter()
        .filter(|(_, (e, p))| {
            state.owns(*p)
                && e.lifecycle.is_finished()
                && e.updated_at
                    .is_some_and(|at| now.signed_duration_since(at) > retention)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let mut tombstones = Vec::with_capacity(expired.len());
    for id in &expired {
        let partition = state.entries.get(id).map_or(0, |(_, p)| *p);
        state.replace(None, id, partition);
        // The tombstone goes to the incident's partition.
        let Some(store) = state.store.as_mut() else {
            break;
        };
        let written = store.write(id, partition, None);
        let id = id.clone();
        tombstones.push(async move {
            if let Err(e) = written.await {
                tracing::warn!(incident = %id, error = %e, "incident ledger: forgetting an incident failed");
            }
        });
    }
    // Durable before the sweep ends (so a stop right after it does not bring the incidents
    // back), within a deadline: a tombstone that is late is only an incident remembered longer.
    if tokio::time::timeout(SWEEP_WRITE_DEADLINE, futures::future::join_all(tombstones))
        .await
        .is_err()
    {
        tracing::warn!(
            deadline = ?SWEEP_WRITE_DEADLINE,
            "incident ledger: tombstones not confirmed in time; the next sweep forgets those incidents again"
        );
    }
    if !expired.is_empty() {
        tracing::info!(
            forgotten = expired.len(),
            "incident ledger: finished incidents past retention forgotten"
        );
    }
    state.sweep.set(myself, SWEEP_EVERY, || LedgerMsg::Sweep);
}

async fn maybe_compact(
    myself: &ActorRef<LedgerMsg>,
    state: &mut LedgerState,
) -> Result<(), ActorProcessingErr> {
    let due = matches!(&state.store, Some(LedgerStore::Local(l)) if l.needs_compaction(state.entries.len()));
    if !due {
        return Ok(());
    }
    let Some(LedgerStore::Local(mut local)) = state.store.take() else {
        return Ok(());
    };
    let live: Vec<IncidentEntry> = state.entries.values().map(|(e, _)| e.clone()).collect();
    let me = myself.clone();
    let (local, result) = tokio::task::spawn_blocking(move || {
        let r = local.compact(live, move |why| {
            let _ = me.cast(LedgerMsg::StoreFailed(why));
        });
        (local, r)
    })
    .await?;
    state.store = Some(LedgerStore::Local(local));
    result?;
    Ok(())
}

/// How the consumer and the waker talk to the ledger; cheap to clone.
#[derive(Clone, Debug)]
pub struct LedgerClient {
    slot: ActorSlot<LedgerMsg>,
}

impl LedgerClient {
    /// A client of the ledger published in `slot`.
    pub fn new(slot: ActorSlot<LedgerMsg>) -> LedgerClient {
        LedgerClient { slot }
    }

    async fn ask<T>(
        &self,
        msg: impl FnOnce(oneshot::Sender<T>) -> LedgerMsg,
    ) -> Result<T, LedgerError> {
        let actor = self
            .slot
            .get()
            .ok_or_else(|| LedgerError::Unavailable("not running".into()))?;
        let (tx, rx) = oneshot::channel();
        actor
            .cast(msg(tx))
            .map_err(|_| LedgerError::Unavailable("stopped".into()))?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(LedgerError::Unavailable("stopped before answering".into())),
            Err(_) => Err(LedgerError::Unavailable(format!(
                "no answer within {CALL_TIMEOUT:?}"
            ))),
        }
    }

    /// The incident's entry.
    pub async fn get(&self, incident_id: &str) -> Result<IncidentEntry, LedgerError> {
        self.ask(|tx| LedgerMsg::Get(incident_id.to_owned(), tx))
            .await
    }

    /// Sets a target's record; returns once durable.
    pub async fn put_target(
        &self,
        incident_id: &str,
        partition: i32,
        target: &str,
        record: TargetRecord,
    ) -> Result<(), LedgerError> {
        self.ask(|reply| LedgerMsg::PutTarget {
            incident_id: incident_id.to_owned(),
            partition: Some(partition),
            target: target.to_owned(),
            record,
            reply,
        })
        .await?
    }

    /// Sets a target's record in the partition the entry already has (deferred wake-ups);
    /// returns once durable.
    pub async fn put_target_in_place(
        &self,
        incident_id: &str,
        target: &str,
        record: TargetRecord,
    ) -> Result<(), LedgerError> {
        self.ask(|reply| LedgerMsg::PutTarget {
            incident_id: incident_id.to_owned(),
            partition: None,
            target: target.to_owned(),
            record,
            reply,
        })
        .await?
    }

    /// Marks a fact applied; returns once durable.
    pub async fn complete(&self, c: Completion, partition: i32) -> Result<(), LedgerError> {
        self.ask(|reply| LedgerMsg::Complete(c, partition, reply))
            .await?
    }

    /// Records due at or before `now`, and the next due time after it.
    pub async fn due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<DueRecord>, Option<DateTime<Utc>>), LedgerError> {
        self.ask(|tx| LedgerMsg::Due(now, tx)).await
    }

    /// Partitions assigned: read again (Kafka) and owned.
    pub async fn assign(&self, partitions: Vec<i32>) -> Result<(), LedgerError> {
        self.ask(|reply| LedgerMsg::Assign(partitions, reply))
            .await?
    }

    /// Partitions revoked (best effort).
    pub fn revoke(&self, partitions: Vec<i32>) {
        if let Some(a) = self.slot.get() {
            let _ = a.cast(LedgerMsg::Revoke(partitions));
        }
    }
}
