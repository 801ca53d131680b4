//! One partition's facts in flight: different incidents at once, one incident in order.
//!
//! A partition's records arrive in offset order. [`run`] starts each one at once, unless an
//! earlier record with the same key (one incident: `incident:<id>`) is still being handled —
//! then it waits behind it — or `limit` records are already being worked on — then it waits
//! its turn. So one incident's facts keep their order (DESIGN §3.2), while a throttled or slow
//! call for one incident holds up no other: a PagerDuty `Retry-After` costs that incident a
//! second, not the partition.
//!
//! - **A waiting fact leaves its place.** `limit` bounds the facts being worked on; a fact
//!   that waits for an unavailable target (a throttle's `Retry-After`, an open circuit) does
//!   not count against it, so the next one starts meanwhile and the partition's rate is what
//!   the provider allows rather than `limit` divided by the wait. Facts in hand, waiting or
//!   not, are bounded by [`in_hand`] (32 × `limit`, at most 4096); a `limit` of 1 keeps strict
//!   offset order (nothing overtakes a waiting fact).
//!
//! - **What may be committed** is the offset after the longest handled prefix
//!   ([`LaneEvent::Handled`]): a later fact finished early moves nothing past an earlier one
//!   still in hand.
//! - **Waiting.** While every fact in hand waits for an unavailable target (or the ledger)
//!   and none is left to start, nothing in the partition can progress: the partition is
//!   *waiting* ([`LaneEvent::Waiting`]; the [`WaitBoard`] shows it in
//!   `sre_facts_partitions_waiting` and `/readyz` degraded detail). One fact waiting on a
//!   throttle while others go on is not a waiting partition. A waiting partition that holds
//!   as many facts as it may is *full* ([`LaneEvent::Full`]): the source pauses it, so a long
//!   outage does not grow its backlog (and a partition whose throttled facts wait while no
//!   record has arrived yet to take their place is not paused for that).
//! - **Abandoning.** Dropping the future (a revoked partition, a stop, a killed actor) drops
//!   every fact in hand, and takes the partition off the board.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::handler::{FactHandler, RawFact, WaitBoard};

/// Facts in hand per partition, waiting ones included, at most this many times `limit`
/// (a waiting fact is small: its record and its sleeping handler, a few KiB)...
pub const WAITING_PER_SLOT: usize = 32;
/// ... and never more than this many (unless `limit` itself is larger).
pub const MAX_IN_HAND: usize = 4096;

/// Facts in hand at most, waiting ones included: [`WAITING_PER_SLOT`] × `limit` up to
/// [`MAX_IN_HAND`], but one for a limit of one (strict offset order: nothing overtakes a
/// waiting fact).
pub fn in_hand(limit: usize) -> usize {
    if limit <= 1 {
        1
    } else {
        limit
            .saturating_mul(WAITING_PER_SLOT)
            .min(MAX_IN_HAND)
            .max(limit)
    }
}

/// What a handled fact is called with: `Some(why)` each time it waits, `None` when it goes on.
pub type WaitFn = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// Handles one fact to its end (the [`FactHandler`], or a test's own).
pub type HandleFn = Arc<dyn Fn(RawFact, WaitFn) -> BoxFuture<'static, ()> + Send + Sync>;

/// What the partition tells its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaneEvent {
    /// `count` more facts were handled; `next` is the offset after the longest handled prefix
    /// (what may be committed).
    Handled {
        /// Facts handled since the last event.
        count: usize,
        /// The offset to commit.
        next: i64,
    },
    /// Every fact in hand waits (`true`), or one goes on again (`false`): what the
    /// [`WaitBoard`] shows.
    Waiting(bool),
    /// Every fact in hand waits and the partition holds as many as it may (`true`: take no
    /// more, pause the partition), or it can take more again (`false`).
    Full(bool),
    /// How many facts in hand wait now (sent when it changes): they take no place among
    /// `limit`, so the source need not count them against its intake either.
    Waits(usize),
}

