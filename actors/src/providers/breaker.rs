//! The circuit breaker state machine, free of actors and I/O so it can be tested exactly.
//!
//! - **Closed**: calls pass; outcomes are kept for a sliding time `window`. When the window
//!   holds at least `minimum_calls` outcomes and the failure rate reaches
//!   `failure_rate_threshold`, the circuit opens.
//! - **Open**: calls fail fast for `open_duration`, then the circuit turns half-open.
//! - **HalfOpen**: at most `half_open_trials` trial calls run at once; one failure opens the
//!   circuit again, `half_open_trials` successes close it.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Breaker settings (`supervision.circuit`).
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Failure rate in (0, 1] that opens the circuit.
    pub failure_rate_threshold: f64,
    /// Sliding window of outcomes.
    pub window: Duration,
    /// Fewer outcomes in the window never open it.
    pub minimum_calls: u32,
    /// How long the circuit stays open.
    pub open_duration: Duration,
    /// Trial calls in half-open (concurrent limit and successes needed).
    pub half_open_trials: u32,
}

impl From<&sre_config::CircuitConfig> for BreakerConfig {
    fn from(c: &sre_config::CircuitConfig) -> Self {
        BreakerConfig {
            failure_rate_threshold: c.failure_rate_threshold,
            window: c.window,
            minimum_calls: c.minimum_calls,
            open_duration: c.open_duration,
            half_open_trials: c.half_open_trials,
        }
    }
}

/// The externally visible state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls pass.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few trial calls pass.
    HalfOpen,
}

impl CircuitState {
    /// The value of `sre_circuit_state`: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }
    /// The `to` label of `sre_circuit_transitions_total`.
    pub fn label(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// Permission to make one call; hand it back with the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// A call in the closed state.
    Normal,
    /// A trial call in the half-open state.
    Trial,
}

/// The circuit refused the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// How long until a call may be tried (zero when only the trial slots are busy).
    pub retry_in: Duration,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// The state machine.
#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    phase: Phase,
    outcomes: VecDeque<(Instant, bool)>,
    failures: u32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            phase: Phase::Closed,
            outcomes: VecDeque::new(),
            failures: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Outcomes in the window and the failures among them.
    pub fn window_counts(&self) -> (u32, u32) {
        (self.outcomes.len() as u32, self.failures)
    }

    /// Turns an open circuit half-open once its time is up; returns the new state if it changed.
    pub fn poll(&mut self, now: Instant) -> Option<CircuitState> {
        match self.phase {
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                };
                Some(CircuitState::HalfOpen)
            }
            _ => None,
        }
    }

    /// Asks to make a call. The second value is a state change, if one happened.
    pub fn try_acquire(
        &mut self,
        now: Instant,
    ) -> (Result<Permit, Rejected>, Option<CircuitState>) {
        let changed = self.poll(now);
        let verdict = match &mut self.phase {
            Phase::Closed => Ok(Permit::Normal),
            Phase::Open { until } => Err(Rejected {
                retry_in: until.saturating_duration_since(now),
            }),
            Phase::HalfOpen { in_flight, .. } if *in_flight < self.cfg.half_open_trials => {
                *in_flight += 1;
                Ok(Permit::Trial)
            }
            Phase::HalfOpen { .. } => Err(Rejected {
                retry_in: Duration::ZERO,
            }),
        };
        (verdict, changed)
    }

    /// Records a call's outcome; returns the new state if it changed.
    pub fn record(&mut self, now: Instant, permit: Permit, success: bool) -> Option<CircuitState> {
        match (&mut self.phase, permit) {
            (Phase::Closed, Permit::Normal) => {
                self.outcomes.push_back((now, success));
                if !success {
                    self.failures += 1;
                }
                self.prune(now);
                let (calls, failures) = self.window_counts();
                let rate = f64::from(failures) / f64::from(calls.max(1));
                if calls >= self.cfg.minimum_calls && rate >= self.cfg.failure_rate_threshold {
                    return Some(self.open(now));
                }
                None
            }
            (
                Phase::HalfOpen {
                    in_flight,
                    successes,
                },
                Permit::Trial,
            ) => {
                *in_flight = in_flight.saturating_sub(1);
                if !success {
                    return Some(self.open(now));
                }
                *successes += 1;
                if *successes >= self.cfg.half_open_trials {
                    self.phase = Phase::Closed;
                    self.outcomes.clear();
                    self.failures = 0;
                    return Some(CircuitState::Closed);
                }
                None
            }
            // A call that began before the last state change says nothing about the new state.
            _ => None,
        }
    }

    fn open(&mut self, now: Instant) -> CircuitState {
        self.phase = Phase::Open {
            until: now + self.cfg.open_duration,
        };
        self.outcomes.clear();
        self.failures = 0;
        CircuitState::Open
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(t, ok)) = self.outcomes.front() {
            if now.duration_since(t) < self.cfg.window {
                break;
            }
            self.outcomes.pop_front();
            if !ok {
                self.failures -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_rate_threshold: 0.5,
            window: Duration::from_secs(60),
            minimum_calls: 4,
            open_duration: Duration::from_secs(30),
            half_open_trials: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold_only_after_minimum_calls() {
        let mut b = Breaker::new(cfg());
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                b.record(t, Permit::Normal, false),
                None,
                "below minimum_calls"
            );
        }
        assert_eq!(b.record(t, Permit::Normal, false), Some(CircuitState::Open));
        let (v, _) = b.try_acquire(t + Duration::from_secs(10));
        assert_eq!(
            v,
            Err(Rejected {
                retry_in: Duration::from_secs(20)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn old_outcomes_slide_out_of_the_window() {
        let mut b = Breaker::new(cfg());
        let t = Instant::now();
        b.record(t, Permit::Normal, false);
        b.record(t, Permit::Normal, false);
        let later = t + Duration::from_secs(61);
        b.record(later, Permit::Normal, false);
        assert_eq!(b.window_counts(), (1, 1));
        b.record(later, Permit::Normal, true);
        b.record(later, Permit::Normal, true);
        assert_eq!(b.record(later, Permit::Normal, true), None, "1 of 4 failed");
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_limits_trials_then_closes_or_reopens() {
        let mut b = Breaker::new(cfg());
        let t = Instant::now();
        for _ in 0..4 {
            b.record(t, Permit::Normal, false);
        }
        let t2 = t + Duration::from_secs(30);
        let (p1, changed) = b.try_acquire(t2);
        assert_eq!(changed, Some(CircuitState::HalfOpen));
        assert_eq!(p1, Ok(Permit::Trial));
        assert_eq!(b.try_acquire(t2).0, Ok(Permit::Trial));
        assert_eq!(
            b.try_acquire(t2).0,
            Err(Rejected {
                retry_in: Duration::ZERO
            }),
            "only two trials"
        );
        assert_eq!(b.record(t2, Permit::Trial, true), None);
        assert_eq!(
            b.record(t2, Permit::Trial, true),
            Some(CircuitState::Closed)
        );

        for _ in 0..4 {
            b.record(t2, Permit::Normal, false);
        }
        let t3 = t2 + Duration::from_secs(30);
        assert_eq!(b.try_acquire(t3).0, Ok(Permit::Trial));
        assert_eq!(b.record(t3, Permit::Trial, false), Some(CircuitState::Open));
        // A straggler from the closed period changes nothing.
        assert_eq!(b.record(t3, Permit::Normal, true), None);
        assert_eq!(b.state(), CircuitState::Open);
    }
}
