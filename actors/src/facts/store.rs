//! Where the incident ledger is kept (DESIGN §3.3b): a compacted Kafka topic when the sink is
//! Kafka, a local log otherwise. Not an actor: the [`IncidentLedger`](super::ledger) owns one.
//!
//! - **Local** ([`LocalLedger`]): the embedded intent log's segmented JSON-lines format under
//!   `<facts.data_dir>/<ledger_topic>/`, one line per write (key `incident:<id>`, the entry as
//!   the value, `null` for a forgotten incident); the last line per incident wins. Opening it
//!   applies the log's crash rules (a torn or zero tail is cut, unreadable lines between
//!   records are skipped and counted) and its `LOCK`. Writes are group-committed with fsync.
//!   When the log holds more than `compact_lines` lines and more than twice the live entries,
//!   it is rewritten: a new segment with only the live entries is written beside the old ones
//!   (temporary name, fsync, rename, fsync of the directory), then the old segments are
//!   deleted — a crash in between leaves both, and the newer segment wins.
//! - **Kafka** ([`KafkaLedger`]): an idempotent producer (`acks=all`) writes each entry keyed
//!   `incident:<id>` *to the facts partition the incident's facts come from* (the ledger topic
//!   must have the facts topic's partition count), so whoever owns a facts partition owns its
//!   incidents' entries; a forgotten incident is a tombstone. The topic is read to its end on
//!   start, and a partition again whenever it is assigned to this consumer. The topic is never
//!   created here: a missing one is an error that says what to create.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sre_intents::IntentRecord;
use sre_sink::embedded::{read_since, segments, Log, LogOptions, Writer};
use sre_sink::kafka::{client_config, KafkaOptions, QuietContext, Redactor};
use sre_sink::stored::StoredRecord;

use super::entry::IncidentEntry;

/// Longest a Kafka read of the ledger may take.
const READ_DEADLINE: Duration = Duration::from_secs(60);
/// Metadata and watermark requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the ledger could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// The local log failed (the ledger reopens it).
    #[error("incident ledger {0}")]
    Io(String),
    /// Kafka refused or failed a read or write (the message is redacted).
    #[error("incident ledger on kafka: {0}")]
    Kafka(String),
    /// The ledger topic does not exist; the program creates nothing silently.
    #[error("incident ledger topic {topic:?} does not exist: create it (cleanup.policy=compact, {partitions} partitions like the facts topic {facts_topic:?})")]
    TopicMissing {
        /// The ledger topic.
        topic: String,
        /// The facts topic.
        facts_topic: String,
        /// Its partition count (0 when unknown).
        partitions: usize,
    },
    /// The ledger topic's partitions do not match the facts topic's.
    #[error("incident ledger topic {topic:?} has {ledger} partitions but the facts topic {facts_topic:?} has {facts}: they must be equal")]
    PartitionMismatch {
        /// The ledger topic.
        topic: String,
        /// The facts topic.
        facts_topic: String,
        /// Ledger partitions.
        ledger: usize,
        /// Facts partitions.
        facts: usize,
    },
    /// The ledger actor is not running (restarting) or did not answer in time.
    #[error("incident ledger unavailable: {0}")]
    Unavailable(String),
}

/// The record key of an incident.
pub fn ledger_key(incident_id: &str) -> String {
    format!("incident:{incident_id}")
}

/// What opening a store found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Live entries and the partition each was read from.
    pub entries: HashMap<String, (IncidentEntry, i32)>,
    /// Unreadable lines skipped (local).
    pub skipped_lines: u64,
    /// Crash garbage cut (local).
    pub recovered_bytes: u64,
    /// Lines the local log holds (for compaction).
    pub lines: u64,
}

/// Resolves once a write is durable.
pub type Written = BoxFuture<'static, Result<(), LedgerError>>;

/// A ledger store.
pub enum LedgerStore {
    /// The local log.
    Local(LocalLedger),
    /// The compacted topic.
    Kafka(Box<KafkaLedger>),
}

