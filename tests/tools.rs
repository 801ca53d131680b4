//! The agent tools' REST door and the approvals CLI end to end: the real router over HTTP
//! (reqwest) with tokens from mounted secrets, small recording tools registered through
//! `AppHandle::start_with_tools`, and the binary's `approvals` and `audit tail` verbs against
//! the running instance.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::{json, Value};
use sre_actors::tools::tool::{Tool, ToolError, ToolSpec};
use sre_config::Config;

use common::process::BIN;

const AGENT: &str = "agent-tok-1f9e";
const APPROVER: &str = "approver-tok-77c2";
const PLANTED: &str = "planted-db-password-9d1";

/// A tool that records its calls.
struct Recorder {
    name: &'static str,
    write: bool,
    calls: Mutex<Vec<Value>>,
}

impl Tool for Recorder {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name,
            description: "records its calls",
            input_schema: json!({
                "type": "object",
                "properties": {"cluster": {"type": "string"}, "name": {"type": "string"}},
                "required": ["cluster", "name"],
                "additionalProperties": false
            }),
            write: self.write,
        }
    }
    fn preview<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move { Ok(json!({"would_restart": args["name"]})) })
    }
    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(args.clone());
            Ok(
                json!({"ok": true, "env": [{"name": "DB_PASSWORD", "value": PLANTED}], "note": format!("pw {PLANTED}")}),
            )
        })
    }
}

fn secret(dir: &Path, name: &str, value: &str) {
    let p = dir.join("platform").join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("token"), format!("{value}\n")).unwrap();
}

fn tools_config(dir: &Path) -> Config {
    let mut c = common::config(dir);
    common::with_tool_tokens(&mut c, AGENT, APPROVER);
    // No query backend: the registry holds only the tools each test registers.
    c.observability_integration.as_mut().unwrap().prometheus = None;
    // A configured secret the tool's output happens to contain.
    secret(&c.secrets.dir, "db", PLANTED);
    c.server.ops_auth = Some(sre_config::OpsAuth {
        secret_ref: "platform/db".parse().unwrap(),
    });
    c
}

struct Running {
    _app: sre_integration::app::AppHandle,
    base: String,
    write: Arc<Recorder>,
    read: Arc<Recorder>,
}

async fn start(c: &Config) -> Running {
    let write = Arc::new(Recorder {
        name: "k8s.rollout_restart",
        write: true,
        calls: Mutex::new(Vec::new()),
    });
    let read = Arc::new(Recorder {
        name: "k8s.get_resource",
        write: false,
        calls: Mutex::new(Vec::new()),
    });
    let app = sre_integration::app::AppHandle::start_with_tools(
        c.clone(),
        vec![write.clone(), read.clone()],
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.addr().await.unwrap());
    Running {
        _app: app,
        base,
        write,
        read,
    }
}

