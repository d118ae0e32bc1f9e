//! When an exited container runs again: the pod's restartPolicy, and Kubernetes' crash-loop
//! back-off (the first restart at once, then base, 2×base, … up to the cap; a container that
//! ran long enough before exiting starts a fresh streak).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(policy: Option<&str>) -> RestartPolicy {
        match policy {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` runs again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// A container that ran at least this long before exiting restarts without delay, and
    /// its streak starts over.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// One container's crash streak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Exits in a row, each after a short run.
    streak: u32,
}

impl Backoff {
    /// Records an exit after running for `ran` and returns how long to wait before
    /// starting the container again.
    pub fn on_exit(&mut self, ran: Duration, policy: &BackoffPolicy) -> Duration {
        if ran >= policy.reset_after {
            self.streak = 0;
        }
        self.streak += 1;
        delay_for(self.streak, policy)
    }

    pub fn streak(&self) -> u32 {
        self.streak
    }
}

/// The wait before restart number `streak` of a streak: none for the first, then base,
/// doubling, capped.
pub fn delay_for(streak: u32, policy: &BackoffPolicy) -> Duration {
    if streak <= 1 {
        return Duration::ZERO;
    }
    let doublings = (streak - 2).min(30);
    policy
        .base
        .checked_mul(1u32 << doublings)
        .unwrap_or(policy.cap)
        .min(policy.cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_decide_by_exit_code() {
        assert!(RestartPolicy::Always.restarts(0));
        assert!(RestartPolicy::Always.restarts(1));
        assert!(!RestartPolicy::OnFailure.restarts(0));
        assert!(RestartPolicy::OnFailure.restarts(137));
        assert!(!RestartPolicy::Never.restarts(1));
        assert_eq!(RestartPolicy::parse(None), RestartPolicy::Always);
        assert_eq!(RestartPolicy::parse(Some("Never")), RestartPolicy::Never);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let policy = BackoffPolicy::default();
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8)
            .map(|_| b.on_exit(short, &policy).as_secs())
            .collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_long_run_resets_the_streak() {
        let policy = BackoffPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            reset_after: Duration::from_secs(5),
        };
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.on_exit(Duration::ZERO, &policy);
        }
        assert_eq!(b.streak(), 4);
        assert_eq!(b.on_exit(Duration::from_secs(5), &policy), Duration::ZERO);
        assert_eq!(
            b.on_exit(Duration::ZERO, &policy),
            Duration::from_millis(100)
        );
    }
}
