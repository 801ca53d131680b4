//! Small value types shared by the configuration sections: secret references, time zones,
//! times of day and cron schedules. Each parses from the YAML string form and reports a
//! precise reason when it cannot, so the loader can name the key and what was expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// `namespace/name` of a Kubernetes-style Secret, resolved from the mounted secrets directory
/// (`<dir>/<namespace>/<name>/<key>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 253
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        match s.split_once('/') {
            Some((ns, name)) if valid(ns) && valid(name) => Ok(SecretRef {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!(
                "invalid secret reference {s:?}: expected \"namespace/name\" (lowercase DNS names)"
            )),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An IANA time zone such as `UTC` or `Europe/Berlin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl FromStr for TimeZone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<chrono_tz::Tz>()
            .map(TimeZone)
            .map_err(|_| format!("unknown time zone {s:?}: expected an IANA name such as \"UTC\" or \"Europe/Berlin\""))
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(chrono_tz::UTC)
    }
}

/// A wall-clock time of day, `HH:MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(pub chrono::NaiveTime);

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        chrono::NaiveTime::parse_from_str(s, "%H:%M")
            .map(TimeOfDay)
            .map_err(|_| format!("invalid time of day {s:?}: expected \"HH:MM\" (24-hour clock)"))
    }
}

/// A five-field cron expression (`*/5 * * * *`), validated with croner.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    /// The expression as written.
    pub expression: String,
    /// The parsed schedule.
    pub cron: croner::Cron,
}

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<croner::Cron>()
            .map(|cron| CronSchedule {
                expression: s.to_owned(),
                cron,
            })
            .map_err(|e| format!("invalid cron schedule {s:?}: {e}"))
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

/// Implements `Deserialize` through `FromStr`, so a bad value's message is the type's own.
macro_rules! deserialize_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(SecretRef, TimeZone, TimeOfDay, CronSchedule);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_ref_parses_and_rejects() {
        let r: SecretRef = "platform/jira-credentials".parse().unwrap();
        assert_eq!(r.namespace, "platform");
        assert_eq!(r.name, "jira-credentials");
        assert!("platform".parse::<SecretRef>().is_err());
        assert!("Platform/x".parse::<SecretRef>().is_err());
        assert!("a/b/c".parse::<SecretRef>().is_err());
    }

    #[test]
    fn timezone_and_time_of_day() {
        assert!("Europe/Berlin".parse::<TimeZone>().is_ok());
        let e = "Mars/Base".parse::<TimeZone>().unwrap_err();
        assert!(e.contains("unknown time zone \"Mars/Base\""), "{e}");
        assert!("09:00".parse::<TimeOfDay>().is_ok());
        assert!("25:00".parse::<TimeOfDay>().is_err());
    }

    #[test]
    fn cron_schedule() {
        assert!("*/5 * * * *".parse::<CronSchedule>().is_ok());
        assert!("every five minutes".parse::<CronSchedule>().is_err());
    }
}
