//! The Kubernetes write tools (`sre_actors::tools::k8s_write`) on the write API
//! (`sre_actors::kubernetes::write`) against fake API servers (`sre_test_support::kube`): each
//! preview changes nothing and shows what it should, each call makes exactly one change; exec
//! output, stderr, exit codes, timeout, output cap and the v4 fallback; the write policy in
//! preview and call alike; dangerous kinds; a cluster whose circuit is open; Secret values never
//! echoed by apply.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use ractor::Actor;
use serde_json::{json, Value};
use sre_actors::kubernetes::client::{guarded_client, Guard};
use sre_actors::kubernetes::read::ClusterReader;
use sre_actors::kubernetes::write::{ClusterWriter, MASK, MASK_CHANGED, RESTARTED_AT};
use sre_actors::providers::client::install_crypto_provider;
use sre_actors::providers::{
    BreakerConfig, CallPolicy, CircuitArgs, CircuitBoard, CircuitHandle, CircuitState,
    ProviderCircuit, ProviderMetrics,
};
use sre_actors::tools::k8s_write::write_tools;
use sre_actors::tools::tool::{Tool, ToolError};
use sre_config::{ClusterWritePolicy, ExecLimits, WritePolicyConfig};
use sre_test_support::kube::{self as fake, ExecReply, FakeKube};

async fn config(f: &FakeKube) -> kube::Config {
    install_crypto_provider();
    let kc = Kubeconfig::from_yaml(&f.kubeconfig()).expect("kubeconfig parses");
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig accepted")
}

async fn client(f: &FakeKube) -> Client {
    Client::try_from(config(f).await).expect("client")
}

/// Writes allowed in namespace `web` of `prod` and `staging`.
fn policy() -> WritePolicyConfig {
    let web = ClusterWritePolicy {
        namespaces: vec!["web".into()],
        cluster_scoped: false,
    };
    WritePolicyConfig {
        clusters: BTreeMap::from([("prod".into(), web.clone()), ("staging".into(), web)]),
        ..WritePolicyConfig::default()
    }
}

struct Rig {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

impl Rig {
    fn tool(&self, name: &str) -> &Arc<dyn Tool> {
        &self.tools[name]
    }

    async fn preview(&self, name: &str, args: Value) -> Result<Value, ToolError> {
        self.tool(name).preview(&args).await
    }

