//! The facts consumer against a real Kafka-protocol broker (tansu, memory storage), started
//! once for every scenario here (CI time): a real consumer group, the compacted ledger topic,
//! the dead-letter topic. Targets are recording `FactAction`s (real implementations of the
//! trait that record every call and can be told to be unavailable).
//!
//! librdkafka runs on the wall clock, so these scenarios use real time and wait on what the
//! targets record (channels) and on committed offsets (bounded polling: a commit has no
//! notification), never on sleeps.
//!
//! tansu 0.6 answers a fetch that starts inside a record batch with the batches *after* it
//! (its storage keeps batches by base offset and takes those at or past the offset asked
//! for), where Kafka returns the batch holding the offset. A partition paused and resumed
//! mid-batch would skip records on tansu, so scenarios that make a partition wait produce one
//! record per batch (each send awaited).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::process::{free_port, require, Peer, Running};
use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sre_actors::facts::action::{ActionError, FactAction};
use sre_actors::facts::entry::{IncidentEntry, TargetRecord};
use sre_config::{Config, SinkKind};
use sre_integration::app::AppHandle;
use sre_intents::facts::Fact;
use tokio::sync::{mpsc, watch};

/// A target that records (incident, revision, type) and can be held unavailable for one
/// incident.
struct Recorder {
    name: &'static str,
    calls: Mutex<Vec<(String, u64, String)>>,
    unavailable_for: Mutex<Option<String>>,
    /// While `false`, incidents named `slow-…` are held (slow, not unavailable).
    open: watch::Sender<bool>,
    tx: mpsc::UnboundedSender<(String, u64)>,
}

impl Recorder {
    fn new(name: &'static str) -> (Arc<Recorder>, mpsc::UnboundedReceiver<(String, u64)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Recorder {
                name,
                calls: Mutex::default(),
                unavailable_for: Mutex::default(),
                open: watch::Sender::new(true),
                tx,
            }),
            rx,
        )
    }

    fn applied(&self) -> Vec<(String, u64, String)> {
        self.calls.lock().unwrap().clone()
    }
}

impl FactAction for Recorder {
    fn target(&self) -> &'static str {
        self.name
    }

    fn apply<'a>(
        &'a self,
        fact: &'a Fact,
        _entry: &'a IncidentEntry,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<TargetRecord>, ActionError>> {
        Box::pin(async move {
            if fact.incident_id.starts_with("slow-") {
                let mut open = self.open.subscribe();
                let _ = open.wait_for(|o| *o).await;
            }
            if self.unavailable_for.lock().unwrap().as_deref() == Some(fact.incident_id.as_str()) {
                let _ = self
                    .tx
                    .send((format!("unavailable:{}", fact.incident_id), fact.revision));
                return Err(ActionError::Unavailable {
                    target: self.name,
                    reason: "503 from the fake".into(),
                    retry_after: None,
                });
            }
            self.calls.lock().unwrap().push((
                fact.incident_id.clone(),
                fact.revision,
                fact.fact_type().as_str().to_owned(),
            ));
            let _ = self.tx.send((fact.incident_id.clone(), fact.revision));
            let mut r = TargetRecord::for_fact(fact, fact.fact_type().as_str(), now);
            r.key = Some(fact.incident_id.clone());
            Ok(Some(r))
        })
    }
}

/// Topics of one scenario.
struct Topics {
    facts: String,
    ledger: String,
    dlq: String,
    group: String,
}

impl Topics {
    fn new(scenario: &str) -> Topics {
        Topics {
            facts: format!("{scenario}.facts"),
            ledger: format!("{scenario}.incidents"),
            dlq: format!("{scenario}.dlq"),
            group: format!("{scenario}-group"),
        }
    }
}

fn tansu(port: u16) -> Peer {
    let tansu = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
    require(&tansu);
    let addr = format!("tcp://127.0.0.1:{port}");
    Peer::spawn(std::process::Command::new(&tansu).args([
        "broker",
        "--listener-url",
        &addr,
        "--advertised-listener-url",
        &addr,
        "--storage-engine",
        "memory://tansu/",
        "--silent",
    ]))
}

async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
    let new: Vec<_> = topics
        .iter()
        .map(|(t, p)| {
            rdkafka::admin::NewTopic::new(t, *p, rdkafka::admin::TopicReplication::Fixed(1))
        })
        .collect();
    for _ in 0..100 {
        let r = admin
            .create_topics(
                &new,
                &rdkafka::admin::AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(5))),
            )
            .await;
        if let Ok(results) = r {
            if results.iter().all(|x| {
                x.is_ok()
                    || matches!(
                        x,
                        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
                    )
            }) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the broker did not accept the topics");
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .create()
        .unwrap()
}

