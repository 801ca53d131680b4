//! Tempo's query API: the spec's `GetTrace(trace_id)` and `GetSpansByService(service, start,
//! end, limit)`, for the agent's trace tools.
//!
//! - Every call goes through the `tempo` circuit and the shared upstream client (timeout,
//!   retries with backoff, `Retry-After`, bounded body); both calls are reads.
//! - `GetTrace` asks `/api/v2/traces/<id>` (`{"trace": {"resourceSpans": [...]}}`) and, when
//!   that answers 404 (a Tempo without the v2 API, or no such trace), `/api/traces/<id>`
//!   (`{"batches": [...]}` or `{"resourceSpans": [...]}`); a 404 there is
//!   [`TempoError::NotFound`]. Trace ids are 1 to 32 hex digits, normalised to 32 lowercase
//!   digits (left-padded with zeros, as Tempo stores them) in requests and answers.
//! - Spans are flattened (trace and span ids in hex, parent, name, `service.name` from the
//!   resource, start and end in nanoseconds, duration, status, attributes as strings), sorted
//!   by start, and capped at `max_spans` with a `truncated` flag.
//! - `GetSpansByService` runs the TraceQL `{ resource.service.name = "<service>" }` (the name
//!   quoted with [`quote`]) on `/api/search` and returns the traces' summaries, at most
//!   [`MAX_SEARCH_LIMIT`]; [`TempoClient::search`] runs any TraceQL query the same way (the
//!   agent's `obs.search_traces`).

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::header::ACCEPT;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::credentials::Credentials;
use super::loki::quote;
use crate::providers::{UpstreamClient, UpstreamError, UpstreamResponse};

/// Spans kept by default from one trace.
pub const DEFAULT_MAX_SPANS: usize = 10_000;
/// Traces asked of a search at most.
pub const MAX_SEARCH_LIMIT: usize = 1000;
/// Response body cap by default (traces can be large).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
const ERROR_TEXT_CHARS: usize = 500;

/// Why a trace query failed.
#[derive(Debug, thiserror::Error)]
pub enum TempoError {
    /// No trace with this id (HTTP 404).
    #[error("tempo: trace {0} not found")]
    NotFound(String),
    /// Tempo refused the TraceQL query (HTTP 400).
    #[error("tempo: bad query: {0}")]
    BadQuery(String),
    /// Tempo refused the request for another reason.
    #[error("tempo: HTTP {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Tempo's text.
        message: String,
    },
    /// Tempo could not be reached or answered an HTTP error (retries exhausted).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// An answer that is not Tempo's JSON.
    #[error("tempo: unexpected answer (HTTP {status}): {reason}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// An id, service or time range this client refuses to send.
    #[error("tempo: {0}")]
    Invalid(String),
}

/// A span's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpanStatus {
    /// `unset`, `ok` or `error`.
    pub code: String,
    /// Its message, if any.
    pub message: Option<String>,
}

/// One span, flattened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Trace id, lowercase hex.
    pub trace_id: String,
    /// Span id, lowercase hex.
    pub span_id: String,
    /// Parent span id, absent for a root span.
    pub parent_span_id: Option<String>,
    /// Name.
    pub name: String,
    /// `service.name` of the span's resource.
    pub service: Option<String>,
    /// Kind (`SPAN_KIND_SERVER`, ...), as Tempo wrote it.
    pub kind: Option<String>,
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_ns: u64,
    /// `end - start`, nanoseconds.
    pub duration_ns: u64,
    /// Status.
    pub status: SpanStatus,
    /// Attributes, values as text (arrays and maps as JSON).
    pub attributes: BTreeMap<String, String>,
}

/// A trace's spans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceOutput {
    /// The id asked for, as 32 lowercase hex digits.
    pub trace_id: String,
    /// Spans by start time.
    pub spans: Vec<Span>,
    /// Whether spans were dropped to stay within the cap.
    pub truncated: bool,
}

/// A trace found by a search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    /// Trace id, as 32 lowercase hex digits.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Service of the root span (absent while the root span has not arrived).
    #[serde(default)]
    pub root_service_name: Option<String>,
    /// Name of the root span.
    #[serde(default)]
    pub root_trace_name: Option<String>,
    /// Start, nanoseconds since the Unix epoch.
    #[serde(default, with = "u64_text")]
    pub start_time_unix_nano: u64,
    /// Duration, milliseconds (Tempo omits it under 1 ms).
    #[serde(default)]
    pub duration_ms: u64,
}