    async fn call(&self, name: &str, args: Value) -> Result<Value, ToolError> {
        self.tool(name).call(&args).await
    }
}

fn rig_over(clients: BTreeMap<String, Client>, policy: WritePolicyConfig) -> Rig {
    let writer = ClusterWriter::new(ClusterReader::from_clients(clients, 100));
    let tools = write_tools(writer, policy)
        .into_iter()
        .map(|t| (t.spec().name, t))
        .collect();
    Rig { tools }
}

async fn rig(prod: &FakeKube, policy: WritePolicyConfig) -> Rig {
    rig_over(
        BTreeMap::from([("prod".to_owned(), client(prod).await)]),
        policy,
    )
}

fn exec_args(command: &[&str]) -> Value {
    json!({"cluster": "prod", "namespace": "web", "pod": "api-1", "command": command})
}

fn forbidden(r: Result<Value, ToolError>, needle: &str) {
    match r {
        Err(ToolError::Forbidden(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected Forbidden ({needle}), got {other:?}"),
    }
}

#[tokio::test]
async fn the_four_tools_are_writes_with_schemas() {
    let f = FakeKube::start().await;
    let r = rig(&f, policy()).await;
    assert_eq!(
        r.tools.keys().copied().collect::<Vec<_>>(),
        [
            "k8s.apply_manifest",
            "k8s.delete_resource",
            "k8s.exec_command",
            "k8s.rollout_restart"
        ]
    );
    for t in r.tools.values() {
        let spec = t.spec();
        assert!(spec.write, "{}", spec.name);
        assert!(!spec.description.is_empty() && !spec.description.contains('\n'));
        let schema = &spec.input_schema;
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["cluster"]["enum"], json!(["prod"]));
        assert!(schema["required"]
            .as_array()
            .unwrap()
            .contains(&json!("cluster")));
    }
    let exec = r.tool("k8s.exec_command").spec();
    assert_eq!(
        exec.input_schema["properties"]["timeout_seconds"]["maximum"],
        300
    );
    // Arguments the schema rules out are refused by the tool too.
    assert!(matches!(
        r.call(
            "k8s.exec_command",
            json!({"cluster": "prod", "namespace": "web", "pod": "p", "command": "ls"})
        )
        .await,
        Err(ToolError::InvalidArguments(_))
    ));
    assert!(matches!(
        r.call(
            "k8s.exec_command",
            json!({"cluster": "prod", "namespace": "web", "pod": "p", "command": ["ls"], "timeout_seconds": 301})
        )
        .await,
        Err(ToolError::InvalidArguments(m)) if m.contains("maximum")
    ));
    assert!(matches!(
        r.call("k8s.rollout_restart", json!({"cluster": "nowhere", "namespace": "web", "kind": "Deployment", "name": "x"}))
            .await,
        Err(ToolError::InvalidArguments(m)) if m.contains("unknown cluster")
    ));
    assert!(f.mutations().is_empty());
}

#[tokio::test]
async fn exec_returns_output_stderr_and_exit_codes_and_its_preview_runs_nothing() {
    let f = FakeKube::start().await;
    f.apply(fake::pod("web", "api-1"));
    f.on_exec(|call| match call.command[0].as_str() {
        "cat" => ExecReply::stdout(format!("nameserver 10.0.0.10\n{}\n", call.container)),
        "ls" => ExecReply::fail("ls: /nope: No such file or directory\n", 2),
        _ => ExecReply {
            stdout: b"out\n".to_vec(),
            stderr: b"warn\n".to_vec(),
            ..ExecReply::default()
        },
    });
    let r = rig(&f, policy()).await;

    let preview = r
        .preview("k8s.exec_command", exec_args(&["cat", "/etc/resolv.conf"]))
        .await
        .unwrap();
    assert_eq!(preview["action"], "exec");
    assert_eq!(preview["command"], json!(["cat", "/etc/resolv.conf"]));
    assert_eq!(preview["container"], "app", "the pod's only container");
    assert_eq!(preview["timeout_seconds"], 30);
    assert_eq!(preview["pod_status"]["phase"], "Running");
    assert!(f.mutations().is_empty(), "{:?}", f.mutations());
    assert!(f.execs().is_empty());

    let out = r
        .call("k8s.exec_command", exec_args(&["cat", "/etc/resolv.conf"]))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "nameserver 10.0.0.10\napp\n");
    assert_eq!(out["stderr"], "");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["timed_out"], false);
    assert_eq!(out["truncated"], false);
    let changes = f.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].verb, "exec");
    assert_eq!(
        changes[0].body["command"],
        json!(["cat", "/etc/resolv.conf"])
    );

    let out = r
        .call("k8s.exec_command", exec_args(&["ls", "/nope"]))
        .await
        .unwrap();
    assert_eq!(out["exit_code"], 2);
    assert_eq!(out["stderr"], "ls: /nope: No such file or directory\n");

    let out = r
        .call("k8s.exec_command", exec_args(&["sh", "-c", "x"]))
        .await
        .unwrap();
    assert_eq!(
        (out["stdout"].as_str(), out["stderr"].as_str()),
        (Some("out\n"), Some("warn\n"))
    );
    assert_eq!(out["exit_code"], 0);

    // A container the pod does not have: the preview says so, the API refuses the call.
    let mut bad = exec_args(&["ls"]);
    bad["container"] = json!("sidecar");
    assert!(matches!(
        r.preview("k8s.exec_command", bad.clone()).await,
        Err(ToolError::InvalidArguments(m)) if m.contains("sidecar")
    ));
    assert!(matches!(
        r.call("k8s.exec_command", bad).await,
        Err(ToolError::InvalidArguments(m)) if m.contains("sidecar")
    ));
    // No such pod.
    let mut gone = exec_args(&["ls"]);
    gone["pod"] = json!("api-9");
    assert!(matches!(
        r.preview("k8s.exec_command", gone.clone()).await,
        Err(ToolError::NotFound(_))
    ));
    assert!(matches!(
        r.call("k8s.exec_command", gone).await,
        Err(ToolError::NotFound(_))
    ));
    assert_eq!(f.changes().len(), 3);
}

