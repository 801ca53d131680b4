//! The operator HTTP surface: `GET /healthz`, `GET /readyz`, `GET /metrics`,
//! `GET /v1/supervision`. Later areas (webhooks, tools) add their routes to the same router.
//!
//! # Layout
//! - `server`: the `HttpServer` actor that owns the listener.
//! - `tree`: the JSON supervision tree.

pub mod exposition;
pub mod server;
pub mod tree;

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use ractor::ActorRef;
use sre_actors::providers::CircuitBoard;
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
}

/// The operator routes.
pub fn ops_router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/supervision", get(supervision))
        .route("/v1/supervision/restart", post(restart))
        .with_state(state)
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
    Json(tree::build(&s.observer, &s.circuits, crate::app::ROOT))
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
    let supervisor: ActorRef<SupervisorMsg> = if t.supervisor == crate::app::ROOT {
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
