//! A cluster's kube client: built from the cluster's kubeconfig (a mounted Secret's
//! `kubeconfig` key, a file, or the pod's service account), with every request passing the
//! cluster's circuit `k8s:<cluster>` through [`CircuitLayer`], which treats Kubernetes like
//! every other upstream ([`crate::providers`]):
//!
//! - the request waits for a permit (an open circuit fails it at once); the permit is a drop
//!   guard, so a request dropped mid-flight (a watch torn down, a reader's caller gone) gives
//!   its half-open trial slot back;
//! - it carries an `x-correlation-id` (the caller's, or a fresh one per logical request, the
//!   same on every retry) and runs in an `upstream_call` span with `provider` and
//!   `correlation_id`, like the shared client's calls;
//! - the response headers must arrive within the upstream timeout, and every body but a
//!   stream's (watch, followed logs) within [`MAX_BODY_BYTES`] and [`body_limit`]'s deadline,
//!   or kube-rs's read of it fails with a [`BodyError`](crate::providers::BodyError);
//! - the outcome is classified by [`crate::providers::outcome::classify`], counted in
//!   `sre_upstream_requests_total` / `sre_upstream_request_duration_seconds`, and recorded in
//!   the circuit once the body is read (a body too large or too slow counts as a failure):
//!   throttling (429) never counts against it;
//! - idempotent reads (GET, but not watch or `follow` streams) are retried on the retryable
//!   outcomes with the shared [`RetrySchedule`] (backoff, `Retry-After` up to
//!   `max_retry_after`, at most `max_attempts`); watches and writes are sent once. kube's own
//!   retry layer is switched off, so every attempt is seen, bounded and counted here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, Uri};
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use sre_config::{ClusterConfig, SecretStore};
use tokio::time::Instant;
use tracing::Instrument;

use crate::providers::body::{BodyLimit, BoundedBody, Settle};
use crate::providers::outcome::{classify, Outcome};
use crate::providers::retry::{GiveUp, RetrySchedule};
use crate::providers::{CallPolicy, CircuitHandle, ProviderMetrics, CORRELATION_HEADER};

/// The largest Kubernetes response body read (a list of 5,000 large objects fits).
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// The least time a Kubernetes response body is given (the upstream timeout when longer).
pub const MIN_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The bounds of a Kubernetes response body under `policy`: [`MAX_BODY_BYTES`], within the
/// upstream timeout but at least [`MIN_BODY_TIMEOUT`].
pub fn body_limit(policy: &CallPolicy) -> BodyLimit {
    BodyLimit {
        max_bytes: MAX_BODY_BYTES,
        timeout: policy.timeout.max(MIN_BODY_TIMEOUT),
    }
}

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
    /// Timeout until response headers (watches answer headers at once) and the retries of
    /// idempotent reads (`supervision.retry` with the upstream's timeout).
    pub policy: CallPolicy,
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
    guarded_client(config(cluster, secrets).await?, guard)
}

/// A client for `config` with every request behind `guard` (and kube's own retries off: the
/// guard retries, counting every attempt).
pub fn guarded_client(mut config: kube::Config, guard: Guard) -> Result<kube::Client, ClientError> {
    config.connect_timeout = Some(guard.policy.timeout);
    config.default_retry = false;
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
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            guard: self.0.clone(),
        }
    }
}

/// The service [`CircuitLayer`] makes. kube's stack below it is not `Clone`, so it is shared
/// behind a lock that is held only to hand a request to it (never while a response is awaited).
#[derive(Debug)]
pub struct CircuitService<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    guard: Guard,
}

impl<S> Clone for CircuitService<S> {
    fn clone(&self) -> Self {
        CircuitService {
            inner: self.inner.clone(),
            guard: self.guard.clone(),
        }
    }
}

/// A request timed out before its response headers.
#[derive(Debug, thiserror::Error)]
#[error("{provider}: no response within {timeout:?}")]
pub struct TimedOut {
    provider: String,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<Request<Body>> for CircuitService<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Unpin + Send + 'static,
{
    type Response = Response<BoundedBody<B>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service's readiness is awaited per attempt, under its lock.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let correlation_id = req
            .headers()
            .get(CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span = tracing::info_span!(
            "upstream_call",
            provider = %self.guard.circuit.name(),
            correlation_id = %correlation_id,
        );
        let (inner, guard) = (self.inner.clone(), self.guard.clone());
        Box::pin(guarded(inner, guard, req, correlation_id).instrument(span))
    }
}

/// Whether a request asks for a stream (a watch, followed logs): its body is not bounded.
pub fn is_stream(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|pair| {
            matches!(
                pair.split_once('='),
                Some(("watch" | "follow", "true" | "1"))
            )
        })
    })
}

