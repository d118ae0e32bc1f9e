//! Image pulls for a pod's containers, as kubelet does them (pure rules): the
//! `imagePullPolicy` with Kubernetes' defaults, whether to pull, and the waiting reason
//! while a pull fails — `ErrImagePull` with the registry's reason, then `ImagePullBackOff`
//! until the next try, with the restart back-off (`--backoff-base` doubling to
//! `--backoff-cap`).

use std::time::{Duration, Instant};

use super::restart::{BackoffPolicy, delay_for};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's policy; when unset (the API defaults it, but an agent may see an
    /// older object), Kubernetes' default: Always for `:latest` or no tag (and no digest),
    /// IfNotPresent otherwise.
    pub fn parse(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => PullPolicy::default_for(image),
        }
    }

    pub fn default_for(image: &str) -> PullPolicy {
        if image.contains('@') {
            return PullPolicy::IfNotPresent;
        }
        let last = image.rsplit('/').next().unwrap_or_default();
        match last.split_once(':').map(|(_, tag)| tag) {
            None | Some("latest") => PullPolicy::Always,
            Some(_) => PullPolicy::IfNotPresent,
        }
    }
}

/// What to do about a container's image before creating the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pull,
    UseLocal,
    /// `Never` and the image is missing: `ErrImageNeverPull`.
    NeverPull,
}

pub fn decide(policy: PullPolicy, present: bool) -> Decision {
    match (policy, present) {
        (PullPolicy::Always, _) => Decision::Pull,
        (PullPolicy::IfNotPresent, false) => Decision::Pull,
        (PullPolicy::Never, false) => Decision::NeverPull,
        (_, true) => Decision::UseLocal,
    }
}

pub fn never_pull_message(image: &str) -> String {
    format!("Container image \"{image}\" is not present with pull policy of Never")
}

/// How long a failed pull shows as `ErrImagePull` before `ImagePullBackOff`: half the
/// back-off, at most 2 s (kubelet shows it until its next sync of the pod).
const ERR_WINDOW_MAX: Duration = Duration::from_secs(2);

/// One container's failing pulls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullBackoff {
    /// Failed pulls in a row.
    failures: u32,
    failed_at: Option<Instant>,
    retry_at: Option<Instant>,
    /// The last failure's message (the registry's reason).
    message: String,
    /// The back-off of the last failure has been announced (BackOff event).
    announced: bool,
}

/// What the container is waiting for, while pulls fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullWait {
    /// Show `ErrImagePull` until the instant given.
    ErrImagePull { message: String, until: Instant },
    /// Show `ImagePullBackOff` until the retry at the instant given; `announce` once per
    /// failure (the BackOff event).
    BackOff {
        message: String,
        retry_at: Instant,
        announce: bool,
    },
    /// Time to pull (again).
    Retry,
}

impl PullBackoff {
    /// Records a failed pull at `now`; returns the wait before the next try.
    pub fn on_failure(
        &mut self,
        now: Instant,
        message: String,
        policy: &BackoffPolicy,
    ) -> Duration {
        self.failures = self.failures.saturating_add(1);
        // The restart back-off's sequence without its free first restart: base, 2×base, …
        let delay = delay_for(self.failures.saturating_add(1), policy);
        self.failed_at = Some(now);
        self.retry_at = Some(now + delay);
        self.message = message;
        self.announced = false;
        delay
    }

