//! A pod's status, computed from what the agent knows of its containers — pure, so the
//! phase and condition rules are tested directly. Written through UpdateStatus only.

use skiff_api::meta::Time;
use skiff_api::types::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};

/// How one container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub container_id: String,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Time>,
    pub finished_at: Time,
}

impl Ended {
    fn to_api(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: self.exit_code,
            signal: self.signal,
            reason: Some(self.reason.clone()),
            message: self.message.clone(),
            started_at: self.started_at,
            finished_at: Some(self.finished_at),
            container_id: Some(self.container_id.clone()),
        }
    }
}

/// Where a container is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// Not started yet (sandbox or first start under way).
    Creating,
    Running {
        container_id: String,
        started_at: Time,
        /// Its readiness probe passes (or it has none).
        ready: bool,
    },
    /// Exited and waiting out the back-off before the next start.
    BackOff { delay_secs: u64, last: Ended },
    /// Exited for good (the restart policy does not restart it).
    Done(Ended),
    /// Could not be started; a waiting reason such as RunContainerError.
    Failing { reason: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub current: Current,
    pub restart_count: i32,
    /// The previous instance's end (`lastState.terminated`).
    pub last: Option<Ended>,
}

/// Everything the status is made of besides the containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFacts {
    pub pod_name: String,
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub start_time: Option<Time>,
}

fn container_status(view: &ContainerView, pod_name: &str) -> ContainerStatus {
    let waiting = |reason: &str, message: Option<String>| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..ContainerState::default()
    };
    let (state, id, ready, started, last) = match &view.current {
        Current::Creating => (
            waiting("ContainerCreating", None),
            None,
            false,
            false,
            view.last.clone(),
        ),
        Current::Running {
            container_id,
            started_at,
            ready,
        } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(*started_at),
                }),
                ..ContainerState::default()
            },
            Some(container_id.clone()),
            *ready,
            true,
            view.last.clone(),
        ),
        Current::BackOff { delay_secs, last } => (
            waiting(
                "CrashLoopBackOff",
                Some(format!(
                    "back-off {delay_secs}s restarting failed container={} pod={pod_name}",
                    view.name
                )),
            ),
            Some(last.container_id.clone()),
            false,
            false,
            Some(last.clone()),
        ),
        Current::Done(ended) => (
            ContainerState {
                terminated: Some(ended.to_api()),
                ..ContainerState::default()
            },
            Some(ended.container_id.clone()),
            false,
            false,
            view.last.clone(),
        ),
        Current::Failing { reason, message } => (
            waiting(reason, Some(message.clone())),
            None,
            false,
            false,
            view.last.clone(),
        ),
    };
    ContainerStatus {
        name: view.name.clone(),
        ready,
        restart_count: view.restart_count,
        image: view.image.clone(),
        // Neither runtime reports the resolved image's digest to the status yet.
        image_id: String::new(),
        container_id: id,
        started: Some(started),
        state: Some(state),
        last_state: last.map(|l| ContainerState {
            terminated: Some(l.to_api()),
            ..ContainerState::default()
        }),
    }
}

/// Kubernetes' phase rules: Succeeded / Failed once every container is done for good,
/// Running while any runs or is being restarted, Pending before that.
pub fn phase(views: &[ContainerView]) -> &'static str {
    if !views.is_empty() && views.iter().all(|v| matches!(v.current, Current::Done(_))) {
        let all_ok = views
            .iter()
            .all(|v| matches!(&v.current, Current::Done(e) if e.exit_code == 0));
        return if all_ok { "Succeeded" } else { "Failed" };
    }
    let active = views.iter().any(|v| {
        matches!(v.current, Current::Running { .. } | Current::BackOff { .. })
            || (matches!(v.current, Current::Done(_)) && v.restart_count > 0)
    });
    if active { "Running" } else { "Pending" }
}

