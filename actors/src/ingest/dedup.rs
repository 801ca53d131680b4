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
//! Bounds: the window and the claims in flight together hold at most `max_entries` keys; a
//! claim that would pass it is refused whole ([`ClaimRefused::WindowFull`]), never made room for
//! by eviction. A claim carries a lease (`claim_lease`): one its owner never settles is released
//! by the periodic sweep, or taken over by the next claimant of the key (the owners' side of the
//! protocol, which releases claims on drop, is in [`super::claim`]).
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
    /// Being published by another request; resolves to whether that became durable (`false`
    /// too when that claim is released without a settle: its owner left, or its lease ran out).
    Pending(oneshot::Receiver<bool>),
}

/// Why a claim was refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefused {
    /// The window and the claims in flight already hold `max_entries` keys. Nothing was
    /// claimed; the sender retries later (never evicting: an evicted key would be re-published).
    #[error("the deduplication window is full ({max} keys); retry later")]
    WindowFull {
        /// The configured bound.
        max: usize,
    },
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
    /// Most keys held at once (window entries plus claims in flight).
    pub max_entries: usize,
    /// How long a claim may stay in flight without a settle before the actor releases it (as
    /// not durable). Longer than any publish its owner waits for, so it only frees claims
    /// whose owner is gone without a trace.
    pub claim_lease: Duration,
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
    /// Kubernetes health transitions and Warning events (`k8s:`, `k8sevent:` keys).
    Kubernetes,
    /// ArgoCD application health (`argocd:` keys).
    Argocd,
    /// SLI windows (`sli:` keys).
    Sli,
}

impl DedupSource {
    const ALL: [DedupSource; 4] = [
        DedupSource::Alertmanager,
        DedupSource::Kubernetes,
        DedupSource::Argocd,
        DedupSource::Sli,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DedupSource::Alertmanager => "alertmanager",
            DedupSource::Kubernetes => "kubernetes",
            DedupSource::Argocd => "argocd",
            DedupSource::Sli => "sli",
        }
    }
}

/// The answer to a [`DedupMsg::Claim`].
pub type ClaimReply = Result<Vec<Claim>, ClaimRefused>;

/// Messages.
pub enum DedupMsg {
    /// Claims keys (distinct within the call), answering one [`Claim`] each, in order, or
    /// refusing them all. If the requester is gone by the time the answer is sent, its fresh
    /// keys are released at once.
    Claim(DedupSource, Vec<u64>, RpcReplyPort<ClaimReply>),
    /// Releases claimed keys: into the window when `durable`, else forgotten.
    Settle {
        /// The keys claimed fresh.
        keys: Vec<u64>,
        /// Whether their intents are durable.
        durable: bool,
    },
    /// How many keys are in the window.
    Len(RpcReplyPort<usize>),
    /// How many keys are claimed and not settled.
    InFlight(RpcReplyPort<usize>),
    /// Releases claims whose lease ran out (sent to itself periodically).
    Sweep,
}

/// A key being published, and who waits for its outcome.
struct InFlight {
    /// The claim's lease ends here.
    until: Instant,
    waiters: Vec<oneshot::Sender<bool>>,
}