/// Whether a request may be sent again: a GET that is not a stream.
pub fn is_idempotent_read(method: &Method, uri: &Uri) -> bool {
    method == Method::GET && !is_stream(uri)
}

/// One logical request: its attempts, each behind a permit, classified and counted.
async fn guarded<S, B>(
    inner: Arc<tokio::sync::Mutex<S>>,
    guard: Guard,
    req: Request<Body>,
    correlation_id: String,
) -> Result<Response<BoundedBody<B>>, BoxError>
where
    S: tower::Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body,
{
    let provider = guard.circuit.name().to_owned();
    let (mut parts, body) = req.into_parts();
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        parts.headers.insert(CORRELATION_HEADER, v);
    }
    // Only a read whose body can be replayed (a GET's is empty) is ever sent twice.
    let stream = is_stream(&parts.uri);
    let replay = if is_idempotent_read(&parts.method, &parts.uri) {
        body.try_clone()
    } else {
        None
    };
    let mut first = Some(body);
    let mut schedule = RetrySchedule::new(&guard.policy);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let body = match first.take() {
            Some(b) => b,
            None => replay
                .as_ref()
                .and_then(Body::try_clone)
                .unwrap_or_else(Body::empty),
        };
        let permit = match guard.circuit.acquire().await {
            Ok(p) => p,
            Err(e) => {
                guard.metrics.count(&provider, Outcome::CircuitOpen);
                return Err(Box::new(e));
            }
        };
        let started = Instant::now();
        let result = tokio::time::timeout(
            guard.policy.timeout,
            send(&inner, Request::from_parts(parts.clone(), body)),
        )
        .await;
        guard
            .metrics
            .observe(&provider, started.elapsed().as_secs_f64());
        let (outcome, retry_after, result) = match result {
            Err(_) => (
                Outcome::Timeout,
                None,
                Err(Box::new(TimedOut {
                    provider: provider.clone(),
                    timeout: guard.policy.timeout,
                }) as BoxError),
            ),
            Ok(Err(e)) => (Outcome::Transport, None, Err(e)),
            Ok(Ok(resp)) => {
                let c = classify(resp.status(), resp.headers());
                (c.outcome, c.retry_after, Ok(resp))
            }
        };
        let delay = if replay.is_some() && outcome.retryable() {
            match schedule.next_delay(retry_after) {
                Ok(d) => Some(d),
                Err(GiveUp::Exhausted) => None,
                Err(GiveUp::WaitTooLong(wait)) => {
                    tracing::warn!(
                        attempt,
                        wait_s = wait.as_secs(),
                        "API server asks for a longer wait than allowed"
                    );
                    None
                }
            }
        } else {
            None
        };
        let resp = match (delay, result) {
            (None, Ok(resp)) => resp,
            (delay, result) => {
                guard.metrics.count(&provider, outcome);
                permit.record(!outcome.counts_against_circuit());
                let Some(delay) = delay else {
                    return result.map(|r| r.map(BoundedBody::unlimited));
                };
                tracing::info!(
                    attempt,
                    outcome = outcome.label(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying a read"
                );
                drop(result);
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        if stream {
            // A watch's body lasts as long as the watch: its headers are its outcome.
            guard.metrics.count(&provider, outcome);
            permit.record(!outcome.counts_against_circuit());
            return Ok(resp.map(BoundedBody::unlimited));
        }
        // Counted and recorded once kube-rs has read the body (or failed to).
        let settle = Settle::new(permit, guard.metrics.clone(), provider, outcome);
        let limit = body_limit(&guard.policy);
        return Ok(resp.map(|b| BoundedBody::new(b, limit, Some(settle))));
    }
}

/// Hands one request to kube's stack once it is ready; the lock is let go before the
/// response is awaited.
async fn send<S, B>(
    inner: &tokio::sync::Mutex<S>,
    req: Request<Body>,
) -> Result<Response<B>, BoxError>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    let call = {
        let mut svc = inner.lock().await;
        std::future::poll_fn(|cx| svc.poll_ready(cx))
            .await
            .map_err(Into::into)?;
        svc.call(req)
    };
    call.await.map_err(Into::into)
}
