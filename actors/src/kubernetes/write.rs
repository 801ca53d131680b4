//! The write API across clusters that the agent's write tools call (each only after an
//! approval, see [`crate::tools`]): **exec** a command in a pod, **server-side apply** a
//! manifest (and its dry run with a diff against the live object), **delete** an object, and
//! **rollout restart** a workload — each with a read-only preview of what it would do.
//!
//! A [`ClusterWriter`] shares its [`ClusterReader`]'s clients and resolved kinds: every request
//! passes the cluster's circuit `k8s:<cluster>` (a cluster whose circuit is open fails at once
//! with [`WriteError::Unavailable`], other clusters unaffected), and any kind is resolved
//! through discovery. Writes are sent once (never retried).
//!
//! - **exec** runs argv over the API server's websocket exec protocol (kube's `ws` feature:
//!   `v5.channel.k8s.io`, falling back to `v4.channel.k8s.io` as the server agrees), no TTY, no
//!   stdin, within a deadline; stdout and stderr are each capped (the rest is read and
//!   dropped, `truncated` set) and the exit code comes from the status channel
//!   (`NonZeroExitCode`). A command still running at the deadline is abandoned (the
//!   connection closed) and answered with what it printed and `timed_out`.
//! - **apply** is a `PATCH` with `application/apply-patch+yaml` and field manager
//!   [`FIELD_MANAGER`], `force` per call; its preview is the same request with `dryRun=All`
//!   and a [`diff`] between the live object and the dry-run result (`managedFields` left out).
//! - **delete** takes a propagation policy; its preview is the live object.
//! - **rollout restart** patches `spec.template.metadata.annotations` with
//!   [`RESTARTED_AT`] set to the time (RFC 3339, seconds), exactly as `kubectl rollout
//!   restart` does, for Deployments, StatefulSets and DaemonSets.
//!
//! # Secrets
//! Whatever this API returns (previews, results) has `metadata.managedFields` dropped and, for
//! a Secret, every value of `data` and `stringData` replaced by [`MASK`] (or
//! [`MASK_CHANGED`] in a dry-run result where the value differs from the live one) and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation dropped.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{
    ApiResource, AttachParams, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy,
};
use kube::Api;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::read::{ClusterReader, Kind, ReadError};

/// The field manager of every apply and patch.
pub const FIELD_MANAGER: &str = "sre-integration";
/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// What a Secret's value is shown as.
pub const MASK: &str = "<redacted>";
/// What a Secret's value is shown as in a dry-run result where it differs from the live one.
pub const MASK_CHANGED: &str = "<redacted: changed>";
/// Most entries a diff lists (the rest are counted in [`ApplyPreview::diff_truncated`]).
pub const MAX_DIFF_ENTRIES: usize = 500;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Why a write (or its preview) failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No cluster of that name is configured.
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    /// The cluster cannot be reached: no client, its circuit is open, or the request failed in
    /// transport or timed out.
    #[error("cluster {cluster} is unavailable: {reason}")]
    Unavailable {
        /// The cluster.
        cluster: String,
        /// What happened.
        reason: String,
    },
    /// The object does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The cluster's credentials may not do this (403).
    #[error("the cluster refused: {0}")]
    Forbidden(String),
    /// The cluster rejected the credentials (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request is not valid (a manifest, kind or parameter; 400 / 422).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The kind is not served by the cluster.
    #[error("unknown kind {0}")]
    UnknownKind(String),
    /// Another field manager owns fields this apply changes (409; `force` takes them over).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The API server answered, but not with what was asked for.
    #[error("unreadable answer from the API server: {0}")]
    Malformed(String),
    /// The exec could not be set up or run (the status channel's failure, not an exit code).
    #[error("exec failed: {0}")]
    Exec(String),
    /// Any other error status of the API.
    #[error("API error {code}: {message}")]
    Api {
        /// HTTP status.
        code: u16,
        /// The `Status` message.
        message: String,
    },
}

