//! SIGKILL mid-load: every alert that got a 200 is in the log after the restart, and replaying
//! them publishes nothing new. The process is killed for real; the restart recovers the log
//! (cutting a torn last line) and rebuilds the dedup window from it.
//!
//! Crash garbage: a log ending in zero bytes (a power loss) starts cleanly, with the dedup
//! window rebuilt from the records before it. A killed publisher's writer and its successor
//! never write to the log at the same time.

mod common;

use std::collections::BTreeMap;

use common::firing;
use common::process::Running;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_alert_survives_sigkill_and_is_not_re_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  listen: 127.0.0.1:0\nintents:\n  embedded:\n    data_dir: {}\nobservability_integration:\n  enabled: true\n  alertmanager: {{}}\n",
            data.display()
        ),
    )
    .unwrap();
    let log = data.join("sre.domain.intents.v1");
    let bodies: Vec<String> = (0..600)
        .map(|i| firing(&[(&format!("Crash{i:04}"), "warning")]))
        .collect();

    let mut first = Running::start(&cfg);
    let base = format!("http://{}", first.addr);
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut load = tokio::task::JoinSet::new();
    for (i, body) in bodies.iter().enumerate() {
        let (base, body, acked) = (base.clone(), body.clone(), acked_tx.clone());
        load.spawn(async move {
            let resp = common::client()
                .post(format!("{base}/webhooks/alertmanager"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            if let Ok(r) = resp {
                if r.status() == 200 && r.text().await.is_ok() {
                    let _ = acked.send(i);
                }
            }
        });
    }
    drop(acked_tx);
    // Kill it once a good share of the load has been acknowledged, while the rest is in flight.
    let mut acked = Vec::new();
    while acked.len() < 150 {
        acked.push(acked_rx.recv().await.expect("acknowledgements arrive"));
    }
    first.signal("-KILL");
    let _ = first.child.wait();
    while load.join_next().await.is_some() {}
    while let Ok(i) = acked_rx.try_recv() {
        acked.push(i);
    }
    assert!(
        acked.len() < bodies.len(),
        "the kill happened mid-load ({} acked)",
        acked.len()
    );

    let second = Running::start(&cfg);
    let base = format!("http://{}", second.addr);
    let stored = sre_sink::embedded::read_all(&log).unwrap();
    let keys: std::collections::HashSet<String> = stored.iter().map(|r| r.key.clone()).collect();
    for i in &acked {
        let labels: BTreeMap<String, String> = [
            ("alertname".to_string(), format!("Crash{i:04}")),
            ("severity".to_string(), "warning".to_string()),
            ("namespace".to_string(), "payments".to_string()),
        ]
        .into_iter()
        .collect();
        let key = format!(
            "alert:{}",
            sre_actors::ingest::fingerprint::fingerprint_hex(&labels)
        );
        assert!(keys.contains(&key), "acknowledged alert {i} lost");
    }
    // Replaying what was acknowledged publishes nothing new.
    let before = stored.len();
    for i in &acked {
        let (code, body) = post_no_auth(&base, &bodies[*i]).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["published"], 0, "alert {i} re-emitted: {body}");
    }
    assert_eq!(sre_sink::embedded::read_all(&log).unwrap().len(), before);
}

