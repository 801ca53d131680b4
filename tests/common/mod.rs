//! Helpers shared by the end-to-end tests: a configuration rooted in a temporary directory
//! (data, secrets), HTTP helpers, and the embedded log's contents.
#![allow(dead_code)]

pub mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sre_config::{Config, WebhookAuth};
use sre_sink::stored::StoredRecord;

/// The webhook's bearer token in these tests.
pub const TOKEN: &str = "s3cret-token";

/// A shared AlertManager fixture (a copy of shared/fixtures/alertmanager/...).
pub const FIXTURE: &str =
    include_str!("../../actors/tests/fixtures/alertmanager_webhook_v4_resolved_k8s.json");

/// Tools enabled with two tokens: `srecoder` (agent, the secret `platform/agent` holding
/// `agent`) and `oncall` (approver, `platform/approver` holding `approver`).
pub fn with_tool_tokens(c: &mut Config, agent: &str, approver: &str) {
    c.tools.enabled = true;
    for (name, token) in [("agent", agent), ("approver", approver)] {
        let p = c.secrets.dir.join("platform").join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("token"), format!("{token}\n")).unwrap();
    }
    c.tools.tokens = vec![
        sre_config::ToolToken {
            name: "srecoder".into(),
            role: sre_config::ToolRole::Agent,
            secret_ref: "platform/agent".parse().unwrap(),
        },
        sre_config::ToolToken {
            name: "oncall".into(),
            role: sre_config::ToolRole::Approver,
            secret_ref: "platform/approver".parse().unwrap(),
        },
    ];
}

/// The embedded configuration, listening on a free port, with data and secrets under `dir`
/// and the webhook requiring `Authorization: Bearer TOKEN`.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::embedded();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.shutdown_grace = Duration::ZERO;
    c.intents.embedded.data_dir = dir.join("data");
    c.secrets.dir = dir.join("secrets");
    c.supervision.restart.backoff_min = Duration::from_millis(10);
    c.supervision.restart.backoff_max = Duration::from_millis(50);
    let secret = c.secrets.dir.join("platform/alertmanager-webhook");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("token"), format!("{TOKEN}\n")).unwrap();
    let am = c
        .observability_integration
        .as_mut()
        .unwrap()
        .alertmanager
        .as_mut()
        .unwrap();
    am.auth = WebhookAuth::Bearer {
        secret_ref: "platform/alertmanager-webhook".parse().unwrap(),
    };
    c
}

/// The log directory of `config`.
pub fn log_dir(c: &Config) -> PathBuf {
    c.intents.embedded.data_dir.join(&c.intents.topic)
}

/// Every record in the log.
pub fn records(c: &Config) -> Vec<StoredRecord> {
    sre_sink::embedded::read_all(&log_dir(c)).unwrap()
}

/// POSTs `body` to the webhook with the test token.
pub async fn post(base: &str, body: &str) -> (u16, serde_json::Value) {
    post_with(base, body, Some(TOKEN), "application/json").await
}

/// POSTs with explicit credentials and content type.
pub async fn post_with(
    base: &str,
    body: &str,
    token: Option<&str>,
    content_type: &str,
) -> (u16, serde_json::Value) {
    let mut req = client()
        .post(format!("{base}/webhooks/alertmanager"))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Starts the program with `c`; returns it and its base URL.
pub async fn start(c: &Config) -> (sre_integration::app::AppHandle, String) {
    let app = sre_integration::app::AppHandle::start(c.clone())
        .await
        .unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    (app, base)
}

/// `GET url` as text.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A shared HTTP client (rustls provider installed).
pub fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            sre_actors::providers::client::install_crypto_provider();
            reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap()
        })
        .clone()
}

/// A firing webhook payload with one alert per `(alertname, severity)`.
pub fn firing(alerts: &[(&str, &str)]) -> String {
    let alerts: Vec<_> = alerts
        .iter()
        .map(|(name, sev)| {
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": name, "severity": sev, "namespace": "payments"},
                "annotations": {"summary": format!("{name} is firing")},
                "startsAt": "2026-11-28T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph"
            })
        })
        .collect();
    serde_json::json!({
        "version": "4", "groupKey": "{}:{alertname=\"x\"}", "status": "firing", "receiver": "sre",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0, "alerts": alerts
    })
    .to_string()
}
