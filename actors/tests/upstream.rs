//! The outbound client, the provider circuits and the Kubernetes circuit layer against a fake
//! upstream that fails, stalls, throttles and sends oversized or stalling bodies on command.
//! Paused tokio time: timeouts, backoffs and open periods elapse on the virtual clock, so
//! nothing here waits for real.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams, WatchParams};
use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::kubernetes::client::{guarded_client, Guard};
use sre_actors::providers::{
    BreakerConfig, CircuitState, ProviderMetrics, Providers, UpstreamClient, UpstreamError,
    UpstreamResponse, CORRELATION_HEADER,
};
use sre_config::{RetryConfig, Upstream};
use sre_supervision::{Observer, RestartPolicy, Supervisor, SupervisorMsg};
use sre_test_support::{FakeUpstream, Reply};
use tokio::time::Instant;

struct Rig {
    fake: FakeUpstream,
    providers: Providers,
    client: UpstreamClient,
    registry: Registry,
    root: ActorRef<SupervisorMsg>,
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 3,
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(60),
    }
}

fn breaker() -> BreakerConfig {
    BreakerConfig {
        failure_rate_threshold: 0.5,
        window: Duration::from_secs(60),
        minimum_calls: 4,
        open_duration: Duration::from_secs(30),
        half_open_trials: 2,
    }
}

async fn rig(retry: RetryConfig, breaker: BreakerConfig) -> Rig {
    rig_named("jira", retry, breaker).await
}

async fn rig_named(name: &str, retry: RetryConfig, breaker: BreakerConfig) -> Rig {
    let fake = FakeUpstream::builder().start().await;
    let mut registry = Registry::default();
    let metrics = ProviderMetrics::new(&mut registry);
    let upstream = Upstream {
        name: name.into(),
        base_url: Some(fake.url().parse().unwrap()),
        timeout: retry.timeout,
    };
    let providers = Providers::from_upstreams(vec![upstream], breaker, retry, metrics);
    let spec = providers.supervisor(RestartPolicy::default(), Observer::default());
    let (root, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    let client = providers.client(name).unwrap();
    Rig {
        fake,
        providers,
        client,
        registry,
        root,
    }
}

impl Rig {
    async fn get(&self) -> Result<UpstreamResponse, UpstreamError> {
        let url = format!("{}/rest/api/2/issue", self.fake.url());
        self.client
            .send(Some("corr-1"), |http| http.get(&url))
            .await
    }

    fn metrics(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).unwrap();
        s
    }

    fn state(&self) -> CircuitState {
        self.circuit().state
    }

    fn circuit(&self) -> sre_actors::providers::CircuitSnapshot {
        let name = self.client.provider();
        self.providers.board().get(name).unwrap()
    }

    /// Opens the circuit with four failed one-shot calls, then waits out the open period.
    async fn open_then_half_open(&self) {
        self.fake.set(Reply::status(500));
        for _ in 0..4 {
            assert!(self.get().await.is_err());
        }
        tokio::task::yield_now().await;
        assert_eq!(self.state(), CircuitState::Open);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(self.state(), CircuitState::HalfOpen);
    }
}

/// A circuit that stays closed through the failures of one test.
fn patient() -> BreakerConfig {
    BreakerConfig {
        minimum_calls: 100,
        ..breaker()
    }
}