/// A search's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchOutput {
    /// The traces.
    pub traces: Vec<TraceSummary>,
    /// Whether there may be more (as many as asked were returned, or the limit was capped).
    pub truncated: bool,
}

/// The client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TempoClient {
    client: UpstreamClient,
    base: Url,
    max_spans: usize,
    max_body_bytes: usize,
    credentials: Credentials,
}

impl TempoClient {
    /// A client for the Tempo at `base` (e.g. `http://tempo:3200/`), through `client` (the
    /// `tempo` upstream).
    pub fn new(client: UpstreamClient, base: Url) -> Self {
        TempoClient {
            client,
            base,
            max_spans: DEFAULT_MAX_SPANS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            credentials: Credentials::None,
        }
    }

    /// Sends `credentials` with every request.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Caps the spans of one trace.
    pub fn with_max_spans(mut self, max_spans: usize) -> Self {
        self.max_spans = max_spans.max(1);
        self
    }

    /// Caps the response body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1);
        self
    }

    /// `GetTrace`: the spans of `trace_id`.
    pub async fn trace(
        &self,
        trace_id: &str,
        correlation_id: Option<&str>,
    ) -> Result<TraceOutput, TempoError> {
        if trace_id.is_empty()
            || trace_id.len() > 32
            || !trace_id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(TempoError::Invalid(format!(
                "trace id {trace_id:?} is not 1 to 32 hex digits"
            )));
        }
        let id = normalise(trace_id);
        let mut resp = self
            .get(&format!("api/v2/traces/{id}"), &[], correlation_id)
            .await?;
        if resp.status().as_u16() == 404 {
            resp = self
                .get(&format!("api/traces/{id}"), &[], correlation_id)
                .await?;
        }
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(TempoError::NotFound(id));
        }
        if !resp.status().is_success() {
            return Err(refusal(status, resp.body()));
        }
        let body: Value = resp.json().map_err(|e| TempoError::Decode {
            status,
            reason: e.to_string(),
        })?;
        let (spans, truncated) = flatten(&body, self.max_spans)
            .map_err(|reason| TempoError::Decode { status, reason })?;
        Ok(TraceOutput {
            trace_id: id,
            spans,
            truncated,
        })
    }

    /// `GetSpansByService`: traces with spans of `service` that started in `[start, end]`.
    pub async fn spans_by_service(
        &self,
        service: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: usize,
        correlation_id: Option<&str>,
    ) -> Result<SearchOutput, TempoError> {
        if service.trim().is_empty() {
            return Err(TempoError::Invalid("empty service name".into()));
        }
        let q = format!("{{ resource.service.name = {} }}", quote(service));
        self.search(&q, start, end, limit, correlation_id).await
    }

    /// Traces matching the TraceQL `query` that started in `[start, end]` (at most `limit`,
    /// capped at [`MAX_SEARCH_LIMIT`]).
    pub async fn search(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: usize,
        correlation_id: Option<&str>,
    ) -> Result<SearchOutput, TempoError> {
        if query.trim().is_empty() {
            return Err(TempoError::Invalid("empty query".into()));
        }
        if end <= start {
            return Err(TempoError::Invalid("end is not after start".into()));
        }
        if limit == 0 {
            return Err(TempoError::Invalid("limit must be positive".into()));
        }
        let capped = limit.min(MAX_SEARCH_LIMIT);
        let params = [
            ("q", query.to_owned()),
            ("start", start.timestamp().to_string()),
            // Tempo's end is whole seconds: round up so the end instant is inside.
            (
                "end",
                (end.timestamp() + i64::from(end.timestamp_subsec_nanos() > 0)).to_string(),
            ),
            ("limit", capped.to_string()),
        ];
        let resp = self.get("api/search", &params, correlation_id).await?;
        let status = resp.status().as_u16();
        if status == 400 {
            return Err(TempoError::BadQuery(text(resp.body())));
        }
        if !resp.status().is_success() {
            return Err(refusal(status, resp.body()));
        }
        let answer: SearchAnswer = resp.json().map_err(|e| TempoError::Decode {
            status,
            reason: e.to_string(),
        })?;
        let mut traces = answer.traces;
        for t in &mut traces {
            t.trace_id = normalise(&t.trace_id);
        }
        let over = traces.len() > capped;
        traces.truncate(capped);
        Ok(SearchOutput {
            truncated: over || limit > capped || traces.len() >= capped,
            traces,
        })
    }

    async fn get(
        &self,
        path: &str,
        params: &[(&str, String)],
        correlation_id: Option<&str>,
    ) -> Result<UpstreamResponse, TempoError> {
        if let Some(why) = self.credentials.unavailable() {
            return Err(TempoError::Invalid(format!(
                "credentials unavailable: {why}"
            )));
        }
        let mut url = self
            .base
            .join(path)
            .map_err(|e| TempoError::Invalid(e.to_string()))?;
        if !params.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let limit = self.client.body_limit().with_max_bytes(self.max_body_bytes);
        Ok(self
            .client
            .send_limited(correlation_id, limit, |http| {
                self.credentials
                    .apply(http.get(url.clone()))
                    .header(ACCEPT, "application/json")
            })
            .await?)
    }
}

