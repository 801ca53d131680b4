//! The facts core without Kafka: the per-fact algorithm against a recording target (a real
//! `FactAction` that records its calls and answers as told), the local incident ledger
//! (restart rebuild, retention), deferred wake-ups, and the embedded source's committed
//! position across a restart.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use ractor::{Actor, ActorRef};
use sre_actors::facts::action::{ActionError, FactAction};
use sre_actors::facts::dlq::DeadLetters;
use sre_actors::facts::embedded::{read_position, EmbeddedArgs, EmbeddedFacts};
use sre_actors::facts::entry::{IncidentEntry, Lifecycle, TargetRecord};
use sre_actors::facts::handler::{
    Backoff, FactHandler, HandlerParts, IncidentLocks, Outcome, RawFact, WaitBoard,
};
use sre_actors::facts::lanes::{self, LaneEvent};
use sre_actors::facts::ledger::{IncidentLedger, LedgerArgs, LedgerClient, LedgerMsg};
use sre_actors::facts::metrics::FactsMetrics;
use sre_actors::facts::store::{read_local, LedgerStore, LocalLedger};
use sre_actors::facts::waker::{DueWaker, WakerArgs, WakerMsg};
use sre_actors::sli::scheduler::Clock;
use sre_intents::facts::Fact;
use sre_supervision::{ActorSlot, Readiness};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------
// A recording target

/// What the recorder answers to its next apply.
#[derive(Clone, Debug)]
enum Answer {
    Apply,
    Unavailable(Option<Duration>),
    Rejected,
}

/// One call.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Call {
    target: &'static str,
    what: String,
    incident: String,
    revision: u64,
}

struct Recorder {
    name: &'static str,
    script: Mutex<VecDeque<Answer>>,
    calls: Mutex<Vec<Call>>,
    tx: mpsc::UnboundedSender<Call>,
    /// `IncidentCreated` is deferred by this much (a high page outside business hours).
    defer: Option<chrono::Duration>,
    /// Incidents of the entries the ledger showed it (loaded or written).
    observed: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(name: &'static str) -> (Arc<Recorder>, mpsc::UnboundedReceiver<Call>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Recorder {
                name,
                script: Mutex::default(),
                calls: Mutex::default(),
                tx,
                defer: None,
                observed: Mutex::default(),
            }),
            rx,
        )
    }

    fn deferring(
        name: &'static str,
        by: chrono::Duration,
    ) -> (Arc<Recorder>, mpsc::UnboundedReceiver<Call>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Recorder {
                name,
                script: Mutex::default(),
                calls: Mutex::default(),
                tx,
                defer: Some(by),
                observed: Mutex::default(),
            }),
            rx,
        )
    }

    fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, what: &str, incident: &str, revision: u64) {
        let call = Call {
            target: self.name,
            what: what.to_owned(),
            incident: incident.to_owned(),
            revision,
        };
        self.calls.lock().unwrap().push(call.clone());
        let _ = self.tx.send(call);
    }
}

