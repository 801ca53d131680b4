//! The Kafka sink against librdkafka's in-process mock cluster (fault injection) and a real
//! Kafka-protocol broker (tansu, memory storage). Records are read back with an rdkafka consumer.
//! librdkafka runs its own threads on the wall clock, so these tests use real time and wait on
//! delivery reports and consumer reads, never on sleeps.
//!
//! Security: tansu 0.6 takes `--cert`/`--key` but does not wrap its connections in TLS (the
//! acceptor it builds is unused), and librdkafka's mock cluster has no TLS. So TLS is tested
//! through a TLS-terminating proxy (tokio-rustls, a CA and a `localhost` certificate generated
//! here with rcgen) in front of tansu, which advertises the proxy's address: every connection
//! librdkafka makes (bootstrap, then the advertised broker) is a TLS handshake verified against
//! the configured CA (and hostname), then real Kafka traffic. SASL is checked against tansu's
//! `--authentication` on its failure path only (see that test for why).

mod common;

use std::time::Duration;

use common::process::{free_port, require, Peer};
use common::{config, post, FIXTURE};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use sre_config::{
    Config, KafkaProtocol, KafkaSasl, KafkaSecurity, KafkaTls, SaslMechanism, SinkKind,
};

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
    read_all_with(brokers, &[])
}

/// [`read_all`] with extra client properties (TLS, SASL).
fn read_all_with(brokers: &str, props: &[(String, String)]) -> Vec<Read> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", "sre-integration-test-reader")
        .set("enable.auto.commit", "false");
    for (k, v) in props {
        c.set(k, v);
    }
    let consumer: BaseConsumer = c.create().unwrap();
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

/// Starts tansu on `port`, advertising `advertised` (`host:port`).
fn tansu(port: u16, advertised: &str, extra: &[&str]) -> Peer {
    let tansu = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
    require(&tansu);
    let listen = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://{advertised}");
    Peer::spawn(
        std::process::Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &listen,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ])
            .args(extra),
    )
}

/// Creates the topic through a client with `props` (waits for the broker to accept).
async fn create_topic(brokers: &str, props: &[(String, String)]) {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in props {
        c.set(k, v);
    }
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        c.create().unwrap();
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
    assert!(created, "the broker accepted the topic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_kafka_protocol_broker_receives_the_records() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let _broker = tansu(port, &brokers, &[]);
    create_topic(&brokers, &[]).await;
    publish_fixture_once(&brokers).await;
}

mod tls {
    //! A TLS-terminating proxy and its PKI.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::rustls;

    /// A CA (PEM) and a server configuration for `localhost` signed by it.
    pub fn pki() -> (String, Arc<rustls::ServerConfig>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "sre-integration test CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        (ca.pem(), Arc::new(server))
    }

    /// Accepts TLS on a free port and forwards the plaintext to `upstream`; counts handshakes.
    pub struct Proxy {
        /// Where it listens.
        pub port: u16,
        /// Handshakes completed.
        pub accepted: Arc<AtomicUsize>,
        /// Handshakes refused (a client that did not trust the certificate); a client that
        /// merely closed the connection mid-handshake is not counted.
        pub refused: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Proxy {
        pub async fn start(server: Arc<rustls::ServerConfig>, upstream: u16) -> Proxy {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let acceptor = tokio_rustls::TlsAcceptor::from(server);
            let (accepted, refused) = (Arc::default(), Arc::default());
            let (a, r): (Arc<AtomicUsize>, Arc<AtomicUsize>) =
                (Arc::clone(&accepted), Arc::clone(&refused));
            let task = tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, a, r) = (acceptor.clone(), a.clone(), r.clone());
                    tokio::spawn(async move {
                        let mut tls = match acceptor.accept(tcp).await {
                            Ok(tls) => tls,
                            // A client that went away mid-handshake (librdkafka closing a
                            // connection it no longer needs at shutdown) refused nothing.
                            Err(e) if went_away(&e) => return,
                            Err(_) => {
                                r.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        };
                        a.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                        }
                    });
                }
            });
            Proxy {
                port,
                accepted,
                refused,
                task,
            }
        }

        pub fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        pub fn refused(&self) -> usize {
            self.refused.load(Ordering::SeqCst)
        }
    }

    /// A handshake that ended because the client closed the connection, not with its refusal
    /// (a TLS alert such as `unknown_ca`).
    fn went_away(e: &std::io::Error) -> bool {
        use std::io::ErrorKind::*;
        matches!(
            e.kind(),
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
        )
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.task.abort();
        }
    }
}

