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

/// The value of an unlabelled gauge or counter line `name value` in `/metrics`.
async fn metric(base: &str, line_prefix: &str) -> u64 {
    let (_, text) = get(base, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_prefix:?} in\n{text}"))
}

/// Reads until the peer closes (EOF or reset); false if it is still open after `within` of
/// (paused) time.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sends one complete `GET /healthz` on a raw connection and reads the answer's head.
async fn raw_healthz(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(start_paused = true)]
async fn three_thousand_half_sent_headers_are_cut_off_and_never_block_a_normal_request() {
    use tokio::io::AsyncWriteExt;
    let mut c = config();
    c.server.max_connections = 4096;
    let app = AppHandle::start(c).await.unwrap();
    let addr = app.addr().await.unwrap();
    let base = format!("http://{addr}");

    let mut slow = Vec::new();
    for batch in 0..6 {
        for _ in 0..500 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Ty")
                .await
                .unwrap();
            slow.push(s);
        }
        // Let the server take this batch off the accept queue before the next one.
        let want = 500 * (batch + 1);
        for _ in 0..100 {
            if metric(&base, "sre_http_connections ").await > want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(metric(&base, "sre_http_connections ").await > 3000);

    // Served while every one of them is still open.
    assert_eq!(get(&base, "/healthz").await, (200, "ok\n".into()));

    // Each is closed once server.header_read_timeout (10s) has passed.
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(60)).await,
            "a half-sent header is held open"
        );
    }
    assert_eq!(
        metric(&base, r#"sre_http_timeouts_total{phase="header"} "#).await,
        3000
    );
    assert!(metric(&base, "sre_http_connections ").await <= 1);
    assert_eq!(get(&base, "/healthz").await.0, 200);
    app.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_the_limit_wait_and_idle_ones_close_after_the_idle_timeout() {
    let mut c = config();
    c.server.max_connections = 2;
    let app = AppHandle::start(c).await.unwrap();
    let addr = app.addr().await.unwrap();
    let base = format!("http://{addr}");

    // Two kept-alive connections take both slots.
    let mut a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut b = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(raw_healthz(&mut a).await.starts_with("HTTP/1.1 200"));
    assert!(raw_healthz(&mut b).await.starts_with("HTTP/1.1 200"));

    // A third client waits in the accept queue...
    let third = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let resp = client.get(format!("{base}/healthz")).send().await.unwrap();
        resp.status().as_u16()
    });
    tokio::pin!(third);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut third)
            .await
            .is_err(),
        "served beyond server.max_connections"
    );
    // ...and is served as soon as a slot frees.
    drop(a);
    assert_eq!(third.await.unwrap(), 200);

    // Idle between requests: not cut at the header timeout (10s), but at the idle timeout (95s).
    assert!(!closed_within(&mut b, Duration::from_secs(60)).await);
    assert!(closed_within(&mut b, Duration::from_secs(60)).await);
    app.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_body_never_arrives_gets_408_after_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = AppHandle::start(config()).await.unwrap();
    let addr = app.addr().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"version\":",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_string(&mut answer))
        .await
        .expect("answered and closed within server.request_timeout")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.request_timeout (30s)"), "{answer}");
    let base = format!("http://{addr}");
    assert_eq!(
        metric(&base, r#"sre_http_timeouts_total{phase="request"} "#).await,
        1
    );
    app.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn ops_auth_guards_metrics_tree_and_restart_but_not_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.secrets.dir = dir.path().to_owned();
    c.server.allow_restart = true;
    c.server.ops_auth = Some(sre_config::OpsAuth {
        secret_ref: "platform/ops-token".parse().unwrap(),
    });
    let app = AppHandle::start(c.clone()).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    let client = reqwest::Client::new();
    // The token is not mounted: closed, never open.
    let resp = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("platform/ops-token"));
    assert_eq!(get(&base, "/healthz").await.0, 200);
    app.shutdown().await;

    let secret = dir.path().join("platform/ops-token");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("token"), "ops-s3cret\n").unwrap();
    let app = AppHandle::start(c).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    assert_eq!(get(&base, "/healthz").await.0, 200);
    assert_eq!(get(&base, "/readyz").await.0, 200);
    for path in ["/metrics", "/v1/supervision"] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let resp = client
            .get(format!("{base}{path}"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        let resp = client
            .get(format!("{base}{path}"))
            .bearer_auth("ops-s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let restart = format!("{base}/v1/supervision/restart?supervisor=providers&child=prometheus");
    assert_eq!(client.post(&restart).send().await.unwrap().status(), 401);
    let resp = client
        .post(&restart)
        .bearer_auth("ops-s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    app.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_oversized_request_head_is_refused_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = AppHandle::start(config()).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(app.addr().await.unwrap())
        .await
        .unwrap();
    // 100 KiB of one header, not yet terminated: over the 64 KiB head limit.
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        .await
        .unwrap();
    let _ = s.write_all(&[b'a'; 100 * 1024]).await;
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .expect("answered before the header timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    app.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_http_server_releases_its_port_for_its_successor() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = config();
    c.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let app = AppHandle::start(c).await.unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&base, "/healthz").await.0, 200);
    // Killed: ractor runs no post_stop, so only the state's Drop can close the listener.
    child(app.root(), "ingest", "http").await.unwrap().kill();
    tokio::time::timeout(
        Duration::from_secs(60),
        app.observer().wait_until(|t| {
            t.iter().any(|c| {
                c.name == "http"
                    && c.restarts == 1
                    && c.state == sre_supervision::ChildState::Running
            })
        }),
    )
    .await
    .expect("the new HttpServer binds the same port");
    assert_eq!(get(&base, "/healthz").await.0, 200);
    app.shutdown().await;
}
