//! `POST /webhooks/alertmanager` (the path is configurable): authenticate, validate, prepare,
//! then the delivery semantics of DESIGN §3.2 —
//!
//! 1. claim every distinct idempotency key at the `Dedup` actor (the shared protocol of
//!    [`super::claim`]);
//! 2. translate the fresh ones (`AlertRouter`) and publish them (`IntentPublisher`) on a task
//!    of their own, which settles the claims with the real outcome even if the client hangs up
//!    (bounded by the delivery's deadline; a dropped task releases them);
//! 3. answer `200` only when every fresh intent is durable and every key another request was
//!    publishing became durable too; otherwise `503` with `Retry-After`, and nothing is
//!    recorded in the window, so AlertManager's retry is accepted as new. A full window
//!    (`max_entries`) is a `503` too: nothing is evicted to make room.
//!
//! Credentials and the content type are checked on the request's head, before a byte of the
//! body is read: an unauthenticated client cannot make the server buffer anything.
//!
//! Errors are JSON: `{"error": "...", "field": "alerts[0].startsAt"}` with 400 (bad payload),
//! 401 (credentials), 413 (body too large, or more alerts than `max_alerts`), 415 (not JSON),
//! 503 (sink or actors unavailable).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use sre_config::{KeySource, SecretString};
use sre_supervision::ActorSlot;
use tracing::Instrument;

use super::batch::AlertBatch;
use super::claim::{Delivery, FreshClaims};
use super::dedup::{DedupMsg, DedupSource, Window};
use super::metrics::IngestMetrics;
use super::payload;
use super::publisher::PublisherMsg;
use super::router::RouterMsg;
use crate::emit::{EmitError, Emitter};

/// The `webhook` metric label.
const WEBHOOK: &str = "alertmanager";
/// How long AlertManager is asked to wait before retrying after a 503.
const RETRY_AFTER_SECS: u64 = 5;

/// Expected credentials.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Anyone may post.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User.
        username: SecretString,
        /// Password.
        password: SecretString,
    },
    /// Credentials are configured but could not be read: every request gets 503 with this
    /// reason rather than being let in unauthenticated.
    Unavailable(String),
}

impl Auth {
    /// The `Authorization` value that is accepted, if any is required.
    fn expected(&self) -> Option<(&'static str, SecretString)> {
        match self {
            Auth::None | Auth::Unavailable(_) => None,
            Auth::Bearer(t) => Some(("bearer", t.clone())),
            Auth::Basic { username, password } => Some((
                "basic",
                SecretString::new(base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    username.expose(),
                    password.expose()
                ))),
            )),
        }
    }
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counters for the statuses the handler answers, created once.
struct Counters {
    by_code: Vec<(u16, Counter)>,
    /// `sre_dedup_decisions_total{decision="duplicate"}`, for duplicates answered from the
    /// shared window.
    fast_duplicates: Counter,
    firing: Counter,
    resolved: Counter,
}

struct Inner {
    expected: Option<(&'static str, SecretString)>,
    unavailable: Option<String>,
    key_source: KeySource,
    max_alerts: usize,
    publish_timeout: Duration,
    window: Arc<Window>,
    delivery: Delivery,
    router: ActorSlot<RouterMsg>,
    counters: Counters,
}

/// The webhook's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Webhook(Arc<Inner>);

/// How the webhook is set up.
pub struct WebhookParts {
    /// Credentials.
    pub auth: Auth,
    /// Fingerprint source.
    pub key_source: KeySource,
    /// Most alerts in one request; more are answered 413.
    pub max_alerts: usize,
    /// Longest wait for durability before a 503.
    pub publish_timeout: Duration,
    /// Longest a publish may go on after the request was answered, settling its claims with
    /// the real outcome (the dedup actor's claim lease is a little longer).
    pub settle_timeout: Duration,
    /// The dedup window, shared with the dedup actor.
    pub window: Arc<Window>,
    /// The dedup actor.
    pub dedup: ActorSlot<DedupMsg>,
    /// The router actor.
    pub router: ActorSlot<RouterMsg>,
    /// The publisher actor.
    pub publisher: ActorSlot<PublisherMsg>,
    /// Metrics.
    pub metrics: IngestMetrics,
}

/// The answer to an accepted request.
#[derive(Debug, serde::Serialize)]
struct Summary {
    alerts: usize,
    published: usize,
    duplicates: usize,
}

/// Why a request could not be accepted.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    error: String,
    field: Option<String>,
}