impl FactAction for Recorder {
    fn target(&self) -> &'static str {
        self.name
    }

    fn observe(&self, entry: &IncidentEntry) {
        self.observed
            .lock()
            .unwrap()
            .push(entry.incident_id.clone());
    }

    fn apply<'a>(
        &'a self,
        fact: &'a Fact,
        _entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>> {
        Box::pin(async move {
            let what = fact.fact_type().as_str();
            self.record(what, &fact.incident_id, fact.revision);
            let answer = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Apply);
            match answer {
                Answer::Apply => {
                    let mut r = TargetRecord::for_fact(fact, what, now);
                    r.key = Some(fact.incident_id.clone());
                    if let (Some(by), Some(_)) = (self.defer, fact.created()) {
                        r.state = "deferred".into();
                        r.due = Some(now + by);
                    }
                    Ok(Some(r))
                }
                Answer::Unavailable(retry_after) => Err(ActionError::Unavailable {
                    target: self.name,
                    reason: "503 from the fake".into(),
                    retry_after,
                }),
                Answer::Rejected => Err(ActionError::Rejected {
                    target: self.name,
                    reason: "400: invalid routing key".into(),
                }),
            }
        })
    }

    fn fire_due<'a>(
        &'a self,
        entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>> {
        Box::pin(async move {
            let mut r = entry.target(self.name).cloned().expect("a record to fire");
            self.record("fire", &entry.incident_id, r.revision);
            let answer = self.script.lock().unwrap().pop_front();
            if let Some(Answer::Unavailable(retry_after)) = answer {
                return Err(ActionError::Unavailable {
                    target: self.name,
                    reason: "429 from the fake".into(),
                    retry_after,
                });
            }
            r.state = if entry.lifecycle.is_finished() {
                "dropped"
            } else {
                "triggered"
            }
            .into();
            r.due = None;
            r.updated_at = now;
            Ok(Some(r))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Facts

const T0: &str = "2026-12-07T09:00:00Z";

fn fact(ty: &str, incident: &str, revision: u64) -> RawFact {
    let mut value = serde_json::json!({
        "incidentId": incident,
        "occurredAt": T0,
        "revision": revision,
    });
    if ty == "IncidentCreated" {
        value["title"] = "Checkout down".into();
        value["severity"] = "critical".into();
    }
    RawFact {
        partition: 0,
        offset: revision as i64,
        key: Some(format!("incident:{incident}")),
        headers: vec![
            ("ce_type".into(), ty.as_bytes().to_vec()),
            (
                "ce_id".into(),
                format!("{incident}-{revision}").into_bytes(),
            ),
        ],
        value: serde_json::to_vec(&value).unwrap(),
    }
}

/// A clock the test moves by hand.
fn manual_clock() -> (Clock, Arc<Mutex<DateTime<Utc>>>) {
    let now = Arc::new(Mutex::new(
        Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap(),
    ));
    let n = now.clone();
    (Arc::new(move || *n.lock().unwrap()), now)
}

// ---------------------------------------------------------------------------------------
// A rig: the ledger actor on a local log, a handler dead-lettering to a local log

struct Rig {
    dir: tempfile::TempDir,
    ledger: ActorRef<LedgerMsg>,
    ledger_slot: ActorSlot<LedgerMsg>,
    waker_slot: ActorSlot<WakerMsg>,
    parts: HandlerParts,
    metrics: FactsMetrics,
    readiness: Readiness,
    clock: Clock,
    now: Arc<Mutex<DateTime<Utc>>>,
}

fn ledger_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("ledger")
}

async fn start_ledger(
    dir: &Path,
    slot: &ActorSlot<LedgerMsg>,
    waker: &ActorSlot<WakerMsg>,
    clock: &Clock,
    metrics: &FactsMetrics,
    retention: Duration,
    targets: &Arc<[Arc<dyn FactAction>]>,
) -> ActorRef<LedgerMsg> {
    let path = ledger_dir(dir);
    let args = LedgerArgs {
        store: Arc::new(move || {
            LedgerStore::Local(LocalLedger::new(path.clone(), "ledger".into(), 1000))
        }),
        slot: slot.clone(),
        waker: waker.clone(),
        retention,
        clock: clock.clone(),
        metrics: metrics.clone(),
        targets: targets.clone(),
    };
    let (actor, _) = Actor::spawn(None, IncidentLedger, args).await.unwrap();
    actor
}

async fn rig(targets: Vec<Arc<dyn FactAction>>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (clock, now) = manual_clock();
    let metrics = FactsMetrics::default();
    let readiness = Readiness::new("ingest");
    let ledger_slot = ActorSlot::default();
    let waker_slot = ActorSlot::default();
    let targets: Arc<[Arc<dyn FactAction>]> = targets.into();
    let ledger = start_ledger(
        dir.path(),
        &ledger_slot,
        &waker_slot,
        &clock,
        &metrics,
        Duration::from_secs(30 * 86400),
        &targets,
    )
    .await;
    let parts = HandlerParts {
        ledger: LedgerClient::new(ledger_slot.clone()),
        targets,
        metrics: metrics.clone(),
        clock: clock.clone(),
        locks: IncidentLocks::default(),
        backoff: Backoff {
            min: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        board: WaitBoard::new(metrics.clone(), readiness.clone()),
        concurrency: 4,
    };
    Rig {
        dir,
        ledger,
        ledger_slot,
        waker_slot,
        parts,
        metrics,
        readiness,
        clock,
        now,
    }
}

impl Rig {
    /// A [`DueWaker`] over the rig's ledger firing `target`'s records.
    fn waker_args(&self, target: &Arc<Recorder>) -> WakerArgs {
        WakerArgs {
            slot: self.waker_slot.clone(),
            ledger: self.parts.ledger.clone(),
            targets: vec![target.clone() as Arc<dyn FactAction>].into(),
            locks: self.parts.locks.clone(),
            clock: self.clock.clone(),
            backoff: self.parts.backoff,
            metrics: self.metrics.clone(),
        }
    }

    fn handler(&self) -> FactHandler {
        let dlq = DeadLetters::local(&self.dir.path().join("dlq"), "dlq").unwrap();
        FactHandler::new(self.parts.clone(), dlq)
    }

    async fn entry(&self, id: &str) -> IncidentEntry {
        self.parts.ledger.get(id).await.unwrap()
    }

    fn dead_letters(&self) -> Vec<sre_sink::stored::StoredRecord> {
        sre_sink::embedded::read_all(&self.dir.path().join("dlq")).unwrap()
    }

    async fn restart_ledger(&mut self) {
        self.ledger.stop_and_wait(None, None).await.unwrap();
        self.ledger = start_ledger(
            self.dir.path(),
            &self.ledger_slot,
            &self.waker_slot,
            &self.clock,
            &self.metrics,
            Duration::from_secs(30 * 86400),
            &self.parts.targets,
        )
        .await;
    }
}

fn no_wait(_: Option<&str>) {}

#[tokio::test]
async fn a_lifecycle_is_applied_to_every_target_in_order_and_recorded() {
    let (pd, _) = Recorder::new("pagerduty");
    let (jira, _) = Recorder::new("jira");
    let rig = rig(vec![pd.clone(), jira.clone()]).await;
    let h = rig.handler();
    for (ty, rev) in [
        ("IncidentCreated", 1),
        ("IncidentAcknowledged", 2),
        ("IncidentResolved", 3),
    ] {
        assert_eq!(
            h.handle(&fact(ty, "inc-1", rev), &no_wait).await,
            Outcome::Applied
        );
    }
    let seen: Vec<_> = pd
        .calls()
        .into_iter()
        .map(|c| (c.what, c.revision))
        .collect();
    assert_eq!(
        seen,
        [
            ("IncidentCreated".into(), 1),
            ("IncidentAcknowledged".into(), 2),
            ("IncidentResolved".into(), 3)
        ]
    );
    assert_eq!(jira.calls().len(), 3);
    let e = rig.entry("inc-1").await;
    assert_eq!((e.lifecycle, e.revision), (Lifecycle::Resolved, 3));
    assert_eq!(e.last_ce_id.as_deref(), Some("inc-1-3"));
    assert_eq!(e.created.as_ref().unwrap().title, "Checkout down");
    assert_eq!(e.target("pagerduty").unwrap().state, "IncidentResolved");
    assert_eq!(e.target("jira").unwrap().revision, 3);
    assert_eq!(rig.metrics.consumed_count("IncidentCreated", "applied"), 1);
}

#[tokio::test]
async fn a_fact_with_no_targets_still_updates_the_ledger() {
    let rig = rig(vec![]).await;
    let h = rig.handler();
    assert_eq!(
        h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
            .await,
        Outcome::Applied
    );
    assert_eq!(rig.entry("inc-1").await.lifecycle, Lifecycle::Open);
}

#[tokio::test]
async fn a_replay_or_an_older_revision_does_nothing() {
    let (pd, _) = Recorder::new("pagerduty");
    let rig = rig(vec![pd.clone()]).await;
    let h = rig.handler();
    assert_eq!(
        h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
            .await,
        Outcome::Applied
    );
    assert_eq!(
        h.handle(&fact("IncidentAcknowledged", "inc-1", 3), &no_wait)
            .await,
        Outcome::Applied
    );
    assert_eq!(
        h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
            .await,
        Outcome::Replay
    );
    assert_eq!(
        h.handle(&fact("IncidentResolved", "inc-1", 2), &no_wait)
            .await,
        Outcome::Replay
    );
    assert_eq!(pd.calls().len(), 2);
    assert_eq!(rig.metrics.consumed_count("IncidentCreated", "replay"), 1);
}

#[tokio::test]
async fn an_unavailable_target_waits_and_the_same_fact_is_applied_again_without_repeating_the_others(
) {
    let (jira, _) = Recorder::new("jira");
    let (pd, _) = Recorder::new("pagerduty");
    pd.answer([
        Answer::Unavailable(None),
        Answer::Unavailable(Some(Duration::from_millis(30))),
    ]);
    let rig = rig(vec![jira.clone(), pd.clone()]).await;
    let h = rig.handler();
    let waits = Arc::new(Mutex::new(Vec::new()));
    let w = waits.clone();
    let on_wait = move |why: Option<&str>| w.lock().unwrap().push(why.is_some());
    assert_eq!(
        h.handle(&fact("IncidentCreated", "inc-1", 1), &on_wait)
            .await,
        Outcome::Applied
    );
    // Jira's comment is not repeated: its record had this revision after the first pass.
    assert_eq!(jira.calls().len(), 1);
    assert_eq!(pd.calls().len(), 3);
    // Each wait is reported (with why), then that it goes on.
    assert_eq!(*waits.lock().unwrap(), [true, true, false]);
    assert_eq!(rig.metrics.waiting().get(), 0);
    assert!(rig.readiness.report(&observer()).degraded.is_empty());
    assert_eq!(rig.entry("inc-1").await.revision, 1);
}

/// Runs partition 3's lanes over the rig's handler: what to send records to, and the events.
fn lanes_of(
    rig: &Rig,
    limit: usize,
) -> (
    mpsc::UnboundedSender<RawFact>,
    mpsc::UnboundedReceiver<LaneEvent>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (etx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(lanes::run(
        3,
        limit,
        rx,
        lanes::handler_fn(Arc::new(rig.handler())),
        Some(rig.parts.board.clone()),
        move |e| {
            // How many wait is the source's business; these tests read the rest.
            if !matches!(e, LaneEvent::Waits(_)) {
                let _ = etx.send(e);
            }
        },
    ));
    (tx, events, task)
}

fn at(mut raw: RawFact, offset: i64) -> RawFact {
    raw.partition = 3;
    raw.offset = offset;
    raw
}

#[tokio::test]
async fn a_partition_whose_every_fact_waits_shows_on_the_gauge_and_readiness() {
    let (pd, _) = Recorder::new("pagerduty");
    pd.answer([Answer::Unavailable(Some(Duration::from_secs(3600)))]);
    let rig = rig(vec![pd.clone()]).await;
    let (tx, mut events, task) = lanes_of(&rig, 4);
    tx.send(at(fact("IncidentCreated", "inc-1", 1), 0)).unwrap();
    assert_eq!(events.recv().await, Some(LaneEvent::Waiting(true)));
    assert_eq!(rig.metrics.waiting().get(), 1);
    let report = rig.readiness.report(&observer());
    let detail = serde_json::to_string(&report).unwrap();
    assert!(
        detail.contains("partition 3 waiting") && detail.contains("pagerduty unavailable"),
        "{detail}"
    );
    // Abandoning it (a revoked partition) clears the board.
    task.abort();
    let _ = task.await;
    assert_eq!(rig.metrics.waiting().get(), 0);
    assert_eq!(rig.entry("inc-1").await.revision, 0);
}

/// Order is per incident, not per partition: a throttled incident (PagerDuty asked for an
/// hour) holds up its own later facts and the committable offset, and nothing else.
#[tokio::test]
async fn a_throttled_incident_holds_up_only_itself() {
    let (pd, mut calls) = Recorder::new("pagerduty");
    pd.answer([Answer::Unavailable(Some(Duration::from_secs(3600)))]);
    let rig = rig(vec![pd.clone()]).await;
    let (tx, mut events, task) = lanes_of(&rig, 8);
    tx.send(at(fact("IncidentCreated", "slow", 1), 0)).unwrap();
    // The first call is the throttled one: the rest start only after it.
    calls.recv().await.unwrap();
    tx.send(at(fact("IncidentAcknowledged", "slow", 2), 1))
        .unwrap();
    for (i, inc) in ["a", "b", "c"].iter().enumerate() {
        tx.send(at(fact("IncidentCreated", inc, 1), 2 + i as i64))
            .unwrap();
    }
    let (mut handled, mut waiting) = (0, false);
    while handled < 3 {
        match events.recv().await.unwrap() {
            LaneEvent::Handled { count, next } => {
                assert_eq!(next, 0, "nothing committable past the throttled fact");
                handled += count;
            }
            LaneEvent::Waiting(on) => waiting = on,
            LaneEvent::Waits(_) | LaneEvent::Full(_) => {}
        }
    }
    for inc in ["a", "b", "c"] {
        assert_eq!(rig.entry(inc).await.revision, 1, "{inc} applied meanwhile");
    }
    assert_eq!(rig.entry("slow").await.revision, 0);
    let slow: Vec<_> = pd
        .calls()
        .into_iter()
        .filter(|c| c.incident == "slow")
        .collect();
    assert_eq!(
        slow.len(),
        1,
        "its acknowledgement waits behind it: {slow:?}"
    );
    // With only the throttled incident left in hand, the partition waits.
    while let Ok(e) = events.try_recv() {
        if let LaneEvent::Waiting(on) = e {
            waiting = on;
        }
    }
    if !waiting {
        assert_eq!(events.recv().await, Some(LaneEvent::Waiting(true)));
    }
    assert_eq!(rig.metrics.waiting().get(), 1);
    task.abort();
    let _ = task.await;
}

#[tokio::test]
async fn a_rejected_fact_is_dead_lettered_with_the_reason_and_the_other_targets_still_apply() {
    let (pd, _) = Recorder::new("pagerduty");
    let (jira, _) = Recorder::new("jira");
    pd.answer([Answer::Rejected]);
    let rig = rig(vec![pd.clone(), jira.clone()]).await;
    let h = rig.handler();
    let f = fact("IncidentCreated", "inc-1", 1);
    assert_eq!(h.handle(&f, &no_wait).await, Outcome::DeadLettered);
    assert_eq!(jira.calls().len(), 1);
    let dlq = rig.dead_letters();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].key, "incident:inc-1");
    assert_eq!(dlq[0].header("ce_id"), Some("inc-1-1"));
    assert!(
        dlq[0]
            .header("dlq_reason")
            .unwrap()
            .contains("invalid routing key"),
        "{:?}",
        dlq[0]
    );
    // The fact is done: a replay dead-letters nothing again.
    assert_eq!(h.handle(&f, &no_wait).await, Outcome::Replay);
    assert_eq!(rig.dead_letters().len(), 1);
    assert_eq!(
        rig.metrics
            .consumed_count("IncidentCreated", "dead_lettered"),
        1
    );
}

#[tokio::test]
async fn an_unparseable_fact_is_dead_lettered_and_another_type_is_skipped() {
    let (pd, _) = Recorder::new("pagerduty");
    let rig = rig(vec![pd.clone()]).await;
    let h = rig.handler();
    let mut poison = fact("IncidentCreated", "inc-1", 1);
    poison.value = b"{not json".to_vec();
    assert_eq!(h.handle(&poison, &no_wait).await, Outcome::DeadLettered);
    let mut other = fact("IncidentCreated", "inc-2", 1);
    other.headers[0].1 = b"PostmortemPublished".to_vec();
    assert_eq!(h.handle(&other, &no_wait).await, Outcome::SkippedUnknown);
    assert!(pd.calls().is_empty());
    let dlq = rig.dead_letters();
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq[0]
            .header("dlq_reason")
            .unwrap()
            .starts_with("bad_value:"),
        "{:?}",
        dlq[0]
    );
    assert_eq!(dlq[0].value, serde_json::json!("{not json"));
    assert_eq!(rig.metrics.consumed_count("unknown", "skipped_unknown"), 1);
    assert_eq!(
        rig.metrics
            .consumed_count("IncidentCreated", "dead_lettered"),
        1
    );
}

#[tokio::test]
async fn the_ledger_survives_a_restart_and_a_replay_after_it_does_nothing() {
    let (jira, _) = Recorder::new("jira");
    let (pd, mut pd_calls) = Recorder::new("pagerduty");
    pd.answer([Answer::Unavailable(Some(Duration::from_secs(3600)))]);
    let mut rig = rig(vec![jira.clone(), pd.clone()]).await;
    // The process "dies" after Jira was applied and recorded, while PagerDuty waits.
    let h = Arc::new(rig.handler());
    let h2 = h.clone();
    let task = tokio::spawn(async move {
        h2.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
            .await
    });
    pd_calls.recv().await.unwrap();
    task.abort();
    let _ = task.await;
    drop(h); // its dead-letter log's lock with it
    rig.restart_ledger().await;
    // The fact is replayed (never committed): Jira is not called again, PagerDuty is.
    let h = rig.handler();
    assert_eq!(
        h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
            .await,
        Outcome::Applied
    );
    assert_eq!(jira.calls().len(), 1);
    assert_eq!(pd.calls().len(), 2);
    rig.restart_ledger().await;
    assert_eq!(
        h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
            .await,
        Outcome::Replay
    );
    assert_eq!(rig.entry("inc-1").await.target("jira").unwrap().revision, 1);
}

#[tokio::test]
async fn targets_see_every_entry_written_and_every_entry_loaded_after_a_restart() {
    let (pd, _calls) = Recorder::new("pagerduty");
    let mut rig = rig(vec![pd.clone()]).await;
    let h = rig.handler();
    h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
        .await;
    assert!(pd.observed.lock().unwrap().contains(&"inc-1".to_owned()));
    pd.observed.lock().unwrap().clear();
    // A restart: the entry is loaded from the log, and the target is shown it (so its gauges,
    // such as the deferred pages, are right again).
    rig.restart_ledger().await;
    assert_eq!(*pd.observed.lock().unwrap(), ["inc-1"]);
}

#[tokio::test]
async fn finished_incidents_are_forgotten_after_retention_and_stay_forgotten() {
    let rig = rig(vec![]).await;
    let h = rig.handler();
    h.handle(&fact("IncidentCreated", "done", 1), &no_wait)
        .await;
    h.handle(&fact("IncidentResolved", "done", 2), &no_wait)
        .await;
    h.handle(&fact("IncidentCreated", "open", 1), &no_wait)
        .await;
    assert_eq!(rig.metrics.entries().get(), 2);
    *rig.now.lock().unwrap() += chrono::Duration::days(31);
    rig.ledger.cast(LedgerMsg::Sweep).unwrap();
    assert_eq!(rig.entry("done").await.revision, 0);
    assert_eq!(rig.entry("open").await.revision, 1);
    assert_eq!(rig.metrics.entries().get(), 1);
    // The tombstone is durable.
    rig.ledger.stop_and_wait(None, None).await.unwrap();
    let loaded = read_local(&ledger_dir(rig.dir.path())).unwrap();
    assert!(!loaded.entries.contains_key("done"));
    assert!(loaded.entries.contains_key("open"));
}

#[tokio::test]
async fn a_deferred_record_fires_at_its_due_time_and_after_a_restart() {
    let (pd, mut calls) = Recorder::deferring("pagerduty", chrono::Duration::hours(2));
    let mut rig = rig(vec![pd.clone()]).await;
    let waker_args = rig.waker_args(&pd);
    let (waker, _) = Actor::spawn(None, DueWaker, waker_args.clone())
        .await
        .unwrap();
    let h = rig.handler();
    h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
        .await;
    assert_eq!(calls.recv().await.unwrap().what, "IncidentCreated");
    assert_eq!(rig.metrics.deferred().get(), 1);
    // Not due yet.
    *rig.now.lock().unwrap() += chrono::Duration::minutes(119);
    ractor::call!(waker, WakerMsg::Flush).unwrap();
    assert_eq!(pd.calls().len(), 1);
    // The process stops before it is due; after the restart the rebuilt ledger fires it.
    waker.stop_and_wait(None, None).await.unwrap();
    rig.restart_ledger().await;
    *rig.now.lock().unwrap() += chrono::Duration::minutes(2);
    let (waker, _) = Actor::spawn(None, DueWaker, waker_args).await.unwrap();
    let fired = tokio::time::timeout(Duration::from_secs(30), calls.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fired.what, "fire");
    ractor::call!(waker, WakerMsg::Flush).unwrap();
    let e = rig.entry("inc-1").await;
    let r = e.target("pagerduty").unwrap();
    assert_eq!((r.state.as_str(), r.due), ("triggered", None));
    assert_eq!(rig.metrics.deferred().get(), 0);
    waker.stop_and_wait(None, None).await.unwrap();
}

async fn next_call(calls: &mut mpsc::UnboundedReceiver<Call>) -> Call {
    tokio::time::timeout(Duration::from_secs(30), calls.recv())
        .await
        .unwrap()
        .unwrap()
}

/// A deferred page the provider throttles when it falls due is fired again after exactly the
/// wait it asked for, not the consumer's (here 5 ms) backoff.
#[tokio::test]
async fn a_throttled_deferred_page_is_fired_again_after_the_wait_asked_for() {
    let (pd, mut calls) = Recorder::deferring("pagerduty", chrono::Duration::hours(2));
    let rig = rig(vec![pd.clone()]).await;
    let h = rig.handler();
    h.handle(&fact("IncidentCreated", "inc-1", 1), &no_wait)
        .await;
    assert_eq!(calls.recv().await.unwrap().what, "IncidentCreated");
    pd.answer([Answer::Unavailable(Some(Duration::from_millis(400)))]);
    *rig.now.lock().unwrap() += chrono::Duration::hours(3);
    let (waker, _) = Actor::spawn(None, DueWaker, rig.waker_args(&pd))
        .await
        .unwrap();
    assert_eq!(next_call(&mut calls).await.what, "fire");
    let throttled = tokio::time::Instant::now();
    assert_eq!(next_call(&mut calls).await.what, "fire");
    assert!(
        throttled.elapsed() >= Duration::from_millis(400),
        "fired again after {:?}",
        throttled.elapsed()
    );
    ractor::call!(waker, WakerMsg::Flush).unwrap();
    let r = rig
        .entry("inc-1")
        .await
        .target("pagerduty")
        .cloned()
        .unwrap();
    assert_eq!((r.state.as_str(), r.due), ("triggered", None));
    waker.stop_and_wait(None, None).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// The embedded source

fn append(dir: &Path, facts: &[RawFact]) {
    let mut log = sre_sink::embedded::Log::open(dir, Default::default()).unwrap();
    let records: Vec<_> = facts
        .iter()
        .map(|f| sre_intents::IntentRecord {
            topic: "facts".into(),
            key: f.key.clone().unwrap(),
            headers: f
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        std::borrow::Cow::Owned(k.clone()),
                        String::from_utf8(v.clone()).unwrap(),
                    )
                })
                .collect(),
            value: serde_json::value::RawValue::from_string(
                String::from_utf8(f.value.clone()).unwrap(),
            )
            .unwrap(),
        })
        .collect();
    log.append(&records, 0).unwrap();
    log.sync().unwrap();
}

