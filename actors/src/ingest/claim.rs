//! Claim → publish → settle: the one protocol by which every producer of intents (the
//! AlertManager webhook, the cluster watchers, the ArgoCD pollers) makes an idempotency key's
//! intents durable once (DESIGN §3.2).
//!
//! 1. **Claim** the keys at the [`Dedup`](super::dedup::Dedup) actor ([`Delivery::claim`]):
//!    each is [`Verdict::Fresh`] (ours to publish), [`Verdict::Duplicate`] (durable within the
//!    window) or [`Verdict::InFlight`] (another producer is publishing it); or the claim is
//!    refused as a whole because the window is full.
//! 2. **Publish** the fresh keys' records ([`Delivery::publish`]), within a deadline.
//! 3. **Settle** the fresh keys with the outcome: into the window when durable, released
//!    otherwise. Then wait for the in-flight keys' outcomes ([`InFlight::outcomes`]) — after
//!    publishing our own, so two producers that each wait for the other's key cannot block
//!    each other.
//!
//! A claim is always released. The fresh keys live in a [`FreshClaims`] whose `Drop` settles
//! them as not durable: a request future dropped by a client hanging up, an actor killed
//! mid-emit, a panic on the way. A requester gone before the dedup actor answered is noticed
//! by the actor itself (its reply port is closed), and a claim that still outlives its lease
//! (`claim_lease`, longer than any publish deadline) is swept by the actor. A dedup actor
//! restarted meanwhile starts with no claims at all; a settle reaching it still records what
//! became durable.
//!
//! Without a dedup actor configured, every key is fresh and settling does nothing.

use std::time::Duration;

use sre_intents::IntentRecord;
use sre_supervision::ActorSlot;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::dedup::{Claim, DedupMsg, DedupSource};
use crate::emit::{EmitError, Emitter};

/// What the dedup actor said of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Claimed by us: publish it (its claim is in [`FreshClaims`]).
    Fresh,
    /// Durable within the window: publish nothing.
    Duplicate,
    /// Another producer is publishing it: see [`InFlight::outcomes`].
    InFlight,
}

/// Where a key stands once a delivery is over ([`Delivery::deliver`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Published durably by this delivery.
    Published,
    /// Already durable (within the window, or made durable by a concurrent producer).
    Duplicate,
    /// A concurrent producer's publish failed or did not finish in time: still owed.
    Undecided,
}

/// A producer's way to the dedup actor and the sink. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Delivery {
    dedup: Option<ActorSlot<DedupMsg>>,
    source: DedupSource,
    emitter: Emitter,
    deadline: Duration,
}

/// The outcome of [`Delivery::claim`].
#[derive(Debug)]
pub struct Claimed {
    /// One verdict per key, in the order claimed.
    pub verdicts: Vec<Verdict>,
    /// The keys claimed fresh; settled when published or dropped.
    pub fresh: FreshClaims,
    /// The keys another producer is publishing.
    pub in_flight: InFlight,
}

impl Claimed {
    /// Positions (in the claimed order) of the fresh keys.
    pub fn fresh_indices(&self) -> Vec<usize> {
        self.indices(Verdict::Fresh)
    }

    fn indices(&self, v: Verdict) -> Vec<usize> {
        (0..self.verdicts.len())
            .filter(|i| self.verdicts[*i] == v)
            .collect()
    }
}

/// Keys claimed fresh and not settled yet. Dropping it settles them as not durable.
#[derive(Debug)]
pub struct FreshClaims {
    /// Settled through the slot, so a dedup actor restarted meanwhile still learns which keys
    /// became durable.
    dedup: Option<ActorSlot<DedupMsg>>,
    keys: Vec<u64>,
}

impl FreshClaims {
    /// Whether no key was claimed fresh.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys were claimed fresh.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Settles every key with `durable`.
    pub fn settle(mut self, durable: bool) {
        self.release(durable);
    }

    fn release(&mut self, durable: bool) {
        let keys = std::mem::take(&mut self.keys);
        if let (Some(dedup), false) = (self.dedup.as_ref().and_then(|s| s.get()), keys.is_empty()) {
            // With no dedup actor running, its successor rebuilds the window from the sink.
            let _ = dedup.cast(DedupMsg::Settle { keys, durable });
        }
    }
}

impl Drop for FreshClaims {
    fn drop(&mut self) {
        self.release(false);
    }
}

/// Keys another producer was publishing when they were claimed.
#[derive(Debug, Default)]
pub struct InFlight(Vec<(usize, oneshot::Receiver<bool>)>);

