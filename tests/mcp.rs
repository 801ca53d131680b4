//! The MCP door (`sre_integration::http::mcp`) end to end, with a real MCP client nobody here
//! wrote: the official Python SDK (`mcp` from PyPI, installed by `scripts/install-mcp-client`
//! into a cached venv, which `scripts/test` runs) connects over streamable HTTP with a bearer
//! token, lists the tools with their schemas, calls reads and gets results, meets
//! `approval_required` on a write, and gets tool errors and JSON-RPC errors where due.
//!
//! The program is started with tools enabled (an agent and an approver token from mounted
//! secrets) and a configuration naming two fake clusters and fake Prometheus, Loki, Tempo and
//! Grafana, with writes allowed in one namespace of one cluster: the MCP client talks to the
//! real `/mcp` door in front of the real `ToolGateway` with the registry's 14 tools; a
//! `k8s.rollout_restart` meets `approval_required`, the approver approves through the REST
//! door, and the repeated call restarts the Deployment on the fake API server, once.
//!
//! The door's own behaviour (tokens, Origin, the session cap) is tested over [`TestGate`], a
//! minimal gate written here.
//!
//! Without the Python client installed these tests fail with the install hint.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use sre_actors::tools::tool::{
    ApprovalRequest, CallOutcome, Caller, Gate, Role, Tool, ToolError, ToolOutput, ToolSpec,
    APPROVAL_ID_ARG,
};
use sre_config::{ClusterConfig, KubernetesIntegration, WatchConfig};
use sre_integration::app::AppHandle;
use sre_integration::http::mcp::{mcp_router, Authenticate, McpMetrics, McpOptions, MCP_PATH};
use sre_integration::http::serve::{HttpMetrics, Limits};
use sre_test_support::grafana::{dashboard, FakeGrafana};
use sre_test_support::kube::{self as fk, FakeKube};
use sre_test_support::loki::{stream, FakeLoki};
use sre_test_support::prometheus::FakePrometheus;
use sre_test_support::tempo::{resource_spans, span, FakeTempo};

/// The SDK version `scripts/install-mcp-client` installs.
const MCP_SDK_VERSION: &str = "2.3.0";
const AGENT_TOKEN: &str = "agent-token-0123456789";
const APPROVER_TOKEN: &str = "approver-token-9876543210";

/// The Python of the SDK's venv (`SRE_MCP_PYTHON` overrides).
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SRE_MCP_PYTHON") {
        return p.into();
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"));
    let p = cache
        .join("sre-integration")
        .join(format!("mcp-venv-{MCP_SDK_VERSION}"))
        .join("bin/python");
    assert!(
        p.exists(),
        "the MCP Python SDK is not installed at {}: run scripts/install-mcp-client (scripts/test does)",
        p.display()
    );
    p
}

