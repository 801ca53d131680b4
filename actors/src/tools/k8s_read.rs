//! The Kubernetes read tools (DESIGN §3.3c): `k8s.get_resource`, `k8s.list_resources`,
//! `k8s.get_logs`, `k8s.describe_resource` and `k8s.get_events`, each a thin [`Tool`] over
//! [`ClusterReader`] (which already keeps Secret data out and drops `managedFields`).
//!
//! - `cluster` is a required argument of every tool; its schema is the enum of the configured
//!   clusters.
//! - Every call passes the cluster's circuit `k8s:<cluster>`: while it is open the call answers
//!   [`ToolError::Unavailable`] with upstream `k8s:<cluster>` at once, and calls on other
//!   clusters are unaffected.
//! - Errors: an object that does not exist (404) is [`ToolError::NotFound`]; a cluster that is
//!   not configured, or a kind, selector or parameter the reader or the API refuses, is
//!   [`ToolError::InvalidArguments`]; a cluster that
//!   cannot be reached (circuit open, transport, timeout) is [`ToolError::Unavailable`]; what
//!   the API refused otherwise (401, 403, 5xx, an unreadable answer) is [`ToolError::Upstream`].
//! - Outputs are JSON objects naming the cluster; the gate redacts and caps them.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::args::{self, parse};
use super::tool::{Tool, ToolError, ToolSpec};
use crate::kubernetes::read::{
    ClusterReader, EventQuery, Involved, Kind, ListQuery, LogQuery, ReadError, MAX_EVENT_LIMIT,
    MAX_LIST_LIMIT, MAX_LOG_TAIL_LINES,
};

/// The five Kubernetes read tools over `reader`.
pub fn k8s_read_tools(reader: ClusterReader) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(GetResource(reader.clone())),
        Arc::new(ListResources(reader.clone())),
        Arc::new(GetLogs(reader.clone())),
        Arc::new(DescribeResource(reader.clone())),
        Arc::new(GetEvents(reader)),
    ]
}

/// A [`ReadError`] of `cluster` as a [`ToolError`].
pub fn tool_error(e: ReadError) -> ToolError {
    match e {
        ReadError::UnknownCluster(c) => ToolError::InvalidArguments(format!(
            "cluster {c:?} is not configured (see the cluster enum of the schema)"
        )),
        ReadError::Unavailable { cluster, reason } => ToolError::Unavailable {
            upstream: format!("k8s:{cluster}"),
            reason,
        },
        ReadError::NotFound(m) => ToolError::NotFound(m),
        ReadError::Invalid(m) => ToolError::InvalidArguments(m),
        ReadError::UnknownKind(k) => {
            ToolError::InvalidArguments(format!("unknown kind {k} on this cluster"))
        }
        e @ (ReadError::Forbidden(_)
        | ReadError::Unauthorized(_)
        | ReadError::Malformed(_)
        | ReadError::Api { .. }) => ToolError::Upstream {
            upstream: "kubernetes".into(),
            reason: e.to_string(),
        },
    }
}

fn kind(s: &str) -> Result<Kind, ToolError> {
    Kind::parse(s).map_err(tool_error)
}

/// The schema of `cluster`: one of the configured clusters.
fn cluster_schema(reader: &ClusterReader) -> Value {
    json!({
        "type": "string",
        "enum": reader.clusters(),
        "description": "The cluster, by its configured name.",
    })
}

fn kind_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "description": "pods, deployments, services, configmaps, secrets (metadata only), events, \
                        or any kind as group/version/Kind (apps/v1/StatefulSet) or v1/Kind (v1/Node).",
    })
}

fn name_schema(what: &str) -> Value {
    json!({"type": "string", "minLength": 1, "description": what})
}

fn object_schema(properties: Value, required: &[&str]) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `k8s.get_resource`.
struct GetResource(ClusterReader);

/// Arguments of `k8s.get_resource` and `k8s.describe_resource`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectArgs {
    cluster: String,
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

fn object_args_schema(reader: &ClusterReader) -> Value {
    object_schema(
        json!({
            "cluster": cluster_schema(reader),
            "kind": kind_schema(),
            "name": name_schema("The object's name."),
            "namespace": name_schema("Its namespace (required for namespaced kinds)."),
        }),
        &["cluster", "kind", "name"],
    )
}

impl Tool for GetResource {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.get_resource",
            description: "Get one Kubernetes object (any kind; Secrets as metadata only) by cluster, kind, namespace and name.",
            input_schema: object_args_schema(&self.0),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: ObjectArgs = parse(args)?;
            let k = kind(&a.kind)?;
            let object = self
                .0
                .get(&a.cluster, &k, a.namespace.as_deref(), &a.name)
                .await
                .map_err(tool_error)?;
            Ok(json!({"cluster": a.cluster, "object": object}))
        })
    }
}

/// `k8s.describe_resource`.
struct DescribeResource(ClusterReader);

impl Tool for DescribeResource {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.describe_resource",
            description: "Describe a Kubernetes object: the object and its newest events (like kubectl describe).",
            input_schema: object_args_schema(&self.0),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: ObjectArgs = parse(args)?;
            let k = kind(&a.kind)?;
            let d = self
                .0
                .describe(&a.cluster, &k, a.namespace.as_deref(), &a.name)
                .await
                .map_err(tool_error)?;
            Ok(json!({"cluster": a.cluster, "object": d.object, "events": d.events}))
        })
    }
}

