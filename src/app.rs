//! Wiring: builds the supervision tree from the configuration, starts it, and stops it
//! top-down.
//!
//! ```text
//! root
//! ├── providers   one ProviderCircuit per upstream (jira, github, ..., argocd:<env>, k8s:<cluster>)
//! ├── ingest      publisher (owns the sink) · dedup (windows) · router (alerts → intents)
//! │               · http (the HttpServer actor: the webhook and the operator endpoints)
//! ├── clusters    one ClusterWatcher per Kubernetes cluster (when enabled)
//! ├── argocd      one EnvPoller per ArgoCD environment (when enabled)
//! ├── sli         the SliScheduler (when sli_calculation and prometheus are configured)
//! ├── probes      one UpstreamProbe per configured Prometheus, Loki, Tempo, Grafana
//! ├── tools       the approval sweeper · http (its own listener, when `tools.listen` is set)
//! └── facts       ledger · waker · consumer (when facts.enabled): facts to the targets
//! ```
//!
//! The agent tools (when `tools.enabled`) are served by one [`ToolGateway`] built from
//! [`agent_tools`]; their REST door is on the main listener unless `tools.listen` is set.
//!
//! Start order is the order above (circuits exist before anything that calls out; the sink is
//! open and recovered before the dedup window is rebuilt from it; the listener opens last);
//! shutdown runs in reverse, so the listener closes first and drains, and the sink closes last.

use sre_actors::kubernetes::write::ClusterWriter;
use sre_actors::tools::k8s_write::write_tools;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::argocd::metrics::ArgoMetrics;
use sre_actors::argocd::poller::{EnvPoller, PollerArgs};
use sre_actors::emit::Emitter;
use sre_actors::facts::action::FactAction;
use sre_actors::facts::consumer::{KafkaFacts, KafkaFactsArgs};
use sre_actors::facts::embedded::{EmbeddedArgs, EmbeddedFacts};
use sre_actors::facts::handler::{Backoff, HandlerParts, IncidentLocks, WaitBoard};
use sre_actors::facts::ledger::{IncidentLedger, LedgerArgs, LedgerClient};
use sre_actors::facts::metrics::FactsMetrics;
use sre_actors::facts::store::{KafkaLedger, LedgerStore, LocalLedger};
use sre_actors::facts::waker::{DueWaker, WakerArgs};
use sre_actors::ingest::claim::Delivery;
use sre_actors::ingest::dedup::{Dedup, DedupArgs, DedupMsg, DedupSource, Rebuild, Window};
use sre_actors::ingest::metrics::IngestMetrics;
use sre_actors::ingest::publisher::{rebuild_from, IntentPublisher, PublisherArgs, PublisherMsg};
use sre_actors::ingest::router::{AlertRouter, RouterArgs};
use sre_actors::ingest::webhook::{Auth, Webhook, WebhookParts};
use sre_actors::kubernetes::client::Guard;
use sre_actors::kubernetes::cluster::{ClusterWatcher, WatcherArgs};
use sre_actors::kubernetes::metrics::KubeMetrics;
use sre_actors::kubernetes::read::ClusterReader;
use sre_actors::kubernetes::records::Context;
use sre_actors::observability::credentials::Credentials;
use sre_actors::observability::grafana::GrafanaClient;
use sre_actors::observability::loki::LokiClient;
use sre_actors::observability::probe::{health_path, ProbeArgs, ProbeMetrics, UpstreamProbe};
use sre_actors::observability::prometheus::PrometheusClient;
use sre_actors::observability::tempo::TempoClient;
use sre_actors::paging::metrics::PagingMetrics;
use sre_actors::providers::{ProviderMetrics, Providers, TlsOptions, UpstreamClient};
use sre_actors::sli::scheduler::{wall_clock, SliArgs, SliMetrics, SliScheduler};
use sre_actors::ticketing::metrics::TicketMetrics;
use sre_actors::tools::{read_tools, ObsClients};
use sre_config::{
    AlertmanagerConfig, Config, Idempotency, RestartConfig, SecretStore, SinkKind, SliCalculation,
    WebhookAuth,
};
use sre_sink::embedded::{EmbeddedSink, LogOptions};
use sre_sink::kafka::{KafkaOptions, KafkaSink};
use sre_sink::Sink;
use sre_supervision::{
    ActorSlot, ChildSpec, Observer, Readiness, RestartPolicy, Supervisor, SupervisorMsg,
    SupervisorSpec,
};
use tokio::sync::watch;

use crate::http::mcp::{mcp_router, Authenticate, McpMetrics, McpOptions};
use crate::http::serve::{HttpMetrics, Limits};
use crate::http::server::{HttpServer, HttpServerArgs};
use crate::http::tools::{tools_router, ToolsState};
use crate::http::{ops_router, OpsAccess, OpsState};
use sre_actors::tools::audit::AuditLog;
use sre_actors::tools::auth::Tokens;
use sre_actors::tools::gateway::{GatewayError, GatewayOptions, ToolGateway};
use sre_actors::tools::metrics::ToolMetrics;
use sre_actors::tools::redact::Redactor;
use sre_actors::tools::sweeper::{interval_for, ApprovalSweeper, SweeperArgs};
use sre_actors::tools::tool::Tool;

