//! Provider circuits and the outbound client: one [`ProviderCircuit`] actor per upstream
//! (`jira`, `github`, `pagerduty`, `opsgenie`, `prometheus`, `loki`, `tempo`, `grafana`,
//! `argocd:<env>`, `k8s:<cluster>`), created from the configuration under the `providers`
//! supervisor, and an [`UpstreamClient`] per upstream that every outbound call goes through.

pub mod body;
pub mod breaker;
pub mod circuit;
pub mod client;
pub mod metrics;
pub mod outcome;
pub mod retry;

use std::collections::BTreeMap;

use sre_config::{Config, RetryConfig, Upstream};
use sre_supervision::{ChildSpec, Observer, RestartPolicy, SupervisorSpec};

pub use body::{BodyError, BodyLimit};
pub use breaker::{BreakerConfig, CircuitState};
pub use circuit::{
    CallPermit, CircuitArgs, CircuitBoard, CircuitError, CircuitHandle, CircuitMsg,
    CircuitSnapshot, ProviderCircuit,
};
pub use client::{
    CallPolicy, TlsOptions, UpstreamClient, UpstreamError, UpstreamResponse, CORRELATION_HEADER,
};
pub use metrics::ProviderMetrics;
pub use outcome::{classify, Classified, Outcome};
pub use retry::{GiveUp, RetrySchedule};

/// The upstreams of a configuration, their circuits and clients.
#[derive(Clone, Debug)]
pub struct Providers {
    upstreams: Vec<Upstream>,
    handles: BTreeMap<String, CircuitHandle>,
    breaker: BreakerConfig,
    retry: RetryConfig,
    board: CircuitBoard,
    metrics: ProviderMetrics,
}

impl Providers {
    /// One circuit per upstream of the enabled integrations.
    pub fn new(config: &Config, metrics: ProviderMetrics) -> Self {
        Providers::from_upstreams(
            config.upstreams(),
            BreakerConfig::from(&config.supervision.circuit),
            config.supervision.retry.clone(),
            metrics,
        )
    }

    /// One circuit per listed upstream.
    pub fn from_upstreams(
        upstreams: Vec<Upstream>,
        breaker: BreakerConfig,
        retry: RetryConfig,
        metrics: ProviderMetrics,
    ) -> Self {
        let handles = upstreams
            .iter()
            .map(|u| (u.name.clone(), CircuitHandle::new(&u.name)))
            .collect();
        Providers {
            upstreams,
            handles,
            breaker,
            retry,
            board: CircuitBoard::default(),
            metrics,
        }
    }

    /// The `providers` supervisor with one circuit child per upstream.
    pub fn supervisor(&self, policy: RestartPolicy, observer: Observer) -> SupervisorSpec {
        let mut spec = SupervisorSpec::new("providers", policy, observer);
        for (name, handle) in &self.handles {
            let (handle, config, metrics, board) = (
                handle.clone(),
                self.breaker.clone(),
                self.metrics.clone(),
                self.board.clone(),
            );
            spec = spec.child(ChildSpec::actor(name.clone(), move || {
                (
                    ProviderCircuit,
                    CircuitArgs {
                        config: config.clone(),
                        handle: handle.clone(),
                        metrics: metrics.clone(),
                        board: board.clone(),
                    },
                )
            }));
        }
        spec
    }

    /// The client for an upstream, if it is configured.
    pub fn client(&self, name: &str) -> Option<UpstreamClient> {
        let upstream = self.upstreams.iter().find(|u| u.name == name)?;
        let handle = self.handles.get(name)?.clone();
        Some(UpstreamClient::new(
            handle,
            CallPolicy::from_config(&self.retry, upstream.timeout),
            self.metrics.clone(),
        ))
    }

    /// The client for an upstream with its own TLS settings.
    pub fn client_with_tls(
        &self,
        name: &str,
        tls: &TlsOptions,
    ) -> Option<Result<UpstreamClient, String>> {
        let upstream = self.upstreams.iter().find(|u| u.name == name)?;
        let handle = self.handles.get(name)?.clone();
        Some(UpstreamClient::with_tls(
            handle,
            CallPolicy::from_config(&self.retry, upstream.timeout),
            self.metrics.clone(),
            tls,
        ))
    }

    /// The timeouts and retries of an upstream's calls, if it is configured.
    pub fn policy(&self, name: &str) -> Option<CallPolicy> {
        self.upstreams
            .iter()
            .find(|u| u.name == name)
            .map(|u| CallPolicy::from_config(&self.retry, u.timeout))
    }

    /// The upstream metrics (for callers with their own HTTP stack, like kube's).
    pub fn metrics(&self) -> &ProviderMetrics {
        &self.metrics
    }

    /// A circuit's handle.
    pub fn circuit(&self, name: &str) -> Option<&CircuitHandle> {
        self.handles.get(name)
    }

    /// Every circuit's snapshot.
    pub fn board(&self) -> &CircuitBoard {
        &self.board
    }

    /// The configured upstreams.
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }
}