    /// A pull succeeded: the next failure starts a fresh streak.
    pub fn on_success(&mut self) {
        *self = PullBackoff::default();
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Where the container stands at `now` (marks the back-off announced when it says to
    /// announce it).
    pub fn wait(&mut self, now: Instant, image: &str) -> PullWait {
        let (Some(failed_at), Some(retry_at)) = (self.failed_at, self.retry_at) else {
            return PullWait::Retry;
        };
        if now >= retry_at {
            return PullWait::Retry;
        }
        let window = ((retry_at - failed_at) / 2).min(ERR_WINDOW_MAX);
        if now < failed_at + window {
            return PullWait::ErrImagePull {
                message: self.message.clone(),
                until: failed_at + window,
            };
        }
        let announce = !self.announced;
        self.announced = true;
        PullWait::BackOff {
            message: format!("Back-off pulling image \"{image}\": {}", self.message),
            retry_at,
            announce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_defaults_like_kubernetes() {
        use PullPolicy::*;
        assert_eq!(PullPolicy::parse(None, "busybox"), Always);
        assert_eq!(PullPolicy::parse(None, "busybox:latest"), Always);
        assert_eq!(PullPolicy::parse(None, "127.0.0.1:5000/busybox"), Always);
        assert_eq!(
            PullPolicy::parse(None, "127.0.0.1:5000/busybox:1.2"),
            IfNotPresent
        );
        assert_eq!(PullPolicy::parse(None, "nginx:1.27"), IfNotPresent);
        assert_eq!(
            PullPolicy::parse(None, "busybox@sha256:0123456789abcdef"),
            IfNotPresent
        );
        assert_eq!(PullPolicy::parse(Some("Never"), "busybox"), Never);
        assert_eq!(PullPolicy::parse(Some("Always"), "nginx:1.27"), Always);
        assert_eq!(
            PullPolicy::parse(Some("IfNotPresent"), "busybox"),
            IfNotPresent
        );
        assert_eq!(PullPolicy::parse(Some("bogus"), "nginx:1"), IfNotPresent);
    }

    #[test]
    fn pull_policies_decide_whether_to_pull() {
        use Decision::*;
        assert_eq!(decide(PullPolicy::Always, true), Pull);
        assert_eq!(decide(PullPolicy::Always, false), Pull);
        assert_eq!(decide(PullPolicy::IfNotPresent, true), UseLocal);
        assert_eq!(decide(PullPolicy::IfNotPresent, false), Pull);
        assert_eq!(decide(PullPolicy::Never, true), UseLocal);
        assert_eq!(decide(PullPolicy::Never, false), NeverPull);
        assert_eq!(
            never_pull_message("app:1"),
            "Container image \"app:1\" is not present with pull policy of Never"
        );
    }

    #[test]
    fn err_image_pull_then_back_off_then_retry() {
        let policy = BackoffPolicy::default();
        let mut b = PullBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.wait(t0, "x"), PullWait::Retry);
        let delay = b.on_failure(t0, "manifest unknown".into(), &policy);
        assert_eq!(delay, Duration::from_secs(10));
        match b.wait(t0 + Duration::from_secs(1), "x") {
            PullWait::ErrImagePull { message, until } => {
                assert_eq!(message, "manifest unknown");
                assert_eq!(until, t0 + Duration::from_secs(2));
            }
            other => panic!("{other:?}"),
        }
        match b.wait(t0 + Duration::from_secs(3), "x") {
            PullWait::BackOff {
                message,
                retry_at,
                announce,
            } => {
                assert_eq!(message, "Back-off pulling image \"x\": manifest unknown");
                assert_eq!(retry_at, t0 + Duration::from_secs(10));
                assert!(announce);
            }
            other => panic!("{other:?}"),
        }
        // Announced once per failure.
        assert!(matches!(
            b.wait(t0 + Duration::from_secs(4), "x"),
            PullWait::BackOff {
                announce: false,
                ..
            }
        ));
        assert_eq!(b.wait(t0 + Duration::from_secs(10), "x"), PullWait::Retry);
    }

    #[test]
    fn back_off_doubles_to_the_cap_and_resets_on_success() {
        let policy = BackoffPolicy::default();
        let mut b = PullBackoff::default();
        let t0 = Instant::now();
        let delays: Vec<u64> = (0..7)
            .map(|_| b.on_failure(t0, "e".into(), &policy).as_secs())
            .collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
        b.on_success();
        assert_eq!(b.failures(), 0);
        assert_eq!(
            b.on_failure(t0, "e".into(), &policy),
            Duration::from_secs(10)
        );
        // Fast flags (tests): the ErrImagePull window is half the back-off.
        let fast = BackoffPolicy {
            base: Duration::from_millis(400),
            cap: Duration::from_secs(2),
            reset_after: Duration::from_secs(600),
        };
        let mut b = PullBackoff::default();
        b.on_failure(t0, "e".into(), &fast);
        assert!(matches!(
            b.wait(t0 + Duration::from_millis(100), "x"),
            PullWait::ErrImagePull { until, .. } if until == t0 + Duration::from_millis(200)
        ));
        assert!(matches!(
            b.wait(t0 + Duration::from_millis(300), "x"),
            PullWait::BackOff { .. }
        ));
    }
}
