//! Wiring: builds the supervision tree from the configuration, starts it, and stops it
//! top-down.
//!
//! ```text
//! root
//! ├── providers   one ProviderCircuit per upstream (jira, github, ..., argocd:<env>, k8s:<cluster>)
//! └── ingest      http (the HttpServer actor: webhooks and the operator endpoints)
//! ```
//!
//! Start order is the order above (circuits exist before anything that calls out; the listener
//! opens last); shutdown runs in reverse, so the listener closes first and drains.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use ractor::{Actor, ActorRef};
use sre_actors::providers::{ProviderMetrics, Providers};
use sre_config::{Config, RestartConfig, SecretStore};
use sre_supervision::{
    ChildSpec, Observer, RestartPolicy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use tokio::sync::watch;

use crate::http::server::{HttpServer, HttpServerArgs};
use crate::http::{ops_router, OpsState};
use crate::readiness::Readiness;

/// Name of the root supervisor.
pub const ROOT: &str = "root";
/// Name of the supervisor of the provider circuits.
pub const PROVIDERS: &str = "providers";
/// Name of the supervisor of the webhook path.
pub const INGEST: &str = "ingest";

/// Why the program could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The root supervisor did not start.
    #[error("cannot start the supervision tree: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// The tree did not finish starting.
    #[error("supervision tree stopped while starting")]
    Start,
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
    config: Config,
}

impl AppHandle {
    /// Builds and starts the tree; returns once every child has been started once.
    pub async fn start(config: Config) -> Result<AppHandle, AppError> {
        sre_actors::providers::client::install_crypto_provider();
        let mut registry = Registry::default();
        let observer = Observer::new(&mut registry);
        let providers = Providers::new(&config, ProviderMetrics::new(&mut registry));
        let readiness = Readiness::default();
        report_missing_secrets(&config);

        let policy = restart_policy(&config.supervision.restart);
        let ops = OpsState {
            registry: Arc::new(registry),
            observer: observer.clone(),
            circuits: providers.board().clone(),
            readiness: readiness.clone(),
        };
        let router = ops_router(ops);
        let (bound_tx, bound) = watch::channel(None);
        let http_args = HttpServerArgs {
            listen: config.server.listen,
            router,
            bound: bound_tx,
            drain_timeout: config.server.drain_timeout,
        };
        let ingest =
            SupervisorSpec::new(INGEST, policy.clone(), observer.clone())
                .child(ChildSpec::actor("http", move || {
                    (HttpServer, http_args.clone())
                }));
        let root = SupervisorSpec::new(ROOT, policy.clone(), observer.clone())
            .child(ChildSpec::supervisor(
                providers.supervisor(policy.clone(), observer.clone()),
            ))
            .child(ChildSpec::supervisor(ingest));

        let (root, join) = Actor::spawn(None, Supervisor, root).await?;
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
            config,
        })
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
