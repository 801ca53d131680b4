//! Prometheus' HTTP query API: instant queries (`/api/v1/query`) and range queries
//! (`/api/v1/query_range`, the spec's `GetMetricRange(query, start, end, step)`), for the SLI
//! scheduler and the agent's `obs.query_metrics`.
//!
//! - Every call goes through the `prometheus` circuit and the shared upstream client (timeout,
//!   retries with backoff, `Retry-After`, bounded body). Queries are reads, so retrying them is
//!   safe.
//! - A query longer than [`POST_ABOVE_BYTES`] is sent as a POST form (Prometheus accepts both),
//!   so long PromQL never meets a URL length limit.
//! - Prometheus' own errors (`{"status":"error","errorType":...}`) become typed errors:
//!   `bad_data` → [`PrometheusError::BadQuery`], `execution` → [`PrometheusError::Execution`],
//!   `timeout`/`canceled` → [`PrometheusError::Timeout`]; its `warnings` are passed through.
//! - Results are capped: at most `max_points` samples over all series; past it the result is cut
//!   (whole series first) and marked `truncated`.
//! - Sample values keep Prometheus' special values (`NaN`, `+Inf`, `-Inf`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use url::Url;

use super::credentials::Credentials;
use crate::providers::{UpstreamClient, UpstreamError};

/// Queries whose url-encoded form is longer than this are POSTed.
pub const POST_ABOVE_BYTES: usize = 2048;
/// Samples kept by default over all series of one answer.
pub const DEFAULT_MAX_POINTS: usize = 50_000;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The query (or its parameters) is not valid PromQL (`errorType: bad_data`).
    #[error("prometheus: bad query: {0}")]
    BadQuery(String),
    /// The query failed while running (`errorType: execution`).
    #[error("prometheus: query failed: {0}")]
    Execution(String),
    /// Prometheus gave up on the query (`errorType: timeout` or `canceled`).
    #[error("prometheus: query timed out or was cancelled: {0}")]
    Timeout(String),
    /// Another error Prometheus reported.
    #[error("prometheus: {kind}: {message}")]
    Other {
        /// Its `errorType`.
        kind: String,
        /// Its `error`.
        message: String,
    },
    /// Prometheus could not be reached or answered an HTTP error (retries exhausted).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// An answer that is not Prometheus' JSON.
    #[error("prometheus: unexpected answer (HTTP {status}): {reason}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// A query or time range this client refuses to send.
    #[error("prometheus: {0}")]
    Invalid(String),
}

/// One series' labels.
pub type Labels = BTreeMap<String, String>;

/// A sample: Unix time in seconds and the value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Unix time, seconds (Prometheus keeps milliseconds).
    pub t: f64,
    /// The value (`NaN` and infinities included).
    pub v: f64,
}

/// A series and its samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    /// Labels.
    pub labels: Labels,
    /// Samples, oldest first (one for an instant vector).
    pub points: Vec<Point>,
}

/// What a query answered.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    /// An instant vector: one point per series.
    Vector(Vec<Series>),
    /// A range vector (every range query).
    Matrix(Vec<Series>),
    /// A scalar.
    Scalar(Point),
    /// A string (Unix time and the text).
    String(f64, String),
}

impl QueryData {
    /// The series, whatever the shape (a scalar is one series without labels).
    pub fn series(&self) -> Vec<&Series> {
        match self {
            QueryData::Vector(s) | QueryData::Matrix(s) => s.iter().collect(),
            QueryData::Scalar(_) | QueryData::String(..) => Vec::new(),
        }
    }
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueryOutput {
    /// The data.
    #[serde(flatten)]
    pub data: QueryData,
    /// Prometheus' warnings (and infos), passed through.
    pub warnings: Vec<String>,
    /// Whether samples were dropped to stay within the point cap.
    pub truncated: bool,
}

/// A range query's step.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (inclusive).
    pub end: DateTime<Utc>,
    /// Resolution.
    pub step: Duration,
}

/// The client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PrometheusClient {
    client: UpstreamClient,
    base: Url,
    max_points: usize,
    credentials: Credentials,
}

