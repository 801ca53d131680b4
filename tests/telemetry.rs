//! OpenTelemetry export, end to end: the binary with `telemetry.otlp_endpoint` set sends the
//! spans of its outbound calls (here an ArgoCD poll) over OTLP/HTTP (protobuf) to a collector
//! endpoint, named after `telemetry.service_name` and carrying the call's provider and
//! correlation id; a webhook request's span continues the sender's trace and the intents of the
//! request, of an ArgoCD poll and of a Kubernetes watch batch carry their span's `traceparent`. The collector is a recording
//! HTTP server (no OpenTelemetry collector can run here); the body is checked for the strings
//! and ids protobuf stores verbatim.

mod common;

use std::time::Duration;

use common::process::Running;
use sre_test_support::argocd::{app, FakeArgoCd};
use sre_test_support::kube::{self as fk, FakeKube};
use sre_test_support::{FakeUpstream, Reply};

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_outbound_calls_reach_the_otlp_endpoint() {
    let collector = FakeUpstream::builder()
        .otherwise(Reply::status(200))
        .start()
        .await;
    let argocd = FakeArgoCd::start("tok", vec![app("api", "dev", "Healthy", "Synced")]).await;
    let cluster = FakeKube::start().await;
    cluster.apply(fk::pod("ameide-core", "api"));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("dev.kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig()).unwrap();
    let secret = dir.path().join("secrets/platform/argocd-token");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("token"), "tok").unwrap();
    let config = dir.path().join("sre.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 0s\n\
             intents:\n  embedded:\n    data_dir: {data}\n\
             secrets:\n  dir: {secrets}\n\
             observability_integration:\n  enabled: true\n  alertmanager:\n    auth: {{type: none}}\n\
             argocd_integration:\n  enabled: true\n  poll_interval: 1s\n  argocd_server: {argocd}\n  token_secret_ref: platform/argocd-token\n  environments: [dev]\n\
             kubernetes_integration:\n  enabled: true\n  clusters:\n    - name: dev\n      kubeconfig_path: {kubeconfig}\n  watch:\n    namespaces: [ameide-core]\n    resource_types: [pods]\n\
             telemetry:\n  otlp_endpoint: {otlp}/\n  service_name: sre-integration-under-test\n",
            data = dir.path().join("data").display(),
            secrets = dir.path().join("secrets").display(),
            argocd = argocd.url(),
            kubeconfig = kubeconfig.display(),
            otlp = collector.url(),
        ),
    )
    .unwrap();
    let running = tokio::task::spawn_blocking(move || Running::start(&config))
        .await
        .unwrap();

    // The batch exporter sends every few seconds; wait (bounded) for a trace export.
    let mut exported = None;
    for _ in 0..300 {
        exported = collector
            .requests()
            .into_iter()
            .find(|r| r.uri == "/v1/traces" && contains(&r.body, "upstream_call"));
        if exported.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let export = exported.expect("spans exported to /v1/traces within 30 s");
    assert_eq!(export.method, "POST");
    assert_eq!(
        export.header("content-type"),
        Some("application/x-protobuf")
    );
    assert!(
        contains(&export.body, "sre-integration-under-test"),
        "service.name"
    );
    assert!(
        contains(&export.body, "argocd:dev"),
        "the provider attribute"
    );
    assert!(
        contains(&export.body, "correlation_id"),
        "the correlation id attribute"
    );
    assert!(argocd.requests() > 0);

    // A webhook request that carries a trace: its intent continues it from the request's span.
    let base = format!("http://{}", running.addr);
    let resp = common::client()
        .post(format!("{base}/webhooks/alertmanager"))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .body(common::firing(&[("Traced", "warning")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let log = dir.path().join("data/sre.domain.intents.v1");
    // The log has no notification: read it (bounded) until the watcher's intent is there too.
    let mut records = Vec::new();
    for _ in 0..300 {
        records = sre_sink::embedded::read_all(&log).unwrap();
        let from = |s: &str| {
            records
                .iter()
                .any(|r| r.header("ce_source").is_some_and(|x| x.ends_with(s)))
        };
        if from("/alertmanager") && from("/argocd") && from("/kubernetes/dev") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let header = |source: &str| {
        records
            .iter()
            .find(|r| r.header("ce_source").is_some_and(|s| s.ends_with(source)))
            .and_then(|r| r.header("traceparent"))
            .unwrap_or_else(|| panic!("an intent from {source} with a traceparent in {records:?}"))
            .to_owned()
    };
    let alert = header("/alertmanager");
    let parts: Vec<&str> = alert.split('-').collect();
    assert_eq!(parts[1], TRACE, "the sender's trace goes on");
    assert_ne!(parts[2], "00f067aa0ba902b7", "from the webhook's own span");
    // The poll's intents carry the poll's span, a watch batch's intents the batch's.
    let poll = header("/argocd");
    let poll_trace = poll.split('-').nth(1).unwrap().to_owned();
    let watch = header("/kubernetes/dev");
    let watch_trace = watch.split('-').nth(1).unwrap().to_owned();

    // Both spans reach the collector, under those trace ids (protobuf keeps ids as raw bytes).
    let bytes = |hex: &str| -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    };
    let has = |body: &[u8], needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let (webhook_trace, poll_trace, watch_trace) =
        (bytes(TRACE), bytes(&poll_trace), bytes(&watch_trace));
    let mut found = (false, false, false);
    for _ in 0..300 {
        for r in collector.requests() {
            if r.uri != "/v1/traces" {
                continue;
            }
            found.0 |= contains(&r.body, "webhook") && has(&r.body, &webhook_trace);
            found.1 |= contains(&r.body, "argocd_poll") && has(&r.body, &poll_trace);
            found.2 |= contains(&r.body, "k8s_watch_batch") && has(&r.body, &watch_trace);
        }
        if found == (true, true, true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        found,
        (true, true, true),
        "(webhook span, poll span, watch batch span) exported"
    );
    drop(running);
}

/// The trace a webhook sender is in.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
