//! Argument helpers shared by the tools: typed parsing of a call's JSON arguments (an error
//! names the offending field), and the time and duration forms every `obs.*` tool accepts.
//!
//! The gate checks arguments against each tool's schema before a call; the tools parse them
//! again into typed structs (unknown fields refused), so a tool called some other way (a test,
//! a future door) never runs on arguments it does not understand.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::tool::ToolError;

/// `args` as `T`; an error says which field is wrong and why.
pub fn parse<T: DeserializeOwned>(args: &Value) -> Result<T, ToolError> {
    if !args.is_object() {
        return Err(ToolError::InvalidArguments(
            "arguments must be a JSON object".into(),
        ));
    }
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ToolError::InvalidArguments(inner.to_string())
        } else {
            ToolError::InvalidArguments(format!("{path}: {inner}"))
        }
    })
}

/// A point in time: `now`, `now-<duration>` (`now-15m`, `now-2h30m`), or RFC 3339
/// (`2025-01-01T12:00:00Z`).
pub fn time(field: &str, s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ToolError> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(ago) = s.strip_prefix("now-") {
        let d = humantime::parse_duration(ago.trim()).map_err(|e| {
            ToolError::InvalidArguments(format!("{field}: {s:?} is not now-<duration>: {e}"))
        })?;
        let d = chrono::Duration::from_std(d)
            .map_err(|_| ToolError::InvalidArguments(format!("{field}: {s:?} is too far back")))?;
        return now
            .checked_sub_signed(d)
            .ok_or_else(|| ToolError::InvalidArguments(format!("{field}: {s:?} is too far back")));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ToolError::InvalidArguments(format!(
                "{field}: {s:?} is not now, now-<duration> or an RFC 3339 time"
            ))
        })
}

/// A duration such as `30s`, `5m`, `1h30m`.
pub fn duration(field: &str, s: &str) -> Result<Duration, ToolError> {
    humantime::parse_duration(s.trim())
        .map_err(|e| ToolError::InvalidArguments(format!("{field}: {s:?} is not a duration: {e}")))
}

/// `v` when it is within `1..=max` (as the schemas say); absent stays absent.
pub fn limit<T>(field: &str, v: Option<T>, max: T) -> Result<Option<T>, ToolError>
where
    T: Copy + PartialOrd + From<u8> + std::fmt::Display,
{
    match v {
        Some(n) if n < T::from(1) || n > max => Err(ToolError::InvalidArguments(format!(
            "{field}: {n} is not between 1 and {max}"
        ))),
        v => Ok(v),
    }
}

/// The JSON Schema of a time argument.
pub fn time_schema(what: &str, default: &str) -> Value {
    serde_json::json!({
        "type": "string",
        "minLength": 1,
        "description": format!(
            "{what}: now, now-<duration> (now-15m, now-2h) or RFC 3339 (2025-01-01T12:00:00Z); default {default}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct A {
        name: String,
        limit: Option<u32>,
    }

    #[test]
    fn parse_names_the_field() {
        assert!(parse::<A>(&json!({"name": "x"})).is_ok());
        let e = parse::<A>(&json!({"name": "x", "limit": "ten"})).unwrap_err();
        assert!(
            matches!(&e, ToolError::InvalidArguments(m) if m.starts_with("limit:")),
            "{e}"
        );
        let e = parse::<A>(&json!({"name": "x", "other": 1})).unwrap_err();
        assert!(
            matches!(&e, ToolError::InvalidArguments(m) if m.contains("other")),
            "{e}"
        );
        assert!(parse::<A>(&json!([1])).is_err());
    }

    #[test]
    fn times() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time("t", "now", now).unwrap(), now);
        assert_eq!(
            time("t", "now-90m", now).unwrap().to_rfc3339(),
            "2025-01-01T10:30:00+00:00"
        );
        assert_eq!(
            time("t", "2025-01-01T11:00:00+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2025-01-01T10:00:00+00:00"
        );
        for bad in ["yesterday", "now-", "now-abc", "12:00"] {
            assert!(time("t", bad, now).is_err(), "{bad}");
        }
        assert_eq!(duration("d", "1m30s").unwrap(), Duration::from_secs(90));
        assert!(duration("d", "fast").is_err());
    }
}