async fn post_no_auth(base: &str, body: &str) -> (u16, serde_json::Value) {
    common::post_with(base, body, None, "application/json").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_filled_tail_is_cut_and_the_dedup_window_still_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::config(dir.path());
    let alert = firing(&[("PowerLoss", "critical")]);
    let (app, base) = common::start(&c).await;
    let (code, body) = common::post(&base, &alert).await;
    assert_eq!((code, &body["published"]), (200, &1.into()), "{body}");
    app.shutdown().await;

    // A power loss leaves zero-filled blocks: a run of NULs, a newline, more NULs.
    let (_, seg) = sre_sink::embedded::segments(&common::log_dir(&c))
        .unwrap()
        .pop()
        .unwrap();
    let mut garbage = vec![0u8; 4096];
    garbage.push(b'\n');
    garbage.extend_from_slice(&[0u8; 4096]);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&garbage).unwrap();
    }

    let (app, base) = common::start(&c).await;
    let ready = common::get_text(&format!("{base}/readyz")).await;
    assert!(ready.contains("\"ready\":true"), "{ready}");
    // The window was rebuilt from the record before the garbage: a replay is a duplicate.
    let (code, body) = common::post(&base, &alert).await;
    assert_eq!((code, &body["published"]), (200, &0.into()), "{body}");
    let (code, body) = common::post(&base, &firing(&[("AfterPowerLoss", "critical")])).await;
    assert_eq!((code, &body["published"]), (200, &1.into()), "{body}");
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains(&format!(
            "sre_intent_log_recovered_bytes_total {}",
            garbage.len()
        )),
        "{metrics}"
    );
    app.shutdown().await;
    let offsets: Vec<u64> = common::records(&c).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publisher_and_its_successor_never_write_the_log_together() {
    use sre_actors::ingest::metrics::IngestMetrics;
    use sre_actors::ingest::publisher::{IntentPublisher, PublisherArgs, PublisherMsg};
    use sre_sink::embedded::{EmbeddedSink, LogOptions};

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let args = PublisherArgs {
        sink: std::sync::Arc::new(EmbeddedSink::new(log.clone(), LogOptions::default())),
        slot: Default::default(),
        metrics: IngestMetrics::new(&mut Default::default()),
        readiness: sre_supervision::Readiness::new("ingest"),
    };
    let record = |n: u32| {
        sre_intents::IntentRecord::new(
            sre_intents::record::RecordMeta {
                topic: "sre.domain.intents.v1",
                kind: sre_intents::IntentType::IngestAlertRequested,
                source: "test",
                key: format!("alert:{n:016x}"),
                idempotency_key: format!("am:{n:016x}:firing:t"),
                correlation_id: "c",
                traceparent: None,
                time: "2026-01-01T00:00:00Z",
            },
            &serde_json::json!({"n": n, "pad": "x".repeat(512)}),
        )
        .unwrap()
    };
    let (mut confirmations, mut confirmed) = (Vec::new(), Vec::new());
    let mut n = 0;
    for _round in 0..3 {
        let (publisher, handle) = ractor::Actor::spawn(None, IntentPublisher, args.clone())
            .await
            .unwrap();
        let (tx, first) = tokio::sync::oneshot::channel();
        publisher
            .cast(PublisherMsg::Publish(vec![record(n), record(n + 1)], tx))
            .unwrap();
        let first_n = n;
        n += 2;
        for _ in 0..2000 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            publisher
                .cast(PublisherMsg::Publish(vec![record(n), record(n + 1)], tx))
                .unwrap();
            confirmations.push((n, rx));
            n += 2;
        }
        // Kill it while its writer works through the queue; the successor starts at once.
        first.await.unwrap().unwrap();
        confirmed.push(first_n);
        publisher.kill();
        handle.await.unwrap();
    }
    for (n, rx) in confirmations {
        if let Ok(Ok(())) = rx.await {
            confirmed.push(n);
        }
    }
    // The killed actor's state (and so its writer and the log's lock) is gone.
    let quick = LogOptions {
        lock_wait: std::time::Duration::from_secs(30),
        ..LogOptions::default()
    };
    drop(sre_sink::embedded::Log::open(&log, quick).expect("the lock was released"));

    let scan = sre_sink::embedded::read_since(&log, 0).unwrap();
    assert_eq!(scan.skipped_lines, 0, "no interleaved writes");
    let offsets: Vec<u64> = scan.records.iter().map(|r| r.offset).collect();
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "offsets unique and contiguous: {:?}",
        offsets.windows(2).find(|w| w[1] != w[0] + 1)
    );
    let keys: std::collections::HashSet<&str> =
        scan.records.iter().map(|r| r.key.as_str()).collect();
    for n in confirmed {
        assert!(
            keys.contains(format!("alert:{n:016x}").as_str()),
            "{n} lost"
        );
    }
}
