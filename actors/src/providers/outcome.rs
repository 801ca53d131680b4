//! The one classification of an upstream attempt's outcome, used by the shared
//! [`UpstreamClient`](super::UpstreamClient) and by the Kubernetes tower layer alike: what it
//! is called in `sre_upstream_requests_total{outcome}`, whether it is retried, and whether it
//! counts against the circuit.
//!
//! | outcome | when | retried | against the circuit |
//! |---|---|---|---|
//! | `success` | 1xx–3xx | no | no |
//! | `client_error` | 4xx except throttling | no | no |
//! | `throttled` | 429, or 403 with `x-ratelimit-remaining: 0` | yes, after the wait asked | **never** |
//! | `server_error` | 5xx | yes | yes |
//! | `timeout` | no response headers within the per-attempt timeout | yes | yes |
//! | `transport` | connect / TLS / protocol error | yes | yes |
//! | `body_timeout` | the body did not arrive within its deadline | yes | yes |
//! | `body_too_large` | the body exceeded its size cap | no | yes |
//! | `circuit_open` | the circuit refused the call (nothing was sent) | no | — |
//!
//! Throttling shows the upstream alive and asking us to slow down, so it never opens a
//! circuit; other 4xx are our mistake and are returned to the caller unretried. Retries honour
//! the wait the upstream asks for ([`retry_after`]), bounded by `max_retry_after`.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

/// The outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A non-error answer.
    Success,
    /// A 4xx other than throttling.
    ClientError,
    /// 429, or 403 with an exhausted rate limit.
    Throttled,
    /// 5xx.
    ServerError,
    /// No response headers in time.
    Timeout,
    /// The connection failed.
    Transport,
    /// The body did not arrive in time.
    BodyTimeout,
    /// The body was larger than allowed.
    BodyTooLarge,
    /// The circuit refused the call.
    CircuitOpen,
}

impl Outcome {
    /// Every outcome, in the order of the table above.
    pub const ALL: [Outcome; 9] = [
        Outcome::Success,
        Outcome::ClientError,
        Outcome::Throttled,
        Outcome::ServerError,
        Outcome::Timeout,
        Outcome::Transport,
        Outcome::BodyTimeout,
        Outcome::BodyTooLarge,
        Outcome::CircuitOpen,
    ];

    /// The `outcome` label of `sre_upstream_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ClientError => "client_error",
            Outcome::Throttled => "throttled",
            Outcome::ServerError => "server_error",
            Outcome::Timeout => "timeout",
            Outcome::Transport => "transport",
            Outcome::BodyTimeout => "body_timeout",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::CircuitOpen => "circuit_open",
        }
    }

    /// Whether another attempt may help (for requests that are safe to repeat).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Outcome::Throttled
                | Outcome::ServerError
                | Outcome::Timeout
                | Outcome::Transport
                | Outcome::BodyTimeout
        )
    }

    /// Whether the attempt counts as a failure in the circuit's window. Throttling never does.
    pub fn counts_against_circuit(self) -> bool {
        matches!(
            self,
            Outcome::ServerError
                | Outcome::Timeout
                | Outcome::Transport
                | Outcome::BodyTimeout
                | Outcome::BodyTooLarge
        )
    }
}

/// What a response's status and headers come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// The outcome.
    pub outcome: Outcome,
    /// The wait the upstream asked for before another attempt, if it said.
    pub retry_after: Option<Duration>,
}

/// Classifies a response by its status and headers (see the module table).
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Classified {
    let exhausted = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "0");
    let outcome = if status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && exhausted)
    {
        Outcome::Throttled
    } else if status.is_server_error() {
        Outcome::ServerError
    } else if status.is_client_error() {
        Outcome::ClientError
    } else {
        Outcome::Success
    };
    let retry_after = match outcome {
        Outcome::Throttled | Outcome::ServerError => retry_after(headers),
        _ => None,
    };
    Classified {
        outcome,
        retry_after,
    }
}

/// The wait the upstream asks for: `Retry-After` (seconds or HTTP date), `RateLimit-Reset`
/// (seconds) or `X-RateLimit-Reset` (epoch seconds).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            );
        }
    }
    if let Some(secs) = text("ratelimit-reset").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if let Some(v) = text("x-ratelimit-reset") {
        let at = match v.parse::<u64>() {
            Ok(epoch) => Some(SystemTime::UNIX_EPOCH + Duration::from_secs(epoch)),
            // Jira Cloud sends an ISO 8601 instant (`2024-05-10T12:00Z`).
            Err(_) => iso_instant(v),
        };
        if let Some(at) = at {
            return Some(
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            );
        }
    }
    None
}

