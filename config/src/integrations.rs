//! The spec's own sections (526 §2–§7): Kubernetes, ArgoCD, observability (and its legacy
//! AlertManager form), ticketing and paging. Field names and defaults follow the spec; the few
//! additions (auth, provider URLs, per-environment overrides) are documented per field.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::types::{CronSchedule, SecretRef, TimeOfDay, TimeZone};

/// `kubernetes_integration` (spec §2).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesIntegration {
    /// Whether any cluster is watched.
    #[serde(default)]
    pub enabled: bool,
    /// The clusters to watch; each gets its own watcher actor and circuit `k8s:<name>`.
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    /// What to watch.
    #[serde(default)]
    pub watch: WatchConfig,
    /// Full reconcile period of the watch + poll hybrid.
    #[serde(default = "default_k8s_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Default `tailLines` for pod logs.
    #[serde(default = "default_log_tail")]
    pub log_tail_lines: u32,
}

fn default_k8s_poll() -> Duration {
    Duration::from_secs(60)
}
fn default_log_tail() -> u32 {
    500
}

/// One cluster: exactly one of `kubeconfig_secret_ref`, `kubeconfig_path`, `in_cluster`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Stable name, used in intents (`health:<cluster>/...`) and metrics.
    pub name: String,
    /// Secret whose `kubeconfig` key holds the kubeconfig.
    #[serde(default)]
    pub kubeconfig_secret_ref: Option<SecretRef>,
    /// A kubeconfig file on disk.
    #[serde(default)]
    pub kubeconfig_path: Option<std::path::PathBuf>,
    /// Use the pod's service account.
    #[serde(default)]
    pub in_cluster: bool,
}

/// `kubernetes_integration.watch`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Namespace globs (`ameide-*`); `*` matches any run of characters.
    #[serde(default = "default_namespaces")]
    pub namespaces: Vec<String>,
    /// Resource kinds to watch.
    #[serde(default = "default_resource_types")]
    pub resource_types: Vec<ResourceType>,
    /// Warning events last seen longer ago than this are not published (on start, after a
    /// relist); keep it no longer than the dedup window so a restart cannot re-publish.
    #[serde(default = "default_event_max_age", with = "humantime_serde")]
    pub event_max_age: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            namespaces: default_namespaces(),
            resource_types: default_resource_types(),
            event_max_age: default_event_max_age(),
        }
    }
}

fn default_event_max_age() -> Duration {
    Duration::from_secs(300)
}

fn default_namespaces() -> Vec<String> {
    vec!["*".into()]
}
fn default_resource_types() -> Vec<ResourceType> {
    vec![
        ResourceType::Pods,
        ResourceType::Deployments,
        ResourceType::Services,
        ResourceType::Events,
    ]
}

/// A watched resource kind.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    /// core/v1 Pods.
    Pods,
    /// apps/v1 Deployments.
    Deployments,
    /// core/v1 Services (health from their endpoints).
    Services,
    /// core/v1 Events (Warning events become alerts).
    Events,
}

/// `argocd_integration` (spec §3).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdIntegration {
    /// Whether ArgoCD is polled.
    #[serde(default)]
    pub enabled: bool,
    /// Only `polling` is supported.
    #[serde(default)]
    pub mode: ArgoCdMode,
    /// Poll period per environment.
    #[serde(default = "default_argocd_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// `host:port` (or a URL) of the ArgoCD API server; `https://` is assumed without a scheme.
    #[serde(default)]
    pub argocd_server: Option<String>,
    /// Secret with the API token (key `token`), shared by environments that set none.
    #[serde(default)]
    pub token_secret_ref: Option<SecretRef>,
    /// Environments: plain names, or objects with overrides.
    #[serde(default)]
    pub environments: Vec<EnvironmentEntry>,
}

fn default_argocd_poll() -> Duration {
    Duration::from_secs(30)
}

/// `argocd_integration.mode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArgoCdMode {
    /// Poll `GET /api/v1/applications`.
    #[default]
    Polling,
}

/// An environment: `dev`, or `{name: dev, server: ..., ...}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum EnvironmentEntry {
    /// Just the name; everything else from the section.
    Name(String),
    /// Name plus overrides.
    Detailed(EnvironmentConfig),
}

impl EnvironmentEntry {
    /// The environment's name.
    pub fn name(&self) -> &str {
        match self {
            EnvironmentEntry::Name(n) => n,
            EnvironmentEntry::Detailed(d) => &d.name,
        }
    }
}

