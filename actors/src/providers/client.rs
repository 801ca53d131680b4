//! The outbound client every integration uses to call an upstream. Per call it applies, in order:
//!
//! 1. the circuit's verdict — an open circuit fails fast with [`UpstreamError::CircuitOpen`];
//! 2. a per-attempt timeout (tokio time, so paused tests drive it);
//! 3. retries with exponential backoff and jitter for retriable failures only: transport errors,
//!    timeouts, 5xx and throttling (429, or 403 with `x-ratelimit-remaining: 0`);
//! 4. throttling waits honour `Retry-After` (seconds or HTTP date), `RateLimit-Reset` (seconds)
//!    and `X-RateLimit-Reset` (epoch seconds); a wait longer than `max_retry_after` fails the call;
//! 5. a correlation id in the `x-correlation-id` header of every attempt and in the span that
//!    every log line of the call carries.
//!
//! What counts against the circuit: transport errors, timeouts and 5xx. Throttling and other 4xx
//! show the upstream is alive and count as successes; 4xx other than throttling are returned to
//! the caller unretried.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};
use tokio::time::Instant;
use tracing::Instrument;

use super::body::{self, BodyError, BodyLimit, DEFAULT_MAX_BODY_BYTES, ERROR_TEXT_MAX_BYTES};
use super::circuit::{CallPermit, CircuitError, CircuitHandle};
use super::metrics::ProviderMetrics;
use super::outcome::{classify, Outcome};
use super::retry::{GiveUp, RetrySchedule};

/// The header that carries the correlation id.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Timeouts and retries for one upstream (`supervision.retry`, with the backend's timeout).
#[derive(Clone, Debug, PartialEq)]
pub struct CallPolicy {
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff_min: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
    /// Longest throttling wait honoured.
    pub max_retry_after: Duration,
}

impl CallPolicy {
    /// From `supervision.retry`, with a backend-specific timeout.
    pub fn from_config(r: &sre_config::RetryConfig, timeout: Duration) -> Self {
        CallPolicy {
            timeout,
            max_attempts: r.max_attempts,
            backoff_min: r.backoff_min,
            backoff_max: r.backoff_max,
            max_retry_after: r.max_retry_after,
        }
    }

    /// The default body limit: [`DEFAULT_MAX_BODY_BYTES`] within the per-attempt timeout.
    pub fn body_limit(&self) -> BodyLimit {
        BodyLimit {
            max_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: self.timeout,
        }
    }
}

/// Why an outbound call failed. Never contains credentials.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The circuit is open: the call was not made.
    #[error("{provider}: circuit open, not calling (retry in {retry_in:?})")]
    CircuitOpen {
        /// Upstream.
        provider: String,
        /// Time until the circuit lets a trial through.
        retry_in: Duration,
    },
    /// The circuit actor is restarting: the call was not made.
    #[error("{provider}: circuit restarting, not calling")]
    CircuitUnavailable {
        /// Upstream.
        provider: String,
    },
    /// Every attempt timed out.
    #[error("{provider}: timed out after {attempts} attempt(s) of {timeout:?}")]
    Timeout {
        /// Upstream.
        provider: String,
        /// Attempts made.
        attempts: u32,
        /// Per-attempt timeout.
        timeout: Duration,
    },
    /// The connection failed.
    #[error("{provider}: transport error after {attempts} attempt(s): {message}")]
    Transport {
        /// Upstream.
        provider: String,
        /// Attempts made.
        attempts: u32,
        /// What the HTTP client said.
        message: String,
    },
    /// The upstream kept answering 5xx.
    #[error("{provider}: HTTP {status} after {attempts} attempt(s): {body}")]
    Status {
        /// Upstream.
        provider: String,
        /// Last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Start of the last body.
        body: String,
    },
    /// The upstream kept throttling, or asked for a longer wait than allowed.
    #[error("{provider}: throttled after {attempts} attempt(s) (asked to wait {retry_after:?})")]
    Throttled {
        /// Upstream.
        provider: String,
        /// Attempts made.
        attempts: u32,
        /// The wait it asked for, if it said.
        retry_after: Option<Duration>,
    },
    /// The request could not be built (bad URL, body).
    #[error("{provider}: invalid request: {message}")]
    Request {
        /// Upstream.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// The response body was larger than the call allows.
    #[error("{provider}: response body larger than {limit} bytes")]
    BodyTooLarge {
        /// Upstream.
        provider: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The response body did not arrive in time, on every attempt.
    #[error("{provider}: response body not read within {timeout:?} after {attempts} attempt(s)")]
    BodyTimeout {
        /// Upstream.
        provider: String,
        /// Attempts made.
        attempts: u32,
        /// Time allowed for the body.
        timeout: Duration,
    },
}

impl UpstreamError {
    /// The outcome this failure is counted as.
    pub fn outcome(&self) -> Outcome {
        match self {
            UpstreamError::CircuitOpen { .. } | UpstreamError::CircuitUnavailable { .. } => {
                Outcome::CircuitOpen
            }
            UpstreamError::Timeout { .. } => Outcome::Timeout,
            UpstreamError::Transport { .. } | UpstreamError::Request { .. } => Outcome::Transport,
            UpstreamError::Status { .. } => Outcome::ServerError,
            UpstreamError::Throttled { .. } => Outcome::Throttled,
            UpstreamError::BodyTooLarge { .. } => Outcome::BodyTooLarge,
            UpstreamError::BodyTimeout { .. } => Outcome::BodyTimeout,
        }
    }
}

/// An upstream's answer: status, headers and the body, read within the call's limit.
#[derive(Clone, Debug)]
pub struct UpstreamResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl UpstreamResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// The body, owned.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// An HTTP client bound to one upstream, its circuit and its policy. Cheap to clone.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    http: Client,
    circuit: CircuitHandle,
    policy: CallPolicy,
    metrics: ProviderMetrics,
}

