//! The audit trail: one record per tool call (and, for a write, one more before it runs) and
//! per approval decision, made durable before the call runs or answers.
//!
//! Records go through the intents' [`Sink`] machinery, as records of their own topic
//! (`tools.audit.topic`, default `sre.integration.audit.v1`): with the embedded sink, a JSON
//! Lines log in `<data_dir>/<topic>` with the embedded log's group commit (fsync before the
//! append is confirmed), its `LOCK`, and its crash recovery (a torn tail is cut at the next
//! open); with Kafka, the topic, each append awaiting its acks=all delivery report. Each
//! line's `value` is an [`AuditRecord`]; its key is the tool (or the approval id for a
//! decision), its header `audit_event` says `call` or `decision`.
//!
//! **A failed audit write fails the call**: a write whose "started" record cannot be written
//! does not run, and no output (or approval request) leaves the gate unaudited. The writer is
//! opened on first use and reopened after a failure.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sre_intents::IntentRecord;
use sre_sink::{Sink, SinkWriter};

/// The header naming the kind of audit record.
pub const EVENT_HEADER: &str = "audit_event";

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it happened (the call's end, the decision's time).
    pub time: DateTime<Utc>,
    /// `call` or `decision`.
    pub event: String,
    /// The caller's (or decider's) identity; never a token.
    pub caller: String,
    /// Its role.
    pub role: String,
    /// The tool.
    pub tool: String,
    /// SHA-256 of the canonical arguments (none when they were not an object).
    pub arguments_sha256: Option<String>,
    /// The arguments, redacted.
    pub arguments: Value,
    /// The approval asked, redeemed, or decided.
    pub approval_id: Option<String>,
    /// Who approved (a redeemed approval) or decided.
    pub approver: Option<String>,
    /// `done`, `started`, `approval_required`, a [`ToolError`](super::tool::ToolError) label,
    /// `approved`, `denied`, or a decision refused (`not_approver`, ...).
    pub outcome: String,
    /// What went wrong, or the approver's reason (redacted).
    pub reason: Option<String>,
    /// How long the call took, in milliseconds.
    pub duration_ms: u64,
}

/// Why an audit record could not be made durable.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuditError {
    /// The log or topic could not be opened or written.
    #[error("audit log unavailable: {0}")]
    Sink(String),
    /// Not durable within `tools.audit.timeout`.
    #[error("audit log did not confirm within {0:?}")]
    Timeout(Duration),
}

/// The audit writer (see the module documentation).
pub struct AuditLog {
    sink: Arc<dyn Sink>,
    topic: String,
    timeout: Duration,
    writer: tokio::sync::Mutex<Option<Box<dyn SinkWriter>>>,
    broken: Arc<AtomicBool>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({} to {})", self.sink.label(), self.topic)
    }
}

impl AuditLog {
    /// Audit records of `topic` into `sink`; each append waits at most `timeout`.
    pub fn new(sink: Arc<dyn Sink>, topic: impl Into<String>, timeout: Duration) -> AuditLog {
        AuditLog {
            sink,
            topic: topic.into(),
            timeout,
            writer: tokio::sync::Mutex::new(None),
            broken: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The sink's label (`embedded`, `kafka`).
    pub fn label(&self) -> &'static str {
        self.sink.label()
    }

    /// Appends `record` and waits until it is durable.
    pub async fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let value = serde_json::value::to_raw_value(record)
            .map_err(|e| AuditError::Sink(format!("cannot encode the record: {e}")))?;
        let key = record
            .approval_id
            .as_ref()
            .filter(|_| record.event == "decision")
            .unwrap_or(&record.tool)
            .clone();
        let intent = IntentRecord {
            topic: self.topic.clone(),
            key,
            headers: vec![(Cow::Borrowed(EVENT_HEADER), record.event.clone())],
            value,
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let durable = {
            let mut guard = tokio::time::timeout_at(deadline, self.writer.lock())
                .await
                .map_err(|_| AuditError::Timeout(self.timeout))?;
            if self.broken.swap(false, Ordering::AcqRel) {
                *guard = None;
            }
            if guard.is_none() {
                let (sink, broken) = (self.sink.clone(), self.broken.clone());
                let on_fatal: sre_sink::OnFatal = Arc::new(move |why: String| {
                    tracing::error!(reason = %why, "audit log writer failed; reopening on the next record");
                    broken.store(true, Ordering::Release);
                });
                let opened = tokio::time::timeout_at(
                    deadline,
                    tokio::task::spawn_blocking(move || sink.open(on_fatal)),
                )
                .await
                .map_err(|_| AuditError::Timeout(self.timeout))?
                .map_err(|e| AuditError::Sink(format!("opening task failed: {e}")))?
                .map_err(|e| AuditError::Sink(e.to_string()))?;
                if opened.recovered_bytes > 0 || opened.skipped_lines > 0 {
                    tracing::warn!(
                        recovered_bytes = opened.recovered_bytes,
                        skipped_lines = opened.skipped_lines,
                        "audit log: cut a torn tail / skipped unreadable lines on open"
                    );
                }
                *guard = Some(opened.writer);
            }
            guard.as_ref().expect("opened above").append(vec![intent])
        };
        match tokio::time::timeout_at(deadline, durable).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken.store(true, Ordering::Release);
                Err(AuditError::Sink(e.to_string()))
            }
            Err(_) => Err(AuditError::Timeout(self.timeout)),
        }
    }
}
