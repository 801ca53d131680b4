//! The circuit breaker state machine, free of actors and I/O so it can be tested exactly.
//!
//! - **Closed**: calls pass; outcomes are kept for a sliding time `window`. When the window
//!   holds at least `minimum_calls` outcomes and the failure rate reaches
//!   `failure_rate_threshold`, the circuit opens.
//! - **Open**: calls fail fast for `open_duration`, then the circuit turns half-open.
//! - **HalfOpen**: at most `half_open_trials` trial calls run at once; one failure opens the
//!   circuit again, `half_open_trials` successes close it.
//!
//! Every permit carries the *generation* of the state it was granted in (a counter bumped on
//! each state change), so an outcome or release that arrives after the state changed says
//! nothing about the new state. A permit whose call never reported an outcome (the call was
//! cancelled) is [released](Breaker::release): it counts as neither success nor failure, and
//! frees its half-open trial slot, so a circuit can never stay half-open with every slot held
//! by calls that no longer exist.

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

/// Permission to make one call; hand it back with the outcome, or release it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// A call in the closed state.
    Normal {
        /// The generation of the state it was granted in.
        generation: u64,
    },
    /// A trial call in the half-open state.
    Trial {
        /// The generation of the state it was granted in.
        generation: u64,
    },
}

impl Permit {
    fn generation(self) -> u64 {
        match self {
            Permit::Normal { generation } | Permit::Trial { generation } => generation,
        }
    }
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
    generation: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            phase: Phase::Closed,
            outcomes: VecDeque::new(),
            failures: 0,
            generation: 0,
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

    /// Trial calls running now (0 unless half-open).
    pub fn trials_in_flight(&self) -> u32 {
        match self.phase {
            Phase::HalfOpen { in_flight, .. } => in_flight,
            _ => 0,
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
                self.enter(Phase::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                });
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
        let generation = self.generation;
        let verdict = match &mut self.phase {
            Phase::Closed => Ok(Permit::Normal { generation }),
            Phase::Open { until } => Err(Rejected {
                retry_in: until.saturating_duration_since(now),
            }),
            Phase::HalfOpen { in_flight, .. } if *in_flight < self.cfg.half_open_trials => {
                *in_flight += 1;
                Ok(Permit::Trial { generation })
            }
            Phase::HalfOpen { .. } => Err(Rejected {
                retry_in: Duration::ZERO,
            }),
        };
        (verdict, changed)
    }

    /// Records a call's outcome; returns the new state if it changed.
    pub fn record(&mut self, now: Instant, permit: Permit, success: bool) -> Option<CircuitState> {
        if permit.generation() != self.generation {
            // A call that began before the last state change says nothing about the new state.
            return None;
        }
        match (&mut self.phase, permit) {
            (Phase::Closed, Permit::Normal { .. }) => {
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
                Permit::Trial { .. },
            ) => {
                *in_flight = in_flight.saturating_sub(1);
                if !success {
                    return Some(self.open(now));
                }
                *successes += 1;
                if *successes >= self.cfg.half_open_trials {
                    self.enter(Phase::Closed);
                    return Some(CircuitState::Closed);
                }
                None
            }
            _ => None,
        }
    }