/// The [`HandleFn`] of a [`FactHandler`].
pub fn handler_fn(handler: Arc<FactHandler>) -> HandleFn {
    Arc::new(move |raw: RawFact, on_wait: WaitFn| {
        let h = handler.clone();
        Box::pin(async move {
            h.handle(&raw, &*on_wait).await;
        })
    })
}

/// Which facts are where.
#[derive(Default)]
struct Lanes {
    /// Offsets received and not yet handled.
    pending: BTreeSet<i64>,
    /// The offset after the last one received.
    received: Option<i64>,
    /// Keys with a fact in hand (started or ready), and the facts queued behind it.
    busy: HashMap<Option<String>, VecDeque<RawFact>>,
    /// Facts free to start once fewer than `limit` are in flight.
    ready: VecDeque<RawFact>,
    /// Facts being handled.
    in_flight: usize,
    /// Facts in flight that wait, by offset, and why.
    waits: BTreeMap<i64, String>,
}

impl Lanes {
    /// Takes a record; the ones now free to start go to `ready`.
    fn admit(&mut self, raw: RawFact) {
        self.pending.insert(raw.offset);
        self.received = Some(raw.offset + 1);
        match self.busy.get_mut(&raw.key) {
            Some(behind) => behind.push_back(raw),
            None => {
                self.busy.insert(raw.key.clone(), VecDeque::new());
                self.ready.push_back(raw);
            }
        }
    }

    /// A fact ended: the next one of its key becomes ready.
    fn finish(&mut self, key: Option<String>, offset: i64) {
        self.pending.remove(&offset);
        self.waits.remove(&offset);
        self.in_flight -= 1;
        let next = self.busy.get_mut(&key).and_then(VecDeque::pop_front);
        match next {
            Some(raw) => self.ready.push_back(raw),
            None => {
                self.busy.remove(&key);
            }
        }
    }

    /// What may be committed.
    fn next(&self) -> Option<i64> {
        self.pending.first().copied().or(self.received)
    }

    /// Facts in flight that do not wait: the ones `limit` bounds.
    fn working(&self) -> usize {
        self.in_flight - self.waits.len()
    }

    /// Whether the next ready fact may start.
    fn may_start(&self, limit: usize) -> bool {
        !self.ready.is_empty() && self.working() < limit && self.in_flight < in_hand(limit)
    }

    /// Why the partition waits: every fact in flight waits and no other can start (the
    /// earliest one's reason).
    fn waiting(&self, limit: usize) -> Option<&str> {
        (self.in_flight > 0 && self.working() == 0 && !self.may_start(limit))
            .then(|| self.waits.values().next().map(String::as_str))
            .flatten()
    }

    /// Every fact in flight waits and no more may be in hand: the source should pause.
    fn full(&self, limit: usize) -> bool {
        self.waiting(limit).is_some() && self.in_flight >= in_hand(limit)
    }
}

/// Takes the partition off the board when the partition's facts are abandoned.
struct OnBoard {
    board: Option<WaitBoard>,
    partition: i32,
    why: Option<String>,
    /// Facts of this partition counted in `sre_facts_waiting_facts`.
    waits: usize,
}

impl OnBoard {
    fn set_waits(&mut self, waits: usize) {
        if let Some(b) = &self.board {
            b.facts_waiting(waits as i64 - self.waits as i64);
        }
        self.waits = waits;
    }

    fn set(&mut self, why: Option<&str>) {
        if self.why.as_deref() == why {
            return;
        }
        self.why = why.map(str::to_owned);
        if let Some(b) = &self.board {
            b.set(self.partition, self.why.clone());
        }
    }
}

impl Drop for OnBoard {
    fn drop(&mut self) {
        self.set(None);
        self.set_waits(0);
    }
}