/// Name of the root supervisor.
pub const ROOT: &str = "root";
/// Name of the supervisor of the provider circuits.
pub const PROVIDERS: &str = "providers";
/// Name of the supervisor of the webhook path.
pub const INGEST: &str = "ingest";
/// Name of the supervisor of the ArgoCD pollers.
pub const ARGOCD: &str = "argocd";
/// Name of the supervisor of the Kubernetes cluster watchers.
pub const CLUSTERS: &str = "clusters";
/// Name of the supervisor of the SLI scheduler.
pub const SLI: &str = "sli";
/// Name of the supervisor of the upstream health probes.
pub const PROBES: &str = "probes";
/// Name of the supervisor of the agent tools.
pub const TOOLS: &str = "tools";
/// Name of the supervisor of the facts consumer, the incident ledger and the waker.
pub const FACTS: &str = "facts";

/// The fact targets built from the configuration, in the order each fact is applied to them:
/// the pagers (PagerDuty, OpsGenie), the ticket trackers (Jira, GitHub), then Grafana
/// annotations. Their metrics are registered in `registry`. A fact with no targets still
/// updates the incident ledger. A target that cannot be built (a missing secret) is an error:
/// the facts consumer then does not run, rather than commit facts whose pages were never sent.
pub fn fact_targets(
    config: &Config,
    providers: &Providers,
    registry: &mut Registry,
) -> Result<Vec<Arc<dyn FactAction>>, String> {
    let secrets = SecretStore::new(&config.secrets.dir);
    let paging_metrics = PagingMetrics::new(registry);
    let ticket_metrics = TicketMetrics::new(registry);
    let mut targets = sre_actors::paging::targets(config, providers, &secrets, &paging_metrics)
        .map_err(|e| e.to_string())?;
    targets.extend(
        sre_actors::ticketing::targets(config, providers, &secrets, &ticket_metrics)
            .map_err(|e| e.to_string())?,
    );
    targets.extend(
        sre_actors::observability::annotations::target(
            config,
            providers,
            &secrets,
            &ticket_metrics,
        )
        .map_err(|e| e.to_string())?,
    );
    if config.facts.enabled && targets.is_empty() {
        tracing::info!("no fact targets configured: facts update the incident ledger only");
    }
    Ok(targets)
}

/// The Kafka options of the facts clients: `intents.kafka`, `facts.brokers` overriding the
/// brokers.
pub fn facts_kafka_options(config: &Config) -> KafkaOptions {
    let mut o =
        KafkaOptions::from_config(&config.intents.kafka, SecretStore::new(&config.secrets.dir));
    if let Some(b) = &config.facts.brokers {
        o.brokers = b.clone();
    }
    o
}

/// The incident ledger's store: the compacted topic with `intents.sink: kafka`, the local log
/// `<facts.data_dir>/<ledger_topic>/` otherwise.
pub fn ledger_store(config: &Config) -> LedgerStore {
    let f = &config.facts;
    match config.intents.sink {
        SinkKind::Kafka => LedgerStore::Kafka(Box::new(KafkaLedger::new(
            facts_kafka_options(config),
            f.ledger_topic.clone(),
            f.topic.clone(),
        ))),
        SinkKind::Embedded => LedgerStore::Local(LocalLedger::new(
            f.data_dir.join(&f.ledger_topic),
            f.ledger_topic.clone(),
            f.ledger_compact_lines,
        )),
    }
}

/// The facts subtree (ledger, waker, consumer), when `facts.enabled`.
fn facts_children(
    config: &Config,
    targets: Vec<Arc<dyn FactAction>>,
    metrics: &FactsMetrics,
    readiness: &Readiness,
) -> Option<Vec<ChildSpec>> {
    let f = &config.facts;
    if !f.enabled {
        return None;
    }
    let clock = wall_clock();
    let targets: Arc<[Arc<dyn FactAction>]> = targets.into();
    let ledger_slot = ActorSlot::default();
    let waker_slot = ActorSlot::default();
    let locks = IncidentLocks::default();
    let backoff = Backoff {
        min: f.min_backoff,
        max: f.max_backoff,
    };
    let ledger = LedgerClient::new(ledger_slot.clone());
    let store_config = config.clone();
    let ledger_args = LedgerArgs {
        store: Arc::new(move || ledger_store(&store_config)),
        slot: ledger_slot,
        waker: waker_slot.clone(),
        retention: f.ledger_retention,
        clock: clock.clone(),
        metrics: metrics.clone(),
        targets: targets.clone(),
    };
    let waker_args = WakerArgs {
        slot: waker_slot,
        ledger: ledger.clone(),
        targets: targets.clone(),
        locks: locks.clone(),
        clock: clock.clone(),
        backoff,
        metrics: metrics.clone(),
    };
    let parts = HandlerParts {
        ledger,
        targets,
        metrics: metrics.clone(),
        clock,
        locks,
        backoff,
        board: WaitBoard::new(metrics.clone(), readiness.clone()),
        concurrency: f.concurrency,
    };
    let consumer = match config.intents.sink {
        SinkKind::Kafka => {
            let args = KafkaFactsArgs {
                options: facts_kafka_options(config),
                topic: f.topic.clone(),
                group_id: f.group_id.clone(),
                dead_letter_topic: f.dead_letter_topic.clone(),
                commit_interval: f.commit_interval,
                parts,
            };
            ChildSpec::actor("consumer", move || (KafkaFacts, args.clone()))
        }
        SinkKind::Embedded => {
            let args = EmbeddedArgs {
                dir: f.data_dir.join(&f.topic),
                position: f.data_dir.join(format!("{}.position", f.topic)),
                dead_letters: (
                    f.data_dir.join(&f.dead_letter_topic),
                    f.dead_letter_topic.clone(),
                ),
                poll_interval: f.poll_interval,
                parts,
            };
            ChildSpec::actor("consumer", move || (EmbeddedFacts, args.clone()))
        }
    };
    Some(vec![
        ChildSpec::actor("ledger", move || (IncidentLedger, ledger_args.clone())),
        ChildSpec::actor("waker", move || (DueWaker, waker_args.clone())),
        consumer,
    ])
}

