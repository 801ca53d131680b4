//! `SliScheduler`: the actor of the `sli` subtree. On every tick of
//! `sli_calculation.schedule` (in its time zone, `query_delay` after the tick so the window's
//! last scrapes have landed) it computes each SLO's `good` and `total` over the window that
//! ends at the tick — queried at that instant — and publishes `RecordSLIWindowRequested`.
//!
//! - **Once per window.** Each window goes through the shared claim protocol under
//!   `sli:<slo>:<window end>` (a window another producer is publishing, or published within the
//!   dedup window, is not queried again), and on start the scheduler reads which windows the
//!   sink already holds (as far back as `catch_up`), so a restart or replay never publishes a
//!   window twice.
//! - **Catch-up.** After downtime the missed windows that ended within `catch_up` are computed
//!   in order; older ones are a gap: logged and counted (`sre_sli_windows_skipped_total`),
//!   never skipped silently. A fresh install starts with the latest window.
//! - **Failures.** A Prometheus error (after the shared client's retries, or an open circuit)
//!   fails this actor alone: its supervisor restarts it with backoff and it resumes at the
//!   same window. Numbers that cannot be right (good above total, negative or non-finite
//!   counts) are reported (`outcome="invalid"`, an error log with the values) and not
//!   published as a number.
//!
//! Time comes from a [`Clock`], so tests run the schedule on paused tokio time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use sre_config::{SliCalculation, SloDefinition};
use sre_intents::record::RecordMeta;
use sre_intents::sli::{RecordSliWindowRequested, SliQueries};
use sre_intents::{IntentRecord, IntentType};
use tracing::Instrument;

use super::window::{evaluate, render, Schedule};
use crate::emit::EmitError;
use crate::ingest::claim::{Delivery, Verdict};
use crate::ingest::dedup::{key_hash, Rebuild};
use crate::observability::prometheus::{PrometheusClient, PrometheusError, QueryOutput};
use crate::timer::Timer;

/// Windows computed in one tick at most (a minutely schedule with a day of catch-up).
const MAX_WINDOWS_PER_TICK: usize = 1440;

/// Where the time comes from.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Per SLO, where the scheduler stands (the end of the last window done, or the tick before
/// the first one it must do), kept across restarts of the actor: a restart resumes where the
/// failed incarnation stopped, and a gap is reported once. Across restarts of the process the
/// sink's keys say the same.
pub type Progress = Arc<std::sync::Mutex<HashMap<String, DateTime<Utc>>>>;

/// The wall clock.
pub fn wall_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A clock that starts at `at` and moves with tokio's (paused, in tests) time.
pub fn tokio_clock(at: DateTime<Utc>) -> Clock {
    let base = tokio::time::Instant::now();
    Arc::new(move || at + chrono::Duration::from_std(base.elapsed()).unwrap_or_default())
}

/// `{slo,outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    slo: String,
    outcome: &'static str,
}

/// `{slo}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SloLabel {
    slo: String,
}

/// The SLI metrics (`slo` values come from the configuration).
///
/// - `sre_sli_windows_total{slo,outcome}`: `outcome` ∈ published, no_data (published with
///   `noData: true`), duplicate (already in the sink), invalid (not published), failed.
/// - `sre_sli_last_window_end_timestamp_seconds{slo}`: the end of the last window done.
/// - `sre_sli_windows_skipped_total{slo}`: windows older than `catch_up` after downtime.
#[derive(Clone, Debug, Default)]
pub struct SliMetrics {
    windows: Family<OutcomeLabels, Counter>,
    last_end: Family<SloLabel, Gauge>,
    skipped: Family<SloLabel, Counter>,
}