impl LedgerStore {
    /// Opens the store and reads every live entry (blocking).
    pub fn open(
        &mut self,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> Result<Loaded, LedgerError> {
        match self {
            LedgerStore::Local(l) => l.open(on_fatal),
            LedgerStore::Kafka(k) => k.load(),
        }
    }

    /// Writes `entry` (or forgets the incident, with `None`); the future resolves once durable.
    pub fn write(
        &mut self,
        incident_id: &str,
        partition: i32,
        entry: Option<&IncidentEntry>,
    ) -> Written {
        match self {
            LedgerStore::Local(l) => l.write(incident_id, entry),
            LedgerStore::Kafka(k) => k.write(incident_id, partition, entry),
        }
    }

    /// Whether the store is the Kafka topic (partitions are then reloaded on assignment).
    pub fn is_kafka(&self) -> bool {
        matches!(self, LedgerStore::Kafka(_))
    }

    /// What reads the Kafka topic again on assignment (`None` for the local log).
    pub fn reader(&self) -> Option<KafkaReader> {
        match self {
            LedgerStore::Local(_) => None,
            LedgerStore::Kafka(k) => Some(KafkaReader {
                options: k.options.clone(),
                topic: k.topic.clone(),
            }),
        }
    }
}

/// Reads partitions of the ledger topic (blocking); cheap to clone.
#[derive(Clone)]
pub struct KafkaReader {
    options: KafkaOptions,
    topic: String,
}

impl KafkaReader {
    /// The entries of `partitions` as the topic holds them now: `(partition, incident, entry
    /// or None when forgotten)`, oldest first.
    pub fn read(
        &self,
        partitions: &[i32],
    ) -> Result<Vec<(i32, String, Option<IncidentEntry>)>, LedgerError> {
        let (consumer, r) = kafka_consumer(&self.options)?;
        Ok(read_partitions(&consumer, &r, &self.topic, partitions)?
            .into_iter()
            .map(|(p, id, v)| (p, id, v.and_then(|v| serde_json::from_slice(&v).ok())))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// Local

/// The local ledger log.
pub struct LocalLedger {
    dir: PathBuf,
    topic: String,
    compact_lines: u64,
    writer: Option<(Writer, std::thread::JoinHandle<()>)>,
    lines: u64,
}

fn log_options() -> LogOptions {
    LogOptions {
        // Never rotated nor expired by the log itself: compaction bounds it.
        segment_bytes: u64::MAX,
        retention_age: Duration::from_secs(100 * 365 * 24 * 3600),
        retention_bytes: u64::MAX,
        lock_wait: Duration::from_secs(10),
    }
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> LedgerError + '_ {
    move |e| LedgerError::Io(format!("{}: {e}", dir.display()))
}

fn record(topic: &str, incident_id: &str, entry: Option<&IncidentEntry>) -> IntentRecord {
    let json = match entry {
        Some(e) => serde_json::to_string(e).expect("an entry serializes"),
        None => "null".to_owned(),
    };
    IntentRecord {
        topic: topic.to_owned(),
        key: ledger_key(incident_id),
        headers: Vec::new(),
        value: serde_json::value::RawValue::from_string(json).expect("valid JSON"),
    }
}

/// Applies one stored line to `entries` (last wins; `null` forgets).
fn apply_line(entries: &mut HashMap<String, (IncidentEntry, i32)>, r: &StoredRecord) -> bool {
    let Some(id) = r.key.strip_prefix("incident:") else {
        return false;
    };
    if r.value.is_null() {
        entries.remove(id);
        return true;
    }
    match serde_json::from_value::<IncidentEntry>(r.value.clone()) {
        Ok(e) => {
            entries.insert(id.to_owned(), (e, 0));
            true
        }
        Err(_) => false,
    }
}

/// Reads the local ledger in `dir` without opening it for writing (no lock): every live
/// entry, last line per incident winning.
pub fn read_local(dir: &Path) -> Result<Loaded, LedgerError> {
    let scan = read_since(dir, 0).map_err(io(dir))?;
    let mut loaded = Loaded {
        skipped_lines: scan.skipped_lines,
        lines: scan.records.len() as u64,
        ..Loaded::default()
    };
    for r in &scan.records {
        if !apply_line(&mut loaded.entries, r) {
            loaded.skipped_lines += 1;
        }
    }
    Ok(loaded)
}

impl LocalLedger {
    /// The ledger in `dir` (`<facts.data_dir>/<ledger_topic>`).
    pub fn new(dir: PathBuf, topic: String, compact_lines: u64) -> LocalLedger {
        LocalLedger {
            dir,
            topic,
            compact_lines,
            writer: None,
            lines: 0,
        }
    }

    fn open(
        &mut self,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> Result<Loaded, LedgerError> {
        self.close();
        let log =
            Log::open(&self.dir, log_options()).map_err(|e| LedgerError::Io(e.to_string()))?;
        let recovered = log.recovery().clone();
        let mut loaded = read_local(&self.dir)?;
        loaded.recovered_bytes = recovered.truncated_bytes;
        if recovered.truncated_bytes > 0 || loaded.skipped_lines > 0 {
            tracing::warn!(dir = %self.dir.display(), cut_bytes = recovered.truncated_bytes, skipped_lines = loaded.skipped_lines, "incident ledger: crash garbage cut or skipped");
        }
        self.lines = loaded.lines;
        let (writer, thread) = Writer::spawn(log, on_fatal);
        self.writer = Some((writer, thread));
        Ok(loaded)
    }

    fn write(&mut self, incident_id: &str, entry: Option<&IncidentEntry>) -> Written {
        let Some((writer, _)) = &self.writer else {
            return Box::pin(async { Err(LedgerError::Io("not open".into())) });
        };
        self.lines += 1;
        let done = writer.append(vec![record(&self.topic, incident_id, entry)]);
        Box::pin(async move {
            match done.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(LedgerError::Io(e.to_string())),
                Err(_) => Err(LedgerError::Io("writer stopped".into())),
            }
        })
    }

    /// Whether the log should be rewritten with only `live` entries.
    pub fn needs_compaction(&self, live: usize) -> bool {
        self.lines > self.compact_lines && self.lines > 2 * live as u64
    }

    /// Lines written since open or the last compaction.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Stops the writer thread (after it confirmed what it took) and releases the lock.
    fn close(&mut self) {
        if let Some((writer, thread)) = self.writer.take() {
            drop(writer);
            let _ = thread.join();
        }
    }

    /// Rewrites the log with only `live` (blocking; see the module docs), then reopens it.
    pub fn compact(
        &mut self,
        live: Vec<IncidentEntry>,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> Result<Loaded, LedgerError> {
        self.close();
        let dir = self.dir.clone();
        let old = segments(&dir).map_err(io(&dir))?;
        let next = {
            let scan = read_since(&dir, 0).map_err(io(&dir))?;
            scan.records.last().map_or(0, |r| r.offset + 1)
        };
        let base = old.last().map_or(0, |(b, _)| *b).max(next);
        let tmp = dir.join(format!("{base:020}.jsonl.tmp"));
        let path = dir.join(format!("{base:020}.jsonl"));
        {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&dir))?);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            for (i, e) in live.iter().enumerate() {
                let line = StoredRecord {
                    offset: base + i as u64,
                    timestamp: now,
                    topic: self.topic.clone(),
                    key: ledger_key(&e.incident_id),
                    headers: Default::default(),
                    value: serde_json::to_value(e).expect("an entry serializes"),
                };
                serde_json::to_writer(&mut f, &line).map_err(|e| LedgerError::Io(e.to_string()))?;
                f.write_all(b"\n").map_err(io(&dir))?;
            }
            let f = f.into_inner().map_err(|e| LedgerError::Io(e.to_string()))?;
            f.sync_all().map_err(io(&dir))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&dir))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        for (_, p) in old {
            if p != path {
                std::fs::remove_file(&p).map_err(io(&dir))?;
            }
        }
        tracing::info!(dir = %dir.display(), live = live.len(), "incident ledger compacted");
        self.open(on_fatal)
    }
}

impl Drop for LocalLedger {
    fn drop(&mut self) {
        // Dropping the writer ends its thread, which releases the lock; not joined here (a
        // killed actor must not block).
        self.writer.take();
    }
}

// ---------------------------------------------------------------------------------------
// Kafka

/// The compacted ledger topic.
pub struct KafkaLedger {
    options: KafkaOptions,
    topic: String,
    facts_topic: String,
    producer: Option<(FutureProducer<QuietContext>, Redactor)>,
}

impl KafkaLedger {
    /// The ledger on `topic`, partitioned like `facts_topic`.
    pub fn new(options: KafkaOptions, topic: String, facts_topic: String) -> KafkaLedger {
        KafkaLedger {
            options,
            topic,
            facts_topic,
            producer: None,
        }
    }

