//! One webhook request, prepared once on the request's task (in parallel with other requests)
//! so the actors only look things up: each alert's fingerprint, idempotency key, window hash
//! (severity is worked out only for alerts that get published).

use sre_config::KeySource;

use super::dedup::key_hash_parts;
use super::fingerprint::fingerprint_hex;
use super::payload::WebhookPayload;

/// What the pipeline knows about one alert.
#[derive(Debug)]
pub struct Prepared {
    /// The payload's fingerprint, or the one computed from the labels.
    pub fingerprint: String,
    /// Window key: the hash of the idempotency key (see [`AlertBatch::idempotency_key`]).
    pub hash: u64,
    /// False when an earlier alert of the same request has the same idempotency key.
    pub first: bool,
}

/// A validated request and its prepared alerts.
#[derive(Debug)]
pub struct AlertBatch {
    /// The payload.
    pub payload: WebhookPayload,
    /// One entry per `payload.alerts` entry, same order.
    pub alerts: Vec<Prepared>,
    /// Ties the intents to the request: `x-correlation-id` when the sender set one, else made
    /// on first use (only requests that publish need one).
    correlation_id: std::sync::OnceLock<String>,
    /// W3C trace context of the request, carried into the intents.
    pub traceparent: Option<String>,
    /// When it arrived.
    pub received_at: std::time::SystemTime,
}

impl AlertBatch {
    /// Prepares every alert.
    pub fn prepare(
        payload: WebhookPayload,
        key_source: KeySource,
        correlation_id: Option<String>,
        traceparent: Option<String>,
    ) -> AlertBatch {
        let mut alerts: Vec<Prepared> = Vec::with_capacity(payload.alerts.len());
        for a in &payload.alerts {
            let fingerprint = match (&a.fingerprint, key_source) {
                (Some(fp), KeySource::Fingerprint)
                    if fp.bytes().any(|b| b.is_ascii_uppercase()) =>
                {
                    fp.to_ascii_lowercase()
                }
                (Some(fp), KeySource::Fingerprint) => fp.clone(),
                _ => fingerprint_hex(&a.labels),
            };
            let hash = key_hash_parts(&["am:", &fingerprint, ":", &a.status, ":", &a.starts_at]);
            let first = !alerts.iter().enumerate().any(|(j, p)| {
                p.hash == hash
                    && p.fingerprint == fingerprint
                    && payload.alerts[j].status == a.status
                    && payload.alerts[j].starts_at == a.starts_at
            });
            alerts.push(Prepared {
                fingerprint,
                hash,
                first,
            });
        }
        let cell = std::sync::OnceLock::new();
        if let Some(id) = correlation_id {
            let _ = cell.set(id);
        }
        AlertBatch {
            payload,
            alerts,
            correlation_id: cell,
            traceparent,
            received_at: std::time::SystemTime::now(),
        }
    }

    /// `am:<fingerprint>:<status>:<startsAt>` of alert `i`.
    pub fn idempotency_key(&self, i: usize) -> String {
        let a = &self.payload.alerts[i];
        format!(
            "am:{}:{}:{}",
            self.alerts[i].fingerprint, a.status, a.starts_at
        )
    }

    /// The correlation id.
    pub fn correlation_id(&self) -> &str {
        self.correlation_id
            .get_or_init(|| uuid::Uuid::new_v4().to_string())
    }

    /// When it arrived, RFC 3339 with milliseconds.
    pub fn received_at_rfc3339(&self) -> String {
        chrono::DateTime::<chrono::Utc>::from(self.received_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}
