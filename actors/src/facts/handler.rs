//! The per-fact algorithm of [`action`](super::action)'s module doc, shared by both sources.
//!
//! [`FactHandler::handle`] takes one record and returns only once it is *handled*: every
//! target applied and recorded in the ledger, or the fact dead-lettered, or skipped (another
//! type, a replay). Meanwhile an unavailable target (or ledger, or dead-letter destination)
//! makes it wait and try the same fact again: exactly the wait a provider asked for
//! (`retry_after`: a throttle's `Retry-After`, the time until an open circuit lets a trial
//! through), otherwise exponential backoff from `min_backoff` to `max_backoff`. Each wait is
//! reported to the caller (`on_wait`), which decides what the partition does
//! ([`lanes`](super::lanes): a partition whose every fact in hand waits is paused and shown on
//! the [`WaitBoard`]). Only once handled may the source commit past it.
//!
//! One incident is handled by one task at a time ([`IncidentLocks`]): a fact and a deferred
//! wake-up of the same incident never interleave.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sre_intents::facts::{Fact, FactError, FactType};
use sre_supervision::Readiness;

use super::action::{ActionError, FactAction};
use super::dlq::DeadLetters;
use super::ledger::{Completion, LedgerClient};
use super::metrics::FactsMetrics;
use crate::sli::scheduler::Clock;

/// The readiness detail of waiting partitions.
pub const WAITING_CONDITION: &str = "facts";
/// The longest `retry_after` honoured as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The shortest wait, whatever a provider says (a `Retry-After: 0` never spins).
const MIN_RETRY_AFTER: Duration = Duration::from_millis(10);

/// One record as read from the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFact {
    /// Partition (0 for the embedded source).
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<String>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Value.
    pub value: Vec<u8>,
}

/// How a fact was handled (the `outcome` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every target applied (or had nothing to do) and the ledger holds it.
    Applied,
    /// At or below the ledger's revision: nothing done.
    Replay,
    /// Another fact type: skipped.
    SkippedUnknown,
    /// Unparseable, or rejected by a target: written to the dead-letter destination.
    DeadLettered,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Replay => "replay",
            Outcome::SkippedUnknown => "skipped_unknown",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Waits between attempts of the same fact.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// First wait.
    pub min: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The exponential wait after the `n`-th (n ≥ 1) attempt that came back without a wait
    /// of its own.
    pub fn wait(&self, attempt: u32) -> Duration {
        self.min
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1).min(20))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max)
    }

    /// The wait a provider asked for, as given (between 10 ms and an hour); `None` for no
    /// usable answer (absent or zero: a half-open circuit whose trial is under way), when
    /// [`wait`](Self::wait) applies.
    pub fn asked(retry_after: Option<Duration>) -> Option<Duration> {
        retry_after
            .filter(|r| !r.is_zero())
            .map(|r| r.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER))
    }
}

/// Which partitions wait (every fact in hand waits for an unavailable target, or the ledger
/// is not reachable), and why: the gauge and the readiness detail. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WaitBoard {
    waiting: Arc<Mutex<BTreeMap<i32, String>>>,
    metrics: FactsMetrics,
    readiness: Readiness,
}

impl WaitBoard {
    /// A board reporting to `metrics` and `readiness`.
    pub fn new(metrics: FactsMetrics, readiness: Readiness) -> WaitBoard {
        WaitBoard {
            waiting: Arc::default(),
            metrics,
            readiness,
        }
    }

