//! The Kubernetes write tools (DESIGN §3.3c): `k8s.exec_command`, `k8s.apply_manifest`,
//! `k8s.delete_resource` and `k8s.rollout_restart`, on [`ClusterWriter`].
//!
//! Each is a [`Tool`] with `write: true`: the gate shows its [`preview`](Tool::preview) to the
//! approver and runs its [`call`](Tool::call) only after a valid approval (approvals are the
//! gate's business, not these tools'). Preview and call both check the [`WritePolicy`] first,
//! so nothing is previewed that could not run, and a preview changes nothing:
//!
//! | tool | preview | call |
//! | --- | --- | --- |
//! | `k8s.exec_command` | the pod (phase, containers), the container, the argv, the timeout | stdout / stderr (each capped, `truncated`), exit code, `timed_out` |
//! | `k8s.apply_manifest` | a server-side dry run (`dryRun=All`) and the diff from the live object | the applied object |
//! | `k8s.delete_resource` | the live object, the propagation policy | what was deleted |
//! | `k8s.rollout_restart` | the workload (replicas, revision), the annotation to be set | the workload after the patch |
//!
//! Outputs are JSON; a Secret's values never appear in them (see
//! [`crate::kubernetes::write`]); exec output is returned as the command printed it (the gate
//! redacts).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::tool::{Tool, ToolError, ToolSpec};
use super::write_policy::WritePolicy;
use crate::kubernetes::read::Kind;
use crate::kubernetes::write::{
    ClusterWriter, ExecRequest, ObjectRef, Propagation, Workload, WriteError, FIELD_MANAGER,
};

/// The largest manifest accepted (bytes of YAML / JSON).
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Most arguments of an exec'd command.
pub const MAX_COMMAND_ARGS: usize = 256;

/// The four write tools over `writer`'s clusters under `policy`, for the registry.
pub fn write_tools(
    writer: ClusterWriter,
    policy: sre_config::WritePolicyConfig,
) -> Vec<Arc<dyn Tool>> {
    let shared = Arc::new(Shared {
        clusters: writer.clusters(),
        writer,
        policy: WritePolicy::new(policy),
    });
    vec![
        Arc::new(ExecCommand(shared.clone())),
        Arc::new(ApplyManifest(shared.clone())),
        Arc::new(DeleteResource(shared.clone())),
        Arc::new(RolloutRestart(shared)),
    ]
}

struct Shared {
    writer: ClusterWriter,
    policy: WritePolicy,
    clusters: Vec<String>,
}

impl Shared {
    /// The `cluster` argument: a configured cluster that takes writes.
    fn cluster<'a>(&self, args: &'a Value) -> Result<&'a str, ToolError> {
        let cluster = string(args, "cluster")?;
        if !self.clusters.iter().any(|c| c == cluster) {
            return Err(ToolError::InvalidArguments(format!(
                "unknown cluster {cluster:?}: one of {}",
                self.clusters.join(", ")
            )));
        }
        self.policy.check_cluster(cluster)?;
        Ok(cluster)
    }

    fn cluster_schema(&self) -> Value {
        json!({
            "type": "string",
            "enum": self.clusters,
            "description": "The cluster, by its configured name.",
        })
    }
}

/// A write failure as a tool error (never with a secret: the API's messages name objects and
/// fields, not values).
fn tool_error(cluster: &str, e: WriteError) -> ToolError {
    let upstream = format!("k8s:{cluster}");
    match e {
        WriteError::UnknownCluster(c) => {
            ToolError::InvalidArguments(format!("unknown cluster {c:?}"))
        }
        WriteError::Unavailable { reason, .. } => ToolError::Unavailable { upstream, reason },
        WriteError::NotFound(m) => ToolError::NotFound(m),
        WriteError::Invalid(m) => ToolError::InvalidArguments(m),
        WriteError::UnknownKind(m) => {
            ToolError::InvalidArguments(format!("kind {m} is not served by cluster {cluster}"))
        }
        e @ (WriteError::Forbidden(_)
        | WriteError::Unauthorized(_)
        | WriteError::Conflict(_)
        | WriteError::Malformed(_)
        | WriteError::Exec(_)
        | WriteError::Api { .. }) => ToolError::Upstream {
            upstream,
            reason: e.to_string(),
        },
    }
}