/// `k8s.list_resources`.
struct ListResources(ClusterReader);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    cluster: String,
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    label_selector: Option<String>,
    #[serde(default)]
    field_selector: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

impl Tool for ListResources {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.list_resources",
            description: "List Kubernetes objects of a kind in a namespace or all namespaces, filtered by label/field selectors, a page at a time.",
            input_schema: object_schema(
                json!({
                    "cluster": cluster_schema(&self.0),
                    "kind": kind_schema(),
                    "namespace": name_schema("Only this namespace (all namespaces when absent)."),
                    "label_selector": name_schema("A label selector, e.g. app=web,tier!=db."),
                    "field_selector": name_schema("A field selector, e.g. status.phase=Running."),
                    "limit": {
                        "type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT,
                        "description": "At most this many objects (default 500).",
                    },
                    "continue": name_schema("The continue token of the previous page, with the same query."),
                }),
                &["cluster", "kind"],
            ),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: ListArgs = parse(args)?;
            let k = kind(&a.kind)?;
            let limit = args::limit("limit", a.limit, MAX_LIST_LIMIT)?;
            let q = ListQuery {
                namespace: a.namespace,
                label_selector: a.label_selector,
                field_selector: a.field_selector,
                limit,
                continue_token: a.continue_token,
            };
            let listed = self.0.list(&a.cluster, &k, &q).await.map_err(tool_error)?;
            Ok(json!({
                "cluster": a.cluster,
                "kind": k.to_string(),
                "count": listed.items.len(),
                "items": listed.items,
                "continue": listed.continue_token,
                "remaining": listed.remaining,
            }))
        })
    }
}

/// `k8s.get_logs`.
struct GetLogs(ClusterReader);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    cluster: String,
    namespace: String,
    pod: String,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    tail: Option<u32>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    previous: bool,
}

impl Tool for GetLogs {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.get_logs",
            description: "Get the last lines of a pod container's log (optionally since a duration ago, or of the previous, crashed instance).",
            input_schema: object_schema(
                json!({
                    "cluster": cluster_schema(&self.0),
                    "namespace": name_schema("The pod's namespace."),
                    "pod": name_schema("The pod's name."),
                    "container": name_schema("The container (required when the pod has more than one)."),
                    "tail": {
                        "type": "integer", "minimum": 1, "maximum": MAX_LOG_TAIL_LINES,
                        "description": "The last this many lines (default: the configured log_tail_lines).",
                    },
                    "since": name_schema("Only lines from this long ago, e.g. 15m, 2h."),
                    "previous": {
                        "type": "boolean",
                        "description": "The previous (terminated) instance of the container, e.g. before a crash.",
                    },
                }),
                &["cluster", "namespace", "pod"],
            ),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: LogsArgs = parse(args)?;
            let tail = args::limit("tail", a.tail, MAX_LOG_TAIL_LINES)?;
            let since: Option<Duration> = a
                .since
                .as_deref()
                .map(|s| args::duration("since", s))
                .transpose()?;
            let q = LogQuery {
                container: a.container.clone(),
                tail,
                since,
                previous: a.previous,
            };
            let text = self
                .0
                .logs(&a.cluster, &a.namespace, &a.pod, &q)
                .await
                .map_err(tool_error)?;
            let lines: Vec<&str> = text.lines().collect();
            Ok(json!({
                "cluster": a.cluster,
                "namespace": a.namespace,
                "pod": a.pod,
                "container": a.container,
                "previous": a.previous,
                "line_count": lines.len(),
                "lines": lines,
            }))
        })
    }
}

/// `k8s.get_events`.
struct GetEvents(ClusterReader);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsArgs {
    cluster: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    warnings_only: bool,
    #[serde(default)]
    limit: Option<u32>,
}

impl Tool for GetEvents {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "k8s.get_events",
            description: "Get Kubernetes events, newest first, for one object (kind + name) or a whole namespace (or all), optionally Warnings only.",
            input_schema: object_schema(
                json!({
                    "cluster": cluster_schema(&self.0),
                    "namespace": name_schema("Only this namespace (all namespaces when absent)."),
                    "kind": kind_schema(),
                    "name": name_schema("Only events about the object of this name (with kind: of that kind)."),
                    "warnings_only": {"type": "boolean", "description": "Only type=Warning events."},
                    "limit": {
                        "type": "integer", "minimum": 1, "maximum": MAX_EVENT_LIMIT,
                        "description": "At most this many events (default 100).",
                    },
                }),
                &["cluster"],
            ),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: EventsArgs = parse(args)?;
            let limit = args::limit("limit", a.limit, MAX_EVENT_LIMIT)?;
            let involved = match (&a.kind, &a.name) {
                (k, Some(name)) => Some(Involved {
                    kind: k.as_deref().map(kind).transpose()?,
                    name: name.clone(),
                }),
                (Some(_), None) => {
                    return Err(ToolError::InvalidArguments(
                        "kind needs name: events are for one object or a namespace".into(),
                    ))
                }
                (None, None) => None,
            };
            let q = EventQuery {
                namespace: a.namespace,
                involved,
                warnings_only: a.warnings_only,
                limit,
            };
            let events = self.0.events(&a.cluster, &q).await.map_err(tool_error)?;
            Ok(json!({"cluster": a.cluster, "count": events.len(), "events": events}))
        })
    }
}