impl PrometheusClient {
    /// A client for the Prometheus at `base` (e.g. `http://prometheus:9090/`), through
    /// `client` (the `prometheus` upstream).
    pub fn new(client: UpstreamClient, base: Url) -> Self {
        PrometheusClient {
            client,
            base,
            max_points: DEFAULT_MAX_POINTS,
            credentials: Credentials::None,
        }
    }

    /// Sends `credentials` with every request.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Caps the samples of one answer.
    pub fn with_max_points(mut self, max_points: usize) -> Self {
        self.max_points = max_points.max(1);
        self
    }

    /// Evaluates `query` at `time` (now when absent).
    pub async fn instant(
        &self,
        query: &str,
        time: Option<DateTime<Utc>>,
        correlation_id: Option<&str>,
    ) -> Result<QueryOutput, PrometheusError> {
        let mut params = vec![("query", query.to_owned())];
        if let Some(t) = time {
            params.push(("time", seconds(t)));
        }
        self.call("api/v1/query", params, correlation_id).await
    }

    /// Evaluates `query` over `range` (`GetMetricRange`).
    pub async fn range(
        &self,
        query: &str,
        range: Range,
        correlation_id: Option<&str>,
    ) -> Result<QueryOutput, PrometheusError> {
        if range.end < range.start {
            return Err(PrometheusError::Invalid("end is before start".into()));
        }
        if range.step.is_zero() {
            return Err(PrometheusError::Invalid("step must be positive".into()));
        }
        let span = (range.end - range.start).num_milliseconds().max(0) as f64 / 1000.0;
        let points = span / range.step.as_secs_f64() + 1.0;
        if points > 11_000.0 {
            // Prometheus' own limit per series; say it before sending.
            return Err(PrometheusError::Invalid(format!(
                "{points:.0} points per series; at most 11000 (use a larger step)"
            )));
        }
        let params = vec![
            ("query", query.to_owned()),
            ("start", seconds(range.start)),
            ("end", seconds(range.end)),
            ("step", format!("{}", range.step.as_secs_f64())),
        ];
        self.call("api/v1/query_range", params, correlation_id)
            .await
    }