#[tokio::test]
async fn exec_output_is_capped_and_a_planted_token_is_returned_as_printed() {
    let f = FakeKube::start().await;
    f.apply(fake::pod("web", "api-1"));
    f.on_exec(|call| match call.command[0].as_str() {
        "env" => ExecReply::stdout("API_TOKEN=tok-planted-0123456789abcdef\n"),
        _ => ExecReply {
            stdout: vec![b'x'; 10_000],
            stderr: vec![b'e'; 3000],
            exit_code: 3,
            chunk: Some(512),
            ..ExecReply::default()
        },
    });
    let mut p = policy();
    p.exec = ExecLimits {
        max_output_bytes: 1024,
        ..ExecLimits::default()
    };
    let r = rig(&f, p).await;
    let out = r
        .call("k8s.exec_command", exec_args(&["yes"]))
        .await
        .unwrap();
    assert_eq!(out["stdout"].as_str().unwrap().len(), 1024);
    assert_eq!(out["stderr"].as_str().unwrap().len(), 1024);
    assert_eq!(out["truncated"], true);
    assert_eq!(out["stdout_truncated"], true);
    assert_eq!(out["stderr_truncated"], true);
    // Read past the cap to the end: the exit code still arrives.
    assert_eq!(out["exit_code"], 3);

    // Redaction is the gate's job: the tool returns what the command printed.
    let out = r
        .call("k8s.exec_command", exec_args(&["env"]))
        .await
        .unwrap();
    assert_eq!(out["stdout"], "API_TOKEN=tok-planted-0123456789abcdef\n");
}

#[tokio::test]
async fn exec_gives_up_at_its_timeout_with_what_was_printed() {
    let f = FakeKube::start().await;
    f.apply(fake::pod("web", "api-1"));
    f.on_exec(|_| ExecReply::stalled("started\n"));
    let r = rig(&f, policy()).await;
    let mut args = exec_args(&["tail", "-f", "/var/log/app.log"]);
    args["timeout_seconds"] = json!(2);
    let out = r.call("k8s.exec_command", args).await.unwrap();
    assert_eq!(out["timed_out"], true);
    assert_eq!(out["exit_code"], Value::Null);
    assert_eq!(out["stdout"], "started\n");
    assert_eq!(f.changes().len(), 1);
}

#[tokio::test]
async fn exec_speaks_v5_and_falls_back_to_v4() {
    let f = FakeKube::start().await;
    f.apply(fake::pod("web", "api-1"));
    f.on_exec(|call| ExecReply::fail(call.protocol.clone(), 1));
    let r = rig(&f, policy()).await;
    let out = r
        .call("k8s.exec_command", exec_args(&["id"]))
        .await
        .unwrap();
    assert_eq!(out["stderr"], "v5.channel.k8s.io");
    assert_eq!(out["exit_code"], 1);

    f.set_exec_protocols(&["v4.channel.k8s.io"]);
    let out = r
        .call("k8s.exec_command", exec_args(&["id"]))
        .await
        .unwrap();
    assert_eq!(out["stderr"], "v4.channel.k8s.io");
    assert_eq!(out["exit_code"], 1);
    let protocols: Vec<String> = f.execs().into_iter().map(|e| e.protocol).collect();
    assert_eq!(protocols, ["v5.channel.k8s.io", "v4.channel.k8s.io"]);
}

