//! The AlertManager webhook, in-process: what it publishes, what it refuses, exactly-once under
//! concurrency, 503 and no window entry when the sink fails, and no re-emit after a restart.
//! Synchronisation is on the program's own events (supervision changes), never on sleeps.

mod common;

use common::{config, firing, post, post_with, records, start, FIXTURE, TOKEN};
use sre_supervision::ChildState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_becomes_one_intent_with_the_contracted_fields() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let (app, base) = start(&c).await;

    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["published"], 1);

    let recs = records(&c);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.topic, "sre.domain.intents.v1");
    assert_eq!(r.key, "alert:fbab788ec4c1018b");
    assert_eq!(r.header("ce_specversion"), Some("1.0"));
    assert_eq!(r.header("ce_type"), Some("IngestAlertRequested"));
    assert_eq!(r.header("ce_subject"), Some("alert:fbab788ec4c1018b"));
    assert_eq!(r.header("ce_source"), Some("sre-integration/alertmanager"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let key = "am:fbab788ec4c1018b:resolved:2022-07-29T11:13:27.3Z";
    assert_eq!(r.header("idempotency_key"), Some(key));
    assert_eq!(r.header("ce_id").unwrap(), sre_intents::ce_id(key));
    assert!(r.header("correlation_id").is_some());
    let v = &r.value;
    assert_eq!(v["fingerprint"], "fbab788ec4c1018b");
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["severity"], "medium");
    assert_eq!(v["receiver"], "web\\.hook");
    assert_eq!(v["groupKey"], "{}:{alertname=\"Deployment\"}");
    assert_eq!(v["externalURL"], "http://localhost:9093");
    assert_eq!(v["startsAt"], "2022-07-29T11:13:27.3Z");
    assert_eq!(v["endsAt"], "2022-07-29T11:17:27.3Z");
    assert!(v["generatorURL"]
        .as_str()
        .unwrap()
        .starts_with("/metrics/viewer/graph"));
    assert_eq!(v["labels"]["deployment"], "eric-log-transformer");
    assert_eq!(
        v["annotations"]["summary"],
        "Kubernetes Deployment Replicas Mismatch"
    );

    // The same notification again: 200, nothing new.
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!((code, body["duplicates"].as_u64()), (200, Some(1)));
    assert_eq!(records(&c).len(), 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_fingerprint_is_computed_and_severe_firing_alerts_request_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let (app, base) = start(&c).await;
    let (code, body) = post(
        &base,
        &firing(&[("DiskFull", "critical"), ("SlowQueries", "warning")]),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let recs = records(&c);
    let kinds: Vec<_> = recs.iter().map(|r| r.header("ce_type").unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "IngestAlertRequested",
            "CreateIncidentRequested",
            "IngestAlertRequested"
        ]
    );
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(recs[0].value["labels"].clone()).unwrap();
    let fp = sre_actors::ingest::fingerprint::fingerprint_hex(&labels);
    assert_eq!(recs[0].key, format!("alert:{fp}"));
    assert_eq!(recs[1].key, recs[0].key);
    assert_eq!(recs[1].value["severity"], "critical");
    assert_eq!(recs[1].value["title"], "DiskFull: DiskFull is firing");
    assert_eq!(
        recs[1].header("idempotency_key").unwrap(),
        format!("am-incident:{fp}:2026-11-28T10:00:00Z")
    );
    assert_eq!(recs[2].value["severity"], "medium");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_status_and_reason_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.observability_integration
        .as_mut()
        .unwrap()
        .alertmanager
        .as_mut()
        .unwrap()
        .max_body_bytes = 64 * 1024;
    let (app, base) = start(&c).await;

    let (code, body) = post_with(&base, FIXTURE, None, "application/json").await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("missing credentials"))
    );
    let (code, body) = post_with(&base, FIXTURE, Some("wrong"), "application/json").await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid credentials"))
    );
    let (code, body) = post_with(&base, FIXTURE, Some(TOKEN), "text/plain").await;
    assert_eq!(code, 415, "{body}");
    let huge = format!(
        "{{\"version\":\"4\",\"pad\":\"{}\",\"alerts\":[]}}",
        "x".repeat(100 * 1024)
    );
    let (code, body) = post(&base, &huge).await;
    assert_eq!(code, 413, "{body}");
    let (code, body) = post(&base, "{\"version\":\"4\",").await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("EOF"), "{body}");

    let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    v["version"] = "3".into();
    let (code, body) = post(&base, &v.to_string()).await;
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("version")),
        "{body}"
    );
    let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    v["alerts"][0]["status"] = "pending".into();
    let (code, body) = post(&base, &v.to_string()).await;
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("alerts[0].status")),
        "{body}"
    );
    let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    v["alerts"][0]["labels"]["severity"] = serde_json::json!(["a"]);
    let (code, body) = post(&base, &v.to_string()).await;
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("alerts[0].labels.severity")),
        "{body}"
    );

    assert!(records(&c).is_empty(), "nothing published for bad input");
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    for (code, n) in [(401, 2), (415, 1), (413, 1), (400, 4)] {
        let line =
            format!("sre_webhook_requests_total{{webhook=\"alertmanager\",code=\"{code}\"}} {n}");
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_posts_of_one_alert_publish_exactly_one_intent() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let (app, base) = start(&c).await;
    let body = firing(&[("Once", "warning")]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (base, body) = (base.clone(), body.clone());
        tasks.spawn(async move { post(&base, &body).await });
    }
    let mut published = 0;
    while let Some(r) = tasks.join_next().await {
        let (code, body) = r.unwrap();
        assert_eq!(code, 200, "{body}");
        published += body["published"].as_u64().unwrap();
    }
    assert_eq!(published, 1);
    assert_eq!(records(&c).len(), 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_answers_503_records_nothing_and_the_retry_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    // The active segment is /dev/full: every write fails with ENOSPC, a real I/O error.
    let seg = common::log_dir(&c).join(format!("{:020}.jsonl", 0));
    std::fs::create_dir_all(seg.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/full", &seg).unwrap();
    let (app, base) = start(&c).await;

    let resp = reqwest::Client::new()
        .post(format!("{base}/webhooks/alertmanager"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(FIXTURE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("No space left"),
        "{body}"
    );

    // The publisher failed and is being restarted.
    app.observer()
        .wait_until(|t| t.iter().any(|c| c.name == "publisher" && c.restarts >= 1))
        .await;
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains(r#"sre_dedup_window_entries{source="all"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sre_intent_publish_failures_total{sink="embedded",reason="io"} 1"#),
        "{metrics}"
    );

    // The disk is fixed; the publisher's next restart opens a real segment.
    std::fs::remove_file(&seg).unwrap();
    app.observer()
        .wait_until(|t| {
            t.iter()
                .any(|c| c.name == "publisher" && c.state == ChildState::Running)
        })
        .await;
    loop {
        let (code, body) = post(&base, FIXTURE).await;
        if code == 200 {
            assert_eq!(body["published"], 1, "the retry is new, not a duplicate");
            break;
        }
        // Still the old incarnation: wait for the next start event.
        assert_eq!(code, 503, "{body}");
        let restarts = app
            .observer()
            .child("ingest", "publisher")
            .unwrap()
            .restarts;
        app.observer()
            .wait_until(|t| {
                t.iter().any(|c| {
                    c.name == "publisher" && c.restarts > restarts && c.state == ChildState::Running
                })
            })
            .await;
    }
    assert_eq!(records(&c).len(), 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let (app, base) = start(&c).await;
    assert_eq!(post(&base, FIXTURE).await.1["published"], 1);
    app.shutdown().await;

    let (app, base) = start(&c).await;
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!(
        (code, body["duplicates"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(records(&c).len(), 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_webhook_secret_refuses_rather_than_letting_anyone_in() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    std::fs::remove_file(c.secrets.dir.join("platform/alertmanager-webhook/token")).unwrap();
    let (app, base) = start(&c).await;
    let (code, body) = post(&base, FIXTURE).await;
    assert_eq!(code, 503);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("platform/alertmanager-webhook has no key \"token\""),
        "{body}"
    );
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(records(&c).is_empty());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_before_a_byte_of_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let (app, _) = start(&c).await;
    let addr = app.addr().await.unwrap();
    // A 3 MiB body (under max_body_bytes) announced, 1 KiB of it sent, no credentials: the
    // answer comes without the rest (the server would otherwise wait for it until
    // server.request_timeout, 30s).
    for auth in ["", "Authorization: Bearer wrong\r\n"] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n",
            3 * 1024 * 1024
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&[b' '; 1024]).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("answered without reading the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("credentials"), "{answer}");
    }
    assert!(records(&c).is_empty());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_alerts_than_max_alerts_get_a_clear_413() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.observability_integration
        .as_mut()
        .unwrap()
        .alertmanager
        .as_mut()
        .unwrap()
        .max_alerts = 2;
    let (app, base) = start(&c).await;
    let (code, body) = post(
        &base,
        &firing(&[("A", "warning"), ("B", "warning"), ("C", "warning")]),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    assert_eq!(
        body["error"],
        "3 alerts in one notification; at most 2 are accepted (set max_alerts in AlertManager's webhook_configs)"
    );
    assert_eq!(body["field"], "alerts");
    assert!(records(&c).is_empty());
    let (code, body) = post(&base, &firing(&[("A", "warning"), ("B", "warning")])).await;
    assert_eq!((code, body["published"].as_u64()), (200, Some(2)), "{body}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_window_answers_503_and_evicts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    let am = c
        .observability_integration
        .as_mut()
        .and_then(|o| o.alertmanager.as_mut())
        .unwrap();
    am.idempotency.max_entries = 1000;
    am.auto_create_incident.enabled = false;
    let (app, base) = start(&c).await;
    // 1000 distinct alerts fill the window (10 per request).
    for chunk in 0..100 {
        let names: Vec<String> = (0..10).map(|i| format!("Fill{chunk}x{i}")).collect();
        let alerts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "warning")).collect();
        let (code, body) = post(&base, &firing(&alerts)).await;
        assert_eq!(
            (code, body["published"].as_u64()),
            (200, Some(10)),
            "{body}"
        );
    }
    // One more new alert: refused, so AlertManager retries it later.
    let resp = reqwest::Client::new()
        .post(format!("{base}/webhooks/alertmanager"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(firing(&[("OneTooMany", "warning")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("window is full"),
        "{body}"
    );
    // Nothing was evicted: the first alerts are still duplicates.
    let (code, body) = post(&base, &firing(&[("Fill0x0", "warning")])).await;
    assert_eq!(
        (code, body["duplicates"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(records(&c).len(), 1000);
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    for line in [
        r#"sre_dedup_window_entries{source="all"} 1000"#,
        "sre_dedup_claims_in_flight 0",
        r#"sre_dedup_decisions_total{source="alertmanager",decision="window_full"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    app.shutdown().await;
}
