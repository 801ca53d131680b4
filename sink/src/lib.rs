//! Sinks: where intents become durable before a webhook is answered.
//!
//! # Layout
//! - [`Sink`] and [`SinkWriter`]: what the publisher and the dedup rebuild need from a sink —
//!   open a writer, append with a durability future, flush, read back recent idempotency keys.
//!   The program picks one implementation; nothing else knows which.
//! - [`embedded`]: the segmented, append-only JSON Lines log ([`embedded::Log`]) and its
//!   group-commit writer ([`embedded::Writer`]): many appends, one `fsync`.
//! - [`kafka`]: the idempotent Kafka producer (delivery reports awaited) and the read-back of
//!   recent idempotency keys for the dedup rebuild.
//! - [`stored`]: the line format shared by the writer and every reader (CLI, dedup rebuild).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sre_intents::IntentRecord;

pub mod embedded;
pub mod kafka;
pub mod stored;

/// Resolves once records handed to a [`SinkWriter`] are durable (or failed).
pub type Durable = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'static>>;

/// Called when an open sink cannot go on (the embedded writer stopped after an I/O error,
/// librdkafka reported a fatal error); its owner drops it and opens a new one.
pub type OnFatal = Arc<dyn Fn(String) + Send + Sync>;

/// A configured sink: knows how to open a writer and how to read back what it holds.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The `sink` metric label.
    fn label(&self) -> &'static str;

    /// Opens a writer (blocking: recovery, locks, client creation). Dropping the writer
    /// releases everything it holds.
    fn open(&self, on_fatal: OnFatal) -> Result<Opened, SinkError>;

    /// The idempotency keys and append times (ms since the epoch) of the records of the last
    /// `window`, oldest first (blocking).
    fn recent_keys(&self, window: Duration) -> Result<RecentKeys, SinkError>;
}

/// An open sink.
pub trait SinkWriter: Send + Sync {
    /// Hands records over; the future resolves once they are durable.
    fn append(&self, records: Vec<IntentRecord>) -> Durable;

    /// Resolves once everything appended before is durable or failed, or after `timeout`.
    fn flush(&self, timeout: Duration) -> Durable;
}

/// A writer, and what opening it repaired.
pub struct Opened {
    /// The writer.
    pub writer: Box<dyn SinkWriter>,
    /// Bytes of crash garbage cut from the log's end (embedded).
    pub recovered_bytes: u64,
    /// Unreadable lines left between records and skipped (embedded).
    pub skipped_lines: u64,
}

/// What [`Sink::recent_keys`] read.
#[derive(Clone, Debug, Default)]
pub struct RecentKeys {
    /// (idempotency key, append time in ms), oldest first.
    pub keys: Vec<(String, u64)>,
    /// Unreadable lines skipped on the way (embedded).
    pub skipped_lines: u64,
}

/// Why records could not be made durable, or a sink not opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Writing or syncing the log failed; the writer stops and must be reopened.
    #[error("embedded log I/O error: {0}")]
    Io(String),
    /// Another writer holds the log directory.
    #[error("intent log {} is locked by another writer", .0.display())]
    Locked(PathBuf),
    /// The writer is gone (stopped after an error, or shutting down).
    #[error("sink closed")]
    Closed,
    /// The sink did not confirm durability in time (the outcome is still pending).
    #[error("sink did not confirm within {0:?}")]
    Timeout(std::time::Duration),
    /// The sink's configuration was refused (the message is redacted of secrets).
    #[error("sink configuration: {0}")]
    Config(String),
    /// Kafka refused or failed the delivery.
    #[error("kafka: {0}")]
    Kafka(String),
}

impl SinkError {
    /// The `reason` metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SinkError::Io(_) => "io",
            SinkError::Locked(_) => "locked",
            SinkError::Closed => "closed",
            SinkError::Timeout(_) => "timeout",
            SinkError::Config(_) => "config",
            SinkError::Kafka(_) => "kafka",
        }
    }
}
