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

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use sre_actors::providers::CircuitBoard;
use sre_supervision::Observer;

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
}

/// The operator routes.
pub fn ops_router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/supervision", get(supervision))
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
