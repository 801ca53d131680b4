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
//! releases the key so the sender's retry is accepted as new. On start the window is rebuilt
//! from the sink's recent records, so a restart does not re-emit.
//!
//! The [`Window`] is shared read-mostly data with a single writer, this actor: request handlers
//! read it to answer a request whose every alert is a duplicate without a message round trip
//! (the steady state of AlertManager's re-notifications). Claims, in-flight waiters and expiry
//! stay private to the actor.
//!
//! Memory: a window entry is a hash map slot (key, expiry) and an expiry-queue slot, about
//! 40–90 bytes with the containers' growth slack. Two distinct keys share a 64-bit hash with
//! probability ~n/2^64 per lookup (5·10⁻¹⁴ at a million entries).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};
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
    key_hash_parts(&[idempotency_key])
}

/// [`key_hash`] of the concatenation of `parts`, without building it (SipHash streams bytes,
/// so the result is the same).
pub fn key_hash_parts(parts: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        h.write(p.as_bytes());
    }
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

const SHARDS: usize = 16;

/// The window: key → expiry (milliseconds after `base`), in shards so readers rarely meet.
/// Written only by the `Dedup` actor; read by anyone.
#[derive(Debug)]
pub struct Window {
    base: Instant,
    shards: Vec<RwLock<Map<u64>>>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            base: Instant::now(),
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
        }
    }
}

impl Window {
    fn shard(&self, key: u64) -> &RwLock<Map<u64>> {
        &self.shards[(key >> 60) as usize % SHARDS]
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_millis() as u64
    }

    /// Whether `key` is in the window now.
    pub fn contains(&self, key: u64) -> bool {
        self.contains_all([key])
    }

    /// Whether every key is in the window now (one clock read for all).
    pub fn contains_all(&self, keys: impl IntoIterator<Item = u64>) -> bool {
        let now = self.ms(Instant::now());
        keys.into_iter().all(|key| {
            self.shard(key)
                .read()
                .expect("window shard")
                .get(&key)
                .is_some_and(|until| *until > now)
        })
    }

    /// Keys in the window (expired ones included until the actor sweeps them).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().expect("window shard").len())
            .sum()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, key: u64, until: u64) {
        self.shard(key)
            .write()
            .expect("window shard")
            .insert(key, until);
    }

    fn remove_if_expired(&self, key: u64, now: u64) {
        let mut shard = self.shard(key).write().expect("window shard");
        if let Entry::Occupied(e) = shard.entry(key) {
            if *e.get() <= now {
                e.remove();
            }
        }
    }

    fn clear(&self) {
        for s in &self.shards {
            s.write().expect("window shard").clear();
        }
    }
}

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
/// window is rebuilt from. Called on a blocking thread.
pub type Rebuild = Arc<dyn Fn(Duration) -> Result<Vec<(String, u64)>, String> + Send + Sync>;

/// The actor.
pub struct Dedup;

/// Its arguments.
pub struct DedupArgs {
    /// Window length.
    pub window: Duration,
    /// The shared window (also read by the webhook).
    pub shared: Arc<Window>,
    /// Where callers find it.
    pub slot: ActorSlot<DedupMsg>,
    /// Recent keys from the sink.
    pub rebuild: Rebuild,
    /// Metrics.
    pub metrics: IngestMetrics,
}

/// Who claims (the `source` label of `sre_dedup_decisions_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DedupSource {
    /// The AlertManager webhook (`am:` keys).
    Alertmanager,
    /// Kubernetes Warning events (`k8sevent:` keys).
    Kubernetes,
}

