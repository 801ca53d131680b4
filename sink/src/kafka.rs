//! The Kafka sink: rdkafka's `FutureProducer` with `enable.idempotence=true` and `acks=all`,
//! a small `linger.ms`, compression, and delivery reports awaited per publish, so a webhook is
//! answered only once the broker has the records.
//!
//! A partly delivered publish reports failure; the sender's retry republishes the whole batch
//! and the records already delivered arrive again with the same `ce_id`, which the domain drops.
//! Nothing is lost; duplicates at the broker are bounded to such retries.
//!
//! [`recent_keys`] reads back the idempotency keys of the last window (offsets looked up by
//! timestamp), from which the dedup window is rebuilt on start.
//!
//! **Security.** [`client_config`] is how every Kafka client of the program is configured (the
//! producer, the rebuild's reader, and the facts consumer): brokers, TLS and SASL from the
//! typed [`KafkaSecurity`] with credentials read from their secret when the client is created,
//! then the free-form `properties`, minus the ones the sink must own (`acks`,
//! `enable.idempotence`) and the security ones (`security.protocol`, `sasl.*`, `ssl.*`), which
//! configuration validation refuses too. Everything librdkafka says — client-creation errors,
//! delivery errors, fatal errors, its log lines — passes a [`Redactor`] holding the secret
//! values, so a password cannot reach a log, `/readyz` or `/v1/supervision`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sre_config::{kafka_reserved_property, KafkaConfig, KafkaSecurity, SecretStore};
use sre_intents::IntentRecord;

use crate::{Durable, OnFatal, Opened, RecentKeys, Sink, SinkError, SinkWriter};

/// How to reach Kafka (`intents.kafka`).
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// `client.id`.
    pub client_id: String,
    /// `linger.ms`.
    pub linger: Duration,
    /// `compression.type`.
    pub compression: String,
    /// `message.timeout.ms`: how long librdkafka keeps retrying a record.
    pub delivery_timeout: Duration,
    /// TLS and SASL.
    pub security: KafkaSecurity,
    /// Where SASL credentials are read from.
    pub secrets: SecretStore,
    /// Other librdkafka properties (tuning); reserved ones are ignored.
    pub properties: BTreeMap<String, String>,
}

impl KafkaOptions {
    /// The options of `intents.kafka`, credentials read from `secrets` when a client is made.
    pub fn from_config(k: &KafkaConfig, secrets: SecretStore) -> KafkaOptions {
        KafkaOptions {
            brokers: k.brokers.clone(),
            client_id: k.client_id.clone(),
            linger: k.linger,
            compression: k.compression.clone(),
            delivery_timeout: k.delivery_timeout,
            security: k.security.clone(),
            secrets,
            properties: k.properties.clone(),
        }
    }

    fn producer_config(&self) -> Result<(ClientConfig, Redactor), SinkError> {
        let (mut c, redactor) = client_config(
            &self.brokers,
            &self.security,
            &self.secrets,
            &self.properties,
        )?;
        c.set("client.id", &self.client_id)
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("compression.type", &self.compression)
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().max(1).to_string(),
            )
            // Set last: nothing above may weaken them.
            .set("enable.idempotence", "true")
            .set("acks", "all");
        Ok((c, redactor))
    }
}

