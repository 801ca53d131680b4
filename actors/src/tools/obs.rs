//! The observability read tools (DESIGN §3.3c): `obs.query_metrics` (Prometheus),
//! `obs.search_logs` (Loki), `obs.get_trace` and `obs.search_traces` (Tempo) and
//! `obs.get_dashboard_url` (Grafana), each a thin [`Tool`] over the query clients of
//! [`crate::observability`] (which pass the backend's circuit, retry, cap bodies and results).
//!
//! **A backend that is not configured has no tool**: [`obs_tools`] registers a tool only when
//! its client is given, so an agent never lists a tool that cannot work (and a call to it is
//! the gate's unknown tool).
//!
//! Times are `now`, `now-<duration>` (`now-15m`) or RFC 3339; durations `30s`, `5m`, `1h`.
//! Errors: a query the backend or the client refuses is [`ToolError::InvalidArguments`]; no
//! such trace or dashboard is [`ToolError::NotFound`]; a backend that cannot be reached (its
//! circuit open, transport, timeouts, 5xx after retries) is [`ToolError::Unavailable`] with
//! the backend's name as upstream; any other refusal is [`ToolError::Upstream`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::args::{self, parse, time_schema};
use super::tool::{Tool, ToolError, ToolSpec};
use crate::observability::grafana::{DashboardRef, GrafanaClient, GrafanaError};
use crate::observability::loki::{self, Direction, LogRange, LokiClient, LokiError};
use crate::observability::prometheus::{PrometheusClient, PrometheusError, Range};
use crate::observability::tempo::{self, TempoClient, TempoError};
use crate::providers::UpstreamError;

/// Points a range query asks for when no `step` is given.
pub const DEFAULT_RANGE_POINTS: i64 = 250;
/// Log lines `obs.search_logs` returns unless asked.
pub const DEFAULT_LOG_LIMIT: usize = 100;
/// Traces `obs.search_traces` returns unless asked.
pub const DEFAULT_TRACE_LIMIT: usize = 20;

/// The query clients of the configured backends; each one present gets its tools.
#[derive(Clone, Debug, Default)]
pub struct ObsClients {
    /// `obs.query_metrics`.
    pub prometheus: Option<PrometheusClient>,
    /// `obs.search_logs`.
    pub loki: Option<LokiClient>,
    /// `obs.get_trace`, `obs.search_traces`.
    pub tempo: Option<TempoClient>,
    /// `obs.get_dashboard_url`.
    pub grafana: Option<GrafanaClient>,
}

