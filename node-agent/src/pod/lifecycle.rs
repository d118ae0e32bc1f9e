//! The pure half of the pod worker, split as openraft splits its engine from its runtime:
//! these functions look at a pod's slots (one per container, across its restarts), what
//! the runtime reported and the time, change the slots and return [`Action`]s. They decide
//! restarts and back-off, pulls and their back-off, what a probe verdict does, and the
//! order of deletion; `worker.rs` performs the actions (runtime calls, status writes,
//! sleeps) and feeds the results back. No I/O and no clock here: `now` is an argument.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use skiff_api::types::{Container, Pod};

use super::pull::{Decision, PullBackoff, PullPolicy, PullWait, decide, never_pull_message};
use super::restart::{Backoff, BackoffPolicy, RestartPolicy};
use super::status::{ContainerView, Current, Ended};
use crate::runtime::{ContainerInfo, ContainerState, SandboxInfo};

/// How often running containers are looked at for exits.
pub const POLL: Duration = Duration::from_millis(100);

/// How long a pod that cannot be set up (sandbox, image never pulled) waits before trying
/// again.
pub const RETRY: Duration = Duration::from_secs(2);

/// Something for the runner to do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record an event about the pod.
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
    /// Stop the slot's probes.
    StopProbes,
    /// Start the slot's probes against its new instance.
    StartProbes {
        instance: String,
    },
    /// Forget an exited instance in the runtime, and as the pod index's current one.
    RemoveContainer {
        id: String,
    },
    /// Forget an instance that never ran (the pod index never knew it).
    DiscardContainer {
        id: String,
    },
    /// Stop a running instance in the background; its exit is then seen like any other.
    StopContainer {
        id: String,
        grace: Duration,
    },
    /// Make the new instance the pod index's current one, with its log file.
    Register {
        instance: ContainerInfo,
    },
    /// Pull the slot's image in the background.
    Pull {
        image: String,
    },
    /// Stop these containers together (SIGTERM, SIGKILL after `grace`), waiting for all.
    StopContainers {
        ids: Vec<String>,
        grace: Duration,
    },
    RemoveSandbox {
        id: String,
    },
    /// Give the pod's address back to the pod network.
    DetachNetwork,
    /// Drop the pod from the pod index (the agent's API no longer finds it).
    Forget {
        namespace: String,
        name: String,
    },
    /// Everything is stopped: let the pod leave the API.
    ConfirmDeletion {
        namespace: String,
        name: String,
    },
}

fn event(type_: &'static str, reason: &'static str, message: String) -> Action {
    Action::Event {
        type_,
        reason,
        message,
    }
}

/// What a slot needs next, once its actions are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the next poll (running, or exited for good).
    Idle,
    /// Look again after this long, if sooner than the poll (back-off, pull under way).
    Wait(Duration),
    /// Create and start the next instance (after the image step with an image runtime).
    Start,
}

/// What a probe found, for one container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub container: String,
    /// The container instance the verdict is about (stale results are dropped).
    pub instance: String,
    pub kind: ProbeKind,
    pub passing: bool,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
}

/// One container of the pod, across its restarts.
#[derive(Debug, Clone)]
pub struct Slot {
    pub spec: Container,
    /// The runtime's container of the current attempt.
    pub instance: Option<ContainerInfo>,
    /// Attempts started so far (the next attempt's number).
    pub attempts: u32,
    pub backoff: Backoff,
    /// Set while waiting out a back-off: when, and the delay (for the status message).
    pub restart_at: Option<(Instant, u64)>,
    pub last: Option<Ended>,
    /// Exited for good.
    pub done: Option<Ended>,
    pub ready: bool,
    /// Why it cannot start, as a waiting reason and message.
    pub failing: Option<(String, String)>,
    /// When the pull of its image under way started (the runner holds the task).
    pub pulling_since: Option<Instant>,
    /// Failed pulls and their back-off.
    pub pull_backoff: PullBackoff,
}