fn string<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    args.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ToolError::InvalidArguments(format!("{key} (a non-empty string) is required"))
        })
}

fn opt_string<'a>(args: &'a Value, key: &str) -> Result<Option<&'a str>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim())),
        Some(_) => Err(ToolError::InvalidArguments(format!(
            "{key} must be a string"
        ))),
    }
}

fn opt_bool(args: &Value, key: &str) -> Result<bool, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ToolError::InvalidArguments(format!(
            "{key} must be a boolean"
        ))),
    }
}

fn object_ref(cluster: &str, t: &ObjectRef) -> Value {
    json!({
        "cluster": cluster,
        "apiVersion": t.api_version,
        "kind": t.kind,
        "namespace": t.namespace,
        "name": t.name,
    })
}

// ---------------------------------------------------------------------------------------------
// k8s.exec_command

/// `k8s.exec_command`: runs argv in a pod's container (no TTY, no stdin).
struct ExecCommand(Arc<Shared>);

/// An exec call's arguments, checked.
struct ExecArgs<'a> {
    cluster: &'a str,
    namespace: &'a str,
    pod: &'a str,
    container: Option<&'a str>,
    command: Vec<String>,
    timeout: Duration,
}

impl ExecCommand {
    fn args<'a>(&self, args: &'a Value) -> Result<ExecArgs<'a>, ToolError> {
        let s = &self.0;
        let cluster = s.cluster(args)?;
        let namespace = string(args, "namespace")?;
        let pod = string(args, "pod")?;
        let container = opt_string(args, "container")?;
        let command: Vec<String> = match args.get("command") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ToolError::InvalidArguments("command must be an array of strings".into())
                })?,
            _ => {
                return Err(ToolError::InvalidArguments(
                    "command (an array of strings: the argv) is required".into(),
                ))
            }
        };
        if command.is_empty() || command[0].is_empty() {
            return Err(ToolError::InvalidArguments("command is empty".into()));
        }
        if command.len() > MAX_COMMAND_ARGS {
            return Err(ToolError::InvalidArguments(format!(
                "command has more than {MAX_COMMAND_ARGS} arguments"
            )));
        }
        let limits = &s.policy.config().exec;
        let timeout = match args.get("timeout_seconds") {
            None | Some(Value::Null) => limits.default_timeout,
            Some(v) => {
                let secs = v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                    ToolError::InvalidArguments("timeout_seconds must be a positive integer".into())
                })?;
                let t = Duration::from_secs(secs);
                if t > limits.max_timeout {
                    return Err(ToolError::InvalidArguments(format!(
                        "timeout_seconds {secs} is over the maximum {}",
                        limits.max_timeout.as_secs()
                    )));
                }
                t
            }
        };
        s.policy.check_object(cluster, "Pod", Some(namespace))?;
        Ok(ExecArgs {
            cluster,
            namespace,
            pod,
            container,
            command,
            timeout,
        })
    }
}