#[tokio::test]
async fn apply_previews_a_dry_run_diff_and_applies_once() {
    let f = FakeKube::start().await;
    f.apply(fake::deployment("web", "api", 2));
    let r = rig(&f, policy()).await;
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: web\nspec:\n  replicas: 5\n";
    let args = json!({"cluster": "prod", "manifest": manifest});

    let preview = r.preview("k8s.apply_manifest", args.clone()).await.unwrap();
    assert_eq!(preview["action"], "apply");
    assert_eq!(preview["operation"], "update");
    assert_eq!(preview["object"]["kind"], "Deployment");
    assert_eq!(preview["object"]["namespace"], "web");
    assert_eq!(preview["field_manager"], "sre-integration");
    let diff = preview["diff"].as_array().unwrap();
    assert!(
        diff.contains(&json!({"op": "replace", "path": "/spec/replicas", "before": 2, "after": 5})),
        "{diff:?}"
    );
    assert!(
        !diff
            .iter()
            .any(|d| d["path"].as_str().unwrap().contains("managedFields")),
        "{diff:?}"
    );
    assert_eq!(preview["dry_run_result"]["spec"]["replicas"], 5);
    // The dry run reached the server and stored nothing.
    let m = f.mutations();
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].dry_run && m[0].verb == "apply");
    assert!(f.changes().is_empty());
    let live = f.get("apps/v1", "Deployment", Some("web"), "api").unwrap();
    assert_eq!(live["spec"]["replicas"], 2);

    let out = r.call("k8s.apply_manifest", args).await.unwrap();
    assert_eq!(out["applied"], true);
    assert_eq!(out["result"]["spec"]["replicas"], 5);
    let changes = f.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].verb, "apply");
    assert_eq!(changes[0].field_manager.as_deref(), Some("sre-integration"));
    assert!(!changes[0].force);
    assert_eq!(
        changes[0].content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    let live = f.get("apps/v1", "Deployment", Some("web"), "api").unwrap();
    assert_eq!(live["spec"]["replicas"], 5);
    assert_eq!(
        live["metadata"]["managedFields"][0]["manager"],
        "sre-integration"
    );

    // A new object, given as JSON with its namespace as an argument: "create", nothing stored
    // by the preview.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"}, "data": {"a": "1"}});
    let args = json!({"cluster": "prod", "manifest": cm, "namespace": "web"});
    let preview = r.preview("k8s.apply_manifest", args.clone()).await.unwrap();
    assert_eq!(preview["operation"], "create");
    assert_eq!(preview["diff"][0]["op"], "add");
    assert!(f.get("v1", "ConfigMap", Some("web"), "flags").is_none());
    assert_eq!(f.changes().len(), 1);
    r.call("k8s.apply_manifest", args).await.unwrap();
    assert_eq!(f.changes().len(), 2);
    assert_eq!(
        f.get("v1", "ConfigMap", Some("web"), "flags").unwrap()["data"]["a"],
        "1"
    );

    // Several objects in one manifest are refused.
    let two = format!("{manifest}---\n{manifest}");
    assert!(matches!(
        r.preview("k8s.apply_manifest", json!({"cluster": "prod", "manifest": two})).await,
        Err(ToolError::InvalidArguments(m)) if m.contains("one per call")
    ));
}