fn one_shot() -> RetryConfig {
    RetryConfig {
        max_attempts: 1,
        ..retry()
    }
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_backoff_and_the_same_correlation_id() {
    let r = rig(retry(), breaker()).await;
    r.fake.push(Reply::status(503));
    r.fake.push(Reply::status(502));
    let t0 = Instant::now();
    let resp = r.get().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "backed off: {:?}",
        t0.elapsed()
    );
    let seen = r.fake.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen
        .iter()
        .all(|q| q.header(CORRELATION_HEADER) == Some("corr-1")));
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="jira",outcome="server_error"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="jira",outcome="success"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_upstream_request_duration_seconds_count{provider="jira"} 3"#),
        "{m}"
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stalled_upstream_times_out_on_every_attempt() {
    let r = rig(retry(), breaker()).await;
    r.fake.set(Reply::Stall);
    let t0 = Instant::now();
    let err = r.get().await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Timeout { attempts: 3, .. }),
        "{err}"
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(6),
        "three 2 s timeouts: {:?}",
        t0.elapsed()
    );
    assert_eq!(r.fake.count(), 3);
    assert!(r.metrics().contains(r#"outcome="timeout"} 3"#));
}

#[tokio::test(start_paused = true)]
async fn throttling_honours_retry_after_and_does_not_trip_the_circuit() {
    let r = rig(retry(), breaker()).await;
    r.fake.push(Reply::throttle(7));
    let t0 = Instant::now();
    assert_eq!(r.get().await.unwrap().status(), 200);
    assert!(
        t0.elapsed() >= Duration::from_secs(7),
        "waited as asked: {:?}",
        t0.elapsed()
    );

    // Too long a wait fails at once instead of hanging the caller.
    r.fake.push(Reply::throttle(3600));
    let err = r.get().await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Throttled { attempts: 1, retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{err}"
    );
    // GitHub signals an exhausted rate limit with 403 and x-ratelimit-remaining: 0.
    r.fake.push(
        Reply::status(403)
            .with_header("x-ratelimit-remaining", "0")
            .with_header("retry-after", "2"),
    );
    assert_eq!(r.get().await.unwrap().status(), 200);
    assert_eq!(r.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_returned_unretried() {
    let r = rig(retry(), breaker()).await;
    r.fake.push(
        Reply::status(404)
            .with_body(serde_json::json!({"errorMessages": ["Issue does not exist"]})),
    );
    let resp = r.get().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(r.fake.count(), 1);
    assert!(r.metrics().contains(r#"outcome="client_error"} 1"#));
}

#[tokio::test(start_paused = true)]
async fn the_circuit_opens_fails_fast_then_half_opens_and_closes() {
    let one_shot = RetryConfig {
        max_attempts: 1,
        ..retry()
    };
    let r = rig(one_shot, breaker()).await;
    r.fake.set(Reply::status(500));
    for _ in 0..4 {
        assert!(matches!(
            r.get().await,
            Err(UpstreamError::Status { status: 500, .. })
        ));
    }
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Open);

    // Open: calls fail fast and never reach the upstream.
    let before = r.fake.count();
    let err = r.get().await.unwrap_err();
    assert!(matches!(err, UpstreamError::CircuitOpen { .. }), "{err}");
    assert_eq!(r.fake.count(), before);

    // After the open period the circuit turns half-open on its own.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(r.state(), CircuitState::HalfOpen);

    // A failed trial opens it again; two good trials close it.
    assert!(r.get().await.is_err());
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Open);
    tokio::time::sleep(Duration::from_secs(31)).await;
    r.fake.set(Reply::status(200));
    assert!(r.get().await.is_ok());
    assert!(r.get().await.is_ok());
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Closed);

    let m = r.metrics();
    assert!(
        m.contains(r#"sre_circuit_transitions_total{provider="jira",to="open"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_circuit_transitions_total{provider="jira",to="half_open"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_circuit_transitions_total{provider="jira",to="closed"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"sre_circuit_state{provider="jira"} 0"#), "{m}");
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="jira",outcome="circuit_open"} 1"#),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crashed_circuit_fails_calls_fast_until_its_supervisor_restarts_it() {
    let r = rig(retry(), breaker()).await;
    let cell = ractor::call!(r.root, SupervisorMsg::Lookup, "jira".to_string())
        .unwrap()
        .unwrap();
    cell.kill();
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    let err = r.get().await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::CircuitUnavailable { .. }),
        "{err}"
    );
    assert_eq!(r.fake.count(), 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(r.get().await.unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_half_open_trial_gives_its_slot_back() {
    let r = rig(
        one_shot(),
        BreakerConfig {
            half_open_trials: 1,
            ..breaker()
        },
    )
    .await;
    r.open_then_half_open().await;

    // The only trial hangs at the upstream, and its caller goes away mid-call.
    r.fake.set(Reply::Stall);
    let before = r.fake.count();
    let call = {
        let client = r.client.clone();
        let url = format!("{}/rest/api/2/issue", r.fake.url());
        tokio::spawn(async move { client.send(None, |http| http.get(&url)).await })
    };
    r.fake.wait_for_requests(before + 1).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    tokio::task::yield_now().await;
    assert_eq!(
        r.state(),
        CircuitState::HalfOpen,
        "a cancelled call is no failure"
    );

    // The slot is free: the next trial runs and closes the circuit.
    r.fake.set(Reply::status(200));
    assert_eq!(r.get().await.unwrap().status(), 200);
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Closed);
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_cap_fails_the_call_and_counts_against_the_circuit() {
    let r = rig(retry(), breaker()).await;
    // Announced by Content-Length: refused before reading.
    r.fake.push(Reply::sized(200, 2 << 20));
    let err = r.get().await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::BodyTooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
    // Streamed without one: found while reading, against this call's own cap.
    r.fake.push(Reply::chunked(10, 200));
    let url = format!("{}/big", r.fake.url());
    let limit = r.client.body_limit().with_max_bytes(1000);
    let err = r
        .client
        .send_limited(None, limit, |http| http.get(&url))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::BodyTooLarge { limit: 1000, .. }),
        "{err}"
    );
    assert_eq!(r.fake.count(), 2, "never retried");
    // Within the cap, the body arrives whole.
    r.fake.push(Reply::chunked(4, 200));
    let resp = r
        .client
        .send_limited(None, limit, |http| http.get(&url))
        .await
        .unwrap();
    assert_eq!(resp.body().len(), 800);

    tokio::task::yield_now().await;
    let c = r.circuit();
    assert_eq!((c.window_calls, c.window_failures), (3, 2), "{c:?}");
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="jira",outcome="body_too_large"} 2"#),
        "{m}"
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stalls_after_the_headers_times_out_and_is_retried() {
    let r = rig(retry(), patient()).await;
    r.fake.push(Reply::stall_body(r#"{"issues": ["#));
    let resp = r.get().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), b"{}", "the retry's body");

    r.fake.set(Reply::stall_body(r#"{"issues": ["#));
    let t0 = Instant::now();
    let err = r.get().await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::BodyTimeout { attempts: 3, timeout, .. } if timeout == Duration::from_secs(2)),
        "{err}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(6), "{:?}", t0.elapsed());
    tokio::task::yield_now().await;
    let c = r.circuit();
    assert_eq!(c.window_failures, 4, "{c:?}");
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="jira",outcome="body_timeout"} 4"#),
        "{m}"
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_error_text_of_a_5xx_is_read_bounded() {
    let r = rig(one_shot(), breaker()).await;
    // Huge: cut at 64 KiB, 200 characters kept.
    r.fake.push(Reply::sized(500, 8 << 20));
    let err = r.get().await.unwrap_err();
    let UpstreamError::Status { status, body, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(status, 500);
    assert_eq!(body.chars().count(), 200);
    // Stalled after a few bytes: what arrived, once the body deadline passes.
    r.fake.push(Reply::Chunked {
        status: 503,
        chunks: vec!["upstream overloaded".into()],
        stall: true,
    });
    let err = r.get().await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Status { status: 503, body, .. } if body == "upstream overloaded"),
        "{err}"
    );
    r.root.stop_and_wait(None, None).await.unwrap();
}

/// A kube client for the fake as the API server of cluster `prod`, behind `k8s:prod`.
async fn kube_rig(breaker: BreakerConfig) -> (Rig, kube::Client) {
    sre_actors::providers::client::install_crypto_provider();
    let r = rig_named("k8s:prod", retry(), breaker).await;
    let guard = Guard {
        circuit: r.providers.circuit("k8s:prod").unwrap().clone(),
        policy: r.providers.policy("k8s:prod").unwrap(),
        metrics: r.providers.metrics().clone(),
    };
    let config = kube::Config::new(r.fake.url().parse().unwrap());
    let client = guarded_client(config, guard).unwrap();
    (r, client)
}

fn pod_json() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "api-1", "namespace": "web"},
    })
}

