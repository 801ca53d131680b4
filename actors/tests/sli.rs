//! The SLI scheduler on paused tokio time against a fake Prometheus: windows on the cron
//! schedule with their numbers (no data is no data, impossible numbers are not published), a
//! 40-minute downtime caught up in order and once — across a Prometheus failure that restarts
//! the scheduler alone in the middle — and a gap older than `catch_up` reported, not filled.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::emit::Emitter;
use sre_actors::ingest::claim::Delivery;
use sre_actors::ingest::dedup::DedupSource;
use sre_actors::observability::prometheus::PrometheusClient;
use sre_actors::providers::{BreakerConfig, ProviderMetrics, Providers};
use sre_actors::sli::scheduler::{tokio_clock, Clock, SliArgs, SliMetrics, SliScheduler};
use sre_config::{RetryConfig, SliCalculation, Upstream};
use sre_intents::IntentRecord;
use sre_supervision::{
    ChildSpec, Observer, RestartPolicy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use sre_test_support::prometheus::FakePrometheus;
use tokio::sync::mpsc;

const GOOD: &str = r#"sum(increase(http_requests_total{service="checkout",code!~"5.."}[$window]))"#;
const TOTAL: &str = r#"sum(increase(http_requests_total{service="checkout"}[$window]))"#;

fn sli_config(catch_up: &str) -> SliCalculation {
    serde_norway::from_str(&format!(
        "schedule: '*/5 * * * *'\nquery_delay: 30s\ncatch_up: {catch_up}\nslos:\n  - name: checkout-availability\n    service: checkout\n    objective: 99.9\n    good: '{GOOD}'\n    total: '{TOTAL}'\n"
    ))
    .unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

struct Rig {
    root: ActorRef<SupervisorMsg>,
    observer: Observer,
    rx: mpsc::UnboundedReceiver<Vec<IntentRecord>>,
    registry: Registry,
}

impl Rig {
    /// The next window published.
    async fn next(&mut self) -> serde_json::Value {
        let batch = tokio::time::timeout(Duration::from_secs(24 * 3600), self.rx.recv())
            .await
            .expect("a window within a day")
            .expect("the channel is open");
        assert_eq!(batch.len(), 1);
        let r = &batch[0];
        assert_eq!(r.header("ce_type"), Some("RecordSLIWindowRequested"));
        assert_eq!(r.key, "slo:checkout-availability");
        let v: serde_json::Value = serde_json::from_str(r.value.get()).unwrap();
        assert_eq!(
            r.idempotency_key(),
            Some(
                format!(
                    "sli:checkout-availability:{}",
                    v["windowEnd"].as_str().unwrap()
                )
                .as_str()
            )
        );
        v
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }
}

/// The scheduler beside the dedup actor and the `prometheus` circuit, as the program runs
/// them. `published` is what the sink holds (the scheduler reads it on start); every record
/// emitted is added to it before the test sees it.
async fn rig(
    prom: &FakePrometheus,
    config: SliCalculation,
    clock: Clock,
    published: Arc<Mutex<Vec<(String, u64)>>>,
) -> Rig {
    let mut registry = Registry::default();
    let retry = RetryConfig {
        max_attempts: 2,
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(60),
    };
    let breaker = BreakerConfig {
        failure_rate_threshold: 0.5,
        window: Duration::from_secs(120),
        minimum_calls: 4,
        open_duration: Duration::from_secs(60),
        half_open_trials: 1,
    };
    let providers = Providers::from_upstreams(
        vec![Upstream {
            name: "prometheus".into(),
            base_url: None,
            timeout: retry.timeout,
        }],
        breaker,
        retry,
        ProviderMetrics::new(&mut registry),
    );
    let observer = Observer::default();
    let policy = RestartPolicy {
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
        jitter: 0.0,
        max_restarts: 5,
        period: Duration::from_secs(300),
        cool_down: Duration::from_secs(600),
    };
    let (dedup_child, dedup_slot) = common::dedup(&mut registry);
    // The sink: records land in `published` (with their append time), then reach the test.
    let (sink_tx, mut sink_rx) = mpsc::unbounded_channel::<Vec<IntentRecord>>();
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let published = published.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            while let Some(batch) = sink_rx.recv().await {
                for r in &batch {
                    let ms = clock().timestamp_millis() as u64;
                    let key = r.idempotency_key().unwrap().to_owned();
                    published.lock().unwrap().push((key, ms));
                }
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
    }
    let args = SliArgs {
        config,
        prometheus: PrometheusClient::new(
            providers.client("prometheus").unwrap(),
            prom.url().parse().unwrap(),
        ),
        delivery: Delivery::new(
            Some(dedup_slot),
            DedupSource::Sli,
            Emitter::Channel(sink_tx),
            Duration::from_secs(30),
        ),
        recent: {
            let published = published.clone();
            Arc::new(move |_| Ok(published.lock().unwrap().clone()))
        },
        topic: "sre.domain.intents.v1".into(),
        source: "sre-integration/sli".into(),
        clock,
        progress: Default::default(),
        metrics: SliMetrics::new(&mut registry),
    };
    let root = SupervisorSpec::new("root", policy.clone(), observer.clone())
        .child(ChildSpec::supervisor(
            providers.supervisor(policy.clone(), observer.clone()),
        ))
        .child(ChildSpec::supervisor(
            SupervisorSpec::new("ingest", policy.clone(), observer.clone()).child(dedup_child),
        ))
        .child(ChildSpec::supervisor(
            SupervisorSpec::new("sli", policy, observer.clone())
                .child(ChildSpec::actor("scheduler", move || {
                    (SliScheduler, args.clone())
                })),
        ));
    let (root, _) = Actor::spawn(None, Supervisor, root).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    Rig {
        root,
        observer,
        rx,
        registry,
    }
}

/// 10,000 requests and 7 errors per window, except: no data for the window ending 10:15, and
/// a good count above the total for the one ending 10:10 (a broken query).
fn answers(q: &str, t: f64) -> Result<Option<f64>, u16> {
    let (no_data, broken) = (at(10, 15).timestamp() as f64, at(10, 10).timestamp() as f64);
    if t == no_data {
        return Ok(None);
    }
    Ok(Some(if q.contains("code!~") {
        if t == broken {
            10_001.0
        } else {
            9_993.0
        }
    } else {
        10_000.0
    }))
}

#[tokio::test(start_paused = true)]
async fn windows_follow_the_schedule_with_their_numbers() {
    let prom = FakePrometheus::start(answers).await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let clock = tokio_clock(at(10, 1));
    let mut r = rig(&prom, sli_config("1h"), clock, published).await;

    // A fresh start computes the latest window only.
    let w = r.next().await;
    assert_eq!(w["windowStart"], "2026-12-01T09:55:00Z");
    assert_eq!(w["windowEnd"], "2026-12-01T10:00:00Z");
    assert_eq!(
        (w["good"].as_f64(), w["total"].as_f64()),
        (Some(9993.0), Some(10000.0))
    );
    assert!((w["ratio"].as_f64().unwrap() - 0.9993).abs() < 1e-12);
    assert!((w["errorBudgetConsumed"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    assert_eq!(w["noData"], false);
    assert_eq!(w["objective"], 99.9);
    assert_eq!(
        w["queries"]["good"],
        r#"sum(increase(http_requests_total{service="checkout",code!~"5.."}[300s]))"#
    );
    // Queried at the window's end.
    let (_, t) = prom.queries()[0].clone();
    assert_eq!(t, at(10, 0).timestamp() as f64);

    // 10:05 next; 10:10's numbers cannot be right and are not published; 10:15 had no data.
    assert_eq!(r.next().await["windowEnd"], "2026-12-01T10:05:00Z");
    let w = r.next().await;
    assert_eq!(w["windowEnd"], "2026-12-01T10:15:00Z");
    assert_eq!(w["noData"], true);
    assert!(
        w["ratio"].is_null() && w["errorBudgetConsumed"].is_null(),
        "{w}"
    );
    assert_eq!(r.next().await["windowEnd"], "2026-12-01T10:20:00Z");
    let m = r.metrics();
    for line in [
        r#"sre_sli_windows_total{slo="checkout-availability",outcome="published"} 3"#,
        r#"sre_sli_windows_total{slo="checkout-availability",outcome="no_data"} 1"#,
        r#"sre_sli_windows_total{slo="checkout-availability",outcome="invalid"} 1"#,
    ] {
        assert!(m.contains(line), "{line}\n{m}");
    }
    assert!(
        m.contains(&format!(
            r#"sre_sli_last_window_end_timestamp_seconds{{slo="checkout-availability"}} {}"#,
            at(10, 20).timestamp()
        )),
        "{m}"
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn downtime_is_caught_up_in_order_and_once_across_a_prometheus_failure() {
    // The 10:20 window's queries fail twice (one call and its retry): the scheduler fails,
    // is restarted alone, and resumes at that window.
    let failures = Arc::new(Mutex::new(2));
    let prom = {
        let failures = failures.clone();
        FakePrometheus::start(move |q, t| {
            if t == at(10, 20).timestamp() as f64 {
                let mut left = failures.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Err(503);
                }
            }
            Ok(Some(if q.contains("code!~") {
                9_993.0
            } else {
                10_000.0
            }))
        })
        .await
    };
    let published = Arc::new(Mutex::new(Vec::new()));
    let clock = tokio_clock(at(10, 1));
    let mut r = rig(&prom, sli_config("1h"), clock.clone(), published.clone()).await;
    assert_eq!(r.next().await["windowEnd"], "2026-12-01T10:00:00Z");
    r.root.stop_and_wait(None, None).await.unwrap();

    // 40 minutes down; then the program starts again.
    tokio::time::advance(Duration::from_secs(40 * 60)).await;
    let mut r = rig(&prom, sli_config("1h"), clock, published.clone()).await;
    let mut ends = Vec::new();
    for _ in 0..8 {
        ends.push(r.next().await["windowEnd"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        ends,
        ["10:05", "10:10", "10:15", "10:20", "10:25", "10:30", "10:35", "10:40"]
            .map(|m| format!("2026-12-01T{m}:00Z")),
        "the eight missed windows, in order"
    );
    assert_eq!(*failures.lock().unwrap(), 0);
    let status = r
        .observer
        .child("sli", "scheduler")
        .expect("the scheduler in the tree");
    // At least once: on a loaded machine a paused clock can also time out a slow loopback
    // answer, which fails the scheduler again; the windows above stay in order and once.
    assert!(status.restarts >= 1, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("query failed")),
        "{status:?}"
    );
    // Every window once: nothing after the restart was published again.
    let keys: Vec<String> = published
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys, unique, "{keys:?}");
    assert_eq!(keys.len(), 9);
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_gap_older_than_catch_up_is_reported_not_filled() {
    let prom = FakePrometheus::start(|_, _| Ok(Some(1.0))).await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let clock = tokio_clock(at(10, 1));
    let mut r = rig(&prom, sli_config("1h"), clock.clone(), published.clone()).await;
    assert_eq!(r.next().await["windowEnd"], "2026-12-01T10:00:00Z");
    r.root.stop_and_wait(None, None).await.unwrap();

    // Three hours down: the last hour (12 windows) is computed, the 24 before are a gap.
    tokio::time::advance(Duration::from_secs(3 * 3600)).await;
    let mut r = rig(&prom, sli_config("1h"), clock, published).await;
    let first = r.next().await;
    assert_eq!(first["windowEnd"], "2026-12-01T12:05:00Z");
    for _ in 0..11 {
        r.next().await;
    }
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_sli_windows_skipped_total{slo="checkout-availability"} 24"#),
        "{m}"
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stalled_prometheus_opens_its_circuit_and_fails_only_the_scheduler() {
    use sre_supervision::ChildState;
    use sre_test_support::prometheus::PromMode;
    let prom = FakePrometheus::start(answers).await;
    prom.set_mode(PromMode::Stall);
    let published = Arc::new(Mutex::new(Vec::new()));
    let r = rig(
        &prom,
        sli_config("1h"),
        tokio_clock(at(10, 1)),
        published.clone(),
    )
    .await;
    // Every query times out (5 s, twice a call): the scheduler fails and is restarted with
    // backoff, until the circuit has opened and its calls fail fast.
    r.observer
        .wait_until(|c| {
            c.iter().any(|s| {
                s.name == "scheduler"
                    && s.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("circuit open"))
            })
        })
        .await;
    let status = r.observer.child("sli", "scheduler").unwrap();
    assert!(status.restarts >= 2, "{status:?}");
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="prometheus",outcome="timeout"} 4"#),
        "{m}"
    );
    // Nothing else noticed.
    let dedup = r.observer.child("ingest", "dedup").unwrap();
    assert_eq!((dedup.restarts, dedup.state), (0, ChildState::Running));
    assert!(published.lock().unwrap().is_empty());
    // Prometheus answers again: the scheduler resumes at the window it could not do, and
    // catches up from there.
    prom.set_mode(PromMode::Normal);
    let mut r = r;
    assert_eq!(r.next().await["windowEnd"], "2026-12-01T10:00:00Z");
    assert_eq!(r.next().await["windowEnd"], "2026-12-01T10:05:00Z");
    r.root.stop_and_wait(None, None).await.unwrap();
}