/// The tools of the backends in `clients`.
pub fn obs_tools(clients: ObsClients) -> Vec<Arc<dyn Tool>> {
    let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
    if let Some(p) = clients.prometheus {
        tools.push(Arc::new(QueryMetrics(p)));
    }
    if let Some(l) = clients.loki {
        tools.push(Arc::new(SearchLogs(l)));
    }
    if let Some(t) = clients.tempo {
        tools.push(Arc::new(GetTrace(t.clone())));
        tools.push(Arc::new(SearchTraces(t)));
    }
    if let Some(g) = clients.grafana {
        tools.push(Arc::new(DashboardUrl(g)));
    }
    tools
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

fn text_schema(what: &str) -> Value {
    json!({"type": "string", "minLength": 1, "description": what})
}

/// An upstream client's failure: unreachable → Unavailable.
fn unreachable(upstream: &str, e: UpstreamError) -> ToolError {
    ToolError::Unavailable {
        upstream: upstream.to_owned(),
        reason: e.to_string(),
    }
}

fn upstream(upstream: &str, reason: impl ToString) -> ToolError {
    ToolError::Upstream {
        upstream: upstream.to_owned(),
        reason: reason.to_string(),
    }
}

fn prometheus_error(e: PrometheusError) -> ToolError {
    match e {
        PrometheusError::BadQuery(m) | PrometheusError::Invalid(m) => {
            ToolError::InvalidArguments(m)
        }
        PrometheusError::Upstream(e) => unreachable("prometheus", e),
        e => upstream("prometheus", e),
    }
}

fn loki_error(e: LokiError) -> ToolError {
    match e {
        LokiError::BadQuery(m) | LokiError::Invalid(m) => ToolError::InvalidArguments(m),
        LokiError::Upstream(e) => unreachable("loki", e),
        e => upstream("loki", e),
    }
}

fn tempo_error(e: TempoError) -> ToolError {
    match e {
        TempoError::NotFound(id) => ToolError::NotFound(format!("trace {id}")),
        TempoError::BadQuery(m) | TempoError::Invalid(m) => ToolError::InvalidArguments(m),
        TempoError::Upstream(e) => unreachable("tempo", e),
        e => upstream("tempo", e),
    }
}

fn grafana_error(e: GrafanaError) -> ToolError {
    match e {
        GrafanaError::NotFound(m) => ToolError::NotFound(m),
        e @ GrafanaError::Ambiguous(_) => ToolError::InvalidArguments(format!("{e}; give the uid")),
        GrafanaError::Invalid(m) => ToolError::InvalidArguments(m),
        GrafanaError::Upstream(e) => unreachable("grafana", e),
        e => upstream("grafana", e),
    }
}

/// `[start, end]` from optional arguments (defaults `now-1h`, `now`).
fn window(
    start: Option<&str>,
    end: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ToolError> {
    let start = args::time("start", start.unwrap_or("now-1h"), now)?;
    let end = args::time("end", end.unwrap_or("now"), now)?;
    if end <= start {
        return Err(ToolError::InvalidArguments("end is not after start".into()));
    }
    Ok((start, end))
}

/// `obs.query_metrics`.
struct QueryMetrics(PrometheusClient);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsArgs {
    query: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    step: Option<String>,
}

impl Tool for QueryMetrics {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "obs.query_metrics",
            description: "Run a PromQL query on Prometheus: instant (at `time`, default now) or, with start/end/step, over a range.",
            input_schema: object_schema(
                json!({
                    "query": text_schema("PromQL, e.g. sum(rate(http_requests_total{code=~\"5..\"}[5m])) by (service)."),
                    "time": time_schema("Evaluation time of an instant query", "now"),
                    "start": time_schema("Start of a range query (giving start, end or step makes it a range query)", "now-1h"),
                    "end": time_schema("End of a range query", "now"),
                    "step": text_schema("Resolution of a range query, e.g. 30s, 5m (default: the range / 250)."),
                }),
                &["query"],
            ),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: MetricsArgs = parse(args)?;
            let now = Utc::now();
            let range = a.start.is_some() || a.end.is_some() || a.step.is_some();
            let (out, mode) = if range {
                if a.time.is_some() {
                    return Err(ToolError::InvalidArguments(
                        "time is for instant queries; a range query takes start, end and step"
                            .into(),
                    ));
                }
                let (start, end) = window(a.start.as_deref(), a.end.as_deref(), now)?;
                let step = match a.step.as_deref() {
                    Some(s) => args::duration("step", s)?,
                    None => {
                        let ms = (end - start).num_milliseconds() / DEFAULT_RANGE_POINTS;
                        Duration::from_secs((ms / 1000).max(1) as u64)
                    }
                };
                let r = Range { start, end, step };
                let out = self.0.range(&a.query, r, None).await;
                (out, "range")
            } else {
                let t = a
                    .time
                    .as_deref()
                    .map(|t| args::time("time", t, now))
                    .transpose()?;
                (self.0.instant(&a.query, t, None).await, "instant")
            };
            let out = out.map_err(prometheus_error)?;
            let mut v = serde_json::to_value(&out).map_err(|e| upstream("prometheus", e))?;
            v["query"] = json!(a.query);
            v["mode"] = json!(mode);
            Ok(v)
        })
    }
}

/// `obs.search_logs`.
struct SearchLogs(LokiClient);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    query: String,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    direction: Option<Direction>,
}

impl Tool for SearchLogs {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "obs.search_logs",
            description: "Search logs in Loki with a LogQL log query (e.g. {namespace=\"web\"} |= \"error\") over a time range, newest first.",
            input_schema: object_schema(
                json!({
                    "query": text_schema("A LogQL log query: a stream selector and optional filters."),
                    "start": time_schema("Start", "now-1h"),
                    "end": time_schema("End", "now"),
                    "limit": {
                        "type": "integer", "minimum": 1, "maximum": loki::MAX_LIMIT,
                        "description": format!("At most this many lines (default {DEFAULT_LOG_LIMIT})."),
                    },
                    "direction": {
                        "type": "string", "enum": ["backward", "forward"],
                        "description": "backward (newest first, default) or forward (oldest first).",
                    },
                }),
                &["query"],
            ),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: LogsArgs = parse(args)?;
            let (start, end) = window(a.start.as_deref(), a.end.as_deref(), Utc::now())?;
            let range = LogRange {
                start,
                end,
                limit: args::limit("limit", a.limit, loki::MAX_LIMIT)?.unwrap_or(DEFAULT_LOG_LIMIT),
                direction: a.direction.unwrap_or_default(),
            };
            let out = self
                .0
                .search(&loki::LogQuery::Raw(a.query.clone()), range, None)
                .await
                .map_err(loki_error)?;
            Ok(json!({
                "query": a.query,
                "count": out.lines.len(),
                "lines": out.lines,
                "truncated": out.truncated,
            }))
        })
    }
}

/// `obs.get_trace`.
struct GetTrace(TempoClient);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceArgs {
    trace_id: String,
}