impl From<ReadError> for WriteError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::UnknownCluster(c) => WriteError::UnknownCluster(c),
            ReadError::Unavailable { cluster, reason } => {
                WriteError::Unavailable { cluster, reason }
            }
            ReadError::NotFound(m) => WriteError::NotFound(m),
            ReadError::Forbidden(m) => WriteError::Forbidden(m),
            ReadError::Unauthorized(m) => WriteError::Unauthorized(m),
            ReadError::Invalid(m) => WriteError::Invalid(m),
            ReadError::UnknownKind(m) => WriteError::UnknownKind(m),
            ReadError::Malformed(m) => WriteError::Malformed(m),
            ReadError::Api { code: 409, message } => WriteError::Conflict(message),
            ReadError::Api { code, message } => WriteError::Api { code, message },
        }
    }
}

/// A command to run in a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container (the API's default when `None`: the pod's only one).
    pub container: Option<String>,
    /// The argv (no shell unless it names one).
    pub command: Vec<String>,
    /// How long it may run, connecting included.
    pub timeout: Duration,
    /// Bytes of stdout, and of stderr, kept.
    pub max_output_bytes: usize,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its stdout (UTF-8, invalid bytes replaced), at most the cap.
    pub stdout: String,
    /// Its stderr, likewise.
    pub stderr: String,
    /// Whether stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was cut at the cap.
    pub stderr_truncated: bool,
    /// Its exit code (`None` when it timed out).
    pub exit_code: Option<i32>,
    /// Whether it was still running at the deadline (and was abandoned).
    pub timed_out: bool,
}

/// An object to write, resolved on its cluster.
#[derive(Clone)]
pub struct ObjectRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Its namespace (`None` for a cluster-scoped kind).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    ar: ApiResource,
}

impl ObjectRef {
    /// Whether the kind lives in namespaces.
    pub fn namespaced(&self) -> bool {
        self.namespace.is_some()
    }
}

impl fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A delete's propagation policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are deleted before the object.
    Foreground,
    /// The object goes at once, dependents after it (the API's default for most kinds).
    #[default]
    Background,
    /// Dependents are left behind.
    Orphan,
}

impl Propagation {
    /// Parses `Foreground`, `Background` or `Orphan` (any case).
    pub fn parse(s: &str) -> Option<Propagation> {
        match s.to_ascii_lowercase().as_str() {
            "foreground" => Some(Propagation::Foreground),
            "background" => Some(Propagation::Background),
            "orphan" => Some(Propagation::Orphan),
            _ => None,
        }
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Foreground => "Foreground",
            Propagation::Background => "Background",
            Propagation::Orphan => "Orphan",
        }
    }

    fn policy(self) -> PropagationPolicy {
        match self {
            Propagation::Foreground => PropagationPolicy::Foreground,
            Propagation::Background => PropagationPolicy::Background,
            Propagation::Orphan => PropagationPolicy::Orphan,
        }
    }
}

/// A workload `rollout restart` works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

impl Workload {
    /// Parses `Deployment`, `StatefulSet` or `DaemonSet` (any case).
    pub fn parse(s: &str) -> Option<Workload> {
        match s.to_ascii_lowercase().as_str() {
            "deployment" => Some(Workload::Deployment),
            "statefulset" => Some(Workload::StatefulSet),
            "daemonset" => Some(Workload::DaemonSet),
            _ => None,
        }
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Deployment => "Deployment",
            Workload::StatefulSet => "StatefulSet",
            Workload::DaemonSet => "DaemonSet",
        }
    }
}

/// What an apply would do.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplyPreview {
    /// `create`, `update` or `unchanged`.
    pub operation: &'static str,
    /// The live object (`None` when it does not exist yet).
    pub live: Option<Value>,
    /// The dry-run result: what would be stored.
    pub result: Value,
    /// From the live object to the result (see [`diff`]).
    pub diff: Vec<Value>,
    /// Diff entries left out past [`MAX_DIFF_ENTRIES`].
    pub diff_truncated: usize,
}

/// The write API across the configured clusters (those of its [`ClusterReader`]). Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct ClusterWriter {
    reader: ClusterReader,
}

