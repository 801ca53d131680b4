//! Real Prometheus (Debian package `prometheus`) scrapes `/metrics`, and `promtool check
//! metrics` accepts the exposition. Prometheus is a separate process on its own schedule, so
//! this test polls its API (bounded) for the scrape result.

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::process::{free_port, require, Peer};
use sre_config::Config;
use sre_integration::app::AppHandle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_and_promtool_accepts_the_exposition() {
    require("prometheus");
    require("promtool");
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace = Duration::ZERO;
    let app = AppHandle::start(config).await.unwrap();
    let target = app.addr().await.unwrap();

    // promtool lints the classic text format that non-OpenMetrics clients get.
    let body = reqwest::get(format!("http://{target}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus scrapes (negotiating OpenMetrics) and ingests every family.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sre-integration\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Peer::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    let query = |q: &'static str| {
        let client = client.clone();
        let api = api.clone();
        async move {
            let resp = client
                .get(format!("{api}/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = resp.json().await.ok()?;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_owned)
        }
    };
    let mut up = None;
    for _ in 0..300 {
        up = query("up{job=\"sre-integration\"}").await;
        if up.as_deref() == Some("1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "Prometheus never scraped the target successfully"
    );

    let targets: serde_json::Value = client
        .get(format!("{api}/targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");

    assert_eq!(
        query("sre_supervisor_child_up{supervisor=\"ingest\",child=\"http\"}")
            .await
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        query("sre_supervisor_child_restarts_total{supervisor=\"providers\",child=\"prometheus\"}")
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        query("sre_circuit_state{provider=\"prometheus\"}")
            .await
            .as_deref(),
        Some("0")
    );
    app.shutdown().await;
}