impl Tool for GetTrace {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "obs.get_trace",
            description: "Get a trace's spans from Tempo by trace id (1 to 32 hex digits), sorted by start time.",
            input_schema: object_schema(
                json!({
                    "trace_id": {
                        "type": "string", "pattern": "^[0-9a-fA-F]{1,32}$",
                        "description": "The trace id in hex.",
                    },
                }),
                &["trace_id"],
            ),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: TraceArgs = parse(args)?;
            let out = self.0.trace(&a.trace_id, None).await.map_err(tempo_error)?;
            let mut v = serde_json::to_value(&out).map_err(|e| upstream("tempo", e))?;
            v["span_count"] = json!(out.spans.len());
            Ok(v)
        })
    }
}

/// `obs.search_traces`.
struct SearchTraces(TempoClient);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

impl Tool for SearchTraces {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "obs.search_traces",
            description: "Find traces in Tempo by TraceQL query or by service name over a time range; returns trace ids with root service, name, start and duration.",
            input_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "query": text_schema("TraceQL, e.g. { resource.service.name = \"checkout\" && status = error }."),
                    "service": text_schema("Traces with spans of this service (resource.service.name); instead of query."),
                    "start": time_schema("Start", "now-1h"),
                    "end": time_schema("End", "now"),
                    "limit": {
                        "type": "integer", "minimum": 1, "maximum": tempo::MAX_SEARCH_LIMIT,
                        "description": format!("At most this many traces (default {DEFAULT_TRACE_LIMIT})."),
                    },
                },
                "oneOf": [{"required": ["query"]}, {"required": ["service"]}],
                "additionalProperties": false,
            }),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: SearchArgs = parse(args)?;
            let (start, end) = window(a.start.as_deref(), a.end.as_deref(), Utc::now())?;
            let limit = args::limit("limit", a.limit, tempo::MAX_SEARCH_LIMIT)?
                .unwrap_or(DEFAULT_TRACE_LIMIT);
            let out = match (&a.query, &a.service) {
                (Some(q), None) => self.0.search(q, start, end, limit, None).await,
                (None, Some(s)) => self.0.spans_by_service(s, start, end, limit, None).await,
                _ => {
                    return Err(ToolError::InvalidArguments(
                        "give exactly one of query and service".into(),
                    ))
                }
            }
            .map_err(tempo_error)?;
            Ok(json!({
                "count": out.traces.len(),
                "traces": out.traces,
                "truncated": out.truncated,
            }))
        })
    }
}

/// `obs.get_dashboard_url`.
struct DashboardUrl(GrafanaClient);

/// A variable's value: one, or several for a multi-value variable.
#[derive(Deserialize)]
#[serde(untagged)]
enum VarValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardArgs {
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, VarValue>,
}

impl Tool for DashboardUrl {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "obs.get_dashboard_url",
            description: "Get a Grafana dashboard link (by uid, or by title and/or tag) showing a time range with template variables set.",
            input_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "uid": text_schema("The dashboard's uid."),
                    "title": text_schema("Its title (substring match; an exact match wins)."),
                    "tag": text_schema("A tag it has."),
                    "from": time_schema("Start of the time range", "now-1h"),
                    "to": time_schema("End of the time range", "now"),
                    "vars": {
                        "type": "object",
                        "description": "Template variables: name → value, or a list of values for a multi-value variable.",
                        "additionalProperties": {
                            "anyOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                            ],
                        },
                    },
                },
                "anyOf": [{"required": ["uid"]}, {"required": ["title"]}, {"required": ["tag"]}],
                "additionalProperties": false,
            }),
            write: false,
        }
    }

    fn call<'a>(&'a self, args: &'a Value) -> BoxFuture<'a, Result<Value, ToolError>> {
        Box::pin(async move {
            let a: DashboardArgs = parse(args)?;
            let dashboard = match (a.uid, a.title, a.tag) {
                (Some(uid), _, _) => DashboardRef::Uid(uid),
                (None, None, None) => {
                    return Err(ToolError::InvalidArguments(
                        "give the dashboard's uid, title or tag".into(),
                    ))
                }
                (None, title, tag) => DashboardRef::Search { title, tag },
            };
            let (from, to) = window(a.from.as_deref(), a.to.as_deref(), Utc::now())?;
            let vars: Vec<(String, String)> = a
                .vars
                .into_iter()
                .flat_map(|(name, v)| match v {
                    VarValue::One(v) => vec![(name, v)],
                    VarValue::Many(vs) => vs.into_iter().map(|v| (name.clone(), v)).collect(),
                })
                .collect();
            let url = self
                .0
                .dashboard_url(&dashboard, from, to, &vars, None)
                .await
                .map_err(grafana_error)?;
            Ok(json!({
                "url": url.as_str(),
                "from": from.to_rfc3339(),
                "to": to.to_rfc3339(),
            }))
        })
    }
}
