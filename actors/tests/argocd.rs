//! The ArgoCD pollers against a fake ArgoCD server, on paused tokio time: baseline, changes,
//! quiet polls, deletions; a failing environment backs off and fails alone while the others
//! keep their cadence; a rejected token is reported without a hot loop; an oversized or
//! stalling list fails the poll instead of filling memory or hanging the poller.

mod common;

use std::time::Duration;

use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::argocd::metrics::ArgoMetrics;
use sre_actors::argocd::poller::{EnvPoller, PollerArgs, MAX_LIST_BYTES};
use sre_actors::emit::Emitter;
use sre_actors::ingest::claim::Delivery;
use sre_actors::ingest::dedup::DedupSource;
use sre_actors::providers::{BreakerConfig, CircuitState, ProviderMetrics, Providers};
use sre_config::{ArgoEnvironment, RetryConfig, SecretStore, Upstream};
use sre_intents::IntentRecord;
use sre_supervision::{
    ActorSlot, ChildSpec, ChildState, Observer, Readiness, RestartPolicy, Supervisor,
    SupervisorMsg, SupervisorSpec,
};
use sre_test_support::argocd::{app, FakeArgoCd, Mode};
use tokio::sync::mpsc;

const TOKEN: &str = "argo-token";
const INTERVAL: Duration = Duration::from_secs(30);

struct Rig {
    root: ActorRef<SupervisorMsg>,
    providers: Providers,
    observer: Observer,
    rx: mpsc::UnboundedReceiver<Vec<IntentRecord>>,
    _secrets: tempfile::TempDir,
}