impl Tool for ExecCommand {
    fn spec(&self) -> ToolSpec {
        let max = self.0.policy.config().exec.max_timeout.as_secs();
        ToolSpec {
            name: "k8s.exec_command",
            description: "Run a command (argv, no shell unless you call one, no TTY, no stdin) in a pod's container and get its stdout, stderr and exit code; output is capped.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "cluster": self.0.cluster_schema(),
                    "namespace": {"type": "string", "minLength": 1, "description": "The pod's namespace."},
                    "pod": {"type": "string", "minLength": 1, "description": "The pod's name."},
                    "container": {"type": "string", "description": "The container; may be left out when the pod has one."},
                    "command": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": MAX_COMMAND_ARGS,
                        "description": "The argv, e.g. [\"cat\", \"/etc/resolv.conf\"] or [\"sh\", \"-c\", \"ps aux | head\"].",
                    },
                    "timeout_seconds": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": max,
                        "description": format!("How long the command may run (default {}).", self.0.policy.config().exec.default_timeout.as_secs()),
                    },
                },
                "required": ["cluster", "namespace", "pod", "command"],
                "additionalProperties": false,
            }),
            write: true,
        }
    }

    fn preview<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a = self.args(args)?;
            let pod = self
                .0
                .writer
                .pod_summary(a.cluster, a.namespace, a.pod)
                .await
                .map_err(|e| tool_error(a.cluster, e))?;
            let containers = pod["containers"].as_array().cloned().unwrap_or_default();
            let container = match a.container {
                Some(c) if containers.iter().any(|n| n == c) => json!(c),
                Some(c) => {
                    return Err(ToolError::InvalidArguments(format!(
                        "pod {}/{} has no container {c:?} (it has {})",
                        a.namespace,
                        a.pod,
                        Value::Array(containers)
                    )))
                }
                None if containers.len() == 1 => containers[0].clone(),
                None => {
                    return Err(ToolError::InvalidArguments(format!(
                        "pod {}/{} has several containers: name one of {}",
                        a.namespace,
                        a.pod,
                        Value::Array(containers)
                    )))
                }
            };
            Ok(json!({
                "action": "exec",
                "cluster": a.cluster,
                "namespace": a.namespace,
                "pod": a.pod,
                "container": container,
                "command": a.command,
                "timeout_seconds": a.timeout.as_secs(),
                "max_output_bytes": self.0.policy.config().exec.max_output_bytes,
                "pod_status": {"phase": pod["phase"], "node": pod["node"], "containers": pod["containers"]},
            }))
        })
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a = self.args(args)?;
            let req = ExecRequest {
                namespace: a.namespace.to_owned(),
                pod: a.pod.to_owned(),
                container: a.container.map(str::to_owned),
                command: a.command.clone(),
                timeout: a.timeout,
                max_output_bytes: self.0.policy.config().exec.max_output_bytes,
            };
            let out = self
                .0
                .writer
                .exec(a.cluster, &req)
                .await
                .map_err(|e| tool_error(a.cluster, e))?;
            Ok(json!({
                "cluster": a.cluster,
                "namespace": a.namespace,
                "pod": a.pod,
                "container": a.container,
                "command": a.command,
                "exit_code": out.exit_code,
                "timed_out": out.timed_out,
                "stdout": out.stdout,
                "stderr": out.stderr,
                "truncated": out.stdout_truncated || out.stderr_truncated,
                "stdout_truncated": out.stdout_truncated,
                "stderr_truncated": out.stderr_truncated,
            }))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.apply_manifest

/// `k8s.apply_manifest`: server-side apply of one object.
struct ApplyManifest(Arc<Shared>);

impl ApplyManifest {
    /// The cluster, the manifest as JSON, its resolved object (policy checked) and `force`.
    async fn args<'a>(
        &self,
        args: &'a Value,
    ) -> Result<(&'a str, Value, ObjectRef, bool), ToolError> {
        let s = &self.0;
        let cluster = s.cluster(args)?;
        let manifest = manifest(args.get("manifest"))?;
        let force = opt_bool(args, "force")?;
        let kind = manifest["kind"]
            .as_str()
            .ok_or_else(|| ToolError::InvalidArguments("the manifest has no kind".into()))?;
        s.policy.check_kind(kind)?;
        let target = s
            .writer
            .manifest_target(cluster, &manifest, opt_string(args, "namespace")?)
            .await
            .map_err(|e| tool_error(cluster, e))?;
        s.policy
            .check_object(cluster, &target.kind, target.namespace.as_deref())?;
        Ok((cluster, manifest, target, force))
    }
}

