//! Sinks: where intents become durable before a webhook is answered.
//!
//! # Layout
//! - [`embedded`]: the segmented, append-only JSON Lines log ([`embedded::Log`]) and its
//!   group-commit writer ([`embedded::Writer`]): many appends, one `fsync`.
//! - [`kafka`]: the idempotent Kafka producer (delivery reports awaited) and the read-back of
//!   recent idempotency keys for the dedup rebuild.
//! - [`stored`]: the line format shared by the writer and every reader (CLI, dedup rebuild).

pub mod embedded;
pub mod kafka;
pub mod stored;

/// Why records could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Writing or syncing the log failed; the writer stops and must be reopened.
    #[error("embedded log I/O error: {0}")]
    Io(String),
    /// The writer is gone (stopped after an error, or shutting down).
    #[error("sink closed")]
    Closed,
    /// The sink did not confirm durability in time (the outcome is still pending).
    #[error("sink did not confirm within {0:?}")]
    Timeout(std::time::Duration),
    /// Kafka refused or failed the delivery.
    #[error("kafka: {0}")]
    Kafka(String),
}

impl SinkError {
    /// The `reason` metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SinkError::Io(_) => "io",
            SinkError::Closed => "closed",
            SinkError::Timeout(_) => "timeout",
            SinkError::Kafka(_) => "kafka",
        }
    }
}