/// The status to write. Condition transition times are kept from `previous` while the
/// condition's status stays the same, so an unchanged pod produces an equal status.
pub fn pod_status(
    previous: Option<&PodStatus>,
    views: &[ContainerView],
    facts: &PodFacts,
    now: Time,
) -> PodStatus {
    let statuses: Vec<ContainerStatus> = views
        .iter()
        .map(|v| container_status(v, &facts.pod_name))
        .collect();
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let condition = |type_: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        let before = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == type_));
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            message: None,
            last_transition_time: match before {
                Some(c) if c.status == status => c.last_transition_time,
                _ => Some(now),
            },
            last_probe_time: None,
        }
    };
    let not_ready_reason = (!all_ready).then_some("ContainersNotReady");
    let mut conditions = Vec::new();
    // The scheduler's condition stays as it wrote it.
    if let Some(scheduled) =
        previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == "PodScheduled"))
    {
        conditions.push(scheduled.clone());
    }
    conditions.push(condition("Initialized", true, None));
    conditions.push(condition("ContainersReady", all_ready, not_ready_reason));
    conditions.push(condition("Ready", all_ready, not_ready_reason));
    PodStatus {
        phase: Some(phase(views).into()),
        conditions,
        message: None,
        reason: None,
        pod_ip: facts.pod_ip.clone(),
        host_ip: facts.host_ip.clone(),
        start_time: facts.start_time,
        container_statuses: statuses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Time {
        chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn ended(code: i32) -> Ended {
        Ended {
            container_id: "process://x".into(),
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: Some(at(0)),
            finished_at: at(1),
        }
    }

    fn view(name: &str, current: Current, restarts: i32) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox".into(),
            current,
            restart_count: restarts,
            last: None,
        }
    }

    fn running(ready: bool) -> Current {
        Current::Running {
            container_id: "process://a".into(),
            started_at: at(0),
            ready,
        }
    }

    fn facts() -> PodFacts {
        PodFacts {
            pod_name: "web".into(),
            ..PodFacts::default()
        }
    }

    #[test]
    fn the_pod_phase_follows_its_containers() {
        assert_eq!(phase(&[view("a", Current::Creating, 0)]), "Pending");
        assert_eq!(
            phase(&[
                view("a", running(false), 0),
                view("b", Current::Creating, 0)
            ]),
            "Running"
        );
        assert_eq!(phase(&[view("a", Current::Done(ended(0)), 0)]), "Succeeded");
        assert_eq!(
            phase(&[
                view("a", Current::Done(ended(0)), 0),
                view("b", Current::Done(ended(2)), 0)
            ]),
            "Failed"
        );
        let backoff = Current::BackOff {
            delay_secs: 10,
            last: ended(1),
        };
        assert_eq!(phase(&[view("a", backoff, 3)]), "Running");
    }

    #[test]
    fn ready_needs_every_container_ready() {
        let s = pod_status(
            None,
            &[view("a", running(true), 0), view("b", running(false), 0)],
            &facts(),
            at(5),
        );
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            s.container_statuses
                .iter()
                .map(|c| c.ready)
                .collect::<Vec<_>>(),
            vec![true, false]
        );
        let s = pod_status(Some(&s), &[view("a", running(true), 0)], &facts(), at(9));
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time),
            ("True", Some(at(9)))
        );
    }

    #[test]
    fn crash_loop_shows_waiting_and_last_state() {
        let backoff = Current::BackOff {
            delay_secs: 20,
            last: ended(1),
        };
        let s = pod_status(
            None,
            &[view("main", running(true), 0), view("crash", backoff, 2)],
            &facts(),
            at(5),
        );
        let crash = &s.container_statuses[1];
        assert_eq!(crash.restart_count, 2);
        let waiting = crash.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(
            waiting.message.as_deref(),
            Some("back-off 20s restarting failed container=crash pod=web")
        );
        let last = crash
            .last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap();
        assert_eq!(last.exit_code, 1);
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn unchanged_inputs_give_an_equal_status() {
        let views = [view("a", running(true), 1)];
        let first = pod_status(None, &views, &facts(), at(1));
        let again = pod_status(Some(&first), &views, &facts(), at(50));
        assert_eq!(first, again);
    }

    #[test]
    fn keeps_the_schedulers_condition() {
        let previous = PodStatus {
            conditions: vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                last_transition_time: Some(at(0)),
                ..PodCondition::default()
            }],
            ..PodStatus::default()
        };
        let s = pod_status(
            Some(&previous),
            &[view("a", Current::Creating, 0)],
            &facts(),
            at(3),
        );
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            vec!["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        );
        let waiting = s.container_statuses[0]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    }
}
