//! Configuration of sre-integration.
//!
//! One YAML file whose sections are exactly the specification's (`kubernetes_integration`,
//! `argocd_integration`, `observability_integration`, the legacy `alertmanager_integration`,
//! `ticketing_integration`, `paging_integration`) plus the program's own (`server`, `intents`,
//! `facts`, `supervision`, `tools`, `telemetry`, `secrets`).
//!
//! # Layout
//! - [`types`]: value types parsed from strings (secret references, time zones, cron).
//! - [`integrations`]: the spec's sections.
//! - [`runtime`]: the program's own sections.
//! - [`tools`]: `tools.write_policy`, where the Kubernetes write tools may act.
//! - [`secrets`]: the mounted secrets directory and the redacting [`SecretString`].
//! - `parse`: YAML to typed sections, collecting every structural error.
//! - `validate`: the checks across fields, and secret resolution.
//!
//! [`Config::parse`] rejects unknown keys and bad values with the file, the key path and what
//! was expected, and reports all of them in one go.

pub mod error;
pub mod integrations;
mod parse;
pub mod runtime;
pub mod secrets;
pub mod tools;
pub mod types;
mod validate;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

pub use error::{ConfigError, ConfigErrors};
pub use integrations::*;
pub use runtime::*;
pub use secrets::{SecretError, SecretStore, SecretString};
pub use tools::{ClusterWritePolicy, ExecLimits, KindRules, WritePolicyConfig, DANGEROUS_KINDS};
pub use types::{CronSchedule, SecretRef, TimeOfDay, TimeZone};

/// The embedded default configuration (`config/examples/local.yaml`): runs with nothing else
/// installed.
pub const EMBEDDED_LOCAL: &str = include_str!("../examples/local.yaml");

/// The whole document as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Spec §2.
    #[serde(default)]
    pub kubernetes_integration: Option<KubernetesIntegration>,
    /// Spec §3.
    #[serde(default)]
    pub argocd_integration: Option<ArgoCdIntegration>,
    /// Spec §4.
    #[serde(default)]
    pub observability_integration: Option<ObservabilityIntegration>,
    /// Spec §5 (legacy; mapped onto `observability_integration.alertmanager`).
    #[serde(default)]
    pub alertmanager_integration: Option<LegacyAlertmanagerIntegration>,
    /// Spec §6.
    #[serde(default)]
    pub ticketing_integration: Option<TicketingIntegration>,
    /// Spec §7.
    #[serde(default)]
    pub paging_integration: Option<PagingIntegration>,
    /// HTTP listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// Intent sink.
    #[serde(default)]
    pub intents: IntentsConfig,
    /// Facts consumer.
    #[serde(default)]
    pub facts: FactsConfig,
    /// Restart policy, circuits, outbound retries.
    #[serde(default)]
    pub supervision: SupervisionConfig,
    /// Agent tools.
    #[serde(default)]
    pub tools: ToolsConfig,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Mounted secrets.
    #[serde(default)]
    pub secrets: SecretsConfig,
}

/// An upstream that gets its own circuit: `jira`, `github`, `pagerduty`, `opsgenie`,
/// `prometheus`, `loki`, `tempo`, `grafana`, `argocd:<env>`, `k8s:<cluster>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// The circuit's name, used as the `provider` metric label.
    pub name: String,
    /// Base URL when the configuration gives one.
    pub base_url: Option<Url>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// An ArgoCD environment with everything resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgoEnvironment {
    /// Environment name (`dev`).
    pub name: String,
    /// API base URL.
    pub url: Url,
    /// Secret with the token (key `token`).
    pub token: Option<SecretRef>,
    /// Projects to include (empty: all).
    pub projects: Vec<String>,
    /// Label selector; by default `environment=<name>` when several environments share one
    /// ArgoCD server, none when the environment has a server of its own.
    pub selector: Option<String>,
    /// `appNamespace` filter.
    pub app_namespace: Option<String>,
    /// PEM file with the CA of the server's certificate.
    pub ca_cert_path: Option<std::path::PathBuf>,
    /// Skip certificate verification (explicit opt-in only).
    pub insecure: bool,
}