/// One object from a YAML / JSON string or a JSON object.
fn manifest(v: Option<&Value>) -> Result<Value, ToolError> {
    let invalid = |m: String| ToolError::InvalidArguments(m);
    let obj = match v {
        Some(Value::Object(_)) => v.cloned().unwrap_or_default(),
        Some(Value::String(text)) => {
            if text.len() > MAX_MANIFEST_BYTES {
                return Err(invalid(format!(
                    "the manifest is larger than {MAX_MANIFEST_BYTES} bytes"
                )));
            }
            let mut docs = Vec::new();
            for doc in serde_norway::Deserializer::from_str(text) {
                let v: Value = serde::Deserialize::deserialize(doc)
                    .map_err(|e| invalid(format!("the manifest is not valid YAML or JSON: {e}")))?;
                if !v.is_null() {
                    docs.push(v);
                }
            }
            match docs.len() {
                1 => docs.pop().unwrap_or_default(),
                0 => return Err(invalid("the manifest is empty".into())),
                n => {
                    return Err(invalid(format!(
                        "the manifest holds {n} objects: apply one per call"
                    )))
                }
            }
        }
        _ => {
            return Err(invalid(
                "manifest (one object, as a YAML / JSON string or a JSON object) is required"
                    .into(),
            ))
        }
    };
    if !obj.is_object() {
        return Err(invalid("the manifest is not an object".into()));
    }
    if obj["kind"].as_str().is_some_and(|k| k.ends_with("List")) {
        return Err(invalid(
            "a List cannot be applied: apply one object per call".into(),
        ));
    }
    Ok(obj)
}

impl Tool for ApplyManifest {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.apply_manifest",
            description: "Create or update one Kubernetes object by server-side apply (field manager sre-integration); the approver sees a server-side dry run and its diff first.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "cluster": self.0.cluster_schema(),
                    "manifest": {
                        "oneOf": [
                            {"type": "string", "minLength": 1},
                            {"type": "object"},
                        ],
                        "description": "One object with apiVersion, kind and metadata.name, as a YAML or JSON string or a JSON object.",
                    },
                    "namespace": {"type": "string", "description": "The namespace when the manifest names none (a namespaced kind needs one)."},
                    "force": {"type": "boolean", "default": false, "description": "Take over fields another field manager owns instead of failing with a conflict."},
                },
                "required": ["cluster", "manifest"],
                "additionalProperties": false,
            }),
            write: true,
        }
    }

    fn preview<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let (cluster, manifest, target, force) = self.args(args).await?;
            let p = self
                .0
                .writer
                .preview_apply(cluster, &target, &manifest, force)
                .await
                .map_err(|e| tool_error(cluster, e))?;
            Ok(json!({
                "action": "apply",
                "object": object_ref(cluster, &target),
                "operation": p.operation,
                "field_manager": FIELD_MANAGER,
                "force": force,
                "diff": p.diff,
                "diff_truncated": p.diff_truncated,
                "dry_run_result": p.result,
            }))
        })
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let (cluster, manifest, target, force) = self.args(args).await?;
            let result = self
                .0
                .writer
                .apply(cluster, &target, &manifest, force)
                .await
                .map_err(|e| tool_error(cluster, e))?;
            Ok(json!({
                "applied": true,
                "object": object_ref(cluster, &target),
                "field_manager": FIELD_MANAGER,
                "force": force,
                "result": result,
            }))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.delete_resource

/// `k8s.delete_resource`: deletes one object.
struct DeleteResource(Arc<Shared>);

/// A delete's arguments, checked as far as they can be without the cluster.
struct DeleteArgs<'a> {
    cluster: &'a str,
    /// As given, or as the API spells a known kind.
    kind: String,
    api_version: String,
    namespace: Option<&'a str>,
    name: &'a str,
    propagation: Propagation,
}