/// A Kafka client's configuration: `bootstrap.servers`, then `properties` (reserved ones are
/// skipped with a warning), then TLS and SASL from `security` with credentials read from
/// `secrets` now. The [`Redactor`] scrubs those credentials from what librdkafka says.
pub fn client_config(
    brokers: &str,
    security: &KafkaSecurity,
    secrets: &SecretStore,
    properties: &BTreeMap<String, String>,
) -> Result<(ClientConfig, Redactor), SinkError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        match kafka_reserved_property(k) {
            Some(why) => tracing::warn!(property = %k, "ignoring a Kafka property: {why}"),
            None => {
                c.set(k, v);
            }
        }
    }
    c.set("security.protocol", security.protocol.as_str());
    if let Some(tls) = &security.tls {
        if let Some(p) = &tls.ca_path {
            c.set("ssl.ca.location", p.display().to_string());
        }
        if let Some(p) = &tls.cert_path {
            c.set("ssl.certificate.location", p.display().to_string());
        }
        if let Some(p) = &tls.key_path {
            c.set("ssl.key.location", p.display().to_string());
        }
        c.set(
            "ssl.endpoint.identification.algorithm",
            if tls.verify_hostname { "https" } else { "none" },
        );
    }
    let mut redactor = Redactor::default();
    if let Some(sasl) = &security.sasl {
        let read = |key: &str| {
            secrets
                .read(&sasl.secret_ref, key)
                .map_err(|e| SinkError::Config(e.to_string()))
        };
        let (username, password) = (read("username")?, read("password")?);
        redactor = Redactor::new([password.expose().to_owned()]);
        c.set("sasl.mechanism", sasl.mechanism.as_str())
            .set("sasl.username", username.expose())
            .set("sasl.password", password.expose());
    }
    Ok((c, redactor))
}

/// Scrubs secret values from text librdkafka produced. Its `Debug` prints no value.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor of these values (empty ones are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        Redactor {
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
        }
    }

    /// `text` with every secret value replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }

    /// A [`SinkError::Kafka`] of `e`, redacted.
    pub fn kafka(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError::Kafka(self.redact(&e.to_string()))
    }
}

/// How often the same librdkafka complaint is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// librdkafka's logs and errors, through `tracing` and a [`Redactor`], each distinct message at
/// most once per `LOG_EVERY`: during a broker outage librdkafka reports every reconnect
/// attempt, twice.
#[derive(Default)]
pub struct QuietContext {
    last: Mutex<HashMap<String, std::time::Instant>>,
    redactor: Redactor,
}

impl QuietContext {
    /// A context whose output passes `redactor`.
    pub fn new(redactor: Redactor) -> QuietContext {
        QuietContext {
            last: Mutex::default(),
            redactor,
        }
    }

    /// Whether `key` was not logged within the last [`LOG_EVERY`] (and records it now).
    fn due(&self, key: &str) -> bool {
        let mut last = self.last.lock().expect("log limiter");
        let now = std::time::Instant::now();
        match last.get(key) {
            Some(t) if now.duration_since(*t) < LOG_EVERY => false,
            _ => {
                if last.len() > 1024 {
                    last.clear();
                }
                last.insert(key.to_owned(), now);
                true
            }
        }
    }
}

impl ConsumerContext for QuietContext {}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = &self.redactor.redact(message);
        // Messages differ in counters ("1 identical error(s) suppressed"): key on the start.
        let key: String = format!("{fac}:{}", message.chars().take(80).collect::<String>());
        if !self.due(&key) {
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let error = self.redactor.redact(&error.to_string());
        let key = format!("error:{error}");
        if self.due(&key) {
            let reason = self.redactor.redact(reason);
            tracing::warn!(target: "librdkafka", error = %error, "{reason}");
        }
    }
}

/// Kafka as a [`Sink`]: opening creates the idempotent producer; the recent keys are read back
/// by a short-lived consumer.
#[derive(Clone, Debug)]
pub struct KafkaSink {
    options: KafkaOptions,
    topic: String,
}

impl KafkaSink {
    /// Kafka with these options; `topic` is where the recent keys are read back from.
    pub fn new(options: KafkaOptions, topic: String) -> KafkaSink {
        KafkaSink { options, topic }
    }
}

impl Sink for KafkaSink {
    fn label(&self) -> &'static str {
        "kafka"
    }

    fn open(&self, on_fatal: OnFatal) -> Result<Opened, SinkError> {
        Ok(Opened {
            writer: Box::new(KafkaProducer::new(&self.options, on_fatal)?),
            recovered_bytes: 0,
            skipped_lines: 0,
        })
    }

    fn recent_keys(&self, window: Duration) -> Result<RecentKeys, SinkError> {
        Ok(RecentKeys {
            keys: recent_keys(&self.options, &self.topic, window)?,
            skipped_lines: 0,
        })
    }
}

/// An idempotent producer.
pub struct KafkaProducer {
    producer: FutureProducer<QuietContext>,
    on_fatal: OnFatal,
    redactor: Redactor,
}