pub fn ended_of(info: &ContainerInfo) -> Option<Ended> {
    match &info.state {
        ContainerState::Exited {
            exit_code,
            signal,
            started_at,
            finished_at,
            reason,
            message,
        } => Some(Ended {
            container_id: info.id.clone(),
            exit_code: *exit_code,
            signal: *signal,
            reason: reason.clone(),
            message: message.clone(),
            started_at: *started_at,
            finished_at: *finished_at,
        }),
        _ => None,
    }
}

impl Slot {
    pub fn new(spec: Container) -> Slot {
        Slot {
            spec,
            instance: None,
            attempts: 0,
            backoff: Backoff::default(),
            restart_at: None,
            last: None,
            done: None,
            ready: false,
            failing: None,
            pulling_since: None,
            pull_backoff: PullBackoff::default(),
        }
    }

    pub fn restart_count(&self) -> i32 {
        self.attempts.saturating_sub(1) as i32
    }

    /// After an agent restart: the latest instance the sandbox holds of this container
    /// becomes the current one, and the attempts count on from it.
    pub fn adopt(&mut self, existing: &[ContainerInfo]) {
        let latest = existing
            .iter()
            .filter(|c| c.name == self.spec.name)
            .max_by_key(|c| c.attempt);
        if let Some(latest) = latest {
            self.attempts = latest.attempt + 1;
            self.instance = Some(latest.clone());
        }
    }

    /// The runtime's latest word on the current instance (None: it does not know it). An
    /// instance that exited is removed and, by `policy`, restarted after the back-off or
    /// done for good.
    pub fn observe(
        &mut self,
        status: Option<ContainerInfo>,
        policy: RestartPolicy,
        backoff: &BackoffPolicy,
        now: Instant,
    ) -> Vec<Action> {
        self.instance = status;
        let Some(ended) = self.instance.as_ref().and_then(ended_of) else {
            return Vec::new();
        };
        self.ready = false;
        self.instance = None;
        let mut actions = vec![
            Action::StopProbes,
            Action::RemoveContainer {
                id: ended.container_id.clone(),
            },
        ];
        let ran = ended
            .started_at
            .map(|s| (ended.finished_at - s).to_std().unwrap_or_default())
            .unwrap_or_default();
        if policy.restarts(ended.exit_code) {
            let delay = self.backoff.on_exit(ran, backoff);
            self.restart_at = Some((now + delay, delay.as_secs()));
            if !delay.is_zero() {
                actions.push(event(
                    "Warning",
                    "BackOff",
                    format!("Back-off restarting failed container {}", self.spec.name),
                ));
            }
            self.last = Some(ended);
        } else {
            self.done = Some(ended);
        }
        actions
    }

    /// What the slot needs next at `now`.
    pub fn next(&mut self, now: Instant) -> Next {
        if self.done.is_some() || self.instance.is_some() {
            return Next::Idle;
        }
        if let Some((at, _)) = self.restart_at
            && at > now
        {
            return Next::Wait(at - now);
        }
        self.restart_at = None;
        Next::Start
    }

    /// A pull finished at `now` (Ok: the image's digest). Returns its events and whether
    /// the container can be created now.
    pub fn pull_finished(
        &mut self,
        result: Result<String, String>,
        now: Instant,
        backoff: &BackoffPolicy,
    ) -> (Vec<Action>, bool) {
        let started = self.pulling_since.take().unwrap_or(now);
        let image = &self.spec.image;
        match result {
            Ok(digest) => {
                self.pull_backoff.on_success();
                self.failing = None;
                let message = format!(
                    "Successfully pulled image \"{image}\" in {:.3}s (digest {digest})",
                    now.saturating_duration_since(started).as_secs_f64()
                );
                (vec![event("Normal", "Pulled", message)], true)
            }
            Err(message) => {
                let actions = vec![
                    event(
                        "Warning",
                        "Failed",
                        format!("Failed to pull image \"{image}\": {message}"),
                    ),
                    event("Warning", "Failed", "Error: ErrImagePull".into()),
                ];
                self.pull_backoff.on_failure(now, message, backoff);
                (actions, false)
            }
        }
    }