/// Messages.
pub enum DedupMsg {
    /// Claims keys (distinct within the call), answering one [`Claim`] each, in order.
    Claim(DedupSource, Vec<u64>, RpcReplyPort<Vec<Claim>>),
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
    shared: Arc<Window>,
    queue: VecDeque<(u64, u64)>,
    in_flight: Map<Vec<oneshot::Sender<bool>>>,
    slot: ActorSlot<DedupMsg>,
    entries: Gauge,
    decisions: [[Counter; 3]; 2],
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
            shared: args.shared,
            queue: VecDeque::new(),
            in_flight: Map::default(),
            slot: args.slot,
            entries: args.metrics.window_entries("all"),
            decisions: ["alertmanager", "kubernetes"].map(|source| {
                ["new", "duplicate", "in_flight"].map(|d| args.metrics.decision(source, d))
            }),
        };
        let (rebuild, window) = (args.rebuild.clone(), args.window);
        let recent = tokio::task::spawn_blocking(move || rebuild(window))
            .await?
            .map_err(|e| format!("cannot rebuild the dedup window: {e}"))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let now = state.shared.ms(Instant::now());
        state.shared.clear();
        let mut rebuilt = 0usize;
        for (key, at_ms) in recent {
            let ends_ms = at_ms + args.window.as_millis() as u64;
            if ends_ms > now_ms {
                state.insert(key_hash(&key), now + (ends_ms - now_ms));
                rebuilt += 1;
            }
        }
        // Entries came in append order; a restart's queue is ordered by expiry again.
        state.queue.make_contiguous().sort_unstable();
        state.entries.set(state.shared.len() as i64);
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
            DedupMsg::Claim(source, keys, reply) => on_claim(state, source, keys, reply),
            DedupMsg::Settle { keys, durable } => on_settle(state, keys, durable),
            DedupMsg::Len(reply) => {
                let _ = reply.send(state.shared.len());
            }
        };
        Ok(())
    }
}

impl DedupState {
    fn insert(&mut self, key: u64, until: u64) {
        self.shared.insert(key, until);
        self.queue.push_back((until, key));
    }

    fn expire(&mut self) {
        let now = self.shared.ms(Instant::now());
        while let Some(&(until, key)) = self.queue.front() {
            if until > now {
                break;
            }
            self.queue.pop_front();
            // A key re-inserted later carries a later expiry and stays.
            self.shared.remove_if_expired(key, now);
        }
    }
}

fn on_claim(
    state: &mut DedupState,
    source: DedupSource,
    keys: Vec<u64>,
    reply: RpcReplyPort<Vec<Claim>>,
) {
    state.expire();
    let decisions = &state.decisions[source as usize];
    let claims = keys
        .into_iter()
        .map(|key| {
            if state.shared.contains(key) {
                decisions[1].inc();
                return Claim::Duplicate;
            }
            match state.in_flight.entry(key) {
                Entry::Occupied(mut waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.get_mut().push(tx);
                    decisions[2].inc();
                    Claim::Pending(rx)
                }
                Entry::Vacant(v) => {
                    v.insert(Vec::new());
                    decisions[0].inc();
                    Claim::Fresh
                }
            }
        })
        .collect();
    state.entries.set(state.shared.len() as i64);
    let _ = reply.send(claims);
}

fn on_settle(state: &mut DedupState, keys: Vec<u64>, durable: bool) {
    let until = state.shared.ms(Instant::now() + state.window);
    for key in keys {
        let waiters = state.in_flight.remove(&key).unwrap_or_default();
        if durable {
            state.insert(key, until);
        }
        for w in waiters {
            let _ = w.send(durable);
        }
    }
    state.entries.set(state.shared.len() as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_parts_equals_hashing_the_whole_key() {
        // The window is rebuilt from whole keys read back from the sink, while requests hash
        // the parts: the two must agree or a restart would re-emit.
        let whole = "am:fbab788ec4c1018b:resolved:2022-07-29T11:13:27.3Z";
        let parts = [
            "am:",
            "fbab788ec4c1018b",
            ":",
            "resolved",
            ":",
            "2022-07-29T11:13:27.3Z",
        ];
        assert_eq!(key_hash(whole), key_hash_parts(&parts));
        assert_ne!(
            key_hash(whole),
            key_hash("am:fbab788ec4c1018b:firing:2022-07-29T11:13:27.3Z")
        );
    }
}