/// Why the program could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The root supervisor did not start.
    #[error("cannot start the supervision tree: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// The tree did not finish starting.
    #[error("supervision tree stopped while starting")]
    Start,
    /// The agent tools could not be assembled (a duplicate name, a schema the gate cannot
    /// check).
    #[error("cannot build the agent tool gateway: {0}")]
    Tools(#[from] GatewayError),
}

/// Enabled configuration that this build does not act on yet (its integration is a later
/// issue): said at start and by `check-config`, never silently ignored.
pub fn not_yet_served(config: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if config.ticketing().is_some() && !config.facts.enabled {
        out.push("ticketing_integration (tickets come from facts: enable facts)");
    }
    if config.paging().is_some() && !config.facts.enabled {
        out.push("paging_integration (pages come from facts: enable facts)");
    }
    out
}

/// What the agent tools are built from.
pub struct ToolDeps<'a> {
    /// The configuration (`tools` and the integrations the tools read).
    pub config: &'a Config,
    /// The provider circuits and clients (`prometheus`, `loki`, `tempo`, `grafana`...).
    pub providers: &'a Providers,
    /// The Kubernetes read API, when Kubernetes is enabled.
    pub kubernetes: Option<&'a ClusterReader>,
}

/// The tools the gateway serves: the `k8s.*` reads over the clusters' reader and the Kubernetes
/// write tools (held for approval by the gate) when the Kubernetes integration is on, and the
/// `obs.*` reads of the configured observability backends.
pub fn agent_tools(deps: &ToolDeps<'_>) -> Vec<Arc<dyn Tool>> {
    let mut tools = read_tools(
        deps.kubernetes.cloned(),
        obs_clients(deps.config, deps.providers),
    );
    if let Some(reader) = deps.kubernetes {
        tools.extend(write_tools(
            ClusterWriter::new(reader.clone()),
            deps.config.tools.write_policy.clone(),
        ));
    }
    tools
}

/// The audit trail's sink: the embedded log `<data_dir>/<tools.audit.topic>`, or the Kafka topic
/// when intents go to Kafka.
fn audit_sink(config: &Config) -> Arc<dyn Sink> {
    let topic = config.tools.audit.topic.clone();
    match config.intents.sink {
        SinkKind::Embedded => {
            let e = &config.intents.embedded;
            Arc::new(EmbeddedSink::new(
                e.data_dir.join(&topic),
                LogOptions {
                    segment_bytes: e.segment_bytes,
                    retention_age: e.retention_age,
                    retention_bytes: e.retention_bytes,
                    ..LogOptions::default()
                },
            ))
        }
        SinkKind::Kafka => Arc::new(KafkaSink::new(
            KafkaOptions::from_config(&config.intents.kafka, SecretStore::new(&config.secrets.dir)),
            topic,
        )),
    }
}

/// The gateway over `tools` and the routes of its doors (REST here; the MCP door at `/mcp`
/// merges its routes into the same router, authenticating with the same [`Tokens`] and calling
/// the same gate).
fn tool_gateway(
    config: &Config,
    tools: Vec<Arc<dyn Tool>>,
    metrics: ToolMetrics,
    mcp_metrics: McpMetrics,
) -> Result<(Arc<ToolGateway>, axum::Router), GatewayError> {
    let t = &config.tools;
    let store = SecretStore::new(&config.secrets.dir);
    let redactor = Redactor::from_config(config, &store);
    let audit = AuditLog::new(audit_sink(config), t.audit.topic.clone(), t.audit.timeout);
    let gate = Arc::new(ToolGateway::new(
        tools,
        GatewayOptions::from_config(t),
        audit,
        redactor,
        wall_clock(),
        metrics,
    )?);
    let tokens = Tokens::from_config(t, &store);
    let names = gate.tool_names();
    if names.is_empty() {
        tracing::warn!("agent tools enabled but this build registers no tools: /v1/tools lists none (approvals and audit are served)");
    } else {
        tracing::info!(tools = ?names, "agent tools registered");
    }
    let tokens = Arc::new(tokens);
    let router = tools_router(ToolsState {
        gate: gate.clone(),
        tokens: tokens.clone(),
        max_body_bytes: t.max_body_bytes,
    });
    let authenticate: Authenticate = Arc::new(move |header| tokens.authenticate(header).ok());
    let options = McpOptions::from_config(t);
    let mcp = mcp_router(gate.clone(), authenticate, options, mcp_metrics);
    Ok((gate, router.merge(mcp)))
}