impl SliMetrics {
    /// Registers the families.
    pub fn new(registry: &mut Registry) -> Self {
        let m = SliMetrics::default();
        registry.register(
            "sre_sli_windows",
            "SLI windows by SLO and outcome",
            m.windows.clone(),
        );
        registry.register(
            "sre_sli_last_window_end_timestamp_seconds",
            "End of the last SLI window done, by SLO",
            m.last_end.clone(),
        );
        registry.register(
            "sre_sli_windows_skipped",
            "SLI windows older than catch_up after downtime, by SLO",
            m.skipped.clone(),
        );
        m
    }

    fn window(&self, slo: &str, outcome: &'static str) {
        self.windows
            .get_or_create(&OutcomeLabels {
                slo: slo.to_owned(),
                outcome,
            })
            .inc();
    }
}

/// The actor.
pub struct SliScheduler;

/// Its arguments.
#[derive(Clone)]
pub struct SliArgs {
    /// The schedule and the SLOs.
    pub config: SliCalculation,
    /// Where the SLOs are queried.
    pub prometheus: PrometheusClient,
    /// Claim → publish → settle (`DedupSource::Sli`).
    pub delivery: Delivery,
    /// The sink's recent idempotency keys (read on start, as far back as `catch_up`).
    pub recent: Rebuild,
    /// Intent topic.
    pub topic: String,
    /// `ce_source`.
    pub source: String,
    /// The time.
    pub clock: Clock,
    /// Where each SLO stands, shared by the actor's incarnations (make one per scheduler).
    pub progress: Progress,
    /// Metrics.
    pub metrics: SliMetrics,
}

/// Messages.
pub enum SliMsg {
    /// Time to compute what is due.
    Tick,
}

/// Private state.
pub struct SliState {
    args: SliArgs,
    schedule: Schedule,
    /// Per SLO, the end of the last window done.
    done: HashMap<String, DateTime<Utc>>,
    timer: Timer<SliMsg>,
}

/// Why a window could not be done (the actor fails with it).
#[derive(Debug, thiserror::Error)]
enum WindowError {
    #[error("{slo}: {which} query failed: {error}")]
    Query {
        slo: String,
        which: &'static str,
        error: PrometheusError,
    },
    #[error("{slo}: {which} query returned {n} series; it must aggregate to at most one")]
    Series {
        slo: String,
        which: &'static str,
        n: usize,
    },
    #[error("{slo}: window ending {end} not recorded: {error}")]
    Emit {
        slo: String,
        end: String,
        error: EmitError,
    },
}

impl Actor for SliScheduler {
    type Msg = SliMsg;
    type State = SliState;
    type Arguments = SliArgs;