/// An ISO 8601 UTC instant, with or without seconds (`2024-05-10T12:00Z`,
/// `2024-05-10T12:00:30.5+00:00`).
fn iso_instant(v: &str) -> Option<SystemTime> {
    let at = chrono::DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%MZ")
                .ok()
                .map(|n| n.and_utc())
        })?;
    let millis = u64::try_from(at.timestamp_millis()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// status, headers, outcome, retryable, against the circuit, retry_after (s)
    type Row = (
        u16,
        &'static [(&'static str, &'static str)],
        Outcome,
        bool,
        bool,
        Option<u64>,
    );

    #[test]
    fn the_classification_table() {
        use Outcome::*;
        let table: &[Row] = &[
            (200, &[], Success, false, false, None),
            (201, &[], Success, false, false, None),
            (304, &[], Success, false, false, None),
            (400, &[], ClientError, false, false, None),
            (401, &[], ClientError, false, false, None),
            (403, &[], ClientError, false, false, None),
            (
                403,
                &[("x-ratelimit-remaining", "5")],
                ClientError,
                false,
                false,
                None,
            ),
            (
                404,
                &[("retry-after", "3")],
                ClientError,
                false,
                false,
                None,
            ),
            (422, &[], ClientError, false, false, None),
            (429, &[], Throttled, true, false, None),
            (
                429,
                &[("retry-after", "7")],
                Throttled,
                true,
                false,
                Some(7),
            ),
            (
                429,
                &[("ratelimit-reset", "30")],
                Throttled,
                true,
                false,
                Some(30),
            ),
            (
                403,
                &[("x-ratelimit-remaining", "0"), ("retry-after", "2")],
                Throttled,
                true,
                false,
                Some(2),
            ),
            (500, &[], ServerError, true, true, None),
            (502, &[], ServerError, true, true, None),
            (
                503,
                &[("retry-after", "4")],
                ServerError,
                true,
                true,
                Some(4),
            ),
            (504, &[], ServerError, true, true, None),
        ];
        for (status, h, outcome, retryable, against, wait) in table {
            let h = {
                let mut m = HeaderMap::new();
                for (k, v) in *h {
                    m.insert(*k, HeaderValue::from_str(v).unwrap());
                }
                m
            };
            let c = classify(StatusCode::from_u16(*status).unwrap(), &h);
            assert_eq!(c.outcome, *outcome, "{status} {h:?}");
            assert_eq!(c.outcome.retryable(), *retryable, "{status} retryable");
            assert_eq!(
                c.outcome.counts_against_circuit(),
                *against,
                "{status} against the circuit"
            );
            assert_eq!(c.retry_after, wait.map(Duration::from_secs), "{status}");
        }
    }

    #[test]
    fn outcomes_without_a_response() {
        use Outcome::*;
        let table = [
            (Timeout, "timeout", true, true),
            (Transport, "transport", true, true),
            (BodyTimeout, "body_timeout", true, true),
            (BodyTooLarge, "body_too_large", false, true),
            (CircuitOpen, "circuit_open", false, false),
        ];
        for (o, label, retryable, against) in table {
            assert_eq!(o.label(), label);
            assert_eq!(o.retryable(), retryable, "{label}");
            assert_eq!(o.counts_against_circuit(), against, "{label}");
        }
        let labels: std::collections::BTreeSet<_> =
            Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len(), "labels are distinct");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        let mut h = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(110) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(
            retry_after(&headers(&[("ratelimit-reset", "30")])),
            Some(Duration::from_secs(30))
        );
        let mut h = HeaderMap::new();
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&epoch.to_string()).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
        for form in ["%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"] {
            let later = (chrono::Utc::now() + chrono::Duration::seconds(150))
                .format(form)
                .to_string();
            let mut h = HeaderMap::new();
            h.insert("x-ratelimit-reset", HeaderValue::from_str(&later).unwrap());
            let d = retry_after(&h).unwrap_or_else(|| panic!("{later} parses"));
            assert!(
                d > Duration::from_secs(80) && d <= Duration::from_secs(150),
                "{later}: {d:?}"
            );
        }
    }
}
