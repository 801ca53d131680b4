//! The dead-letter destination (DESIGN §3.3a): the original key, value and headers of a fact
//! that cannot be parsed or that a target rejected for good, plus a `dlq_reason` header. On
//! Kafka, `facts.dead_letter_topic` through an idempotent producer with `acks=all`, the
//! delivery awaited; without Kafka, the local log `<facts.data_dir>/<dead_letter_topic>/` in
//! the embedded log's format, fsynced. Either way the fact's offset moves on only after.
//! Not an actor: the source actor that owns it drops it when it stops.

use std::borrow::Cow;
use std::path::Path;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sre_intents::IntentRecord;
use sre_sink::embedded::{Log, LogOptions, Writer};
use sre_sink::kafka::{client_config, KafkaOptions, QuietContext, Redactor};

use super::handler::RawFact;

/// Why a dead letter could not be written (the fact then waits and is tried again).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DlqError {
    /// Opening or writing the local log failed.
    #[error("dead-letter log: {0}")]
    Io(String),
    /// Kafka refused or failed the record (redacted).
    #[error("dead-letter topic: {0}")]
    Kafka(String),
}

/// Where dead letters go.
pub enum DeadLetters {
    /// The local log.
    Local {
        /// Its group-commit writer (dropping it releases the log).
        writer: Writer,
        /// The record's topic field.
        topic: String,
    },
    /// The Kafka topic.
    Kafka {
        /// The producer.
        producer: FutureProducer<QuietContext>,
        /// The topic.
        topic: String,
        /// Scrubs credentials from errors.
        redactor: Redactor,
    },
}

impl DeadLetters {
    /// The local log in `dir` (named `topic`), opened and locked (blocking).
    pub fn local(dir: &Path, topic: &str) -> Result<DeadLetters, DlqError> {
        let log = Log::open(dir, LogOptions::default()).map_err(|e| DlqError::Io(e.to_string()))?;
        let (writer, _thread) = Writer::spawn(log, |why| {
            tracing::error!(error = %why, "dead-letter log writer stopped");
        });
        Ok(DeadLetters::Local {
            writer,
            topic: topic.to_owned(),
        })
    }

    /// An idempotent producer to `topic`.
    pub fn kafka(options: &KafkaOptions, topic: &str) -> Result<DeadLetters, DlqError> {
        let (mut c, redactor) = client_config(
            &options.brokers,
            &options.security,
            &options.secrets,
            &options.properties,
        )
        .map_err(|e| DlqError::Kafka(e.to_string()))?;
        c.set("client.id", format!("{}-dlq", options.client_id))
            .set("linger.ms", "1")
            .set("message.timeout.ms", "30000")
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let producer = c
            .create_with_context(QuietContext::new(redactor.clone()))
            .map_err(|e| DlqError::Kafka(redactor.redact(&e.to_string())))?;
        Ok(DeadLetters::Kafka {
            producer,
            topic: topic.to_owned(),
            redactor,
        })
    }

    /// Writes `fact` with `reason`; returns once durable.
    pub async fn send(&self, fact: &RawFact, reason: &str) -> Result<(), DlqError> {
        match self {
            DeadLetters::Local { writer, topic } => {
                let mut headers: Vec<sre_intents::Header> = fact
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            Cow::Owned(k.clone()),
                            String::from_utf8_lossy(v).into_owned(),
                        )
                    })
                    .collect();
                headers.push((Cow::Borrowed("dlq_reason"), reason.to_owned()));
                let value = match serde_json::from_slice::<serde_json::Value>(&fact.value) {
                    Ok(_) => String::from_utf8_lossy(&fact.value).into_owned(),
                    // Not JSON: kept as a JSON string of its text.
                    Err(_) => serde_json::to_string(&String::from_utf8_lossy(&fact.value))
                        .expect("a string serializes"),
                };
                let record = IntentRecord {
                    topic: topic.clone(),
                    key: fact.key.clone().unwrap_or_default(),
                    headers,
                    value: serde_json::value::RawValue::from_string(value)
                        .map_err(|e| DlqError::Io(e.to_string()))?,
                };
                match writer.append(vec![record]).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(DlqError::Io(e.to_string())),
                    Err(_) => Err(DlqError::Io("writer stopped".into())),
                }
            }
            DeadLetters::Kafka {
                producer,
                topic,
                redactor,
            } => {
                let mut headers = OwnedHeaders::new_with_capacity(fact.headers.len() + 1);
                for (k, v) in &fact.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(v.as_slice()),
                    });
                }
                headers = headers.insert(Header {
                    key: "dlq_reason",
                    value: Some(reason.as_bytes()),
                });
                let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
                    .payload(&fact.value)
                    .headers(headers);
                if let Some(k) = &fact.key {
                    rec = rec.key(k.as_bytes());
                }
                let delivery = producer
                    .send_result(rec)
                    .map_err(|(e, _)| DlqError::Kafka(redactor.redact(&e.to_string())))?;
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(DlqError::Kafka(redactor.redact(&e.to_string()))),
                    Err(_) => Err(DlqError::Kafka("producer closed".into())),
                }
            }
        }
    }
}
