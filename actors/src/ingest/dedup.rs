//! `Dedup`: the actor that owns the deduplication windows.
//!
//! Keys are 64-bit hashes of idempotency keys (`am:<fingerprint>:<status>:<startsAt>`), hashed
//! by the caller so the actor only looks up. A key is in one of three places:
//!
//! - **in flight**: claimed by a request whose intents are being published. A request that
//!   claims it meanwhile gets [`Claim::Pending`] and waits for the original's outcome.
//! - **in the window**: published durably less than `dedup_window` ago → [`Claim::Duplicate`].
//! - **nowhere** → [`Claim::Fresh`]: the caller now owns it and must [`DedupMsg::Settle`] it.
//!
//! A window entry is made only when a settle says the intents are durable; a failed publish
//! releases the key so the sender's retry is accepted as new. On start the windows are
//! rebuilt from the sink's recent records, so a restart does not re-emit.
//!
//! Memory: a window entry is a hash map slot (key, expiry) and an expiry-queue slot, about
//! 40–80 bytes with the containers' growth slack. Two distinct keys share a 64-bit hash with
//! probability ~n/2^64 per lookup (5·10⁻¹⁴ at a million entries).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sre_supervision::ActorSlot;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::metrics::IngestMetrics;

/// Hashes an idempotency key for the window (SipHash with fixed keys: stable within a build,
/// and the window is rebuilt from the sink's keys on every start).
pub fn key_hash(idempotency_key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(idempotency_key.as_bytes());
    h.finish()
}

/// Keys are already hashes: use them as they are.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// Not seen: the caller publishes it and settles it.
    Fresh,
    /// Published within the window.
    Duplicate,
    /// Being published by another request; resolves to whether that became durable.
    Pending(oneshot::Receiver<bool>),
}

/// Supplies the recent idempotency keys (and their append times in ms since the epoch) the
/// window is rebuilt from.
pub type Rebuild = Arc<dyn Fn(Duration) -> Result<Vec<(String, u64)>, String> + Send + Sync>;

/// The actor.
pub struct Dedup;

/// Its arguments.
pub struct DedupArgs {
    /// Window length.
    pub window: Duration,
    /// Where callers find it.
    pub slot: ActorSlot<DedupMsg>,
    /// Recent keys from the sink.
    pub rebuild: Rebuild,
    /// Metrics.
    pub metrics: IngestMetrics,
}

/// Messages.
pub enum DedupMsg {
    /// Claims keys (distinct within the call), answering one [`Claim`] each, in order.
    Claim(Vec<u64>, RpcReplyPort<Vec<Claim>>),
    /// Releases claimed keys: into the window when `durable`, else forgotten.
    Settle {
        /// The keys claimed fresh.
        keys: Vec<u64>,
        /// Whether their intents are durable.
        durable: bool,
    },
    /// How many keys are in the window.
    Len(RpcReplyPort<usize>),
}

/// Private state.
pub struct DedupState {
    window: Duration,
    expiry: Map<Instant>,
    queue: VecDeque<(Instant, u64)>,
    in_flight: Map<Vec<oneshot::Sender<bool>>>,
    slot: ActorSlot<DedupMsg>,
    entries: Gauge,
    decisions: [Counter; 3],
}

impl Actor for Dedup {
    type Msg = DedupMsg;
    type State = DedupState;
    type Arguments = DedupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DedupMsg>,
        args: DedupArgs,
    ) -> Result<DedupState, ActorProcessingErr> {
        let mut state = DedupState {
            window: args.window,
            expiry: Map::default(),
            queue: VecDeque::new(),
            in_flight: Map::default(),
            slot: args.slot,
            entries: args.metrics.window_entries("alertmanager"),
            decisions: ["new", "duplicate", "in_flight"]
                .map(|d| args.metrics.decision("alertmanager", d)),
        };
        let recent = (args.rebuild)(args.window)
            .map_err(|e| format!("cannot rebuild the dedup window: {e}"))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let now = Instant::now();
        let mut rebuilt = 0usize;
        for (key, at_ms) in recent {
            let ends_ms = at_ms + args.window.as_millis() as u64;
            if ends_ms > now_ms {
                state.insert(
                    key_hash(&key),
                    now + Duration::from_millis(ends_ms - now_ms),
                );
                rebuilt += 1;
            }
        }
        // Entries came in append order; a restart's window is ordered by expiry again.
        state.queue.make_contiguous().sort_unstable();
        state.entries.set(state.expiry.len() as i64);
        tracing::info!(entries = rebuilt, "dedup window rebuilt from the sink");
        state.slot.publish(myself);
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<DedupMsg>,
        state: &mut DedupState,
    ) -> Result<(), ActorProcessingErr> {
        state.slot.clear(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<DedupMsg>,
        msg: DedupMsg,
        state: &mut DedupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DedupMsg::Claim(keys, reply) => on_claim(state, keys, reply),
            DedupMsg::Settle { keys, durable } => on_settle(state, keys, durable),
            DedupMsg::Len(reply) => {
                let _ = reply.send(state.expiry.len());
            }
        }
        Ok(())
    }
}

impl DedupState {
    fn insert(&mut self, key: u64, until: Instant) {
        self.expiry.insert(key, until);
        self.queue.push_back((until, key));
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(until, key)) = self.queue.front() {
            if until > now {
                break;
            }
            self.queue.pop_front();
            // A key re-inserted later carries a later expiry: keep it.
            if let Entry::Occupied(e) = self.expiry.entry(key) {
                if *e.get() <= now {
                    e.remove();
                }
            }
        }
    }
}

fn on_claim(state: &mut DedupState, keys: Vec<u64>, reply: RpcReplyPort<Vec<Claim>>) {
    let now = Instant::now();
    state.expire(now);
    let claims = keys
        .into_iter()
        .map(|key| {
            if state.expiry.contains_key(&key) {
                state.decisions[1].inc();
                return Claim::Duplicate;
            }
            match state.in_flight.entry(key) {
                Entry::Occupied(mut waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.get_mut().push(tx);
                    state.decisions[2].inc();
                    Claim::Pending(rx)
                }
                Entry::Vacant(v) => {
                    v.insert(Vec::new());
                    state.decisions[0].inc();
                    Claim::Fresh
                }
            }
        })
        .collect();
    state.entries.set(state.expiry.len() as i64);
    let _ = reply.send(claims);
}

fn on_settle(state: &mut DedupState, keys: Vec<u64>, durable: bool) {
    let until = Instant::now() + state.window;
    for key in keys {
        let waiters = state.in_flight.remove(&key).unwrap_or_default();
        if durable {
            state.insert(key, until);
        }
        for w in waiters {
            let _ = w.send(durable);
        }
    }
    state.entries.set(state.expiry.len() as i64);
}