    /// While pulls fail: the waiting reason (`ErrImagePull`, then `ImagePullBackOff`) and
    /// how long until the next look; None when it is time to pull (again).
    pub fn pull_wait(&mut self, now: Instant) -> Option<(Vec<Action>, Duration)> {
        let image = self.spec.image.clone();
        match self.pull_backoff.wait(now, &image) {
            PullWait::ErrImagePull { message, until } => {
                self.failing = Some(("ErrImagePull".into(), message));
                Some((
                    Vec::new(),
                    until.saturating_duration_since(now).max(POLL / 2),
                ))
            }
            PullWait::BackOff {
                message,
                retry_at,
                announce,
            } => {
                let mut actions = Vec::new();
                if announce {
                    actions.push(event(
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                    ));
                    actions.push(event("Warning", "Failed", "Error: ImagePullBackOff".into()));
                }
                self.failing = Some(("ImagePullBackOff".into(), message));
                Some((
                    actions,
                    retry_at.saturating_duration_since(now).max(POLL / 2),
                ))
            }
            PullWait::Retry => None,
        }
    }

    /// Whether the image is present decides: go ahead (None), or wait (pulling, or it
    /// will never be there), with a [`Action::Pull`] when a pull starts.
    pub fn image_decision(
        &mut self,
        present: bool,
        now: Instant,
    ) -> Option<(Vec<Action>, Duration)> {
        let image = self.spec.image.clone();
        let policy = PullPolicy::parse(self.spec.image_pull_policy.as_deref(), &image);
        match decide(policy, present) {
            Decision::UseLocal => None,
            Decision::NeverPull => {
                self.failing = Some(("ErrImageNeverPull".into(), never_pull_message(&image)));
                let actions = vec![event(
                    "Warning",
                    "ErrImageNeverPull",
                    never_pull_message(&image),
                )];
                Some((actions, RETRY))
            }
            Decision::Pull => {
                if let Err(e) = crate::image::Reference::parse(&image) {
                    let message = format!("Failed to apply default image tag \"{image}\": {e}");
                    self.failing = Some(("InvalidImageName".into(), message.clone()));
                    return Some((vec![event("Warning", "InspectFailed", message)], RETRY));
                }
                self.pulling_since = Some(now);
                let actions = vec![
                    event("Normal", "Pulling", format!("Pulling image \"{image}\"")),
                    Action::Pull { image },
                ];
                Some((actions, POLL))
            }
        }
    }

    /// It cannot be started: a waiting reason (CreateContainerConfigError, …).
    pub fn fail(&mut self, reason: &str, message: String) {
        self.failing = Some((reason.into(), message));
    }

    /// The runtime created its next instance.
    pub fn created(&mut self) -> Vec<Action> {
        self.attempts += 1;
        self.failing = None;
        vec![event(
            "Normal",
            "Created",
            format!("Created container {}", self.spec.name),
        )]
    }

    /// The runtime could not start the created instance `id`.
    pub fn start_failed(&mut self, id: &str, message: String) -> Vec<Action> {
        self.failing = Some(("RunContainerError".into(), message));
        vec![Action::DiscardContainer { id: id.into() }]
    }

    /// The new instance was started; `info` is its state right after.
    pub fn started(&mut self, info: ContainerInfo) -> Vec<Action> {
        let mut actions = Vec::new();
        if matches!(info.state, ContainerState::Running { .. }) {
            actions.push(event(
                "Normal",
                "Started",
                format!("Started container {}", self.spec.name),
            ));
        }
        // Ready until a readiness probe says otherwise only when it has none.
        self.ready = self.spec.readiness_probe.is_none();
        if self.spec.liveness_probe.is_some() || self.spec.readiness_probe.is_some() {
            actions.push(Action::StartProbes {
                instance: info.id.clone(),
            });
        }
        actions.push(Action::Register {
            instance: info.clone(),
        });
        self.instance = Some(info);
        actions
    }