fn fact_value(ty: &str, incident: &str, revision: u64) -> Vec<u8> {
    let mut v = serde_json::json!({
        "incidentId": incident, "occurredAt": "2026-12-07T09:00:00Z", "revision": revision,
    });
    if ty == "IncidentCreated" {
        v["title"] = "Checkout down".into();
        v["severity"] = "critical".into();
    }
    serde_json::to_vec(&v).unwrap()
}

/// Produces one fact (or, with `value`, raw bytes) to `partition`.
async fn produce(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    ty: &str,
    incident: &str,
    revision: u64,
    value: Option<&[u8]>,
) {
    let key = format!("incident:{incident}");
    let ce_id = format!("{incident}-{revision}");
    let body = value.map_or_else(|| fact_value(ty, incident, revision), <[u8]>::to_vec);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "ce_type",
            value: Some(ty),
        })
        .insert(Header {
            key: "ce_id",
            value: Some(&ce_id),
        })
        .insert(Header {
            key: "ce_specversion",
            value: Some("1.0"),
        });
    p.send(
        FutureRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&body)
            .headers(headers),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}

fn config(dir: &std::path::Path, brokers: &str, t: &Topics) -> Config {
    let mut c = common::config(dir);
    c.observability_integration = None;
    c.intents.sink = SinkKind::Kafka;
    c.intents.kafka.brokers = brokers.to_owned();
    c.intents.kafka.client_id = format!("{}-client", t.group);
    c.facts.enabled = true;
    c.facts.topic = t.facts.clone();
    c.facts.ledger_topic = t.ledger.clone();
    c.facts.dead_letter_topic = t.dlq.clone();
    c.facts.group_id = t.group.clone();
    c.facts.min_backoff = Duration::from_millis(50);
    c.facts.max_backoff = Duration::from_millis(200);
    c.facts.commit_interval = Duration::from_millis(200);
    c.intents
        .kafka
        .properties
        .insert("reconnect.backoff.max.ms".into(), "500".into());
    c
}

async fn start(c: &Config, targets: Vec<Arc<Recorder>>) -> AppHandle {
    AppHandle::start_with_targets(c.clone(), move |_, _, _| {
        Ok(targets
            .into_iter()
            .map(|t| t as Arc<dyn FactAction>)
            .collect())
    })
    .await
    .unwrap()
}

/// The group's committed offsets of `topic` (partition → offset).
fn committed(brokers: &str, t: &Topics, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &t.group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(&t.facts, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Polls (bounded) until `ok(committed offsets)`.
async fn until_committed(
    brokers: &str,
    t: &Topics,
    partitions: i32,
    ok: impl Fn(&BTreeMap<i32, i64>) -> bool,
) -> BTreeMap<i32, i64> {
    let mut last = BTreeMap::new();
    for _ in 0..150 {
        let (b, tt) = (
            brokers.to_owned(),
            Topics::new(t.group.trim_end_matches("-group")),
        );
        last = tokio::task::spawn_blocking(move || committed(&b, &tt, partitions))
            .await
            .unwrap();
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("offsets never satisfied the condition; last {last:?}");
}

/// Polls (bounded) until the group is stable with `members` members.
async fn until_stable(brokers: &str, group: &str, members: usize) {
    for _ in 0..150 {
        let (b, g) = (brokers.to_owned(), group.to_owned());
        let stable = tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &b)
                .create()
                .unwrap();
            c.fetch_group_list(Some(&g), Duration::from_secs(5))
                .ok()
                .and_then(|l| {
                    l.groups()
                        .first()
                        .map(|g| g.state() == "Stable" && g.members().len() == members)
                })
                .unwrap_or(false)
        })
        .await
        .unwrap();
        if stable {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("group {group} never became stable with {members} members");
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<(String, u64)>) -> (String, u64) {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a target call within 60 s")
        .unwrap()
}

/// Reads every record of `topic` partition 0.
/// A record read back: key, headers, value.
type Read = (Option<String>, Vec<(String, String)>, Vec<u8>);

fn read_topic(brokers: &str, topic: &str) -> Vec<Read> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "facts-test-reader")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    while (out.len() as i64) < high {
        let m = c.poll(Duration::from_secs(10)).expect("a record").unwrap();
        out.push((
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            m.headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            m.payload().unwrap_or_default().to_vec(),
        ));
    }
    out
}