    async fn call(
        &self,
        path: &str,
        mut params: Vec<(&'static str, String)>,
        correlation_id: Option<&str>,
    ) -> Result<QueryOutput, PrometheusError> {
        if params
            .iter()
            .any(|(k, v)| *k == "query" && v.trim().is_empty())
        {
            return Err(PrometheusError::Invalid("empty query".into()));
        }
        if let Some(why) = self.credentials.unavailable() {
            return Err(PrometheusError::Invalid(format!(
                "credentials unavailable: {why}"
            )));
        }
        let url = self
            .base
            .join(path)
            .map_err(|e| PrometheusError::Invalid(e.to_string()))?;
        // Prometheus stops evaluating at its own timeout: just inside ours.
        let timeout = self.client.policy().timeout;
        params.push(("timeout", format!("{}ms", timeout.as_millis().max(1))));
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let post = form.len() > POST_ABOVE_BYTES;
        let resp = self
            .client
            .send(correlation_id, |http| {
                let req = if post {
                    http.post(url.clone())
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(form.clone())
                } else {
                    let mut u = url.clone();
                    u.set_query(Some(&form));
                    http.get(u)
                };
                self.credentials.apply(req)
            })
            .await?;
        let status = resp.status().as_u16();
        let answer: Answer =
            serde_json::from_slice(resp.body()).map_err(|e| PrometheusError::Decode {
                status,
                reason: e.to_string(),
            })?;
        let mut warnings = answer.warnings;
        warnings.extend(answer.infos);
        if answer.status != "success" {
            let message = answer.error.unwrap_or_default();
            return Err(match answer.error_type.as_deref().unwrap_or("") {
                "bad_data" => PrometheusError::BadQuery(message),
                "execution" => PrometheusError::Execution(message),
                "timeout" | "canceled" => PrometheusError::Timeout(message),
                other => PrometheusError::Other {
                    kind: other.to_owned(),
                    message,
                },
            });
        }
        let data = answer.data.ok_or_else(|| PrometheusError::Decode {
            status,
            reason: "success without data".into(),
        })?;
        let (data, truncated) = data
            .decode(self.max_points)
            .map_err(|reason| PrometheusError::Decode { status, reason })?;
        Ok(QueryOutput {
            data,
            warnings,
            truncated,
        })
    }
}

/// Prometheus' time parameter: Unix seconds with milliseconds.
fn seconds(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

/// The response envelope.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    data: Option<RawData>,
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: Labels,
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

fn value(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .map_err(|_| format!("sample value {s:?} is not a number"))
}

fn point((t, v): (f64, String)) -> Result<Point, String> {
    Ok(Point { t, v: value(&v)? })
}

impl RawData {
    /// Typed data, cut to `max_points` samples.
    fn decode(self, max_points: usize) -> Result<(QueryData, bool), String> {
        let series = |v: serde_json::Value| -> Result<(Vec<Series>, bool), String> {
            let raw: Vec<RawSeries> = serde_json::from_value(v).map_err(|e| e.to_string())?;
            let mut left = max_points;
            let mut truncated = false;
            let mut out = Vec::with_capacity(raw.len());
            for r in raw {
                let mut points: Vec<(f64, String)> = r.values;
                points.extend(r.value);
                if left == 0 {
                    truncated = true;
                    break;
                }
                if points.len() > left {
                    points.truncate(left);
                    truncated = true;
                }
                left -= points.len();
                out.push(Series {
                    labels: r.metric,
                    points: points.into_iter().map(point).collect::<Result<_, _>>()?,
                });
            }
            Ok((out, truncated))
        };
        Ok(match self.result_type.as_str() {
            "vector" => {
                let (s, t) = series(self.result)?;
                (QueryData::Vector(s), t)
            }
            "matrix" => {
                let (s, t) = series(self.result)?;
                (QueryData::Matrix(s), t)
            }
            "scalar" => {
                let p: (f64, String) =
                    serde_json::from_value(self.result).map_err(|e| e.to_string())?;
                (QueryData::Scalar(point(p)?), false)
            }
            "string" => {
                let (t, s): (f64, String) =
                    serde_json::from_value(self.result).map_err(|e| e.to_string())?;
                (QueryData::String(t, s), false)
            }
            other => return Err(format!("unknown resultType {other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str, max: usize) -> (QueryData, bool) {
        let a: Answer = serde_json::from_str(json).unwrap();
        a.data.unwrap().decode(max).unwrap()
    }

    #[test]
    fn vectors_matrices_scalars_and_special_values_decode() {
        let (d, t) = decode(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"job":"a"},"value":[1700000000.5,"NaN"]},
                {"metric":{"job":"b"},"value":[1700000000.5,"+Inf"]}]}}"#,
            10,
        );
        assert!(!t);
        let QueryData::Vector(s) = d else { panic!() };
        assert_eq!(s[0].labels["job"], "a");
        assert!(s[0].points[0].v.is_nan());
        assert_eq!(s[1].points[0].v, f64::INFINITY);
        assert_eq!(s[1].points[0].t, 1_700_000_000.5);

        let (d, _) = decode(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"-Inf"]}}"#,
            10,
        );
        assert_eq!(
            d,
            QueryData::Scalar(Point {
                t: 1_700_000_000.0,
                v: f64::NEG_INFINITY
            })
        );
    }

    #[test]
    fn answers_beyond_the_point_cap_are_cut_and_marked() {
        let (d, t) = decode(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"s":"1"},"values":[[1,"1"],[2,"2"],[3,"3"]]},
                {"metric":{"s":"2"},"values":[[1,"1"],[2,"2"],[3,"3"]]},
                {"metric":{"s":"3"},"values":[[1,"1"]]}]}}"#,
            4,
        );
        assert!(t);
        let QueryData::Matrix(s) = d else { panic!() };
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].points.len(), s[1].points.len()), (3, 1));
    }

    #[test]
    fn a_value_that_is_not_a_number_is_a_decode_error() {
        let a: Answer = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
        )
        .unwrap();
        assert!(a.data.unwrap().decode(10).is_err());
    }
}
