//! Target 8: the MCP door's overhead on `k8s.get_resource`. One process runs a fake
//! Kubernetes API server, the `ClusterReader`, the read tools behind a pass-through gate and
//! the `/mcp` door (rmcp streamable HTTP, bearer auth, a session) on a loopback port; the same
//! read is then made alternately through the library (`ClusterReader::get`) and as an MCP
//! `tools/call` over HTTP (one keep-alive connection, the session's id, the service's own accept loop), and the latencies'
//! p50 and p99 are compared. The gate here only looks the tool up and calls it (the real
//! gate's audit and redaction are the gate's own figure).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{json, Value};
use sre_actors::kubernetes::read::{ClusterReader, Kind};
use sre_actors::tools::read_tools;
use sre_actors::tools::tool::{
    CallOutcome, Caller, Gate, Role, Tool, ToolError, ToolOutput, ToolSpec,
};
use sre_actors::tools::ObsClients;
use sre_integration::http::mcp::{mcp_router, McpMetrics, McpOptions, MCP_PATH};
use sre_integration::http::serve::{serve, HttpMetrics, Limits};
use sre_test_support::kube::{self as fk, FakeKube};

const TOKEN: &str = "bench-token";

struct PassGate(BTreeMap<&'static str, Arc<dyn Tool>>);

impl Gate for PassGate {
    fn list(&self, _: &Caller) -> Vec<ToolSpec> {
        self.0.values().map(|t| t.spec()).collect()
    }

    fn call<'a>(
        &'a self,
        _: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<CallOutcome, ToolError>> {
        Box::pin(async move {
            let tool = self
                .0
                .get(name)
                .ok_or_else(|| ToolError::UnknownTool(name.into()))?;
            let output = tool.call(&args).await?;
            Ok(CallOutcome::Done(ToolOutput {
                output,
                truncated: false,
            }))
        })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The JSON-RPC answer in an SSE or JSON body.
fn answer(body: &str) -> Value {
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|l| l.contains("\"jsonrpc\""))
        .unwrap_or(body.trim());
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The target 8 line.
pub fn mcp_overhead(calls: usize) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(calls))
}

async fn run(calls: usize) -> String {
    sre_actors::providers::client::install_crypto_provider();
    let f = FakeKube::start().await;
    f.apply(fk::pod("web", "api-1"));
    let kc = kube::config::Kubeconfig::from_yaml(&f.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let reader = ClusterReader::from_clients(BTreeMap::from([("prod".to_owned(), client)]), 100);
    let tools = read_tools(Some(reader.clone()), ObsClients::default())
        .into_iter()
        .map(|t| (t.spec().name, t))
        .collect();
    let authenticate = Arc::new(|h: Option<&str>| {
        (h == Some(format!("Bearer {TOKEN}").as_str())).then(|| Caller {
            identity: "bench".into(),
            role: Role::Agent,
        })
    });
    let router = mcp_router(
        Arc::new(PassGate(tools)),
        authenticate,
        McpOptions::default(),
        McpMetrics::default(),
    );
    // The service's own accept loop and connection settings (TCP_NODELAY, limits).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{MCP_PATH}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        router,
        Limits::from(&sre_config::ServerConfig::default()),
        HttpMetrics::new(&mut prometheus_client::registry::Registry::default()),
        shutdown.clone(),
    ));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let post = |session: Option<String>, body: Value| {
        let mut req = http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let init = post(
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "sre-bench", "version": "1"}}}),
    )
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = init.text().await;
    post(
        Some(session.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();

    let args = json!({"cluster": "prod", "kind": "pods", "namespace": "web", "name": "api-1"});
    let mcp_call = |id: usize| {
        let (post, session, args) = (&post, session.clone(), args.clone());
        async move {
            let t = Instant::now();
            let body = post(
                Some(session),
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": "k8s.get_resource", "arguments": args}}),
            )
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
            let d = t.elapsed();
            let a = answer(&body);
            assert_eq!(
                a["result"]["structuredContent"]["output"]["object"]["metadata"]["name"], "api-1",
                "{a}"
            );
            d
        }
    };
    let direct = || async {
        let t = Instant::now();
        let o = reader
            .get("prod", &Kind::Pods, Some("web"), "api-1")
            .await
            .unwrap();
        let d = t.elapsed();
        assert_eq!(o["metadata"]["name"], "api-1");
        d
    };
    // Warm-up, then alternate so both see the same machine.
    for i in 0..calls / 10 + 1 {
        mcp_call(i).await;
        direct().await;
    }
    let (mut m, mut d) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for i in 0..calls {
        m.push(mcp_call(1_000_000 + i).await);
        d.push(direct().await);
    }
    shutdown.cancel();
    let _ = server.await;
    let ms = |v: &mut Vec<Duration>| {
        let mut v: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        (percentile(&v, 0.5), percentile(&v, 0.99))
    };
    let (m50, m99) = ms(&mut m);
    let (d50, d99) = ms(&mut d);
    let (o50, o99) = (m50 - d50, m99 - d99);
    format!(
        "target 8 MCP tools/call k8s.get_resource vs ClusterReader::get, {calls} calls each, fake API server: MCP p50 {m50:.3} ms p99 {m99:.3} ms | direct p50 {d50:.3} ms p99 {d99:.3} ms | overhead p50 {o50:.3} ms p99 {o99:.3} ms (p99 ratio {:.2}) | target p99 overhead <= 2 ms",
        m99 / d99
    )
}
