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

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use tokio::time::Instant;
use tracing::Instrument;

use super::breaker::Permit;
use super::circuit::{CircuitError, CircuitHandle};
use super::metrics::{OutcomeLabels, ProviderLabel, ProviderMetrics};

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
}

impl UpstreamError {
    /// The `outcome` label for this failure.
    pub fn outcome(&self) -> &'static str {
        match self {
            UpstreamError::CircuitOpen { .. } | UpstreamError::CircuitUnavailable { .. } => {
                "circuit_open"
            }
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Transport { .. } | UpstreamError::Request { .. } => "transport",
            UpstreamError::Status { .. } => "server_error",
            UpstreamError::Throttled { .. } => "throttled",
        }
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
    Done(Response),
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

    /// Sends the request `build` makes (it is called once per attempt). `correlation_id` ties
    /// the call to whatever caused it; a fresh one is made when absent.
    pub async fn send<F>(
        &self,
        correlation_id: Option<&str>,
        build: F,
    ) -> Result<Response, UpstreamError>
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        let correlation_id = correlation_id
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span = tracing::info_span!("upstream_call", provider = %self.provider(), correlation_id = %correlation_id);
        self.send_inner(&correlation_id, build)
            .instrument(span)
            .await
    }

    async fn send_inner<F>(&self, correlation_id: &str, build: F) -> Result<Response, UpstreamError>
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.policy.backoff_min)
            .with_max_delay(self.policy.backoff_max)
            .with_max_times(self.policy.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = match self.circuit.acquire().await {
                Ok(p) => p,
                Err(e) => {
                    self.count("circuit_open");
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
            let (at_least, error) =
                match self.attempt(correlation_id, &build, permit, attempt).await {
                    Attempt::Done(resp) => return Ok(resp),
                    Attempt::Fail(error) => return Err(error),
                    Attempt::Retry { at_least, error } => (at_least, error),
                };
            let Some(backoff) = delays.next() else {
                tracing::warn!(attempt, error = %error, "giving up");
                return Err(error);
            };
            let delay = match at_least {
                Some(wait) if wait > self.policy.max_retry_after => {
                    tracing::warn!(
                        attempt,
                        wait_s = wait.as_secs(),
                        "upstream asks for a longer wait than allowed"
                    );
                    return Err(error);
                }
                Some(wait) => wait.max(backoff),
                None => backoff,
            };
            tracing::info!(attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<F>(
        &self,
        correlation_id: &str,
        build: &F,
        permit: Permit,
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
                // Not the upstream's fault: give the permit back as a success.
                self.circuit.record(permit, true);
                return Attempt::Fail(UpstreamError::Request {
                    provider,
                    message: e.to_string(),
                });
            }
        };
        let started = Instant::now();
        let result = tokio::time::timeout(self.policy.timeout, self.http.execute(request)).await;
        self.metrics
            .duration
            .get_or_create(&ProviderLabel {
                provider: provider.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        let resp = match result {
            Err(_) => {
                self.circuit.record(permit, false);
                self.count("timeout");
                return Attempt::Retry {
                    at_least: None,
                    error: UpstreamError::Timeout {
                        provider,
                        attempts: attempt,
                        timeout: self.policy.timeout,
                    },
                };
            }
            Ok(Err(e)) => {
                self.circuit.record(permit, false);
                self.count("transport");
                return Attempt::Retry {
                    at_least: None,
                    error: UpstreamError::Transport {
                        provider,
                        attempts: attempt,
                        message: error_chain(&e),
                    },
                };
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if let Some(wait) = throttled(status, resp.headers()) {
            self.circuit.record(permit, true);
            self.count("throttled");
            return Attempt::Retry {
                at_least: Some(wait.unwrap_or(Duration::ZERO)),
                error: UpstreamError::Throttled {
                    provider,
                    attempts: attempt,
                    retry_after: wait,
                },
            };
        }
        if status.is_server_error() {
            self.circuit.record(permit, false);
            self.count("server_error");
            let retry_after = retry_after(resp.headers());
            let body = resp.text().await.unwrap_or_default();
            return Attempt::Retry {
                at_least: retry_after,
                error: UpstreamError::Status {
                    provider,
                    status: status.as_u16(),
                    attempts: attempt,
                    body: body.chars().take(200).collect(),
                },
            };
        }
        self.circuit.record(permit, true);
        self.count(if status.is_client_error() {
            "client_error"
        } else {
            "success"
        });
        Attempt::Done(resp)
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .requests
            .get_or_create(&OutcomeLabels {
                provider: self.provider().to_owned(),
                outcome,
            })
            .inc();
    }
}

/// `Some(wait)` when the response is a throttle: 429, or 403 with an exhausted rate limit.
fn throttled(status: StatusCode, headers: &HeaderMap) -> Option<Option<Duration>> {
    let exhausted = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "0");
    if status == StatusCode::TOO_MANY_REQUESTS || (status == StatusCode::FORBIDDEN && exhausted) {
        Some(retry_after(headers))
    } else {
        None
    }
}

/// The wait the upstream asks for: `Retry-After`, `RateLimit-Reset` or `X-RateLimit-Reset`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            );
        }
    }
    if let Some(secs) = text("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if let Some(epoch) = text("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
        return Some(
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        );
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(110) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        let mut h = HeaderMap::new();
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&epoch.to_string()).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn github_style_403_is_a_throttle_but_a_plain_403_is_not() {
        let mut h = HeaderMap::new();
        assert_eq!(throttled(StatusCode::FORBIDDEN, &h), None);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert!(throttled(StatusCode::FORBIDDEN, &h).is_some());
        assert!(throttled(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new()).is_some());
    }
}
