//! The ArgoCD integration wired into the program: with `argocd_integration` enabled, each
//! environment's poller reaches a fake ArgoCD through its circuit and its intents land in the
//! embedded log with the contracted keys, and the tree shows the `argocd` supervisor.

mod common;

use std::time::Duration;

use sre_config::{ArgoCdIntegration, ArgoCdMode, EnvironmentEntry};
use sre_integration::app::{AppHandle, ARGOCD};
use sre_test_support::argocd::{app, FakeArgoCd};

#[tokio::test(start_paused = true)]
async fn pollers_publish_fleet_and_health_intents_to_the_sink() {
    let fake = FakeArgoCd::start(
        "tok",
        vec![
            app("api", "dev", "Healthy", "Synced"),
            app("db", "staging", "Degraded", "Synced"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(dir.path());
    let secret = c.secrets.dir.join("platform/argocd-token");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("token"), "tok").unwrap();
    c.argocd_integration = Some(ArgoCdIntegration {
        enabled: true,
        mode: ArgoCdMode::Polling,
        poll_interval: Duration::from_secs(30),
        argocd_server: Some(fake.url()),
        token_secret_ref: Some("platform/argocd-token".parse().unwrap()),
        environments: vec![
            EnvironmentEntry::Name("dev".into()),
            EnvironmentEntry::Name("staging".into()),
        ],
    });
    let app_handle = AppHandle::start(c.clone()).await.unwrap();
    let tree = app_handle.observer().snapshot();
    assert!(tree
        .iter()
        .any(|s| s.supervisor == ARGOCD && s.name == "dev"));
    assert!(tree
        .iter()
        .any(|s| s.supervisor == "providers" && s.name == "argocd:staging"));

    // The embedded sink confirms on its own thread; wait (virtual time) until both fleets are
    // in the log.
    let mut fleets = Vec::new();
    for _ in 0..10_000 {
        fleets = common::records(&c)
            .into_iter()
            .filter(|r| r.header("ce_type") == Some("RecordFleetStateRequested"))
            .map(|r| r.key)
            .collect();
        if fleets.contains(&"fleet:dev".to_string())
            && fleets.contains(&"fleet:staging".to_string())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        fleets.contains(&"fleet:dev".to_string()) && fleets.contains(&"fleet:staging".to_string()),
        "{fleets:?}"
    );
    let health: Vec<_> = common::records(&c)
        .into_iter()
        .filter(|r| r.header("ce_type") == Some("RecordHealthCheckRequested"))
        .map(|r| {
            (
                r.key.clone(),
                r.header("idempotency_key").unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        health.contains(&(
            "argocd:dev/api".into(),
            "argocd:dev:api:Healthy:Synced:3f2a9c1".into()
        )),
        "{health:?}"
    );
    assert!(
        health.contains(&(
            "argocd:staging/db".into(),
            "argocd:staging:db:Degraded:Synced:3f2a9c1".into()
        )),
        "{health:?}"
    );
    app_handle.shutdown().await;
}