/// The apiVersion of a kind given without one.
fn default_api_version(kind: &str) -> Option<(&'static str, &'static str)> {
    const KNOWN: &[(&str, &str)] = &[
        ("Pod", "v1"),
        ("Service", "v1"),
        ("ConfigMap", "v1"),
        ("Secret", "v1"),
        ("Namespace", "v1"),
        ("Node", "v1"),
        ("PersistentVolume", "v1"),
        ("PersistentVolumeClaim", "v1"),
        ("ServiceAccount", "v1"),
        ("Endpoints", "v1"),
        ("Event", "v1"),
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("ReplicaSet", "apps/v1"),
        ("Job", "batch/v1"),
        ("CronJob", "batch/v1"),
        ("Ingress", "networking.k8s.io/v1"),
        ("NetworkPolicy", "networking.k8s.io/v1"),
        ("Role", "rbac.authorization.k8s.io/v1"),
        ("RoleBinding", "rbac.authorization.k8s.io/v1"),
        ("ClusterRole", "rbac.authorization.k8s.io/v1"),
        ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
        ("CustomResourceDefinition", "apiextensions.k8s.io/v1"),
        ("StorageClass", "storage.k8s.io/v1"),
        ("HorizontalPodAutoscaler", "autoscaling/v2"),
        ("PodDisruptionBudget", "policy/v1"),
    ];
    KNOWN
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(kind))
        .copied()
}

impl DeleteResource {
    /// The cluster, the kind (as the API spells it) and api version, the namespace, the name
    /// and the propagation policy; the policy is checked for what is known before any request.
    fn args<'a>(&self, args: &'a Value) -> Result<DeleteArgs<'a>, ToolError> {
        let s = &self.0;
        let cluster = s.cluster(args)?;
        let kind_arg = string(args, "kind")?;
        let name = string(args, "name")?;
        let namespace = opt_string(args, "namespace")?;
        let (kind, api_version) = match opt_string(args, "api_version")? {
            Some(v) => (kind_arg.to_owned(), v.to_owned()),
            None => {
                let (k, v) = default_api_version(kind_arg)
                    .or_else(|| match Kind::parse(kind_arg).ok()? {
                        Kind::Pods => Some(("Pod", "v1")),
                        Kind::Deployments => Some(("Deployment", "apps/v1")),
                        Kind::Services => Some(("Service", "v1")),
                        Kind::ConfigMaps => Some(("ConfigMap", "v1")),
                        Kind::Secrets => Some(("Secret", "v1")),
                        Kind::Events => Some(("Event", "v1")),
                        Kind::Custom { .. } => None,
                    })
                    .ok_or_else(|| {
                        ToolError::InvalidArguments(format!(
                            "kind {kind_arg:?} needs an api_version (e.g. \"argoproj.io/v1alpha1\")"
                        ))
                    })?;
                (k.to_owned(), v.to_owned())
            }
        };
        let propagation = match opt_string(args, "propagation_policy")? {
            None => Propagation::default(),
            Some(p) => Propagation::parse(p).ok_or_else(|| {
                ToolError::InvalidArguments(format!(
                    "propagation_policy {p:?}: one of Foreground, Background, Orphan"
                ))
            })?,
        };
        // Known refusals before anything is asked of the cluster.
        s.policy.check_kind(&kind)?;
        if s.policy.config().dangerous_refused(&kind) {
            s.policy.check_delete(cluster, &kind, None)?;
        }
        Ok(DeleteArgs {
            cluster,
            kind,
            api_version,
            namespace,
            name,
            propagation,
        })
    }

    async fn target<'a>(
        &self,
        args: &'a Value,
    ) -> Result<(&'a str, ObjectRef, Propagation), ToolError> {
        let DeleteArgs {
            cluster,
            kind,
            api_version,
            namespace,
            name,
            propagation,
        } = self.args(args)?;
        let target = self
            .0
            .writer
            .resolve(cluster, &api_version, &kind, namespace, name)
            .await
            .map_err(|e| tool_error(cluster, e))?;
        self.0
            .policy
            .check_delete(cluster, &target.kind, target.namespace.as_deref())?;
        Ok((cluster, target, propagation))
    }
}

