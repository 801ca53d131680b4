//! The operator HTTP surface: `GET /healthz`, `GET /readyz`, `GET /metrics`,
//! `GET /v1/supervision`, `POST /v1/supervision/restart`. The webhook and the agent tools
//! ([`tools`]) add their routes to the same router (the tools may have a listener of their
//! own, `tools.listen`).
//!
//! `/healthz` and `/readyz` are always open (probes). The other three take
//! `Authorization: Bearer <token>` when `server.ops_auth` is configured; when its secret cannot
//! be read they answer `503` rather than let anyone in.
//!
//! This module knows nothing of the wiring (`crate::app` depends on it, never the reverse):
//! the names it shows come in [`OpsState`].
//!
//! # Layout
//! - `server`: the `HttpServer` actor that owns the listener.
//! - `serve`: the accept loop and the per-connection limits.
//! - `tree`: the JSON supervision tree.
//! - `tools`: the REST door of the agent tools and the approval endpoints.

pub mod exposition;
pub mod serve;
pub mod server;
pub mod tools;
pub mod tree;

use std::sync::Arc;

use axum::extract::State;
use axum::extract::{Query, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use ractor::ActorRef;
use sre_actors::providers::CircuitBoard;
use sre_config::SecretString;
use sre_supervision::Observer;
use sre_supervision::SupervisorMsg;

use sre_supervision::Readiness;

/// What the operator endpoints read.
#[derive(Clone)]
pub struct OpsState {
    /// Every metric.
    pub registry: Arc<Registry>,
    /// The supervision tree.
    pub observer: Observer,
    /// Circuit states.
    pub circuits: CircuitBoard,
    /// Readiness.
    pub readiness: Readiness,
    /// The root supervisor, once the tree runs (for `POST /v1/supervision/restart`).
    pub root: Arc<std::sync::OnceLock<ActorRef<SupervisorMsg>>>,
    /// Whether the restart endpoint is served.
    pub allow_restart: bool,
    /// Who may read `/metrics` and `/v1/supervision` and use the restart endpoint.
    pub access: OpsAccess,
    /// The root supervisor's name (the top of the tree).
    pub root_name: &'static str,
    /// The supervisor whose children are provider circuits (their breakers are shown).
    pub circuits_supervisor: &'static str,
}

/// Access to the operator endpoints other than the probes.
#[derive(Clone, Debug)]
pub enum OpsAccess {
    /// Anyone who reaches the port.
    Open,
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
    /// A token is configured but could not be read: `503` with this reason.
    Unavailable(String),
}

/// The operator routes.
pub fn ops_router(state: OpsState) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/supervision", get(supervision))
        .route("/v1/supervision/restart", post(restart))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(state)
}

/// Lets a request through when `server.ops_auth` allows it.
async fn require_token(State(s): State<OpsState>, req: Request, next: Next) -> Response {
    let token = match &s.access {
        OpsAccess::Open => return next.run(req).await,
        OpsAccess::Bearer(token) => token,
        OpsAccess::Unavailable(why) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "error": format!("operator credentials unavailable: {why}")
                })),
            )
                .into_response()
        }
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = given.split_once(' ').is_some_and(|(scheme, cred)| {
        scheme.eq_ignore_ascii_case("bearer")
            && constant_time_eq(cred.trim().as_bytes(), token.expose().as_bytes())
    });
    if ok {
        return next.run(req).await;
    }
    let why = if given.is_empty() {
        "missing credentials (server.ops_auth)"
    } else {
        "invalid credentials (server.ops_auth)"
    };
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": why})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<OpsState>) -> Response {
    let report = s.readiness.report(&s.observer);
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format 0.0.4
/// for everything else (`promtool`, older agents, curl).
async fn metrics(State(s): State<OpsState>, headers: HeaderMap) -> Response {
    let mut body = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response();
    }
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if wants_openmetrics {
        let ct = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, ct)], body).into_response()
    } else {
        let ct = "text/plain; version=0.0.4; charset=utf-8";
        ([(header::CONTENT_TYPE, ct)], exposition::to_text_004(&body)).into_response()
    }
}

async fn supervision(State(s): State<OpsState>) -> Json<tree::Node> {
    Json(tree::build(
        &s.observer,
        &s.circuits,
        s.root_name,
        s.circuits_supervisor,
    ))
}

/// `?supervisor=providers&child=prometheus`.
#[derive(Debug, serde::Deserialize)]
struct RestartTarget {
    supervisor: String,
    child: String,
}

/// Kills one supervised actor so its supervisor restarts it (an operator's "turn it off and on
/// again"; also how the benchmark disturbs the tree). Served only with `server.allow_restart`.
async fn restart(State(s): State<OpsState>, Query(t): Query<RestartTarget>) -> Response {
    let fail = |code: StatusCode, why: String| {
        (code, Json(serde_json::json!({"error": why}))).into_response()
    };
    if !s.allow_restart {
        return fail(
            StatusCode::FORBIDDEN,
            "restarting actors is disabled (server.allow_restart)".into(),
        );
    }
    let Some(root) = s.root.get() else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "the tree is still starting".into(),
        );
    };
    let supervisor: ActorRef<SupervisorMsg> = if t.supervisor == s.root_name {
        root.clone()
    } else {
        match ractor::call!(root, SupervisorMsg::Lookup, t.supervisor.clone()) {
            Ok(Some(cell)) => cell.into(),
            _ => {
                return fail(
                    StatusCode::NOT_FOUND,
                    format!("no running supervisor {:?}", t.supervisor),
                )
            }
        }
    };
    match ractor::call!(supervisor, SupervisorMsg::Lookup, t.child.clone()) {
        Ok(Some(cell)) => {
            tracing::warn!(supervisor = %t.supervisor, child = %t.child, "restart requested by an operator");
            cell.kill();
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"restarting": format!("{}/{}", t.supervisor, t.child)})),
            )
                .into_response()
        }
        _ => fail(
            StatusCode::NOT_FOUND,
            format!("no running child {:?} under {:?}", t.child, t.supervisor),
        ),
    }
}
