//! SLI windows, as pure functions: which ticks of the schedule are due, the window that ends at
//! a tick, the PromQL of a window, and what a window's good/total amount to.
//!
//! A window ends at a tick of the cron schedule (in its time zone, DST-correct: croner walks
//! wall-clock time in the zone) and starts at the tick before, so consecutive windows tile time
//! without gaps or overlaps even when a day has 23 or 25 hours.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// Why a window's numbers cannot be published.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidWindow {
    /// A count below zero.
    #[error("{which} is negative ({value})")]
    Negative {
        /// `good` or `total`.
        which: &'static str,
        /// The value.
        value: f64,
    },
    /// More good events than events.
    #[error("good ({good}) exceeds total ({total}): the queries do not measure the same events")]
    RatioAboveOne {
        /// Good.
        good: f64,
        /// Total.
        total: f64,
    },
    /// Not a number (or infinite).
    #[error("{which} is not a finite number ({value})")]
    NotFinite {
        /// `good` or `total`.
        which: &'static str,
        /// The value.
        value: f64,
    },
    /// The schedule has no tick before this one.
    #[error("the schedule has no tick before {0}")]
    NoStart(DateTime<Utc>),
}

/// A window's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// `good / total`, none without data.
    pub ratio: Option<f64>,
    /// Share of the window's error budget spent, none without data.
    pub budget_consumed: Option<f64>,
}

impl Evaluation {
    /// Whether the window had no data.
    pub fn no_data(&self) -> bool {
        self.ratio.is_none()
    }
}

/// The schedule in its zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// `cron` evaluated in `tz`.
    pub fn new(cron: Cron, tz: Tz) -> Self {
        Schedule { cron, tz }
    }

    /// The last tick at or before `t`.
    pub fn at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The first tick strictly after `t`.
    pub fn after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The tick strictly before `t`: where the window ending at `t` starts.
    pub fn before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The ticks in `(after, until]`, oldest first, at most `max`.
    pub fn between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < max {
            match self.after(t) {
                Some(next) if next <= until => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }
}

/// `query` with `$window` replaced by the window's length in seconds (`300s`).
pub fn render(query: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let secs = (end - start).num_seconds().max(1);
    query.replace("$window", &format!("{secs}s"))
}

/// What `good` and `total` (none: the query returned no series) amount to for `objective`
/// (percent).
pub fn evaluate(
    good: Option<f64>,
    total: Option<f64>,
    objective: f64,
) -> Result<Evaluation, InvalidWindow> {
    for (which, v) in [("good", good), ("total", total)] {
        if let Some(value) = v {
            if !value.is_finite() {
                return Err(InvalidWindow::NotFinite { which, value });
            }
            if value < 0.0 {
                return Err(InvalidWindow::Negative { which, value });
            }
        }
    }
    let (Some(good), Some(total)) = (good, total) else {
        return Ok(Evaluation {
            ratio: None,
            budget_consumed: None,
        });
    };
    if total == 0.0 {
        return Ok(Evaluation {
            ratio: None,
            budget_consumed: None,
        });
    }
    if good > total {
        return Err(InvalidWindow::RatioAboveOne { good, total });
    }
    let ratio = good / total;
    let budget = 1.0 - objective / 100.0;
    Ok(Evaluation {
        ratio: Some(ratio),
        budget_consumed: Some((1.0 - ratio) / budget),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_tile_time_across_both_dst_changes() {
        // Daily at 09:00 in New York: the windows around the DST changes are 23 and 25 hours.
        let s = Schedule::new("0 9 * * *".parse().unwrap(), chrono_tz::America::New_York);
        let spring = utc("2026-03-08T13:00:00Z"); // 09:00 EDT
        assert_eq!(
            s.at_or_before(spring + chrono::Duration::minutes(5)),
            Some(spring)
        );
        assert_eq!(s.before(spring), Some(utc("2026-03-07T14:00:00Z"))); // 09:00 EST
        assert_eq!((spring - s.before(spring).unwrap()).num_hours(), 23);
        let fall = utc("2026-11-01T14:00:00Z"); // 09:00 EST
        assert_eq!((fall - s.before(fall).unwrap()).num_hours(), 25);
        // Every 30 minutes in Berlin through the night the clocks go back: 2:00–3:00 happens
        // twice and each half hour is a window of its own.
        let s = Schedule::new("*/30 * * * *".parse().unwrap(), chrono_tz::Europe::Berlin);
        let ticks = s.between(
            utc("2026-10-24T23:30:00Z"),
            utc("2026-10-25T02:00:00Z"),
            100,
        );
        assert_eq!(ticks.len(), 5, "{ticks:?}");
        for w in ticks.windows(2) {
            assert_eq!((w[1] - w[0]).num_minutes(), 30, "{ticks:?}");
        }
        // And the night they go forward, 2:00–3:00 does not exist: no window is invented.
        let ticks = s.between(
            utc("2026-03-28T23:30:00Z"),
            utc("2026-03-29T02:00:00Z"),
            100,
        );
        assert_eq!(ticks.len(), 5, "{ticks:?}");
        for w in ticks.windows(2) {
            assert_eq!((w[1] - w[0]).num_minutes(), 30, "{ticks:?}");
        }
    }

    #[test]
    fn the_window_length_replaces_the_placeholder() {
        let end = Utc.with_ymd_and_hms(2026, 12, 1, 10, 5, 0).unwrap();
        let start = end - chrono::Duration::minutes(5);
        assert_eq!(
            render(
                "sum(increase(x[$window])) / sum(increase(y[$window]))",
                start,
                end
            ),
            "sum(increase(x[300s])) / sum(increase(y[300s]))"
        );
    }

    #[test]
    fn no_data_is_no_data_and_impossible_numbers_are_errors() {
        let e = evaluate(Some(9993.0), Some(10_000.0), 99.9).unwrap();
        assert!((e.ratio.unwrap() - 0.9993).abs() < 1e-12);
        assert!((e.budget_consumed.unwrap() - 0.7).abs() < 1e-9);
        assert!(evaluate(None, Some(10.0), 99.9).unwrap().no_data());
        assert!(evaluate(Some(0.0), Some(0.0), 99.9).unwrap().no_data());
        assert!(evaluate(None, None, 99.9).unwrap().no_data());
        assert!(matches!(
            evaluate(Some(11.0), Some(10.0), 99.9),
            Err(InvalidWindow::RatioAboveOne { .. })
        ));
        assert!(matches!(
            evaluate(Some(-1.0), Some(10.0), 99.9),
            Err(InvalidWindow::Negative { which: "good", .. })
        ));
        assert!(matches!(
            evaluate(Some(f64::NAN), Some(10.0), 99.9),
            Err(InvalidWindow::NotFinite { .. })
        ));
    }
}
