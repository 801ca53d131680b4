//! Loki's log query API (`/loki/api/v1/query_range`): the spec's
//! `SearchLogs(query, labels, start, end, limit, direction)`, for the agent's log tools.
//!
//! - Every call goes through the `loki` circuit and the shared upstream client (timeout,
//!   retries with backoff, `Retry-After`, bounded body). Searches are reads, so retrying them is
//!   safe. The body cap is [`DEFAULT_MAX_BODY_BYTES`] unless set.
//! - A query is either a stream selector built here from a label map — label names checked
//!   against `[a-zA-Z_][a-zA-Z0-9_]*`, values quoted with [`quote`] (backslash, double quote and
//!   control characters escaped), with an optional `|= "text"` line filter — or raw LogQL.
//! - `limit` is capped at [`MAX_LIMIT`]; the answer is `truncated` when the cap lowered the
//!   limit or Loki returned as many lines as asked (there may be more).
//! - Streams are flattened to lines, each with its stream's labels and its timestamp both as
//!   Loki's exact nanoseconds and as RFC 3339, sorted oldest first (`forward`) or newest first
//!   (`backward`).
//! - Loki's own refusals (HTTP 400 with a plain-text body) become typed errors: a
//!   `parse error` → [`LokiError::BadQuery`], anything else → [`LokiError::Rejected`].

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use super::credentials::Credentials;
use crate::providers::{UpstreamClient, UpstreamError};

/// Lines asked of Loki at most (Loki's own default `max_entries_limit_per_query`).
pub const MAX_LIMIT: usize = 5000;
/// Response body cap by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;
/// Characters of an error body kept in an error.
const ERROR_TEXT_CHARS: usize = 500;

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    /// Loki could not parse the query (HTTP 400 `parse error ...`).
    #[error("loki: bad query: {0}")]
    BadQuery(String),
    /// Loki refused the request for another reason (limits, time range, tenant).
    #[error("loki: HTTP {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Loki's text.
        message: String,
    },
    /// Loki could not be reached or answered an HTTP error (retries exhausted).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// An answer that is not Loki's JSON, or not log streams (a metric query).
    #[error("loki: unexpected answer (HTTP {status}): {reason}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// A query or time range this client refuses to send.
    #[error("loki: {0}")]
    Invalid(String),
}

/// Label names and values.
pub type Labels = BTreeMap<String, String>;

/// What to search.
#[derive(Clone, Debug, PartialEq)]
pub enum LogQuery {
    /// The streams whose labels equal all of these, optionally only lines containing a text.
    Labels {
        /// Label equality matchers (at least one non-empty value).
        labels: Labels,
        /// `|= "text"`: lines containing this text.
        contains: Option<String>,
    },
    /// A LogQL log query, sent as given.
    Raw(String),
}

impl LogQuery {
    /// The LogQL text.
    pub fn logql(&self) -> Result<String, LokiError> {
        match self {
            LogQuery::Raw(q) if q.trim().is_empty() => {
                Err(LokiError::Invalid("empty query".into()))
            }
            LogQuery::Raw(q) => Ok(q.clone()),
            LogQuery::Labels { labels, contains } => {
                if labels.values().all(|v| v.is_empty()) {
                    return Err(LokiError::Invalid(
                        "a selector needs at least one label with a non-empty value".into(),
                    ));
                }
                let mut q = String::from("{");
                for (i, (name, value)) in labels.iter().enumerate() {
                    if !valid_label_name(name) {
                        return Err(LokiError::Invalid(format!(
                            "label name {name:?} is not [a-zA-Z_][a-zA-Z0-9_]*"
                        )));
                    }
                    if i > 0 {
                        q.push_str(", ");
                    }
                    q.push_str(name);
                    q.push('=');
                    q.push_str(&quote(value));
                }
                q.push('}');
                if let Some(text) = contains {
                    q.push_str(" |= ");
                    q.push_str(&quote(text));
                }
                Ok(q)
            }
        }
    }
}

/// Order of the lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// Where and how much to search.
#[derive(Clone, Copy, Debug)]
pub struct LogRange {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive, as Loki has it).
    pub end: DateTime<Utc>,
    /// Lines wanted (capped at [`MAX_LIMIT`]).
    pub limit: usize,
    /// Order.
    pub direction: Direction,
}

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Loki's timestamp, nanoseconds since the Unix epoch, exact.
    pub timestamp_ns: i64,
    /// The same instant in RFC 3339 with nanoseconds.
    pub time: String,
    /// The line.
    pub line: String,
    /// Its stream's labels.
    pub labels: Labels,
}