/// Runs tests/mcp_client.py with `plan`; its JSON output.
async fn run_client(plan: Value) -> Value {
    let py = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let out = tokio::task::spawn_blocking(move || {
        // `timeout` bounds the client however it hangs.
        Command::new("timeout")
            .arg("120")
            .arg(py)
            .arg(script)
            .arg(plan.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the MCP client failed ({}):\n{}\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A minimal gate for the door's own tests (see the module docs).
struct TestGate {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

impl Gate for TestGate {
    fn list(&self, _caller: &Caller) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }

    fn call<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        mut args: Value,
    ) -> BoxFuture<'a, Result<CallOutcome, ToolError>> {
        Box::pin(async move {
            let tool = self
                .tools
                .get(name)
                .ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
            let spec = tool.spec();
            let approval = args.as_object_mut().and_then(|m| m.remove(APPROVAL_ID_ARG));
            let mut schema = spec.input_schema.clone();
            if let Some(p) = schema["properties"].as_object_mut() {
                p.remove(APPROVAL_ID_ARG);
            }
            sre_actors::tools::schema::validate(&schema, &args)
                .map_err(ToolError::InvalidArguments)?;
            if spec.write && approval != Some(json!("approved-1")) {
                return Ok(CallOutcome::ApprovalRequired(ApprovalRequest {
                    approval_id: "approval-1".into(),
                    tool: name.to_owned(),
                    arguments: args.clone(),
                    arguments_sha256: "0".repeat(64),
                    preview: tool.preview(&args).await?,
                    requested_by: caller.identity.clone(),
                    expires_at: Utc::now() + chrono::Duration::minutes(15),
                }));
            }
            let output = tool.call(&args).await?;
            Ok(CallOutcome::Done(ToolOutput {
                output,
                truncated: false,
            }))
        })
    }
}

fn authenticate() -> Authenticate {
    Arc::new(|header: Option<&str>| {
        (header == Some(format!("Bearer {AGENT_TOKEN}").as_str())).then(|| Caller {
            identity: "srecoder".into(),
            role: Role::Agent,
        })
    })
}

/// Serves `router` on a loopback port with the service's own accept loop; its base URL.
async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(sre_integration::http::serve::serve(
        listener,
        router,
        Limits::from(&sre_config::ServerConfig::default()),
        HttpMetrics::new(&mut prometheus_client::registry::Registry::default()),
        tokio_util::sync::CancellationToken::new(),
    ));
    (format!("http://{addr}"), task)
}

const T0: i64 = 1_735_732_800; // 2025-01-01T12:00:00Z

struct Upstreams {
    prod: FakeKube,
    _staging: FakeKube,
    _prometheus: FakePrometheus,
    _loki: FakeLoki,
    _tempo: FakeTempo,
    _grafana: FakeGrafana,
}

/// The program with two clusters and the four observability backends, all fakes; the read
/// tools as the registry builds them.
async fn program(
    dir: &std::path::Path,
    extra: Vec<Arc<dyn Tool>>,
) -> (sre_integration::app::AppHandle, String, Upstreams) {
    let prod = FakeKube::start().await;
    let staging = FakeKube::start().await;
    let mut pod = fk::pod("web", "api-1");
    pod["metadata"]["labels"] = json!({"app": "api"});
    prod.apply(pod);
    prod.apply(fk::secret("web", "db", [("password", "hunter2-planted")]));
    prod.apply(fk::deployment("web", "api", 2));
    prod.set_logs(
        "web",
        "api-1",
        "app",
        [
            ("2025-01-01T00:01:00Z", "starting"),
            ("2025-01-01T00:02:00Z", "ready"),
            ("2025-01-01T00:03:00Z", "GET /healthz 200"),
        ],
    );
    staging.apply(fk::pod("web", "staging-only"));
    let prometheus = FakePrometheus::start(|q, _| match q {
        "up" => Ok(Some(1.0)),
        _ => Err(400),
    })
    .await;
    let ns = |s: i64| s * 1_000_000_000;
    let loki = FakeLoki::start(vec![stream(
        &[("namespace", "web")],
        &[(ns(T0 - 30), "GET /pay 500 error")],
    )])
    .await;
    let tempo = FakeTempo::start(vec![(
        "abc",
        vec![resource_spans(
            "checkout",
            vec![span(
                "abc",
                "1",
                None,
                "POST /pay",
                ns(T0 - 20) as u64,
                ns(T0 - 19) as u64,
                &[],
            )],
        )],
    )])
    .await;
    let grafana = FakeGrafana::start(None, vec![dashboard("lat", "API Latency", &["api"])]).await;

    let mut c = common::config(dir);
    let kubeconfig = |name: &str, fake: &FakeKube| {
        let path = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, fake.kubeconfig()).unwrap();
        path
    };
    let cluster = |name: &str, f: &FakeKube| ClusterConfig {
        name: name.into(),
        kubeconfig_secret_ref: None,
        kubeconfig_path: Some(kubeconfig(name, f)),
        in_cluster: false,
    };
    c.kubernetes_integration = Some(KubernetesIntegration {
        enabled: true,
        clusters: vec![cluster("prod", &prod), cluster("staging", &staging)],
        watch: WatchConfig {
            namespaces: vec!["nothing-watched-*".into()],
            resource_types: vec![],
            event_max_age: Duration::from_secs(300),
        },
        poll_interval: Duration::from_secs(60),
        log_tail_lines: 100,
    });
    let o = c.observability_integration.as_mut().unwrap();
    let backend = |url: String| serde_json::from_value(json!({"url": url})).unwrap();
    o.prometheus = Some(backend(prometheus.url()));
    o.loki = Some(backend(format!("{}/", loki.url())));
    o.tempo = Some(backend(format!("{}/", tempo.url())));
    o.grafana =
        Some(serde_json::from_value(json!({"url": format!("{}/", grafana.url())})).unwrap());
    c.tools.write_policy =
        serde_json::from_value(json!({"clusters": {"prod": {"namespaces": ["web"]}}})).unwrap();
    common::with_tool_tokens(&mut c, AGENT_TOKEN, APPROVER_TOKEN);
    let app = AppHandle::start_with_tools(c, extra).await.unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    (
        app,
        base,
        Upstreams {
            prod,
            _staging: staging,
            _prometheus: prometheus,
            _loki: loki,
            _tempo: tempo,
            _grafana: grafana,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_lists_and_calls_the_tools_through_the_real_gate() {
    let dir = tempfile::tempdir().unwrap();
    let (app, base, up) = program(dir.path(), Vec::new()).await;
    let url = format!("{base}{MCP_PATH}");
    let restart_args =
        json!({"cluster": "prod", "namespace": "web", "kind": "Deployment", "name": "api"});
    let restarted = || {
        up.prod
            .get("apps/v1", "Deployment", Some("web"), "api")
            .unwrap()["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .clone()
    };

    let calls = json!([
        {"name": "k8s.get_resource", "arguments": {"cluster": "prod", "kind": "pods", "namespace": "web", "name": "api-1"}},
        {"name": "k8s.list_resources", "arguments": {"cluster": "staging", "kind": "pods", "namespace": "web"}},
        {"name": "k8s.get_logs", "arguments": {"cluster": "prod", "namespace": "web", "pod": "api-1", "tail": 2}},
        {"name": "k8s.get_resource", "arguments": {"cluster": "prod", "kind": "secret", "namespace": "web", "name": "db"}},
        {"name": "obs.query_metrics", "arguments": {"query": "up", "time": "2025-01-01T12:00:00Z"}},
        {"name": "obs.search_logs", "arguments": {"query": "{namespace=\"web\"}", "start": "2025-01-01T11:00:00Z", "end": "2025-01-01T12:00:00Z"}},
        {"name": "obs.get_trace", "arguments": {"trace_id": "abc"}},
        {"name": "obs.search_traces", "arguments": {"service": "checkout", "start": "2025-01-01T11:00:00Z", "end": "2025-01-01T12:00:00Z"}},
        {"name": "obs.get_dashboard_url", "arguments": {"uid": "lat", "from": "2025-01-01T11:00:00Z", "to": "2025-01-01T12:00:00Z", "vars": {"env": "prod"}}},
        {"name": "k8s.get_resource", "arguments": {"cluster": "prod", "kind": "pods", "namespace": "web", "name": "missing"}},
        {"name": "k8s.get_resource", "arguments": {"cluster": "nowhere", "kind": "pods", "name": "x"}},
        {"name": "k8s.rollout_restart", "arguments": restart_args},
        {"name": "k8s.no_such_tool", "arguments": {}},
    ]);
    let out = run_client(json!({"url": url, "token": AGENT_TOKEN, "calls": calls})).await;

    assert_eq!(out["server"]["serverInfo"]["name"], "sre-integration");
    assert!(out["server"]["capabilities"]["tools"].is_object());
    // Every tool, with its description and exact schema.
    let listed: BTreeMap<String, Value> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "k8s.apply_manifest",
            "k8s.delete_resource",
            "k8s.describe_resource",
            "k8s.exec_command",
            "k8s.get_events",
            "k8s.get_logs",
            "k8s.get_resource",
            "k8s.list_resources",
            "k8s.rollout_restart",
            "obs.get_dashboard_url",
            "obs.get_trace",
            "obs.query_metrics",
            "obs.search_logs",
            "obs.search_traces"
        ],
        "the 14 tools"
    );
    let writes = [
        "k8s.apply_manifest",
        "k8s.delete_resource",
        "k8s.exec_command",
        "k8s.rollout_restart",
    ];
    for t in listed.values() {
        assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        let write = writes.contains(&t["name"].as_str().unwrap());
        assert_eq!(t["annotations"]["readOnlyHint"], !write, "{t}");
        assert_eq!(t["annotations"]["destructiveHint"], write, "{t}");
        if t["name"].as_str().unwrap().starts_with("k8s.") {
            assert_eq!(
                t["inputSchema"]["properties"]["cluster"]["enum"],
                json!(["prod", "staging"]),
                "{t}"
            );
        }
    }
    assert_eq!(
        listed["k8s.get_logs"]["inputSchema"]["properties"]["cluster"]["enum"],
        json!(["prod", "staging"])
    );

    let c = out["calls"].as_array().unwrap();
    let done = |c: &[Value], i: usize| {
        assert_eq!(c[i]["is_error"], false, "call {i}: {}", c[i]);
        assert_eq!(c[i]["structured"]["status"], "done", "call {i}");
        // The text content is the output as JSON.
        let text: Value = serde_json::from_str(c[i]["text"][0].as_str().unwrap()).unwrap();
        assert_eq!(text, c[i]["structured"]["output"], "call {i}");
        c[i]["structured"]["output"].clone()
    };
    assert_eq!(done(c, 0)["object"]["metadata"]["name"], "api-1");
    assert_eq!(done(c, 1)["items"][0]["metadata"]["name"], "staging-only");
    assert_eq!(done(c, 2)["lines"], json!(["ready", "GET /healthz 200"]));
    assert_eq!(done(c, 3)["object"]["kind"], "Secret");
    assert!(
        !out.to_string().contains("hunter2-planted"),
        "no Secret data"
    );
    assert_eq!(done(c, 4)["result"][0]["points"][0]["v"], 1.0);
    assert_eq!(done(c, 5)["lines"][0]["line"], "GET /pay 500 error");
    assert_eq!(done(c, 6)["spans"][0]["name"], "POST /pay");
    assert_eq!(done(c, 7)["traces"][0]["rootServiceName"], "checkout");
    assert!(done(c, 8)["url"].as_str().unwrap().contains("/d/lat/"));
    // A tool error: isError with the reason.
    assert_eq!(c[9]["is_error"], true, "{}", c[9]);
    assert_eq!(c[9]["structured"]["status"], "error");
    assert_eq!(c[9]["structured"]["error"], "not_found");
    assert!(c[9]["text"][0].as_str().unwrap().contains("not found"));
    assert_eq!(c[10]["is_error"], true);
    assert_eq!(c[10]["structured"]["error"], "invalid_arguments");
    // A write without approval: approval_required, an id, the arguments, the preview, and
    // what to do; nothing ran.
    assert_eq!(c[11]["is_error"], false, "{}", c[11]);
    let s = &c[11]["structured"];
    assert_eq!(s["status"], "approval_required");
    let id = s["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(s["tool"], "k8s.rollout_restart");
    assert_eq!(s["arguments"], restart_args);
    assert_eq!(s["preview"]["action"], "rollout_restart", "{s}");
    assert_eq!(s["requested_by"], "srecoder");
    let text = c[11]["text"][0].as_str().unwrap();
    assert!(
        text.contains("approver must approve")
            && text.contains("approval_id")
            && text.contains(&id),
        "{text}"
    );
    assert_eq!(restarted(), Value::Null, "nothing changed");
    // An unknown tool is a JSON-RPC error.
    assert_eq!(c[12]["error"]["code"], -32602, "{}", c[12]);
    assert!(!up.prod.requests().is_empty());

    // The approver approves through the REST door; the agent repeats the call with the id:
    // it runs once; the id cannot be used again.
    let r = common::client()
        .post(format!("{base}/v1/approvals/{id}/approve"))
        .bearer_auth(APPROVER_TOKEN)
        .json(&json!({"reason": "go"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut with_id = restart_args.clone();
    with_id["approval_id"] = json!(id);
    let again = json!({"name": "k8s.rollout_restart", "arguments": with_id});
    let out = run_client(json!({"url": url, "token": AGENT_TOKEN, "calls": [again, again]})).await;
    let c = out["calls"].as_array().unwrap();
    done(c, 0);
    let at = restarted();
    assert!(at.is_string(), "the Deployment was restarted: {at}");
    assert_eq!(c[1]["is_error"], true, "{}", c[1]);
    assert_eq!(c[1]["structured"]["error"], "approval_refused");
    assert_eq!(restarted(), at, "once");

    app.shutdown().await;
}

/// An `initialize` request as an MCP client sends it.
fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    })
}

async fn post(base: &str, token: Option<&str>, origin: Option<&str>) -> reqwest::Response {
    let mut req = common::client()
        .post(format!("{base}{MCP_PATH}"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_door_wants_a_token_checks_origins_and_caps_sessions() {
    let gate = Arc::new(TestGate {
        tools: BTreeMap::new(),
    });
    let options = McpOptions {
        max_sessions: 2,
        ..McpOptions::default()
    };
    let (base, server) = serve(mcp_router(
        gate,
        authenticate(),
        options,
        McpMetrics::default(),
    ))
    .await;

    for token in [None, Some("wrong-token"), Some("")] {
        let r = post(&base, token, None).await;
        assert_eq!(r.status(), 401, "{token:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    // DNS rebinding: a browser page from another origin is refused even with a token.
    for origin in [
        "http://evil.example",
        "https://localhost.evil.example",
        "null",
    ] {
        let r = post(&base, Some(AGENT_TOKEN), Some(origin)).await;
        assert_eq!(r.status(), 403, "{origin}");
    }
    // Loopback origins and no origin (any non-browser agent) pass, each opening a session.
    let r = post(&base, Some(AGENT_TOKEN), Some("http://localhost:6274")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("mcp-session-id"));
    let r = post(&base, Some(AGENT_TOKEN), None).await;
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    // The cap: a third session is refused; the open ones go on.
    let r = post(&base, Some(AGENT_TOKEN), None).await;
    assert_eq!(r.status(), 503);
    let r = common::client()
        .post(format!("{base}{MCP_PATH}"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .bearer_auth(AGENT_TOKEN)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // A session's requests need the token too.
    let r = common::client()
        .post(format!("{base}{MCP_PATH}"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.abort();
}

/// `tools.mcp` reaches the door the program serves: the origins listed (and only those), the
/// session cap, the hosts.
#[tokio::test]
async fn the_program_serves_the_door_with_the_configured_origins_hosts_and_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(dir.path());
    common::with_tool_tokens(&mut c, AGENT_TOKEN, APPROVER_TOKEN);
    c.tools.mcp = serde_json::from_value(json!({
        "allowed_origins": ["https://inspector.example.com"],
        "allowed_hosts": ["127.0.0.1"],
        "max_sessions": 1,
    }))
    .unwrap();
    let app = AppHandle::start(c).await.unwrap();
    let addr = app.addr().await.unwrap();
    let base = format!("http://{addr}");
    // A loopback origin, allowed by default, is not listed here.
    let r = post(&base, Some(AGENT_TOKEN), Some("http://localhost:6274")).await;
    assert_eq!(r.status(), 403);
    // A Host not listed is refused.
    let r = common::client()
        .post(format!("{base}{MCP_PATH}"))
        .header("host", format!("sre.evil.example:{}", addr.port()))
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(AGENT_TOKEN)
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = post(
        &base,
        Some(AGENT_TOKEN),
        Some("https://inspector.example.com"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("mcp-session-id"));
    // One session at most.
    let r = post(&base, Some(AGENT_TOKEN), None).await;
    assert_eq!(r.status(), 503);
    app.shutdown().await;
}
