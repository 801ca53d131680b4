//! The cluster watchers against the fake Kubernetes API server (real kube-rs client, ordinary
//! kubeconfig), on paused tokio time: health transitions only on state changes, Warning events
//! published once across reconnects and relists, deletions during a 410 gap reported, one dead
//! cluster restarted and parked alone, namespace globs; a long sink outage owes at most one
//! transition per object and one alert per event, and loses nothing.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};
use sre_actors::emit::Emitter;
use sre_actors::ingest::claim::Delivery;
use sre_actors::ingest::dedup::DedupSource;
use sre_actors::ingest::publisher::PublisherMsg;
use sre_actors::kubernetes::client::Guard;
use sre_actors::kubernetes::cluster::{ClusterWatcher, WatcherArgs};
use sre_actors::kubernetes::metrics::KubeMetrics;
use sre_actors::kubernetes::pump::{BATCH, WATCH_CREDITS};
use sre_actors::kubernetes::records::Context;
use sre_actors::providers::{BreakerConfig, ProviderMetrics, Providers};
use sre_config::{ClusterConfig, ResourceType, RetryConfig, SecretStore, Upstream, WatchConfig};
use sre_intents::IntentRecord;
use sre_supervision::{
    ActorSlot, ChildSpec, ChildState, Observer, Readiness, RestartPolicy, Supervisor,
    SupervisorMsg, SupervisorSpec,
};
use sre_test_support::kube::{self as fk, FakeKube};
use tokio::sync::mpsc;

const NS: &str = "ameide-core";
const POLL: Duration = Duration::from_secs(60);

struct Rig {
    root: ActorRef<SupervisorMsg>,
    observer: Observer,
    registry: Registry,
    rx: mpsc::UnboundedReceiver<Vec<IntentRecord>>,
    _dir: tempfile::TempDir,
}

fn watch(types: &[ResourceType], namespaces: &[&str]) -> WatchConfig {
    WatchConfig {
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        resource_types: types.to_vec(),
        event_max_age: Duration::from_secs(300),
    }
}

async fn rig(clusters: &[(&str, &FakeKube)], watch: WatchConfig) -> Rig {
    rig_with(clusters, watch, Emitter::Channel).await
}

/// A rig whose watchers emit through `emitter`, given the channel the rig reads.
async fn rig_with(
    clusters: &[(&str, &FakeKube)],
    watch: WatchConfig,
    emitter: impl FnOnce(mpsc::UnboundedSender<Vec<IntentRecord>>) -> Emitter,
) -> Rig {
    sre_actors::providers::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let retry = RetryConfig {
        max_attempts: 1,
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(60),
    };
    let breaker = BreakerConfig {
        failure_rate_threshold: 0.5,
        window: Duration::from_secs(120),
        minimum_calls: 5,
        open_duration: Duration::from_secs(30),
        half_open_trials: 1,
    };
    let upstreams = clusters
        .iter()
        .map(|(name, _)| Upstream {
            name: format!("k8s:{name}"),
            base_url: None,
            timeout: Duration::from_secs(5),
        })
        .collect();
    let mut registry = Registry::default();
    let providers = Providers::from_upstreams(
        upstreams,
        breaker,
        retry,
        ProviderMetrics::new(&mut registry),
    );
    let metrics = KubeMetrics::new(&mut registry);
    let observer = Observer::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let emitter = emitter(tx);
    let policy = RestartPolicy {
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
        jitter: 0.0,
        max_restarts: 3,
        period: Duration::from_secs(600),
        cool_down: Duration::from_secs(3600),
    };
    let (dedup_child, dedup_slot) = common::dedup(&mut registry);
    let mut spec = SupervisorSpec::new("clusters", policy.clone(), observer.clone());
    for (name, fake) in clusters {
        let path = dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, fake.kubeconfig()).unwrap();
        let provider = format!("k8s:{name}");
        let args = WatcherArgs {
            cluster: ClusterConfig {
                name: name.to_string(),
                kubeconfig_secret_ref: None,
                kubeconfig_path: Some(path),
                in_cluster: false,
            },
            watch: watch.clone(),
            poll_interval: POLL,
            secrets: SecretStore::new(dir.path()),
            guard: Guard {
                circuit: providers.circuit(&provider).unwrap().clone(),
                policy: providers.policy(&provider).unwrap(),
                metrics: providers.metrics().clone(),
            },
            context: Context {
                cluster: name.to_string(),
                topic: "sre.domain.intents.v1".into(),
                source: format!("sre-integration/kubernetes/{name}"),
            },
            delivery: Delivery::new(
                Some(dedup_slot.clone()),
                DedupSource::Kubernetes,
                emitter.clone(),
                Duration::from_secs(30),
            ),
            metrics: metrics.clone(),
            readiness: Readiness::default(),
        };
        spec = spec.child(ChildSpec::actor(name.to_string(), move || {
            (ClusterWatcher, args.clone())
        }));
    }
    let root = SupervisorSpec::new("root", policy.clone(), observer.clone())
        .child(ChildSpec::supervisor(
            providers.supervisor(policy.clone(), observer.clone()),
        ))
        .child(ChildSpec::supervisor(
            SupervisorSpec::new("ingest", policy, observer.clone())
                .child(dedup_child),
        ))
        .child(ChildSpec::supervisor(spec));
    let (root, _) = Actor::spawn(None, Supervisor, root).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    Rig {
        root,
        observer,
        registry,
        rx,
        _dir: dir,
    }
}