/// An environment with overrides.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// The environment's name.
    pub name: String,
    /// ArgoCD server for this environment (default: the section's `argocd_server`).
    #[serde(default)]
    pub server: Option<String>,
    /// Token secret (key `token`) for this environment.
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
    /// ArgoCD projects to include (default: all).
    #[serde(default)]
    pub projects: Vec<String>,
    /// Application label selector (default: `environment=<name>` when no server override).
    #[serde(default)]
    pub selector: Option<String>,
    /// Namespace the Applications live in (ArgoCD `appNamespace`).
    #[serde(default)]
    pub app_namespace: Option<String>,
    /// PEM file with the CA that signed the server certificate.
    #[serde(default)]
    pub ca_cert_path: Option<std::path::PathBuf>,
    /// Skip TLS verification; must be set explicitly.
    #[serde(default)]
    pub insecure: bool,
}

/// `observability_integration` (spec §4).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservabilityIntegration {
    /// Whether the section is active.
    #[serde(default)]
    pub enabled: bool,
    /// Prometheus query API.
    #[serde(default)]
    pub prometheus: Option<QueryBackend>,
    /// The AlertManager webhook receiver.
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerConfig>,
    /// Loki query API.
    #[serde(default)]
    pub loki: Option<QueryBackend>,
    /// Tempo query API.
    #[serde(default)]
    pub tempo: Option<QueryBackend>,
    /// Grafana API (annotations, dashboard links).
    #[serde(default)]
    pub grafana: Option<GrafanaConfig>,
    /// Scheduled SLI calculation.
    #[serde(default)]
    pub sli_calculation: Option<SliCalculation>,
    /// How often each configured query upstream (Prometheus, Loki, Tempo, Grafana) is probed on
    /// its readiness endpoint. Default 30 s.
    #[serde(default = "default_health_check_interval", with = "humantime_serde")]
    pub health_check_interval: Duration,
}

fn default_health_check_interval() -> Duration {
    Duration::from_secs(30)
}

/// A query backend (Prometheus, Loki, Tempo): URL, per-request timeout, credentials and TLS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBackend {
    /// Base URL.
    pub url: Url,
    /// Per-request timeout.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Credentials sent with every request (default none).
    #[serde(default)]
    pub auth: UpstreamAuth,
    /// PEM file with the CA that signed the server certificate.
    #[serde(default)]
    pub ca_cert_path: Option<std::path::PathBuf>,
    /// Skip TLS verification; must be set explicitly.
    #[serde(default)]
    pub insecure: bool,
}

/// How the program authenticates to a query backend.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum UpstreamAuth {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`; the secret's key `token`.
    Bearer {
        /// Secret holding `token`.
        secret_ref: SecretRef,
    },
    /// `Authorization: Basic ...`; the secret's keys `username` and `password`.
    Basic {
        /// Secret holding `username` and `password`.
        secret_ref: SecretRef,
    },
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `observability_integration.grafana`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaConfig {
    /// Base URL.
    pub url: Url,
    /// Secret with the API key (key `api_key`).
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
    /// Per-request timeout.
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Incident regions drawn on dashboards (the `grafana` facts target; needs the facts
    /// consumer). On by default when Grafana is configured.
    #[serde(default)]
    pub annotations: GrafanaAnnotations,
}

/// `observability_integration.grafana.annotations`: each incident becomes a region
/// annotation from `IncidentCreated` to `IncidentResolved` (or `IncidentClosed`), tagged
/// `sre-incident:<id>`, `severity:<sev>` and `service:<service>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaAnnotations {
    /// Whether incidents are annotated. Default true. The API key needs the Editor role (or
    /// `annotations:create`/`annotations:write` permissions).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Dashboards (by uid) that get one annotation each; empty (the default): one
    /// organisation-wide annotation, shown by every dashboard whose annotation query matches
    /// the tags.
    #[serde(default)]
    pub dashboard_uids: Vec<String>,
}