impl Rejection {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Rejection {
            status,
            error: error.into(),
            field: None,
        }
    }
}

impl Webhook {
    /// Builds the handler state.
    pub fn new(p: WebhookParts) -> Self {
        let codes = [200u16, 400, 401, 413, 415, 503];
        let unavailable = match &p.auth {
            Auth::Unavailable(why) => Some(why.clone()),
            _ => None,
        };
        Webhook(Arc::new(Inner {
            expected: p.auth.expected(),
            unavailable,
            key_source: p.key_source,
            max_alerts: p.max_alerts,
            publish_timeout: p.publish_timeout,
            window: p.window,
            delivery: Delivery::new(
                Some(p.dedup),
                DedupSource::Alertmanager,
                Emitter::Publisher(p.publisher),
                p.settle_timeout,
            ),
            router: p.router,
            counters: Counters {
                by_code: codes
                    .iter()
                    .map(|c| (*c, p.metrics.request(WEBHOOK, *c)))
                    .collect(),
                fast_duplicates: p.metrics.decision("alertmanager", "duplicate"),
                firing: p.metrics.alert(WEBHOOK, "firing"),
                resolved: p.metrics.alert(WEBHOOK, "resolved"),
            },
        }))
    }

    /// The route, with the body limit.
    pub fn router(self, path: &str, max_body_bytes: usize) -> Router {
        Router::new()
            .route(path, post(handle))
            .layer(DefaultBodyLimit::max(max_body_bytes))
            .with_state(self)
    }

    fn count(&self, status: StatusCode) {
        if let Some((_, c)) = self
            .0
            .counters
            .by_code
            .iter()
            .find(|(code, _)| *code == status.as_u16())
        {
            c.inc();
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        if let Some(why) = &self.0.unavailable {
            return Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("webhook credentials unavailable: {why}"),
            ));
        }
        let Some((scheme, secret)) = &self.0.expected else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = given.split_once(' ').is_some_and(|(s, cred)| {
            s.eq_ignore_ascii_case(scheme)
                && constant_time_eq(cred.trim().as_bytes(), secret.expose().as_bytes())
        });
        if ok {
            Ok(())
        } else {
            let why = if given.is_empty() {
                "missing credentials"
            } else {
                "invalid credentials"
            };
            Err(Rejection::new(StatusCode::UNAUTHORIZED, why))
        }
    }

    /// Checks the head (credentials, content type), then reads the body within the limit,
    /// parses and ingests it.
    async fn accept(&self, req: Request) -> Result<Summary, Rejection> {
        let headers = req.headers();
        self.authorize(headers)?;
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/json",
            ));
        }
        let correlation_id = headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned);
        // The request's span continues the sender's trace; intents carry the span's context
        // (or, with no trace recorded here, the sender's own).
        let traceparent = crate::trace::recording()
            .then(crate::trace::current)
            .flatten()
            .or_else(|| {
                headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
        // Only now is the body read, within the route's `DefaultBodyLimit`.
        let body = Bytes::from_request(req, &())
            .await
            .map_err(|r| Rejection::new(r.status(), r.body_text()))?;
        let payload = payload::parse(&body).map_err(|e| Rejection {
            status: StatusCode::BAD_REQUEST,
            error: e.reason,
            field: (!e.field.is_empty()).then_some(e.field),
        })?;
        if payload.alerts.len() > self.0.max_alerts {
            return Err(Rejection {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                error: format!(
                    "{} alerts in one notification; at most {} are accepted (set max_alerts in AlertManager's webhook_configs)",
                    payload.alerts.len(),
                    self.0.max_alerts
                ),
                field: Some("alerts".into()),
            });
        }
        for a in &payload.alerts {
            if a.status == "firing" {
                self.0.counters.firing.inc();
            } else {
                self.0.counters.resolved.inc();
            }
        }
        let batch = Arc::new(AlertBatch::prepare(
            payload,
            self.0.key_source,
            correlation_id,
            traceparent,
        ));
        self.ingest(batch).await
    }

    /// Claims, publishes and waits, as the module documentation describes.
    async fn ingest(&self, batch: Arc<AlertBatch>) -> Result<Summary, Rejection> {
        let firsts: Vec<usize> = (0..batch.alerts.len())
            .filter(|i| batch.alerts[*i].first)
            .collect();
        // Steady state: every alert is a duplicate already in the window. Answer from the shared
        // window without a round trip to the actor.
        if self
            .0
            .window
            .contains_all(firsts.iter().map(|i| batch.alerts[*i].hash))
        {
            self.0.counters.fast_duplicates.inc_by(firsts.len() as u64);
            return Ok(Summary {
                alerts: batch.alerts.len(),
                published: 0,
                duplicates: firsts.len(),
            });
        }
        let deadline = tokio::time::Instant::now() + self.0.publish_timeout;
        let keys = firsts.iter().map(|i| batch.alerts[*i].hash).collect();
        let claimed = match tokio::time::timeout_at(deadline, self.0.delivery.claim(keys)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => return Err(unavailable("deduplication did not answer in time".into())),
        };
        let fresh: Vec<usize> = claimed
            .fresh_indices()
            .into_iter()
            .map(|i| firsts[i])
            .collect();
        let mut duplicates = claimed.verdicts.len() - fresh.len() - claimed.in_flight.len();
        let published = fresh.len();
        if !fresh.is_empty() {
            let task = tokio::spawn(publish(self.0.clone(), batch.clone(), fresh, claimed.fresh));
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(why))) => return Err(unavailable(format!("{why}; retry"))),
                Ok(Err(join)) => return Err(unavailable(format!("publish task failed: {join}"))),
                Err(_) => return Err(unavailable("intents not durable in time; retry".into())),
            }
        }
        for (_, durable) in claimed.in_flight.outcomes(deadline).await {
            if !durable {
                return Err(unavailable(
                    "a concurrent delivery of the same alert failed; retry".into(),
                ));
            }
            duplicates += 1;
        }
        Ok(Summary {
            alerts: batch.alerts.len(),
            published,
            duplicates,
        })
    }
}

