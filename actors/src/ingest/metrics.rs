//! Metrics of the ingest path. Label values are fixed sets or come from configuration.
//!
//! - `sre_webhook_requests_total{webhook,code}`: requests by HTTP status.
//! - `sre_webhook_alerts_total{webhook,status}`: alerts received, `status` ∈ firing, resolved.
//! - `sre_dedup_decisions_total{source,decision}`: `decision` ∈ new, duplicate, in_flight,
//!   window_full (refused: the window holds `max_entries` keys).
//! - `sre_dedup_window_entries{source}`: keys in the window.
//! - `sre_dedup_claims_in_flight`: keys claimed and not yet settled.
//! - `sre_dedup_claims_released_total{reason}`: claims released without a settle from their
//!   owner, `reason` ∈ requester_gone (it left before the answer), lease_expired.
//! - `sre_intents_published_total{type,sink}`: intents made durable.
//! - `sre_intent_publish_failures_total{sink,reason}`: failed publishes, `reason` ∈ io,
//!   closed, timeout, kafka, unavailable.
//! - `sre_intent_publish_duration_seconds{sink}`: time from handing records to the sink to
//!   their durability.
//! - `sre_intent_log_recovered_bytes_total`: crash garbage cut from the embedded log's end
//!   when it was opened.
//! - `sre_intent_log_skipped_lines_total{reader}`: unreadable embedded-log lines skipped,
//!   `reader` ∈ open (between records of the newest segment), rebuild (dedup window rebuild);
//!   a line is counted each time it is read past.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{webhook,code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Webhook name.
    pub webhook: &'static str,
    /// HTTP status.
    pub code: u16,
}

/// `{webhook,status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// Webhook name.
    pub webhook: &'static str,
    /// Alert status.
    pub status: &'static str,
}

/// `{source,decision}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// Signal source.
    pub source: &'static str,
    /// Decision.
    pub decision: &'static str,
}

/// `{source}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Signal source.
    pub source: &'static str,
}

/// `{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: &'static str,
}

/// `{type,sink}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishedLabels {
    /// Intent type.
    pub r#type: &'static str,
    /// Sink.
    pub sink: &'static str,
}

/// `{sink,reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Sink.
    pub sink: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// `{sink}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// Sink.
    pub sink: &'static str,
}

fn publish_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// The ingest metric families.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    requests: Family<RequestLabels, Counter>,
    alerts: Family<AlertLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    entries: Family<SourceLabel, Gauge>,
    in_flight: Gauge,
    released: Family<ReasonLabel, Counter>,
    published: Family<PublishedLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<SinkLabel, Histogram, fn() -> Histogram>,
    log_recovered: Counter,
    log_skipped: Family<ReaderLabel, Counter>,
}

/// `{reader}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReaderLabel {
    /// Who read past the line: `open` or `rebuild`.
    pub reader: &'static str,
}

impl IngestMetrics {
    /// Creates and registers the families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = IngestMetrics {
            requests: Family::default(),
            alerts: Family::default(),
            decisions: Family::default(),
            entries: Family::default(),
            in_flight: Gauge::default(),
            released: Family::default(),
            published: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(publish_histogram),
            log_recovered: Counter::default(),
            log_skipped: Family::default(),
        };
        registry.register(
            "sre_webhook_requests",
            "Webhook requests by HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "sre_webhook_alerts",
            "Alerts received by webhooks, by alert status",
            m.alerts.clone(),
        );
        registry.register(
            "sre_dedup_decisions",
            "Deduplication decisions",
            m.decisions.clone(),
        );
        registry.register(
            "sre_dedup_window_entries",
            "Keys in the deduplication window",
            m.entries.clone(),
        );
        registry.register(
            "sre_dedup_claims_in_flight",
            "Keys claimed and not yet settled",
            m.in_flight.clone(),
        );
        registry.register(
            "sre_dedup_claims_released",
            "Claims released without a settle from their owner, by reason",
            m.released.clone(),
        );
        registry.register(
            "sre_intents_published",
            "Intents made durable, by type and sink",
            m.published.clone(),
        );
        registry.register(
            "sre_intent_publish_failures",
            "Failed intent publishes, by sink and reason",
            m.failures.clone(),
        );
        registry.register(
            "sre_intent_publish_duration_seconds",
            "Time from handing intents to the sink to their durability",
            m.duration.clone(),
        );
        registry.register(
            "sre_intent_log_recovered_bytes",
            "Crash garbage cut from the embedded log's end on open",
            m.log_recovered.clone(),
        );
        registry.register(
            "sre_intent_log_skipped_lines",
            "Unreadable embedded-log lines skipped, by reader",
            m.log_skipped.clone(),
        );
        m
    }

    /// A request counter.
    pub fn request(&self, webhook: &'static str, code: u16) -> Counter {
        self.requests
            .get_or_create(&RequestLabels { webhook, code })
            .clone()
    }
    /// An alert counter.
    pub fn alert(&self, webhook: &'static str, status: &'static str) -> Counter {
        self.alerts
            .get_or_create(&AlertLabels { webhook, status })
            .clone()
    }
    /// A decision counter.
    pub fn decision(&self, source: &'static str, decision: &'static str) -> Counter {
        self.decisions
            .get_or_create(&DecisionLabels { source, decision })
            .clone()
    }
    /// The window gauge.
    pub fn window_entries(&self, source: &'static str) -> Gauge {
        self.entries.get_or_create(&SourceLabel { source }).clone()
    }
    /// The in-flight claims gauge.
    pub fn claims_in_flight(&self) -> Gauge {
        self.in_flight.clone()
    }
    /// A released-claims counter.
    pub fn claims_released(&self, reason: &'static str) -> Counter {
        self.released.get_or_create(&ReasonLabel { reason }).clone()
    }
    /// A published counter.
    pub fn published(&self, r#type: &'static str, sink: &'static str) -> Counter {
        self.published
            .get_or_create(&PublishedLabels { r#type, sink })
            .clone()
    }
    /// A failure counter.
    pub fn failure(&self, sink: &'static str, reason: &'static str) -> Counter {
        self.failures
            .get_or_create(&FailureLabels { sink, reason })
            .clone()
    }
    /// The publish-duration histogram.
    pub fn publish_duration(&self, sink: &'static str) -> Histogram {
        self.duration.get_or_create(&SinkLabel { sink }).clone()
    }
    /// Bytes of crash garbage cut from the embedded log.
    pub fn log_recovered_bytes(&self) -> Counter {
        self.log_recovered.clone()
    }
    /// Unreadable embedded-log lines skipped by `reader` (`open`, `rebuild`).
    pub fn log_skipped_lines(&self, reader: &'static str) -> Counter {
        self.log_skipped
            .get_or_create(&ReaderLabel { reader })
            .clone()
    }
}