    /// A probe's verdict flipped. Readiness sets Ready; a failing liveness probe stops the
    /// instance (SIGTERM, SIGKILL after `grace`), and the exit then restarts it by policy.
    pub fn on_probe(&mut self, result: &ProbeResult, grace: Duration) -> Vec<Action> {
        if self.instance.as_ref().map(|i| i.id.as_str()) != Some(result.instance.as_str()) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        match result.kind {
            ProbeKind::Readiness => self.ready = result.passing,
            ProbeKind::Liveness if !result.passing => {
                actions.push(event(
                    "Normal",
                    "Killing",
                    format!(
                        "Container {} failed liveness probe, will be restarted",
                        self.spec.name
                    ),
                ));
                actions.push(Action::StopProbes);
                actions.push(Action::StopContainer {
                    id: result.instance.clone(),
                    grace,
                });
            }
            ProbeKind::Liveness => {}
        }
        if !result.passing {
            let kind = match result.kind {
                ProbeKind::Liveness => "Liveness",
                ProbeKind::Readiness => "Readiness",
            };
            actions.push(event(
                "Warning",
                "Unhealthy",
                format!("{kind} probe failed: {}", result.message),
            ));
        }
        actions
    }

    /// The container's part in the pod's status.
    pub fn view(&self) -> ContainerView {
        let current = if let Some(done) = &self.done {
            Current::Done(done.clone())
        } else if let Some((reason, message)) = &self.failing {
            Current::Failing {
                reason: reason.clone(),
                message: message.clone(),
            }
        } else if let Some(info) = &self.instance {
            match &info.state {
                ContainerState::Running { started_at, .. } => Current::Running {
                    container_id: info.id.clone(),
                    started_at: *started_at,
                    ready: self.ready,
                },
                ContainerState::Created => Current::Creating,
                ContainerState::Exited { .. } => match ended_of(info) {
                    Some(e) => Current::Done(e),
                    None => Current::Creating,
                },
            }
        } else if let (Some((_, delay)), Some(last)) = (self.restart_at, &self.last) {
            Current::BackOff {
                delay_secs: delay,
                last: last.clone(),
            }
        } else {
            Current::Creating
        };
        ContainerView {
            name: self.spec.name.clone(),
            image: self.spec.image.clone(),
            current,
            restart_count: self.restart_count(),
            last: self.last.clone(),
        }
    }
}

/// What one round of the worker is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Gone from the API (force-deleted): stop everything at once; nothing to confirm.
    Gone,
    /// Terminating: stop everything within `grace`, then confirm the deletion.
    Delete { grace: Duration },
    /// Someone else (the node controller after a partition) declared the pod over while
    /// containers still run here: stop them at once and keep quiet.
    FinishedElsewhere,
    /// Make the runtime match the pod.
    Sync,
}