/// Handles partition `partition`'s records from `records` (in offset order) with `handle`,
/// at most `limit` at once (not counting facts that wait) and one at a time per key, telling
/// `events` what was handled and whether the partition waits. Ends when `records` is closed
/// and everything in hand is handled.
pub async fn run(
    partition: i32,
    limit: usize,
    mut records: mpsc::UnboundedReceiver<RawFact>,
    handle: HandleFn,
    board: Option<WaitBoard>,
    events: impl Fn(LaneEvent) + Send + 'static,
) {
    let limit = limit.max(1);
    let (wait_tx, mut waits) = mpsc::unbounded_channel::<(i64, Option<String>)>();
    let mut lanes = Lanes::default();
    let mut running: FuturesUnordered<BoxFuture<'static, (Option<String>, i64)>> =
        FuturesUnordered::new();
    let mut on_board = OnBoard {
        board,
        partition,
        why: None,
        waits: 0,
    };
    let mut open = true;
    let mut full = false;
    loop {
        while lanes.may_start(limit) {
            let Some(raw) = lanes.ready.pop_front() else {
                break;
            };
            lanes.in_flight += 1;
            let (key, offset) = (raw.key.clone(), raw.offset);
            let tx = wait_tx.clone();
            let on_wait: WaitFn = Arc::new(move |why: Option<&str>| {
                let _ = tx.send((offset, why.map(str::to_owned)));
            });
            let fut = handle(raw, on_wait);
            running.push(Box::pin(async move {
                fut.await;
                (key, offset)
            }));
        }
        if lanes.waits.len() != on_board.waits {
            on_board.set_waits(lanes.waits.len());
            events(LaneEvent::Waits(on_board.waits));
        }
        let was_waiting = on_board.why.is_some();
        let waiting = lanes.waiting(limit).map(str::to_owned);
        on_board.set(waiting.as_deref());
        if was_waiting != waiting.is_some() {
            events(LaneEvent::Waiting(waiting.is_some()));
        }
        if full != lanes.full(limit) {
            full = !full;
            events(LaneEvent::Full(full));
        }
        if !open && running.is_empty() {
            break;
        }
        tokio::select! {
            Some((key, offset)) = running.next(), if !running.is_empty() => {
                lanes.finish(key, offset);
                // Whatever else ended meanwhile, in one event.
                let mut count = 1;
                while let Some(Some((key, offset))) = futures::FutureExt::now_or_never(running.next()) {
                    lanes.finish(key, offset);
                    count += 1;
                }
                if let Some(next) = lanes.next() {
                    events(LaneEvent::Handled { count, next });
                }
            }
            Some((offset, why)) = waits.recv() => {
                // A late word from a fact already handled changes nothing.
                if lanes.pending.contains(&offset) {
                    match why {
                        Some(why) => {
                            lanes.waits.insert(offset, why);
                        }
                        None => {
                            lanes.waits.remove(&offset);
                        }
                    }
                }
            }
            raw = records.recv(), if open => match raw {
                Some(raw) => lanes.admit(raw),
                None => open = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    /// A handler whose facts end when the test says so, and which records starts and ends.
    #[derive(Default)]
    struct Script {
        log: Mutex<Vec<String>>,
        gates: Mutex<HashMap<i64, Arc<Notify>>>,
        waiting: Mutex<HashMap<i64, WaitFn>>,
        peak: Mutex<(usize, usize)>,
    }

    impl Script {
        fn gate(&self, offset: i64) -> Arc<Notify> {
            self.gates
                .lock()
                .unwrap()
                .entry(offset)
                .or_default()
                .clone()
        }

        fn release(&self, offset: i64) {
            self.gate(offset).notify_one();
        }

        fn wait(&self, offset: i64, why: Option<&str>) {
            let f = self.waiting.lock().unwrap()[&offset].clone();
            f(why);
        }

        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }

        fn handle_fn(self: &Arc<Self>) -> HandleFn {
            let s = self.clone();
            Arc::new(move |raw: RawFact, on_wait: WaitFn| {
                let s = s.clone();
                Box::pin(async move {
                    let gate = s.gate(raw.offset);
                    s.waiting.lock().unwrap().insert(raw.offset, on_wait);
                    {
                        let mut p = s.peak.lock().unwrap();
                        p.0 += 1;
                        p.1 = p.1.max(p.0);
                    }
                    s.log.lock().unwrap().push(format!("start {}", raw.offset));
                    gate.notified().await;
                    s.log.lock().unwrap().push(format!("end {}", raw.offset));
                    s.peak.lock().unwrap().0 -= 1;
                })
            })
        }
    }

    fn rec(offset: i64, key: &str) -> RawFact {
        RawFact {
            partition: 0,
            offset,
            key: Some(key.into()),
            headers: Vec::new(),
            value: Vec::new(),
        }
    }

    struct Rig {
        script: Arc<Script>,
        tx: mpsc::UnboundedSender<RawFact>,
        events: mpsc::UnboundedReceiver<LaneEvent>,
        task: tokio::task::JoinHandle<()>,
        /// The last [`LaneEvent::Waits`].
        waits: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Rig {
        fn waits(&self) -> usize {
            self.waits.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn rig(limit: usize) -> Rig {
        let script = Arc::new(Script::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let (etx, events) = mpsc::unbounded_channel();
        let waits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = waits.clone();
        let task = tokio::spawn(run(0, limit, rx, script.handle_fn(), None, move |e| {
            // The count of waiting facts is kept aside; the events are what the tests read.
            if let LaneEvent::Waits(n) = e {
                w.store(n, std::sync::atomic::Ordering::SeqCst);
            } else {
                let _ = etx.send(e);
            }
        }));
        Rig {
            script,
            tx,
            events,
            task,
            waits,
        }
    }

    /// Lets every ready task run (paused time: no timers involved).
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn different_incidents_go_at_once_and_one_incident_in_order() {
        let mut r = rig(8);
        for (o, k) in [(0, "a"), (1, "b"), (2, "a"), (3, "c")] {
            r.tx.send(rec(o, k)).unwrap();
        }
        settle().await;
        // a's second fact waits behind its first; b and c are not held up by a.
        assert_eq!(r.script.log(), ["start 0", "start 1", "start 3"]);
        r.script.release(1);
        r.script.release(3);
        settle().await;
        // Handled out of order: nothing is committable past offset 0, still in hand.
        let mut seen = Vec::new();
        while let Ok(e) = r.events.try_recv() {
            seen.push(e);
        }
        assert!(seen
            .iter()
            .all(|e| matches!(e, LaneEvent::Handled { next: 0, .. })));
        assert_eq!(
            seen.iter()
                .map(|e| match e {
                    LaneEvent::Handled { count, .. } => *count,
                    _ => 0,
                })
                .sum::<usize>(),
            2
        );
        r.script.release(0);
        settle().await;
        assert_eq!(
            r.script.log(),
            ["start 0", "start 1", "start 3", "end 1", "end 3", "end 0", "start 2"]
        );
        assert_eq!(
            r.events.try_recv().unwrap(),
            LaneEvent::Handled { count: 1, next: 2 }
        );
        r.script.release(2);
        settle().await;
        assert_eq!(
            r.events.try_recv().unwrap(),
            LaneEvent::Handled { count: 1, next: 4 }
        );
        drop(r.tx);
        tokio::time::timeout(Duration::from_secs(1), r.task)
            .await
            .expect("ends once its records are closed and handled")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_at_once_and_a_limit_of_one_is_strict_order() {
        let mut r = rig(2);
        for o in 0..5 {
            r.tx.send(rec(o, &format!("inc-{o}"))).unwrap();
        }
        settle().await;
        assert_eq!(r.script.log(), ["start 0", "start 1"]);
        for o in 0..5 {
            r.script.release(o);
            settle().await;
        }
        assert_eq!(r.script.peak.lock().unwrap().1, 2);
        let mut last = 0;
        while let Ok(e) = r.events.try_recv() {
            if let LaneEvent::Handled { next, .. } = e {
                last = next;
            }
        }
        assert_eq!(last, 5);

        let r = rig(1);
        for o in 0..4 {
            r.tx.send(rec(o, &format!("inc-{o}"))).unwrap();
        }
        for o in 0..4 {
            settle().await;
            r.script.release(o);
        }
        settle().await;
        assert_eq!(
            r.script.log(),
            ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_partition_waits_only_while_every_fact_in_hand_waits() {
        let mut r = rig(4);
        r.tx.send(rec(0, "a")).unwrap();
        r.tx.send(rec(1, "b")).unwrap();
        settle().await;
        // One of two waits (a throttle): the partition goes on.
        r.script.wait(0, Some("pagerduty unavailable: throttled"));
        settle().await;
        assert!(r.events.try_recv().is_err());
        // Both wait (an outage): the partition waits.
        r.script
            .wait(1, Some("pagerduty unavailable: circuit open"));
        settle().await;
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(true));
        // One goes on: no longer waiting.
        r.script.wait(1, None);
        settle().await;
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(false));
        r.script.wait(1, Some("again"));
        settle().await;
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(true));
        // A new fact in hand that does not wait: the partition goes on.
        r.tx.send(rec(2, "c")).unwrap();
        settle().await;
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(false));
        for o in 0..3 {
            r.script.release(o);
        }
        settle().await;
        let mut last = 0;
        while let Ok(e) = r.events.try_recv() {
            assert!(!matches!(e, LaneEvent::Waiting(true)), "{e:?}");
            if let LaneEvent::Handled { next, .. } = e {
                last = next;
            }
        }
        assert_eq!(last, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_fact_leaves_its_place_to_the_next_within_a_bound() {
        let cap = in_hand(2) as i64;
        let mut r = rig(2);
        for o in 0..cap + 2 {
            r.tx.send(rec(o, &format!("inc-{o}"))).unwrap();
        }
        settle().await;
        assert_eq!(r.script.log(), ["start 0", "start 1"]);
        // Each fact that starts waits (a throttle): the next one takes its place, and the
        // partition is not waiting while another can start.
        for o in 0..cap {
            r.script.wait(o, Some("pagerduty unavailable: throttled"));
            settle().await;
        }
        let started: Vec<String> = (0..cap).map(|o| format!("start {o}")).collect();
        assert_eq!(r.script.log(), started);
        assert_eq!(r.waits(), cap as usize, "the source is told how many wait");
        // Facts in hand are bounded: with 32 × limit waiting, no more start, the partition
        // waits and is full (the source pauses it).
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(true));
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Full(true));
        assert!(r.events.try_recv().is_err());
        // One goes on again: no longer waiting; when it ends the next starts.
        r.script.wait(3, None);
        settle().await;
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(false));
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Full(false));
        r.script.release(3);
        settle().await;
        assert_eq!(
            r.script.log().last().map(String::as_str),
            Some(format!("start {cap}").as_str())
        );
        assert_eq!(r.waits(), cap as usize - 1);
        // Nothing committable past offset 0, still waiting.
        let mut seen = Vec::new();
        while let Ok(e) = r.events.try_recv() {
            seen.push(e);
        }
        assert!(
            seen.contains(&LaneEvent::Handled { count: 1, next: 0 }),
            "{seen:?}"
        );

        // A limit of one is strict offset order: nothing overtakes a waiting fact.
        let mut r = rig(1);
        r.tx.send(rec(0, "a")).unwrap();
        r.tx.send(rec(1, "b")).unwrap();
        settle().await;
        r.script.wait(0, Some("pagerduty unavailable: throttled"));
        settle().await;
        assert_eq!(r.script.log(), ["start 0"]);
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(true));
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Full(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_partition_whose_facts_wait_with_room_to_spare_waits_but_is_not_full() {
        let mut r = rig(4);
        r.tx.send(rec(0, "a")).unwrap();
        r.tx.send(rec(1, "b")).unwrap();
        settle().await;
        r.script.wait(0, Some("pagerduty unavailable: throttled"));
        r.script.wait(1, Some("pagerduty unavailable: throttled"));
        settle().await;
        // Shown as waiting, but not paused: a record that arrives starts at once.
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(true));
        assert!(r.events.try_recv().is_err(), "not full");
        assert_eq!(r.waits(), 2);
        r.tx.send(rec(2, "c")).unwrap();
        settle().await;
        assert_eq!(r.script.log(), ["start 0", "start 1", "start 2"]);
        assert_eq!(r.events.try_recv().unwrap(), LaneEvent::Waiting(false));
    }
}