impl InFlight {
    /// Whether no key was in flight.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many keys were in flight.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// For each in-flight key (by its position in the claim): whether the other producer made
    /// it durable by `deadline`. A publish that failed, was abandoned or is still running at
    /// the deadline answers `false`.
    pub async fn outcomes(self, deadline: Instant) -> Vec<(usize, bool)> {
        let mut out = Vec::with_capacity(self.0.len());
        for (i, rx) in self.0 {
            let durable = matches!(tokio::time::timeout_at(deadline, rx).await, Ok(Ok(true)));
            out.push((i, durable));
        }
        out
    }
}

impl Delivery {
    /// A delivery for `source`'s keys through `dedup` (none: every key is fresh) to `emitter`;
    /// a publish not confirmed within `deadline` fails with [`EmitError::Timeout`] and its
    /// keys are released.
    pub fn new(
        dedup: Option<ActorSlot<DedupMsg>>,
        source: DedupSource,
        emitter: Emitter,
        deadline: Duration,
    ) -> Self {
        Delivery {
            dedup,
            source,
            emitter,
            deadline,
        }
    }

    /// The longest a publish waits for durability.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Claims `keys` (distinct). The dedup actor's answer is awaited at most `deadline`.
    pub async fn claim(&self, keys: Vec<u64>) -> Result<Claimed, EmitError> {
        let Some(slot) = &self.dedup else {
            return Ok(Claimed {
                verdicts: vec![Verdict::Fresh; keys.len()],
                fresh: FreshClaims { dedup: None, keys },
                in_flight: InFlight::default(),
            });
        };
        if keys.is_empty() {
            return Ok(Claimed {
                verdicts: Vec::new(),
                fresh: FreshClaims {
                    dedup: None,
                    keys: Vec::new(),
                },
                in_flight: InFlight::default(),
            });
        }
        let dedup = slot.get().ok_or(EmitError::DedupUnavailable)?;
        let (tx, rx) = oneshot::channel();
        dedup
            .cast(DedupMsg::Claim(self.source, keys.clone(), tx.into()))
            .map_err(|_| EmitError::DedupUnavailable)?;
        // If this future is dropped while the claim is queued, the actor finds the reply port
        // closed and claims nothing (or releases what it just claimed).
        let claims = match tokio::time::timeout(self.deadline, rx).await {
            Ok(Ok(answer)) => answer?,
            Ok(Err(_)) | Err(_) => return Err(EmitError::DedupUnavailable),
        };
        let mut fresh = FreshClaims {
            dedup: Some(slot.clone()),
            keys: Vec::new(),
        };
        let mut verdicts = Vec::with_capacity(claims.len());
        let mut in_flight = Vec::new();
        for (i, (claim, key)) in claims.into_iter().zip(keys).enumerate() {
            verdicts.push(match claim {
                Claim::Fresh => {
                    fresh.keys.push(key);
                    Verdict::Fresh
                }
                Claim::Duplicate => Verdict::Duplicate,
                Claim::Pending(rx) => {
                    in_flight.push((i, rx));
                    Verdict::InFlight
                }
            });
        }
        Ok(Claimed {
            verdicts,
            fresh,
            in_flight: InFlight(in_flight),
        })
    }

    /// Publishes `records` (the fresh keys' intents, plus any the producer sends unclaimed)
    /// within the deadline, then settles `fresh` with the outcome.
    pub async fn publish(
        &self,
        fresh: FreshClaims,
        records: Vec<IntentRecord>,
    ) -> Result<(), EmitError> {
        let result = match tokio::time::timeout(self.deadline, self.emitter.emit(records)).await {
            Ok(r) => r,
            Err(_) => Err(EmitError::Timeout(self.deadline)),
        };
        fresh.settle(result.is_ok());
        result
    }

