//! A fake Tempo: `GET /api/v2/traces/<id>` (`{"trace": {"resourceSpans": [...]}}`, or 404
//! `404 page not found` when set to be a Tempo without the v2 API), `GET /api/traces/<id>`
//! (`{"batches": [...]}` or `{"resourceSpans": [...]}`, as set), 404 for an unknown trace, and
//! `GET /api/search?q={ resource.service.name = "…" }&start=&end=&limit=` answering trace
//! summaries (`traceID`, `rootServiceName`, `rootTraceName`, `startTimeUnixNano`, `durationMs`);
//! another TraceQL query is a 400. Spans are OTLP JSON with base64 ids, as Tempo writes them.
//! Faults are injected through [`Server`], which it dereferences to.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use crate::faults::{Request, Server};

/// The shape `/api/traces/<id>` answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Shape {
    /// `{"batches": [...]}` (Tempo 1.x and 2.x).
    Batches,
    /// `{"resourceSpans": [...]}`.
    ResourceSpans,
}

/// The fake's data and behaviour.
#[derive(Clone, Debug)]
pub struct Tempo {
    /// Traces by 32-digit lowercase hex id: their `resourceSpans`.
    pub traces: BTreeMap<String, Vec<Value>>,
    /// Whether `/api/v2/traces/<id>` exists.
    pub v2: bool,
    /// The shape of `/api/traces/<id>`.
    pub v1_shape: V1Shape,
}

/// A running fake Tempo; stops when dropped.
pub struct FakeTempo(Server<Tempo>);

impl Deref for FakeTempo {
    type Target = Server<Tempo>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FakeTempo {
    /// Serves `traces` (id → `resourceSpans`), with the v2 API.
    pub async fn start(traces: Vec<(&str, Vec<Value>)>) -> FakeTempo {
        let traces = traces
            .into_iter()
            .map(|(id, rs)| (format!("{id:0>32}").to_lowercase(), rs))
            .collect();
        let state = Tempo {
            traces,
            v2: true,
            v1_shape: V1Shape::Batches,
        };
        FakeTempo(Server::start(state, handle).await)
    }

    /// Removes the v2 API (an older Tempo), answering `/api/traces/<id>` in `shape`.
    pub fn v1_only(&self, shape: V1Shape) {
        self.with_state(|s| {
            s.v2 = false;
            s.v1_shape = shape;
        });
    }
}

fn b64(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex id"))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An OTLP JSON span (ids in hex here, base64 in the JSON); `parent` absent for a root.
pub fn span(
    trace_id: &str,
    span_id: &str,
    parent: Option<&str>,
    name: &str,
    start_ns: u64,
    end_ns: u64,
    attributes: &[(&str, &str)],
) -> Value {
    json!({
        "traceId": b64(&format!("{trace_id:0>32}")),
        "spanId": b64(&format!("{span_id:0>16}")),
        "parentSpanId": parent.map(|p| b64(&format!("{p:0>16}"))).unwrap_or_default(),
        "name": name,
        "kind": "SPAN_KIND_SERVER",
        "startTimeUnixNano": start_ns.to_string(),
        "endTimeUnixNano": end_ns.to_string(),
        "attributes": attributes.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>(),
        "status": {}
    })
}

/// One `resourceSpans` entry: `spans` of `service`.
pub fn resource_spans(service: &str, spans: Vec<Value>) -> Value {
    json!({
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "fake"}, "spans": spans}]
    })
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        format!("{body}\n"),
    )
        .into_response()
}

fn handle(state: &Mutex<Tempo>, req: Request) -> Response {
    let tempo = state.lock().expect("fake").clone();
    if req.method != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let lookup = |id: &str| {
        tempo
            .traces
            .get(&format!("{id:0>32}").to_lowercase())
            .cloned()
    };
    if let Some(id) = req.path.strip_prefix("/api/v2/traces/") {
        if !tempo.v2 {
            return text(StatusCode::NOT_FOUND, "404 page not found");
        }
        return match lookup(id) {
            Some(rs) => Json(json!({"trace": {"resourceSpans": rs}})).into_response(),
            None => text(StatusCode::NOT_FOUND, "trace not found"),
        };
    }
    if let Some(id) = req.path.strip_prefix("/api/traces/") {
        return match lookup(id) {
            Some(rs) => match tempo.v1_shape {
                V1Shape::Batches => Json(json!({"batches": rs})).into_response(),
                V1Shape::ResourceSpans => Json(json!({"resourceSpans": rs})).into_response(),
            },
            None => text(StatusCode::NOT_FOUND, "trace not found"),
        };
    }
    if req.path == "/api/search" {
        return search(&tempo, &req);
    }
    text(StatusCode::NOT_FOUND, "404 page not found")
}

fn search(tempo: &Tempo, req: &Request) -> Response {
    let q = req.param("q").unwrap_or_default();
    let service = q
        .trim()
        .strip_prefix('{')
        .and_then(|r| r.trim_start().strip_prefix("resource.service.name"))
        .and_then(|r| r.trim_start().strip_prefix('='))
        .and_then(|r| {
            let chars: Vec<char> = r.trim_start().chars().collect();
            let mut i = 0;
            let s = crate::loki::string(&chars, &mut i)?;
            let rest: String = chars[i..].iter().collect();
            (rest.trim() == "}").then_some(s)
        });
    let Some(service) = service else {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("invalid TraceQL query: parse error at line 1, col 1: syntax error: {q:?}"),
        );
    };
    let secs = |name: &str, default: u64| {
        req.param(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let (start, end, limit) = (
        secs("start", 0),
        secs("end", u64::MAX / 2),
        secs("limit", 20),
    );
    let mut traces = Vec::new();
    for (id, rs) in &tempo.traces {
        let mut services = Vec::new();
        let (mut first, mut last, mut root) = (u64::MAX, 0u64, None);
        for r in rs {
            let svc = r["resource"]["attributes"][0]["value"]["stringValue"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for s in r["scopeSpans"][0]["spans"].as_array().into_iter().flatten() {
                let st: u64 = s["startTimeUnixNano"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let en: u64 = s["endTimeUnixNano"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(st);
                first = first.min(st);
                last = last.max(en);
                if s["parentSpanId"].as_str().unwrap_or_default().is_empty() {
                    root = Some((
                        svc.clone(),
                        s["name"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
                services.push(svc.clone());
            }
        }
        let start_s = first / 1_000_000_000;
        if services.contains(&service) && start_s >= start && start_s <= end {
            let mut t = json!({
                "traceID": id.trim_start_matches('0'),
                "startTimeUnixNano": first.to_string(),
                "spanSets": [{"spans": [], "matched": 1}]
            });
            let ms = (last - first) / 1_000_000;
            if ms > 0 {
                t["durationMs"] = ms.into();
            }
            if let Some((svc, name)) = root {
                t["rootServiceName"] = svc.into();
                t["rootTraceName"] = name.into();
            }
            traces.push(t);
        }
    }
    traces.truncate(limit as usize);
    Json(json!({"traces": traces, "metrics": {"inspectedTraces": tempo.traces.len()}}))
        .into_response()
}