/// What one attempt came to.
enum Attempt {
    /// Hand the response to the caller.
    Done(UpstreamResponse),
    /// Fail without retrying.
    Fail(UpstreamError),
    /// Retry after at least this long (server's wish), or fail with the error.
    Retry {
        at_least: Option<Duration>,
        error: UpstreamError,
    },
}

/// Installs rustls' ring provider once per process (reqwest is built without a default one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS settings of an upstream that does not use a publicly trusted certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file with extra CA certificates to trust.
    pub ca_pem_path: Option<std::path::PathBuf>,
    /// Accept any certificate (explicit opt-in only).
    pub insecure: bool,
}

impl UpstreamClient {
    /// A client for the upstream behind `circuit`.
    pub fn new(circuit: CircuitHandle, policy: CallPolicy, metrics: ProviderMetrics) -> Self {
        UpstreamClient::with_tls(circuit, policy, metrics, &TlsOptions::default())
            .expect("HTTP client with default TLS")
    }

    /// A client with its own TLS settings; fails when the CA file cannot be read or parsed.
    pub fn with_tls(
        circuit: CircuitHandle,
        policy: CallPolicy,
        metrics: ProviderMetrics,
        tls: &TlsOptions,
    ) -> Result<Self, String> {
        install_crypto_provider();
        let mut builder =
            Client::builder().user_agent(concat!("sre-integration/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &tls.ca_pem_path {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("invalid CA file {}: {e}", path.display()))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if tls.insecure {
            tracing::warn!(provider = %circuit.name(), "TLS certificate verification is disabled for this upstream");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(UpstreamClient {
            http,
            circuit,
            policy,
            metrics,
        })
    }

    /// The upstream's name.
    pub fn provider(&self) -> &str {
        self.circuit.name()
    }

    /// The policy: timeout, retries, and the default body limit.
    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    /// The same client (same circuit and connection pool), making at most `max_attempts`
    /// attempts per call: `1` for writes that must not be repeated (a create).
    pub fn with_max_attempts(&self, max_attempts: u32) -> Self {
        let mut c = self.clone();
        c.policy.max_attempts = max_attempts.max(1);
        c
    }

    /// The same client (same circuit and connection pool), returning a throttled call at once
    /// with the wait the upstream asked for ([`UpstreamError::Throttled`] `retry_after`)
    /// instead of sleeping through it: for callers that wait better themselves, like the facts
    /// consumer, where a fact that waits gives its place to the next. A throttle that names no
    /// wait is still retried here with backoff.
    pub fn handing_back_throttles(&self) -> Self {
        let mut c = self.clone();
        c.policy.max_retry_after = Duration::ZERO;
        c
    }

    /// The body limit of calls that set none ([`CallPolicy::body_limit`]).
    pub fn body_limit(&self) -> BodyLimit {
        self.policy.body_limit()
    }

    /// Sends the request `build` makes (it is called once per attempt) and reads the answer's
    /// body within the default [`body_limit`](Self::body_limit). `correlation_id` ties the
    /// call to whatever caused it; a fresh one is made when absent.
    pub async fn send<F>(
        &self,
        correlation_id: Option<&str>,
        build: F,
    ) -> Result<UpstreamResponse, UpstreamError>
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        self.send_limited(correlation_id, self.body_limit(), build)
            .await
    }

    /// [`send`](Self::send) with this call's own body limit.
    pub async fn send_limited<F>(
        &self,
        correlation_id: Option<&str>,
        limit: BodyLimit,
        build: F,
    ) -> Result<UpstreamResponse, UpstreamError>
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        let correlation_id = correlation_id
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span = tracing::info_span!("upstream_call", provider = %self.provider(), correlation_id = %correlation_id);
        self.send_inner(&correlation_id, limit, build)
            .instrument(span)
            .await
    }