#[test]
fn facts_against_a_real_broker() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let _broker = tansu(port);
    runtime.block_on(async {
        missing_ledger_topic_is_reported(&brokers).await;
        in_order_committed_after_applied_and_a_waiting_partition_resumes(&brokers).await;
        poison_goes_to_the_dead_letter_topic_and_the_consumer_continues(&brokers).await;
        a_slow_partition_never_stops_the_others(&brokers).await;
        two_consumers_and_a_rebalance_apply_each_fact_once(&brokers).await;
        pagerduty_end_to_end(&brokers).await;
        a_long_pagerduty_outage_loses_nothing_and_holds_up_only_its_partition(&brokers).await;
        tickets_end_to_end(&brokers).await;
    });
}

/// The ledger topic is never created silently: the consumer's subtree does not start and
/// says which topic to create.
async fn missing_ledger_topic_is_reported(brokers: &str) {
    let t = Topics::new("missing");
    create_topics(brokers, &[(&t.facts, 1), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), brokers, &t);
    c.supervision.restart.max_restarts = 1;
    let store = sre_integration::app::ledger_store(&c);
    let sre_actors::facts::store::LedgerStore::Kafka(mut k) = store else {
        panic!("kafka ledger with a kafka sink");
    };
    let err = tokio::task::spawn_blocking(move || k.load().map(|_| ()))
        .await
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&t.ledger) && text.contains("does not exist"),
        "{text}"
    );
}