impl Default for GrafanaAnnotations {
    fn default() -> Self {
        GrafanaAnnotations {
            enabled: true,
            dashboard_uids: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `observability_integration.sli_calculation` (DESIGN §3.3d): every tick of `schedule`, each
/// SLO's `good` and `total` over the window that ends at the tick (from the previous tick),
/// queried at that instant, become a `RecordSLIWindowRequested` intent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliCalculation {
    /// Five-field cron expression (`*/5 * * * *`), evaluated in `timezone`.
    pub schedule: CronSchedule,
    /// IANA time zone of the schedule (DST-correct). Default `UTC`.
    #[serde(default)]
    pub timezone: TimeZone,
    /// How long after a window's end it is queried, so the last scrapes of the window have
    /// landed (the query still evaluates at the window's end). Default 30 s.
    #[serde(default = "default_query_delay", with = "humantime_serde")]
    pub query_delay: Duration,
    /// After downtime, missed windows that ended at most this long ago are computed, in order;
    /// older ones are reported as a gap (`sre_sli_windows_skipped_total`), never silently
    /// dropped. Default 1 h.
    #[serde(default = "default_catch_up", with = "humantime_serde")]
    pub catch_up: Duration,
    /// The SLOs.
    #[serde(default)]
    pub slos: Vec<SloDefinition>,
}

fn default_query_delay() -> Duration {
    Duration::from_secs(30)
}
fn default_catch_up() -> Duration {
    Duration::from_secs(3600)
}

/// One SLO of `sli_calculation.slos`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloDefinition {
    /// Unique name; the intent key is `slo:<name>`.
    pub name: String,
    /// The service it measures.
    pub service: String,
    /// Objective in percent (`99.9`), above 0 and below 100.
    pub objective: f64,
    /// PromQL for the good events in the window; `$window` is replaced by the window's length
    /// (`300s`). Must return at most one series.
    pub good: String,
    /// PromQL for all events in the window (same rules as `good`).
    pub total: String,
}

/// `observability_integration.alertmanager`, and the legacy `alertmanager_integration` minus
/// `enabled`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// HTTP path of the webhook receiver.
    #[serde(default = "default_webhook_path")]
    pub webhook_path: String,
    /// Deduplication.
    #[serde(default)]
    pub idempotency: Idempotency,
    /// Automatic `CreateIncidentRequested`.
    #[serde(default)]
    pub auto_create_incident: AutoCreateIncident,
    /// How AlertManager authenticates (its `http_config`).
    #[serde(default)]
    pub auth: WebhookAuth,
    /// Largest accepted request body; a larger one gets `413`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Most alerts in one notification; more get `413` (AlertManager's own `max_alerts` in
    /// its `webhook_configs` keeps it under). Default 1000.
    #[serde(default = "default_max_alerts")]
    pub max_alerts: usize,
    /// With `auth.type: none`, `run` and `check-config` refuse a `server.listen` address that
    /// is not loopback unless this is true: an open webhook is never an accident.
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            webhook_path: default_webhook_path(),
            idempotency: Idempotency::default(),
            auto_create_incident: AutoCreateIncident::default(),
            auth: WebhookAuth::default(),
            max_body_bytes: default_max_body(),
            max_alerts: default_max_alerts(),
            allow_unauthenticated: false,
        }
    }
}

fn default_webhook_path() -> String {
    "/webhooks/alertmanager".into()
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_max_alerts() -> usize {
    1000
}

/// `idempotency`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Idempotency {
    /// Where the dedup key comes from.
    #[serde(default)]
    pub key_source: KeySource,
    /// How long a key suppresses repeats: more than zero, at most 24h, and no longer than
    /// `intents.embedded.retention_age` (the window is rebuilt from the log at start).
    #[serde(default = "default_dedup_window", with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Most keys the deduplication window holds at once (window entries plus keys being
    /// published; the window is shared by the webhook, the cluster watchers and the ArgoCD
    /// pollers). When it is full, new keys are refused — the webhook answers `503` with
    /// `Retry-After`, watchers and pollers retry — and nothing is evicted (an evicted key would
    /// be published again). About 80–100 bytes per key: the default of 1,000,000 bounds the
    /// window near 100 MB.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

impl Default for Idempotency {
    fn default() -> Self {
        Idempotency {
            key_source: KeySource::default(),
            dedup_window: default_dedup_window(),
            max_entries: default_max_entries(),
        }
    }
}

fn default_dedup_window() -> Duration {
    Duration::from_secs(300)
}
fn default_max_entries() -> usize {
    1_000_000
}

/// `idempotency.key_source`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The payload's `fingerprint`, computed from the labels when absent.
    #[default]
    Fingerprint,
    /// Always computed from the labels (ignores the payload's fingerprint).
    Labels,
}

