//! The operator surface of a running program, in-process on paused tokio time: health,
//! readiness, metrics, the supervision tree — and a provider circuit that keeps crashing is
//! restarted, then parked, while everything else keeps answering and the tree says so.

use std::time::Duration;

use ractor::ActorRef;
use sre_config::Config;
use sre_integration::app::{AppHandle, PROVIDERS};
use sre_supervision::SupervisorMsg;

fn config() -> Config {
    let mut c = Config::embedded();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.shutdown_grace = Duration::from_secs(3);
    c
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn child(
    root: &ActorRef<SupervisorMsg>,
    supervisor: &str,
    name: &str,
) -> Option<ractor::ActorCell> {
    let sup: ActorRef<SupervisorMsg> =
        ractor::call!(root, SupervisorMsg::Lookup, supervisor.to_string())
            .unwrap()
            .unwrap()
            .into();
    ractor::call!(sup, SupervisorMsg::Lookup, name.to_string()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn health_readiness_metrics_and_tree() {
    let app = AppHandle::start(config()).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());

    assert_eq!(get(&base, "/healthz").await, (200, "ok\n".into()));

    let (code, body) = get(&base, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert!(ready["children"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "http" && c["state"] == "running"));

    let (code, body) = get(&base, "/v1/supervision").await;
    assert_eq!(code, 200);
    let tree: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tree["name"], "root");
    let providers = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "providers")
        .unwrap();
    let prom = &providers["children"][0];
    assert_eq!(prom["name"], "prometheus");
    assert_eq!(prom["circuit"]["state"], "closed");

    let (code, metrics) = get(&base, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains(r#"sre_supervisor_child_up{supervisor="ingest",child="http"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sre_circuit_state{provider="prometheus"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE sre_supervisor_child_restarts_total counter"),
        "classic text format by default"
    );

    let om = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(om.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));

    app.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_circuit_that_keeps_crashing_is_parked_and_nothing_else_notices() {
    let app = AppHandle::start(config()).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    let http_before = child(app.root(), "ingest", "http").await.unwrap().get_id();

    for _ in 0..6 {
        // Wait (virtual time) for the circuit to be back, then kill it again.
        let cell = loop {
            if let Some(c) = child(app.root(), PROVIDERS, "prometheus").await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        cell.kill();
        // Still answering while the circuit is down.
        assert_eq!(get(&base, "/healthz").await.0, 200);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    let (_, body) = get(&base, "/v1/supervision").await;
    let tree: serde_json::Value = serde_json::from_str(&body).unwrap();
    let providers = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "providers")
        .unwrap();
    let prom = &providers["children"][0];
    assert_eq!(prom["state"], "failed", "{body}");
    assert_eq!(prom["restarts"], 5, "{body}");
    assert!(prom["retry_at"].is_string(), "{body}");
    assert!(
        prom["last_error"]
            .as_str()
            .unwrap()
            .contains("exited unexpectedly"),
        "{body}"
    );

    let (_, metrics) = get(&base, "/metrics").await;
    assert!(
        metrics.contains(
            r#"sre_supervisor_child_parked{supervisor="providers",child="prometheus"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"sre_supervisor_child_restarts_total{supervisor="providers",child="prometheus"} 5"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"sre_supervisor_child_restarts_total{supervisor="root",child="providers"} 0"#
        ),
        "{metrics}"
    );

    // One bad upstream never takes the pod out of rotation, and the webhook side was untouched.
    let (code, body) = get(&base, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        child(app.root(), "ingest", "http").await.unwrap().get_id(),
        http_before
    );

    app.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_turns_readiness_off_before_the_listener_closes() {
    let app = AppHandle::start(config()).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    let readiness = app.readiness().clone();
    let observer = app.observer().clone();
    let stopping = tokio::spawn(app.shutdown());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Inside the grace period: still serving, but not ready.
    let (code, body) = get(&base, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("shutting down"), "{body}");
    assert!(!readiness.report(&observer).ready);
    stopping.await.unwrap();
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "listener closed"
    );
}

#[tokio::test(start_paused = true)]
async fn operators_can_restart_one_actor_when_allowed() {
    let app = AppHandle::start(config()).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/supervision/restart?supervisor=providers&child=prometheus");
    let resp = client.post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 403, "off by default");
    app.shutdown().await;

    let mut c = config();
    c.server.allow_restart = true;
    let app = AppHandle::start(c).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    let url = format!("{base}/v1/supervision/restart?supervisor=providers&child=prometheus");
    let resp = client.post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    app.observer()
        .wait_until(|t| {
            t.iter().any(|c| {
                c.name == "prometheus"
                    && c.restarts == 1
                    && c.state == sre_supervision::ChildState::Running
            })
        })
        .await;
    let resp = client
        .post(format!(
            "{base}/v1/supervision/restart?supervisor=providers&child=nope"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    app.shutdown().await;
}