#[tokio::test]
async fn apply_conflicts_with_another_manager_unless_forced() {
    let f = FakeKube::start().await;
    let mut d = fake::deployment("web", "api", 2);
    d["metadata"]["managedFields"] = json!([{
        "manager": "argocd-controller",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }]);
    f.apply(d);
    let r = rig(&f, policy()).await;
    let manifest = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "web"}, "spec": {"replicas": 4}});
    let args = json!({"cluster": "prod", "manifest": manifest});
    match r.preview("k8s.apply_manifest", args.clone()).await {
        Err(ToolError::Upstream { upstream, reason }) => {
            assert_eq!(upstream, "k8s:prod");
            assert!(
                reason.contains("conflict") && reason.contains(".spec.replicas"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(r.call("k8s.apply_manifest", args.clone()).await.is_err());
    assert!(f.changes().is_empty());

    let mut forced = args;
    forced["force"] = json!(true);
    let preview = r
        .preview("k8s.apply_manifest", forced.clone())
        .await
        .unwrap();
    assert_eq!(preview["force"], true);
    assert!(f.changes().is_empty());
    r.call("k8s.apply_manifest", forced).await.unwrap();
    let changes = f.changes();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].force);
    let live = f.get("apps/v1", "Deployment", Some("web"), "api").unwrap();
    assert_eq!(live["spec"]["replicas"], 4);
}

#[tokio::test]
async fn apply_never_echoes_secret_values() {
    let f = FakeKube::start().await;
    f.apply(fake::secret(
        "web",
        "db",
        [("password", "old-planted-password"), ("user", "app")],
    ));
    let r = rig(&f, policy()).await;
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: web\n  annotations:\n    owner: sre\ntype: Opaque\nstringData:\n  password: new-planted-password\n  token: tok-planted-value\n";
    let args = json!({"cluster": "prod", "manifest": manifest});
    let preview = r.preview("k8s.apply_manifest", args.clone()).await.unwrap();
    let text = preview.to_string();
    for planted in [
        "old-planted-password",
        "new-planted-password",
        "tok-planted-value",
        "b2xkLXBsYW50ZWQtcGFzc3dvcmQ=",
        "YXBw",
    ] {
        assert!(!text.contains(planted), "{planted} in {text}");
    }
    assert_eq!(preview["dry_run_result"]["data"]["password"], MASK);
    assert_eq!(
        preview["dry_run_result"]["stringData"]["password"],
        MASK_CHANGED
    );
    assert!(preview["diff"].as_array().unwrap().contains(
        &json!({"op": "add", "path": "/metadata/annotations", "after": {"owner": "sre"}})
    ));
    assert!(f.changes().is_empty());

    let out = r.call("k8s.apply_manifest", args).await.unwrap();
    let text = out.to_string();
    assert!(
        !text.contains("planted") && !text.contains("YXBw"),
        "{text}"
    );
    assert_eq!(f.changes().len(), 1);
}

#[tokio::test]
async fn delete_previews_the_live_object_and_deletes_once() {
    let f = FakeKube::start().await;
    f.apply(fake::config_map("web", "flags"));
    f.apply(fake::secret("web", "db", [("password", "planted-pw")]));
    let r = rig(&f, policy()).await;
    let args = json!({"cluster": "prod", "kind": "ConfigMap", "namespace": "web", "name": "flags", "propagation_policy": "Foreground"});
    let preview = r
        .preview("k8s.delete_resource", args.clone())
        .await
        .unwrap();
    assert_eq!(preview["action"], "delete");
    assert_eq!(preview["propagation_policy"], "Foreground");
    assert_eq!(preview["object"]["apiVersion"], "v1");
    assert_eq!(preview["live"]["metadata"]["name"], "flags");
    assert_eq!(preview["live"]["data"]["config.yaml"], "log_level: info\n");
    assert!(f.mutations().is_empty());

    let out = r.call("k8s.delete_resource", args.clone()).await.unwrap();
    assert_eq!(out["deleted"], true);
    assert_eq!(out["kind"], "ConfigMap");
    let changes = f.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].verb, "delete");
    assert_eq!(changes[0].propagation_policy.as_deref(), Some("Foreground"));
    assert!(f.get("v1", "ConfigMap", Some("web"), "flags").is_none());

    // Gone now.
    assert!(matches!(
        r.preview("k8s.delete_resource", args.clone()).await,
        Err(ToolError::NotFound(_))
    ));
    assert!(matches!(
        r.call("k8s.delete_resource", args).await,
        Err(ToolError::NotFound(_))
    ));
    assert_eq!(f.changes().len(), 1);

    // A Secret's preview shows no value.
    let preview = r
        .preview(
            "k8s.delete_resource",
            json!({"cluster": "prod", "api_version": "v1", "kind": "Secret", "namespace": "web", "name": "db"}),
        )
        .await
        .unwrap();
    assert_eq!(preview["live"]["data"]["password"], MASK);
    assert!(!preview.to_string().contains("cGxhbnRlZC1wdw=="));
}

#[tokio::test]
async fn dangerous_kinds_are_deleted_only_where_allowed() {
    let f = FakeKube::start().await;
    f.apply(fake::namespace("legacy"));
    let mut p = policy();
    p.clusters.get_mut("prod").unwrap().cluster_scoped = true;
    let r = rig(&f, p.clone()).await;
    let ns = json!({"cluster": "prod", "kind": "Namespace", "name": "legacy"});
    let crd = json!({"cluster": "prod", "kind": "CustomResourceDefinition", "name": "applications.argoproj.io"});
    for args in [&ns, &crd] {
        forbidden(
            r.preview("k8s.delete_resource", args.clone()).await,
            "allow_dangerous_kinds",
        );
        forbidden(
            r.call("k8s.delete_resource", args.clone()).await,
            "allow_dangerous_kinds",
        );
    }
    assert!(f.mutations().is_empty());
    assert!(f.get("v1", "Namespace", None, "legacy").is_some());

    // Allowed, but the cluster takes no cluster-scoped writes: still refused.
    p.allow_dangerous_kinds = vec!["Namespace".into()];
    let mut no_scope = p.clone();
    no_scope.clusters.get_mut("prod").unwrap().cluster_scoped = false;
    let r = rig(&f, no_scope).await;
    forbidden(
        r.call("k8s.delete_resource", ns.clone()).await,
        "cluster_scoped",
    );
    assert!(f.mutations().is_empty());

    let r = rig(&f, p).await;
    let preview = r.preview("k8s.delete_resource", ns.clone()).await.unwrap();
    assert_eq!(preview["live"]["kind"], "Namespace");
    assert_eq!(preview["object"]["namespace"], Value::Null);
    r.call("k8s.delete_resource", ns).await.unwrap();
    assert_eq!(f.changes().len(), 1);
    assert!(f.get("v1", "Namespace", None, "legacy").is_none());
    forbidden(
        r.call("k8s.delete_resource", crd).await,
        "allow_dangerous_kinds",
    );
}