/// A search's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogsOutput {
    /// The lines, in the asked direction.
    pub lines: Vec<LogLine>,
    /// Whether there may be more lines than these (the limit was reached or capped).
    pub truncated: bool,
}

/// The client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LokiClient {
    client: UpstreamClient,
    base: Url,
    tenant: Option<String>,
    max_body_bytes: usize,
    credentials: Credentials,
}

impl LokiClient {
    /// A client for the Loki at `base` (e.g. `http://loki:3100/`), through `client` (the `loki`
    /// upstream).
    pub fn new(client: UpstreamClient, base: Url) -> Self {
        LokiClient {
            client,
            base,
            tenant: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            credentials: Credentials::None,
        }
    }

    /// Sends `credentials` with every request.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sends `X-Scope-OrgID: <tenant>` (multi-tenant Loki).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Caps the response body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1);
        self
    }

    /// `SearchLogs`: the lines `query` selects in `range`.
    pub async fn search(
        &self,
        query: &LogQuery,
        range: LogRange,
        correlation_id: Option<&str>,
    ) -> Result<LogsOutput, LokiError> {
        let logql = query.logql()?;
        if range.end <= range.start {
            return Err(LokiError::Invalid("end is not after start".into()));
        }
        if range.limit == 0 {
            return Err(LokiError::Invalid("limit must be positive".into()));
        }
        let limit = range.limit.min(MAX_LIMIT);
        let nanos = |t: DateTime<Utc>| {
            t.timestamp_nanos_opt()
                .map(|n| n.to_string())
                .ok_or_else(|| LokiError::Invalid(format!("{t} is outside Loki's time range")))
        };
        if let Some(why) = self.credentials.unavailable() {
            return Err(LokiError::Invalid(format!(
                "credentials unavailable: {why}"
            )));
        }
        let mut url = self
            .base
            .join("loki/api/v1/query_range")
            .map_err(|e| LokiError::Invalid(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("query", &logql)
            .append_pair("start", &nanos(range.start)?)
            .append_pair("end", &nanos(range.end)?)
            .append_pair("limit", &limit.to_string())
            .append_pair("direction", range.direction.as_str());
        let body_limit = self.client.body_limit().with_max_bytes(self.max_body_bytes);
        let resp = self
            .client
            .send_limited(correlation_id, body_limit, |http| {
                let mut req = self.credentials.apply(http.get(url.clone()));
                if let Some(t) = &self.tenant {
                    req = req.header("X-Scope-OrgID", t);
                }
                req
            })
            .await?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(refusal(status, resp.body()));
        }
        let answer: Answer = resp.json().map_err(|e| LokiError::Decode {
            status,
            reason: e.to_string(),
        })?;
        let (lines, cut) = answer
            .flatten(limit, range.direction)
            .map_err(|reason| LokiError::Decode { status, reason })?;
        Ok(LogsOutput {
            truncated: cut || range.limit > limit || lines.len() >= limit,
            lines,
        })
    }
}

