//! The retry schedule every outbound caller shares (the [`UpstreamClient`](super::UpstreamClient)
//! and the Kubernetes layer): exponential backoff with jitter from `backoff_min` to
//! `backoff_max`, at most `max_attempts` attempts, and a wait the upstream asked for
//! (`Retry-After` and friends) honoured when it is longer than the backoff — unless it exceeds
//! `max_retry_after`, which ends the call at once instead of parking the caller.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use super::client::CallPolicy;

/// Why no further attempt is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// Every attempt was made.
    Exhausted,
    /// The upstream asked for a longer wait than `max_retry_after`.
    WaitTooLong(Duration),
}

/// The delays between the attempts of one call.
#[derive(Debug)]
pub struct RetrySchedule {
    delays: ExponentialBackoff,
    max_retry_after: Duration,
}

impl RetrySchedule {
    /// The schedule of one call under `policy`.
    pub fn new(policy: &CallPolicy) -> Self {
        RetrySchedule {
            delays: ExponentialBuilder::default()
                .with_min_delay(policy.backoff_min)
                .with_max_delay(policy.backoff_max)
                .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
                .with_jitter()
                .build(),
            max_retry_after: policy.max_retry_after,
        }
    }

    /// The wait before the next attempt, given the wait the upstream asked for.
    pub fn next_delay(&mut self, asked: Option<Duration>) -> Result<Duration, GiveUp> {
        let backoff = self.delays.next().ok_or(GiveUp::Exhausted)?;
        match asked {
            Some(wait) if wait > self.max_retry_after => Err(GiveUp::WaitTooLong(wait)),
            Some(wait) => Ok(wait.max(backoff)),
            None => Ok(backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_secs(1),
            max_attempts,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn bounded_attempts_and_the_asked_wait_within_limits() {
        let mut s = RetrySchedule::new(&policy(3));
        let d = s.next_delay(None).unwrap();
        assert!(
            d >= Duration::from_millis(100) && d <= Duration::from_secs(2),
            "{d:?}"
        );
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(7))).unwrap(),
            Duration::from_secs(7)
        );
        assert_eq!(s.next_delay(None), Err(GiveUp::Exhausted));

        let mut s = RetrySchedule::new(&policy(3));
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(11))),
            Err(GiveUp::WaitTooLong(Duration::from_secs(11)))
        );
        assert_eq!(
            RetrySchedule::new(&policy(1)).next_delay(None),
            Err(GiveUp::Exhausted)
        );
    }
}