fn tls_props(ca: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("security.protocol".into(), "ssl".into()),
        ("ssl.ca.location".into(), ca.display().to_string()),
    ]
}

fn tls_security(ca: &std::path::Path) -> KafkaTls {
    KafkaTls {
        ca_path: Some(ca.to_owned()),
        cert_path: None,
        key_path: None,
        verify_hostname: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_real_broker_is_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, server) = tls::pki();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let (other_ca_pem, _) = tls::pki();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other_ca_pem).unwrap();

    let broker_port = free_port();
    let proxy = tls::Proxy::start(server, broker_port).await;
    let brokers = format!("localhost:{}", proxy.port);
    let _broker = tansu(broker_port, &brokers, &[]);
    create_topic(&brokers, &tls_props(&ca)).await;

    // The service publishes over TLS, trusting only the configured CA.
    let mut c = kafka_config(dir.path(), &brokers);
    c.intents.kafka.security = KafkaSecurity {
        protocol: KafkaProtocol::Ssl,
        tls: Some(tls_security(&ca)),
        sasl: None,
    };
    let (app, base) = common::start(&c).await;
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!((code, body["published"].as_u64()), (200, Some(1)), "{body}");
    app.shutdown().await;
    assert!(proxy.accepted() > 0, "the client went through TLS");
    assert_eq!(proxy.refused(), 0);
    let props = tls_props(&ca);
    let records = tokio::task::spawn_blocking(move || read_all_with(&brokers, &props))
        .await
        .unwrap();
    assert_contract(&records);

    // A client that trusts another CA refuses the broker's certificate: nothing gets through.
    let mut options = sre_sink::kafka::KafkaOptions::from_config(
        &c.intents.kafka,
        sre_config::SecretStore::new(&c.secrets.dir),
    );
    options.security.tls = Some(tls_security(&other_ca));
    let refused_before = proxy.refused();
    let producer =
        sre_sink::kafka::KafkaProducer::new(&options, std::sync::Arc::new(|_| {})).unwrap();
    let reached = tokio::task::spawn_blocking(move || producer.reachable(Duration::from_secs(3)))
        .await
        .unwrap();
    assert!(reached.is_err(), "an untrusted certificate was accepted");
    assert!(
        proxy.refused() > refused_before,
        "the handshake was refused"
    );
}

/// A secret `platform/kafka-credentials` under the test's secrets dir.
fn kafka_credentials(c: &Config, username: &str, password: &str) {
    let dir = c.secrets.dir.join("platform/kafka-credentials");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("username"), format!("{username}\n")).unwrap();
    std::fs::write(dir.join("password"), format!("{password}\n")).unwrap();
}

fn sasl_security(ca: &std::path::Path, mechanism: SaslMechanism) -> KafkaSecurity {
    KafkaSecurity {
        protocol: KafkaProtocol::SaslSsl,
        tls: Some(tls_security(ca)),
        sasl: Some(KafkaSasl {
            mechanism,
            secret_ref: "platform/kafka-credentials".parse().unwrap(),
        }),
    }
}

/// Whether a producer with `security` gets a metadata answer through the proxy.
async fn reachable(c: &Config, security: KafkaSecurity) -> Result<(), sre_sink::SinkError> {
    let mut options = sre_sink::kafka::KafkaOptions::from_config(
        &c.intents.kafka,
        sre_config::SecretStore::new(&c.secrets.dir),
    );
    options.security = security;
    let producer = sre_sink::kafka::KafkaProducer::new(&options, std::sync::Arc::new(|_| {}))?;
    tokio::task::spawn_blocking(move || producer.reachable(Duration::from_secs(3)))
        .await
        .unwrap()
}