impl KafkaProducer {
    /// Creates the producer (it connects in the background). `on_fatal` hears of a librdkafka
    /// fatal error, after which the producer must be recreated.
    pub fn new(options: &KafkaOptions, on_fatal: OnFatal) -> Result<KafkaProducer, SinkError> {
        let (config, redactor) = options.producer_config()?;
        let producer: FutureProducer<QuietContext> = config
            .create_with_context(QuietContext::new(redactor.clone()))
            .map_err(|e| SinkError::Config(redactor.redact(&e.to_string())))?;
        Ok(KafkaProducer {
            producer,
            on_fatal,
            redactor,
        })
    }

    /// Sends every record and waits for every delivery report.
    pub async fn send(&self, records: &[IntentRecord]) -> Result<(), SinkError> {
        send(&self.producer, &self.redactor, records).await
    }

    /// librdkafka's fatal error, after which the producer must be recreated.
    pub fn fatal_error(&self) -> Option<String> {
        fatal_error(&self.producer, &self.redactor)
    }

    /// Whether a broker answers a metadata request in time (blocking).
    pub fn reachable(&self, timeout: Duration) -> Result<(), SinkError> {
        self.producer
            .client()
            .fetch_metadata(None, timeout)
            .map(|_| ())
            .map_err(|e| self.redactor.kafka(e))
    }
}

fn fatal_error(producer: &FutureProducer<QuietContext>, redactor: &Redactor) -> Option<String> {
    producer
        .client()
        .fatal_error()
        .map(|(code, why)| redactor.redact(&format!("{code:?}: {why}")))
}

async fn send(
    producer: &FutureProducer<QuietContext>,
    redactor: &Redactor,
    records: &[IntentRecord],
) -> Result<(), SinkError> {
    let mut deliveries = Vec::with_capacity(records.len());
    for r in records {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let record = FutureRecord::to(&r.topic)
            .key(r.key.as_bytes())
            .payload(r.value.get().as_bytes())
            .headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((e, _)) => return Err(redactor.kafka(e)),
        }
    }
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(redactor.kafka(e)),
            Err(_) => return Err(SinkError::Closed),
        }
    }
    Ok(())
}

impl SinkWriter for KafkaProducer {
    fn append(&self, records: Vec<IntentRecord>) -> Durable {
        // FutureProducer is a handle (an Arc inside): cloning it is one reference count, as is
        // cloning the hook and the redactor.
        let (producer, on_fatal, redactor) = (
            self.producer.clone(),
            self.on_fatal.clone(),
            self.redactor.clone(),
        );
        Box::pin(async move {
            let result = send(&producer, &redactor, &records).await;
            if let (Err(_), Some(fatal)) = (&result, fatal_error(&producer, &redactor)) {
                on_fatal(fatal);
            }
            result
        })
    }

    fn flush(&self, timeout: Duration) -> Durable {
        let (producer, redactor) = (self.producer.clone(), self.redactor.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                producer.flush(timeout).map_err(|e| redactor.kafka(e))
            })
            .await
            .unwrap_or(Err(SinkError::Closed))
        })
    }
}