    /// The whole protocol for a producer that has nothing else to do meanwhile: claims
    /// `keys`, publishes what `build` makes of the fresh ones (given their positions; it may
    /// add unclaimed records of its own), settles, then waits for the in-flight ones. Answers
    /// where each key stands.
    pub async fn deliver(
        &self,
        keys: Vec<u64>,
        build: impl FnOnce(&[usize]) -> Result<Vec<IntentRecord>, EmitError>,
    ) -> Result<Vec<Delivered>, EmitError> {
        let claimed = self.claim(keys).await?;
        let fresh_at = claimed.fresh_indices();
        // A build failure drops `claimed.fresh`, which releases the claims.
        let records = build(&fresh_at)?;
        let mut out: Vec<Delivered> = claimed
            .verdicts
            .iter()
            .map(|v| match v {
                Verdict::Fresh => Delivered::Published,
                Verdict::Duplicate => Delivered::Duplicate,
                Verdict::InFlight => Delivered::Undecided,
            })
            .collect();
        self.publish(claimed.fresh, records).await?;
        let deadline = Instant::now() + self.deadline;
        for (i, durable) in claimed.in_flight.outcomes(deadline).await {
            if durable {
                out[i] = Delivered::Duplicate;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! Every way a claim's owner can vanish leaves the key claimable again; a full window
    //! refuses new keys without evicting. Paused time; the dedup actor is the real one.
    use std::sync::Arc;

    use futures::FutureExt;
    use prometheus_client::registry::Registry;
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use tokio::sync::mpsc;

    use super::*;
    use crate::ingest::dedup::{ClaimRefused, Dedup, DedupArgs, Window};
    use crate::ingest::metrics::IngestMetrics;
    use crate::ingest::publisher::PublisherMsg;

    const LEASE: Duration = Duration::from_secs(60);
    const DEADLINE: Duration = Duration::from_secs(30);

    struct Rig {
        slot: ActorSlot<DedupMsg>,
        dedup: ActorRef<DedupMsg>,
        registry: Registry,
        _rx: mpsc::UnboundedReceiver<Vec<IntentRecord>>,
        tx: mpsc::UnboundedSender<Vec<IntentRecord>>,
    }

    async fn spawn_dedup(
        slot: &ActorSlot<DedupMsg>,
        registry: &mut Registry,
        max_entries: usize,
    ) -> ActorRef<DedupMsg> {
        let args = DedupArgs {
            window: Duration::from_secs(300),
            max_entries,
            claim_lease: LEASE,
            shared: Arc::new(Window::default()),
            slot: slot.clone(),
            rebuild: Arc::new(|_| Ok(Vec::new())),
            metrics: IngestMetrics::new(registry),
        };
        Actor::spawn(None, Dedup, args).await.unwrap().0
    }

    async fn rig(max_entries: usize) -> Rig {
        let slot = ActorSlot::default();
        let mut registry = Registry::default();
        let dedup = spawn_dedup(&slot, &mut registry, max_entries).await;
        let (tx, rx) = mpsc::unbounded_channel();
        Rig {
            slot,
            dedup,
            registry,
            _rx: rx,
            tx,
        }
    }

    impl Rig {
        fn delivery(&self) -> Delivery {
            self.delivery_to(Emitter::Channel(self.tx.clone()))
        }

        fn delivery_to(&self, emitter: Emitter) -> Delivery {
            Delivery::new(
                Some(self.slot.clone()),
                DedupSource::Alertmanager,
                emitter,
                DEADLINE,
            )
        }

        async fn in_flight(&self) -> usize {
            ractor::call!(self.dedup, DedupMsg::InFlight).unwrap()
        }

        fn metrics(&self) -> String {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
            out
        }
    }

    /// A publisher that takes records and never answers (a sink stuck in fsync); says when
    /// it took some.
    struct Stuck;

    type Held = Vec<oneshot::Sender<Result<(), sre_sink::SinkError>>>;

    impl Actor for Stuck {
        type Msg = PublisherMsg;
        type State = (Held, mpsc::UnboundedSender<()>);
        type Arguments = mpsc::UnboundedSender<()>;

        async fn pre_start(
            &self,
            _: ActorRef<PublisherMsg>,
            took: mpsc::UnboundedSender<()>,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok((Vec::new(), took))
        }

        async fn handle(
            &self,
            _: ActorRef<PublisherMsg>,
            msg: PublisherMsg,
            (held, took): &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if let PublisherMsg::Publish(_, reply) = msg {
                held.push(reply);
                let _ = took.send(());
            }
            Ok(())
        }
    }

    async fn stuck_emitter() -> (Emitter, mpsc::UnboundedReceiver<()>) {
        let slot = ActorSlot::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stuck, _) = Actor::spawn(None, Stuck, tx).await.unwrap();
        slot.publish(stuck);
        (Emitter::Publisher(slot), rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_whose_requester_left_while_it_was_queued_claims_nothing() {
        let r = rig(1000).await;
        let d = r.delivery();
        // Polled once (the claim is sent), then dropped before the actor answers: the client
        // hung up while the claim was queued.
        assert!(d.claim(vec![1]).now_or_never().is_none());
        let again = d.claim(vec![1]).await.unwrap();
        assert_eq!(again.verdicts, [Verdict::Fresh], "no ghost holds the key");
        assert_eq!(r.in_flight().await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_fresh_claims_releases_them_and_wakes_their_waiters() {
        let r = rig(1000).await;
        let d = r.delivery();
        let first = d.claim(vec![7, 8]).await.unwrap();
        let second = d.claim(vec![7]).await.unwrap();
        assert_eq!(second.verdicts, [Verdict::InFlight]);
        // The first owner's future is dropped mid-way (handler dropped, actor killed).
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(3600);
        let outcomes = second.in_flight.outcomes(deadline).await;
        assert_eq!(outcomes, [(0, false)], "told at once, not at the deadline");
        assert_eq!(Instant::now() + Duration::from_secs(3600), deadline);
        let third = d.claim(vec![7, 8]).await.unwrap();
        assert_eq!(third.verdicts, [Verdict::Fresh, Verdict::Fresh]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_task_dropped_mid_emit_releases_its_keys() {
        let r = rig(1000).await;
        let (emitter, mut took) = stuck_emitter().await;
        let d = r.delivery_to(emitter);
        let task = tokio::spawn({
            let d = d.clone();
            async move { d.deliver(vec![42], |_| Ok(vec![record()])).await }
        });
        took.recv().await.unwrap();
        assert_eq!(r.in_flight().await, 1);
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let again = r.delivery().claim(vec![42]).await.unwrap();
        assert_eq!(again.verdicts, [Verdict::Fresh]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_that_never_confirms_fails_at_its_deadline_and_releases() {
        let r = rig(1000).await;
        let (emitter, _took) = stuck_emitter().await;
        let d = r.delivery_to(emitter);
        let started = Instant::now();
        let err = d
            .deliver(vec![42], |_| Ok(vec![record()]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, EmitError::Timeout(t) if t == DEADLINE),
            "{err}"
        );
        assert_eq!(started.elapsed(), DEADLINE);
        assert_eq!(r.in_flight().await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_nobody_settles_is_swept_when_its_lease_ends() {
        let r = rig(1000).await;
        // A claim made without a guard (as a settle lost on the way would leave it).
        let claims = ractor::call!(r.dedup, DedupMsg::Claim, DedupSource::Kubernetes, vec![5])
            .unwrap()
            .unwrap();
        std::mem::forget(claims);
        let waiting = r.delivery().claim(vec![5]).await.unwrap();
        assert_eq!(waiting.verdicts, [Verdict::InFlight]);
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(waiting.in_flight.outcomes(far).await, [(0, false)]);
        assert!(
            Instant::now() < far,
            "released by the sweep, not by the waiter's deadline"
        );
        assert_eq!(r.in_flight().await, 0);
        let m = r.metrics();
        assert!(
            m.contains(r#"sre_dedup_claims_released_total{reason="lease_expired"} 1"#),
            "{m}"
        );
        let again = r.delivery().claim(vec![5]).await.unwrap();
        assert_eq!(again.verdicts, [Verdict::Fresh]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_settle_reaching_a_restarted_dedup_actor_still_records_the_key() {
        let mut r = rig(1000).await;
        let d = r.delivery();
        let claimed = d.claim(vec![9]).await.unwrap();
        let waiter = d.claim(vec![9]).await.unwrap();
        // The dedup actor is killed (restarted by its supervisor) before the settle arrives.
        r.dedup.kill();
        let outcomes = waiter.in_flight.outcomes(Instant::now() + DEADLINE).await;
        assert_eq!(outcomes, [(0, false)], "its waiters learn it at once");
        r.dedup = spawn_dedup(&r.slot, &mut r.registry, 1000).await;
        // The owner's publish became durable: its settle reaches the new incarnation (through
        // the slot), which records the key although it never saw the claim.
        claimed.fresh.settle(true);
        let dup = d.claim(vec![9]).await.unwrap();
        assert_eq!(dup.verdicts, [Verdict::Duplicate]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_refuses_new_keys_whole_and_evicts_nothing() {
        let r = rig(3).await;
        let d = r.delivery();
        let c = d.claim(vec![1, 2, 3]).await.unwrap();
        d.publish(c.fresh, Vec::new()).await.unwrap();
        // One new key among known ones: the whole claim is refused, nothing is claimed.
        let err = d.claim(vec![1, 4]).await.unwrap_err();
        assert!(
            matches!(err, EmitError::Refused(ClaimRefused::WindowFull { max: 3 })),
            "{err}"
        );
        assert_eq!(r.in_flight().await, 0);
        // Known keys are still answered.
        let known = d.claim(vec![1, 2, 3]).await.unwrap();
        assert_eq!(known.verdicts, [Verdict::Duplicate; 3]);
        let m = r.metrics();
        assert!(
            m.contains(
                r#"sre_dedup_decisions_total{source="alertmanager",decision="window_full"} 2"#
            ),
            "{m}"
        );
        // Once the window moves on, room is made by expiry, not eviction.
        tokio::time::advance(Duration::from_secs(301)).await;
        let later = d.claim(vec![4]).await.unwrap();
        assert_eq!(later.verdicts, [Verdict::Fresh]);
    }

    fn record() -> IntentRecord {
        use sre_intents::record::RecordMeta;
        IntentRecord::new(
            RecordMeta {
                topic: "t",
                kind: sre_intents::IntentType::IngestAlertRequested,
                source: "test",
                key: "alert:0".into(),
                idempotency_key: "am:0".into(),
                correlation_id: "c",
                traceparent: None,
                time: "2026-12-06T00:00:00Z",
            },
            &serde_json::json!({}),
        )
        .unwrap()
    }
}
