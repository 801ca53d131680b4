//! The restart policy: exponential backoff with jitter, and the intensity limit after which a
//! child is parked for a cool-down instead of being restarted again.

use std::time::Duration;

/// How a supervisor restarts its children.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    /// Delay before the first restart in a period.
    pub backoff_min: Duration,
    /// Largest delay.
    pub backoff_max: Duration,
    /// Random spread of each delay as a fraction (0.2 = ±20%).
    pub jitter: f64,
    /// More than this many failures within `period` parks the child.
    pub max_restarts: u32,
    /// The intensity window.
    pub period: Duration,
    /// How long a parked child waits before it is started again.
    pub cool_down: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            jitter: 0.2,
            max_restarts: 5,
            period: Duration::from_secs(60),
            cool_down: Duration::from_secs(300),
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `attempt` (1-based) within the period:
    /// `backoff_min · 2^(attempt-1)`, capped at `backoff_max`, spread by `jitter`.
    /// `unit` is a uniform random number in [0, 1).
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let base = self
            .backoff_min
            .saturating_mul(1u32 << exp.min(31))
            .min(self.backoff_max);
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        base.mul_f64(spread.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_bounds() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff(1, 0.5), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(4, 0.5), Duration::from_millis(800));
        assert_eq!(p.backoff(30, 0.5), Duration::from_secs(30));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(80));
        assert!(p.backoff(1, 0.999_999) < Duration::from_millis(121));
        // With ±20% jitter consecutive delays still grow.
        for a in 1..8 {
            assert!(p.backoff(a, 0.999) < p.backoff(a + 1, 0.0));
        }
    }
}