impl ClusterWriter {
    /// A writer over `reader`'s clusters, sharing its clients and resolved kinds.
    pub fn new(reader: ClusterReader) -> Self {
        ClusterWriter { reader }
    }

    /// The cluster names, sorted.
    pub fn clusters(&self) -> Vec<String> {
        self.reader.clusters()
    }

    /// Resolves `kind` of `api_version` (`apps/v1`, `v1`) on `cluster` through discovery.
    /// `namespace` is required for a namespaced kind and ignored for a cluster-scoped one.
    pub async fn resolve(
        &self,
        cluster: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<ObjectRef, WriteError> {
        let name = required("name", Some(name))?;
        let (group, version) = match api_version.trim().split_once('/') {
            Some((g, v)) => (g.trim(), v.trim()),
            None => ("", api_version.trim()),
        };
        if version.is_empty() || kind.trim().is_empty() {
            return Err(WriteError::Invalid(format!(
                "an apiVersion and a kind are required (got {api_version:?} {kind:?})"
            )));
        }
        let (ar, namespaced) = self
            .reader
            .resource(cluster, &Kind::custom(group, version, kind.trim()))
            .await?;
        let namespace = if namespaced {
            Some(required("namespace", namespace)?.to_owned())
        } else {
            None
        };
        Ok(ObjectRef {
            api_version: ar.api_version.clone(),
            kind: ar.kind.clone(),
            namespace,
            name: name.to_owned(),
            ar,
        })
    }

    /// The live object (masked, without `managedFields`).
    pub async fn get(&self, cluster: &str, target: &ObjectRef) -> Result<Value, WriteError> {
        let api = self.api(cluster, target).await?;
        let obj = api
            .get(&target.name)
            .await
            .map_err(|e| self.error(cluster, e))?;
        let mut v = value(obj, &target.ar)?;
        mask(&mut v, None);
        Ok(v)
    }

    /// The live object as stored (unmasked), or `None` when it does not exist.
    async fn live(&self, cluster: &str, target: &ObjectRef) -> Result<Option<Value>, WriteError> {
        let api = self.api(cluster, target).await?;
        let obj = api
            .get_opt(&target.name)
            .await
            .map_err(|e| self.error(cluster, e))?;
        obj.map(|o| value(o, &target.ar)).transpose()
    }

    /// Resolves a manifest's object on `cluster`; a namespaced object without
    /// `metadata.namespace` takes `namespace`.
    pub async fn manifest_target(
        &self,
        cluster: &str,
        manifest: &Value,
        namespace: Option<&str>,
    ) -> Result<ObjectRef, WriteError> {
        let api_version = manifest["apiVersion"]
            .as_str()
            .ok_or_else(|| WriteError::Invalid("the manifest has no apiVersion".into()))?;
        let kind = manifest["kind"]
            .as_str()
            .ok_or_else(|| WriteError::Invalid("the manifest has no kind".into()))?;
        let name = manifest["metadata"]["name"]
            .as_str()
            .ok_or_else(|| WriteError::Invalid("the manifest has no metadata.name".into()))?;
        let own = manifest["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty());
        if let (Some(a), Some(b)) = (own, non_empty(namespace)) {
            if a != b {
                return Err(WriteError::Invalid(format!(
                    "the manifest's namespace {a:?} differs from the namespace argument {b:?}"
                )));
            }
        }
        self.resolve(
            cluster,
            api_version,
            kind,
            own.or(non_empty(namespace)),
            name,
        )
        .await
    }

    /// What applying `manifest` to `target` would do: the same apply with `dryRun=All`, and a
    /// diff between the live object and its result (both masked, without `managedFields`).
    pub async fn preview_apply(
        &self,
        cluster: &str,
        target: &ObjectRef,
        manifest: &Value,
        force: bool,
    ) -> Result<ApplyPreview, WriteError> {
        let live = self.live(cluster, target).await?;
        let mut result = self
            .server_side_apply(cluster, target, manifest, force, true)
            .await?;
        let mut live_masked = live.clone();
        if let Some(l) = live_masked.as_mut() {
            mask(l, None);
        }
        mask(&mut result, live.as_ref());
        let before = live_masked.clone().unwrap_or(Value::Null);
        let mut diff = diff(&before, &result);
        let diff_truncated = diff.len().saturating_sub(MAX_DIFF_ENTRIES);
        diff.truncate(MAX_DIFF_ENTRIES);
        let operation = match (&live, diff.is_empty()) {
            (None, _) => "create",
            (Some(_), true) => "unchanged",
            (Some(_), false) => "update",
        };
        Ok(ApplyPreview {
            operation,
            live: live_masked,
            result,
            diff,
            diff_truncated,
        })
    }

    /// Applies `manifest` to `target` (server-side, field manager [`FIELD_MANAGER`]); returns
    /// the stored object (masked, without `managedFields`).
    pub async fn apply(
        &self,
        cluster: &str,
        target: &ObjectRef,
        manifest: &Value,
        force: bool,
    ) -> Result<Value, WriteError> {
        let mut v = self
            .server_side_apply(cluster, target, manifest, force, false)
            .await?;
        mask(&mut v, None);
        Ok(v)
    }

    async fn server_side_apply(
        &self,
        cluster: &str,
        target: &ObjectRef,
        manifest: &Value,
        force: bool,
        dry_run: bool,
    ) -> Result<Value, WriteError> {
        let api = self.api(cluster, target).await?;
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        pp.force = force;
        pp.dry_run = dry_run;
        let mut body = manifest.clone();
        // The object's identity as resolved (a defaulted namespace included).
        body["apiVersion"] = json!(target.api_version);
        body["kind"] = json!(target.kind);
        if let Some(ns) = &target.namespace {
            body["metadata"]["namespace"] = json!(ns);
        }
        let obj = api
            .patch(&target.name, &pp, &Patch::Apply(&body))
            .await
            .map_err(|e| self.error(cluster, e))?;
        value(obj, &target.ar)
    }

    /// Deletes `target` with `propagation`; returns what was deleted (kind, name, namespace,
    /// uid, and the deletion time when the API set one).
    pub async fn delete(
        &self,
        cluster: &str,
        target: &ObjectRef,
        propagation: Propagation,
    ) -> Result<Value, WriteError> {
        let api = self.api(cluster, target).await?;
        let dp = DeleteParams {
            propagation_policy: Some(propagation.policy()),
            ..DeleteParams::default()
        };
        let answer = api
            .delete(&target.name, &dp)
            .await
            .map_err(|e| self.error(cluster, e))?;
        // The object as it is being deleted, or a `Status` when it is already gone.
        let (uid, deletion) = answer
            .left()
            .map(|obj| {
                (
                    obj.metadata.uid,
                    obj.metadata.deletion_timestamp.map(|t| t.0.to_string()),
                )
            })
            .unwrap_or_default();
        Ok(json!({
            "deleted": true,
            "apiVersion": target.api_version,
            "kind": target.kind,
            "namespace": target.namespace,
            "name": target.name,
            "uid": uid,
            "deletionTimestamp": deletion,
            "propagationPolicy": propagation.as_str(),
        }))
    }

    /// A workload's name, replicas, current revision and restart annotation, as a restart's
    /// preview shows them; `at` is when the restart would be stamped.
    pub async fn preview_restart(
        &self,
        cluster: &str,
        workload: Workload,
        namespace: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Value, WriteError> {
        let target = self.workload(cluster, workload, namespace, name).await?;
        let live = self.live(cluster, &target).await?.ok_or_else(|| {
            WriteError::NotFound(format!("{} {namespace}/{name}", workload.as_str()))
        })?;
        let mut summary = workload_summary(workload, &live);
        summary["annotation"] = json!({"key": RESTARTED_AT, "value": restarted_at(at)});
        Ok(summary)
    }

    /// Restarts a workload's pods as `kubectl rollout restart` does: a strategic merge patch
    /// setting the pod template's [`RESTARTED_AT`] annotation to `at`. Returns the workload's
    /// summary after the patch.
    pub async fn restart(
        &self,
        cluster: &str,
        workload: Workload,
        namespace: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Value, WriteError> {
        let target = self.workload(cluster, workload, namespace, name).await?;
        let api = self.api(cluster, &target).await?;
        let stamp = restarted_at(at);
        let patch = json!({
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}
        });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let obj = api
            .patch(&target.name, &pp, &Patch::Strategic(&patch))
            .await
            .map_err(|e| self.error(cluster, e))?;
        let v = value(obj, &target.ar)?;
        let mut summary = workload_summary(workload, &v);
        summary["annotation"] = json!({"key": RESTARTED_AT, "value": stamp});
        Ok(summary)
    }

    async fn workload(
        &self,
        cluster: &str,
        workload: Workload,
        namespace: &str,
        name: &str,
    ) -> Result<ObjectRef, WriteError> {
        self.resolve(cluster, "apps/v1", workload.as_str(), Some(namespace), name)
            .await
    }

    /// A pod's phase, containers and the container an exec without one would run in, as an
    /// exec's preview shows them (the pod must exist).
    pub async fn pod_summary(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &str,
    ) -> Result<Value, WriteError> {
        let target = self
            .resolve(cluster, "v1", "Pod", Some(namespace), pod)
            .await?;
        let live = self
            .live(cluster, &target)
            .await?
            .ok_or_else(|| WriteError::NotFound(format!("pod {namespace}/{pod}")))?;
        let containers: Vec<&str> = live["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        Ok(json!({
            "phase": live["status"]["phase"],
            "node": live["spec"]["nodeName"],
            "containers": containers,
        }))
    }

    /// Runs a command in a pod (see the module docs).
    pub async fn exec(&self, cluster: &str, req: &ExecRequest) -> Result<ExecOutput, WriteError> {
        if req.command.is_empty() || req.command[0].is_empty() {
            return Err(WriteError::Invalid("the command is empty".into()));
        }
        let namespace = required("namespace", Some(&req.namespace))?;
        let pod = required("pod", Some(&req.pod))?;
        let client = self.reader.client(cluster).await?;
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let cap = req.max_output_bytes;
        let ap = AttachParams {
            container: non_empty(req.container.as_deref()).map(str::to_owned),
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
            max_stdout_buf_size: Some(cap.clamp(1024, 64 << 10)),
            max_stderr_buf_size: Some(cap.clamp(1024, 64 << 10)),
            ..AttachParams::default()
        };
        let deadline = tokio::time::Instant::now() + req.timeout;
        let mut attached = match tokio::time::timeout_at(
            deadline,
            api.exec(pod, req.command.clone(), &ap),
        )
        .await
        {
            Ok(r) => r.map_err(|e| self.error(cluster, e))?,
            Err(_) => {
                return Ok(ExecOutput {
                    stdout: String::new(),
                    stderr: String::new(),
                    stdout_truncated: false,
                    stderr_truncated: false,
                    exit_code: None,
                    timed_out: true,
                })
            }
        };
        let (stdout, stderr) = (attached.stdout(), attached.stderr());
        let status = attached.take_status();
        let mut out = Capped::new(cap);
        let mut err = Capped::new(cap);
        let run = async {
            tokio::join!(out.drain(stdout), err.drain(stderr));
            match status {
                Some(s) => s.await,
                None => None,
            }
        };
        let finished = tokio::time::timeout_at(deadline, run).await;
        // Closes the connection (a command still running is abandoned).
        drop(attached);
        let (exit_code, timed_out) = match finished {
            Err(_) => (None, true),
            Ok(None) => {
                return Err(WriteError::Exec(
                    "the exec stream ended without an exit status".into(),
                ))
            }
            Ok(Some(status)) => (Some(exit_code(&status)?), false),
        };
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&out.buf).into_owned(),
            stderr: String::from_utf8_lossy(&err.buf).into_owned(),
            stdout_truncated: out.truncated,
            stderr_truncated: err.truncated,
            exit_code,
            timed_out,
        })
    }

    async fn api(
        &self,
        cluster: &str,
        target: &ObjectRef,
    ) -> Result<Api<DynamicObject>, WriteError> {
        let client = self.reader.client(cluster).await?;
        Ok(match &target.namespace {
            Some(ns) => Api::namespaced_with(client, ns, &target.ar),
            None => Api::all_with(client, &target.ar),
        })
    }

    fn error(&self, cluster: &str, e: kube::Error) -> WriteError {
        self.reader.map_error(cluster, e).into()
    }
}