/// Aborts the sweep timer when the state drops (ractor runs no `post_stop` for a killed actor).
struct Ticker(tokio::task::JoinHandle<()>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decision counters of one source: new, duplicate, in_flight, window_full.
type Decisions = [Counter; 4];

/// Private state.
pub struct DedupState {
    window: Duration,
    max_entries: usize,
    lease: Duration,
    shared: Arc<Window>,
    queue: VecDeque<(u64, u64)>,
    in_flight: Map<InFlight>,
    slot: ActorSlot<DedupMsg>,
    entries: Gauge,
    in_flight_gauge: Gauge,
    released: [Counter; 2],
    decisions: [Decisions; 4],
    _ticker: Ticker,
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
        let sweep_every = (args.claim_lease / 2).max(Duration::from_millis(100));
        let mut state = DedupState {
            window: args.window,
            max_entries: args.max_entries,
            lease: args.claim_lease,
            shared: args.shared,
            queue: VecDeque::new(),
            in_flight: Map::default(),
            slot: args.slot,
            entries: args.metrics.window_entries("all"),
            in_flight_gauge: args.metrics.claims_in_flight(),
            released: ["requester_gone", "lease_expired"]
                .map(|reason| args.metrics.claims_released(reason)),
            decisions: DedupSource::ALL.map(|source| {
                ["new", "duplicate", "in_flight", "window_full"]
                    .map(|d| args.metrics.decision(source.as_str(), d))
            }),
            _ticker: Ticker(myself.send_interval(sweep_every, || DedupMsg::Sweep)),
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
        state.in_flight_gauge.set(0);
        if state.shared.len() > state.max_entries {
            tracing::warn!(
                entries = state.shared.len(),
                max_entries = state.max_entries,
                "the rebuilt dedup window holds more keys than max_entries: new keys are refused until it drains"
            );
        }
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
            DedupMsg::InFlight(reply) => {
                let _ = reply.send(state.in_flight.len());
            }
            DedupMsg::Sweep => on_sweep(state),
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

    /// Forgets an in-flight key, telling its waiters whether it became durable.
    fn release(&mut self, key: u64, durable: bool) -> bool {
        let Some(claim) = self.in_flight.remove(&key) else {
            return false;
        };
        for w in claim.waiters {
            let _ = w.send(durable);
        }
        true
    }

    /// Releases (as not durable) the claims whose lease ran out. Claims in flight are few (the
    /// publishes under way), so a scan of them all is cheap at the sweep's pace.
    fn sweep_leases(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, c)| c.until <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.release_expired(key);
        }
    }

    fn release_expired(&mut self, key: u64) {
        self.release(key, false);
        self.released[1].inc();
        tracing::warn!(
            key,
            lease_ms = self.lease.as_millis() as u64,
            "a dedup claim was never settled; released as not durable"
        );
    }

    fn update_gauges(&self) {
        self.entries.set(self.shared.len() as i64);
        self.in_flight_gauge.set(self.in_flight.len() as i64);
    }
}

fn on_claim(
    state: &mut DedupState,
    source: DedupSource,
    keys: Vec<u64>,
    reply: RpcReplyPort<ClaimReply>,
) {
    state.expire();
    let decisions = &state.decisions[source as usize];
    if reply.is_closed() {
        // The requester left while the claim was queued: claim nothing.
        return;
    }
    let new = keys
        .iter()
        .filter(|k| !state.shared.contains(**k) && !state.in_flight.contains_key(k))
        .count();
    if new > 0 && state.shared.len() + state.in_flight.len() + new > state.max_entries {
        decisions[3].inc_by(keys.len() as u64);
        let _ = reply.send(Err(ClaimRefused::WindowFull {
            max: state.max_entries,
        }));
        return;
    }
    let now = Instant::now();
    let until = now + state.lease;
    let mut fresh = Vec::new();
    let claims = keys
        .into_iter()
        .map(|key| {
            if state.shared.contains(key) {
                decisions[1].inc();
                return Claim::Duplicate;
            }
            if state.in_flight.get(&key).is_some_and(|c| c.until <= now) {
                // Its owner never settled and its lease is over: this claimant takes it.
                if let Some(old) = state.in_flight.remove(&key) {
                    for w in old.waiters {
                        let _ = w.send(false);
                    }
                }
                state.released[1].inc();
                tracing::warn!(
                    key,
                    "a dedup claim outlived its lease; taken over by a new claim"
                );
            }
            match state.in_flight.entry(key) {
                Entry::Occupied(mut claim) => {
                    let (tx, rx) = oneshot::channel();
                    claim.get_mut().waiters.push(tx);
                    decisions[2].inc();
                    Claim::Pending(rx)
                }
                Entry::Vacant(v) => {
                    v.insert(InFlight {
                        until,
                        waiters: Vec::new(),
                    });
                    fresh.push(key);
                    decisions[0].inc();
                    Claim::Fresh
                }
            }
        })
        .collect();
    if reply.send(Ok(claims)).is_err() {
        // Gone between the check and the answer: nobody will settle these.
        for key in fresh {
            state.release(key, false);
            state.released[0].inc();
        }
    }
    state.update_gauges();
}

fn on_settle(state: &mut DedupState, keys: Vec<u64>, durable: bool) {
    let until = state.shared.ms(Instant::now() + state.window);
    for key in keys {
        // A settle after the lease ran out (or after a restart of this actor) still records
        // what became durable.
        state.release(key, durable);
        if durable {
            state.insert(key, until);
        }
    }
    state.update_gauges();
}

fn on_sweep(state: &mut DedupState) {
    state.expire();
    state.sweep_leases();
    state.update_gauges();
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
