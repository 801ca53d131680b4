//! Target 7: facts → pages. `n` `IncidentCreated` facts (critical: paged at once) produced to
//! tansu, consumed by the service's facts subtree (in process: the consumer group, the Kafka
//! ledger, the real PagerDuty target through the upstream client) and paged to the fake
//! PagerDuty; optionally the fake answers 429 to one call in `throttle_every`.
//!
//! Latency of a fact: from its produce to the *last* request the fake received for its
//! `dedup_key` (the accepted trigger comes after any 429'd attempts), arrival times taken from
//! the fake's request-count notifications. Duplicates: accepted triggers beyond one per
//! incident; lost: incidents never triggered.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sre_test_support::pagerduty::FakePagerDuty;
use sre_test_support::upstream::Reply;

const PD_KEY: &str = "R0UT1NGKEYbench00000000000000001";

async fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> Result<(), String> {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .map_err(|e| e.to_string())?;
    let new: Vec<_> = topics
        .iter()
        .map(|(t, p)| {
            rdkafka::admin::NewTopic::new(t, *p, rdkafka::admin::TopicReplication::Fixed(1))
        })
        .collect();
    for _ in 0..100 {
        let opts =
            rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        if let Ok(r) = admin.create_topics(&new, &opts).await {
            if r.iter().all(Result::is_ok) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the broker did not accept the topics".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Runs the figure; returns its line.
pub fn facts_pages(
    n: usize,
    partitions: i32,
    throttle_every: usize,
    concurrency: Option<usize>,
    tansu: &Path,
) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let port = crate::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let addr = format!("tcp://{brokers}");
    let mut broker = Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &addr,
            "--advertised-listener-url",
            &addr,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    let line = rt.block_on(run(n, partitions, throttle_every, concurrency, &brokers));
    let _ = broker.kill();
    let _ = broker.wait();
    line.unwrap_or_else(|e| format!("target 7 facts→pages: failed: {e}"))
}

async fn run(
    n: usize,
    partitions: i32,
    throttle_every: usize,
    concurrency: Option<usize>,
    brokers: &str,
) -> Result<String, String> {
    let (facts, ledger, dlq) = ("bench.facts", "bench.incidents", "bench.dlq");
    create_topics(
        brokers,
        &[(facts, partitions), (ledger, partitions), (dlq, 1)],
    )
    .await?;
    let pd = Arc::new(FakePagerDuty::start().await);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("platform/pd")).map_err(|e| e.to_string())?;
    std::fs::write(secrets.join("platform/pd/routing_key"), PD_KEY).map_err(|e| e.to_string())?;
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 0s\n\
         intents:\n  sink: kafka\n  kafka:\n    brokers: {brokers}\n    client_id: bench\n\
         facts:\n  enabled: true\n  topic: {facts}\n  group_id: bench\n  ledger_topic: {ledger}\n  dead_letter_topic: {dlq}\n  commit_interval: 200ms\n  min_backoff: 50ms\n  max_backoff: 1s\n\
         paging_integration:\n  enabled: true\n  pagerduty:\n    routing_key_ref: platform/pd\n    events_url: {}\n\
         secrets:\n  dir: {}\n",
        pd.url(),
        secrets.display()
    );
    let mut config =
        sre_config::Config::parse(&yaml, "bench.yaml").map_err(|e| format!("{e:?}"))?;
    if let Some(c) = concurrency {
        config.facts.concurrency = c;
    }
    // With RUST_LOG set, the service's own logs go to stderr (to see why a run is slow).
    let _telemetry = std::env::var_os("RUST_LOG")
        .map(|_| sre_integration::telemetry::init(&config.telemetry))
        .transpose()
        .map_err(|e| e.to_string())?;
    let app = sre_integration::app::AppHandle::start(config)
        .await
        .map_err(|e| e.to_string())?;

    // Arrival time of every request the fake receives.
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::with_capacity(n * 2)));
    let (a, p) = (arrivals.clone(), pd.clone());
    let watcher = tokio::spawn(async move {
        for k in 1.. {
            p.wait_for_requests(k).await;
            let now = Instant::now();
            let mut a = a.lock().unwrap();
            while a.len() < k {
                a.push(now);
            }
        }
    });
    let throttler = (throttle_every > 0).then(|| {
        let p = pd.clone();
        tokio::spawn(async move {
            for k in 1.. {
                p.wait_for_requests(k * throttle_every).await;
                p.push(Reply::Respond {
                    status: 429,
                    headers: vec![("Retry-After".into(), "1".into())],
                    body: r#"{"status":"throttle exceeded","message":"Requests for this service are arriving too quickly. Please retry later."}"#.into(),
                });
            }
        })
    });

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .map_err(|e| e.to_string())?;
    let mut produced = HashMap::with_capacity(n);
    let mut deliveries = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let id = format!("bench-{i}");
        let key = format!("incident:{id}");
        let value = format!(
            r#"{{"incidentId":"{id}","occurredAt":"2026-12-07T09:00:00Z","revision":1,"title":"Checkout down {i}","severity":"critical","service":"checkout","environment":"prod"}}"#
        );
        let ce_id = format!("{id}-1");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_type",
                value: Some("IncidentCreated"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(&ce_id),
            });
        let record = FutureRecord::to(facts)
            .partition(i as i32 % partitions)
            .key(&key)
            .payload(&value)
            .headers(headers);
        match producer.send_result(record) {
            Ok(d) => deliveries.push(d),
            Err((e, _)) => return Err(e.to_string()),
        }
        produced.insert(id, Instant::now());
    }
    for d in deliveries {
        d.await
            .map_err(|_| "canceled".to_string())?
            .map_err(|(e, _)| e.to_string())?;
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut report = Instant::now() + Duration::from_secs(30);
    while pd.incidents_opened() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if Instant::now() >= report {
            // A run that takes long says where it is.
            eprintln!(
                "facts-pages: {} of {n} incidents paged, {} partitions waiting",
                pd.incidents_opened(),
                app.facts_metrics().waiting().get()
            );
            report += Duration::from_secs(30);
        }
    }
    // A little longer, so a duplicate that would follow is seen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher.abort();
    if let Some(t) = throttler {
        t.abort();
    }
    let requests = pd.requests();
    let arrivals = arrivals.lock().unwrap().clone();
    let mut last: HashMap<String, Instant> = HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
            continue;
        };
        if let (Some(key), Some(at)) = (v["dedup_key"].as_str(), arrivals.get(i)) {
            last.insert(key.to_owned(), *at);
        }
    }
    let mut triggers: HashMap<String, usize> = HashMap::new();
    for (action, key, _) in pd.actions() {
        if action == "trigger" {
            *triggers.entry(key).or_default() += 1;
        }
    }
    let duplicates: usize = triggers.values().map(|c| c.saturating_sub(1)).sum();
    let lost = produced
        .keys()
        .filter(|k| !triggers.contains_key(*k))
        .count();
    let mut latencies: Vec<f64> = produced
        .iter()
        .filter_map(|(k, t)| {
            last.get(k)
                .map(|a| a.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let end = last.values().max().copied().unwrap_or(started);
    let rate = n as f64 / end.duration_since(started).as_secs_f64();
    let throttled = requests.len().saturating_sub(pd.events_received());
    app.shutdown().await;
    Ok(format!(
        "target 7 facts→pages: {n} IncidentCreated, {partitions} partitions{}: {rate:.0} facts/s, p50 {:.0} ms, p99 {:.0} ms, duplicates {duplicates}, lost {lost} (target: 0 and 0; {throttled} calls answered 429)",
        if throttle_every > 0 { format!(", fake answering 429 to one call in {throttle_every}") } else { String::new() },
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    ))
}