/// One `UpstreamProbe` per configured query upstream (Prometheus, Loki, Tempo, Grafana).
fn upstream_probes(
    config: &Config,
    providers: &Providers,
    readiness: &Readiness,
    metrics: &ProbeMetrics,
) -> Option<Vec<ChildSpec>> {
    let o = config.observability()?;
    let backends = [
        ("prometheus", o.prometheus.as_ref()),
        ("loki", o.loki.as_ref()),
        ("tempo", o.tempo.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, b)| {
        let b = b?;
        Some((name, b.url.clone(), query_client(config, providers, name)?))
    });
    let grafana = o.grafana.as_ref().and_then(|g| {
        Some((
            "grafana",
            g.url.clone(),
            (providers.client("grafana")?, Credentials::None),
        ))
    });
    let probes: Vec<ChildSpec> = backends
        .chain(grafana)
        .filter_map(|(name, base, (client, credentials))| {
            let url = base.join(health_path(name)?).ok()?;
            let args = ProbeArgs {
                client,
                credentials,
                url,
                interval: o.health_check_interval,
                readiness: readiness.clone(),
                metrics: metrics.clone(),
            };
            Some(ChildSpec::actor(name, move || {
                (UpstreamProbe, args.clone())
            }))
        })
        .collect();
    (!probes.is_empty()).then_some(probes)
}

/// The client of query backend `name` (its TLS options applied) and its credentials; a bad CA
/// file is logged and leaves the backend without a client.
fn query_client(
    config: &Config,
    providers: &Providers,
    name: &str,
) -> Option<(UpstreamClient, Credentials)> {
    let o = config.observability()?;
    let backend = match name {
        "prometheus" => o.prometheus.as_ref(),
        "loki" => o.loki.as_ref(),
        "tempo" => o.tempo.as_ref(),
        _ => None,
    }?;
    let tls = TlsOptions {
        ca_pem_path: backend.ca_cert_path.clone(),
        insecure: backend.insecure,
    };
    match providers.client_with_tls(name, &tls)? {
        Ok(client) => Some((
            client,
            Credentials::read(&backend.auth, &SecretStore::new(&config.secrets.dir)),
        )),
        Err(e) => {
            tracing::error!(upstream = name, error = %e, "misconfigured TLS: no client for this upstream");
            None
        }
    }
}

/// The query clients of the configured observability backends, for the `obs.*` agent tools
/// (`sre_actors::tools::read_tools`): each through its own circuit, TLS options and
/// credentials; Grafana with the `api_key` of its `secret_ref` (a key that cannot be read is
/// logged and Grafana is left without a client, rather than called unauthenticated).
pub fn obs_clients(config: &Config, providers: &Providers) -> ObsClients {
    let Some(o) = config.observability() else {
        return ObsClients::default();
    };
    let backend = |name: &str| {
        let url = match name {
            "prometheus" => o.prometheus.as_ref(),
            "loki" => o.loki.as_ref(),
            _ => o.tempo.as_ref(),
        }?
        .url
        .clone();
        let (client, credentials) = query_client(config, providers, name)?;
        Some((client, url, credentials))
    };
    let grafana = o.grafana.as_ref().and_then(|g| {
        let client = providers.client("grafana")?;
        let key = match &g.secret_ref {
            None => None,
            Some(r) => match SecretStore::new(&config.secrets.dir).read(r, "api_key") {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(error = %e, "grafana API key unreadable: no obs.get_dashboard_url");
                    return None;
                }
            },
        };
        Some(GrafanaClient::new(client, g.url.clone(), key))
    });
    ObsClients {
        prometheus: backend("prometheus")
            .map(|(c, u, cr)| PrometheusClient::new(c, u).with_credentials(cr)),
        loki: backend("loki").map(|(c, u, cr)| LokiClient::new(c, u).with_credentials(cr)),
        tempo: backend("tempo").map(|(c, u, cr)| TempoClient::new(c, u).with_credentials(cr)),
        grafana,
    }
}

/// The SLI schedule and the Prometheus it queries, when both are configured.
fn sli_calculation(config: &Config) -> Option<(SliCalculation, reqwest::Url)> {
    let o = config.observability()?;
    Some((
        o.sli_calculation.clone()?,
        o.prometheus.as_ref()?.url.clone(),
    ))
}

/// The restart policy of `supervision.restart`.
pub fn restart_policy(r: &RestartConfig) -> RestartPolicy {
    RestartPolicy {
        backoff_min: r.backoff_min,
        backoff_max: r.backoff_max,
        jitter: r.jitter,
        max_restarts: r.max_restarts,
        period: r.period,
        cool_down: r.cool_down,
    }
}

/// A running program.
pub struct AppHandle {
    root: ActorRef<SupervisorMsg>,
    join: tokio::task::JoinHandle<()>,
    bound: watch::Receiver<Option<SocketAddr>>,
    readiness: Readiness,
    observer: Observer,
    providers: Providers,
    reader: Option<ClusterReader>,
    facts: FactsMetrics,
    config: Config,
    tools_bound: Option<watch::Receiver<Option<SocketAddr>>>,
}

