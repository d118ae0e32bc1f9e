//! The pod lifecycle, end to end through the runner, against the fake runtime and pod API
//! on tokio's paused clock: restarts and back-off, restart policies, probes, pulls, the
//! order of deletion and adoption, each in well under a second and without root.

use std::sync::Arc;
use std::time::Duration;

use skiff_api::types::{ContainerStatus, Pod, PodStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::restart::BackoffPolicy;
use super::worker::{PodWorker, Shared};
use crate::pod_index::PodIndex;
use crate::runtime::fake::{Behavior, Call, FakeApi, FakeImages, FakeRuntime};

const SEC: Duration = Duration::from_secs(1);

/// One pod's worker with its fakes.
struct Harness {
    fake: Arc<FakeRuntime>,
    api: Arc<FakeApi>,
    pod_index: Arc<PodIndex>,
    pod: watch::Sender<Option<Pod>>,
    worker: JoinHandle<()>,
}

impl Harness {
    fn start(pod: Pod, fake: &Arc<FakeRuntime>, images: Option<Arc<FakeImages>>) -> Harness {
        let pod_index = Arc::new(PodIndex::default());
        let api = fake.api();
        let shared = Arc::new(Shared {
            runtime: fake.clone(),
            network: None,
            api: api.clone(),
            node_name: "node-1".into(),
            node_ip: "10.250.0.2".into(),
            backoff: BackoffPolicy::default(),
            pod_index: pod_index.clone(),
            images: images.map(|i| i as Arc<dyn super::api::PodImages>),
        });
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (sender, receiver) = watch::channel(Some(pod));
        api.echo_to(Some(sender.clone()));
        let worker = tokio::spawn(PodWorker::new(shared, uid, receiver).run());
        Harness {
            fake: fake.clone(),
            api,
            pod_index,
            pod: sender,
            worker,
        }
    }

    fn status(&self) -> PodStatus {
        self.fake.last_status().unwrap_or_default()
    }

    /// The first container's last written status (a default one before any).
    fn container(&self) -> ContainerStatus {
        self.status()
            .container_statuses
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits on the paused clock until `done` holds; fails after `limit` of fake time.
    async fn until(&self, limit: Duration, what: &str, done: impl Fn(&Harness) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; calls: {:#?}",
                self.fake.calls()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The agent shuts down: it drops the pod's channel, and the worker returns.
    async fn stop_agent(self) {
        self.api.echo_to(None);
        drop(self.pod);
        tokio::time::timeout(5 * SEC, self.worker)
            .await
            .unwrap()
            .unwrap();
    }

    /// Marks the pod terminating with `grace` seconds, as the API does on delete.
    fn delete(&self, grace: i64) {
        self.pod.send_modify(|pod| {
            let pod = pod.as_mut().expect("a pod");
            pod.metadata.deletion_timestamp =
                Some(chrono::Utc::now() + chrono::Duration::seconds(grace));
            pod.metadata.deletion_grace_period_seconds = Some(grace);
        });
    }
}

fn pod_with(containers: serde_json::Value, spec: serde_json::Value) -> Pod {
    let mut spec_json = serde_json::json!({ "containers": containers });
    if let (Some(target), serde_json::Value::Object(extra)) = (spec_json.as_object_mut(), spec) {
        target.extend(extra);
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": spec_json,
    }))
    .unwrap()
}

/// One container `app` under `restartPolicy`.
fn pod(restart_policy: &str) -> Pod {
    pod_with(
        serde_json::json!([{"name": "app", "image": "app:1", "command": ["/bin/app"]}]),
        serde_json::json!({"restartPolicy": restart_policy}),
    )
}

fn creates(fake: &FakeRuntime) -> Vec<(Duration, u32)> {
    fake.timed_calls()
        .into_iter()
        .filter_map(|(at, c)| match c {
            Call::CreateContainer { attempt, .. } => Some((at, attempt)),
            _ => None,
        })
        .collect()
}

fn waiting_reason(c: &ContainerStatus) -> Option<String> {
    c.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

fn running(c: &ContainerStatus) -> bool {
    c.state.as_ref().is_some_and(|s| s.running.is_some())
}

fn events(fake: &FakeRuntime) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Event { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

/// The calls after the first match of `from`, less reads and status writes: what deletion did.
fn after(fake: &FakeRuntime, from: impl Fn(&Call) -> bool) -> Vec<(Duration, Call)> {
    fake.timed_calls()
        .into_iter()
        .skip_while(|(_, c)| !from(c))
        .filter(|(_, c)| !matches!(c, Call::WriteStatus(_)))
        .collect()
}

/// Seconds between a start and the next create, less the one second the container ran.
fn restart_delays(fake: &FakeRuntime) -> Vec<u64> {
    let creates = creates(fake);
    creates
        .windows(2)
        .map(|w| (w[1].0 - w[0].0 - SEC).as_secs())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backoff_doubles_from_10s_to_a_300s_cap() {
    let fake = FakeRuntime::new();
    fake.script(
        "app",
        [Behavior::Exit {
            after: SEC,
            code: 1,
        }],
    );
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(Duration::from_secs(1200), "nine starts", |h| {
        creates(&h.fake).len() >= 9
    })
    .await;
    // The first restart is free, then 10 s doubling to the cap; detecting an exit takes at
    // most a poll (100 ms), hence whole seconds.
    assert_eq!(
        restart_delays(&fake),
        vec![0, 10, 20, 40, 80, 160, 300, 300]
    );
    // While it waits, the container shows CrashLoopBackOff with the delay.
    h.until(5 * SEC, "back-off shown", |h| {
        waiting_reason(&h.container()).as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    let c = h.container();
    let message = c.state.unwrap().waiting.unwrap().message.unwrap();
    assert!(message.starts_with("back-off 300s restarting failed container=app pod=web"));
    assert_eq!(c.restart_count, 8);
    assert!(events(&fake).contains(&"BackOff".to_string()));
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backoff_resets_after_10_minutes_of_running() {
    let fake = FakeRuntime::new();
    let short = Behavior::Exit {
        after: SEC,
        code: 1,
    };
    let long = Behavior::Exit {
        after: Duration::from_secs(600),
        code: 1,
    };
    fake.script("app", [short.clone(), short.clone(), short.clone(), long]);
    fake.script("app", [short]);
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(Duration::from_secs(900), "six starts", |h| {
        creates(&h.fake).len() >= 6
    })
    .await;
    let creates = creates(&fake);
    let delays: Vec<u64> = creates
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_secs())
        .collect();
    // 1 s runs with 0, 10, 20 s waits; a 600 s run, then a fresh streak: at once, then 10 s.
    assert_eq!(delays, vec![1, 11, 21, 600, 11]);
}

#[tokio::test(start_paused = true)]
async fn restart_policy_always_restarts_a_container_that_completed() {
    let fake = FakeRuntime::new();
    fake.script(
        "app",
        [
            Behavior::Exit {
                after: SEC,
                code: 0,
            },
            Behavior::Run,
        ],
    );
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(10 * SEC, "running again", |h| {
        let c = h.container();
        running(&c) && c.restart_count == 1
    })
    .await;
    let last = h.container().last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(h.status().phase.as_deref(), Some("Running"));
}

#[tokio::test(start_paused = true)]
async fn restart_policy_on_failure_restarts_a_failed_container() {
    let fake = FakeRuntime::new();
    fake.script(
        "app",
        [
            Behavior::Exit {
                after: SEC,
                code: 2,
            },
            Behavior::Run,
        ],
    );
    let h = Harness::start(pod("OnFailure"), &fake, None);
    h.until(10 * SEC, "running again", |h| {
        let c = h.container();
        running(&c) && c.restart_count == 1
    })
    .await;
    assert_eq!(
        h.container()
            .last_state
            .unwrap()
            .terminated
            .unwrap()
            .exit_code,
        2
    );
}

#[tokio::test(start_paused = true)]
async fn restart_policy_on_failure_leaves_a_completed_container_and_the_pod_succeeds() {
    let fake = FakeRuntime::new();
    fake.script(
        "app",
        [Behavior::Exit {
            after: SEC,
            code: 0,
        }],
    );
    let h = Harness::start(pod("OnFailure"), &fake, None);
    h.until(10 * SEC, "succeeded", |h| {
        h.status().phase.as_deref() == Some("Succeeded")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(creates(&fake).len(), 1, "never started again");
    let done = h.container().state.unwrap().terminated.unwrap();
    assert_eq!(done.reason.as_deref(), Some("Completed"));
}

#[tokio::test(start_paused = true)]
async fn restart_policy_never_leaves_a_failed_container_and_the_pod_fails() {
    let fake = FakeRuntime::new();
    fake.script(
        "app",
        [Behavior::Exit {
            after: SEC,
            code: 3,
        }],
    );
    let h = Harness::start(pod("Never"), &fake, None);
    h.until(10 * SEC, "failed", |h| {
        h.status().phase.as_deref() == Some("Failed")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(creates(&fake).len(), 1, "never started again");
    let c = h.container();
    assert_eq!(c.state.unwrap().terminated.unwrap().exit_code, 3);
    assert_eq!(c.restart_count, 0);
}

#[tokio::test(start_paused = true)]
async fn a_container_that_cannot_start_shows_start_error_and_crash_loops() {
    let fake = FakeRuntime::new();
    fake.script(
        "app",
        [Behavior::CannotStart(
            "exec: \"/bin/app\": no such file".into(),
        )],
    );
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(30 * SEC, "crash loop", |h| {
        let c = h.container();
        waiting_reason(&c).as_deref() == Some("CrashLoopBackOff") && c.restart_count >= 1
    })
    .await;
    let last = h.container().last_state.unwrap().terminated.unwrap();
    assert_eq!(last.reason.as_deref(), Some("StartError"));
    assert_eq!(last.exit_code, 128);
    assert!(last.message.unwrap().contains("no such file"));
    assert!(!events(&fake).contains(&"Started".to_string()));
}

/// `app` with a probe on port 8080 every second, failing after three misses.
fn probed_pod(kind: &str) -> Pod {
    let mut container =
        serde_json::json!({"name": "app", "image": "app:1", "command": ["/bin/app"]});
    container[kind] = serde_json::json!({
        "tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 3
    });
    pod_with(
        serde_json::json!([container]),
        serde_json::json!({"terminationGracePeriodSeconds": 5}),
    )
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let fake = FakeRuntime::new();
    fake.set_port_open(8080, true);
    let h = Harness::start(probed_pod("livenessProbe"), &fake, None);
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(creates(&fake).len(), 1, "a passing probe leaves it be");
    fake.set_port_open(8080, false);
    h.until(10 * SEC, "restarted", |h| {
        let c = h.container();
        running(&c) && c.restart_count == 1
    })
    .await;
    // Stopped with the pod's termination grace, and SIGTERM was enough.
    let stops: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::StopContainer { .. } | Call::Signal { .. }))
        .collect();
    assert_eq!(
        stops,
        vec![
            Call::StopContainer {
                id: "fake://u1_app_0".into(),
                grace: 5 * SEC
            },
            Call::Signal {
                id: "fake://u1_app_0".into(),
                signal: 15
            },
        ]
    );
    let events = events(&fake);
    assert!(events.contains(&"Unhealthy".to_string()), "{events:?}");
    assert!(events.contains(&"Killing".to_string()), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_readiness_probe_flips_ready_both_ways_without_a_restart() {
    let fake = FakeRuntime::new();
    let h = Harness::start(probed_pod("readinessProbe"), &fake, None);
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!h.container().ready, "not ready until the probe passes");
    let ready_condition = |h: &Harness| {
        h.status()
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone())
    };
    assert_eq!(ready_condition(&h).as_deref(), Some("False"));
    fake.set_port_open(8080, true);
    h.until(3 * SEC, "ready", |h| h.container().ready).await;
    assert_eq!(ready_condition(&h).as_deref(), Some("True"));
    fake.set_port_open(8080, false);
    h.until(5 * SEC, "unready", |h| !h.container().ready).await;
    assert_eq!(ready_condition(&h).as_deref(), Some("False"));
    assert_eq!(creates(&fake).len(), 1, "readiness never restarts");
    assert!(running(&h.container()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_pull_shows_err_image_pull_then_image_pull_back_off_then_runs() {
    let fake = FakeRuntime::new();
    let images = FakeImages::new(&fake);
    images.script_pulls("app:1", [Err("manifest unknown".into()), Ok(())]);
    let h = Harness::start(pod("Always"), &fake, Some(images));
    h.until(30 * SEC, "running", |h| running(&h.container()))
        .await;
    let reasons: Vec<String> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::WriteStatus(s) => s
                .container_statuses
                .first()
                .map(|c| waiting_reason(c).unwrap_or_else(|| "Running".into())),
            _ => None,
        })
        .collect();
    let mut seen = reasons.clone();
    seen.dedup();
    assert_eq!(
        seen,
        vec![
            "ContainerCreating",
            "ErrImagePull",
            "ImagePullBackOff",
            "Running"
        ],
        "{reasons:?}"
    );
    // The second pull waited out the 10 s back-off.
    let pulls: Vec<Duration> = fake
        .timed_calls()
        .into_iter()
        .filter_map(|(at, c)| matches!(c, Call::Pull { .. }).then_some(at))
        .collect();
    assert_eq!(pulls.len(), 2);
    assert_eq!((pulls[1] - pulls[0]).as_secs(), 10);
    let events = events(&fake);
    for reason in [
        "Pulling", "Failed", "BackOff", "Pulled", "Created", "Started",
    ] {
        assert!(events.contains(&reason.to_string()), "{reason}: {events:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_image_never_pulled_and_missing_shows_err_image_never_pull() {
    let fake = FakeRuntime::new();
    let images = FakeImages::new(&fake);
    let mut pod = pod("Always");
    pod.spec.containers[0].image_pull_policy = Some("Never".into());
    let h = Harness::start(pod, &fake, Some(images.clone()));
    h.until(5 * SEC, "never pull", |h| {
        waiting_reason(&h.container()).as_deref() == Some("ErrImageNeverPull")
    })
    .await;
    assert!(!fake.calls().iter().any(|c| matches!(c, Call::Pull { .. })));
    // Imported by hand: it starts.
    images.add("app:1");
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
}

#[tokio::test(start_paused = true)]
async fn graceful_deletion_sends_sigterm_removes_the_sandbox_then_confirms() {
    let fake = FakeRuntime::new();
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    h.delete(30);
    tokio::time::timeout(5 * SEC, h.worker)
        .await
        .unwrap()
        .unwrap();
    let calls: Vec<Call> = after(
        &fake,
        |c| matches!(c, Call::Event { reason, .. } if reason == "Killing"),
    )
    .into_iter()
    .map(|(_, c)| c)
    .collect();
    assert_eq!(
        calls,
        vec![
            Call::Event {
                reason: "Killing".into(),
                message: "Stopping container app".into()
            },
            Call::StopContainer {
                id: "fake://u1_app_0".into(),
                grace: 30 * SEC
            },
            Call::Signal {
                id: "fake://u1_app_0".into(),
                signal: 15
            },
            Call::RemoveSandbox {
                id: "sandbox-u1".into()
            },
            Call::ConfirmDeletion {
                namespace: "default".into(),
                name: "web".into()
            },
        ]
    );
    assert!(h.pod_index.pod("default", "web").is_err(), "forgotten");
}

#[tokio::test(start_paused = true)]
async fn a_container_that_ignores_sigterm_is_killed_when_the_grace_period_ends() {
    let fake = FakeRuntime::new();
    fake.script("app", [Behavior::IgnoreSigterm]);
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    h.delete(30);
    tokio::time::timeout(60 * SEC, h.worker)
        .await
        .unwrap()
        .unwrap();
    let calls = after(&fake, |c| matches!(c, Call::StopContainer { .. }));
    let kinds: Vec<&str> = calls
        .iter()
        .map(|(_, c)| match c {
            Call::StopContainer { .. } => "stop",
            Call::Signal { signal: 15, .. } => "SIGTERM",
            Call::Signal { signal: 9, .. } => "SIGKILL",
            Call::RemoveSandbox { .. } => "remove sandbox",
            Call::ConfirmDeletion { .. } => "confirm",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        vec!["stop", "SIGTERM", "SIGKILL", "remove sandbox", "confirm"]
    );
    // SIGKILL exactly when the grace period ran out, and nothing before it.
    assert_eq!(calls[2].0 - calls[1].0, 30 * SEC);
    assert_eq!(calls[4].0 - calls[2].0, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn deletion_removes_the_sandbox_only_after_every_container_stopped() {
    let fake = FakeRuntime::new();
    fake.script("slow", [Behavior::IgnoreSigterm]);
    let pod = pod_with(
        serde_json::json!([
            {"name": "app", "image": "app:1", "command": ["/bin/app"]},
            {"name": "slow", "image": "app:1", "command": ["/bin/slow"]}
        ]),
        serde_json::json!({}),
    );
    let h = Harness::start(pod, &fake, None);
    h.until(5 * SEC, "both running", |h| {
        let s = h.status();
        s.container_statuses.len() == 2 && s.container_statuses.iter().all(running)
    })
    .await;
    h.delete(10);
    tokio::time::timeout(60 * SEC, h.worker)
        .await
        .unwrap()
        .unwrap();
    let calls = after(&fake, |c| matches!(c, Call::StopContainer { .. }));
    let at = |wanted: &dyn Fn(&Call) -> bool| {
        calls
            .iter()
            .find(|(_, c)| wanted(c))
            .map(|(at, _)| *at)
            .unwrap()
    };
    let app_term = at(&|c| matches!(c, Call::Signal { id, signal: 15 } if id.contains("_app_")));
    let slow_kill = at(&|c| matches!(c, Call::Signal { id, signal: 9 } if id.contains("_slow_")));
    let removed = at(&|c| matches!(c, Call::RemoveSandbox { .. }));
    assert_eq!(slow_kill - app_term, 10 * SEC, "stopped together");
    assert!(removed >= slow_kill);
    assert!(matches!(
        calls.last(),
        Some((_, Call::ConfirmDeletion { .. }))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_pod_gone_from_the_api_is_stopped_at_once_without_confirmation() {
    let fake = FakeRuntime::new();
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    h.pod.send_replace(None);
    tokio::time::timeout(5 * SEC, h.worker)
        .await
        .unwrap()
        .unwrap();
    let calls: Vec<Call> = after(&fake, |c| matches!(c, Call::StopContainer { .. }))
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(
        calls,
        vec![
            Call::StopContainer {
                id: "fake://u1_app_0".into(),
                grace: Duration::ZERO
            },
            Call::Signal {
                id: "fake://u1_app_0".into(),
                signal: 15
            },
            Call::RemoveSandbox {
                id: "sandbox-u1".into()
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_declared_failed_elsewhere_has_its_containers_stopped_at_once() {
    let fake = FakeRuntime::new();
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    // The node controller after a partition.
    h.pod.send_modify(|pod| {
        pod.as_mut().unwrap().status = Some(PodStatus {
            phase: Some("Failed".into()),
            ..PodStatus::default()
        });
    });
    h.until(5 * SEC, "sandbox removed", |h| {
        h.fake
            .calls()
            .iter()
            .any(|c| matches!(c, Call::RemoveSandbox { .. }))
    })
    .await;
    let stops: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::StopContainer { .. } | Call::ConfirmDeletion { .. }))
        .collect();
    assert_eq!(
        stops,
        vec![Call::StopContainer {
            id: "fake://u1_app_0".into(),
            grace: Duration::ZERO
        }],
        "no deletion to confirm"
    );
    assert!(!h.worker.is_finished(), "it waits for the deletion");
}

#[tokio::test(start_paused = true)]
async fn an_agent_restart_adopts_running_containers() {
    let fake = FakeRuntime::new();
    let first = Harness::start(pod("Always"), &fake, None);
    first
        .until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    let before = first.container();
    // The agent shuts down; the container keeps running.
    first.stop_agent().await;
    let calls_before = fake.calls().len();

    let second = Harness::start(pod("Always"), &fake, None);
    tokio::time::sleep(5 * SEC).await;
    let adopted = second.container();
    assert!(running(&adopted));
    assert_eq!(adopted.container_id, before.container_id);
    assert_eq!(
        adopted.state.unwrap().running.unwrap().started_at,
        before.state.unwrap().running.unwrap().started_at
    );
    let changes: Vec<Call> = fake.calls()[calls_before..]
        .iter()
        .filter(|c| !matches!(c, Call::WriteStatus(_)))
        .cloned()
        .collect();
    assert_eq!(changes, vec![], "nothing created, started or stopped");
    let (_, _, entry) = second.pod_index.container("default", "web", "app").unwrap();
    assert_eq!(entry.current.as_deref(), Some("fake://u1_app_0"));

    // Its next exit counts on from the adopted attempt.
    fake.exit("app", 1);
    second
        .until(5 * SEC, "restarted", |h| {
            let c = h.container();
            running(&c) && c.restart_count == 1
        })
        .await;
    assert_eq!(creates(&fake).last().map(|(_, a)| *a), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_steady_pod_writes_its_status_only_when_it_changes() {
    let fake = FakeRuntime::new();
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(5 * SEC, "running", |h| running(&h.container()))
        .await;
    let writes = |fake: &FakeRuntime| {
        fake.calls()
            .iter()
            .filter(|c| matches!(c, Call::WriteStatus(_)))
            .count()
    };
    let settled = writes(&fake);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(writes(&fake), settled, "1200 polls, no new status");
}

#[tokio::test(start_paused = true)]
async fn a_container_that_exits_at_once_crash_loops_instead_of_failing_the_pod() {
    let fake = FakeRuntime::new();
    fake.script(
        "app",
        [Behavior::Exit {
            after: Duration::ZERO,
            code: 1,
        }],
    );
    let h = Harness::start(pod("Always"), &fake, None);
    h.until(60 * SEC, "three starts", |h| creates(&h.fake).len() >= 3)
        .await;
    let calls = fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::RemoveSandbox { .. })),
        "the sandbox stays"
    );
    let phases: Vec<Option<String>> = calls
        .iter()
        .filter_map(|c| match c {
            Call::WriteStatus(s) => Some(s.phase.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !phases.contains(&Some("Failed".into())),
        "never Failed under restartPolicy Always: {phases:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_whose_container_name_is_a_path_is_failed_and_nothing_is_created() {
    let fake = FakeRuntime::new();
    let images = FakeImages::new(&fake);
    let pod = pod_with(
        serde_json::json!([{"name": "../x", "image": "app:1", "command": ["/bin/app"]}]),
        serde_json::json!({}),
    );
    let h = Harness::start(pod, &fake, Some(images));
    h.until(5 * SEC, "refused", |h| {
        h.status().reason.as_deref() == Some(super::worker::INVALID_POD_REASON)
    })
    .await;
    let status = h.status();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("spec.containers[0].name") && message.contains("../x"),
        "{message}"
    );
    assert_eq!(events(&fake), [super::worker::INVALID_POD_REASON]);
    h.delete(30);
    h.until(5 * SEC, "deletion confirmed", |h| {
        h.fake
            .calls()
            .iter()
            .any(|c| matches!(c, Call::ConfirmDeletion { .. }))
    })
    .await;
    // Nothing on the node was made from the pod's names, not even a sandbox or a pull.
    let touched: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| {
            !matches!(
                c,
                Call::WriteStatus(_) | Call::Event { .. } | Call::ConfirmDeletion { .. }
            )
        })
        .collect();
    assert_eq!(touched, Vec::<Call>::new());
}

#[tokio::test(start_paused = true)]
async fn a_pod_marked_not_ready_by_another_writer_gets_its_own_status_back() {
    let fake = FakeRuntime::new();
    let h = Harness::start(pod("Always"), &fake, None);
    let ready = |status: &PodStatus| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    h.until(5 * SEC, "ready", |h| ready(&h.status())).await;
    // The node lifecycle controller marks the pod not ready while the node is lost: a new
    // version whose status differs from the one this agent wrote last.
    h.pod.send_modify(|pod| {
        let pod = pod.as_mut().expect("a pod");
        pod.metadata.resource_version = Some("99".into());
        let status = pod.status.as_mut().expect("a status");
        for c in &mut status.conditions {
            c.status = "False".into();
        }
        for c in &mut status.container_statuses {
            c.ready = false;
        }
    });
    let not_ready_seen = fake
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::WriteStatus(_)))
        .count();
    h.until(5 * SEC, "ready written again", |h| {
        let writes = h
            .fake
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::WriteStatus(_)))
            .count();
        writes > not_ready_seen && ready(&h.status())
    })
    .await;
    assert!(h.container().ready, "{:?}", h.container());
}