    /// Partition `partition` waits (`Some(why)`) or goes on (`None`).
    pub fn set(&self, partition: i32, why: Option<String>) {
        let mut w = self.waiting.lock().expect("wait board");
        match why {
            Some(why) => {
                w.insert(partition, why);
            }
            None => {
                w.remove(&partition);
            }
        }
        self.metrics.waiting().set(w.len() as i64);
        let detail = (!w.is_empty()).then(|| {
            w.iter()
                .map(|(p, why)| format!("partition {p} waiting: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        self.readiness.set_degraded(WAITING_CONDITION, detail);
    }

    /// `delta` more facts in hand wait (`sre_facts_waiting_facts`).
    pub fn facts_waiting(&self, delta: i64) {
        self.metrics.waiting_facts().inc_by(delta);
    }

    /// Partitions waiting now.
    pub fn waiting(&self) -> Vec<i32> {
        self.waiting
            .lock()
            .expect("wait board")
            .keys()
            .copied()
            .collect()
    }
}

/// One async lock per incident, dropped when no one holds or waits for it.
#[derive(Clone, Debug, Default)]
pub struct IncidentLocks(Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>);

impl IncidentLocks {
    /// Waits for the incident's lock.
    pub async fn lock(&self, incident_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().expect("incident locks");
            if let Some(l) = map.get(incident_id).and_then(Weak::upgrade) {
                l
            } else {
                if map.len() >= 1024 {
                    map.retain(|_, w| w.strong_count() > 0);
                }
                let l = Arc::new(tokio::sync::Mutex::new(()));
                map.insert(incident_id.to_owned(), Arc::downgrade(&l));
                l
            }
        };
        lock.lock_owned().await
    }
}

/// What every fact is handled with.
#[derive(Clone)]
pub struct HandlerParts {
    /// The ledger.
    pub ledger: LedgerClient,
    /// The targets, in the order they are applied.
    pub targets: Arc<[Arc<dyn FactAction>]>,
    /// Metrics.
    pub metrics: FactsMetrics,
    /// Time.
    pub clock: Clock,
    /// Shared with the waker.
    pub locks: IncidentLocks,
    /// Waits between attempts.
    pub backoff: Backoff,
    /// Waiting partitions.
    pub board: WaitBoard,
    /// Facts of different incidents handled at once per partition (`facts.concurrency`).
    pub concurrency: usize,
}

/// The algorithm, with the source's dead-letter destination.
pub struct FactHandler {
    parts: HandlerParts,
    dlq: DeadLetters,
}

/// What a waiting fact tells its caller: `Some(why)` each time it waits, `None` when it goes
/// on.
pub type OnWait<'a> = dyn Fn(Option<&str>) + Send + Sync + 'a;

/// What one attempt ended with.
enum Step {
    Done(Outcome),
    Rejected(String),
    Wait(String, Option<Duration>),
}

impl FactHandler {
    /// A handler dead-lettering to `dlq`.
    pub fn new(parts: HandlerParts, dlq: DeadLetters) -> FactHandler {
        FactHandler { parts, dlq }
    }

    /// The parts (ledger, targets, metrics…).
    pub fn parts(&self) -> &HandlerParts {
        &self.parts
    }

    /// Handles `raw` (see the module docs); `on_wait(Some(why))` each time it waits,
    /// `on_wait(None)` when it goes on after waiting.
    pub async fn handle(&self, raw: &RawFact, on_wait: &OnWait<'_>) -> Outcome {
        let headers: Vec<(&str, &str)> = raw
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v).ok()?)))
            .collect();
        let parsed = Fact::parse(raw.key.as_deref(), &headers, &raw.value);
        let mut waiter = Waiter::new(self, raw.partition, on_wait);
        let (fact_type, outcome) = match parsed {
            Err(FactError::UnknownType(t)) => {
                tracing::debug!(ce_type = %t, offset = raw.offset, "skipping a fact of another type");
                ("unknown", Outcome::SkippedUnknown)
            }
            Err(e) => {
                let ty = headers
                    .iter()
                    .find(|(k, _)| *k == "ce_type")
                    .and_then(|(_, v)| FactType::parse(v))
                    .map_or("unparseable", FactType::as_str);
                let reason = format!("{}: {e}", e.label());
                tracing::warn!(partition = raw.partition, offset = raw.offset, reason = %reason, "fact cannot be parsed: dead-lettered");
                self.dead_letter(raw, &reason, e.label(), &mut waiter).await;
                (ty, Outcome::DeadLettered)
            }
            Ok(fact) => {
                let _guard = self.parts.locks.lock(&fact.incident_id).await;
                (
                    fact.fact_type().as_str(),
                    self.apply(raw, &fact, &mut waiter).await,
                )
            }
        };
        waiter.done();
        self.parts.metrics.consumed(fact_type, outcome.as_str());
        outcome
    }

    async fn apply(&self, raw: &RawFact, fact: &Fact, waiter: &mut Waiter<'_>) -> Outcome {
        loop {
            match self.attempt(raw.partition, fact).await {
                Step::Done(o) => return o,
                Step::Wait(why, retry_after) => waiter.wait(why, retry_after).await,
                Step::Rejected(reason) => {
                    tracing::warn!(incident = %fact.incident_id, ce_id = %fact.ce_id, reason = %reason, "fact rejected: dead-lettered");
                    self.dead_letter(raw, &reason, "rejected", waiter).await;
                    // The fact happened even if a target refused it: the entry moves on, so a
                    // replay does nothing (and dead-letters nothing) again.
                    while let Err(e) = self
                        .parts
                        .ledger
                        .complete(Completion::of(fact), raw.partition)
                        .await
                    {
                        waiter.wait(e.to_string(), None).await;
                    }
                    return Outcome::DeadLettered;
                }
            }
        }
    }

    async fn attempt(&self, partition: i32, fact: &Fact) -> Step {
        let p = &self.parts;
        let entry = match p.ledger.get(&fact.incident_id).await {
            Ok(e) => e,
            Err(e) => return Step::Wait(e.to_string(), None),
        };
        if fact.revision <= entry.revision {
            tracing::debug!(incident = %fact.incident_id, revision = fact.revision, ledger = entry.revision, "replayed fact: nothing to do");
            return Step::Done(Outcome::Replay);
        }
        let now = (p.clock)();
        let mut rejected = Vec::new();
        for target in p.targets.iter() {
            let name = target.target();
            if entry
                .target(name)
                .is_some_and(|r| r.revision >= fact.revision)
            {
                continue;
            }
            match target.apply(fact, &entry, now).await {
                Ok(Some(record)) => {
                    if let Err(e) = p
                        .ledger
                        .put_target(&fact.incident_id, partition, name, record)
                        .await
                    {
                        return Step::Wait(e.to_string(), None);
                    }
                    p.metrics.action(name, "applied");
                }
                Ok(None) => p.metrics.action(name, "noop"),
                Err(ActionError::Unavailable {
                    reason,
                    retry_after,
                    ..
                }) => {
                    p.metrics.action(name, "unavailable");
                    return Step::Wait(format!("{name} unavailable: {reason}"), retry_after);
                }
                Err(e @ ActionError::Rejected { .. }) => {
                    p.metrics.action(name, "rejected");
                    rejected.push(e.to_string());
                }
            }
        }
        if !rejected.is_empty() {
            return Step::Rejected(rejected.join("; "));
        }
        match p.ledger.complete(Completion::of(fact), partition).await {
            Ok(()) => Step::Done(Outcome::Applied),
            Err(e) => Step::Wait(e.to_string(), None),
        }
    }

    async fn dead_letter(
        &self,
        raw: &RawFact,
        reason: &str,
        label: &'static str,
        waiter: &mut Waiter<'_>,
    ) {
        while let Err(e) = self.dlq.send(raw, reason).await {
            waiter.wait(e.to_string(), None).await;
        }
        self.parts.metrics.dead_letter(label);
    }
}