/// A secret the enabled integrations need: where it is referenced and which keys.
#[derive(Clone, Debug)]
pub struct SecretNeed {
    /// Key path of the reference (`ticketing_integration.jira.secret_ref`).
    pub path: String,
    /// The reference.
    pub secret: SecretRef,
    /// Keys read from it.
    pub keys: &'static [&'static str],
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                origin: origin.clone(),
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Config::parse(&text, &origin)
    }

    /// The embedded default.
    pub fn embedded() -> Config {
        Config::parse(EMBEDDED_LOCAL, "embedded local.yaml")
            .expect("the embedded configuration is valid (tested)")
    }

    /// Parses and validates a document; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        let mut errors = error::Collector::new(origin);
        let parsed = parse::parse_collecting::<Config>(text, &mut errors);
        if let Some(config) = &parsed {
            validate::validate(config, &mut errors);
        }
        errors.finish()?;
        Ok(parsed.expect("no errors means the document parsed"))
    }

    /// Refuses an unauthenticated AlertManager webhook on a listen address other hosts can
    /// reach (anything but loopback) unless `allow_unauthenticated: true` is set beside its
    /// `auth`. Checked by `run` and `check-config` after [`Config::apply_env`], since
    /// `SRE_LISTEN_ADDR` can change the address.
    pub fn check_exposure(&self, origin: &str) -> Result<(), ConfigErrors> {
        let mut errors = error::Collector::new(origin);
        validate::exposure(self, &mut errors);
        errors.finish()
    }

    /// Applies the per-deployment overrides from the environment: `SRE_LISTEN_ADDR`,
    /// `SRE_KAFKA_BROKERS`, `SRE_LOG_FORMAT`, `SRE_LOG_LEVEL`, `SRE_SECRETS_DIR`, `SRE_DATA_DIR`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigErrors> {
        let mut errors = error::Collector::new("environment");
        if let Some(v) = var("SRE_LISTEN_ADDR") {
            match v.parse() {
                Ok(a) => self.server.listen = a,
                Err(_) => errors.push(
                    "SRE_LISTEN_ADDR",
                    format!("invalid socket address {v:?}: expected \"host:port\" such as \"0.0.0.0:8080\""),
                ),
            }
        }
        if let Some(v) = var("SRE_KAFKA_BROKERS") {
            self.intents.kafka.brokers = v;
        }
        if let Some(v) = var("SRE_LOG_FORMAT") {
            match v.parse() {
                Ok(f) => self.telemetry.log_format = f,
                Err(e) => errors.push("SRE_LOG_FORMAT", e),
            }
        }
        if let Some(v) = var("SRE_LOG_LEVEL") {
            self.telemetry.log_level = v;
        }
        if let Some(v) = var("SRE_SECRETS_DIR") {
            self.secrets.dir = v.into();
        }
        if let Some(v) = var("SRE_DATA_DIR") {
            self.intents.embedded.data_dir = v.into();
        }
        errors.finish()
    }

    /// The effective AlertManager webhook configuration: the observability section's, or the
    /// legacy section's when only that one is enabled.
    pub fn alertmanager(&self) -> Option<AlertmanagerConfig> {
        if let Some(o) = self
            .observability_integration
            .as_ref()
            .filter(|o| o.enabled)
        {
            if let Some(am) = &o.alertmanager {
                return Some(am.clone());
            }
        }
        self.alertmanager_integration
            .as_ref()
            .filter(|l| l.enabled)
            .map(|l| l.clone().into())
    }

    /// The enabled Kubernetes section.
    pub fn kubernetes(&self) -> Option<&KubernetesIntegration> {
        self.kubernetes_integration.as_ref().filter(|k| k.enabled)
    }
    /// The enabled ArgoCD section.
    pub fn argocd(&self) -> Option<&ArgoCdIntegration> {
        self.argocd_integration.as_ref().filter(|a| a.enabled)
    }
    /// The enabled observability section.
    pub fn observability(&self) -> Option<&ObservabilityIntegration> {
        self.observability_integration
            .as_ref()
            .filter(|o| o.enabled)
    }
    /// The enabled ticketing section.
    pub fn ticketing(&self) -> Option<&TicketingIntegration> {
        self.ticketing_integration.as_ref().filter(|t| t.enabled)
    }
    /// The enabled paging section.
    pub fn paging(&self) -> Option<&PagingIntegration> {
        self.paging_integration.as_ref().filter(|p| p.enabled)
    }

    /// Every upstream of the enabled integrations, each of which gets a circuit.
    pub fn upstreams(&self) -> Vec<Upstream> {
        let default_timeout = self.supervision.retry.timeout;
        let mut out = Vec::new();
        let mut push = |name: String, base_url: Option<Url>, timeout: Duration| {
            out.push(Upstream {
                name,
                base_url,
                timeout,
            })
        };
        if let Some(t) = self.ticketing() {
            if let Some(j) = &t.jira {
                push("jira".into(), Some(j.base_url.clone()), default_timeout);
            }
            if let Some(g) = &t.github {
                push("github".into(), Some(g.api_url.clone()), default_timeout);
            }
        }
        if let Some(p) = self.paging() {
            if let Some(pd) = &p.pagerduty {
                push(
                    "pagerduty".into(),
                    Some(pd.events_url.clone()),
                    default_timeout,
                );
            }
            if let Some(og) = &p.opsgenie {
                push("opsgenie".into(), Some(og.api_url.clone()), default_timeout);
            }
        }
        if let Some(o) = self.observability() {
            for (name, backend) in [
                ("prometheus", &o.prometheus),
                ("loki", &o.loki),
                ("tempo", &o.tempo),
            ] {
                if let Some(b) = backend {
                    push(name.into(), Some(b.url.clone()), b.timeout);
                }
            }
            if let Some(g) = &o.grafana {
                push("grafana".into(), Some(g.url.clone()), g.timeout);
            }
        }
        if let Some(a) = self.argocd() {
            for env in &a.environments {
                push(
                    format!("argocd:{}", env.name()),
                    validate::argocd_url(a, env).ok(),
                    default_timeout,
                );
            }
        }
        if let Some(k) = self.kubernetes() {
            for c in &k.clusters {
                push(format!("k8s:{}", c.name), None, default_timeout);
            }
        }
        out
    }

    /// The enabled ArgoCD environments, resolved (see [`ArgoEnvironment::selector`] for how an
    /// environment selects its applications by default).
    pub fn argocd_environments(&self) -> Vec<ArgoEnvironment> {
        let Some(a) = self.argocd() else {
            return Vec::new();
        };
        a.environments
            .iter()
            .filter_map(|env| {
                let url = validate::argocd_url(a, env).ok()?;
                Some(match env {
                    EnvironmentEntry::Name(name) => ArgoEnvironment {
                        name: name.clone(),
                        url,
                        token: a.token_secret_ref.clone(),
                        projects: Vec::new(),
                        selector: Some(format!("environment={name}")),
                        app_namespace: None,
                        ca_cert_path: None,
                        insecure: false,
                    },
                    EnvironmentEntry::Detailed(d) => ArgoEnvironment {
                        name: d.name.clone(),
                        url,
                        token: d.secret_ref.clone().or_else(|| a.token_secret_ref.clone()),
                        projects: d.projects.clone(),
                        selector: d.selector.clone().or_else(|| {
                            d.server
                                .is_none()
                                .then(|| format!("environment={}", d.name))
                        }),
                        app_namespace: d.app_namespace.clone(),
                        ca_cert_path: d.ca_cert_path.clone(),
                        insecure: d.insecure,
                    },
                })
            })
            .collect()
    }

    /// Every secret the enabled integrations read, with the keys they read.
    pub fn secret_needs(&self) -> Vec<SecretNeed> {
        validate::secret_needs(self)
    }

    /// Resolves every needed secret; one error per missing or unreadable key, naming the key
    /// path of the reference.
    pub fn check_secrets(&self, store: &SecretStore, origin: &str) -> Result<(), ConfigErrors> {
        let mut errors = error::Collector::new(origin);
        for need in self.secret_needs() {
            for key in need.keys {
                if let Err(e) = store.read(&need.secret, key) {
                    errors.push(need.path.clone(), e.to_string());
                }
            }
        }
        errors.finish()
    }

    /// One line per integration: enabled or not, and what it covers.
    pub fn summary(&self) -> Vec<String> {
        let onoff = |b: bool| if b { "enabled" } else { "disabled" };
        let mut lines = Vec::new();
        lines.push(match self.kubernetes() {
            Some(k) => format!(
                "kubernetes_integration: enabled, clusters [{}], poll every {}",
                k.clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                humantime::format_duration(k.poll_interval)
            ),
            None => "kubernetes_integration: disabled".into(),
        });
        lines.push(match self.argocd() {
            Some(a) => format!(
                "argocd_integration: enabled, environments [{}], poll every {}",
                a.environments
                    .iter()
                    .map(|e| e.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                humantime::format_duration(a.poll_interval)
            ),
            None => "argocd_integration: disabled".into(),
        });
        lines.push(match self.alertmanager() {
            Some(am) => format!(
                "alertmanager webhook: enabled at {}, dedup window {}, auto-create incidents {}",
                am.webhook_path,
                humantime::format_duration(am.idempotency.dedup_window),
                if am.auto_create_incident.enabled {
                    format!("at severity >= {:?}", am.auto_create_incident.min_severity)
                        .to_lowercase()
                } else {
                    "off".into()
                }
            ),
            None => "alertmanager webhook: disabled".into(),
        });
        lines.push(format!(
            "observability_integration: {}",
            match self.observability() {
                Some(o) => format!(
                    "enabled, backends [{}]",
                    [
                        ("prometheus", o.prometheus.is_some()),
                        ("loki", o.loki.is_some()),
                        ("tempo", o.tempo.is_some()),
                        ("grafana", o.grafana.is_some()),
                    ]
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
                ),
                None => "disabled".into(),
            }
        ));
        lines.push(format!(
            "ticketing_integration: {}",
            onoff(self.ticketing().is_some())
        ));
        lines.push(format!(
            "paging_integration: {}",
            onoff(self.paging().is_some())
        ));
        let sink = match self.intents.sink {
            SinkKind::Embedded => "embedded",
            SinkKind::Kafka => "kafka",
        };
        lines.push(format!(
            "intents: {sink} sink, topic {}",
            self.intents.topic
        ));
        lines.push(format!("facts consumer: {}", onoff(self.facts.enabled)));
        lines.push(format!("tools: {}", onoff(self.tools.enabled)));
        lines.push(format!(
            "listen: {}, at most {} connections; /metrics and /v1/supervision {}",
            self.server.listen,
            self.server.max_connections,
            match &self.server.ops_auth {
                Some(o) => format!("need the bearer token of {}", o.secret_ref),
                None => "are open".into(),
            }
        ));
        lines.push(format!(
            "circuits: [{}]",
            self.upstreams()
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        lines
    }
}