/// The round for the pod as the API has it now (None: gone), at wall time `now`.
pub fn round(pod: Option<&Pod>, slots: &[Slot], now: DateTime<Utc>) -> Round {
    let Some(pod) = pod else {
        return Round::Gone;
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return Round::Delete {
            grace: deletion_grace(pod, now),
        };
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let finished_elsewhere =
        matches!(phase, Some("Failed" | "Succeeded")) && slots.iter().all(|s| s.done.is_none());
    if finished_elsewhere && slots.iter().any(|s| s.instance.is_some()) {
        return Round::FinishedElsewhere;
    }
    Round::Sync
}

/// The grace period left for a terminating pod at `now`.
pub fn deletion_grace(pod: &Pod, now: DateTime<Utc>) -> Duration {
    let Some(deadline) = pod.metadata.deletion_timestamp else {
        return Duration::ZERO;
    };
    let by_deadline = (deadline - now).to_std().unwrap_or_default();
    let requested = pod
        .metadata
        .deletion_grace_period_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(by_deadline);
    requested.min(by_deadline + Duration::from_secs(1))
}

/// The grace a container stopped for a failed liveness probe gets (the pod's
/// terminationGracePeriodSeconds, 30 s by default).
pub fn termination_grace(pod: &Pod) -> Duration {
    Duration::from_secs(
        pod.spec
            .termination_grace_period_seconds
            .unwrap_or(30)
            .max(0) as u64,
    )
}

/// The order of a pod's teardown: a Killing event per running container (when the pod is
/// known), stop them all within `grace`, remove the sandbox, give back the address,
/// forget the pod, and only then (`confirm`) let it leave the API. `sandbox` None: nothing
/// ran here, so only the confirmation is left.
pub fn teardown(
    pod: Option<&Pod>,
    sandbox: Option<&SandboxInfo>,
    containers: &[ContainerInfo],
    grace: Duration,
    confirm: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if let Some(sandbox) = sandbox {
        let running: Vec<&ContainerInfo> = containers
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .collect();
        if pod.is_some() {
            for c in &running {
                actions.push(event(
                    "Normal",
                    "Killing",
                    format!("Stopping container {}", c.name),
                ));
            }
        }
        actions.push(Action::StopContainers {
            ids: running.iter().map(|c| c.id.clone()).collect(),
            grace,
        });
        actions.push(Action::RemoveSandbox {
            id: sandbox.id.clone(),
        });
        actions.push(Action::DetachNetwork);
        let (namespace, name) = match pod {
            Some(pod) => (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone(),
            ),
            None => (sandbox.namespace.clone(), sandbox.name.clone()),
        };
        actions.push(Action::Forget { namespace, name });
    }
    if confirm && let Some(pod) = pod {
        actions.push(Action::ConfirmDeletion {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone(),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    //! The step functions alone, with explicit instants; `lifecycle_tests.rs` drives them
    //! through the runner.

    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn spec() -> Container {
        serde_json::from_value(serde_json::json!({"name": "app", "image": "app:1"})).unwrap()
    }

    fn info(attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("fake://u1_app_{attempt}"),
            sandbox_id: "s1".into(),
            name: "app".into(),
            attempt,
            image: "app:1".into(),
            state,
            log_path: format!("/logs/app_{attempt}.log").into(),
        }
    }

    fn exited(attempt: u32, code: i32, ran: Duration) -> ContainerInfo {
        let finished_at = Utc::now();
        info(
            attempt,
            ContainerState::Exited {
                exit_code: code,
                signal: None,
                started_at: Some(finished_at - chrono::Duration::from_std(ran).unwrap()),
                finished_at,
                reason: "Error".into(),
                message: None,
            },
        )
    }

    fn running(attempt: u32) -> ContainerInfo {
        info(
            attempt,
            ContainerState::Running {
                pid: 1,
                started_at: Utc::now(),
            },
        )
    }

    #[test]
    fn an_exit_is_removed_and_restarted_after_the_back_off_that_the_step_announces() {
        let policy = BackoffPolicy::default();
        let t0 = Instant::now();
        let mut slot = Slot::new(spec());
        slot.attempts = 1;
        let actions = slot.observe(Some(exited(0, 1, SEC)), RestartPolicy::Always, &policy, t0);
        // The first restart is free: no BackOff event.
        assert_eq!(
            actions,
            vec![
                Action::StopProbes,
                Action::RemoveContainer {
                    id: "fake://u1_app_0".into()
                }
            ]
        );
        assert_eq!(slot.next(t0), Next::Start);
        slot.attempts = 2;
        let actions = slot.observe(Some(exited(1, 1, SEC)), RestartPolicy::Always, &policy, t0);
        assert!(matches!(
            actions.last(),
            Some(Action::Event {
                reason: "BackOff",
                ..
            })
        ));
        assert_eq!(slot.next(t0 + 4 * SEC), Next::Wait(6 * SEC));
        assert!(matches!(
            slot.view().current,
            Current::BackOff { delay_secs: 10, .. }
        ));
        assert_eq!(slot.next(t0 + 10 * SEC), Next::Start);
        assert_eq!(slot.restart_count(), 1);
    }

    #[test]
    fn an_exit_the_policy_does_not_restart_leaves_the_slot_done() {
        let policy = BackoffPolicy::default();
        let t0 = Instant::now();
        let mut slot = Slot::new(spec());
        slot.observe(
            Some(exited(0, 0, SEC)),
            RestartPolicy::OnFailure,
            &policy,
            t0,
        );
        assert!(slot.done.is_some());
        assert_eq!(slot.next(t0 + 3600 * SEC), Next::Idle);
        let mut slot = Slot::new(spec());
        slot.observe(Some(exited(0, 1, SEC)), RestartPolicy::Never, &policy, t0);
        assert!(matches!(slot.view().current, Current::Done(ref e) if e.exit_code == 1));
    }

    #[test]
    fn a_probe_verdict_about_an_earlier_instance_is_ignored() {
        let mut slot = Slot::new(spec());
        slot.instance = Some(running(1));
        let stale = ProbeResult {
            container: "app".into(),
            instance: "fake://u1_app_0".into(),
            kind: ProbeKind::Liveness,
            passing: false,
            message: "refused".into(),
        };
        assert_eq!(slot.on_probe(&stale, SEC), vec![]);
        let current = ProbeResult {
            instance: "fake://u1_app_1".into(),
            ..stale
        };
        let actions = slot.on_probe(&current, 5 * SEC);
        assert!(actions.contains(&Action::StopContainer {
            id: "fake://u1_app_1".into(),
            grace: 5 * SEC
        }));
    }

    #[test]
    fn a_failed_pull_waits_as_err_image_pull_then_image_pull_back_off_then_pulls_again() {
        let policy = BackoffPolicy::default();
        let t0 = Instant::now();
        let mut slot = Slot::new(spec());
        let (actions, wait) = slot.image_decision(false, t0).unwrap();
        assert_eq!(wait, POLL);
        assert!(actions.contains(&Action::Pull {
            image: "app:1".into()
        }));
        let (_, go) = slot.pull_finished(Err("manifest unknown".into()), t0 + SEC, &policy);
        assert!(!go);
        let (_, wait) = slot.pull_wait(t0 + SEC).unwrap();
        assert_eq!(slot.failing.as_ref().unwrap().0, "ErrImagePull");
        assert_eq!(wait, 2 * SEC);
        let (actions, wait) = slot.pull_wait(t0 + 4 * SEC).unwrap();
        assert_eq!(slot.failing.as_ref().unwrap().0, "ImagePullBackOff");
        assert_eq!(actions.len(), 2, "announced once: {actions:?}");
        assert_eq!(wait, 7 * SEC);
        assert_eq!(slot.pull_wait(t0 + 11 * SEC), None, "time to pull again");
    }

    #[test]
    fn teardown_announces_stops_everything_then_removes_the_sandbox_then_confirms() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}
        }))
        .unwrap();
        let sandbox = SandboxInfo {
            id: "s1".into(),
            pod_uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
            netns_path: "/n".into(),
            volumes_dir: "/v".into(),
        };
        let containers = [running(1), exited(0, 1, SEC)];
        let actions = teardown(Some(&pod), Some(&sandbox), &containers, 30 * SEC, true);
        assert_eq!(
            actions,
            vec![
                event("Normal", "Killing", "Stopping container app".into()),
                Action::StopContainers {
                    ids: vec!["fake://u1_app_1".into()],
                    grace: 30 * SEC
                },
                Action::RemoveSandbox { id: "s1".into() },
                Action::DetachNetwork,
                Action::Forget {
                    namespace: "default".into(),
                    name: "web".into()
                },
                Action::ConfirmDeletion {
                    namespace: "default".into(),
                    name: "web".into()
                },
            ]
        );
        // Nothing ran here: only the confirmation is left.
        assert_eq!(
            teardown(Some(&pod), None, &[], 30 * SEC, true),
            actions[5..].to_vec()
        );
        let now = Utc::now();
        let mut deleting = pod.clone();
        deleting.metadata.deletion_timestamp = Some(now + chrono::Duration::seconds(30));
        deleting.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(
            round(Some(&deleting), &[], now),
            Round::Delete { grace: 30 * SEC }
        );
        assert_eq!(round(None, &[], now), Round::Gone);
        assert_eq!(round(Some(&pod), &[], now), Round::Sync);
    }
}