/// The waiting of one fact: the wait asked for or backoff, and the caller's callback.
struct Waiter<'a> {
    handler: &'a FactHandler,
    partition: i32,
    on_wait: &'a OnWait<'a>,
    /// Waits so far.
    waits: u32,
    /// Waits that used the exponential backoff (a provider's own wait does not grow it).
    backoffs: u32,
}

impl<'a> Waiter<'a> {
    fn new(handler: &'a FactHandler, partition: i32, on_wait: &'a OnWait<'a>) -> Self {
        Waiter {
            handler,
            partition,
            on_wait,
            waits: 0,
            backoffs: 0,
        }
    }

    async fn wait(&mut self, why: String, retry_after: Option<Duration>) {
        self.waits += 1;
        let wait = Backoff::asked(retry_after).unwrap_or_else(|| {
            self.backoffs += 1;
            self.handler.parts.backoff.wait(self.backoffs)
        });
        (self.on_wait)(Some(&why));
        // The first wait and then ever more rarely: a long outage does not flood the log.
        if self.waits.is_power_of_two() {
            tracing::warn!(partition = self.partition, attempt = self.waits, wait_ms = wait.as_millis() as u64, reason = %why, "fact waits for an unavailable target");
        } else {
            tracing::debug!(partition = self.partition, attempt = self.waits, wait_ms = wait.as_millis() as u64, reason = %why, "fact waits for an unavailable target");
        }
        tokio::time::sleep(wait).await;
    }

    fn done(&mut self) {
        if self.waits > 0 {
            (self.on_wait)(None);
            self.waits = 0;
            self.backoffs = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_a_provider_wait_is_honoured_exactly() {
        let b = Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.wait(1), Duration::from_secs(1));
        assert_eq!(b.wait(2), Duration::from_secs(2));
        assert_eq!(b.wait(4), Duration::from_secs(8));
        assert_eq!(b.wait(30), Duration::from_secs(60));
        // PagerDuty's one second is one second, however long the fact has waited.
        assert_eq!(
            Backoff::asked(Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            Backoff::asked(Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            Backoff::asked(Some(Duration::from_secs(86400))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            Backoff::asked(Some(Duration::from_millis(1))),
            Some(MIN_RETRY_AFTER)
        );
        // Zero (a half-open circuit's trial under way) or nothing: the backoff applies.
        assert_eq!(Backoff::asked(Some(Duration::ZERO)), None);
        assert_eq!(Backoff::asked(None), None);
    }
}