/// `auto_create_incident`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoCreateIncident {
    /// Whether firing alerts at or above `min_severity` also request an incident.
    #[serde(default)]
    pub enabled: bool,
    /// Lowest severity that requests an incident.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
}

impl Default for AutoCreateIncident {
    fn default() -> Self {
        AutoCreateIncident {
            enabled: false,
            min_severity: default_min_severity(),
        }
    }
}

fn default_min_severity() -> Severity {
    Severity::High
}

/// The severity ladder, lowest first.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium (AlertManager `warning` maps here).
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// How a webhook caller authenticates.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum WebhookAuth {
    /// No authentication (only for local use).
    #[default]
    None,
    /// `Authorization: Bearer <token>`; the secret's key `token`.
    Bearer {
        /// Secret holding `token`.
        secret_ref: SecretRef,
    },
    /// `Authorization: Basic ...`; the secret's keys `username` and `password`.
    Basic {
        /// Secret holding `username` and `password`.
        secret_ref: SecretRef,
    },
}

/// The legacy `alertmanager_integration` section (spec §5), mapped onto
/// `observability_integration.alertmanager`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyAlertmanagerIntegration {
    /// Whether the webhook is served.
    #[serde(default)]
    pub enabled: bool,
    /// See [`AlertmanagerConfig::webhook_path`].
    #[serde(default = "default_webhook_path")]
    pub webhook_path: String,
    /// See [`AlertmanagerConfig::idempotency`].
    #[serde(default)]
    pub idempotency: Idempotency,
    /// See [`AlertmanagerConfig::auto_create_incident`].
    #[serde(default)]
    pub auto_create_incident: AutoCreateIncident,
    /// See [`AlertmanagerConfig::auth`].
    #[serde(default)]
    pub auth: WebhookAuth,
    /// See [`AlertmanagerConfig::max_body_bytes`].
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// See [`AlertmanagerConfig::max_alerts`].
    #[serde(default = "default_max_alerts")]
    pub max_alerts: usize,
    /// See [`AlertmanagerConfig::allow_unauthenticated`].
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

impl From<LegacyAlertmanagerIntegration> for AlertmanagerConfig {
    fn from(l: LegacyAlertmanagerIntegration) -> Self {
        AlertmanagerConfig {
            webhook_path: l.webhook_path,
            idempotency: l.idempotency,
            auto_create_incident: l.auto_create_incident,
            auth: l.auth,
            max_body_bytes: l.max_body_bytes,
            max_alerts: l.max_alerts,
            allow_unauthenticated: l.allow_unauthenticated,
        }
    }
}

/// `ticketing_integration` (spec §6): incident facts open, comment on, and close tickets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketingIntegration {
    /// Whether incident facts open tickets.
    #[serde(default)]
    pub enabled: bool,
    /// Where tickets go when no route matches. Default: `jira` when it is configured, else
    /// `github`.
    #[serde(default)]
    pub default_provider: Option<TicketProvider>,
    /// Jira Cloud (REST v3).
    #[serde(default)]
    pub jira: Option<JiraConfig>,
    /// GitHub Issues.
    #[serde(default)]
    pub github: Option<GithubConfig>,
    /// Routes by the incident's service and/or environment, first match wins; an incident no
    /// route matches goes to `default_provider` (its `project_key` / `repo`). The route taken
    /// is kept in the incident ledger, so later facts follow the ticket even if routes change.
    #[serde(default)]
    pub routes: Vec<TicketRoute>,
    /// Open a ticket for an incident that is already resolved or closed when its first fact
    /// reaches this target (ticketing enabled late, or a create that was dead-lettered).
    /// Default false: such incidents get no ticket.
    #[serde(default)]
    pub create_for_resolved: bool,
}

/// A ticketing provider.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TicketProvider {
    /// Jira.
    Jira,
    /// GitHub Issues.
    Github,
}

impl TicketProvider {
    /// `jira` or `github`: the facts target's name and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketProvider::Jira => "jira",
            TicketProvider::Github => "github",
        }
    }
}