    async fn send_inner<F>(
        &self,
        correlation_id: &str,
        limit: BodyLimit,
        build: F,
    ) -> Result<UpstreamResponse, UpstreamError>
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        let mut schedule = RetrySchedule::new(&self.policy);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = match self.circuit.acquire().await {
                Ok(p) => p,
                Err(e) => {
                    self.metrics.count(self.provider(), Outcome::CircuitOpen);
                    return Err(match e {
                        CircuitError::Open { provider, retry_in } => {
                            UpstreamError::CircuitOpen { provider, retry_in }
                        }
                        CircuitError::Unavailable { provider } => {
                            UpstreamError::CircuitUnavailable { provider }
                        }
                    });
                }
            };
            let (at_least, error) = match self
                .attempt(correlation_id, &build, permit, limit, attempt)
                .await
            {
                Attempt::Done(resp) => return Ok(resp),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { at_least, error } => (at_least, error),
            };
            let delay = match schedule.next_delay(at_least) {
                Ok(delay) => delay,
                Err(GiveUp::Exhausted) => {
                    tracing::warn!(attempt, error = %error, "giving up");
                    return Err(error);
                }
                Err(GiveUp::WaitTooLong(wait)) if self.policy.max_retry_after.is_zero() => {
                    tracing::debug!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "throttled: the caller waits"
                    );
                    return Err(error);
                }
                Err(GiveUp::WaitTooLong(wait)) => {
                    tracing::warn!(
                        attempt,
                        wait_s = wait.as_secs(),
                        "upstream asks for a longer wait than allowed"
                    );
                    return Err(error);
                }
            };
            tracing::info!(attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<F>(
        &self,
        correlation_id: &str,
        build: &F,
        permit: CallPermit,
        limit: BodyLimit,
        attempt: u32,
    ) -> Attempt
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        let provider = self.provider().to_owned();
        let request = match build(&self.http)
            .header(CORRELATION_HEADER, correlation_id)
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                // Not the upstream's doing: the permit goes back without an outcome.
                permit.release();
                return Attempt::Fail(UpstreamError::Request {
                    provider,
                    message: e.to_string(),
                });
            }
        };
        let started = Instant::now();
        let (outcome, result) = self.exchange(request, limit, attempt, &provider).await;
        self.metrics
            .observe(&provider, started.elapsed().as_secs_f64());
        self.metrics.count(&provider, outcome);
        permit.record(!outcome.counts_against_circuit());
        match result {
            Ok(resp) => Attempt::Done(resp),
            Err((at_least, error)) if outcome.retryable() => Attempt::Retry { at_least, error },
            Err((_, error)) => Attempt::Fail(error),
        }
    }

    /// One request and its body, classified.
    async fn exchange(
        &self,
        request: reqwest::Request,
        limit: BodyLimit,
        attempts: u32,
        provider: &str,
    ) -> (Outcome, Result<UpstreamResponse, Failed>) {
        let provider = provider.to_owned();
        let resp = match tokio::time::timeout(self.policy.timeout, self.http.execute(request)).await
        {
            Err(_) => {
                let error = UpstreamError::Timeout {
                    provider,
                    attempts,
                    timeout: self.policy.timeout,
                };
                return (Outcome::Timeout, failed(None, error));
            }
            Ok(Err(e)) => {
                let error = UpstreamError::Transport {
                    provider,
                    attempts,
                    message: error_chain(&e),
                };
                return (Outcome::Transport, failed(None, error));
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        let classified = classify(status, resp.headers());
        match classified.outcome {
            Outcome::Throttled => {
                let error = UpstreamError::Throttled {
                    provider,
                    attempts,
                    retry_after: classified.retry_after,
                };
                let wait = classified.retry_after.unwrap_or(Duration::ZERO);
                (Outcome::Throttled, failed(Some(wait), error))
            }
            Outcome::ServerError => {
                let text =
                    body::read_prefix(resp, limit.with_max_bytes(ERROR_TEXT_MAX_BYTES)).await;
                let error = UpstreamError::Status {
                    provider,
                    status: status.as_u16(),
                    attempts,
                    body: String::from_utf8_lossy(&text)
                        .chars()
                        .take(body::ERROR_TEXT_KEPT_CHARS)
                        .collect(),
                };
                (Outcome::ServerError, failed(classified.retry_after, error))
            }
            outcome => {
                let headers = resp.headers().clone();
                match body::read(resp, limit).await {
                    Ok(body) => (
                        outcome,
                        Ok(UpstreamResponse {
                            status,
                            headers,
                            body,
                        }),
                    ),
                    Err(BodyError::TooLarge { limit }) => (
                        Outcome::BodyTooLarge,
                        failed(None, UpstreamError::BodyTooLarge { provider, limit }),
                    ),
                    Err(BodyError::Timeout { timeout }) => (
                        Outcome::BodyTimeout,
                        failed(
                            None,
                            UpstreamError::BodyTimeout {
                                provider,
                                attempts,
                                timeout,
                            },
                        ),
                    ),
                    Err(BodyError::Transport(message)) => (
                        Outcome::Transport,
                        failed(
                            None,
                            UpstreamError::Transport {
                                provider,
                                attempts,
                                message,
                            },
                        ),
                    ),
                }
            }
        }
    }
}

/// A failed attempt: the wait the upstream asked for, and the error.
type Failed = (Option<Duration>, UpstreamError);

fn failed(at_least: Option<Duration>, error: UpstreamError) -> Result<UpstreamResponse, Failed> {
    Err((at_least, error))
}

/// An error and its sources, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
