//! A cluster's kube client: built from the cluster's kubeconfig (a mounted Secret's
//! `kubeconfig` key, a file, or the pod's service account), with every request passing the
//! cluster's circuit `k8s:<cluster>` through [`CircuitLayer`]: the request waits for a permit
//! (an open circuit fails it at once), the response headers must arrive within the upstream
//! timeout, and the outcome is recorded in the circuit and in `sre_upstream_requests_total` /
//! `sre_upstream_request_duration_seconds` like every other upstream's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use kube::config::{KubeConfigOptions, Kubeconfig};
use sre_config::{ClusterConfig, SecretStore};
use tokio::time::Instant;

use crate::providers::metrics::{OutcomeLabels, ProviderLabel};
use crate::providers::{CircuitHandle, ProviderMetrics};

/// Why a cluster's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig Secret could not be read.
    #[error("cannot read the kubeconfig secret: {0}")]
    Secret(String),
    /// The kubeconfig is not usable.
    #[error("invalid kubeconfig: {0}")]
    Kubeconfig(String),
    /// Not running in a pod (or its service account is not mounted).
    #[error("in-cluster configuration unavailable: {0}")]
    InCluster(String),
    /// The cluster names no way to reach it.
    #[error("no kubeconfig_secret_ref, kubeconfig_path or in_cluster")]
    NoSource,
    /// The HTTP stack could not be built (TLS material).
    #[error("cannot build the client: {0}")]
    Build(String),
}

/// How a cluster's requests are guarded.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The cluster's circuit.
    pub circuit: CircuitHandle,
    /// Time allowed until response headers (watches answer headers at once).
    pub timeout: Duration,
    /// Upstream metrics.
    pub metrics: ProviderMetrics,
}

/// The kube configuration of `cluster`.
pub async fn config(
    cluster: &ClusterConfig,
    secrets: &SecretStore,
) -> Result<kube::Config, ClientError> {
    let options = KubeConfigOptions::default();
    if let Some(r) = &cluster.kubeconfig_secret_ref {
        let yaml = secrets
            .read(r, "kubeconfig")
            .map_err(|e| ClientError::Secret(e.to_string()))?;
        let kc = Kubeconfig::from_yaml(yaml.expose())
            .map_err(|e| ClientError::Kubeconfig(e.to_string()))?;
        return kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| ClientError::Kubeconfig(e.to_string()));
    }
    if let Some(path) = &cluster.kubeconfig_path {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| ClientError::Kubeconfig(format!("{}: {e}", path.display())))?;
        return kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| ClientError::Kubeconfig(format!("{}: {e}", path.display())));
    }
    if cluster.in_cluster {
        return kube::Config::incluster().map_err(|e| ClientError::InCluster(e.to_string()));
    }
    Err(ClientError::NoSource)
}

/// The client of `cluster`, guarded by `guard`.
pub async fn connect(
    cluster: &ClusterConfig,
    secrets: &SecretStore,
    guard: Guard,
) -> Result<kube::Client, ClientError> {
    let mut config = config(cluster, secrets).await?;
    config.connect_timeout = Some(guard.timeout);
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ClientError::Build(e.to_string()))?;
    Ok(builder.with_layer(&CircuitLayer(guard)).build())
}

/// The tower layer that puts a cluster's requests behind its circuit.
#[derive(Clone, Debug)]
pub struct CircuitLayer(pub Guard);

impl<S> tower::Layer<S> for CircuitLayer {
    type Service = CircuitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitService {
            inner,
            guard: self.0.clone(),
        }
    }
}

/// The service [`CircuitLayer`] makes.
#[derive(Clone, Debug)]
pub struct CircuitService<S> {
    inner: S,
    guard: Guard,
}

/// A request timed out before its response headers.
#[derive(Debug, thiserror::Error)]
#[error("{provider}: no response within {timeout:?}")]
pub struct TimedOut {
    provider: String,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, R, B> tower::Service<Request<R>> for CircuitService<S>
where
    S: tower::Service<Request<R>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    R: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<R>) -> Self::Future {
        // kube's stack is not `Clone`, so the call is made now (it is lazy: nothing is sent
        // until it is polled) and only polled once the circuit grants a permit.
        let call = self.inner.call(req);
        let guard = self.guard.clone();
        Box::pin(async move {
            let provider = guard.circuit.name().to_owned();
            let count = |outcome: &'static str| {
                guard
                    .metrics
                    .requests
                    .get_or_create(&OutcomeLabels {
                        provider: provider.clone(),
                        outcome,
                    })
                    .inc();
            };
            let permit = match guard.circuit.acquire().await {
                Ok(p) => p,
                Err(e) => {
                    count("circuit_open");
                    return Err(Box::new(e) as BoxError);
                }
            };
            let started = Instant::now();
            let result = tokio::time::timeout(guard.timeout, call).await;
            guard
                .metrics
                .duration
                .get_or_create(&ProviderLabel {
                    provider: provider.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            match result {
                Err(_) => {
                    count("timeout");
                    guard.circuit.record(permit, false);
                    Err(Box::new(TimedOut {
                        provider,
                        timeout: guard.timeout,
                    }) as BoxError)
                }
                Ok(Err(e)) => {
                    count("transport");
                    guard.circuit.record(permit, false);
                    Err(e.into())
                }
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let (outcome, ok) = if status.is_server_error() {
                        ("server_error", false)
                    } else if status.as_u16() == 429 {
                        ("throttled", false)
                    } else if status.is_client_error() {
                        ("client_error", true)
                    } else {
                        ("success", true)
                    };
                    count(outcome);
                    guard.circuit.record(permit, ok);
                    Ok(resp)
                }
            }
        })
    }
}