#[tokio::test]
async fn the_embedded_source_resumes_after_its_committed_position() {
    let (pd, mut calls) = Recorder::new("pagerduty");
    let rig = rig(vec![pd.clone()]).await;
    let facts_dir = rig.dir.path().join("facts");
    let position = rig.dir.path().join("facts.position");
    let args = EmbeddedArgs {
        dir: facts_dir.clone(),
        position: position.clone(),
        dead_letters: (rig.dir.path().join("dlq"), "dlq".into()),
        poll_interval: Duration::from_millis(20),
        parts: rig.parts.clone(),
    };
    append(
        &facts_dir,
        &[
            fact("IncidentCreated", "a", 1),
            fact("IncidentCreated", "b", 1),
        ],
    );
    let (source, _) = Actor::spawn(None, EmbeddedFacts, args.clone())
        .await
        .unwrap();
    for _ in 0..2 {
        calls.recv().await.unwrap();
    }
    until(|| rig.metrics.consumed_count("IncidentCreated", "applied") == 2).await;
    source.stop_and_wait(None, None).await.unwrap();
    assert_eq!(read_position(&position).unwrap().next_offset, 2);
    append(&facts_dir, &[fact("IncidentAcknowledged", "a", 2)]);
    let (source, _) = Actor::spawn(None, EmbeddedFacts, args).await.unwrap();
    let next = calls.recv().await.unwrap();
    assert_eq!(
        (next.what.as_str(), next.incident.as_str()),
        ("IncidentAcknowledged", "a")
    );
    until(|| {
        rig.metrics
            .consumed_count("IncidentAcknowledged", "applied")
            == 1
    })
    .await;
    source.stop_and_wait(None, None).await.unwrap();
    assert_eq!(read_position(&position).unwrap().next_offset, 3);
    // Nothing was handed over twice (not even as a replay).
    assert_eq!(rig.metrics.consumed_count("IncidentCreated", "replay"), 0);
    assert_eq!(rig.metrics.consumed_count("IncidentCreated", "applied"), 2);
    assert_eq!(pd.calls().len(), 3);
}

fn observer() -> sre_supervision::Observer {
    sre_supervision::Observer::new(&mut prometheus_client::registry::Registry::default())
}

/// Bounded polling for an effect that has no notification (a counter).
async fn until(ok: impl Fn() -> bool) {
    for _ in 0..1000 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 10 s");
}