async fn in_order_committed_after_applied_and_a_waiting_partition_resumes(brokers: &str) {
    let t = Topics::new("order");
    create_topics(brokers, &[(&t.facts, 2), (&t.ledger, 2), (&t.dlq, 1)]).await;
    let p = producer(brokers);
    // Partition 0: inc-a then inc-b; partition 1: inc-c. Three facts each.
    for (part, inc) in [(0, "inc-a"), (1, "inc-c"), (0, "inc-b")] {
        for (rev, ty) in [
            (1, "IncidentCreated"),
            (2, "IncidentAcknowledged"),
            (3, "IncidentResolved"),
        ] {
            produce(&p, &t.facts, part, ty, inc, rev, None).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (pd, mut calls) = Recorder::new("pagerduty");
    // inc-b (offsets 3.. of partition 0) is held: partition 0 waits at offset 3.
    *pd.unavailable_for.lock().unwrap() = Some("inc-b".into());
    let c = config(dir.path(), brokers, &t);
    let app = start(&c, vec![pd.clone()]).await;
    let mut seen = HashSet::new();
    while !(seen.contains(&("inc-a".to_owned(), 3))
        && seen.contains(&("inc-c".to_owned(), 3))
        && seen.contains(&("unavailable:inc-b".to_owned(), 1)))
    {
        seen.insert(recv(&mut calls).await);
    }
    // Partition 1 is committed to its end; partition 0 up to the waiting fact, not past it.
    let offsets = until_committed(brokers, &t, 2, |o| {
        o.get(&0) == Some(&3) && o.get(&1) == Some(&3)
    })
    .await;
    assert_eq!(offsets, BTreeMap::from([(0, 3), (1, 3)]));
    assert_eq!(app.facts_metrics().waiting().get(), 1);
    assert_waiting_on_readiness(&app, 0);
    // The provider is back: the waiting partition resumes and nothing is skipped.
    *pd.unavailable_for.lock().unwrap() = None;
    while !seen.contains(&("inc-b".to_owned(), 3)) {
        seen.insert(recv(&mut calls).await);
    }
    until_committed(brokers, &t, 2, |o| o.get(&0) == Some(&6)).await;
    assert_eq!(app.facts_metrics().waiting().get(), 0);
    // More facts on the resumed partition still flow.
    produce(&p, &t.facts, 0, "IncidentClosed", "inc-a", 4, None).await;
    while !seen.contains(&("inc-a".to_owned(), 4)) {
        seen.insert(recv(&mut calls).await);
    }
    let applied = pd.applied();
    let mut per: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (inc, rev, _) in &applied {
        per.entry(inc).or_default().push(*rev);
    }
    for (inc, want) in [
        ("inc-a", &[1, 2, 3, 4][..]),
        ("inc-b", &[1, 2, 3]),
        ("inc-c", &[1, 2, 3]),
    ] {
        assert_eq!(
            per[inc], want,
            "{inc} applied in order, once each: {applied:?}"
        );
    }
    app.shutdown().await;
}

/// A partition whose target is slow (not unavailable) holds more than [`HIGH_WATER`] facts
/// in hand, and still does not stop the other partition's intake: the other partition's facts,
/// produced after all of the slow one's, are taken and applied meanwhile. Released, the slow
/// partition is applied once each and committed.
///
/// [`HIGH_WATER`]: sre_actors::facts::consumer::HIGH_WATER
async fn a_slow_partition_never_stops_the_others(brokers: &str) {
    let t = Topics::new("backlog");
    create_topics(brokers, &[(&t.facts, 2), (&t.ledger, 2), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let (target, mut calls) = Recorder::new("pagerduty");
    target.open.send_replace(false);
    let p = producer(brokers);
    let slow = sre_actors::facts::consumer::HIGH_WATER + 44;
    let mut sent = Vec::with_capacity(slow);
    for i in 0..slow {
        let (p, topic, inc) = (p.clone(), t.facts.clone(), format!("slow-{i}"));
        sent.push(tokio::spawn(async move {
            produce(&p, &topic, 0, "IncidentCreated", &inc, 1, None).await;
        }));
    }
    for s in sent {
        s.await.unwrap();
    }
    for i in 0..5 {
        produce(
            &p,
            &t.facts,
            1,
            "IncidentCreated",
            &format!("fast-{i}"),
            1,
            None,
        )
        .await;
    }
    let app = start(&config(dir.path(), brokers, &t), vec![target.clone()]).await;
    let mut fast = HashSet::new();
    while fast.len() < 5 {
        let (inc, _) = recv(&mut calls).await;
        assert!(inc.starts_with("fast-"), "{inc} was held");
        fast.insert(inc);
    }
    let offsets = until_committed(brokers, &t, 2, |o| o.get(&1) == Some(&5)).await;
    assert_eq!(offsets.get(&0), None, "{offsets:?}");
    assert_eq!(
        app.facts_metrics().waiting().get(),
        0,
        "slow is not waiting"
    );
    target.open.send_replace(true);
    until_committed(brokers, &t, 2, |o| o.get(&0) == Some(&(slow as i64))).await;
    let applied = target.applied();
    let unique: HashSet<_> = applied.iter().map(|(i, _, _)| i.clone()).collect();
    assert_eq!(applied.len(), slow + 5, "each once");
    assert_eq!(unique.len(), slow + 5);
    app.shutdown().await;
}

async fn poison_goes_to_the_dead_letter_topic_and_the_consumer_continues(brokers: &str) {
    let t = Topics::new("poison");
    create_topics(brokers, &[(&t.facts, 1), (&t.ledger, 1), (&t.dlq, 1)]).await;
    let p = producer(brokers);
    produce(
        &p,
        &t.facts,
        0,
        "IncidentCreated",
        "inc-p",
        1,
        Some(b"{not json"),
    )
    .await;
    produce(&p, &t.facts, 0, "PostmortemPublished", "inc-p", 2, None).await;
    produce(&p, &t.facts, 0, "IncidentCreated", "inc-q", 1, None).await;
    let dir = tempfile::tempdir().unwrap();
    let (pd, mut calls) = Recorder::new("pagerduty");
    let app = start(&config(dir.path(), brokers, &t), vec![pd.clone()]).await;
    assert_eq!(recv(&mut calls).await, ("inc-q".to_owned(), 1));
    until_committed(brokers, &t, 1, |o| o.get(&0) == Some(&3)).await;
    let (b, dlq) = (brokers.to_owned(), t.dlq.clone());
    let dead = tokio::task::spawn_blocking(move || read_topic(&b, &dlq))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (key, headers, value) = &dead[0];
    assert_eq!(key.as_deref(), Some("incident:inc-p"));
    assert_eq!(value, b"{not json");
    let h: BTreeMap<_, _> = headers.iter().cloned().collect();
    assert_eq!(h.get("ce_id").map(String::as_str), Some("inc-p-1"));
    assert!(h["dlq_reason"].starts_with("bad_value:"), "{h:?}");
    let m = app.facts_metrics();
    assert_eq!(m.consumed_count("IncidentCreated", "dead_lettered"), 1);
    assert_eq!(m.consumed_count("unknown", "skipped_unknown"), 1);
    app.shutdown().await;
}

async fn two_consumers_and_a_rebalance_apply_each_fact_once(brokers: &str) {
    let t = Topics::new("rebalance");
    create_topics(brokers, &[(&t.facts, 2), (&t.ledger, 2), (&t.dlq, 1)]).await;
    let p = producer(brokers);
    let incidents: Vec<String> = (0..20).map(|i| format!("inc-{i}")).collect();
    for (i, inc) in incidents.iter().enumerate() {
        produce(
            &p,
            &t.facts,
            (i % 2) as i32,
            "IncidentCreated",
            inc,
            1,
            None,
        )
        .await;
    }
    let (pd, mut calls) = Recorder::new("pagerduty");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&config(d1.path(), brokers, &t), vec![pd.clone()]).await;
    let mut seen = HashSet::new();
    while seen.len() < 20 {
        seen.insert(recv(&mut calls).await);
    }
    // A second replica joins. Once the group is stable again, more facts: none is in hand
    // during the rebalance (an abandoned one is made harmless by provider keys, but this
    // recorder would count its second call).
    let b = start(&config(d2.path(), brokers, &t), vec![pd.clone()]).await;
    until_stable(brokers, &t.group, 2).await;
    for (i, inc) in incidents.iter().enumerate() {
        produce(
            &p,
            &t.facts,
            (i % 2) as i32,
            "IncidentAcknowledged",
            inc,
            2,
            None,
        )
        .await;
    }
    while seen.len() < 40 {
        seen.insert(recv(&mut calls).await);
    }
    until_committed(brokers, &t, 2, |o| {
        o.get(&0) == Some(&20) && o.get(&1) == Some(&20)
    })
    .await;
    let applied = pd.applied();
    let unique: HashSet<_> = applied.iter().map(|(i, r, _)| (i.clone(), *r)).collect();
    assert_eq!(
        applied.len(),
        unique.len(),
        "each fact applied once: {applied:?}"
    );
    assert_eq!(unique.len(), 40);
    a.shutdown().await;
    b.shutdown().await;
}

const PD_KEY: &str = "R0UT1NGKEYdefault000000000000001";

/// Issue 10 end to end, with the binary: the real PagerDuty target (built from
/// `paging_integration`) against the fake PagerDuty. created → acknowledged → resolved yields
/// exactly trigger, acknowledge, resolve; a SIGKILL after the page but before the offset is
/// committed, then a restart, pages nothing twice.
async fn pagerduty_end_to_end(brokers: &str) {
    let t = Topics::new("e2e");
    create_topics(brokers, &[(&t.facts, 1), (&t.ledger, 1), (&t.dlq, 1)]).await;
    let pd = sre_test_support::pagerduty::FakePagerDuty::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("platform/pd")).unwrap();
    std::fs::write(
        secrets.join("platform/pd/routing_key"),
        format!("{PD_KEY}\n"),
    )
    .unwrap();
    let write_config = |commit: &str| {
        let cfg = dir.path().join("c.yaml");
        std::fs::write(
            &cfg,
            format!(
                "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 0s\n\
                 intents:\n  sink: kafka\n  kafka:\n    brokers: {brokers}\n    client_id: e2e\n    properties:\n      session.timeout.ms: '6000'\n      heartbeat.interval.ms: '1000'\n\
                 facts:\n  enabled: true\n  topic: {}\n  group_id: {}\n  ledger_topic: {}\n  dead_letter_topic: {}\n  commit_interval: {commit}\n  min_backoff: 50ms\n  max_backoff: 200ms\n\
                 paging_integration:\n  enabled: true\n  pagerduty:\n    routing_key_ref: platform/pd\n    events_url: {}\n\
                 secrets:\n  dir: {}\n",
                t.facts,
                t.group,
                t.ledger,
                t.dlq,
                pd.url(),
                secrets.display()
            ),
        )
        .unwrap();
        cfg
    };
    let p = producer(brokers);
    produce(&p, &t.facts, 0, "IncidentCreated", "inc-e2e", 1, None).await;
    // Nothing is committed by the interval: only the ledger stands between the replay after
    // the kill and a second page.
    let cfg = write_config("1h");
    let mut first = tokio::task::spawn_blocking(move || Running::start(&cfg))
        .await
        .unwrap();
    let metrics = format!("http://{}/metrics", first.addr);
    until_metric(
        &metrics,
        "sre_facts_consumed_total{type=\"IncidentCreated\",outcome=\"applied\"} 1",
    )
    .await;
    assert_eq!(pd.events_received(), 1);
    first.signal("-KILL");
    let _ = first.child.wait();
    let (b, tt) = (brokers.to_owned(), Topics::new("e2e"));
    let offsets = tokio::task::spawn_blocking(move || committed(&b, &tt, 1))
        .await
        .unwrap();
    assert_eq!(offsets.get(&0), None, "nothing was committed: {offsets:?}");
    let cfg = write_config("200ms");
    let second = tokio::task::spawn_blocking(move || Running::start(&cfg))
        .await
        .unwrap();
    produce(&p, &t.facts, 0, "IncidentAcknowledged", "inc-e2e", 2, None).await;
    produce(&p, &t.facts, 0, "IncidentResolved", "inc-e2e", 3, None).await;
    until_committed(brokers, &t, 1, |o| o.get(&0) == Some(&3)).await;
    let actions: Vec<(String, String)> = pd
        .actions()
        .into_iter()
        .map(|(action, key, _)| (action, key))
        .collect();
    assert_eq!(
        actions,
        [
            ("trigger".to_owned(), "inc-e2e".to_owned()),
            ("acknowledge".to_owned(), "inc-e2e".to_owned()),
            ("resolve".to_owned(), "inc-e2e".to_owned()),
        ]
    );
    assert_eq!(pd.incidents_opened(), 1);
    let metrics = format!("http://{}/metrics", second.addr);
    until_metric(
        &metrics,
        "sre_facts_consumed_total{type=\"IncidentCreated\",outcome=\"replay\"} 1",
    )
    .await;
    drop(second);
}

/// A PagerDuty outage through the real broker, in process with the real paging targets.
/// Partition 0 carries `checkout` incidents (PagerDuty, the default), partition 1 `payments`
/// incidents (routed to OpsGenie). PagerDuty answers 503 until the circuit has gone open →
/// half-open → open again 20 times — what a 10-minute outage is at the default 30 s
/// `open_duration`; librdkafka runs on the wall clock, so the circuit's timers are scaled
/// down instead of time being paused. Meanwhile partition 1 is paged and committed to its end,
/// also for facts produced mid-outage; partition 0 waits (paused, on the board) with nothing
/// committed. After recovery every PagerDuty incident gets trigger, acknowledge, resolve —
/// in that order, once each — partition 0 is committed to its end, nothing is dead-lettered.
async fn a_long_pagerduty_outage_loses_nothing_and_holds_up_only_its_partition(brokers: &str) {
    let t = Topics::new("outage");
    create_topics(brokers, &[(&t.facts, 2), (&t.ledger, 2), (&t.dlq, 1)]).await;
    let pd = sre_test_support::pagerduty::FakePagerDuty::start().await;
    let og = sre_test_support::opsgenie::FakeOpsGenie::start("genie-key-1").await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    for (name, value) in [("pd/routing_key", PD_KEY), ("og/api_key", "genie-key-1")] {
        let path = secrets.join("platform").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value).unwrap();
    }
    let mut c = config(dir.path(), brokers, &t);
    c.secrets.dir = secrets;
    c.paging_integration = Some(
        serde_norway::from_str(&format!(
            "enabled: true\ndefault_provider: pagerduty\n\
             pagerduty:\n  routing_key_ref: platform/pd\n  events_url: {}\n\
             opsgenie:\n  api_key_ref: platform/og\n  api_url: {}\n\
             routes:\n  - service: payments\n    provider: opsgenie\n",
            pd.url(),
            og.url()
        ))
        .unwrap(),
    );
    // One fact at a time per partition: the first waiting fact fills partition 0, which is
    // then paused (with the default 32 a partition is paused once 1,024 facts wait in it).
    c.facts.concurrency = 1;
    c.supervision.circuit.minimum_calls = 2;
    c.supervision.circuit.open_duration = Duration::from_millis(200);
    c.supervision.retry.max_attempts = 2;
    c.supervision.retry.backoff_min = Duration::from_millis(10);
    c.supervision.retry.backoff_max = Duration::from_millis(20);
    pd.fail_with(sre_test_support::upstream::Reply::status(503));
    let app = AppHandle::start(c).await.unwrap();
    let p = producer(brokers);
    let created = |service: &str| {
        serde_json::json!({"title": format!("{service} is failing"), "severity": "critical",
            "service": service, "environment": "prod"})
    };
    let lifecycle = [
        ("IncidentCreated", 1),
        ("IncidentAcknowledged", 2),
        ("IncidentResolved", 3),
    ];
    for (partition, service, incidents) in [
        (0, "checkout", ["pd-1", "pd-2", "pd-3"]),
        (1, "payments", ["og-1", "og-2", "og-3"]),
    ] {
        for (ty, rev) in lifecycle {
            for inc in incidents {
                let value = if rev == 1 {
                    created(service)
                } else {
                    serde_json::json!({})
                };
                produce_value_to(&p, &t.facts, partition, ty, inc, rev, value).await;
            }
        }
    }
    // The outage: PagerDuty's circuit opens, and is tried and opened again, 20 times over.
    let circuit = || app.providers().board().get("pagerduty");
    for _ in 0..600 {
        if circuit().is_some_and(|s| s.transitions >= 41) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snapshot = circuit().expect("pagerduty's circuit");
    assert!(snapshot.transitions >= 41, "{snapshot:?}");
    assert_eq!(pd.events_received(), 0, "nothing got through the outage");
    // Meanwhile OpsGenie's partition is paged and committed, also for a fact produced now.
    produce_value_to(
        &p,
        &t.facts,
        1,
        "IncidentCreated",
        "og-4",
        1,
        created("payments"),
    )
    .await;
    produce_value_to(
        &p,
        &t.facts,
        0,
        "IncidentCreated",
        "pd-4",
        1,
        created("checkout"),
    )
    .await;
    let offsets = until_committed(brokers, &t, 2, |o| o.get(&1) == Some(&10)).await;
    assert_eq!(
        offsets.get(&0),
        None,
        "nothing committed past the waiting facts: {offsets:?}"
    );
    let og_actions = og.actions();
    for inc in ["og-1", "og-2", "og-3"] {
        let mine: Vec<&str> = og_actions
            .iter()
            .filter(|(_, alias)| alias == inc)
            .map(|(action, _)| action.as_str())
            .collect();
        assert_eq!(
            mine,
            ["create", "acknowledge", "close"],
            "{inc}: {og_actions:?}"
        );
    }
    assert!(og_actions
        .iter()
        .any(|(a, alias)| a == "create" && alias == "og-4"));
    assert_eq!(app.facts_metrics().waiting().get(), 1);
    assert_eq!(
        app.facts_metrics().paused().get(),
        1,
        "partition 0 is paused"
    );
    assert_waiting_on_readiness(&app, 0);
    // PagerDuty is back: everything goes out, in order per incident, once.
    pd.clear();
    until_committed(brokers, &t, 2, |o| o.get(&0) == Some(&10)).await;
    let actions = pd.actions();
    for inc in ["pd-1", "pd-2", "pd-3"] {
        let mine: Vec<&str> = actions
            .iter()
            .filter(|(_, key, _)| key == inc)
            .map(|(action, _, _)| action.as_str())
            .collect();
        assert_eq!(
            mine,
            ["trigger", "acknowledge", "resolve"],
            "{inc}: {actions:?}"
        );
    }
    let pd4: Vec<_> = actions.iter().filter(|(_, key, _)| key == "pd-4").collect();
    assert_eq!(pd4.len(), 1, "{actions:?}");
    assert_eq!(pd.events_received(), 10);
    assert_eq!(app.facts_metrics().waiting().get(), 0);
    assert_eq!(app.facts_metrics().paused().get(), 0, "resumed");
    assert_eq!(app.facts_metrics().waiting_facts().get(), 0);
    let (b, dlq) = (brokers.to_owned(), t.dlq.clone());
    let dead = tokio::task::spawn_blocking(move || read_topic(&b, &dlq))
        .await
        .unwrap();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
    app.shutdown().await;
}

/// `/readyz` is degraded with `partition N waiting`.
fn assert_waiting_on_readiness(app: &AppHandle, partition: i32) {
    let readiness = app.readiness().report(app.observer());
    let want = format!("partition {partition} waiting");
    assert!(
        readiness.degraded.iter().any(|d| d.contains(&want)),
        "{:?}",
        readiness.degraded
    );
}

/// Polls (bounded) `/metrics` until it has `line`.
async fn until_metric(url: &str, line: &str) {
    let mut last = String::new();
    for _ in 0..300 {
        last = common::get_text(url).await;
        if last.lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{line} never appeared in /metrics:\n{last}");
}

/// Produces a fact with its own JSON value (`incidentId`, `occurredAt`, `revision` added).
async fn produce_value(
    p: &FutureProducer,
    topic: &str,
    ty: &str,
    incident: &str,
    revision: u64,
    value: serde_json::Value,
) {
    produce_value_to(p, topic, 0, ty, incident, revision, value).await;
}

/// [`produce_value`] to `partition`.
async fn produce_value_to(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    ty: &str,
    incident: &str,
    revision: u64,
    mut value: serde_json::Value,
) {
    value["incidentId"] = incident.into();
    value["occurredAt"] = "2026-12-07T09:00:00Z".into();
    value["revision"] = revision.into();
    let body = serde_json::to_vec(&value).unwrap();
    produce(p, topic, partition, ty, incident, revision, Some(&body)).await;
}

/// Issue 11 through the real broker, in process with the real ticket targets: Jira by default,
/// GitHub for service `web`, and Jira project `NOPE` (unknown there) for service `legacy`.
/// Each lifecycle makes exactly one ticket with its comments and final state, a replayed old
/// fact does nothing, and Jira's 400 dead-letters its fact with the reason while the facts
/// after it are still applied.
async fn tickets_end_to_end(brokers: &str) {
    let t = Topics::new("tickets");
    create_topics(brokers, &[(&t.facts, 1), (&t.ledger, 1), (&t.dlq, 1)]).await;
    let jira =
        sre_test_support::jira::FakeJira::start("sre@example.com", "jira-token-1", &["SRE"]).await;
    let gh = sre_test_support::github::FakeGithub::start("org/incidents", "gh-token-1").await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    for (name, key, value) in [
        ("jira", "email", "sre@example.com"),
        ("jira", "api_token", "jira-token-1"),
        ("gh", "token", "gh-token-1"),
    ] {
        std::fs::create_dir_all(secrets.join("platform").join(name)).unwrap();
        std::fs::write(secrets.join("platform").join(name).join(key), value).unwrap();
    }
    let mut c = config(dir.path(), brokers, &t);
    c.secrets.dir = secrets;
    c.ticketing_integration = Some(
        serde_norway::from_str(&format!(
            "enabled: true\ndefault_provider: jira\n\
             jira:\n  base_url: {}\n  project_key: SRE\n  secret_ref: platform/jira\n\
             github:\n  repo: org/incidents\n  api_url: {}\n  secret_ref: platform/gh\n\
             routes:\n  - service: web\n    provider: github\n  - service: legacy\n    project_key: NOPE\n",
            jira.url(),
            gh.url()
        ))
        .unwrap(),
    );
    let app = AppHandle::start(c).await.unwrap();
    let p = producer(brokers);
    let created = |service: &str| {
        serde_json::json!({"title": format!("{service} is failing"), "severity": "high",
            "summary": "5xx above 20%", "service": service, "environment": "prod"})
    };
    produce_value(
        &p,
        &t.facts,
        "IncidentCreated",
        "inc-j",
        1,
        created("checkout"),
    )
    .await;
    produce_value(
        &p,
        &t.facts,
        "IncidentCreated",
        "inc-bad",
        1,
        created("legacy"),
    )
    .await;
    produce_value(&p, &t.facts, "IncidentCreated", "inc-g", 1, created("web")).await;
    for incident in ["inc-j", "inc-g"] {
        produce_value(
            &p,
            &t.facts,
            "IncidentAcknowledged",
            incident,
            2,
            serde_json::json!({"acknowledgedBy": "ana"}),
        )
        .await;
        produce_value(
            &p,
            &t.facts,
            "IncidentResolved",
            incident,
            3,
            serde_json::json!({"resolvedBy": "ana", "resolution": "rolled back"}),
        )
        .await;
    }
    // A replay of an old fact (the domain re-sent inc-j's Created): nothing happens.
    produce_value(
        &p,
        &t.facts,
        "IncidentCreated",
        "inc-j",
        1,
        created("checkout"),
    )
    .await;
    for incident in ["inc-j", "inc-g"] {
        produce_value(
            &p,
            &t.facts,
            "IncidentClosed",
            incident,
            4,
            serde_json::json!({"closedBy": "bob", "reason": "postmortem done"}),
        )
        .await;
    }
    until_committed(brokers, &t, 1, |o| o.get(&0) == Some(&10)).await;

    let issues = jira.issues();
    assert_eq!(issues.len(), 1, "exactly one Jira ticket: {issues:?}");
    let i = &issues[0];
    assert!(
        i.labels.contains(&"sre-incident-inc-j".to_owned()),
        "{:?}",
        i.labels
    );
    assert_eq!(i.comments.len(), 3, "ack, resolve, close: {:?}", i.comments);
    assert_eq!(i.status_name(), "Done");
    let issues = gh.issues();
    assert_eq!(issues.len(), 1, "exactly one GitHub issue: {issues:?}");
    let g = &issues[0];
    assert!(
        g.labels.contains(&"sre-incident:inc-g".to_owned()),
        "{:?}",
        g.labels
    );
    assert!(g.labels.contains(&"resolved".to_owned()), "{:?}", g.labels);
    assert_eq!(g.comments.len(), 3, "ack, resolve, close: {:?}", g.comments);
    assert_eq!(g.state, "closed");
    assert_eq!(g.state_reason.as_deref(), Some("completed"));

    let (b, dlq) = (brokers.to_owned(), t.dlq.clone());
    let dead = tokio::task::spawn_blocking(move || read_topic(&b, &dlq))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0.as_deref(), Some("incident:inc-bad"));
    let reason = dead[0]
        .1
        .iter()
        .find(|(k, _)| k == "dlq_reason")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(reason.contains("valid project is required"), "{reason}");
    let addr = app.addr().await.unwrap();
    until_metric(
        &format!("http://{addr}/metrics"),
        "sre_facts_consumed_total{type=\"IncidentCreated\",outcome=\"replay\"} 1",
    )
    .await;
    app.shutdown().await;
}