impl AppHandle {
    /// Builds and starts the tree; returns once every child has been started once.
    pub async fn start(config: Config) -> Result<AppHandle, AppError> {
        AppHandle::start_with(config, Vec::new(), fact_targets).await
    }

    /// [`AppHandle::start`], serving `extra` agent tools beside those of [`agent_tools`]
    /// (embedders, tests).
    pub async fn start_with_tools(
        config: Config,
        extra: Vec<Arc<dyn Tool>>,
    ) -> Result<AppHandle, AppError> {
        AppHandle::start_with(config, extra, fact_targets).await
    }

    /// [`AppHandle::start`] with the fact targets made by `targets` (tests, embedders).
    pub async fn start_with_targets(
        config: Config,
        targets: impl FnOnce(
            &Config,
            &Providers,
            &mut Registry,
        ) -> Result<Vec<Arc<dyn FactAction>>, String>,
    ) -> Result<AppHandle, AppError> {
        AppHandle::start_with(config, Vec::new(), targets).await
    }

    /// [`AppHandle::start`] with `extra` agent tools and the fact targets made by `targets`.
    pub async fn start_with(
        config: Config,
        extra: Vec<Arc<dyn Tool>>,
        targets: impl FnOnce(
            &Config,
            &Providers,
            &mut Registry,
        ) -> Result<Vec<Arc<dyn FactAction>>, String>,
    ) -> Result<AppHandle, AppError> {
        sre_actors::providers::client::install_crypto_provider();
        let mut registry = Registry::default();
        let observer = Observer::new(&mut registry);
        let providers = Providers::new(&config, ProviderMetrics::new(&mut registry));
        let ingest_metrics = IngestMetrics::new(&mut registry);
        let argo_metrics = ArgoMetrics::new(&mut registry);
        let sli_metrics = SliMetrics::new(&mut registry);
        let probe_metrics = ProbeMetrics::new(&mut registry);
        let kube_metrics = KubeMetrics::new(&mut registry);
        let http_metrics = HttpMetrics::new(&mut registry);
        let tool_metrics = ToolMetrics::new(&mut registry);
        let mcp_metrics = McpMetrics::new(&mut registry);
        let facts_metrics = FactsMetrics::new(&mut registry);
        let readiness = Readiness::new(INGEST);
        let fact_targets = if config.facts.enabled {
            match targets(&config, &providers, &mut registry) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(error = %e, "a fact target cannot be built: the facts consumer does not run");
                    readiness.set_degraded(
                        "facts targets",
                        Some(format!("facts consumer not running: {e}")),
                    );
                    None
                }
            }
        } else {
            None
        };
        report_missing_secrets(&config);
        for section in not_yet_served(&config) {
            tracing::warn!(section, "enabled in the configuration but not served by this build yet; only its circuits (if any) run");
        }

        let policy = restart_policy(&config.supervision.restart);
        let sink = sink(&config);
        let rebuild = rebuild_from(sink.clone(), ingest_metrics.clone());
        let publisher = PublisherArgs {
            sink,
            slot: ActorSlot::default(),
            metrics: ingest_metrics.clone(),
            readiness: readiness.clone(),
        };
        let publisher_slot = publisher.slot.clone();
        let mut ingest =
            SupervisorSpec::new(INGEST, policy.clone(), observer.clone())
                .child(ChildSpec::actor("publisher", move || {
                    (IntentPublisher, publisher.clone())
                }));
        let mut webhook_routes = None;
        let sli_config = sli_calculation(&config);
        let dedup = (config.alertmanager().is_some()
            || config.kubernetes().is_some()
            || config.argocd().is_some()
            || sli_config.is_some())
        .then(|| dedup_child(&config, &ingest_metrics, rebuild.clone()));
        if let Some((child, _, _)) = &dedup {
            ingest = ingest.child(child.clone());
        }
        if let (Some(am), Some((_, slot, window))) = (config.alertmanager(), &dedup) {
            let (children, routes) = alert_path(
                &config,
                &am,
                &ingest_metrics,
                &readiness,
                publisher_slot.clone(),
                (slot.clone(), window.clone()),
            );
            for c in children {
                ingest = ingest.child(c);
            }
            webhook_routes = Some(routes);
        }
        let reader = cluster_reader(&config, &providers);
        let mut tools_children = Vec::new();
        let mut tools_routes = None;
        let mut tools_bound = None;
        if config.tools.enabled {
            let mut tools = agent_tools(&ToolDeps {
                config: &config,
                providers: &providers,
                kubernetes: reader.as_ref(),
            });
            tools.extend(extra);
            let (gate, routes) = tool_gateway(&config, tools, tool_metrics, mcp_metrics)?;
            let sweeper = SweeperArgs {
                interval: interval_for(gate.approval_ttl()),
                gateway: gate,
            };
            tools_children.push(ChildSpec::actor("sweeper", move || {
                (ApprovalSweeper, sweeper.clone())
            }));
            match config.tools.listen {
                Some(listen) => {
                    let (tx, rx) = watch::channel(None);
                    tools_bound = Some(rx);
                    let args = HttpServerArgs {
                        listen,
                        router: routes,
                        bound: tx,
                        drain_timeout: config.server.drain_timeout,
                        limits: Limits::from(&config.server),
                        metrics: http_metrics.clone(),
                    };
                    tools_children
                        .push(ChildSpec::actor("http", move || (HttpServer, args.clone())));
                }
                None => tools_routes = Some(routes),
            }
        }
        let root_cell = Arc::new(std::sync::OnceLock::new());
        let ops = OpsState {
            registry: Arc::new(registry),
            observer: observer.clone(),
            circuits: providers.board().clone(),
            readiness: readiness.clone(),
            root: root_cell.clone(),
            allow_restart: config.server.allow_restart,
            access: ops_access(&config),
            root_name: ROOT,
            circuits_supervisor: PROVIDERS,
        };
        let mut router = ops_router(ops);
        if let Some(routes) = webhook_routes {
            router = router.merge(routes);
        }
        if let Some(routes) = tools_routes {
            router = router.merge(routes);
        }
        let (bound_tx, bound) = watch::channel(None);
        let http_args = HttpServerArgs {
            listen: config.server.listen,
            router,
            bound: bound_tx,
            drain_timeout: config.server.drain_timeout,
            limits: Limits::from(&config.server),
            metrics: http_metrics,
        };
        let ingest = ingest.child(ChildSpec::actor("http", move || {
            (HttpServer, http_args.clone())
        }));
        let root = SupervisorSpec::new(ROOT, policy.clone(), observer.clone())
            .child(ChildSpec::supervisor(
                providers.supervisor(policy.clone(), observer.clone()),
            ))
            .child(ChildSpec::supervisor(ingest));
        let watchers = cluster_watchers(
            &config,
            &providers,
            &kube_metrics,
            &readiness,
            &publisher_slot,
            dedup.as_ref().map(|(_, slot, _)| slot.clone()),
        );
        let pollers = argocd_pollers(
            &config,
            &providers,
            &argo_metrics,
            &readiness,
            Delivery::new(
                dedup.as_ref().map(|(_, slot, _)| slot.clone()),
                DedupSource::Argocd,
                Emitter::Publisher(publisher_slot.clone()),
                settle_timeout(&config),
            ),
        );
        let schedulers = sli_config.and_then(|(sli, url)| {
            let (client, credentials) = query_client(&config, &providers, "prometheus")?;
            let args = SliArgs {
                config: sli,
                prometheus: PrometheusClient::new(client, url).with_credentials(credentials),
                delivery: Delivery::new(
                    dedup.as_ref().map(|(_, slot, _)| slot.clone()),
                    DedupSource::Sli,
                    Emitter::Publisher(publisher_slot.clone()),
                    settle_timeout(&config),
                ),
                recent: rebuild,
                topic: config.intents.topic.clone(),
                source: format!("{}/sli", config.intents.source),
                clock: wall_clock(),
                progress: Default::default(),
                metrics: sli_metrics,
            };
            Some(vec![ChildSpec::actor("scheduler", move || {
                (SliScheduler, args.clone())
            })])
        });
        let probes = upstream_probes(&config, &providers, &readiness, &probe_metrics);
        let facts = fact_targets
            .and_then(|targets| facts_children(&config, targets, &facts_metrics, &readiness));
        let mut root = root;
        for (name, children) in [
            (CLUSTERS, watchers),
            (ARGOCD, pollers),
            (SLI, schedulers),
            (PROBES, probes),
            (
                TOOLS,
                (!tools_children.is_empty()).then_some(tools_children),
            ),
            (FACTS, facts),
        ] {
            if let Some(children) = children {
                let spec = children.into_iter().fold(
                    SupervisorSpec::new(name, policy.clone(), observer.clone()),
                    SupervisorSpec::child,
                );
                root = root.child(ChildSpec::supervisor(spec));
            }
        }

        let (root, join) = Actor::spawn(None, Supervisor, root).await?;
        let _ = root_cell.set(root.clone());
        sre_supervision::wait_started(&root)
            .await
            .map_err(|_| AppError::Start)?;
        readiness.mark_started();
        tracing::info!(
            circuits = providers.upstreams().len(),
            "supervision tree started"
        );
        Ok(AppHandle {
            root,
            join,
            bound,
            readiness,
            observer,
            providers,
            reader,
            facts: facts_metrics,
            config,
            tools_bound,
        })
    }

    /// The address of the tools' own listener (`tools.listen`), once bound; `None` when the
    /// tools are served on the main listener (or not at all).
    pub async fn tools_addr(&self) -> Option<SocketAddr> {
        let mut rx = self.tools_bound.clone()?;
        let bound = rx.wait_for(Option::is_some).await.ok()?;
        *bound
    }

    /// The facts metrics (consumed facts, actions, dead letters, waiting partitions).
    pub fn facts_metrics(&self) -> &FactsMetrics {
        &self.facts
    }

    /// The address the HTTP server is bound to (waits for the first bind).
    pub async fn addr(&self) -> Option<SocketAddr> {
        let mut rx = self.bound.clone();
        let bound = rx.wait_for(Option::is_some).await.ok()?;
        *bound
    }

    /// The supervision observer (tree and metrics).
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// The Kubernetes read API across the configured clusters (when enabled); the agent tools
    /// use it.
    pub fn kubernetes(&self) -> Option<&ClusterReader> {
        self.reader.as_ref()
    }

    /// The provider circuits and clients.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Readiness.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The root supervisor.
    pub fn root(&self) -> &ActorRef<SupervisorMsg> {
        &self.root
    }

    /// Waits until the root supervisor ends (it only does when stopped).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.join).await;
    }

    /// Graceful shutdown: readiness false, wait `shutdown_grace` so load balancers notice, then
    /// stop the tree top-down (the listener drains in-flight requests first).
    pub async fn shutdown(self) {
        self.readiness.mark_draining();
        tracing::info!(
            grace_ms = self.config.server.shutdown_grace.as_millis() as u64,
            "shutting down: readiness is false"
        );
        tokio::time::sleep(self.config.server.shutdown_grace).await;
        let _ = self.root.stop_and_wait(Some("shutdown".into()), None).await;
        let _ = self.join.await;
        tracing::info!("stopped");
    }
}