/// A trace id as Tempo stores it: 32 lowercase hex digits (Tempo's search answers drop
/// leading zeros; short ids are zero-padded on the left).
fn normalise(id: &str) -> String {
    format!("{:0>32}", id.to_ascii_lowercase())
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(ERROR_TEXT_CHARS)
        .collect()
}

fn refusal(status: u16, body: &[u8]) -> TempoError {
    TempoError::Rejected {
        status,
        message: text(body),
    }
}

#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(default)]
    traces: Vec<TraceSummary>,
}

/// Tempo writes 64-bit numbers as JSON strings; accept numbers too.
mod u64_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        super::as_u64(&v).ok_or_else(|| serde::de::Error::custom(format!("{v} is not a u64")))
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// An OTLP id (base64 in OTLP JSON, hex in some Tempo versions) as lowercase hex.
fn id_hex(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?;
    if s.is_empty() {
        return None;
    }
    if (s.len() == 16 || s.len() == 32) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(s.to_ascii_lowercase());
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An OTLP `AnyValue` as text.
fn any_value(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    if let Some(s) = obj.get("stringValue").and_then(Value::as_str) {
        return s.to_owned();
    }
    if let Some(i) = obj.get("intValue") {
        return match i {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    if let Some(x) = obj.get("doubleValue").or_else(|| obj.get("boolValue")) {
        return x.to_string();
    }
    if let Some(b) = obj.get("bytesValue").and_then(Value::as_str) {
        return b.to_owned();
    }
    if let Some(a) = obj.get("arrayValue") {
        let items: Vec<Value> = a["values"]
            .as_array()
            .map(|vs| vs.iter().map(|x| Value::String(any_value(x))).collect())
            .unwrap_or_default();
        return Value::Array(items).to_string();
    }
    if let Some(kv) = obj.get("kvlistValue") {
        let map: serde_json::Map<String, Value> = attributes(&kv["values"])
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Value::Object(map).to_string();
    }
    String::new()
}

fn attributes(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), any_value(&kv["value"]))))
                .collect()
        })
        .unwrap_or_default()
}

fn status_code(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(1) => "ok",
            Some(2) => "error",
            _ => "unset",
        },
        Value::String(s) => match s.as_str() {
            "STATUS_CODE_OK" | "OK" | "ok" => "ok",
            "STATUS_CODE_ERROR" | "ERROR" | "error" => "error",
            _ => "unset",
        },
        _ => "unset",
    }
    .to_owned()
}

