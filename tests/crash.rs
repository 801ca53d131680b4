//! SIGKILL mid-load: every alert that got a 200 is in the log after the restart, and replaying
//! them publishes nothing new. The process is killed for real; the restart recovers the log
//! (cutting a torn last line) and rebuilds the dedup window from it.

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