/// tansu 0.6 with `--authentication` offers SCRAM only (a PLAIN client gets
/// `NoSharedMechanism`), refuses `tansu user create` before authentication, and its memory
/// storage does not survive a restart: no broker here can hold a SCRAM user, so the success path
/// of SASL is not tested against a broker. What is checked: over TLS, a client without SASL and a
/// SCRAM client with unknown credentials are both refused, and the password shows nowhere in the
/// error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_failures_against_a_broker_that_requires_it_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, server) = tls::pki();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let broker_port = free_port();
    let proxy = tls::Proxy::start(server, broker_port).await;
    let brokers = format!("localhost:{}", proxy.port);
    let _broker = tansu(broker_port, &brokers, &["--authentication"]);
    let c = kafka_config(dir.path(), &brokers);

    let tls_only = KafkaSecurity {
        protocol: KafkaProtocol::Ssl,
        tls: Some(tls_security(&ca)),
        sasl: None,
    };
    assert!(
        reachable(&c, tls_only).await.is_err(),
        "unauthenticated access"
    );

    let planted = "PLANTED-wrong-pw-91c2";
    kafka_credentials(&c, "sre-integration", planted);
    for mechanism in [SaslMechanism::ScramSha512, SaslMechanism::ScramSha256] {
        let err = reachable(&c, sasl_security(&ca, mechanism))
            .await
            .expect_err("unknown SCRAM credentials authenticate");
        assert!(!err.to_string().contains(planted), "{err}");
    }
    assert!(proxy.accepted() > 0, "the clients went through TLS first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_configuration_error_never_shows_the_password() {
    let cluster = MockCluster::new(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = kafka_config(dir.path(), &cluster.bootstrap_servers());
    // No webhook, so no dedup rebuild: the publisher is the one Kafka client.
    c.observability_integration = None;
    c.intents.kafka.security = KafkaSecurity {
        protocol: KafkaProtocol::SaslPlaintext,
        tls: None,
        sasl: Some(KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            secret_ref: "platform/kafka-credentials".parse().unwrap(),
        }),
    };
    let planted = "PLANTED-pw-e2e-4411";
    kafka_credentials(&c, "sre-integration", planted);
    // librdkafka quotes an invalid value in its error: plant the password there.
    c.intents.kafka.compression = planted.into();
    let (app, base) = common::start(&c).await;
    let mut supervision = String::new();
    for _ in 0..100 {
        supervision = common::get_text(&format!("{base}/v1/supervision")).await;
        if supervision.contains("sink configuration") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(supervision.contains("[redacted]"), "{supervision}");
    let ready = common::get_text(&format!("{base}/readyz")).await;
    assert!(ready.contains("[redacted]"), "{ready}");
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    for text in [&supervision, &ready, &metrics] {
        assert!(!text.contains(planted), "{text}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_are_audited_to_the_kafka_topic_and_tailed_back() {
    const AUDIT: &str = "sre.integration.audit.v1";
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    cluster.create_topic(AUDIT, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut c = kafka_config(dir.path(), &brokers);
    c.tools.enabled = true;
    let token_dir = c.secrets.dir.join("platform/agent");
    std::fs::create_dir_all(&token_dir).unwrap();
    std::fs::write(token_dir.join("token"), "agent-tok-k").unwrap();
    c.tools.tokens = vec![sre_config::ToolToken {
        name: "srecoder".into(),
        role: sre_config::ToolRole::Agent,
        secret_ref: "platform/agent".parse().unwrap(),
    }];
    let (app, base) = common::start(&c).await;
    let resp = common::client()
        .post(format!("{base}/v1/tools/k8s.nope"))
        .bearer_auth("agent-tok-k")
        .json(&serde_json::json!({"cluster": "dev"}))
        .send()
        .await
        .unwrap();
    // Answered only once the audit record was acknowledged by the broker.
    assert_eq!(resp.status().as_u16(), 404);
    app.shutdown().await;

    let options = sre_sink::kafka::KafkaOptions::from_config(
        &c.intents.kafka,
        sre_config::SecretStore::new(&c.secrets.dir),
    );
    let records = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        sre_sink::kafka::read_topic(&options, AUDIT, 10, false, |r| {
            out.push(r);
            true
        })
        .map(|()| out)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].value["outcome"], "unknown_tool");
    assert_eq!(records[0].value["caller"], "srecoder");
    assert_eq!(records[0].header("audit_event"), Some("call"));
    assert!(!serde_json::to_string(&records)
        .unwrap()
        .contains("agent-tok-k"));

    // `audit tail` reads the topic when intents go to Kafka.
    let file = dir.path().join("kafka.yaml");
    std::fs::write(
        &file,
        format!("intents:\n  sink: kafka\n  kafka:\n    brokers: \"{brokers}\"\n"),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::process::BIN)
            .args(["audit", "tail", "--config"])
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"outcome\":\"unknown_tool\""), "{stdout}");
}
