//! The REST door of the tool gateway and the approval endpoints.
//!
//! - `GET /v1/tools`: `{"tools": [{name, description, input_schema, write}]}`.
//! - `POST /v1/tools/<name>` with the JSON arguments (a write may add `approval_id`):
//!   `200 {"status": "done", "output", "truncated"}` or `202 {"status": "approval_required",
//!   "approval_id", "tool", "arguments", "arguments_sha256", "preview", "requested_by",
//!   "expires_at"}`.
//! - `GET /v1/approvals`: `{"approvals": [...]}`, the pending ones, oldest first.
//! - `GET /v1/approvals/<id>`: one, whatever its status (until it expires).
//! - `POST /v1/approvals/<id>/approve` and `/deny`, body optional `{"reason": "..."}`:
//!   approvers only.
//!
//! Every route takes `Authorization: Bearer <token>` (`tools.tokens`): none or an unknown one
//! is `401`, an agent deciding an approval `403`. Errors are `{"error": <label>, "reason":
//! <message>}`: `400` invalid arguments, `401`, `403` forbidden (role, self-approval, config),
//! `404` unknown tool / approval / object, `409` approval refused or not pending, `413` body
//! over `tools.max_body_bytes`, `502` upstream error, `503` upstream, audit log or approval
//! store unavailable, `504` tool timeout. Everything is decided by the [`ToolGateway`], the
//! same gate the MCP door calls; this module only translates.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use sre_actors::tools::approvals::ApprovalError;
use sre_actors::tools::auth::{AuthError, Tokens};
use sre_actors::tools::gateway::{DecisionError, ToolGateway};
use sre_actors::tools::tool::{CallOutcome, Caller, Gate, ToolError};

/// What the routes share.
#[derive(Clone)]
pub struct ToolsState {
    /// The gate.
    pub gate: Arc<ToolGateway>,
    /// Who may call.
    pub tokens: Arc<Tokens>,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// The routes (see the module documentation).
pub fn tools_router(state: ToolsState) -> Router {
    Router::new()
        .route("/v1/tools", get(list_tools))
        .route("/v1/tools/{name}", post(call_tool))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", get(show_approval))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/deny", post(deny))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

fn error(code: StatusCode, label: &str, reason: impl Into<String>) -> Response {
    (code, Json(json!({"error": label, "reason": reason.into()}))).into_response()
}

async fn authenticate(State(s): State<ToolsState>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match s.tokens.authenticate(header) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e @ AuthError::Unavailable(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
        Err(e) => {
            let mut resp = error(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string());
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

/// The body as JSON (`{}` when empty), within `max_body_bytes`.
async fn json_body(body: Body, max: usize) -> Result<Value, Response> {
    let bytes = to_bytes(body, max).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body over {max} bytes (tools.max_body_bytes)"),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_arguments",
            format!("the body is not JSON: {e}"),
        )
    })
}

async fn list_tools(State(s): State<ToolsState>, Extension(caller): Extension<Caller>) -> Response {
    Json(json!({"tools": s.gate.list(&caller)})).into_response()
}

/// The status code of each gate error.
pub fn status_of(e: &ToolError) -> StatusCode {
    match e {
        ToolError::UnknownTool(_) | ToolError::NotFound(_) => StatusCode::NOT_FOUND,
        ToolError::InvalidArguments(_) => StatusCode::BAD_REQUEST,
        ToolError::Forbidden(_) => StatusCode::FORBIDDEN,
        ToolError::ApprovalRefused(_) => StatusCode::CONFLICT,
        ToolError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ToolError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        ToolError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
    }
}

async fn call_tool(
    State(s): State<ToolsState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let args = match json_body(req.into_body(), s.max_body_bytes).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match s.gate.call(&caller, &name, args).await {
        Ok(outcome @ CallOutcome::Done(_)) => (StatusCode::OK, Json(outcome)).into_response(),
        Ok(outcome @ CallOutcome::ApprovalRequired(_)) => {
            (StatusCode::ACCEPTED, Json(outcome)).into_response()
        }
        Err(e) => error(status_of(&e), e.label(), e.to_string()),
    }
}

async fn list_approvals(State(s): State<ToolsState>) -> Response {
    Json(json!({"approvals": s.gate.pending()})).into_response()
}

async fn show_approval(State(s): State<ToolsState>, Path(id): Path<String>) -> Response {
    match s.gate.approval(&id) {
        Some(a) => Json(a).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "unknown_approval",
            ApprovalError::Unknown(id).to_string(),
        ),
    }
}

async fn approve(
    state: State<ToolsState>,
    caller: Extension<Caller>,
    id: Path<String>,
    req: Request,
) -> Response {
    decide(state, caller, id, req, true).await
}

async fn deny(
    state: State<ToolsState>,
    caller: Extension<Caller>,
    id: Path<String>,
    req: Request,
) -> Response {
    decide(state, caller, id, req, false).await
}

async fn decide(
    State(s): State<ToolsState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    req: Request,
    approve: bool,
) -> Response {
    let body = match json_body(req.into_body(), s.max_body_bytes).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.chars().take(1024).collect()),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_arguments",
                "reason must be a string",
            )
        }
    };
    match s.gate.decide(&caller, &id, approve, reason).await {
        Ok(a) => Json(a).into_response(),
        Err(DecisionError::Refused(e)) => {
            let (code, label) = match &e {
                ApprovalError::NotApprover(_) => (StatusCode::FORBIDDEN, "forbidden"),
                ApprovalError::SelfDecision(_) => (StatusCode::FORBIDDEN, "self_approval"),
                ApprovalError::Unknown(_) => (StatusCode::NOT_FOUND, "unknown_approval"),
                ApprovalError::NotPending { .. } => (StatusCode::CONFLICT, "not_pending"),
                ApprovalError::Full(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            };
            error(code, label, e.to_string())
        }
        Err(e @ DecisionError::Audit(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}