/// One entry of `ticketing_integration.routes`: which incidents (`service`, `environment`;
/// every one given must equal the incident's, at least one is required) go where
/// (`provider`, default `default_provider`; `project_key` for Jira or `repo` for GitHub,
/// default the provider's own).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRoute {
    /// The incident's `service`.
    #[serde(default)]
    pub service: Option<String>,
    /// The incident's `environment`.
    #[serde(default)]
    pub environment: Option<String>,
    /// The provider (default: `default_provider`).
    #[serde(default)]
    pub provider: Option<TicketProvider>,
    /// Jira project for these incidents (Jira only).
    #[serde(default)]
    pub project_key: Option<String>,
    /// GitHub `owner/repo` for these incidents (GitHub only).
    #[serde(default)]
    pub repo: Option<String>,
}

/// `ticketing_integration.jira`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// `https://company.atlassian.net`.
    pub base_url: Url,
    /// Project key (`SRE`).
    pub project_key: String,
    /// Secret with keys `email` and `api_token` (basic auth; Jira Cloud).
    pub secret_ref: SecretRef,
    /// Issue type of created tickets. Default `Task`, which every new Jira Software project
    /// has (`Incident` exists only in Jira Service Management projects).
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// Jira priority per incident severity; defaults are the names of Jira's default
    /// priority scheme. Set `enabled: false` for projects whose create screen has no
    /// priority field.
    #[serde(default)]
    pub priorities: JiraPriorities,
    /// Labels added to every ticket besides `sre-incident-<id>` and `severity-<sev>` (no
    /// spaces).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Transition (by transition or target status name, case-insensitive) applied on
    /// `IncidentResolved`. Default: the first available transition whose target status is in
    /// the `done` category.
    #[serde(default)]
    pub resolve_transition: Option<String>,
    /// Transition applied on `IncidentClosed`, when the ticket is not in that status yet.
    /// Default: as `resolve_transition` (so a closed, never resolved incident's ticket is
    /// done too).
    #[serde(default)]
    pub close_transition: Option<String>,
}

fn default_issue_type() -> String {
    "Task".into()
}

/// `ticketing_integration.jira.priorities`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraPriorities {
    /// Whether a priority is sent at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Default `Highest`.
    #[serde(default = "p_highest")]
    pub critical: String,
    /// Default `High`.
    #[serde(default = "p_high")]
    pub high: String,
    /// Default `Medium`.
    #[serde(default = "p_medium")]
    pub medium: String,
    /// Default `Low`.
    #[serde(default = "p_low")]
    pub low: String,
    /// Default `Lowest`.
    #[serde(default = "p_lowest")]
    pub info: String,
}

impl Default for JiraPriorities {
    fn default() -> Self {
        JiraPriorities {
            enabled: true,
            critical: p_highest(),
            high: p_high(),
            medium: p_medium(),
            low: p_low(),
            info: p_lowest(),
        }
    }
}

fn p_highest() -> String {
    "Highest".into()
}
fn p_high() -> String {
    "High".into()
}
fn p_medium() -> String {
    "Medium".into()
}
fn p_low() -> String {
    "Low".into()
}
fn p_lowest() -> String {
    "Lowest".into()
}

/// `ticketing_integration.github`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// `owner/repo`.
    pub repo: String,
    /// Secret with key `token`: a fine-grained personal access token with "Issues: read and
    /// write" on the repositories tickets go to (or a classic token with `repo`).
    pub secret_ref: SecretRef,
    /// API base URL (GitHub Enterprise Server: `https://<host>/api/v3`).
    #[serde(default = "default_github_api")]
    pub api_url: Url,
    /// Labels added to every issue besides `sre-incident:<id>` and `severity:<sev>`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Label added on `IncidentResolved`. Default `resolved`.
    #[serde(default = "default_resolved_label")]
    pub resolved_label: String,
}

fn default_github_api() -> Url {
    Url::parse("https://api.github.com").expect("static URL")
}
fn default_resolved_label() -> String {
    "resolved".into()
}

/// `paging_integration` (spec §7): which incidents page whom, and when.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagingIntegration {
    /// Whether incident facts page.
    #[serde(default)]
    pub enabled: bool,
    /// The provider an incident pages through when no route says otherwise. May be left out
    /// when exactly one of `pagerduty` / `opsgenie` is configured (that one is used).
    #[serde(default)]
    pub default_provider: Option<PageProvider>,
    /// PagerDuty Events API v2.
    #[serde(default)]
    pub pagerduty: Option<PagerDutyConfig>,
    /// OpsGenie Alert API.
    #[serde(default)]
    pub opsgenie: Option<OpsGenieConfig>,
    /// When each severity pages.
    #[serde(default)]
    pub escalation: Escalation,
    /// Routes, tried in order; the first whose every given condition matches the incident
    /// decides where it pages (another provider, another PagerDuty routing key, an OpsGenie
    /// team). An incident no route matches pages through `default_provider` with that
    /// provider's own routing key / team. Default: none.
    #[serde(default)]
    pub routes: Vec<PageRoute>,
}

