//! The facts subtree's metrics (prometheus-client, bounded labels).
//!
//! - `sre_facts_consumed_total{type,outcome}`: `type` is the fact type (`IncidentCreated`, …),
//!   `unknown` for another `ce_type`, `unparseable` when the record says no type;
//!   `outcome` ∈ `applied`, `replay`, `skipped_unknown`, `dead_lettered`.
//! - `sre_facts_actions_total{target,outcome}`: per target, `applied` (a record written),
//!   `noop` (the fact means nothing there), `unavailable`, `rejected`, `fired` (a deferred
//!   action woken), `fire_failed`.
//! - `sre_facts_dead_letters_total{reason}`: `reason` ∈ the parse labels (`bad_value`,
//!   `missing_header`, `key_mismatch`) and `rejected`.
//! - `sre_facts_partitions_waiting`: partitions whose every fact in hand waits for an
//!   unavailable target; `sre_facts_partitions_paused`: those of them holding as many facts
//!   as they take, paused; `sre_facts_waiting_facts`: facts in hand that wait.
//! - `sre_facts_consumer_lag_records{partition}`: records after the last handled one (the
//!   embedded source reports partition `0`).
//! - `sre_facts_ledger_entries`: incidents the ledger holds; `sre_facts_deferred_actions`:
//!   target records with a due time.
//! - `sre_facts_ledger_skipped_lines_total`, `sre_facts_ledger_recovered_bytes_total`: crash
//!   garbage met by the local ledger when it was opened.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumedLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    target: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: i32,
}

/// The facts metrics. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct FactsMetrics {
    consumed: Family<ConsumedLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    dead_letters: Family<ReasonLabel, Counter>,
    waiting: Gauge,
    paused: Gauge,
    waiting_facts: Gauge,
    lag: Family<PartitionLabel, Gauge>,
    entries: Gauge,
    deferred: Gauge,
    skipped_lines: Counter,
    recovered_bytes: Counter,
}

impl FactsMetrics {
    /// Registers the families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = FactsMetrics::default();
        registry.register(
            "sre_facts_consumed",
            "Facts consumed by type and outcome",
            m.consumed.clone(),
        );
        registry.register(
            "sre_facts_actions",
            "Actions on fact targets by target and outcome",
            m.actions.clone(),
        );
        registry.register(
            "sre_facts_dead_letters",
            "Facts dead-lettered, by reason",
            m.dead_letters.clone(),
        );
        registry.register(
            "sre_facts_partitions_waiting",
            "Partitions whose every fact in hand waits for an unavailable target",
            m.waiting.clone(),
        );
        registry.register(
            "sre_facts_partitions_paused",
            "Partitions paused: every fact in hand waits and the partition holds as many as it takes",
            m.paused.clone(),
        );
        registry.register(
            "sre_facts_waiting_facts",
            "Facts in hand that wait for an unavailable target (a throttle, an open circuit)",
            m.waiting_facts.clone(),
        );
        registry.register(
            "sre_facts_consumer_lag_records",
            "Records after the longest handled prefix, by partition",
            m.lag.clone(),
        );
        registry.register(
            "sre_facts_ledger_entries",
            "Incidents held by the incident ledger",
            m.entries.clone(),
        );
        registry.register(
            "sre_facts_deferred_actions",
            "Target records with a due time (deferred pages)",
            m.deferred.clone(),
        );
        registry.register(
            "sre_facts_ledger_skipped_lines",
            "Unreadable lines skipped in the local ledger log",
            m.skipped_lines.clone(),
        );
        registry.register(
            "sre_facts_ledger_recovered_bytes",
            "Bytes of crash garbage cut from the local ledger log",
            m.recovered_bytes.clone(),
        );
        m
    }

    /// Counts one consumed fact.
    pub fn consumed(&self, fact_type: &'static str, outcome: &'static str) {
        self.consumed
            .get_or_create(&ConsumedLabels {
                r#type: fact_type,
                outcome,
            })
            .inc();
    }

    /// The count of facts consumed with this type and outcome (tests, reports).
    pub fn consumed_count(&self, fact_type: &'static str, outcome: &'static str) -> u64 {
        self.consumed
            .get_or_create(&ConsumedLabels {
                r#type: fact_type,
                outcome,
            })
            .get()
    }

    /// Counts one action outcome.
    pub fn action(&self, target: &'static str, outcome: &'static str) {
        self.actions
            .get_or_create(&ActionLabels { target, outcome })
            .inc();
    }

    /// Counts one dead letter.
    pub fn dead_letter(&self, reason: &'static str) {
        self.dead_letters
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// `sre_facts_partitions_paused`.
    pub fn paused(&self) -> &Gauge {
        &self.paused
    }

    /// `sre_facts_waiting_facts`.
    pub fn waiting_facts(&self) -> &Gauge {
        &self.waiting_facts
    }

    /// `sre_facts_partitions_waiting`.
    pub fn waiting(&self) -> &Gauge {
        &self.waiting
    }

    /// Sets one partition's lag.
    pub fn lag(&self, partition: i32, records: i64) {
        self.lag
            .get_or_create(&PartitionLabel { partition })
            .set(records.max(0));
    }

    /// Forgets a partition's lag (revoked).
    pub fn forget_lag(&self, partition: i32) {
        self.lag.remove(&PartitionLabel { partition });
    }

    /// Ledger entries.
    pub fn entries(&self) -> &Gauge {
        &self.entries
    }

    /// Deferred actions.
    pub fn deferred(&self) -> &Gauge {
        &self.deferred
    }

    /// Lines skipped in the local ledger.
    pub fn skipped_lines(&self) -> &Counter {
        &self.skipped_lines
    }

    /// Bytes cut from the local ledger.
    pub fn recovered_bytes(&self) -> &Counter {
        &self.recovered_bytes
    }
}