async fn send(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let client = common::client();
    let mut req = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn args() -> Value {
    json!({"cluster": "dev", "name": "web"})
}

#[tokio::test]
async fn the_rest_door_enforces_the_gate_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let c = tools_config(dir.path());
    let r = start(&c).await;
    let tools = format!("{}/v1/tools", r.base);
    let restart = format!("{tools}/k8s.rollout_restart");

    // Authentication: none, unknown, agent.
    let (code, body) = send("GET", &tools, None, None).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(send("GET", &tools, Some("nope"), None).await.0, 401);
    let (code, body) = send("GET", &tools, Some(AGENT), None).await;
    assert_eq!(code, 200, "{body}");
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["k8s.get_resource", "k8s.rollout_restart"]);
    assert_eq!(send("POST", &restart, None, Some(args())).await.0, 401);

    // A write without approval: 202, nothing ran.
    let (code, asked) = send("POST", &restart, Some(AGENT), Some(args())).await;
    assert_eq!(code, 202, "{asked}");
    assert_eq!(asked["status"], "approval_required");
    assert_eq!(asked["preview"], json!({"would_restart": "web"}));
    assert_eq!(asked["arguments"], args());
    assert_eq!(asked["arguments_sha256"].as_str().unwrap().len(), 64);
    assert!(asked["expires_at"].is_string());
    assert!(r.write.calls.lock().unwrap().is_empty());
    let id = asked["approval_id"].as_str().unwrap().to_owned();

    // Pending, visible to both roles.
    let (code, list) = send(
        "GET",
        &format!("{}/v1/approvals", r.base),
        Some(AGENT),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["approvals"][0]["approval_id"], id.as_str());
    assert_eq!(list["approvals"][0]["status"], "pending");

    // An agent cannot approve; redeeming before approval is refused.
    let approve = format!("{}/v1/approvals/{id}/approve", r.base);
    let (code, body) = send("POST", &approve, Some(AGENT), None).await;
    assert_eq!(code, 403, "{body}");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("only an approver"));
    let mut with_id = args();
    with_id["approval_id"] = json!(id);
    let (code, body) = send("POST", &restart, Some(AGENT), Some(with_id.clone())).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"], "approval_refused");

    // The approver approves.
    let (code, body) = send(
        "POST",
        &approve,
        Some(APPROVER),
        Some(json!({"reason": "lgtm"})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["decided_by"], "oncall");
    let (code, _) = send("POST", &approve, Some(APPROVER), None).await;
    assert_eq!(code, 409, "decided twice");

    // Altered arguments are refused; the approved ones run once, redacted.
    let mut altered = with_id.clone();
    altered["name"] = json!("db");
    let (code, body) = send("POST", &restart, Some(AGENT), Some(altered)).await;
    assert_eq!(code, 409, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("other arguments"));
    let (code, body) = send("POST", &restart, Some(AGENT), Some(with_id.clone())).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "done");
    assert_eq!(body["truncated"], false);
    assert_eq!(body["output"]["env"][0]["value"], "[redacted]");
    assert!(!body.to_string().contains(PLANTED), "{body}");
    assert_eq!(r.write.calls.lock().unwrap().clone(), vec![args()]);
    let (code, body) = send("POST", &restart, Some(AGENT), Some(with_id)).await;
    assert_eq!(code, 409, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("already used"));
    assert_eq!(r.write.calls.lock().unwrap().len(), 1);

    // Denied.
    let (_, asked) = send("POST", &restart, Some(AGENT), Some(args())).await;
    let id2 = asked["approval_id"].as_str().unwrap().to_owned();
    let (code, _) = send(
        "POST",
        &format!("{}/v1/approvals/{id2}/deny", r.base),
        Some(APPROVER),
        Some(json!({"reason": "freeze"})),
    )
    .await;
    assert_eq!(code, 200);
    let mut with_id2 = args();
    with_id2["approval_id"] = json!(id2);
    let (code, body) = send("POST", &restart, Some(AGENT), Some(with_id2)).await;
    assert_eq!(code, 409);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("denied by oncall: freeze"),
        "{body}"
    );

    // Self-approval: the approver asks, and cannot approve it itself.
    let (_, asked) = send("POST", &restart, Some(APPROVER), Some(args())).await;
    let id3 = asked["approval_id"].as_str().unwrap();
    let (code, body) = send(
        "POST",
        &format!("{}/v1/approvals/{id3}/approve", r.base),
        Some(APPROVER),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"], "self_approval");

    // Errors: unknown tool, bad arguments, bad JSON, a body over the cap, unknown approval.
    let (code, body) = send(
        "POST",
        &format!("{tools}/k8s.nope"),
        Some(AGENT),
        Some(json!({})),
    )
    .await;
    assert_eq!((code, body["error"].as_str()), (404, Some("unknown_tool")));
    let (code, body) = send(
        "POST",
        &format!("{tools}/k8s.get_resource"),
        Some(AGENT),
        Some(json!({"cluster": 1})),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_arguments")),
        "{body}"
    );
    let resp = common::client()
        .post(format!("{tools}/k8s.get_resource"))
        .bearer_auth(AGENT)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = common::client()
        .post(format!("{tools}/k8s.get_resource"))
        .bearer_auth(AGENT)
        .body(format!(
            "{{\"cluster\": \"{}\"}}",
            "x".repeat(2 * 1024 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let (code, _) = send(
        "GET",
        &format!("{}/v1/approvals/nope", r.base),
        Some(AGENT),
        None,
    )
    .await;
    assert_eq!(code, 404);
    let (code, body) = send(
        "POST",
        &format!("{tools}/k8s.get_resource"),
        Some(AGENT),
        Some(args()),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(r.read.calls.lock().unwrap().len(), 1);

    // Metrics and the audit log.
    let metrics = common::client()
        .get(format!("{}/metrics", r.base))
        .bearer_auth(PLANTED)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "sre_tools_calls_total{tool=\"k8s.rollout_restart\",outcome=\"done\"} 1",
        "sre_tools_calls_total{tool=\"k8s.rollout_restart\",outcome=\"approval_refused\"} 4",
        "sre_tools_calls_total{tool=\"unknown\",outcome=\"unknown_tool\"} 1",
        "sre_tools_approvals_pending 1",
        "sre_tools_approval_decisions_total{decision=\"approved\"} 1",
        "sre_tools_approval_decisions_total{decision=\"denied\"} 1",
        "sre_tools_call_duration_seconds_count{tool=\"k8s.get_resource\"}",
    ] {
        assert!(metrics.contains(want), "{want} missing from\n{metrics}");
    }
    let audit_dir = c.intents.embedded.data_dir.join("sre.integration.audit.v1");
    let records = sre_sink::embedded::read_all(&audit_dir).unwrap();
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains(PLANTED) && !text.contains(AGENT) && !text.contains(APPROVER));
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r.value["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.starts_with(&[
            "approval_required",
            "not_approver",
            "approval_refused",
            "approved",
            "not_pending",
            "approval_refused",
            "started",
            "done"
        ]),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn tools_can_have_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = tools_config(dir.path());
    c.tools.listen = Some("127.0.0.1:0".parse().unwrap());
    let app = sre_integration::app::AppHandle::start(c).await.unwrap();
    let main = format!("http://{}", app.addr().await.unwrap());
    let tools = format!("http://{}", app.tools_addr().await.unwrap());
    let (code, body) = send("GET", &format!("{tools}/v1/tools"), Some(AGENT), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["tools"], json!([]));
    let (code, _) = send("GET", &format!("{main}/v1/tools"), Some(AGENT), None).await;
    assert_eq!(code, 404, "not on the main listener");
    // The MCP door goes with the tools: on their listener (behind the same tokens), not the main.
    let (code, _) = send("POST", &format!("{tools}/mcp"), None, Some(json!({}))).await;
    assert_eq!(code, 401);
    let (code, _) = send("POST", &format!("{main}/mcp"), None, Some(json!({}))).await;
    assert_eq!(code, 404);
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approvals_cli_drives_a_running_instance() {
    let dir = tempfile::tempdir().unwrap();
    let c = tools_config(dir.path());
    let r = start(&c).await;
    let restart = format!("{}/v1/tools/k8s.rollout_restart", r.base);
    let (_, asked) = send("POST", &restart, Some(AGENT), Some(args())).await;
    let id = asked["approval_id"].as_str().unwrap().to_owned();
    let base = r.base.clone();
    let run = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&refs)
        })
    };
    let v = |s: &[&str]| -> Vec<String> {
        let mut out: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        out.extend(["--url".to_owned(), base.clone()]);
        out
    };

    let (ok, out, err) = run(v(&["approvals", "list", "--token", APPROVER]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains(&id) && out.contains("k8s.rollout_restart") && out.contains("srecoder"),
        "{out}"
    );
    let (ok, out, err) = run(v(&["approvals", "show", &id, "--token", AGENT]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["preview"], json!({"would_restart": "web"}));
    assert_eq!(shown["status"], "pending");
    let (ok, _, err) = run(v(&["approvals", "list"])).await.unwrap();
    assert!(!ok && err.contains("HTTP 401"), "{err}");
    let (ok, _, err) = run(v(&["approvals", "approve", &id, "--token", AGENT]))
        .await
        .unwrap();
    assert!(!ok, "an agent approved");
    assert!(
        err.contains("only an approver") && err.contains("HTTP 403"),
        "{err}"
    );
    let (ok, out, err) = run(v(&[
        "approvals",
        "approve",
        &id,
        "--reason",
        "lgtm",
        "--token",
        APPROVER,
    ]))
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains(&format!("approved {id}")), "{out}");
    let mut with_id = args();
    with_id["approval_id"] = json!(id);
    let (code, body) = send("POST", &restart, Some(AGENT), Some(with_id)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(r.write.calls.lock().unwrap().len(), 1);

    let (_, asked) = send("POST", &restart, Some(AGENT), Some(args())).await;
    let id2 = asked["approval_id"].as_str().unwrap().to_owned();
    let (ok, out, err) = run(v(&[
        "approvals",
        "deny",
        &id2,
        "--reason",
        "freeze",
        "--token",
        APPROVER,
    ]))
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("denied {id2}")) && out.contains("freeze"),
        "{out}"
    );
    let (ok, out, _) = run(v(&["approvals", "list", "--token", APPROVER]))
        .await
        .unwrap();
    assert!(ok && out.contains("no pending approvals"), "{out}");

    // audit tail reads the same log.
    let file = dir.path().join("audit.yaml");
    std::fs::write(
        &file,
        format!(
            "intents:\n  embedded:\n    data_dir: {}\n",
            c.intents.embedded.data_dir.display()
        ),
    )
    .unwrap();
    let (ok, out, err) = run(vec![
        "audit".into(),
        "tail".into(),
        "--config".into(),
        file.display().to_string(),
        "-n".into(),
        "100".into(),
    ])
    .await
    .unwrap();
    assert!(ok, "{err}");
    let outcomes: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["outcome"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            "approval_required",
            "not_approver",
            "approved",
            "started",
            "done",
            "approval_required",
            "denied"
        ]
    );
}