impl PagingIntegration {
    /// The default provider: `default_provider`, else the only configured one.
    pub fn default_provider(&self) -> Option<PageProvider> {
        self.default_provider
            .or(match (&self.pagerduty, &self.opsgenie) {
                (Some(_), None) => Some(PageProvider::Pagerduty),
                (None, Some(_)) => Some(PageProvider::Opsgenie),
                _ => None,
            })
    }
}

/// A paging provider.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PageProvider {
    /// PagerDuty.
    Pagerduty,
    /// OpsGenie.
    Opsgenie,
}

impl PageProvider {
    /// The provider's name: its circuit, its ledger target and its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            PageProvider::Pagerduty => "pagerduty",
            PageProvider::Opsgenie => "opsgenie",
        }
    }
}

/// `paging_integration.pagerduty`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Secret with key `routing_key`: the integration key of the Events API v2 integration on
    /// the PagerDuty service that incidents open on (routes may name others).
    pub routing_key_ref: SecretRef,
    /// Events API base URL; events go to `<events_url>/v2/enqueue`.
    #[serde(default = "default_pagerduty_url")]
    pub events_url: Url,
}

fn default_pagerduty_url() -> Url {
    Url::parse("https://events.pagerduty.com").expect("static URL")
}

/// `paging_integration.opsgenie`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsGenieConfig {
    /// Secret with key `api_key`: an API integration's key, sent as `Authorization: GenieKey`.
    pub api_key_ref: SecretRef,
    /// Alert API base URL: `https://api.opsgenie.com` (US, the default) or
    /// `https://api.eu.opsgenie.com` (EU instance).
    #[serde(default = "default_opsgenie_url")]
    pub api_url: Url,
    /// Team added as the alert's responder when no route names one. Default: none (the API
    /// integration's own team/routing decides).
    #[serde(default)]
    pub team: Option<String>,
    /// How long to wait for OpsGenie to process an accepted request (checked through
    /// `GET /v2/alerts/requests/<id>`) before the action counts as unavailable and is retried.
    #[serde(default = "default_confirm_timeout", with = "humantime_serde")]
    pub confirm_timeout: Duration,
}

fn default_opsgenie_url() -> Url {
    Url::parse("https://api.opsgenie.com").expect("static URL")
}
fn default_confirm_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `paging_integration.routes[]`: conditions (all given must hold; none given matches every
/// incident) and where a matching incident pages.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRoute {
    /// Name shown in the incident ledger (`route`); default `routes[<index>]`.
    #[serde(default)]
    pub name: Option<String>,
    /// Matches incidents of this service (exact).
    #[serde(default)]
    pub service: Option<String>,
    /// Matches incidents of this environment (exact).
    #[serde(default)]
    pub environment: Option<String>,
    /// Matches incidents of these severities (one, or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    pub severity: Vec<PageSeverity>,
    /// Provider to page; default `default_provider`.
    #[serde(default)]
    pub provider: Option<PageProvider>,
    /// PagerDuty only: another routing key (secret with key `routing_key`).
    #[serde(default)]
    pub routing_key_ref: Option<SecretRef>,
    /// OpsGenie only: the team to add as responder.
    #[serde(default)]
    pub team: Option<String>,
}

impl PageRoute {
    /// The route's name: `name`, else `routes[<index>]`.
    pub fn name_at(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("routes[{index}]"))
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PageSeverity>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PageSeverity),
        Many(Vec<PageSeverity>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a severity (critical, high, medium, low, info) or a list of them",
        )),
    }
}

/// An incident severity, as routes and escalation name it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PageSeverity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// `paging_integration.escalation`: per severity whether it pages at once, only inside
/// business hours (outside them the page waits for the next business-hours start, and is
/// dropped if the incident is acknowledged, resolved or closed first), or never.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Policy for critical incidents. Default `immediate`.
    #[serde(default = "immediate")]
    pub critical: EscalationPolicy,
    /// Policy for high incidents. Default `business_hours_only`.
    #[serde(default = "business_hours_only")]
    pub high: EscalationPolicy,
    /// Policy for medium incidents. Default `never`.
    #[serde(default = "never")]
    pub medium: EscalationPolicy,
    /// Policy for low incidents. Default `never`.
    #[serde(default = "never")]
    pub low: EscalationPolicy,
    /// Policy for info incidents. Default `never`.
    #[serde(default = "never")]
    pub info: EscalationPolicy,
    /// The business-hours window.
    #[serde(default)]
    pub business_hours: BusinessHours,
}