async fn rig(envs: &[(&str, &FakeArgoCd)]) -> Rig {
    let secrets = tempfile::tempdir().unwrap();
    let dir = secrets.path().join("platform/argocd-token");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
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
        minimum_calls: 3,
        open_duration: Duration::from_secs(60),
        half_open_trials: 1,
    };
    let upstreams = envs
        .iter()
        .map(|(name, _)| Upstream {
            name: format!("argocd:{name}"),
            base_url: None,
            timeout: retry.timeout,
        })
        .collect();
    let mut registry = Registry::default();
    let providers = Providers::from_upstreams(
        upstreams,
        breaker,
        retry,
        ProviderMetrics::new(&mut registry),
    );
    let metrics = ArgoMetrics::new(&mut registry);
    let observer = Observer::default();
    let (tx, rx) = mpsc::unbounded_channel();
    // The shared dedup actor, as the program runs it beside the pollers.
    let (dedup_child, dedup_slot) = common::dedup(&mut registry);
    let policy = RestartPolicy {
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
        jitter: 0.0,
        max_restarts: 3,
        period: Duration::from_secs(300),
        cool_down: Duration::from_secs(600),
    };
    let mut argocd = SupervisorSpec::new("argocd", policy.clone(), observer.clone());
    for (name, fake) in envs {
        let args = PollerArgs {
            env: ArgoEnvironment {
                name: name.to_string(),
                url: format!("{}/", fake.url()).parse().unwrap(),
                token: Some("platform/argocd-token".parse().unwrap()),
                projects: vec![],
                selector: Some(format!("environment={name}")),
                app_namespace: None,
                ca_cert_path: None,
                insecure: false,
            },
            interval: INTERVAL,
            client: Ok(providers.client(&format!("argocd:{name}")).unwrap()),
            secrets: SecretStore::new(secrets.path()),
            topic: "sre.domain.intents.v1".into(),
            source: "sre-integration/argocd".into(),
            delivery: Delivery::new(
                Some(dedup_slot.clone()),
                DedupSource::Argocd,
                Emitter::Channel(tx.clone()),
                Duration::from_secs(30),
            ),
            metrics: metrics.clone(),
            readiness: Readiness::default(),
        };
        argocd = argocd.child(ChildSpec::actor(name.to_string(), move || {
            (EnvPoller, args.clone())
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
        .child(ChildSpec::supervisor(argocd));
    let (root, _) = Actor::spawn(None, Supervisor, root).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    Rig {
        root,
        providers,
        observer,
        rx,
        _secrets: secrets,
    }
}

fn kinds(batch: &[IntentRecord]) -> Vec<&str> {
    batch.iter().map(|r| r.header("ce_type").unwrap()).collect()
}

fn value(r: &IntentRecord) -> serde_json::Value {
    serde_json::from_str(r.value.get()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn baseline_then_changes_only_and_a_fleet_every_poll() {
    let fake = FakeArgoCd::start(
        TOKEN,
        vec![
            app("api", "dev", "Healthy", "Synced"),
            app("web", "dev", "Healthy", "Synced"),
            app("other-env", "prod", "Degraded", "Synced"),
        ],
    )
    .await;
    let mut r = rig(&[("dev", &fake)]).await;

    // First poll: each application once, and the fleet.
    let batch = r.rx.recv().await.unwrap();
    assert_eq!(
        kinds(&batch),
        [
            "RecordHealthCheckRequested",
            "RecordHealthCheckRequested",
            "RecordFleetStateRequested"
        ]
    );
    let api = value(&batch[0]);
    assert_eq!(api["reason"], "baseline");
    assert_eq!(api["subject"]["name"], "api");
    assert_eq!(batch[0].key, "argocd:dev/api");
    assert_eq!(
        batch[0].idempotency_key(),
        Some("argocd:dev:api:Healthy:Synced:3f2a9c1")
    );
    let fleet = value(&batch[2]);
    assert_eq!(batch[2].key, "fleet:dev");
    assert_eq!(
        fleet["applications"], 2,
        "the selector keeps other environments out"
    );
    assert_eq!(fleet["health"]["Healthy"], 2);
    assert_eq!(
        fleet["health"]["Degraded"], 0,
        "standard statuses are always counted"
    );
    assert_eq!(fleet["sync"]["OutOfSync"], 0);

    // An application turns Degraded: one health intent, and the fleet counts it.
    fake.set("api", "Degraded", "Synced");
    let batch = r.rx.recv().await.unwrap();
    assert_eq!(
        kinds(&batch),
        ["RecordHealthCheckRequested", "RecordFleetStateRequested"]
    );
    let change = value(&batch[0]);
    assert_eq!(change["reason"], "changed");
    assert_eq!(change["previous"]["health"], "Healthy");
    assert_eq!(change["current"]["health"], "Degraded");
    let fleet = value(&batch[1]);
    assert_eq!(fleet["health"]["Degraded"], 1);
    assert_eq!(fleet["unhealthy"][0]["name"], "api");

    // Nothing changes: the fleet only.
    let batch = r.rx.recv().await.unwrap();
    assert_eq!(kinds(&batch), ["RecordFleetStateRequested"]);

    // An application disappears: reported as deleted.
    fake.remove("web");
    let batch = r.rx.recv().await.unwrap();
    assert_eq!(
        kinds(&batch),
        ["RecordHealthCheckRequested", "RecordFleetStateRequested"]
    );
    let gone = value(&batch[0]);
    assert_eq!(
        (gone["reason"].as_str(), gone["current"]["health"].as_str()),
        (Some("deleted"), Some("Deleted"))
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_poller_restarted_within_the_window_re_sends_no_health_intent() {
    let fake = FakeArgoCd::start(
        TOKEN,
        vec![
            app("api", "dev", "Healthy", "Synced"),
            app("web", "dev", "Healthy", "Synced"),
        ],
    )
    .await;
    let mut r = rig(&[("dev", &fake)]).await;
    let batch = r.rx.recv().await.unwrap();
    assert_eq!(
        batch.len(),
        3,
        "the baseline: two applications and the fleet"
    );

    // Killed (as `POST /v1/supervision/restart` does): the restarted poller has no memory of
    // what it saw, so its first poll is a baseline again, with the same keys.
    let argocd: ActorRef<SupervisorMsg> =
        ractor::call!(r.root, SupervisorMsg::Lookup, "argocd".to_string())
            .unwrap()
            .unwrap()
            .into();
    let poller = ractor::call!(argocd, SupervisorMsg::Lookup, "dev".to_string())
        .unwrap()
        .unwrap();
    poller.kill();
    r.observer
        .wait_until(|c| {
            c.iter()
                .any(|s| s.name == "dev" && s.restarts == 1 && s.state == ChildState::Running)
        })
        .await;
    let batch = r.rx.recv().await.unwrap();
    assert_eq!(
        kinds(&batch),
        ["RecordFleetStateRequested"],
        "the re-baseline repeated no health intent"
    );
    // What changes next is reported.
    fake.set("web", "Degraded", "Synced");
    let batch = r.rx.recv().await.unwrap();
    assert_eq!(
        kinds(&batch),
        ["RecordHealthCheckRequested", "RecordFleetStateRequested"]
    );
    assert_eq!(value(&batch[0])["subject"]["name"], "web");
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_environment_backs_off_alone_while_the_others_keep_their_cadence() {
    let dev = FakeArgoCd::start(TOKEN, vec![app("api", "dev", "Healthy", "Synced")]).await;
    let staging = FakeArgoCd::start(TOKEN, vec![app("api", "staging", "Healthy", "Synced")]).await;
    let production =
        FakeArgoCd::start(TOKEN, vec![app("api", "production", "Healthy", "Synced")]).await;
    let mut r = rig(&[
        ("dev", &dev),
        ("staging", &staging),
        ("production", &production),
    ])
    .await;
    // The three baselines.
    for _ in 0..3 {
        r.rx.recv().await.unwrap();
    }
    staging.mode(Mode::Status(500));
    let start = tokio::time::Instant::now();
    let mut fleets = std::collections::BTreeMap::<String, usize>::new();
    let mut staging_open = false;
    while start.elapsed() < Duration::from_secs(300) {
        if staging.requests() > 4 {
            staging.mode(Mode::Stall);
        }
        let batch = tokio::time::timeout(Duration::from_secs(60), r.rx.recv())
            .await
            .unwrap()
            .unwrap();
        for rec in &batch {
            if rec.header("ce_type") == Some("RecordFleetStateRequested") {
                *fleets.entry(rec.key.clone()).or_default() += 1;
            }
        }
        staging_open |=
            r.providers.board().get("argocd:staging").map(|s| s.state) == Some(CircuitState::Open);
    }
    let dev_fleets = fleets.get("fleet:dev").copied().unwrap_or(0);
    assert!(
        (9..=12).contains(&dev_fleets),
        "dev kept its 30 s cadence: {fleets:?}"
    );
    assert_eq!(
        fleets.get("fleet:staging"),
        None,
        "a failing environment claims nothing: {fleets:?}"
    );
    assert!(staging_open, "staging's circuit opened");
    // Staging's poller backed off: far fewer attempts than one per interval.
    assert!(staging.requests() < 20, "{} requests", staging.requests());
    for env in ["dev", "production"] {
        assert_eq!(
            r.observer.child("argocd", env).unwrap().restarts,
            0,
            "{env} never restarted"
        );
    }
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_rejected_token_is_reported_without_a_hot_loop() {
    let fake = FakeArgoCd::start(
        "another-token",
        vec![app("api", "dev", "Healthy", "Synced")],
    )
    .await;
    let r = rig(&[("dev", &fake)]).await;
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    let s = r.observer.child("argocd", "dev").unwrap();
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .contains("misconfigured: ArgoCD rejected the API token (HTTP 401)"),
        "{s:?}"
    );
    // Each start asks twice (the second after re-reading the token); the supervisor's backoff
    // and parking bound the rest.
    assert!(
        fake.requests() <= 20,
        "{} requests in 20 minutes",
        fake.requests()
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn five_thousand_applications_parse_and_the_next_tick_is_kept() {
    let apps = (0..5000)
        .map(|i| app(&format!("app-{i:04}"), "dev", "Healthy", "Synced"))
        .collect();
    let fake = FakeArgoCd::start(TOKEN, apps).await;
    let mut r = rig(&[("dev", &fake)]).await;
    let first = r.rx.recv().await.unwrap();
    assert_eq!(first.len(), 5001);
    let fleet = value(first.last().unwrap());
    assert_eq!(fleet["applications"], 5000);
    let t = tokio::time::Instant::now();
    let second = r.rx.recv().await.unwrap();
    assert_eq!(kinds(&second), ["RecordFleetStateRequested"]);
    assert!(
        t.elapsed() <= INTERVAL.mul_f64(1.1) + Duration::from_secs(1),
        "next poll on time: {:?}",
        t.elapsed()
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test]
async fn a_bad_ca_file_is_a_clear_error_for_that_environment() {
    let mut registry = Registry::default();
    let upstream = Upstream {
        name: "argocd:dev".into(),
        base_url: None,
        timeout: Duration::from_secs(5),
    };
    let providers = Providers::from_upstreams(
        vec![upstream],
        BreakerConfig {
            failure_rate_threshold: 0.5,
            window: Duration::from_secs(60),
            minimum_calls: 3,
            open_duration: Duration::from_secs(30),
            half_open_trials: 1,
        },
        RetryConfig::default(),
        ProviderMetrics::new(&mut registry),
    );
    let tls = sre_actors::providers::TlsOptions {
        ca_pem_path: Some("/nonexistent/ca.pem".into()),
        insecure: false,
    };
    let err = providers
        .client_with_tls("argocd:dev", &tls)
        .unwrap()
        .unwrap_err();
    assert!(
        err.contains("cannot read CA file /nonexistent/ca.pem"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_environment_that_keeps_failing_is_handed_to_its_supervisor() {
    let fake = FakeArgoCd::start(TOKEN, vec![app("api", "dev", "Healthy", "Synced")]).await;
    fake.mode(Mode::Status(503));
    let r = rig(&[("dev", &fake)]).await;
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    let s = r.observer.child("argocd", "dev").unwrap();
    assert!(s.restarts >= 1, "{s:?}");
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .contains("polls in a row failed"),
        "{s:?}"
    );
    // Backing off (doubling, then the supervisor's backoff) keeps the attempts few.
    assert!(
        fake.requests() < 60,
        "{} requests in 20 minutes",
        fake.requests()
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_oversized_list_fails_the_poll_within_the_cap() {
    let fake = FakeArgoCd::start(TOKEN, vec![app("api", "dev", "Healthy", "Synced")]).await;
    // Streamed without a Content-Length: only reading finds it too large.
    fake.mode(Mode::Oversized(MAX_LIST_BYTES));
    let mut r = rig(&[("dev", &fake)]).await;
    tokio::time::sleep(Duration::from_secs(15 * 60)).await;
    let s = r.observer.child("argocd", "dev").unwrap();
    assert!(s.restarts >= 1, "{s:?}");
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .contains(&format!("response body larger than {MAX_LIST_BYTES} bytes")),
        "{s:?}"
    );
    assert!(r.rx.try_recv().is_err(), "no fleet from a cut list");
    // Once the list fits, polls succeed again.
    fake.mode(Mode::Normal);
    let batch = tokio::time::timeout(Duration::from_secs(30 * 60), r.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kinds(&batch).last(), Some(&"RecordFleetStateRequested"));
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_list_that_stalls_mid_body_fails_the_poll_and_never_hangs_the_poller() {
    let fake = FakeArgoCd::start(TOKEN, vec![app("api", "dev", "Healthy", "Synced")]).await;
    fake.mode(Mode::StallBody);
    let r = rig(&[("dev", &fake)]).await;
    tokio::time::sleep(Duration::from_secs(15 * 60)).await;
    let s = r.observer.child("argocd", "dev").unwrap();
    assert!(s.restarts >= 1, "{s:?}");
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .contains("polls in a row failed"),
        "{s:?}"
    );
    // The stalled reads counted against the circuit, which opened.
    let c = r.providers.board().get("argocd:dev").unwrap();
    assert!(c.transitions >= 1, "{c:?}");
    // Every poll ended and the next one came.
    assert!(fake.requests() >= 3, "{} requests", fake.requests());
    r.root.stop_and_wait(None, None).await.unwrap();
}
