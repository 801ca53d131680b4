//! The Kubernetes integration wired into the program: three clusters (two by kubeconfig file,
//! one by a kubeconfig Secret) watched through their circuits, intents in the embedded log
//! with the contracted keys; one cluster's API server killed: its watcher fails and restarts
//! alone while the other clusters keep emitting and the webhook keeps answering.

mod common;

use std::time::Duration;

use serde_json::json;
use sre_config::{ClusterConfig, KubernetesIntegration, ResourceType, WatchConfig};
use sre_integration::app::{CLUSTERS, INGEST};
use sre_test_support::kube::{self as fk, FakeKube};

const NS: &str = "ameide-core";

/// Waits (real time, bounded) until `done` holds for the log's records.
async fn until_logged(
    c: &sre_config::Config,
    what: &str,
    done: impl Fn(&[sre_sink::stored::StoredRecord]) -> bool,
) {
    for _ in 0..600 {
        if done(&common::records(c)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not logged within 60 s: {what}");
}

fn keys(records: &[sre_sink::stored::StoredRecord]) -> Vec<String> {
    records.iter().map(|r| r.key.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clusters_one_dies_and_only_its_watcher_notices() {
    let dev = FakeKube::start().await;
    let staging = FakeKube::start().await;
    let production = FakeKube::start().await;
    for f in [&dev, &staging, &production] {
        f.apply(fk::pod(NS, "api"));
        f.apply(fk::pod("kube-system", "coredns"));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(dir.path());
    let kubeconfig = |name: &str, fake: &FakeKube| {
        let path = dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, fake.kubeconfig()).unwrap();
        path
    };
    let staging_secret = c.secrets.dir.join("platform/staging-kubeconfig");
    std::fs::create_dir_all(&staging_secret).unwrap();
    std::fs::write(staging_secret.join("kubeconfig"), staging.kubeconfig()).unwrap();
    let cluster = |name: &str| ClusterConfig {
        name: name.into(),
        kubeconfig_secret_ref: None,
        kubeconfig_path: None,
        in_cluster: false,
    };
    c.kubernetes_integration = Some(KubernetesIntegration {
        enabled: true,
        clusters: vec![
            ClusterConfig {
                kubeconfig_path: Some(kubeconfig("dev", &dev)),
                ..cluster("dev")
            },
            ClusterConfig {
                kubeconfig_secret_ref: Some("platform/staging-kubeconfig".parse().unwrap()),
                ..cluster("staging")
            },
            ClusterConfig {
                kubeconfig_path: Some(kubeconfig("production", &production)),
                ..cluster("production")
            },
        ],
        watch: WatchConfig {
            namespaces: vec!["ameide-*".into()],
            resource_types: vec![ResourceType::Pods, ResourceType::Events],
            event_max_age: Duration::from_secs(300),
        },
        poll_interval: Duration::from_secs(60),
        log_tail_lines: 100,
    });
    let (app, base) = common::start(&c).await;
    let tree = app.observer().snapshot();
    for name in ["dev", "staging", "production"] {
        assert!(tree
            .iter()
            .any(|s| s.supervisor == CLUSTERS && s.name == name));
        assert!(tree
            .iter()
            .any(|s| s.supervisor == "providers" && s.name == format!("k8s:{name}")));
    }

    // Baselines from every cluster, only for the watched namespace.
    until_logged(&c, "three baselines", |r| {
        let k = keys(r);
        ["dev", "staging", "production"]
            .iter()
            .all(|n| k.contains(&format!("health:{n}/{NS}/Pod/api")))
    })
    .await;
    assert!(!keys(&common::records(&c))
        .iter()
        .any(|k| k.contains("kube-system")));
    let baseline = common::records(&c)
        .into_iter()
        .find(|r| r.key == format!("health:staging/{NS}/Pod/api"))
        .unwrap();
    assert_eq!(
        baseline.header("ce_source"),
        Some("sre-integration/kubernetes/staging")
    );

    // Staging's API server dies.
    staging.kill();
    for i in 0..50 {
        let body = common::firing(&[(&format!("Alert{i}"), "warning")]);
        let (status, _) = common::post(&base, &body).await;
        assert_eq!(status, 200, "the webhook answers while a cluster is down");
    }
    tokio::time::timeout(
        Duration::from_secs(60),
        app.observer().wait_until(|children| {
            children
                .iter()
                .any(|s| s.supervisor == CLUSTERS && s.name == "staging" && s.restarts >= 1)
        }),
    )
    .await
    .expect("staging's watcher failed and was restarted");

    // The others still emit: a Warning event on dev, a crash on production.
    dev.apply(fk::warning_event(
        NS,
        "api.1",
        "Pod",
        "api",
        "BackOff",
        "Back-off restarting failed container",
        3,
    ));
    let mut crashed = fk::pod(NS, "api");
    crashed["status"]["phase"] = json!("Failed");
    crashed["status"]["reason"] = json!("Evicted");
    production.apply(crashed);
    until_logged(&c, "dev's warning and production's failure", |r| {
        let warning = r.iter().any(|x| {
            x.header("ce_type") == Some("IngestAlertRequested")
                && x.header("ce_source") == Some("sre-integration/kubernetes/dev")
        });
        let failing = r.iter().any(|x| {
            x.key == format!("health:production/{NS}/Pod/api")
                && x.value["current"]["state"] == "Failing"
        });
        warning && failing
    })
    .await;

    for name in ["dev", "production"] {
        let s = app.observer().child(CLUSTERS, name).unwrap();
        assert_eq!(s.restarts, 0, "{name} never restarted");
    }
    for s in app
        .observer()
        .snapshot()
        .iter()
        .filter(|s| s.supervisor == INGEST)
    {
        assert_eq!(s.restarts, 0, "{} untouched", s.name);
    }
    // The watcher counts a transition once the sink confirmed it, a moment after the record is
    // in the log: read the metrics until they caught up (bounded).
    let needles = [
        r#"sre_k8s_watch_events_total{cluster="dev",resource="pods",event="listed"}"#,
        r#"sre_k8s_relists_total{cluster="production",resource="pods",reason="initial"} 1"#,
        r#"sre_k8s_objects{cluster="dev",resource="pods"} 1"#,
        r#"sre_k8s_health_transitions_total{cluster="production",kind="Pod",to="Failing"} 1"#,
        r#"sre_supervisor_child_restarts_total{supervisor="clusters",child="staging"}"#,
        r#"sre_dedup_decisions_total{source="kubernetes",decision="new"} 5"#,
    ];
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = common::get_text(&format!("{base}/metrics")).await;
        if needles.iter().all(|n| metrics.contains(n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for needle in needles {
        assert!(metrics.contains(needle), "{needle}\n{metrics}");
    }
    let ready = common::client()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a dead cluster does not make the pod unready"
    );
    assert!(ready.text().await.unwrap().contains("k8s:staging"));

    // The read API reaches the live clusters and reports the dead one as unavailable.
    let reader = app.kubernetes().unwrap();
    let pod = reader
        .get(
            "dev",
            &sre_actors::kubernetes::read::Kind::Pods,
            Some(NS),
            "api",
        )
        .await
        .unwrap();
    assert_eq!(pod["metadata"]["name"], "api");
    assert!(reader
        .get(
            "staging",
            &sre_actors::kubernetes::read::Kind::Pods,
            Some(NS),
            "api"
        )
        .await
        .is_err());
    app.shutdown().await;
}