impl Rig {
    /// The next batch of intents.
    async fn next(&mut self) -> Vec<IntentRecord> {
        tokio::time::timeout(Duration::from_secs(600), self.rx.recv())
            .await
            .expect("an intent within 10 minutes")
            .expect("channel open")
    }

    /// The sorted namespaces of the next `n` health intents.
    async fn namespaces_reported(&mut self, n: usize) -> Vec<String> {
        let mut seen = Vec::new();
        while seen.len() < n {
            for rec in self.next().await {
                let ns = value(&rec)["subject"]["namespace"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                seen.push(ns);
            }
        }
        seen.sort();
        seen
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }

    async fn stop(self) {
        self.root.stop_and_wait(None, None).await.unwrap();
    }
}

/// Waits until exactly `n` watches are open on `fake` (woken by the fake as streams open and
/// close; bounded on virtual time).
async fn watching(fake: &FakeKube, n: usize) {
    tokio::time::timeout(Duration::from_secs(600), fake.until_open_watches(n))
        .await
        .unwrap_or_else(|_| panic!("never exactly {n} watch(es) open: {}", fake.open_watches()));
}

fn value(r: &IntentRecord) -> Value {
    serde_json::from_str(r.value.get()).unwrap()
}

/// `pod` with its only container in `waiting` `reason`, not ready since 01:00:00, after
/// `restarts` restarts.
fn crashing(pod: Value, reason: &str, restarts: u32) -> Value {
    crashing_since(pod, reason, restarts, "2026-11-29T01:00:00Z")
}

/// A running, Ready pod whose Ready condition last changed at `since` (as after a recovery:
/// the API server stamps every flip of Ready).
fn healthy_since(ns: &str, name: &str, since: &str) -> Value {
    let mut pod = fk::pod(ns, name);
    for c in pod["status"]["conditions"].as_array_mut().unwrap() {
        c["lastTransitionTime"] = json!(since);
    }
    pod
}

/// `crashing`, not ready since `since`.
fn crashing_since(mut pod: Value, reason: &str, restarts: u32, since: &str) -> Value {
    pod["status"]["conditions"] = json!([
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
         "message": "containers with unready status: [app]", "lastTransitionTime": since},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-29T00:00:00Z"}
    ]);
    let c = &mut pod["status"]["containerStatuses"][0];
    c["ready"] = json!(false);
    c["restartCount"] = json!(restarts);
    c["state"] = json!({"waiting": {"reason": reason, "message": format!("back-off {restarts}0s restarting failed container=app")}});
    c["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
    pod
}

#[tokio::test(start_paused = true)]
async fn a_crash_looping_pod_is_one_transition_and_its_recovery_another() {
    let fake = FakeKube::start().await;
    fake.apply(fk::pod(NS, "api"));
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Pods], &["ameide-*"]),
    )
    .await;

    let batch = r.next().await;
    assert_eq!(batch.len(), 1);
    let v = value(&batch[0]);
    assert_eq!(batch[0].key, "health:dev/ameide-core/Pod/api");
    assert_eq!(
        batch[0].header("ce_type"),
        Some("RecordHealthCheckRequested")
    );
    assert_eq!(v["reason"], "baseline");
    assert_eq!(v["current"]["state"], "Healthy");
    assert_eq!(v["cluster"], "dev");
    assert!(v["previous"].is_null());

    fake.apply(crashing(fk::pod(NS, "api"), "CrashLoopBackOff", 1));
    let batch = r.next().await;
    assert_eq!(batch.len(), 1);
    let v = value(&batch[0]);
    assert_eq!(
        (
            v["reason"].as_str(),
            v["previous"]["state"].as_str(),
            v["current"]["state"].as_str()
        ),
        (Some("changed"), Some("Healthy"), Some("Failing"))
    );
    assert_eq!(v["current"]["reason"], "CrashLoopBackOff");
    assert!(v["current"]["message"]
        .as_str()
        .unwrap()
        .contains("back-off"));
    let uid = v["subject"]["uid"].as_str().unwrap().to_owned();
    assert_eq!(
        batch[0].idempotency_key(),
        Some(format!("k8s:dev:{uid}:Failing:2026-11-29T01:00:00Z").as_str()),
        "the episode is the Ready condition's transition time: stable across restarts"
    );

    // Status-only updates: the restart count and the reason move, the state does not.
    for restarts in 2..5 {
        fake.apply(crashing(fk::pod(NS, "api"), "CrashLoopBackOff", restarts));
    }
    fake.apply(crashing(fk::pod(NS, "api"), "Error", 5));
    fake.apply(healthy_since(NS, "api", "2026-11-29T01:10:00Z"));
    // The next intent is the recovery: nothing was emitted for the updates in between.
    let batch = r.next().await;
    assert_eq!(batch.len(), 1, "{batch:?}");
    let v = value(&batch[0]);
    assert_eq!(
        (
            v["previous"]["state"].as_str(),
            v["current"]["state"].as_str()
        ),
        (Some("Failing"), Some("Healthy"))
    );
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_k8s_health_transitions_total{cluster="dev",kind="Pod",to="Failing"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_k8s_objects{cluster="dev",resource="pods"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_k8s_relists_total{cluster="dev",resource="pods",reason="initial"} 1"#),
        "{m}"
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_deployment_past_its_progress_deadline_is_failed() {
    let fake = FakeKube::start().await;
    fake.apply(fk::deployment(NS, "api", 3));
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Deployments], &["ameide-*"]),
    )
    .await;
    let v = value(&r.next().await[0]);
    assert_eq!(v["current"]["state"], "Healthy");
    assert_eq!(v["subject"]["kind"], "Deployment");

    let mut d = fk::deployment(NS, "api", 3);
    d["metadata"]["generation"] = json!(2);
    d["status"]["observedGeneration"] = json!(2);
    d["status"]["updatedReplicas"] = json!(1);
    d["status"]["replicas"] = json!(4);
    d["status"]["conditions"] = json!([
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "lastTransitionTime": "2026-11-29T00:00:00Z"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": "ReplicaSet \"api-5d4f\" has timed out progressing.", "lastTransitionTime": "2026-11-29T01:10:00Z"}
    ]);
    fake.apply(d);
    let batch = r.next().await;
    let v = value(&batch[0]);
    assert_eq!(
        (
            v["current"]["state"].as_str(),
            v["current"]["reason"].as_str()
        ),
        (Some("Failed"), Some("ProgressDeadlineExceeded"))
    );
    assert!(batch[0]
        .idempotency_key()
        .unwrap()
        .ends_with(":Failed:2026-11-29T01:10:00Z"));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_warning_event_is_one_alert_across_reconnects_and_relists() {
    let fake = FakeKube::start().await;
    fake.apply(fk::warning_event(
        NS,
        "api.1",
        "Pod",
        "api",
        "BackOff",
        "Back-off restarting failed container",
        1,
    ));
    let mut normal = fk::warning_event(NS, "api.2", "Pod", "api", "Pulled", "pulled", 1);
    normal["type"] = json!("Normal");
    fake.apply(normal);
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Events], &["ameide-*"]),
    )
    .await;

    let batch = r.next().await;
    assert_eq!(batch.len(), 1, "the Normal event is not an alert");
    let rec = &batch[0];
    assert_eq!(rec.header("ce_type"), Some("IngestAlertRequested"));
    let v = value(rec);
    assert_eq!(v["source"], "kubernetes");
    assert_eq!(v["reason"], "BackOff");
    assert_eq!(v["count"], 1);
    assert_eq!(v["involvedObject"]["kind"], "Pod");
    assert_eq!(v["involvedObject"]["name"], "api");
    assert_eq!(v["labels"]["namespace"], NS);
    assert_eq!(
        rec.key,
        format!("alert:{}", v["fingerprint"].as_str().unwrap())
    );
    let uid = fk::uid_for("Event", NS, "api.1");
    assert_eq!(
        rec.idempotency_key(),
        Some(format!("k8sevent:dev:{uid}:1").as_str())
    );

    // A forced reconnect, then a 410 and a relist: the event is listed again, not re-published.
    fake.disconnect_watches();
    fake.apply(fk::warning_event(
        NS,
        "db.1",
        "Pod",
        "db",
        "Unhealthy",
        "Readiness probe failed",
        1,
    ));
    let batch = r.next().await;
    assert_eq!(batch.len(), 1);
    assert_eq!(value(&batch[0])["involvedObject"]["name"], "db");
    fake.expire_watches();
    fake.apply(fk::warning_event(
        NS,
        "web.1",
        "Pod",
        "web",
        "Unhealthy",
        "Liveness probe failed",
        1,
    ));
    let batch = r.next().await;
    assert_eq!(
        batch.len(),
        1,
        "after the relist only the new event: {batch:?}"
    );
    assert_eq!(value(&batch[0])["involvedObject"]["name"], "web");

    // The same event seen again (its count grows): a new occurrence, a new alert.
    fake.apply(fk::warning_event(
        NS,
        "api.1",
        "Pod",
        "api",
        "BackOff",
        "Back-off restarting failed container",
        2,
    ));
    let batch = r.next().await;
    assert_eq!(batch.len(), 1);
    assert_eq!(
        batch[0].idempotency_key(),
        Some(format!("k8sevent:dev:{uid}:2").as_str())
    );
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_k8s_relists_total{cluster="dev",resource="events",reason="expired"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_k8s_warning_events_total{cluster="dev",decision="published"} 4"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_dedup_decisions_total{source="kubernetes",decision="new"} 4"#),
        "{m}"
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn old_warning_events_are_not_published_on_start() {
    let fake = FakeKube::start().await;
    let mut old = fk::warning_event(NS, "old.1", "Pod", "old", "BackOff", "long ago", 3);
    old["lastTimestamp"] = json!("2020-01-01T00:00:00Z");
    old["firstTimestamp"] = json!("2020-01-01T00:00:00Z");
    fake.apply(old);
    fake.apply(fk::warning_event(
        NS, "new.1", "Pod", "new", "BackOff", "now", 1,
    ));
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Events], &["ameide-*"]),
    )
    .await;
    let batch = r.next().await;
    assert_eq!(batch.len(), 1);
    assert_eq!(value(&batch[0])["involvedObject"]["name"], "new");
    assert!(r
        .metrics()
        .contains(r#"sre_k8s_warning_events_total{cluster="dev",decision="too_old"} 1"#));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pod_deleted_during_a_410_gap_is_reported_deleted() {
    let fake = FakeKube::start().await;
    fake.apply(fk::pod(NS, "api"));
    fake.apply(fk::pod(NS, "worker"));
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Pods], &["ameide-*"]),
    )
    .await;
    let mut baseline = r.next().await;
    while baseline.len() < 2 {
        baseline.extend(r.next().await);
    }

    // The watch expires (410, history compacted) and the pod goes while nobody watches: no
    // DELETED event ever reaches the watcher; the relist must notice.
    watching(&fake, 1).await;
    fake.expire_watches();
    assert!(fake.delete("v1", "Pod", Some(NS), "worker"));
    let batch = r.next().await;
    assert_eq!(batch.len(), 1, "{batch:?}");
    let v = value(&batch[0]);
    assert_eq!(v["subject"]["name"], "worker");
    assert_eq!(
        (
            v["reason"].as_str(),
            v["current"]["state"].as_str(),
            v["previous"]["state"].as_str()
        ),
        (Some("deleted"), Some("Deleted"), Some("Healthy"))
    );
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_k8s_relists_total{cluster="dev",resource="pods",reason="expired"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_k8s_objects{cluster="dev",resource="pods"} 1"#),
        "{m}"
    );

    // The periodic reconcile relists too, and finds nothing new to say.
    fake.apply(crashing(fk::pod(NS, "api"), "ImagePullBackOff", 0));
    let batch = r.next().await;
    assert_eq!(value(&batch[0])["current"]["reason"], "ImagePullBackOff");
    tokio::time::sleep(POLL * 2).await;
    assert!(
        r.rx.try_recv().is_err(),
        "a reconcile of unchanged state emits nothing"
    );
    assert!(r
        .metrics()
        .contains(r#"sre_k8s_relists_total{cluster="dev",resource="pods",reason="reconcile"}"#));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn services_follow_their_ready_endpoints() {
    let fake = FakeKube::start().await;
    fake.apply(fk::service(NS, "api"));
    fake.apply(fk::endpoint_slice(NS, "api", 2));
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Services], &["ameide-*"]),
    )
    .await;
    let v = value(&r.next().await[0]);
    assert_eq!(
        (
            v["subject"]["kind"].as_str(),
            v["current"]["state"].as_str()
        ),
        (Some("Service"), Some("Healthy"))
    );
    fake.apply(fk::endpoint_slice(NS, "api", 0));
    let v = value(&r.next().await[0]);
    assert_eq!(
        (
            v["current"]["state"].as_str(),
            v["current"]["reason"].as_str()
        ),
        (Some("Degraded"), Some("NoReadyEndpoints"))
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn namespace_globs_include_and_exclude() {
    let fake = FakeKube::start().await;
    for ns in [
        "ameide-core",
        "ameide-web",
        "argocd",
        "kube-system",
        "ameide",
    ] {
        fake.apply(fk::pod(ns, "p"));
    }
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Pods], &["ameide-*", "argocd"]),
    )
    .await;
    let seen = r.namespaces_reported(3).await;
    assert_eq!(seen, ["ameide-core", "ameide-web", "argocd"]);
    // A later pod in an excluded namespace is not reported; one in an included one is.
    fake.apply(fk::pod("kube-system", "q"));
    fake.apply(fk::pod("ameide-core", "q"));
    let batch = r.next().await;
    assert_eq!(batch.len(), 1);
    assert_eq!(value(&batch[0])["subject"]["namespace"], "ameide-core");
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn plain_namespace_names_are_watched_one_by_one() {
    let fake = FakeKube::start().await;
    fake.apply(fk::pod("argocd", "p"));
    fake.apply(fk::pod("monitoring", "p"));
    fake.apply(fk::pod("kube-system", "p"));
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Pods], &["argocd", "monitoring"]),
    )
    .await;
    let seen = r.namespaces_reported(2).await;
    assert_eq!(seen, ["argocd", "monitoring"]);
    // Only namespaced requests: per-namespace Roles are enough.
    let paths: Vec<String> = fake.requests().iter().map(|q| q.path.clone()).collect();
    assert!(
        paths.iter().all(|p| !p.starts_with("/api/v1/pods")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p == "/api/v1/namespaces/argocd/pods"),
        "{paths:?}"
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_dead_cluster_is_restarted_and_parked_alone() {
    let dev = FakeKube::start().await;
    let staging = FakeKube::start().await;
    let production = FakeKube::start().await;
    for f in [&dev, &staging, &production] {
        f.apply(fk::pod(NS, "api"));
    }
    let mut r = rig(
        &[
            ("dev", &dev),
            ("staging", &staging),
            ("production", &production),
        ],
        watch(&[ResourceType::Pods], &["ameide-*"]),
    )
    .await;
    for _ in 0..3 {
        r.next().await;
    }
    staging.kill();
    // The others keep emitting while staging fails, restarts with backoff, and is parked.
    let mut emitted = std::collections::BTreeMap::<String, usize>::new();
    let mut round = 0u32;
    loop {
        round += 1;
        let phase = if round % 2 == 1 {
            "CrashLoopBackOff"
        } else {
            "ok"
        };
        // Every flip is a new episode (a later Ready transition time).
        let since = format!("2026-11-29T03:{:02}:{:02}Z", (round / 60) % 60, round % 60);
        for f in [&dev, &production] {
            if phase == "ok" {
                f.apply(healthy_since(NS, "api", &since));
            } else {
                f.apply(crashing_since(fk::pod(NS, "api"), phase, round, &since));
            }
        }
        let mut got = 0;
        while got < 2 {
            for rec in r.next().await {
                let cluster = value(&rec)["cluster"].as_str().unwrap().to_owned();
                *emitted.entry(cluster).or_default() += 1;
                got += 1;
            }
        }
        let parked = r
            .observer
            .child("clusters", "staging")
            .is_some_and(|c| c.state == ChildState::Failed);
        if parked {
            break;
        }
        assert!(
            round < 200,
            "staging never parked: {:?}",
            r.observer.child("clusters", "staging")
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let staging_status = r.observer.child("clusters", "staging").unwrap();
    assert!(staging_status.restarts >= 3, "{staging_status:?}");
    assert!(staging_status.last_error.is_some());
    for c in ["dev", "production"] {
        let s = r.observer.child("clusters", c).unwrap();
        assert_eq!((s.state, s.restarts), (ChildState::Running, 0), "{c}");
        assert!(emitted[c] >= 4, "{emitted:?}");
    }
    assert!(!emitted.contains_key("staging"));
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="k8s:staging",outcome="transport"}"#),
        "{m}"
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rejected_credentials_fail_the_watcher_with_the_reason() {
    let fake = FakeKube::start().await;
    fake.fail_with(403);
    let r = rig(&[("dev", &fake)], watch(&[ResourceType::Pods], &["*"])).await;
    r.observer
        .wait_until(|children| {
            children.iter().any(|c| {
                c.name == "dev"
                    && c.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("misconfigured") && e.contains("403"))
            })
        })
        .await;
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn server_errors_and_a_stalled_server_fail_the_watcher_alone() {
    let failing = FakeKube::start().await;
    let stalled = FakeKube::start().await;
    let healthy = FakeKube::start().await;
    failing.fail_with(500);
    stalled.stall();
    healthy.apply(fk::pod(NS, "api"));
    let mut r = rig(
        &[
            ("failing", &failing),
            ("stalled", &stalled),
            ("healthy", &healthy),
        ],
        watch(&[ResourceType::Pods], &["ameide-*"]),
    )
    .await;
    assert_eq!(value(&r.next().await[0])["cluster"], "healthy");
    r.observer
        .wait_until(|children| {
            ["failing", "stalled"].iter().all(|name| {
                children
                    .iter()
                    .any(|c| c.name == *name && c.supervisor == "clusters" && c.restarts >= 1)
            })
        })
        .await;
    let failing_status = r.observer.child("clusters", "failing").unwrap();
    assert!(
        failing_status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("watch failures of pods in a row"),
        "{failing_status:?}"
    );
    let healthy_status = r.observer.child("clusters", "healthy").unwrap();
    assert_eq!(
        (healthy_status.state, healthy_status.restarts),
        (ChildState::Running, 0)
    );
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="k8s:stalled",outcome="timeout"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="k8s:failing",outcome="server_error"}"#),
        "{m}"
    );
    // The healthy cluster still reports.
    healthy.apply(crashing(fk::pod(NS, "api"), "CrashLoopBackOff", 1));
    let batch = r.next().await;
    assert_eq!(value(&batch[0])["current"]["state"], "Failing");
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_watcher_leaves_no_watch_behind() {
    let fake = FakeKube::start().await;
    fake.apply(fk::pod(NS, "api"));
    let mut r = rig(
        &[("dev", &fake)],
        watch(&[ResourceType::Pods, ResourceType::Events], &["ameide-*"]),
    )
    .await;
    r.next().await;
    watching(&fake, 2).await;
    // Killed (as `POST /v1/supervision/restart` does): ractor runs no post_stop, yet the
    // streams must go with the actor, and the restarted one opens its own.
    let clusters: ActorRef<SupervisorMsg> =
        ractor::call!(r.root, SupervisorMsg::Lookup, "clusters".to_string())
            .unwrap()
            .unwrap()
            .into();
    let watcher = ractor::call!(clusters, SupervisorMsg::Lookup, "dev".to_string())
        .unwrap()
        .unwrap();
    let opened = fake.watches_opened();
    watcher.kill();
    r.observer
        .wait_until(|c| {
            c.iter()
                .any(|s| s.name == "dev" && s.restarts == 1 && s.state == ChildState::Running)
        })
        .await;
    // The moment it has opened its own two watches, those are the only ones open: the killed
    // watcher's were closed when it went (not later, by a timeout).
    tokio::time::timeout(
        Duration::from_secs(60),
        fake.until_watches_opened(opened + 2),
    )
    .await
    .expect("the restarted watcher opens its watches");
    assert_eq!(
        fake.open_watches(),
        2,
        "the killed watcher's watches are closed"
    );
    // The new watcher re-baselines with the same keys, which the dedup window already holds:
    // nothing is sent again. A pod created now is the first thing it reports.
    fake.apply(fk::pod(NS, "web"));
    let batch = r.next().await;
    assert_eq!(
        batch.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(),
        ["health:dev/ameide-core/Pod/web"],
        "the re-baseline repeated nothing"
    );
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_dedup_decisions_total{source="kubernetes",decision="duplicate"} 1"#),
        "{m}"
    );
    // And it reports what changes next.
    fake.apply(crashing(fk::pod(NS, "api"), "CrashLoopBackOff", 1));
    assert_eq!(value(&r.next().await[0])["current"]["state"], "Failing");
    r.stop().await;
}

/// A sink that fails every publish while `down` is set (as a broker outage does), and
/// otherwise hands the records over.
struct FlakySink;

struct FlakyState {
    tx: mpsc::UnboundedSender<Vec<IntentRecord>>,
    down: Arc<AtomicBool>,
    /// Publishes refused so far.
    refused: Arc<AtomicUsize>,
}

impl Actor for FlakySink {
    type Msg = PublisherMsg;
    type State = FlakyState;
    type Arguments = FlakyState;

    async fn pre_start(
        &self,
        _: ActorRef<PublisherMsg>,
        args: FlakyState,
    ) -> Result<FlakyState, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<PublisherMsg>,
        msg: PublisherMsg,
        st: &mut FlakyState,
    ) -> Result<(), ActorProcessingErr> {
        if let PublisherMsg::Publish(records, reply) = msg {
            if st.down.load(Ordering::SeqCst) {
                st.refused.fetch_add(1, Ordering::SeqCst);
                let _ = reply.send(Err(sre_sink::SinkError::Closed));
            } else {
                let _ = st.tx.send(records);
                let _ = reply.send(Ok(()));
            }
        }
        Ok(())
    }
}