/// A label name Loki accepts.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` as a double-quoted LogQL/TraceQL string literal (Go syntax): backslash and double quote
/// escaped, control characters as `\n`, `\r`, `\t` or `\u00XX`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A non-2xx answer Loki gave (4xx other than throttling: the client returns those unretried).
fn refusal(status: u16, body: &[u8]) -> LokiError {
    let text: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(ERROR_TEXT_CHARS)
        .collect();
    if status == 400 && text.contains("parse error") {
        LokiError::BadQuery(text)
    } else {
        LokiError::Rejected {
            status,
            message: text,
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    data: Option<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Stream {
    #[serde(default)]
    stream: Labels,
    /// `[<ns as a string>, <line>]`, with Loki 3's optional third element (structured
    /// metadata), which is ignored.
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

impl Answer {
    /// The lines, sorted for `direction`, at most `limit` of them; whether some were dropped.
    fn flatten(self, limit: usize, direction: Direction) -> Result<(Vec<LogLine>, bool), String> {
        if self.status != "success" {
            return Err(format!("status {:?}", self.status));
        }
        let data = self.data.ok_or("success without data")?;
        if data.result_type != "streams" {
            return Err(format!(
                "resultType {:?}: a metric query, not a log query",
                data.result_type
            ));
        }
        let streams: Vec<Stream> =
            serde_json::from_value(data.result).map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        for s in streams {
            for v in s.values {
                let (Some(ts), Some(line)) = (
                    v.first().and_then(|t| t.as_str()),
                    v.get(1).and_then(|l| l.as_str()),
                ) else {
                    return Err("a value is not [\"<ns>\", \"<line>\"]".into());
                };
                let timestamp_ns: i64 = ts
                    .parse()
                    .map_err(|_| format!("timestamp {ts:?} is not nanoseconds"))?;
                lines.push(LogLine {
                    timestamp_ns,
                    time: DateTime::from_timestamp_nanos(timestamp_ns)
                        .to_rfc3339_opts(SecondsFormat::Nanos, true),
                    line: line.to_owned(),
                    labels: s.stream.clone(),
                });
            }
        }
        lines.sort_by(|a, b| {
            let order = a
                .timestamp_ns
                .cmp(&b.timestamp_ns)
                .then_with(|| a.labels.cmp(&b.labels));
            match direction {
                Direction::Forward => order,
                Direction::Backward => order.reverse(),
            }
        });
        let cut = lines.len() > limit;
        lines.truncate(limit);
        Ok((lines, cut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_escape_values_and_filters_and_check_names() {
        let q = LogQuery::Labels {
            labels: labels(&[("app", "a\"b\\c\nd"), ("env", "prod")]),
            contains: Some("say \"hi\"".into()),
        };
        assert_eq!(
            q.logql().unwrap(),
            r#"{app="a\"b\\c\nd", env="prod"} |= "say \"hi\"""#
        );
        for bad in ["1app", "app-name", "", "a b", "é"] {
            let q = LogQuery::Labels {
                labels: labels(&[(bad, "x")]),
                contains: None,
            };
            assert!(matches!(q.logql(), Err(LokiError::Invalid(_))), "{bad}");
        }
        let empty = LogQuery::Labels {
            labels: labels(&[("app", "")]),
            contains: None,
        };
        assert!(matches!(empty.logql(), Err(LokiError::Invalid(_))));
        assert_eq!(quote("\u{1}"), "\"\\u0001\"");
    }

    fn answer(json: &str) -> Answer {
        serde_json::from_str(json).unwrap()
    }

    const STREAMS: &str = r#"{"status":"success","data":{"resultType":"streams","result":[
        {"stream":{"app":"a"},"values":[["1700000000000000003","a3"],["1700000000000000001","a1"]]},
        {"stream":{"app":"b"},"values":[["1700000000000000002","b2",{"structuredMetadata":{"x":"y"}}]]}]}}"#;

    #[test]
    fn streams_flatten_to_exact_timestamps_sorted_per_direction() {
        let (lines, cut) = answer(STREAMS).flatten(10, Direction::Forward).unwrap();
        assert!(!cut);
        let got: Vec<_> = lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(got, ["a1", "b2", "a3"]);
        assert_eq!(lines[0].timestamp_ns, 1_700_000_000_000_000_001);
        assert_eq!(lines[0].time, "2023-11-14T22:13:20.000000001Z");
        assert_eq!(lines[1].labels["app"], "b");

        let (lines, cut) = answer(STREAMS).flatten(2, Direction::Backward).unwrap();
        assert!(cut);
        let got: Vec<_> = lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(got, ["a3", "b2"]);
    }

    #[test]
    fn metric_answers_and_bad_timestamps_are_decode_errors() {
        let m = answer(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#);
        assert!(m.flatten(10, Direction::Forward).is_err());
        let t = answer(
            r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["12.5","x"]]}]}}"#,
        );
        assert!(t.flatten(10, Direction::Forward).is_err());
    }

    #[test]
    fn loki_refusals_are_typed() {
        assert!(matches!(
            refusal(400, b"parse error at line 1, col 5: syntax error: unexpected IDENTIFIER\n"),
            LokiError::BadQuery(m) if m.starts_with("parse error at line 1")
        ));
        assert!(matches!(
            refusal(
                400,
                b"max entries limit per query exceeded, limit > max_entries_limit (10000 > 5000)"
            ),
            LokiError::Rejected { status: 400, .. }
        ));
    }
}