#[tokio::test]
async fn rollout_restart_previews_the_workload_and_patches_the_template_once() {
    let f = FakeKube::start().await;
    f.register_kind("apps", "v1", "StatefulSet", "statefulsets", true);
    f.apply(fake::deployment("web", "api", 3));
    f.apply(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "web"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "db"}}}},
        "status": {"readyReplicas": 2, "currentRevision": "db-7d9f"},
    }));
    let r = rig(&f, policy()).await;
    let args = json!({"cluster": "prod", "namespace": "web", "kind": "Deployment", "name": "api"});
    let preview = r
        .preview("k8s.rollout_restart", args.clone())
        .await
        .unwrap();
    assert_eq!(preview["action"], "rollout_restart");
    assert_eq!(preview["name"], "api");
    assert_eq!(preview["replicas"], 3);
    assert_eq!(preview["revision"], "1");
    assert_eq!(preview["annotation"]["key"], RESTARTED_AT);
    assert!(f.mutations().is_empty());

    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let out = r.call("k8s.rollout_restart", args).await.unwrap();
    assert_eq!(out["restarted"], true);
    let changes = f.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].verb, "patch");
    assert_eq!(
        changes[0].content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    let stamp = changes[0].body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        .as_str()
        .unwrap()
        .to_owned();
    // As kubectl writes it: RFC 3339, whole seconds.
    let at = chrono::DateTime::parse_from_rfc3339(&stamp).unwrap();
    assert!(at >= before && !stamp.contains('.'), "{stamp}");
    assert_eq!(out["annotation"]["value"], stamp);
    let live = f.get("apps/v1", "Deployment", Some("web"), "api").unwrap();
    assert_eq!(
        live["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
        stamp
    );
    assert_eq!(live["spec"]["template"]["metadata"]["labels"]["app"], "api");

    // A StatefulSet through discovery.
    let args = json!({"cluster": "prod", "namespace": "web", "kind": "StatefulSet", "name": "db"});
    let preview = r
        .preview("k8s.rollout_restart", args.clone())
        .await
        .unwrap();
    assert_eq!(preview["revision"], "db-7d9f");
    assert_eq!(preview["replicas"], 2);
    r.call("k8s.rollout_restart", args).await.unwrap();
    assert_eq!(f.changes().len(), 2);

    assert!(matches!(
        r.preview(
            "k8s.rollout_restart",
            json!({"cluster": "prod", "namespace": "web", "kind": "ReplicaSet", "name": "x"})
        )
        .await,
        Err(ToolError::InvalidArguments(_))
    ));
    assert!(matches!(
        r.call(
            "k8s.rollout_restart",
            json!({"cluster": "prod", "namespace": "web", "kind": "Deployment", "name": "nope"})
        )
        .await,
        Err(ToolError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_write_policy_refuses_in_preview_and_call_alike() {
    let f = FakeKube::start().await;
    f.apply(fake::pod("kube-system", "coredns-1"));
    f.apply(fake::deployment("kube-system", "coredns", 2));
    f.on_exec(|_| ExecReply::stdout("ran"));
    let mut p = policy();
    p.kinds.deny = vec!["ConfigMap".into()];
    let r = rig(&f, p).await;
    let cases = [
        (
            "k8s.exec_command",
            json!({"cluster": "prod", "namespace": "kube-system", "pod": "coredns-1", "command": ["id"]}),
            "namespace \"kube-system\"",
        ),
        (
            "k8s.apply_manifest",
            json!({"cluster": "prod", "manifest": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": "kube-system"}, "spec": {"replicas": 9}}}),
            "namespace \"kube-system\"",
        ),
        (
            "k8s.apply_manifest",
            json!({"cluster": "prod", "manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "web"}}}),
            "kinds.deny",
        ),
        (
            "k8s.apply_manifest",
            json!({"cluster": "prod", "manifest": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}}),
            "cluster_scoped",
        ),
        (
            "k8s.delete_resource",
            json!({"cluster": "prod", "kind": "Deployment", "namespace": "kube-system", "name": "coredns"}),
            "namespace \"kube-system\"",
        ),
        (
            "k8s.rollout_restart",
            json!({"cluster": "prod", "namespace": "kube-system", "kind": "Deployment", "name": "coredns"}),
            "namespace \"kube-system\"",
        ),
    ];
    for (tool, args, needle) in &cases {
        forbidden(r.preview(tool, args.clone()).await, needle);
        forbidden(r.call(tool, args.clone()).await, needle);
    }
    assert!(f.mutations().is_empty(), "{:?}", f.mutations());
    assert!(f.execs().is_empty());

    // A cluster the policy does not list takes no writes, and is not even asked.
    let r = rig(&f, WritePolicyConfig::default()).await;
    f.clear_requests();
    for (tool, args, _) in &cases {
        forbidden(r.preview(tool, args.clone()).await, "takes no writes");
        forbidden(r.call(tool, args.clone()).await, "takes no writes");
    }
    assert!(f.requests().is_empty());
}

#[tokio::test]
async fn a_cluster_whose_circuit_is_open_answers_at_once_and_another_works() {
    let (prod, staging) = (FakeKube::start().await, FakeKube::start().await);
    for f in [&prod, &staging] {
        f.apply(fake::pod("web", "api-1"));
        f.apply(fake::deployment("web", "api", 2));
        f.on_exec(|_| ExecReply::stdout("ok"));
    }
    let handle = CircuitHandle::new("k8s:prod");
    let metrics = ProviderMetrics::default();
    let board = CircuitBoard::default();
    let guard = Guard {
        circuit: handle.clone(),
        policy: CallPolicy {
            timeout: Duration::from_secs(30),
            max_attempts: 1,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(10),
        },
        metrics: metrics.clone(),
    };
    let (actor, task) = Actor::spawn(
        None,
        ProviderCircuit,
        CircuitArgs {
            config: BreakerConfig {
                failure_rate_threshold: 0.5,
                window: Duration::from_secs(60),
                minimum_calls: 1,
                open_duration: Duration::from_secs(3600),
                half_open_trials: 1,
            },
            handle,
            metrics,
            board: board.clone(),
        },
    )
    .await
    .unwrap();
    let prod_client = guarded_client(config(&prod).await, guard).unwrap();
    let r = rig_over(
        BTreeMap::from([
            ("prod".to_owned(), prod_client),
            ("staging".to_owned(), client(&staging).await),
        ]),
        policy(),
    );
    let restart = |cluster: &str| json!({"cluster": cluster, "namespace": "web", "kind": "Deployment", "name": "api"});
    // One failure opens the circuit.
    prod.fail_with(500);
    assert!(r
        .preview("k8s.rollout_restart", restart("prod"))
        .await
        .is_err());
    for _ in 0..200 {
        let open = board
            .get("k8s:prod")
            .is_some_and(|s| matches!(s.state, CircuitState::Open));
        if open {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    prod.recover();
    prod.clear_requests();

    let exec = |cluster: &str| json!({"cluster": cluster, "namespace": "web", "pod": "api-1", "command": ["id"]});
    for (tool, args) in [
        ("k8s.rollout_restart", restart("prod")),
        ("k8s.exec_command", exec("prod")),
    ] {
        for preview in [true, false] {
            let result = if preview {
                r.preview(tool, args.clone()).await
            } else {
                r.call(tool, args.clone()).await
            };
            match result {
                Err(ToolError::Unavailable { upstream, reason }) => {
                    assert_eq!(upstream, "k8s:prod");
                    assert!(
                        reason.contains("k8s:prod") && reason.contains("open"),
                        "{reason}"
                    );
                }
                other => panic!("{tool}: {other:?}"),
            }
        }
    }
    assert!(prod.requests().is_empty(), "{:?}", prod.requests());
    assert!(prod.mutations().is_empty());

    // The other cluster is not affected.
    r.call("k8s.rollout_restart", restart("staging"))
        .await
        .unwrap();
    let out = r.call("k8s.exec_command", exec("staging")).await.unwrap();
    assert_eq!(out["stdout"], "ok");
    assert_eq!(staging.changes().len(), 2);
    actor.stop(None);
    task.await.unwrap();
}
