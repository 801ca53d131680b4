//! The Kafka sink against librdkafka's in-process mock cluster (fault injection) and a real
//! Kafka-protocol broker (tansu, memory storage). Records are read back with an rdkafka consumer.
//! librdkafka runs its own threads on the wall clock, so these tests use real time and wait on
//! delivery reports and consumer reads, never on sleeps.

mod common;

use std::time::Duration;

use common::process::{free_port, require, Peer};
use common::{config, post, FIXTURE};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use sre_config::{Config, SinkKind};

const TOPIC: &str = "sre.domain.intents.v1";

fn kafka_config(dir: &std::path::Path, brokers: &str) -> Config {
    let mut c = config(dir);
    c.intents.sink = SinkKind::Kafka;
    c.intents.kafka.brokers = brokers.to_owned();
    c.intents.kafka.delivery_timeout = Duration::from_secs(3);
    c.intents.publish_timeout = Duration::from_secs(10);
    // Reconnect quickly once a downed broker is back.
    c.intents
        .kafka
        .properties
        .insert("reconnect.backoff.max.ms".into(), "500".into());
    c
}

/// One record as read back from the broker.
#[derive(Debug)]
struct Read {
    key: String,
    headers: Vec<(String, String)>,
    value: serde_json::Value,
}

impl Read {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads every record of the topic's partition 0 from the beginning to the high watermark.
fn read_all(brokers: &str) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sre-integration-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    while (out.len() as i64) < high {
        let m = consumer
            .poll(Duration::from_secs(10))
            .expect("a record within 10 s")
            .unwrap();
        out.push(Read {
            key: String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            value: serde_json::from_slice(m.payload().unwrap()).unwrap(),
        });
    }
    out
}

/// Runs the service against `brokers`, posts the fixture once (published), and checks that the
/// topic then holds exactly that record, as contracted.
async fn publish_fixture_once(brokers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (app, base) = common::start(&kafka_config(dir.path(), brokers)).await;
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!((code, body["published"].as_u64()), (200, Some(1)), "{body}");
    app.shutdown().await;
    let brokers = brokers.to_owned();
    let records = tokio::task::spawn_blocking(move || read_all(&brokers))
        .await
        .unwrap();
    assert_contract(&records);
}

fn assert_contract(records: &[Read]) {
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.key, "alert:fbab788ec4c1018b");
    let key = "am:fbab788ec4c1018b:resolved:2022-07-29T11:13:27.3Z";
    for (h, v) in [
        ("ce_specversion", "1.0"),
        ("ce_type", "IngestAlertRequested"),
        ("ce_subject", "alert:fbab788ec4c1018b"),
        ("ce_source", "sre-integration/alertmanager"),
        ("content-type", "application/json"),
        ("idempotency_key", key),
    ] {
        assert_eq!(r.header(h), Some(v), "header {h}");
    }
    assert_eq!(r.header("ce_id").unwrap(), sre_intents::ce_id(key));
    assert!(r.header("ce_time").is_some() && r.header("correlation_id").is_some());
    assert_eq!(r.value["fingerprint"], "fbab788ec4c1018b");
    assert_eq!(r.value["status"], "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_records_carry_the_contract_and_restarts_do_not_re_emit() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let c = kafka_config(dir.path(), &brokers);
    let (app, base) = common::start(&c).await;
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!((code, body["published"].as_u64()), (200, Some(1)), "{body}");
    app.shutdown().await;

    // The window is rebuilt from Kafka by timestamp: a restart does not re-emit.
    let (app, base) = common::start(&c).await;
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!(
        (code, body["duplicates"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    app.shutdown().await;
    let b = brokers.clone();
    let records = tokio::task::spawn_blocking(move || read_all(&b))
        .await
        .unwrap();
    assert_contract(&records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_answers_503_records_nothing_and_the_retry_is_published_once() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let (app, base) = common::start(&kafka_config(dir.path(), &brokers)).await;

    cluster.broker_down(1).unwrap();
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!(code, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("kafka"), "{body}");
    let report = common::get_text(&format!("{base}/readyz")).await;
    assert!(report.contains("intent sink: kafka"), "{report}");
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains(r#"sre_dedup_window_entries{source="all"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sre_intent_publish_failures_total{sink="kafka",reason="kafka"} 1"#),
        "{metrics}"
    );

    cluster.broker_up(1).unwrap();
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!((code, body["published"].as_u64()), (200, Some(1)), "{body}");
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!(
        (code, body["duplicates"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    app.shutdown().await;
    let records = tokio::task::spawn_blocking(move || read_all(&brokers))
        .await
        .unwrap();
    assert_contract(&records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_retried_by_librdkafka_without_duplicates() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    // The next produce requests fail with retriable errors; the idempotent producer retries.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let brokers = cluster.bootstrap_servers();
    publish_fixture_once(&brokers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_kafka_protocol_broker_receives_the_records() {
    let tansu = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
    require(&tansu);
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let _broker = Peer::spawn(std::process::Command::new(&tansu).args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        "memory://tansu/",
    ]));
    let brokers = format!("127.0.0.1:{port}");
    // Create the topic (waits for the broker to accept connections).
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
    let mut created = false;
    for _ in 0..100 {
        let r = admin
            .create_topics(
                &[rdkafka::admin::NewTopic::new(
                    TOPIC,
                    1,
                    rdkafka::admin::TopicReplication::Fixed(1),
                )],
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
                created = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "tansu accepted the topic");

    publish_fixture_once(&brokers).await;
}