/// Logs every missing secret against the integration that needs it; that integration fails
/// alone when it starts, the rest of the program runs.
fn report_missing_secrets(config: &Config) {
    let store = SecretStore::new(&config.secrets.dir);
    if let Err(errors) = config.check_secrets(&store, "secrets") {
        for e in errors.0 {
            tracing::error!(key = %e.path, reason = %e.message, "secret missing: the integration that needs it cannot work until it is mounted");
        }
    }
}

/// The dedup window's settings: AlertManager's `idempotency`, else the defaults (5 minutes,
/// 1,000,000 keys).
fn idempotency(config: &Config) -> Idempotency {
    config
        .alertmanager()
        .map_or_else(Idempotency::default, |am| am.idempotency)
}

/// Longest a producer's publish may go on (after its request was answered, for the webhook)
/// before its claims are released: three times `intents.publish_timeout`.
fn settle_timeout(config: &Config) -> Duration {
    config.intents.publish_timeout.saturating_mul(3)
}

/// The dedup actor (shared by the webhook and the cluster watchers), its slot and window.
fn dedup_child(
    config: &Config,
    metrics: &IngestMetrics,
    rebuild: Rebuild,
) -> (ChildSpec, ActorSlot<DedupMsg>, Arc<Window>) {
    let slot: ActorSlot<DedupMsg> = ActorSlot::default();
    let shared = Arc::new(Window::default());
    let (idempotency, dedup_metrics) = (idempotency(config), metrics.clone());
    // Longer than any producer's own deadline, so only claims whose owner vanished without a
    // trace are swept (the cluster watchers wait 30 s at most).
    let claim_lease = settle_timeout(config).max(Duration::from_secs(30)) + Duration::from_secs(5);
    let (slot_fn, window_fn) = (slot.clone(), shared.clone());
    let child = ChildSpec::actor("dedup", move || {
        (
            Dedup,
            DedupArgs {
                window: idempotency.dedup_window,
                max_entries: idempotency.max_entries,
                claim_lease,
                shared: window_fn.clone(),
                slot: slot_fn.clone(),
                rebuild: rebuild.clone(),
                metrics: dedup_metrics.clone(),
            },
        )
    });
    (child, slot, shared)
}