#[tokio::test(start_paused = true)]
async fn a_throttled_kubernetes_read_is_retried_and_leaves_the_circuit_closed() {
    // One failure in two calls would open this circuit.
    let (r, client) = kube_rig(BreakerConfig {
        minimum_calls: 2,
        ..breaker()
    })
    .await;
    r.fake.push(Reply::throttle(1));
    r.fake.push(Reply::json(pod_json()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "web");
    let t0 = Instant::now();
    let pod = pods.get("api-1").await.unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("api-1"));
    assert!(t0.elapsed() >= Duration::from_secs(1), "waited as asked");

    let seen = r.fake.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].uri, "/api/v1/namespaces/web/pods/api-1");
    let id = seen[0]
        .header(CORRELATION_HEADER)
        .expect("a correlation id");
    assert!(!id.is_empty());
    assert_eq!(
        seen[1].header(CORRELATION_HEADER),
        Some(id),
        "the same id on the retry"
    );
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Closed);
    let c = r.circuit();
    assert_eq!(c.window_failures, 0, "{c:?}");

    // A watch answered 429 is not retried (kube's watcher backs off), and counts as no failure.
    r.fake.push(Reply::throttle(1));
    assert!(pods.watch(&WatchParams::default(), "0").await.is_err());
    assert_eq!(r.fake.count(), 3);
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="k8s:prod",outcome="throttled"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="k8s:prod",outcome="success"} 1"#),
        "{m}"
    );
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Closed);
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_kubernetes_read_answered_503_is_retried_but_a_write_is_not() {
    let (r, client) = kube_rig(patient()).await;
    r.fake.push(Reply::status(503));
    r.fake.push(Reply::json(pod_json()));
    let pods: Api<Pod> = Api::namespaced(client, "web");
    pods.get("api-1").await.unwrap();
    assert_eq!(r.fake.count(), 2);
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="k8s:prod",outcome="server_error"} 1"#),
        "{m}"
    );

    // A write is sent once, whatever the answer.
    r.fake.push(Reply::status(503));
    let pod: Pod = serde_json::from_value(pod_json()).unwrap();
    assert!(pods.create(&PostParams::default(), &pod).await.is_err());
    assert_eq!(r.fake.count(), 3);
    let seen = r.fake.requests();
    assert_eq!(seen[2].method, "POST");
    assert!(seen[2].header(CORRELATION_HEADER).is_some());

    // A read that keeps failing gives up after max_attempts, with the last answer.
    r.fake.set(Reply::status(500));
    assert!(pods.get("api-1").await.is_err());
    assert_eq!(r.fake.count(), 6);
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_kubernetes_body_that_stalls_fails_the_read_and_counts_against_the_circuit() {
    let (r, client) = kube_rig(patient()).await;
    r.fake
        .push(Reply::stall_body(r#"{"apiVersion": "v1", "kind": "Pod", "#));
    let pods: Api<Pod> = Api::namespaced(client, "web");
    let t0 = Instant::now();
    let err = pods.get("api-1").await.unwrap_err();
    assert!(
        t0.elapsed() >= sre_actors::kubernetes::client::MIN_BODY_TIMEOUT,
        "{err}"
    );
    assert!(err.to_string().contains("body not read within"), "{err}");
    tokio::task::yield_now().await;
    let c = r.circuit();
    assert_eq!((c.window_calls, c.window_failures), (1, 1), "{c:?}");
    let m = r.metrics();
    assert!(
        m.contains(r#"sre_upstream_requests_total{provider="k8s:prod",outcome="body_timeout"} 1"#),
        "{m}"
    );
    assert!(!m.contains(r#"outcome="success""#), "counted once: {m}");
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_kubernetes_trial_gives_its_slot_back() {
    let (r, client) = kube_rig(BreakerConfig {
        half_open_trials: 1,
        ..breaker()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "web");
    // Writes are sent once: four failed ones open the circuit.
    r.fake.set(Reply::status(500));
    let pod: Pod = serde_json::from_value(pod_json()).unwrap();
    for _ in 0..4 {
        assert!(pods.create(&PostParams::default(), &pod).await.is_err());
    }
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Open);
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(r.state(), CircuitState::HalfOpen);

    // The only trial hangs and is dropped (its watcher killed, its caller gone).
    r.fake.set(Reply::Stall);
    let trial = {
        let pods = pods.clone();
        tokio::spawn(async move { pods.get("api-1").await })
    };
    r.fake.wait_for_requests(5).await;
    trial.abort();
    assert!(trial.await.unwrap_err().is_cancelled());

    r.fake.set(Reply::json(pod_json()));
    pods.get("api-1").await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(r.state(), CircuitState::Closed);
    r.root.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_upstream_probe_reports_health_as_degraded_never_unready() {
    use sre_actors::observability::credentials::Credentials;
    use sre_actors::observability::probe::{health_path, ProbeArgs, ProbeMetrics, UpstreamProbe};
    let mut r = rig_named("prometheus", one_shot(), patient()).await;
    let metrics = ProbeMetrics::new(&mut r.registry);
    let readiness = sre_supervision::Readiness::new("ingest");
    readiness.mark_started();
    let observer = Observer::default();
    let url = format!("{}/{}", r.fake.url(), health_path("prometheus").unwrap());
    r.fake.set(Reply::status(200));
    let (probe, _) = Actor::spawn(
        None,
        UpstreamProbe,
        ProbeArgs {
            client: r.client.clone(),
            url: url.parse().unwrap(),
            credentials: Credentials::Bearer(sre_config::SecretString::new("probe-token")),
            interval: Duration::from_secs(30),
            readiness: readiness.clone(),
            metrics,
        },
    )
    .await
    .unwrap();
    // The probe handles an answer before it schedules the next probe, so once request n+1 has
    // arrived, answer n is reflected (and n+1 got the same reply, set before it).
    r.fake.wait_for_requests(2).await;
    assert_eq!(r.fake.requests()[0].uri, "/-/ready");
    assert_eq!(
        r.fake.requests()[0].header("authorization"),
        Some("Bearer probe-token"),
        "the upstream's credentials go with the probe"
    );
    assert!(r
        .metrics()
        .contains(r#"sre_upstream_up{provider="prometheus"} 1"#));
    assert!(readiness.report(&observer).degraded.is_empty());

    // Prometheus turns unready: reported on the next probe, as a degradation only.
    r.fake.set(Reply::status(503));
    r.fake.wait_for_requests(4).await;
    let report = readiness.report(&observer);
    assert!(report.ready, "{report:?}");
    assert_eq!(report.degraded.len(), 1, "{report:?}");
    assert!(
        report.degraded[0].starts_with("upstream prometheus: ")
            && report.degraded[0].contains("HTTP 503"),
        "{report:?}"
    );
    assert!(r
        .metrics()
        .contains(r#"sre_upstream_up{provider="prometheus"} 0"#));

    // And back.
    r.fake.set(Reply::status(200));
    r.fake.wait_for_requests(6).await;
    assert!(readiness.report(&observer).degraded.is_empty());
    assert!(r
        .metrics()
        .contains(r#"sre_upstream_up{provider="prometheus"} 1"#));
    probe.stop(None);
}

#[tokio::test(start_paused = true)]
async fn query_backends_send_their_credentials_and_never_go_out_without_them() {
    use sre_actors::observability::credentials::Credentials;
    use sre_actors::observability::prometheus::PrometheusClient;
    use sre_config::SecretString;
    let r = rig_named("prometheus", one_shot(), patient()).await;
    r.fake.set(Reply::json(serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "42"]}]}
    })));
    let base: reqwest::Url = format!("{}/", r.fake.url()).parse().unwrap();
    let prom = PrometheusClient::new(r.client.clone(), base.clone()).with_credentials(
        Credentials::Basic {
            username: SecretString::new("sre"),
            password: SecretString::new("pa55"),
        },
    );
    let out = prom.instant("up", None, None).await.unwrap();
    assert_eq!(out.data.series()[0].points[0].v, 42.0);
    // base64("sre:pa55")
    assert_eq!(
        r.fake.requests()[0].header("authorization"),
        Some("Basic c3JlOnBhNTU=")
    );
    // A secret that cannot be read stops the call before it leaves.
    let missing = PrometheusClient::new(r.client.clone(), base)
        .with_credentials(Credentials::Unavailable("no key \"token\"".into()));
    let err = missing.instant("up", None, None).await.unwrap_err();
    assert!(err.to_string().contains("credentials unavailable"), "{err}");
    assert_eq!(r.fake.count(), 1, "nothing was sent without credentials");
}
