//! The MCP door of the tool gateway (DESIGN §3.3c): streamable HTTP at `/mcp` with the
//! official Rust MCP SDK (`rmcp`), in front of the one [`Gate`] both doors call.
//!
//! - **Auth first.** Every request needs `Authorization: Bearer <token>`; the app's
//!   [`Authenticate`] turns it into a [`Caller`] (the token store is the gate's). No token or
//!   an unknown one is `401` with `WWW-Authenticate: Bearer` before any MCP handling. The
//!   caller rides in the request's extensions, so each `tools/call` is the caller of *that*
//!   HTTP request, never whoever opened the session.
//! - **Origin checking** against DNS rebinding: a request carrying an `Origin` header is
//!   refused (`403`) unless the origin is in [`McpOptions::allowed_origins`] (default: the
//!   loopback origins `http://localhost`, `http://127.0.0.1`, `http://[::1]` on any port); a
//!   request without `Origin` (every non-browser agent) passes. The `Host` header is checked
//!   too when [`McpOptions::allowed_hosts`] is set.
//! - The options come from `tools.mcp` (and `tools.max_body_bytes`) in the configuration.
//! - **Sessions** are rmcp's stateful streamable HTTP (`Mcp-Session-Id`), closed after
//!   [`McpOptions::session_idle`] without traffic, at most [`McpOptions::max_sessions`] at once
//!   (a new one past that is `503`); `sre_tools_mcp_sessions` shows how many are open.
//! - `tools/list`: the tools the gate lets the caller see, with each one's JSON Schema and
//!   description (and `readOnlyHint`/`destructiveHint` annotations).
//! - `tools/call` → [`Gate::call`]: `done` → structured content `{"status":"done","output",
//!   "truncated"}` plus the output as text; `approval_required` → structured content
//!   `{"status":"approval_required","approval_id","tool","arguments","preview",...}` plus text
//!   telling the agent an approver must approve and the call be repeated with `approval_id`;
//!   any other [`ToolError`] → a tool error result (`isError: true`) with
//!   `{"status":"error","error":<label>,"message"}`; an unknown tool → JSON-RPC error -32602.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool as McpTool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use sre_actors::tools::tool::{CallOutcome, Caller, Gate, ToolError, ToolSpec, APPROVAL_ID_ARG};

/// The path the door is served at.
pub const MCP_PATH: &str = "/mcp";

/// Turns a request's `Authorization` header value (`None` when absent) into a caller (`None`:
/// refused with `401`) — the gate's token store (`Tokens::authenticate`).
pub type Authenticate = Arc<dyn Fn(Option<&str>) -> Option<Caller> + Send + Sync>;

/// Settings of the MCP door.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// Browser origins allowed to call (`scheme://host:port`, `:*` for any port). A request
    /// with an `Origin` header not in this list is refused; one without passes.
    pub allowed_origins: Vec<String>,
    /// When set, only these `Host` values (`name` or `name:port`) are served; `None` serves
    /// any `Host` (the service sits behind the bearer token, and deployments are reached by
    /// names only the operator knows).
    pub allowed_hosts: Option<Vec<String>>,
    /// Sessions open at once; a new session past this is refused with `503`.
    pub max_sessions: usize,
    /// A session without traffic for this long is closed.
    pub session_idle: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl McpOptions {
    /// The options `tools.mcp` (and `tools.max_body_bytes`) configure.
    pub fn from_config(tools: &sre_config::ToolsConfig) -> Self {
        let m = &tools.mcp;
        McpOptions {
            allowed_origins: m.allowed_origins.clone(),
            allowed_hosts: m.allowed_hosts.clone(),
            max_sessions: m.max_sessions,
            session_idle: m.session_idle,
            max_body_bytes: tools.max_body_bytes,
        }
    }
}

/// The configuration's defaults: the loopback origins (`http://localhost:*`,
/// `http://127.0.0.1:*`, `http://[::1]:*`), any host, 256 sessions idle at most 5 minutes,
/// 1 MiB bodies.
impl Default for McpOptions {
    fn default() -> Self {
        McpOptions::from_config(&sre_config::ToolsConfig::default())
    }
}

/// The door's metrics.
#[derive(Clone, Debug, Default)]
pub struct McpMetrics {
    sessions: Gauge,
}

impl McpMetrics {
    /// Registers `sre_tools_mcp_sessions`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = McpMetrics::default();
        registry.register(
            "sre_tools_mcp_sessions",
            "MCP sessions open at the /mcp door",
            m.sessions.clone(),
        );
        m
    }
}

#[derive(Clone)]
struct DoorState {
    authenticate: Authenticate,
    sessions: Arc<LocalSessionManager>,
    max_sessions: usize,
    metrics: McpMetrics,
}