/// A consumer that reads by assignment (group `<client_id>-<purpose>`, nothing committed),
/// with the configured security, and the redactor for its errors.
fn reader(
    options: &KafkaOptions,
    purpose: &str,
) -> Result<(BaseConsumer<QuietContext>, Redactor), SinkError> {
    let (mut c, r) = client_config(
        &options.brokers,
        &options.security,
        &options.secrets,
        &options.properties,
    )?;
    c.set("client.id", &options.client_id)
        .set("group.id", format!("{}-{purpose}", options.client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer = c
        .create_with_context(QuietContext::new(r.clone()))
        .map_err(|e| SinkError::Config(r.redact(&e.to_string())))?;
    Ok((consumer, r))
}

/// The idempotency keys and append times (ms) of `topic`'s records from the last `window`.
/// Blocking; a topic that does not exist yet has none.
pub fn recent_keys(
    options: &KafkaOptions,
    topic: &str,
    window: Duration,
) -> Result<Vec<(String, u64)>, SinkError> {
    let timeout = Duration::from_secs(10);
    let (consumer, r) = reader(options, "dedup-rebuild")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| r.kafka(e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Ok(Vec::new());
    }
    let since_ms = SystemTime::now()
        .checked_sub(window)
        .and_then(|s| s.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut by_time = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    let mut lows = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .map_err(|e| r.kafka(e))?;
        if high > low {
            ends.insert(p.id(), high);
            lows.insert(p.id(), low);
            by_time
                .add_partition_offset(topic, p.id(), Offset::Offset(since_ms))
                .map_err(|e| r.kafka(e))?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let starts = consumer
        .offsets_for_times(by_time, timeout)
        .map_err(|e| r.kafka(e))?;
    let mut assignment = TopicPartitionList::new();
    for e in starts.elements() {
        let p = e.partition();
        let start = match e.offset() {
            Offset::Offset(o) => Some(o),
            // "No record at or after the time" — unless the newest record is recent, which means
            // the broker cannot look offsets up by time (librdkafka's mock cluster): then read
            // the partition from its earliest offset.
            _ => {
                match (ends.get(&p), lows.get(&p)) {
                    (Some(&high), Some(&low))
                        if last_timestamp(&consumer, &r, topic, p, high)? >= since_ms =>
                    {
                        tracing::warn!(topic, partition = p, "broker cannot look offsets up by time; reading from the earliest offset");
                        Some(low)
                    }
                    _ => None,
                }
            }
        };
        match start {
            Some(o) => {
                assignment
                    .add_partition_offset(topic, p, Offset::Offset(o))
                    .map_err(|e| r.kafka(e))?;
            }
            None => {
                ends.remove(&p);
            }
        }
    }
    consumer.assign(&assignment).map_err(|e| r.kafka(e))?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(SinkError::Timeout(Duration::from_secs(60)));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.map_err(|e| r.kafka(e))?;
        if let Some(headers) = msg.headers() {
            for h in headers.iter() {
                if h.key == "idempotency_key" {
                    if let Some(Ok(k)) = h.value.map(std::str::from_utf8) {
                        out.push((
                            k.to_owned(),
                            msg.timestamp().to_millis().unwrap_or(0).max(0) as u64,
                        ));
                    }
                }
            }
        }
        if ends
            .get(&msg.partition())
            .is_some_and(|end| msg.offset() + 1 >= *end)
        {
            ends.remove(&msg.partition());
        }
    }
    Ok(out)
}

/// Reads `topic` (`audit tail` on Kafka): the last `last` records of each partition, then,
/// with `follow`, every record as it arrives, until `on_record` returns false. Without
/// `follow` it ends once every partition's end (as of the start) is reached. Blocking; a topic
/// that does not exist is an error naming it.
pub fn read_topic(
    options: &KafkaOptions,
    topic: &str,
    last: usize,
    follow: bool,
    mut on_record: impl FnMut(crate::stored::StoredRecord) -> bool,
) -> Result<(), SinkError> {
    let timeout = Duration::from_secs(10);
    let (consumer, r) = reader(options, "tail")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| r.kafka(e))?;
    let Some(t) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    else {
        return Err(SinkError::Kafka(format!("topic {topic} does not exist")));
    };
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .map_err(|e| r.kafka(e))?;
        let start = (high - last as i64).max(low);
        if high > start {
            ends.insert(p.id(), high);
        }
        assignment
            .add_partition_offset(topic, p.id(), Offset::Offset(start))
            .map_err(|e| r.kafka(e))?;
    }
    consumer.assign(&assignment).map_err(|e| r.kafka(e))?;
    while follow || !ends.is_empty() {
        let Some(msg) = consumer.poll(Duration::from_millis(250)) else {
            continue;
        };
        let msg = msg.map_err(|e| r.kafka(e))?;
        let mut headers = BTreeMap::new();
        if let Some(hs) = msg.headers() {
            for h in hs.iter() {
                if let Some(Ok(v)) = h.value.map(std::str::from_utf8) {
                    headers.insert(h.key.to_owned(), v.to_owned());
                }
            }
        }
        let value = msg
            .payload()
            .and_then(|p| serde_json::from_slice(p).ok())
            .unwrap_or(serde_json::Value::Null);
        let record = crate::stored::StoredRecord {
            offset: msg.offset().max(0) as u64,
            timestamp: msg.timestamp().to_millis().unwrap_or(0).max(0) as u64,
            topic: topic.to_owned(),
            key: msg
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            headers,
            value,
        };
        if ends
            .get(&msg.partition())
            .is_some_and(|end| msg.offset() + 1 >= *end)
        {
            ends.remove(&msg.partition());
        }
        if !on_record(record) {
            return Ok(());
        }
    }
    Ok(())
}

/// The timestamp (ms) of a partition's newest record.
fn last_timestamp(
    consumer: &BaseConsumer<QuietContext>,
    r: &Redactor,
    topic: &str,
    partition: i32,
    high: i64,
) -> Result<i64, SinkError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(high - 1))
        .map_err(|e| r.kafka(e))?;
    consumer.assign(&tpl).map_err(|e| r.kafka(e))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.map_err(|e| r.kafka(e))?;
            return Ok(m.timestamp().to_millis().unwrap_or(0));
        }
    }
    Err(SinkError::Timeout(Duration::from_secs(10)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sre_config::{KafkaProtocol, KafkaSasl, SaslMechanism};

    const PLANTED: &str = "PLANTED-pw-7f3a";

    fn sasl_options(dir: &std::path::Path) -> KafkaOptions {
        let secret = dir.join("platform/kafka-credentials");
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(secret.join("username"), "sre-integration\n").unwrap();
        std::fs::write(secret.join("password"), format!("{PLANTED}\n")).unwrap();
        let k = KafkaConfig {
            security: KafkaSecurity {
                protocol: KafkaProtocol::SaslPlaintext,
                tls: None,
                sasl: Some(KafkaSasl {
                    mechanism: SaslMechanism::ScramSha512,
                    secret_ref: "platform/kafka-credentials".parse().unwrap(),
                }),
            },
            ..KafkaConfig::default()
        };
        KafkaOptions::from_config(&k, SecretStore::new(dir))
    }

    #[test]
    fn a_planted_password_in_a_librdkafka_error_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = sasl_options(dir.path());
        // librdkafka quotes an invalid value in its error: make one equal to the password.
        options.compression = PLANTED.into();
        let sink = KafkaSink::new(options, "t".into());
        let Err(err) = sink.open(Arc::new(|_| {})) else {
            panic!("an invalid compression is refused");
        };
        let text = err.to_string();
        assert!(matches!(err, SinkError::Config(_)), "{err:?}");
        assert!(!text.contains(PLANTED), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn credentials_come_from_the_secret_and_properties_cannot_weaken_the_producer() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = sasl_options(dir.path());
        for (k, v) in [
            ("acks", "0"),
            ("enable.idempotence", "false"),
            ("security.protocol", "plaintext"),
            ("sasl.password", "from-properties"),
            ("ssl.ca.location", "/elsewhere"),
            ("socket.keepalive.enable", "true"),
        ] {
            options.properties.insert(k.into(), v.into());
        }
        let (c, redactor) = options.producer_config().unwrap();
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("sre-integration"));
        assert_eq!(c.get("sasl.password"), Some(PLANTED));
        assert_eq!(c.get("ssl.ca.location"), None);
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(
            redactor.redact(&format!("auth failed for {PLANTED}")),
            "auth failed for [redacted]"
        );
        assert!(!format!("{redactor:?}").contains(PLANTED));
    }

    #[test]
    fn a_missing_credential_is_a_config_error_naming_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let options = sasl_options(dir.path());
        std::fs::remove_file(dir.path().join("platform/kafka-credentials/password")).unwrap();
        let Err(err) = options.producer_config() else {
            panic!("no password, no client");
        };
        assert!(matches!(err, SinkError::Config(_)), "{err:?}");
        assert!(
            err.to_string().contains("platform/kafka-credentials"),
            "{err}"
        );
    }
}