    fn consumer(&self) -> Result<(BaseConsumer<QuietContext>, Redactor), LedgerError> {
        kafka_consumer(&self.options)
    }

    fn partition_count(
        consumer: &BaseConsumer<QuietContext>,
        r: &Redactor,
        topic: &str,
    ) -> Result<usize, LedgerError> {
        let md = consumer
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| LedgerError::Kafka(r.redact(&e.to_string())))?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len()))
    }

    /// Reads every live entry (blocking); checks the topic exists with the facts topic's
    /// partition count, and creates the producer.
    pub fn load(&mut self) -> Result<Loaded, LedgerError> {
        let (consumer, r) = self.consumer()?;
        let facts = Self::partition_count(&consumer, &r, &self.facts_topic)?;
        let ledger = Self::partition_count(&consumer, &r, &self.topic)?;
        if ledger == 0 {
            return Err(LedgerError::TopicMissing {
                topic: self.topic.clone(),
                facts_topic: self.facts_topic.clone(),
                partitions: facts,
            });
        }
        if facts != 0 && facts != ledger {
            return Err(LedgerError::PartitionMismatch {
                topic: self.topic.clone(),
                facts_topic: self.facts_topic.clone(),
                ledger,
                facts,
            });
        }
        let partitions: Vec<i32> = (0..ledger as i32).collect();
        let mut loaded = Loaded::default();
        for (p, id, value) in read_partitions(&consumer, &r, &self.topic, &partitions)? {
            match value.and_then(|v| serde_json::from_slice::<IncidentEntry>(&v).ok()) {
                Some(e) => {
                    loaded.entries.insert(id, (e, p));
                }
                None => {
                    loaded.entries.remove(&id);
                }
            }
        }
        if self.producer.is_none() {
            let o = &self.options;
            let (mut c, r) = client_config(&o.brokers, &o.security, &o.secrets, &o.properties)
                .map_err(|e| LedgerError::Kafka(e.to_string()))?;
            c.set("client.id", format!("{}-ledger", o.client_id))
                .set("linger.ms", "1")
                .set("message.timeout.ms", "30000")
                .set("enable.idempotence", "true")
                .set("acks", "all");
            let producer = c
                .create_with_context(QuietContext::new(r.clone()))
                .map_err(|e| LedgerError::Kafka(r.redact(&e.to_string())))?;
            self.producer = Some((producer, r));
        }
        Ok(loaded)
    }

    fn write(&self, incident_id: &str, partition: i32, entry: Option<&IncidentEntry>) -> Written {
        let Some((producer, r)) = &self.producer else {
            return Box::pin(async { Err(LedgerError::Kafka("not open".into())) });
        };
        let key = ledger_key(incident_id);
        let payload = entry.map(|e| serde_json::to_vec(e).expect("an entry serializes"));
        let mut rec = FutureRecord::<String, Vec<u8>>::to(&self.topic)
            .key(&key)
            .partition(partition);
        if let Some(p) = &payload {
            rec = rec.payload(p);
        }
        let r = r.clone();
        match producer.send_result(rec) {
            Ok(delivery) => Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(LedgerError::Kafka(r.redact(&e.to_string()))),
                    Err(_) => Err(LedgerError::Kafka("producer closed".into())),
                }
            }),
            Err((e, _)) => {
                let e = LedgerError::Kafka(r.redact(&e.to_string()));
                Box::pin(async move { Err(e) })
            }
        }
    }
}