/// The spans of a trace in any of Tempo's shapes, by start, at most `max`; whether some were
/// dropped.
fn flatten(body: &Value, max: usize) -> Result<(Vec<Span>, bool), String> {
    let root = body.get("trace").unwrap_or(body);
    let batches = root
        .get("resourceSpans")
        .or_else(|| root.get("batches"))
        .ok_or("neither resourceSpans nor batches in the answer")?;
    let batches = batches.as_array().ok_or("resourceSpans is not a list")?;
    let mut spans = Vec::new();
    let mut truncated = false;
    for batch in batches {
        let resource = attributes(&batch["resource"]["attributes"]);
        let service = resource.get("service.name").cloned();
        let scopes = batch
            .get("scopeSpans")
            .or_else(|| batch.get("instrumentationLibrarySpans"))
            .and_then(Value::as_array);
        for scope in scopes.into_iter().flatten() {
            for s in scope["spans"].as_array().into_iter().flatten() {
                if spans.len() == max {
                    truncated = true;
                    continue;
                }
                let start_ns = as_u64(&s["startTimeUnixNano"]).ok_or("span without a start")?;
                let end_ns = as_u64(&s["endTimeUnixNano"]).unwrap_or(start_ns);
                spans.push(Span {
                    trace_id: id_hex(s.get("traceId")).ok_or("span without a trace id")?,
                    span_id: id_hex(s.get("spanId")).ok_or("span without a span id")?,
                    parent_span_id: id_hex(s.get("parentSpanId")),
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    service: service.clone(),
                    kind: s["kind"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| s["kind"].as_u64().map(|k| k.to_string())),
                    start_ns,
                    end_ns,
                    duration_ns: end_ns.saturating_sub(start_ns),
                    status: SpanStatus {
                        code: status_code(&s["status"]["code"]),
                        message: s["status"]["message"]
                            .as_str()
                            .filter(|m| !m.is_empty())
                            .map(str::to_owned),
                    },
                    attributes: attributes(&s["attributes"]),
                });
            }
        }
    }
    spans.sort_by(|a, b| {
        a.start_ns
            .cmp(&b.start_ns)
            .then_with(|| a.span_id.cmp(&b.span_id))
    });
    Ok((spans, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch() -> Value {
        json!({
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [
                {"traceId": "AAAAAAAAAAAAAAAAAAAAAQ==", "spanId": "AAAAAAAAAAI=", "parentSpanId": "AAAAAAAAAAE=",
                 "name": "child", "kind": "SPAN_KIND_CLIENT",
                 "startTimeUnixNano": "1700000000000000200", "endTimeUnixNano": "1700000000000000500",
                 "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                 "attributes": [{"key": "http.status_code", "value": {"intValue": "503"}},
                                {"key": "retry", "value": {"boolValue": true}},
                                {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}}]},
                {"traceId": "00000000000000000000000000000001", "spanId": "0000000000000001", "parentSpanId": "",
                 "name": "root", "startTimeUnixNano": 1700000000000000100u64, "endTimeUnixNano": "1700000000000000900",
                 "status": {}}
            ]}]
        })
    }

    #[test]
    fn v2_v1_and_legacy_shapes_flatten_alike() {
        let shapes = [
            json!({"trace": {"resourceSpans": [batch()]}}),
            json!({"batches": [batch()]}),
            json!({"resourceSpans": [batch()]}),
        ];
        for shape in shapes {
            let (spans, cut) = flatten(&shape, 10).unwrap();
            assert!(!cut);
            assert_eq!(spans[0].name, "root");
            assert_eq!(spans[0].parent_span_id, None);
            assert_eq!(spans[0].duration_ns, 800);
            assert_eq!(spans[0].status.code, "unset");
            let c = &spans[1];
            assert_eq!(c.trace_id, "00000000000000000000000000000001");
            assert_eq!(c.span_id, "0000000000000002");
            assert_eq!(c.parent_span_id.as_deref(), Some("0000000000000001"));
            assert_eq!(c.service.as_deref(), Some("api"));
            assert_eq!(
                (c.start_ns, c.end_ns, c.duration_ns),
                (1_700_000_000_000_000_200, 1_700_000_000_000_000_500, 300)
            );
            assert_eq!(
                c.status,
                SpanStatus {
                    code: "error".into(),
                    message: Some("boom".into())
                }
            );
            assert_eq!(c.attributes["http.status_code"], "503");
            assert_eq!(c.attributes["retry"], "true");
            assert_eq!(c.attributes["tags"], r#"["a"]"#);
        }
    }

    #[test]
    fn spans_beyond_the_cap_are_dropped_and_marked() {
        let (spans, cut) = flatten(&json!({"batches": [batch()]}), 1).unwrap();
        assert!(cut);
        assert_eq!(spans.len(), 1);
        assert!(flatten(&json!({"traces": []}), 1).is_err());
    }

    #[test]
    fn search_summaries_decode_with_string_or_missing_fields() {
        let a: SearchAnswer = serde_json::from_value(json!({"traces": [
            {"traceID": "2f3e0cee77ae5dc9c17ade3689eb2e54", "rootServiceName": "shop", "rootTraceName": "GET /",
             "startTimeUnixNano": "1684778327699392724", "durationMs": 557},
            {"traceID": "ab", "startTimeUnixNano": "1684778327699392725"}]}))
        .unwrap();
        assert_eq!(a.traces[0].start_time_unix_nano, 1_684_778_327_699_392_724);
        assert_eq!(a.traces[0].duration_ms, 557);
        assert_eq!(a.traces[1].root_service_name, None);
        assert_eq!(a.traces[1].duration_ms, 0);
    }
}