/// The `/mcp` routes over `gate`, authenticating with `authenticate`. Merge it into the
/// tools listener's router.
pub fn mcp_router(
    gate: Arc<dyn Gate>,
    authenticate: Authenticate,
    options: McpOptions,
    metrics: McpMetrics,
) -> Router {
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(options.session_idle);
    let sessions = Arc::new(manager);
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_origins(options.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(options.max_body_bytes);
    config = match &options.allowed_hosts {
        Some(hosts) => config.with_allowed_hosts(hosts.clone()),
        None => config.disable_allowed_hosts(),
    };
    let handler = McpHandler { gate };
    let service: StreamableHttpService<McpHandler, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(handler.clone()), sessions.clone(), config);
    let state = DoorState {
        authenticate,
        sessions,
        max_sessions: options.max_sessions.max(1),
        metrics,
    };
    Router::new()
        .route_service(MCP_PATH, service)
        .route_layer(middleware::from_fn_with_state(state, authenticate_request))
}

/// `401` without a known bearer token; `503` for a new session past the cap; else the caller
/// goes into the request's extensions.
async fn authenticate_request(
    State(state): State<DoorState>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"));
    let caller = (state.authenticate)(header);
    let Some(caller) = caller else {
        let mut resp = (
            StatusCode::UNAUTHORIZED,
            "a bearer token of the tool gateway is required\n",
        )
            .into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    };
    let open = state.sessions.sessions.read().await.len();
    state.metrics.sessions.set(open as i64);
    let new_session =
        req.method() == axum::http::Method::POST && !req.headers().contains_key("mcp-session-id");
    if new_session && open >= state.max_sessions {
        tracing::warn!(open, "MCP session refused: too many open sessions");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many MCP sessions are open; retry later\n",
        )
            .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The rmcp server handler: lists and calls through the gate.
#[derive(Clone)]
struct McpHandler {
    gate: Arc<dyn Gate>,
}

/// The caller the door put in the HTTP request's extensions.
fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| ErrorData::invalid_request("not authenticated", None))
}

/// A tool's spec as MCP lists it.
pub fn mcp_tool(spec: &ToolSpec) -> McpTool {
    let schema: Map<String, Value> = match &spec.input_schema {
        Value::Object(m) => m.clone(),
        _ => Map::from_iter([("type".to_owned(), json!("object"))]),
    };
    let mut tool = McpTool::new(spec.name, spec.description, Arc::new(schema));
    tool.annotations = Some(
        ToolAnnotations::new()
            .read_only(!spec.write)
            .destructive(spec.write),
    );
    tool
}

/// What a gate's answer is to an MCP client.
pub fn call_result(outcome: Result<CallOutcome, ToolError>) -> Result<CallToolResult, ErrorData> {
    match outcome {
        Ok(CallOutcome::Done(out)) => {
            let text = serde_json::to_string(&out.output).unwrap_or_default();
            let structured = serde_json::to_value(CallOutcome::Done(out)).unwrap_or(Value::Null);
            let mut r = CallToolResult::structured(structured);
            r.content = vec![ContentBlock::text(text)];
            Ok(r)
        }
        Ok(CallOutcome::ApprovalRequired(req)) => {
            let text = format!(
                "approval required: nothing was changed. An approver must approve request {id} \
                 ({tool}, expires {expires}); then repeat this call with the same arguments plus \
                 \"{arg}\": \"{id}\". Preview: {preview}",
                id = req.approval_id,
                tool = req.tool,
                expires = req.expires_at.to_rfc3339(),
                arg = APPROVAL_ID_ARG,
                preview = serde_json::to_string(&req.preview).unwrap_or_default(),
            );
            let structured =
                serde_json::to_value(CallOutcome::ApprovalRequired(req)).unwrap_or(Value::Null);
            let mut r = CallToolResult::structured(structured);
            r.content = vec![ContentBlock::text(text)];
            Ok(r)
        }
        Err(ToolError::UnknownTool(name)) => Err(ErrorData::invalid_params(
            format!("unknown tool {name:?}"),
            None,
        )),
        Err(e) => {
            let mut r = CallToolResult::structured_error(json!({
                "status": "error",
                "error": e.label(),
                "message": e.to_string(),
            }));
            r.content = vec![ContentBlock::text(e.to_string())];
            Ok(r)
        }
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "sre-integration",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "SRE tools: k8s.* reads Kubernetes clusters, obs.* queries metrics, logs, traces \
                 and dashboards. Writes answer approval_required until an approver approves; then \
                 repeat the call with approval_id.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&context)?;
        let tools = self.gate.list(&caller).iter().map(mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        let name: Cow<'_, str> = request.name;
        let args = Value::Object(request.arguments.unwrap_or_default());
        let outcome = self.gate.call(&caller, &name, args).await;
        call_result(outcome).map(CallToolResponse::Complete)
    }
}
