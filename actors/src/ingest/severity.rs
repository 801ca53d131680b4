//! The severity ladder. An alert's severity is read from its `severity` label (case-insensitive)
//! and normalised onto five rungs, lowest first:
//!
//! | rung | label values |
//! |---|---|
//! | `info` | `info`, `informational`, `none`, `debug`, `p5` — and alerts without the label |
//! | `low` | `low`, `p4` |
//! | `medium` | `warning`, `warn`, `medium`, `minor`, `p3` — and any value not listed here |
//! | `high` | `high`, `error`, `major`, `p2` |
//! | `critical` | `critical`, `crit`, `page`, `emergency`, `fatal`, `p1` |
//!
//! `auto_create_incident` requests an incident for a *firing* alert whose rung is at least
//! `min_severity`.

use std::collections::BTreeMap;

use sre_config::Severity;

/// The label read.
pub const SEVERITY_LABEL: &str = "severity";

/// The rung of an alert.
pub fn severity(labels: &BTreeMap<String, String>) -> Severity {
    let Some(raw) = labels.get(SEVERITY_LABEL) else {
        return Severity::Info;
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "critical" | "crit" | "page" | "emergency" | "fatal" | "p1" => Severity::Critical,
        "high" | "error" | "major" | "p2" => Severity::High,
        "low" | "p4" => Severity::Low,
        "info" | "informational" | "none" | "debug" | "p5" => Severity::Info,
        _ => Severity::Medium,
    }
}

/// The rung's name in intents.
pub fn name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder() {
        let l = |v: &str| {
            severity(
                &[("severity".to_string(), v.to_string())]
                    .into_iter()
                    .collect(),
            )
        };
        assert_eq!(l("Warning"), Severity::Medium);
        assert_eq!(l("CRITICAL"), Severity::Critical);
        assert_eq!(l("error"), Severity::High);
        assert_eq!(l("whatever"), Severity::Medium);
        assert_eq!(severity(&BTreeMap::new()), Severity::Info);
        assert!(Severity::Critical > Severity::High && Severity::High > Severity::Medium);
    }
}