/// The alert path's router actor and the webhook route.
fn alert_path(
    config: &Config,
    am: &AlertmanagerConfig,
    metrics: &IngestMetrics,
    readiness: &Readiness,
    publisher: ActorSlot<PublisherMsg>,
    (dedup_slot, shared): (ActorSlot<DedupMsg>, Arc<Window>),
) -> (Vec<ChildSpec>, axum::Router) {
    let router_args = RouterArgs {
        topic: config.intents.topic.clone(),
        source: format!("{}/alertmanager", config.intents.source),
        auto_create: am.auto_create_incident.clone(),
        slot: ActorSlot::default(),
    };
    let children = vec![ChildSpec::actor("router", {
        let a = router_args.clone();
        move || (AlertRouter, a.clone())
    })];
    let auth = webhook_auth(config, &am.auth, readiness);
    let webhook = Webhook::new(WebhookParts {
        auth,
        key_source: am.idempotency.key_source,
        max_alerts: am.max_alerts,
        publish_timeout: config.intents.publish_timeout,
        settle_timeout: settle_timeout(config),
        window: shared,
        dedup: dedup_slot,
        router: router_args.slot,
        publisher,
        metrics: metrics.clone(),
    });
    (
        children,
        webhook.router(&am.webhook_path, am.max_body_bytes),
    )
}

/// Reads the webhook's credentials; a missing secret makes the webhook answer 503 with the
/// reason (never lets requests in unauthenticated) and holds readiness.
fn webhook_auth(config: &Config, auth: &WebhookAuth, readiness: &Readiness) -> Auth {
    let store = SecretStore::new(&config.secrets.dir);
    let resolved = match auth {
        WebhookAuth::None => Ok(Auth::None),
        WebhookAuth::Bearer { secret_ref } => store.read(secret_ref, "token").map(Auth::Bearer),
        WebhookAuth::Basic { secret_ref } => {
            store.read(secret_ref, "username").and_then(|username| {
                store
                    .read(secret_ref, "password")
                    .map(|password| Auth::Basic { username, password })
            })
        }
    };
    resolved.unwrap_or_else(|e| {
        let why = e.to_string();
        readiness.set_condition("webhook credentials", Some(why.clone()));
        Auth::Unavailable(why)
    })
}

