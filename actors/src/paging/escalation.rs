//! When a page goes out (`paging_integration.escalation`): per severity at once, only inside
//! business hours, or never; and the business-hours calendar itself — `start`..`end` wall-clock
//! time in an IANA time zone on the configured days, daylight-saving changes included.
//!
//! - [`BusinessHours::is_open`] converts the instant to the zone's wall clock and checks the
//!   day and `start <= time < end`.
//! - [`BusinessHours::next_start`] is the first business-day start at or after an instant. A
//!   start time that does not exist on a day (clocks spring forward over it) means the first
//!   instant after the gap; a start time that happens twice (clocks fall back) means the first
//!   of the two.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sre_config::{EscalationPolicy, PageSeverity};
use sre_intents::facts::FactSeverity;

/// Days looked ahead for the next business-day start (one week, and one for the day itself).
const LOOKAHEAD_DAYS: i64 = 8;
/// Longest daylight-saving gap searched past (real gaps are an hour, at most two).
const MAX_GAP_MINUTES: i64 = 24 * 60;

/// The business-hours calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessHours {
    start: NaiveTime,
    end: NaiveTime,
    timezone: Tz,
    /// Business days, indexed by days from Monday.
    days: [bool; 7],
}

impl BusinessHours {
    /// From the configuration.
    pub fn from_config(c: &sre_config::BusinessHours) -> Self {
        BusinessHours::new(
            c.start.0,
            c.end.0,
            c.timezone.0,
            c.business_days().into_iter().map(|d| d.weekday()),
        )
    }

    /// `start`..`end` in `timezone` on `days`.
    pub fn new(
        start: NaiveTime,
        end: NaiveTime,
        timezone: Tz,
        days: impl IntoIterator<Item = chrono::Weekday>,
    ) -> Self {
        let mut set = [false; 7];
        for d in days {
            set[d.num_days_from_monday() as usize] = true;
        }
        BusinessHours {
            start,
            end,
            timezone,
            days: set,
        }
    }

    fn is_business_day(&self, day: chrono::Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }

    /// Whether `at` is inside business hours.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone);
        let time = local.time();
        self.is_business_day(local.weekday())
            && self.start_of(local.date_naive()) <= Some(at)
            && time < self.end
    }

    /// The first business-hours start at or after `at`; `None` only when no day is a business
    /// day (the configuration refuses that).
    pub fn next_start(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = at.with_timezone(&self.timezone).date_naive();
        (0..LOOKAHEAD_DAYS)
            .filter_map(|n| today.checked_add_signed(Duration::days(n)))
            .filter(|d| self.is_business_day(d.weekday()))
            .filter_map(|d| self.start_of(d))
            .find(|start| *start >= at)
    }

    /// The instant business hours start on `date` (whether or not it is a business day).
    fn start_of(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let wall = date.and_time(self.start);
        for minutes in 0..=MAX_GAP_MINUTES {
            let candidate = wall + Duration::minutes(minutes);
            match self.timezone.from_local_datetime(&candidate) {
                LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
                // Inside a spring-forward gap: the first wall-clock minute after it is the
                // instant the clocks jumped.
                LocalResult::None => continue,
            }
        }
        None
    }
}

/// What to do with a new incident's page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Page now.
    Page,
    /// Page at this instant (the next business-hours start).
    Defer(DateTime<Utc>),
    /// Do not page.
    Skip,
}

/// The escalation rules: a policy per severity and the business-hours calendar.
#[derive(Clone, Debug)]
pub struct Escalation {
    policies: sre_config::Escalation,
    hours: BusinessHours,
}

impl Escalation {
    /// From the configuration.
    pub fn from_config(c: &sre_config::Escalation) -> Self {
        Escalation {
            policies: c.clone(),
            hours: BusinessHours::from_config(&c.business_hours),
        }
    }

    /// The calendar.
    pub fn hours(&self) -> &BusinessHours {
        &self.hours
    }

