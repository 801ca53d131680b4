//! End to end with real Prometheus AlertManager (Debian `prometheus-alertmanager`): it is
//! configured with a webhook receiver pointing at the service, with bearer auth; alerts posted to
//! its API reach the embedded log as intents; its re-notifications within the window publish
//! nothing; the resolved alert passes. AlertManager runs on its own schedule, so the test polls
//! (bounded) for what it is waiting on.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::{free_port, require, Peer};
use common::{config, records, TOKEN};
use sre_integration::app::AppHandle;

/// Waits (bounded) for an external process to bring about `done`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn count_200(base: &str) -> u64 {
    let text = common::get_text(&format!("{base}/metrics")).await;
    text.lines()
        .find(|l| l.starts_with(r#"sre_webhook_requests_total{webhook="alertmanager",code="200"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_delivers_firing_repeats_and_resolved() {
    require("prometheus-alertmanager");

    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let app = AppHandle::start(c.clone()).await.unwrap();
    let ours = app.addr().await.unwrap();
    let base = format!("http://{ours}");

    let am_port = free_port();
    let am_cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            r#"route:
  receiver: sre
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: sre
    webhook_configs:
      - url: http://{ours}/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"#
        ),
    )
    .unwrap();
    let _am = Peer::spawn(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
    );
    let am = format!("http://127.0.0.1:{am_port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{am}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let now = chrono::Utc::now();
    let starts =
        (now - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let alert = |ends: String| {
        serde_json::json!([{
            "labels": {"alertname": "E2EPodCrashLooping", "severity": "critical", "namespace": "payments", "pod": "api-1"},
            "annotations": {"summary": "api-1 is crash looping"},
            "startsAt": starts,
            "endsAt": ends,
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up"
        }])
    };
    let later =
        (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let resp = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(later))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());

    let ingest_with = |status: &str| {
        records(&c)
            .into_iter()
            .filter(|r| {
                r.header("ce_type") == Some("IngestAlertRequested") && r.value["status"] == status
            })
            .count()
    };
    eventually("the firing intent", || ingest_with("firing") == 1).await;
    let recs = records(&c);
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(recs[0].value["labels"].clone()).unwrap();
    // AlertManager's own fingerprint, taken from its payload, matches Prometheus' algorithm.
    let fp = sre_actors::ingest::fingerprint::fingerprint_hex(&labels);
    assert_eq!(recs[0].key, format!("alert:{fp}"));
    assert_eq!(recs[0].value["receiver"], "sre");
    assert_eq!(
        recs[0].value["startsAt"].as_str().unwrap().get(..19),
        Some(&starts[..19])
    );
    assert!(recs
        .iter()
        .any(|r| r.header("ce_type") == Some("CreateIncidentRequested")));

    // Re-notifications (repeat_interval 1s) arrive and are answered 200, publishing nothing.
    let mut seen = 0;
    for _ in 0..300 {
        seen = count_200(&base).await;
        if seen >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen >= 3, "AlertManager re-notified: {seen} deliveries");
    assert_eq!(ingest_with("firing"), 1);

    // Resolve it: the resolved notification is a new intent.
    let resolved_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let resp = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(resolved_at))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    eventually("the resolved intent", || ingest_with("resolved") == 1).await;
    assert_eq!(ingest_with("firing"), 1);
    app.shutdown().await;
}