    async fn pre_start(
        &self,
        _: ActorRef<SliMsg>,
        args: SliArgs,
    ) -> Result<SliState, ActorProcessingErr> {
        let schedule = Schedule::new(args.config.schedule.cron.clone(), args.config.timezone.0);
        // Which windows the sink already holds: `sli:<slo>:<window end>` keys.
        let (recent, horizon) = (args.recent.clone(), args.config.catch_up);
        let keys = tokio::task::spawn_blocking(move || recent(horizon))
            .await?
            .map_err(|e| format!("cannot read the published SLI windows: {e}"))?;
        let mut done: HashMap<String, DateTime<Utc>> = HashMap::new();
        for (key, _) in keys {
            let Some(rest) = key.strip_prefix("sli:") else {
                continue;
            };
            // The window end is RFC 3339 (it contains ':'); the SLO name does not.
            let Some((slo, end)) = rest.split_once(':') else {
                continue;
            };
            if let Ok(end) = DateTime::parse_from_rfc3339(end) {
                let end = end.with_timezone(&Utc);
                let e = done.entry(slo.to_owned()).or_insert(end);
                *e = (*e).max(end);
            }
        }
        for (slo, end) in args.progress.lock().expect("progress lock").iter() {
            let e = done.entry(slo.clone()).or_insert(*end);
            *e = (*e).max(*end);
        }
        Ok(SliState {
            args,
            schedule,
            done,
            timer: Timer::default(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SliMsg>,
        _: &mut SliState,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_message(SliMsg::Tick)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SliMsg>,
        msg: SliMsg,
        state: &mut SliState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SliMsg::Tick => {
                let span = tracing::info_span!("sli_tick");
                on_tick(&myself, state).instrument(span).await
            }
        }
    }
}

impl SliState {
    /// `slo` stands at `end` (here and for the next incarnation).
    fn mark(&mut self, slo: &str, end: DateTime<Utc>) {
        self.done.insert(slo.to_owned(), end);
        self.args
            .progress
            .lock()
            .expect("progress lock")
            .insert(slo.to_owned(), end);
    }
}

async fn on_tick(
    myself: &ActorRef<SliMsg>,
    state: &mut SliState,
) -> Result<(), ActorProcessingErr> {
    state.timer.fired();
    let now = (state.args.clock)();
    let delay = chrono::Duration::from_std(state.args.config.query_delay).unwrap_or_default();
    let catch_up = chrono::Duration::from_std(state.args.config.catch_up).unwrap_or_default();
    if let Some(latest) = state.schedule.at_or_before(now - delay) {
        for slo in state.args.config.slos.clone() {
            let due = due_windows(state, &slo, latest, now - catch_up);
            for end in due {
                if let Err(e) = do_window(state, &slo, end).await {
                    state.args.metrics.window(&slo.name, "failed");
                    return Err(e.to_string().into());
                }
                state.mark(&slo.name, end);
                state
                    .args
                    .metrics
                    .last_end
                    .get_or_create(&SloLabel {
                        slo: slo.name.clone(),
                    })
                    .set(end.timestamp());
            }
        }
    }
    // The next tick, `query_delay` after it.
    if let Some(next) = state.schedule.after(now - delay) {
        let wait = (next + delay - now).to_std().unwrap_or(Duration::ZERO);
        state.timer.set(myself, wait, || SliMsg::Tick);
    } else {
        tracing::error!(schedule = %state.args.config.schedule.expression, "the SLI schedule has no next tick");
    }
    Ok(())
}

/// The windows of `slo` to compute now, oldest first: after the last one done up to `latest`,
/// those that ended after `oldest`. Older ones are reported as a gap (and counted as done, so
/// they are reported once).
fn due_windows(
    state: &mut SliState,
    slo: &SloDefinition,
    latest: DateTime<Utc>,
    oldest: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let Some(last) = state.done.get(&slo.name).copied() else {
        // A fresh start: the latest window only (remembered as where to resume from).
        if let Some(before) = state.schedule.before(latest) {
            state.mark(&slo.name, before);
        }
        return vec![latest];
    };
    if last < oldest {
        let gap = state
            .schedule
            .between(last, oldest.min(latest), MAX_WINDOWS_PER_TICK);
        if let (Some(first), Some(final_)) = (gap.first(), gap.last()) {
            tracing::warn!(
                slo = %slo.name,
                windows = gap.len(),
                from = %first,
                to = %final_,
                "SLI windows older than catch_up were missed and are not computed"
            );
            state
                .args
                .metrics
                .skipped
                .get_or_create(&SloLabel {
                    slo: slo.name.clone(),
                })
                .inc_by(gap.len() as u64);
            state.mark(&slo.name, *final_);
        }
    }
    state
        .schedule
        .between(last.max(oldest), latest, MAX_WINDOWS_PER_TICK)
}

/// Claims, computes and publishes one window.
async fn do_window(
    state: &SliState,
    slo: &SloDefinition,
    end: DateTime<Utc>,
) -> Result<(), WindowError> {
    let args = &state.args;
    let end_s = end.to_rfc3339_opts(SecondsFormat::Secs, true);
    let idempotency_key = format!("sli:{}:{end_s}", slo.name);
    let emit = |error| WindowError::Emit {
        slo: slo.name.clone(),
        end: end_s.clone(),
        error,
    };
    let claimed = args
        .delivery
        .claim(vec![key_hash(&idempotency_key)])
        .await
        .map_err(emit)?;
    match claimed.verdicts[0] {
        Verdict::Duplicate => {
            args.metrics.window(&slo.name, "duplicate");
            return Ok(());
        }
        Verdict::InFlight => {
            let until = tokio::time::Instant::now() + args.delivery.deadline();
            return match claimed.in_flight.outcomes(until).await[..] {
                [(_, true)] => {
                    args.metrics.window(&slo.name, "duplicate");
                    Ok(())
                }
                _ => Err(emit(EmitError::Undecided)),
            };
        }
        Verdict::Fresh => {}
    }
    let Some(start) = state.schedule.before(end) else {
        tracing::error!(slo = %slo.name, end = %end_s, "the schedule has no tick before this window");
        return Ok(());
    };
    let (good_q, total_q) = (
        render(&slo.good, start, end),
        render(&slo.total, start, end),
    );
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let good = query(args, slo, "good", &good_q, end, &correlation_id).await?;
    let total = query(args, slo, "total", &total_q, end, &correlation_id).await?;
    let evaluation = match evaluate(good, total, slo.objective) {
        Ok(e) => e,
        Err(invalid) => {
            // Dropping the claim releases it; nothing is published as a number.
            tracing::error!(slo = %slo.name, end = %end_s, good = ?good, total = ?total, error = %invalid, "SLI window not published: the queries' numbers cannot be right");
            args.metrics.window(&slo.name, "invalid");
            return Ok(());
        }
    };
    let start_s = start.to_rfc3339_opts(SecondsFormat::Secs, true);
    let payload = RecordSliWindowRequested {
        source: "prometheus",
        slo: &slo.name,
        service: &slo.service,
        objective: slo.objective,
        window_start: &start_s,
        window_end: &end_s,
        good,
        total,
        ratio: evaluation.ratio,
        error_budget_consumed: evaluation.budget_consumed,
        no_data: evaluation.no_data(),
        queries: SliQueries {
            good: &good_q,
            total: &total_q,
        },
    };
    let now = (args.clock)().to_rfc3339_opts(SecondsFormat::Millis, true);
    let traceparent = crate::trace::current();
    let record = IntentRecord::new(
        RecordMeta {
            topic: &args.topic,
            kind: IntentType::RecordSliWindowRequested,
            source: &args.source,
            key: format!("slo:{}", slo.name),
            idempotency_key,
            correlation_id: &correlation_id,
            traceparent: traceparent.as_deref(),
            time: &now,
        },
        &payload,
    )
    .map_err(|e| emit(e.into()))?;
    args.delivery
        .publish(claimed.fresh, vec![record])
        .await
        .map_err(emit)?;
    args.metrics.window(
        &slo.name,
        if evaluation.no_data() {
            "no_data"
        } else {
            "published"
        },
    );
    Ok(())
}

/// Runs one of a window's queries; none when it returned no series.
async fn query(
    args: &SliArgs,
    slo: &SloDefinition,
    which: &'static str,
    promql: &str,
    at: DateTime<Utc>,
    correlation_id: &str,
) -> Result<Option<f64>, WindowError> {
    let out: QueryOutput = args
        .prometheus
        .instant(promql, Some(at), Some(correlation_id))
        .await
        .map_err(|error| WindowError::Query {
            slo: slo.name.clone(),
            which,
            error,
        })?;
    for w in &out.warnings {
        tracing::warn!(slo = %slo.name, which, warning = %w, "Prometheus warning");
    }
    if let crate::observability::prometheus::QueryData::Scalar(p) = out.data {
        return Ok(Some(p.v));
    }
    let series = out.data.series();
    match series.len() {
        0 => Ok(None),
        1 => Ok(series[0].points.last().map(|p| p.v)),
        n => Err(WindowError::Series {
            slo: slo.name.clone(),
            which,
            n,
        }),
    }
}
