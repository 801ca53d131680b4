//! The Kafka sink: rdkafka's `FutureProducer` with `enable.idempotence=true` (which implies
//! `acks=all`), a small `linger.ms`, compression, and delivery reports awaited per publish, so a
//! webhook is answered only once the broker has the records.
//!
//! A partly delivered publish reports failure; the sender's retry republishes the whole batch
//! and the records already delivered arrive again with the same `ce_id`, which the domain drops.
//! Nothing is lost; duplicates at the broker are bounded to such retries.
//!
//! [`recent_keys`] reads back the idempotency keys of the last window (offsets looked up by
//! timestamp), from which the dedup window is rebuilt on start.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
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
    /// Anything else librdkafka accepts (security, SASL, ...).
    pub properties: BTreeMap<String, String>,
}

impl KafkaOptions {
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("compression.type", &self.compression)
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().max(1).to_string(),
            );
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// How often the same librdkafka complaint is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// librdkafka's logs and errors, through `tracing`, each distinct message at most once per
/// [`LOG_EVERY`]: during a broker outage librdkafka reports every reconnect attempt, twice.
#[derive(Default)]
pub struct QuietContext {
    last: Mutex<HashMap<String, std::time::Instant>>,
}

impl QuietContext {
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

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
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
        let key = format!("error:{error}");
        if self.due(&key) {
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
}

fn kafka(e: impl std::fmt::Display) -> SinkError {
    SinkError::Kafka(e.to_string())
}

impl KafkaProducer {
    /// Creates the producer (it connects in the background). `on_fatal` hears of a librdkafka
    /// fatal error, after which the producer must be recreated.
    pub fn new(options: &KafkaOptions, on_fatal: OnFatal) -> Result<KafkaProducer, SinkError> {
        let producer: FutureProducer<QuietContext> = options
            .client_config()
            .create_with_context(QuietContext::default())
            .map_err(kafka)?;
        Ok(KafkaProducer { producer, on_fatal })
    }

    /// Sends every record and waits for every delivery report.
    pub async fn send(&self, records: &[IntentRecord]) -> Result<(), SinkError> {
        send(&self.producer, records).await
    }

    /// librdkafka's fatal error, after which the producer must be recreated.
    pub fn fatal_error(&self) -> Option<String> {
        fatal_error(&self.producer)
    }

    /// Whether a broker answers a metadata request in time (blocking).
    pub fn reachable(&self, timeout: Duration) -> Result<(), SinkError> {
        self.producer
            .client()
            .fetch_metadata(None, timeout)
            .map(|_| ())
            .map_err(kafka)
    }
}

fn fatal_error(producer: &FutureProducer<QuietContext>) -> Option<String> {
    producer
        .client()
        .fatal_error()
        .map(|(code, why)| format!("{code:?}: {why}"))
}

async fn send(
    producer: &FutureProducer<QuietContext>,
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
            Err((e, _)) => return Err(kafka(e)),
        }
    }
    for d in deliveries {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(kafka(e)),
            Err(_) => return Err(SinkError::Closed),
        }
    }
    Ok(())
}

impl SinkWriter for KafkaProducer {
    fn append(&self, records: Vec<IntentRecord>) -> Durable {
        // FutureProducer is a handle (an Arc inside): cloning it is one reference count.
        let (producer, on_fatal) = (self.producer.clone(), self.on_fatal.clone());
        Box::pin(async move {
            let result = send(&producer, &records).await;
            if let (Err(_), Some(fatal)) = (&result, fatal_error(&producer)) {
                on_fatal(fatal);
            }
            result
        })
    }

    fn flush(&self, timeout: Duration) -> Durable {
        let producer = self.producer.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || producer.flush(timeout).map_err(kafka))
                .await
                .unwrap_or(Err(SinkError::Closed))
        })
    }
}

/// The idempotency keys and append times (ms) of `topic`'s records from the last `window`.
/// Blocking; a topic that does not exist yet has none.
pub fn recent_keys(
    options: &KafkaOptions,
    topic: &str,
    window: Duration,
) -> Result<Vec<(String, u64)>, SinkError> {
    let timeout = Duration::from_secs(10);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &options.brokers)
        .set("group.id", format!("{}-dedup-rebuild", options.client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in &options.properties {
        c.set(k, v);
    }
    let consumer: BaseConsumer = c.create().map_err(kafka)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka)?;
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
            .map_err(kafka)?;
        if high > low {
            ends.insert(p.id(), high);
            lows.insert(p.id(), low);
            by_time
                .add_partition_offset(topic, p.id(), Offset::Offset(since_ms))
                .map_err(kafka)?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let starts = consumer
        .offsets_for_times(by_time, timeout)
        .map_err(kafka)?;
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
                        if last_timestamp(&consumer, topic, p, high)? >= since_ms =>
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
                    .map_err(kafka)?;
            }
            None => {
                ends.remove(&p);
            }
        }
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(SinkError::Timeout(Duration::from_secs(60)));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.map_err(kafka)?;
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

/// The timestamp (ms) of a partition's newest record.
fn last_timestamp(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    high: i64,
) -> Result<i64, SinkError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(high - 1))
        .map_err(kafka)?;
    consumer.assign(&tpl).map_err(kafka)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.map_err(kafka)?;
            return Ok(m.timestamp().to_millis().unwrap_or(0));
        }
    }
    Err(SinkError::Timeout(Duration::from_secs(10)))
}