fn unavailable(why: String) -> Rejection {
    Rejection::new(StatusCode::SERVICE_UNAVAILABLE, why)
}

/// Translate, publish, settle. Runs on its own task so the claims are settled with the real
/// outcome whatever happens to the request (and, should the task itself be dropped, `fresh`
/// releases them).
async fn publish(
    inner: Arc<Inner>,
    batch: Arc<AlertBatch>,
    at: Vec<usize>,
    fresh: FreshClaims,
) -> Result<(), EmitError> {
    let result = async {
        let router = inner
            .router
            .get()
            .ok_or(EmitError::Unavailable("alert router"))?;
        let records = ractor::call!(router, RouterMsg::Translate, batch.clone(), at)
            .map_err(|_| EmitError::Unavailable("alert router"))?
            .map_err(EmitError::Encode)?;
        inner.delivery.publish(fresh, records).await
    }
    .await;
    if let Err(e) = &result {
        tracing::warn!(correlation_id = %batch.correlation_id(), error = %e, "alerts not published");
    }
    result
}

async fn handle(State(w): State<Webhook>, req: Request) -> Response {
    // A span per request only when traces are exported: it is what the intents' traceparent
    // comes from, and it costs the hot path otherwise.
    let accepted = if crate::trace::recording() {
        let span = tracing::info_span!("webhook", webhook = WEBHOOK, otel.kind = "server");
        if let Some(tp) = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            crate::trace::adopt_parent(&span, tp);
        }
        w.accept(req).instrument(span).await
    } else {
        w.accept(req).await
    };
    let response = match accepted {
        Ok(s) => {
            // A fixed shape, written without building a JSON tree.
            let body = format!(
                r#"{{"status":"ok","alerts":{},"published":{},"duplicates":{}}}"#,
                s.alerts, s.published, s.duplicates
            );
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response()
        }
        Err(r) => {
            let mut body = json!({"error": r.error});
            if let Some(f) = r.field {
                body["field"] = f.into();
            }
            let mut resp = (r.status, Json(body)).into_response();
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            if r.status == StatusCode::UNAUTHORIZED {
                let scheme = match w.0.expected.as_ref().map(|e| e.0) {
                    Some("basic") => "Basic realm=\"sre-integration\"",
                    _ => "Bearer",
                };
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
            }
            resp
        }
    };
    w.count(response.status());
    response
}