/// Output kept up to a cap; past it, read and dropped.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Capped {
            buf: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Reads `r` to its end, keeping what fits. Reading on past the cap keeps the exec's
    /// message loop from blocking on a full pipe.
    async fn drain(&mut self, r: Option<impl AsyncRead + Unpin>) {
        let Some(mut r) = r else { return };
        let mut chunk = vec![0u8; 8192];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let room = self.cap.saturating_sub(self.buf.len());
                    if n > room {
                        self.truncated = true;
                    }
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    }
}

/// The exit code a status channel's `Status` reports: 0 on `Success`, the `ExitCode` cause of
/// a `NonZeroExitCode` failure; any other failure is an error.
fn exit_code(status: &Status) -> Result<i32, WriteError> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok());
        return code.ok_or_else(|| {
            WriteError::Malformed("a NonZeroExitCode status without its exit code".into())
        });
    }
    Err(WriteError::Exec(
        status
            .message
            .clone()
            .or_else(|| status.reason.clone())
            .unwrap_or_else(|| "the command failed to run".into()),
    ))
}

/// `at` as `kubectl rollout restart` writes it (Go's RFC 3339: seconds, `Z` for UTC).
pub fn restarted_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Name, replicas, revision and the current restart annotation of a workload object.
fn workload_summary(workload: Workload, obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let status = &obj["status"];
    let (replicas, ready, revision) = match workload {
        Workload::Deployment => (
            obj["spec"]["replicas"].clone(),
            status["readyReplicas"].clone(),
            meta["annotations"]["deployment.kubernetes.io/revision"].clone(),
        ),
        Workload::StatefulSet => (
            obj["spec"]["replicas"].clone(),
            status["readyReplicas"].clone(),
            status["currentRevision"].clone(),
        ),
        Workload::DaemonSet => (
            status["desiredNumberScheduled"].clone(),
            status["numberReady"].clone(),
            json!(meta["generation"]
                .as_i64()
                .map(|g| format!("generation {g}"))),
        ),
    };
    json!({
        "kind": workload.as_str(),
        "namespace": meta["namespace"],
        "name": meta["name"],
        "replicas": replicas,
        "ready_replicas": ready,
        "revision": revision,
        "last_restarted_at": obj["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
    })
}

/// An API object as JSON with `apiVersion` and `kind` set and `managedFields` dropped.
fn value(obj: DynamicObject, ar: &ApiResource) -> Result<Value, WriteError> {
    let mut v = serde_json::to_value(&obj).map_err(|e| WriteError::Malformed(e.to_string()))?;
    let Some(map) = v.as_object_mut() else {
        return Err(WriteError::Malformed(
            "an object that is not an object".into(),
        ));
    };
    map.insert("apiVersion".into(), json!(ar.api_version));
    map.insert("kind".into(), json!(ar.kind));
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    Ok(v)
}

/// Masks a Secret (anything else is left alone): every `data` / `stringData` value becomes
/// [`MASK`], or [`MASK_CHANGED`] where `reference` (the live object) holds another value under
/// `data` (a `stringData` value is always marked changed when it is not the live data's text);
/// the last-applied annotation is dropped.
pub fn mask(obj: &mut Value, reference: Option<&Value>) {
    if obj["kind"] != json!("Secret") {
        return;
    }
    let live_data = reference.map(|r| r["data"].clone()).unwrap_or(Value::Null);
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for field in ["data", "stringData"] {
        let Some(values) = map.get_mut(field).and_then(Value::as_object_mut) else {
            continue;
        };
        for (k, v) in values.iter_mut() {
            let same = match field {
                "data" => live_data.get(k) == Some(v),
                _ => {
                    let encoded = base64_of(v.as_str().unwrap_or_default());
                    live_data.get(k).and_then(Value::as_str) == Some(encoded.as_str())
                }
            };
            let changed = reference.is_some() && !same;
            *v = json!(if changed { MASK_CHANGED } else { MASK });
        }
    }
    if let Some(annotations) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The changes from `before` to `after`, each `{"op": "add" | "remove" | "replace", "path":
/// <JSON pointer>, "before"?, "after"?}`: objects are compared key by key, lists element by
/// element when their lengths match (else replaced whole), anything else by value.
pub fn diff(before: &Value, after: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    diff_into(before, after, &mut String::new(), &mut out);
    out
}

fn diff_into(before: &Value, after: &Value, path: &mut String, out: &mut Vec<Value>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for k in keys {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                match (b.get(k), a.get(k)) {
                    (Some(x), Some(y)) => diff_into(x, y, path, out),
                    (Some(x), None) => out.push(entry("remove", path, Some(x), None)),
                    (None, Some(y)) => out.push(entry("add", path, None, Some(y))),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                diff_into(x, y, path, out);
                path.truncate(len);
            }
        }
        (Value::Null, _) => out.push(entry("add", path, None, Some(after))),
        _ => out.push(entry("replace", path, Some(before), Some(after))),
    }
}

fn entry(op: &str, path: &str, before: Option<&Value>, after: Option<&Value>) -> Value {
    let mut m = Map::new();
    m.insert("op".into(), json!(op));
    m.insert("path".into(), json!(path));
    if let Some(b) = before {
        m.insert("before".into(), b.clone());
    }
    if let Some(a) = after {
        m.insert("after".into(), a.clone());
    }
    Value::Object(m)
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn required<'a>(what: &str, s: Option<&'a str>) -> Result<&'a str, WriteError> {
    non_empty(s).ok_or_else(|| WriteError::Invalid(format!("a {what} is required")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_each_change_by_pointer() {
        let before = json!({"spec": {"replicas": 2, "a/b": 1, "gone": true, "list": [1, 2]}});
        let after = json!({"spec": {"replicas": 3, "a/b": 1, "new": "x", "list": [1, 3]}});
        assert_eq!(
            diff(&before, &after),
            vec![
                json!({"op": "remove", "path": "/spec/gone", "before": true}),
                json!({"op": "replace", "path": "/spec/list/1", "before": 2, "after": 3}),
                json!({"op": "add", "path": "/spec/new", "after": "x"}),
                json!({"op": "replace", "path": "/spec/replicas", "before": 2, "after": 3}),
            ]
        );
        assert_eq!(
            diff(&Value::Null, &json!({"a": 1})),
            vec![json!({"op": "add", "path": "", "after": {"a": 1}})]
        );
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn secrets_are_masked_and_changes_marked_without_values() {
        let live = json!({"kind": "Secret", "data": {"same": "c2FtZQ==", "old": "b2xk"}});
        let mut result = json!({
            "kind": "Secret",
            "metadata": {"annotations": {LAST_APPLIED: "{\"data\":{}}", "keep": "1"}},
            "data": {"same": "c2FtZQ==", "old": "bmV3", "added": "eA=="},
            "stringData": {"same": "same", "plain": "hunter2"},
        });
        mask(&mut result, Some(&live));
        assert_eq!(
            result,
            json!({
                "kind": "Secret",
                "metadata": {"annotations": {"keep": "1"}},
                "data": {"same": MASK, "old": MASK_CHANGED, "added": MASK_CHANGED},
                "stringData": {"same": MASK, "plain": MASK_CHANGED},
            })
        );
        let mut cm = json!({"kind": "ConfigMap", "data": {"k": "v"}});
        mask(&mut cm, None);
        assert_eq!(cm["data"]["k"], "v");
    }

    #[test]
    fn restarted_at_is_rfc3339_in_seconds_like_kubectl() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T02:31:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(restarted_at(at), "2026-12-07T02:31:00Z");
    }
}