/// The value of the sample `series` (0 when absent).
fn sample(metrics: &str, series: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// A 10-minute sink outage while every pod flips state every 10 s, pods are replaced and
/// Warning events repeat: the watcher owes at most one transition per object and one alert
/// per event (the gauges say so throughout), and once the sink is back it emits exactly the
/// newest state of each, nothing lost and nothing twice.
#[tokio::test(start_paused = true)]
async fn a_long_sink_outage_owes_the_newest_state_per_object_and_loses_nothing() {
    const PODS: usize = 60;
    const EVENTS: usize = 10;
    let fake = FakeKube::start().await;
    for i in 0..PODS {
        fake.apply(fk::pod(NS, &format!("p{i:03}")));
    }
    let event = |name: &str, count: u32| {
        fk::warning_event(
            NS,
            &format!("{name}.1"),
            "Pod",
            name,
            "BackOff",
            "Back-off",
            count,
        )
    };
    for e in 0..EVENTS {
        fake.apply(event(&format!("p{e:03}"), 1));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let down = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let (sink, _) = Actor::spawn(
        None,
        FlakySink,
        FlakyState {
            tx,
            down: down.clone(),
            refused: refused.clone(),
        },
    )
    .await
    .unwrap();
    let slot = ActorSlot::default();
    slot.publish(sink.clone());
    let mut r = rig_with(
        &[("dev", &fake)],
        watch(&[ResourceType::Pods, ResourceType::Events], &["ameide-*"]),
        |_| Emitter::Publisher(slot.clone()),
    )
    .await;
    r.rx = rx;
    let mut baseline = 0;
    while baseline < PODS + EVENTS {
        baseline += r.next().await.len();
    }

    down.store(true, Ordering::SeqCst);
    let owed_t = r#"sre_k8s_owed_transitions{cluster="dev"}"#;
    let owed_w = r#"sre_k8s_owed_warning_events{cluster="dev"}"#;
    let queued = r#"sre_k8s_watch_items_queued{cluster="dev"}"#;
    let since = |round: u32| format!("2026-11-29T02:{:02}:{:02}Z", round / 6, (round % 6) * 10);
    for round in 1..=60u32 {
        // p000..p049 flip every round (odd ones end Failing, even ones Healthy as reported).
        for i in 0..50 {
            let name = format!("p{i:03}");
            if (round as usize + i) % 2 == 1 {
                fake.apply(crashing_since(
                    fk::pod(NS, &name),
                    "CrashLoopBackOff",
                    round,
                    &since(round),
                ));
            } else {
                fake.apply(healthy_since(NS, &name, &since(round)));
            }
        }
        for e in 0..EVENTS {
            fake.apply(event(&format!("p{e:03}"), round + 1));
        }
        if round == 30 {
            // Replaced: p050..p059 go (reported, so owed as Deleted); n000..n009 come, and
            // n005..n009 go again before anything was reported (nothing owed for them).
            for i in 50..PODS {
                assert!(fake.delete("v1", "Pod", Some(NS), &format!("p{i:03}")));
            }
            for i in 0..10 {
                fake.apply(fk::pod(NS, &format!("n{i:03}")));
            }
        }
        if round == 40 {
            for i in 5..10 {
                assert!(fake.delete("v1", "Pod", Some(NS), &format!("n{i:03}")));
            }
        }
        if round >= 30 {
            for x in 0..5 {
                fake.apply(event(&format!("x{x:03}"), round - 28));
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let m = r.metrics();
        assert!(
            sample(&m, owed_t) <= (PODS + 10) as i64,
            "round {round}: at most one owed transition per object: {}",
            sample(&m, owed_t)
        );
        assert!(sample(&m, owed_w) <= (EVENTS + 5) as i64, "round {round}");
        assert!(sample(&m, queued) <= (WATCH_CREDITS * BATCH) as i64);
        assert!(
            r.rx.try_recv().is_err(),
            "nothing gets through a sink that is down"
        );
    }
    // Once the churn is applied: 25 Failing + 10 Deleted + 5 created; 15 events.
    let (failing, deleted, created) = (25, PODS - 50, 5);
    let expected_t = (failing + deleted + created) as i64;
    let expected_w = (EVENTS + 5) as i64;
    let mut settled = false;
    for _ in 0..600 {
        let m = r.metrics();
        if sample(&m, owed_t) == expected_t && sample(&m, owed_w) == expected_w {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let m = r.metrics();
    assert!(
        settled,
        "owed {} transitions and {} events",
        sample(&m, owed_t),
        sample(&m, owed_w)
    );
    assert!(
        sample(
            &m,
            r#"sre_k8s_health_transitions_coalesced_total{cluster="dev",kind="Pod"}"#
        ) > 0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            r#"sre_k8s_warning_events_total{cluster="dev",decision="coalesced"}"#
        ) > 0,
        "{m}"
    );

    // One attempt per backoff step (1 s doubling to 60 s: ~15 in 10 minutes), not one per
    // batch of watch items (hundreds: every round, every reconcile's relist).
    let attempts = refused.load(Ordering::SeqCst);
    assert!((5..=30).contains(&attempts), "{attempts} publish attempts");

    // The sink is back: exactly the newest state of each object and event, once.
    down.store(false, Ordering::SeqCst);
    let mut health = BTreeMap::<String, Vec<Value>>::new();
    let mut alerts = BTreeMap::<String, Vec<u64>>::new();
    let mut keys = Vec::new();
    while health.len() < (failing + deleted + created) || alerts.len() < EVENTS + 5 {
        for rec in r.next().await {
            keys.push(rec.idempotency_key().unwrap().to_owned());
            let v = value(&rec);
            if rec.header("ce_type") == Some("RecordHealthCheckRequested") {
                let name = v["subject"]["name"].as_str().unwrap().to_owned();
                health.entry(name).or_default().push(v);
            } else {
                let name = v["involvedObject"]["name"].as_str().unwrap().to_owned();
                alerts
                    .entry(name)
                    .or_default()
                    .push(v["count"].as_u64().unwrap());
            }
        }
    }
    for (name, vs) in &health {
        assert_eq!(vs.len(), 1, "{name} reported once: {vs:?}");
        let v = &vs[0];
        let i: usize = name[1..].parse().unwrap();
        let got = (
            v["reason"].as_str().unwrap(),
            v["current"]["state"].as_str().unwrap(),
        );
        match &name[..1] {
            "p" if i < 50 => {
                assert_eq!(i % 2, 1, "{name}: an even pod ends as reported");
                assert_eq!(got, ("changed", "Failing"), "{name}");
                assert_eq!(v["previous"]["state"], "Healthy");
            }
            "p" => assert_eq!(got, ("deleted", "Deleted"), "{name}"),
            _ => {
                assert!(i < 5, "{name} came and went unreported");
                assert_eq!(got, ("created", "Healthy"), "{name}");
            }
        }
    }
    let last = since(60);
    assert!(
        keys.iter()
            .filter(|k| k.contains(":Failing:"))
            .all(|k| k.ends_with(&last)),
        "the newest episode: {keys:?}"
    );
    for (name, counts) in &alerts {
        let newest = if name.starts_with('x') { 32 } else { 61 };
        assert_eq!(counts, &[newest], "{name}: the newest occurrence, once");
    }
    let m = r.metrics();
    assert_eq!((sample(&m, owed_t), sample(&m, owed_w)), (0, 0), "{m}");
    // Nothing else is owed: the reconciles that follow repeat nothing.
    tokio::time::sleep(POLL * 2).await;
    assert!(r.rx.try_recv().is_err());
    r.stop().await;
    sink.stop(None);
}