    /// The policy of a severity.
    pub fn policy(&self, severity: FactSeverity) -> EscalationPolicy {
        self.policies.policy(page_severity(severity))
    }

    /// Whether an incident of `severity` pages at `now`, later, or not at all.
    pub fn decide(&self, severity: FactSeverity, now: DateTime<Utc>) -> Decision {
        match self.policy(severity) {
            EscalationPolicy::Immediate => Decision::Page,
            EscalationPolicy::Never => Decision::Skip,
            EscalationPolicy::BusinessHoursOnly if self.hours.is_open(now) => Decision::Page,
            EscalationPolicy::BusinessHoursOnly => match self.hours.next_start(now) {
                Some(at) => Decision::Defer(at),
                None => Decision::Skip,
            },
        }
    }
}

/// The configuration's name of a fact's severity.
pub fn page_severity(s: FactSeverity) -> PageSeverity {
    match s {
        FactSeverity::Critical => PageSeverity::Critical,
        FactSeverity::High => PageSeverity::High,
        FactSeverity::Medium => PageSeverity::Medium,
        FactSeverity::Low => PageSeverity::Low,
        FactSeverity::Info => PageSeverity::Info,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Weekday::*;

    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn weekdays(tz: Tz) -> BusinessHours {
        BusinessHours::new(hm(9, 0), hm(18, 0), tz, [Mon, Tue, Wed, Thu, Fri])
    }

    #[test]
    fn friday_evening_waits_for_monday_morning() {
        let bh = weekdays(chrono_tz::UTC);
        // 2026-12-04 is a Friday.
        assert!(bh.is_open(utc("2026-12-04T17:59:00Z")));
        assert!(!bh.is_open(utc("2026-12-04T18:00:00Z")));
        assert!(!bh.is_open(utc("2026-12-04T18:01:00Z")));
        assert_eq!(
            bh.next_start(utc("2026-12-04T18:01:00Z")),
            Some(utc("2026-12-07T09:00:00Z"))
        );
        assert!(bh.is_open(utc("2026-12-07T09:00:00Z")));
        assert!(!bh.is_open(utc("2026-12-07T08:59:59Z")));
    }

    #[test]
    fn weekends_are_closed_and_early_mornings_wait_for_the_same_day() {
        let bh = weekdays(chrono_tz::UTC);
        // Saturday noon and Sunday noon.
        assert!(!bh.is_open(utc("2026-12-05T12:00:00Z")));
        assert!(!bh.is_open(utc("2026-12-06T12:00:00Z")));
        assert_eq!(
            bh.next_start(utc("2026-12-06T23:59:00Z")),
            Some(utc("2026-12-07T09:00:00Z"))
        );
        // Tuesday 07:00 waits two hours, not a day.
        assert_eq!(
            bh.next_start(utc("2026-12-08T07:00:00Z")),
            Some(utc("2026-12-08T09:00:00Z"))
        );
    }

    #[test]
    fn custom_days_and_every_day() {
        let bh = BusinessHours::new(hm(8, 0), hm(16, 30), chrono_tz::UTC, [Sat, Sun]);
        assert!(!bh.is_open(utc("2026-12-04T12:00:00Z")));
        assert!(bh.is_open(utc("2026-12-05T16:29:00Z")));
        assert!(!bh.is_open(utc("2026-12-05T16:30:00Z")));
        // Monday afternoon → Saturday 08:00.
        assert_eq!(
            bh.next_start(utc("2026-12-07T13:00:00Z")),
            Some(utc("2026-12-12T08:00:00Z"))
        );
        // Sunday after hours → next Saturday.
        assert_eq!(
            bh.next_start(utc("2026-12-06T17:00:00Z")),
            Some(utc("2026-12-12T08:00:00Z"))
        );
        let config: sre_config::BusinessHours =
            serde_norway::from_str("start: \"09:00\"\nend: \"18:00\"\ninclude_weekends: true\n")
                .unwrap();
        let all = BusinessHours::from_config(&config);
        assert!(all.is_open(utc("2026-12-05T10:00:00Z")));
    }

    #[test]
    fn berlin_spring_forward_and_fall_back() {
        let bh = weekdays(chrono_tz::Europe::Berlin);
        // Saturday 2026-03-28 (CET, +01:00); clocks go forward on Sunday 2026-03-29.
        // Monday 2026-03-30 09:00 CEST = 07:00Z.
        assert_eq!(
            bh.next_start(utc("2026-03-27T17:30:00Z")),
            Some(utc("2026-03-30T07:00:00Z"))
        );
        assert!(bh.is_open(utc("2026-03-27T16:59:00Z"))); // Friday 17:59 CET
        assert!(!bh.is_open(utc("2026-03-30T06:59:00Z"))); // Monday 08:59 CEST
        assert!(bh.is_open(utc("2026-03-30T07:00:00Z")));
        // Fall back on Sunday 2026-10-25: Monday 09:00 CET = 08:00Z.
        assert_eq!(
            bh.next_start(utc("2026-10-23T16:01:00Z")),
            Some(utc("2026-10-26T08:00:00Z"))
        );
        assert!(!bh.is_open(utc("2026-10-26T07:30:00Z"))); // 08:30 CET
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        let bh = weekdays(chrono_tz::America::New_York);
        // Clocks go forward on Sunday 2026-03-08: Friday 09:00 EST = 14:00Z, Monday 09:00
        // EDT = 13:00Z.
        assert_eq!(
            bh.next_start(utc("2026-03-06T23:01:00Z")),
            Some(utc("2026-03-09T13:00:00Z"))
        );
        assert!(bh.is_open(utc("2026-03-06T22:59:00Z"))); // Friday 17:59 EST
        assert!(!bh.is_open(utc("2026-03-06T23:01:00Z"))); // Friday 18:01 EST
                                                           // Back on Sunday 2026-11-01: Monday 09:00 EST = 14:00Z.
        assert_eq!(
            bh.next_start(utc("2026-10-30T22:01:00Z")),
            Some(utc("2026-11-02T14:00:00Z"))
        );
        assert!(!bh.is_open(utc("2026-11-02T13:30:00Z")));
    }

    #[test]
    fn a_start_inside_the_spring_forward_gap_is_the_first_instant_after_it() {
        // Every day 02:30–05:00 Berlin time; 02:30 does not exist on 2026-03-29 (02:00 CET
        // jumps to 03:00 CEST at 01:00Z).
        let bh = BusinessHours::new(
            hm(2, 30),
            hm(5, 0),
            chrono_tz::Europe::Berlin,
            [Mon, Tue, Wed, Thu, Fri, Sat, Sun],
        );
        assert_eq!(
            bh.next_start(utc("2026-03-28T23:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        assert!(bh.is_open(utc("2026-03-29T01:00:00Z")));
        assert!(!bh.is_open(utc("2026-03-29T00:59:00Z")));
        // Fall back: 02:30 happens twice on 2026-10-25; the first (CEST, 00:30Z) counts.
        assert_eq!(
            bh.next_start(utc("2026-10-24T23:00:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn policies_per_severity() {
        let c = sre_config::Escalation {
            medium: EscalationPolicy::Immediate,
            ..Default::default()
        };
        let e = Escalation::from_config(&c);
        let saturday = utc("2026-12-05T12:00:00Z");
        assert_eq!(e.decide(FactSeverity::Critical, saturday), Decision::Page);
        assert_eq!(e.decide(FactSeverity::Medium, saturday), Decision::Page);
        assert_eq!(e.decide(FactSeverity::Low, saturday), Decision::Skip);
        assert_eq!(e.decide(FactSeverity::Info, saturday), Decision::Skip);
        assert_eq!(
            e.decide(FactSeverity::High, saturday),
            Decision::Defer(utc("2026-12-07T09:00:00Z"))
        );
        assert_eq!(
            e.decide(FactSeverity::High, utc("2026-12-07T09:00:00Z")),
            Decision::Page
        );
    }
}