    /// Gives back the permit of a call that ended without an outcome (it was cancelled): no
    /// success, no failure, but its trial slot is free again.
    pub fn release(&mut self, permit: Permit) {
        if permit.generation() != self.generation {
            return;
        }
        if let (Phase::HalfOpen { in_flight, .. }, Permit::Trial { .. }) = (&mut self.phase, permit)
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn open(&mut self, now: Instant) -> CircuitState {
        self.enter(Phase::Open {
            until: now + self.cfg.open_duration,
        });
        CircuitState::Open
    }

    /// Changes state: a new generation with an empty window.
    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
        self.outcomes.clear();
        self.failures = 0;
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

    /// A permit for a call in the closed state.
    fn normal(b: &mut Breaker, t: Instant) -> Permit {
        b.try_acquire(t).0.expect("closed")
    }

    fn fail_closed(b: &mut Breaker, t: Instant, n: usize) -> Option<CircuitState> {
        let mut last = None;
        for _ in 0..n {
            let p = normal(b, t);
            last = b.record(t, p, false);
        }
        last
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold_only_after_minimum_calls() {
        let mut b = Breaker::new(cfg());
        let t = Instant::now();
        assert_eq!(fail_closed(&mut b, t, 3), None, "below minimum_calls");
        assert_eq!(fail_closed(&mut b, t, 1), Some(CircuitState::Open));
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
        fail_closed(&mut b, t, 2);
        let later = t + Duration::from_secs(61);
        fail_closed(&mut b, later, 1);
        assert_eq!(b.window_counts(), (1, 1));
        for _ in 0..2 {
            let p = normal(&mut b, later);
            b.record(later, p, true);
        }
        let p = normal(&mut b, later);
        assert_eq!(b.record(later, p, true), None, "1 of 4 failed");
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_limits_trials_then_closes_or_reopens() {
        let mut b = Breaker::new(cfg());
        let t = Instant::now();
        let straggler = normal(&mut b, t);
        fail_closed(&mut b, t, 4);
        let t2 = t + Duration::from_secs(30);
        let (p1, changed) = b.try_acquire(t2);
        assert_eq!(changed, Some(CircuitState::HalfOpen));
        let p1 = p1.unwrap();
        assert!(matches!(p1, Permit::Trial { .. }));
        let p2 = b.try_acquire(t2).0.unwrap();
        assert_eq!(
            b.try_acquire(t2).0,
            Err(Rejected {
                retry_in: Duration::ZERO
            }),
            "only two trials"
        );
        // A call granted while closed says nothing about the half-open state.
        assert_eq!(b.record(t2, straggler, false), None);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.record(t2, p1, true), None);
        assert_eq!(b.record(t2, p2, true), Some(CircuitState::Closed));

        fail_closed(&mut b, t2, 4);
        let t3 = t2 + Duration::from_secs(30);
        let p = b.try_acquire(t3).0.unwrap();
        assert_eq!(b.record(t3, p, false), Some(CircuitState::Open));
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_trial_frees_its_slot_and_counts_as_nothing() {
        let mut b = Breaker::new(cfg());
        let t = Instant::now();
        fail_closed(&mut b, t, 4);
        let t2 = t + Duration::from_secs(30);
        let p1 = b.try_acquire(t2).0.unwrap();
        let p2 = b.try_acquire(t2).0.unwrap();
        assert!(b.try_acquire(t2).0.is_err(), "both slots held");
        b.release(p1);
        assert_eq!(b.trials_in_flight(), 1);
        assert_eq!(b.state(), CircuitState::HalfOpen, "a release is no failure");
        let p3 = b.try_acquire(t2).0.expect("the released slot is free");
        assert_eq!(b.record(t2, p2, true), None, "a release is no success");
        assert_eq!(b.record(t2, p3, true), Some(CircuitState::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_trial_release_leaves_a_later_half_open_alone() {
        let mut b = Breaker::new(cfg());
        let t = Instant::now();
        fail_closed(&mut b, t, 4);
        let t2 = t + Duration::from_secs(30);
        let stale = b.try_acquire(t2).0.unwrap();
        let failing = b.try_acquire(t2).0.unwrap();
        assert_eq!(b.record(t2, failing, false), Some(CircuitState::Open));
        let t3 = t2 + Duration::from_secs(30);
        let p = b.try_acquire(t3).0.unwrap();
        b.release(stale);
        b.record(t3, stale, true);
        assert_eq!(
            b.trials_in_flight(),
            1,
            "the new trial still holds its slot"
        );
        assert_eq!(b.record(t3, p, true), None, "one success of two");
    }
}