/// One record of the ledger topic: partition, incident id, value (`None`: a tombstone).
type RawEntry = (i32, String, Option<Vec<u8>>);

/// A reader of the ledger topic (no group membership: partitions are assigned).
fn kafka_consumer(o: &KafkaOptions) -> Result<(BaseConsumer<QuietContext>, Redactor), LedgerError> {
    let (mut c, r) = client_config(&o.brokers, &o.security, &o.secrets, &o.properties)
        .map_err(|e| LedgerError::Kafka(e.to_string()))?;
    c.set("client.id", format!("{}-ledger", o.client_id))
        .set("group.id", format!("{}-ledger-reader", o.client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer = c
        .create_with_context(QuietContext::new(r.clone()))
        .map_err(|e| LedgerError::Kafka(r.redact(&e.to_string())))?;
    Ok((consumer, r))
}

/// Every record of `partitions` from the beginning to the high watermark: (partition,
/// incident id, value or `None` for a tombstone). Records whose key is not `incident:<id>`
/// are ignored.
fn read_partitions(
    consumer: &BaseConsumer<QuietContext>,
    r: &Redactor,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<RawEntry>, LedgerError> {
    let kafka = |e: rdkafka::error::KafkaError| LedgerError::Kafka(r.redact(&e.to_string()));
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
            .map_err(kafka)?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(kafka)?;
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl).map_err(kafka)?;
    let deadline = std::time::Instant::now() + READ_DEADLINE;
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(LedgerError::Kafka(format!(
                "reading {topic} did not reach its end within {READ_DEADLINE:?}"
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(kafka)?;
        let id = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.strip_prefix("incident:"))
            .map(str::to_owned);
        if let Some(id) = id {
            out.push((m.partition(), id, m.payload().map(<[u8]>::to_vec)));
        }
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::entry::Lifecycle;

    fn entry(id: &str, revision: u64) -> IncidentEntry {
        IncidentEntry {
            revision,
            lifecycle: Lifecycle::Open,
            ..IncidentEntry::new(id)
        }
    }

    #[tokio::test]
    async fn last_line_wins_and_a_torn_tail_is_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut l = LocalLedger::new(path.clone(), "t".into(), 1000);
        assert!(l.open(|_| {}).unwrap().entries.is_empty());
        l.write("a", Some(&entry("a", 1))).await.unwrap();
        l.write("a", Some(&entry("a", 2))).await.unwrap();
        l.write("b", Some(&entry("b", 1))).await.unwrap();
        l.write("b", None).await.unwrap();
        l.close();
        // A crash mid-line and a run of zeros.
        let (_, seg) = segments(&path).unwrap().pop().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes.extend_from_slice(b"{\"offset\":9,\"timest");
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&seg, bytes).unwrap();
        let mut l = LocalLedger::new(path.clone(), "t".into(), 1000);
        let loaded = l.open(|_| {}).unwrap();
        assert!(loaded.recovered_bytes > 0);
        assert_eq!(loaded.entries.len(), 1);
        assert_eq!(loaded.entries["a"].0.revision, 2);
        // Still writable after the cut.
        l.write("c", Some(&entry("c", 5))).await.unwrap();
        l.close();
        assert_eq!(read_local(&path).unwrap().entries.len(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_line_between_records_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut l = LocalLedger::new(path.clone(), "t".into(), 1000);
        l.open(|_| {}).unwrap();
        l.write("a", Some(&entry("a", 1))).await.unwrap();
        l.write("b", Some(&entry("b", 1))).await.unwrap();
        l.close();
        let (_, seg) = segments(&path).unwrap().pop().unwrap();
        let text = std::fs::read_to_string(&seg).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        std::fs::write(&seg, format!("{first}\ngarbage\n{rest}")).unwrap();
        let mut l = LocalLedger::new(path.clone(), "t".into(), 1000);
        let loaded = l.open(|_| {}).unwrap();
        assert_eq!(loaded.skipped_lines, 1);
        assert_eq!(loaded.entries.len(), 2);
        l.close();
    }

    #[tokio::test]
    async fn compaction_keeps_only_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let mut l = LocalLedger::new(path.clone(), "t".into(), 10);
        l.open(|_| {}).unwrap();
        for r in 1..=20 {
            l.write("a", Some(&entry("a", r))).await.unwrap();
        }
        assert!(l.needs_compaction(1));
        let loaded = l.compact(vec![entry("a", 20)], |_| {}).unwrap();
        assert_eq!(loaded.lines, 1);
        assert!(!l.needs_compaction(1));
        l.write("b", Some(&entry("b", 1))).await.unwrap();
        l.close();
        let loaded = read_local(&path).unwrap();
        assert_eq!(loaded.lines, 2);
        assert_eq!(loaded.entries["a"].0.revision, 20);
        assert_eq!(segments(&path).unwrap().len(), 1);
    }
}