impl Escalation {
    /// The policy of `severity`.
    pub fn policy(&self, severity: PageSeverity) -> EscalationPolicy {
        match severity {
            PageSeverity::Critical => self.critical,
            PageSeverity::High => self.high,
            PageSeverity::Medium => self.medium,
            PageSeverity::Low => self.low,
            PageSeverity::Info => self.info,
        }
    }
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            critical: immediate(),
            high: business_hours_only(),
            medium: never(),
            low: never(),
            info: never(),
            business_hours: BusinessHours::default(),
        }
    }
}

fn immediate() -> EscalationPolicy {
    EscalationPolicy::Immediate
}
fn business_hours_only() -> EscalationPolicy {
    EscalationPolicy::BusinessHoursOnly
}
fn never() -> EscalationPolicy {
    EscalationPolicy::Never
}

/// When a severity pages.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EscalationPolicy {
    /// Page at once.
    Immediate,
    /// Page only inside business hours.
    BusinessHoursOnly,
    /// Never page.
    Never,
}

/// A day of the week, as `business_hours.days` names it (`mon` … `sun`; full names accepted).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    #[serde(alias = "monday")]
    Mon,
    /// Tuesday.
    #[serde(alias = "tuesday")]
    Tue,
    /// Wednesday.
    #[serde(alias = "wednesday")]
    Wed,
    /// Thursday.
    #[serde(alias = "thursday")]
    Thu,
    /// Friday.
    #[serde(alias = "friday")]
    Fri,
    /// Saturday.
    #[serde(alias = "saturday")]
    Sat,
    /// Sunday.
    #[serde(alias = "sunday")]
    Sun,
}

impl Day {
    /// Every day, Monday first.
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    /// chrono's weekday.
    pub fn weekday(self) -> chrono::Weekday {
        match self {
            Day::Mon => chrono::Weekday::Mon,
            Day::Tue => chrono::Weekday::Tue,
            Day::Wed => chrono::Weekday::Wed,
            Day::Thu => chrono::Weekday::Thu,
            Day::Fri => chrono::Weekday::Fri,
            Day::Sat => chrono::Weekday::Sat,
            Day::Sun => chrono::Weekday::Sun,
        }
    }
}

/// `escalation.business_hours`: `start`..`end` (wall-clock time in `timezone`, DST
/// included) on `days`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// Start of the day (inclusive), `HH:MM`. Default `09:00`. On a day where this wall-clock
    /// time does not exist (clocks spring forward over it) the day starts at the first instant
    /// after it.
    #[serde(default = "nine")]
    pub start: TimeOfDay,
    /// End of the day (exclusive), `HH:MM`, after `start`. Default `18:00`.
    #[serde(default = "eighteen")]
    pub end: TimeOfDay,
    /// IANA time zone (`Europe/Berlin`). Default `UTC`.
    #[serde(default)]
    pub timezone: TimeZone,
    /// Business days (`[mon, tue, wed, thu, fri]` by default).
    #[serde(default)]
    pub days: Option<Vec<Day>>,
    /// Deprecated: `true` means every day (use `days` instead); not allowed together with
    /// `days`.
    #[serde(default)]
    pub include_weekends: Option<bool>,
}

impl BusinessHours {
    /// The business days: `days`, else every day with `include_weekends: true`, else Monday to
    /// Friday.
    pub fn business_days(&self) -> Vec<Day> {
        match (&self.days, self.include_weekends) {
            (Some(days), _) => days.clone(),
            (None, Some(true)) => Day::ALL.to_vec(),
            (None, _) => Day::ALL[..5].to_vec(),
        }
    }
}

impl Default for BusinessHours {
    fn default() -> Self {
        BusinessHours {
            start: nine(),
            end: eighteen(),
            timezone: TimeZone::default(),
            days: None,
            include_weekends: None,
        }
    }
}

fn nine() -> TimeOfDay {
    "09:00".parse().expect("static time")
}
fn eighteen() -> TimeOfDay {
    "18:00".parse().expect("static time")
}
