//! The outbound client and the provider circuits against a fake upstream that fails, stalls and
//! throttles on command. Paused tokio time: timeouts, backoffs and open periods elapse on the
//! virtual clock, so nothing here waits for real.

use std::time::Duration;

use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::providers::{
    BreakerConfig, CircuitState, ProviderMetrics, Providers, UpstreamClient, UpstreamError,
    CORRELATION_HEADER,
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
    let fake = FakeUpstream::builder().start().await;
    let mut registry = Registry::default();
    let metrics = ProviderMetrics::new(&mut registry);
    let upstream = Upstream {
        name: "jira".into(),
        base_url: Some(fake.url().parse().unwrap()),
        timeout: retry.timeout,
    };
    let providers = Providers::from_upstreams(vec![upstream], breaker, retry, metrics);
    let spec = providers.supervisor(RestartPolicy::default(), Observer::default());
    let (root, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
    sre_supervision::wait_started(&root).await.unwrap();
    let client = providers.client("jira").unwrap();
    Rig {
        fake,
        providers,
        client,
        registry,
        root,
    }
}

impl Rig {
    async fn get(&self) -> Result<reqwest::Response, UpstreamError> {
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
        self.providers.board().get("jira").unwrap().state
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