/// Who may use the operator endpoints: anyone without `server.ops_auth`, else the bearer of
/// its token; an unreadable token closes them (503) rather than opening them.
fn ops_access(config: &Config) -> OpsAccess {
    let Some(auth) = &config.server.ops_auth else {
        return OpsAccess::Open;
    };
    match SecretStore::new(&config.secrets.dir).read(&auth.secret_ref, "token") {
        Ok(token) => OpsAccess::Bearer(token),
        Err(e) => OpsAccess::Unavailable(e.to_string()),
    }
}

/// The configured sink (the publisher writes to it; the dedup window is rebuilt from it).
fn sink(config: &Config) -> Arc<dyn Sink> {
    let topic = config.intents.topic.clone();
    match config.intents.sink {
        SinkKind::Embedded => {
            let e = &config.intents.embedded;
            Arc::new(EmbeddedSink::new(
                e.data_dir.join(&topic),
                LogOptions {
                    segment_bytes: e.segment_bytes,
                    retention_age: e.retention_age,
                    retention_bytes: e.retention_bytes,
                    ..LogOptions::default()
                },
            ))
        }
        SinkKind::Kafka => Arc::new(KafkaSink::new(
            KafkaOptions::from_config(&config.intents.kafka, SecretStore::new(&config.secrets.dir)),
            topic,
        )),
    }
}

/// One `ClusterWatcher` per configured cluster, each behind `k8s:<cluster>`.
fn cluster_watchers(
    config: &Config,
    providers: &Providers,
    metrics: &KubeMetrics,
    readiness: &Readiness,
    publisher: &ActorSlot<PublisherMsg>,
    dedup: Option<ActorSlot<DedupMsg>>,
) -> Option<Vec<ChildSpec>> {
    let k = config.kubernetes()?;
    let watchers = k
        .clusters
        .iter()
        .filter_map(|cluster| {
            let guard = k8s_guard(providers, &cluster.name)?;
            let args = WatcherArgs {
                cluster: cluster.clone(),
                watch: k.watch.clone(),
                poll_interval: k.poll_interval,
                secrets: SecretStore::new(&config.secrets.dir),
                guard,
                context: Context {
                    cluster: cluster.name.clone(),
                    topic: config.intents.topic.clone(),
                    source: format!("{}/kubernetes/{}", config.intents.source, cluster.name),
                },
                delivery: Delivery::new(
                    dedup.clone(),
                    DedupSource::Kubernetes,
                    Emitter::Publisher(publisher.clone()),
                    settle_timeout(config),
                ),
                metrics: metrics.clone(),
                readiness: readiness.clone(),
            };
            Some(ChildSpec::actor(cluster.name.clone(), move || {
                (ClusterWatcher, args.clone())
            }))
        })
        .collect();
    Some(watchers)
}

/// The circuit, timeout, retries and metrics of cluster `name`'s requests (`k8s:<name>`).
fn k8s_guard(providers: &Providers, name: &str) -> Option<Guard> {
    let provider = format!("k8s:{name}");
    Some(Guard {
        circuit: providers.circuit(&provider)?.clone(),
        policy: providers.policy(&provider)?,
        metrics: providers.metrics().clone(),
    })
}

/// The read API over the configured clusters, each behind `k8s:<cluster>`.
fn cluster_reader(config: &Config, providers: &Providers) -> Option<ClusterReader> {
    let k = config.kubernetes()?;
    Some(ClusterReader::new(
        k.clusters.clone(),
        SecretStore::new(&config.secrets.dir),
        |name| k8s_guard(providers, name),
        k.log_tail_lines,
    ))
}

/// One `EnvPoller` per enabled ArgoCD environment, each calling out through `argocd:<env>`.
fn argocd_pollers(
    config: &Config,
    providers: &Providers,
    metrics: &ArgoMetrics,
    readiness: &Readiness,
    delivery: Delivery,
) -> Option<Vec<ChildSpec>> {
    let a = config.argocd()?;
    let pollers = config
        .argocd_environments()
        .into_iter()
        .filter_map(|env| {
            let tls = TlsOptions {
                ca_pem_path: env.ca_cert_path.clone(),
                insecure: env.insecure,
            };
            let client = providers.client_with_tls(&format!("argocd:{}", env.name), &tls)?;
            let name = env.name.clone();
            let args = PollerArgs {
                env,
                interval: a.poll_interval,
                client,
                secrets: SecretStore::new(&config.secrets.dir),
                topic: config.intents.topic.clone(),
                source: format!("{}/argocd", config.intents.source),
                delivery: delivery.clone(),
                metrics: metrics.clone(),
                readiness: readiness.clone(),
            };
            Some(ChildSpec::actor(name, move || (EnvPoller, args.clone())))
        })
        .collect();
    Some(pollers)
}