impl Tool for DeleteResource {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.delete_resource",
            description: "Delete one Kubernetes object (any kind; dangerous kinds such as Namespace or CustomResourceDefinition only where configured); the approver sees the live object first.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "cluster": self.0.cluster_schema(),
                    "api_version": {"type": "string", "description": "e.g. \"apps/v1\", \"v1\"; may be left out for built-in kinds."},
                    "kind": {"type": "string", "minLength": 1, "description": "e.g. \"Deployment\", \"Pod\", \"Application\"."},
                    "namespace": {"type": "string", "description": "Required for namespaced kinds."},
                    "name": {"type": "string", "minLength": 1},
                    "propagation_policy": {
                        "type": "string",
                        "enum": ["Foreground", "Background", "Orphan"],
                        "default": "Background",
                        "description": "What happens to dependents (e.g. a Deployment's ReplicaSets and Pods).",
                    },
                },
                "required": ["cluster", "kind", "name"],
                "additionalProperties": false,
            }),
            write: true,
        }
    }

    fn preview<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let (cluster, target, propagation) = self.target(args).await?;
            let live = self
                .0
                .writer
                .get(cluster, &target)
                .await
                .map_err(|e| tool_error(cluster, e))?;
            Ok(json!({
                "action": "delete",
                "object": object_ref(cluster, &target),
                "propagation_policy": propagation.as_str(),
                "live": live,
            }))
        })
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let (cluster, target, propagation) = self.target(args).await?;
            let mut out = self
                .0
                .writer
                .delete(cluster, &target, propagation)
                .await
                .map_err(|e| tool_error(cluster, e))?;
            out["cluster"] = json!(cluster);
            Ok(out)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// k8s.rollout_restart

/// `k8s.rollout_restart`: restarts a workload's pods as `kubectl rollout restart` does.
struct RolloutRestart(Arc<Shared>);

impl RolloutRestart {
    fn args<'a>(
        &self,
        args: &'a Value,
    ) -> Result<(&'a str, Workload, &'a str, &'a str), ToolError> {
        let s = &self.0;
        let cluster = s.cluster(args)?;
        let kind = string(args, "kind")?;
        let workload = Workload::parse(kind).ok_or_else(|| {
            ToolError::InvalidArguments(format!(
                "kind {kind:?}: one of Deployment, StatefulSet, DaemonSet"
            ))
        })?;
        let namespace = string(args, "namespace")?;
        let name = string(args, "name")?;
        s.policy
            .check_object(cluster, workload.as_str(), Some(namespace))?;
        Ok((cluster, workload, namespace, name))
    }
}

impl Tool for RolloutRestart {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.rollout_restart",
            description: "Restart a Deployment's, StatefulSet's or DaemonSet's pods by a rolling update, as kubectl rollout restart does (sets the kubectl.kubernetes.io/restartedAt pod-template annotation).",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "cluster": self.0.cluster_schema(),
                    "namespace": {"type": "string", "minLength": 1},
                    "kind": {"type": "string", "enum": ["Deployment", "StatefulSet", "DaemonSet"]},
                    "name": {"type": "string", "minLength": 1},
                },
                "required": ["cluster", "namespace", "kind", "name"],
                "additionalProperties": false,
            }),
            write: true,
        }
    }

    fn preview<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let (cluster, workload, namespace, name) = self.args(args)?;
            let mut summary = self
                .0
                .writer
                .preview_restart(cluster, workload, namespace, name, Utc::now())
                .await
                .map_err(|e| tool_error(cluster, e))?;
            summary["action"] = json!("rollout_restart");
            summary["cluster"] = json!(cluster);
            summary["note"] = json!("the annotation takes the time of the call");
            Ok(summary)
        })
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let (cluster, workload, namespace, name) = self.args(args)?;
            let mut summary = self
                .0
                .writer
                .restart(cluster, workload, namespace, name, Utc::now())
                .await
                .map_err(|e| tool_error(cluster, e))?;
            summary["restarted"] = json!(true);
            summary["cluster"] = json!(cluster);
            Ok(summary)
        })
    }
}
