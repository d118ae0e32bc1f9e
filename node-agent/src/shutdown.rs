//! A node's shutdown, the agent's part: every container on the node stopped gracefully
//! (`skiff-agent stop-containers`, which `skiff stop` runs once the agent itself has
//! stopped, so that nothing restarts them). Unlike a deletion nothing else goes: the
//! sandboxes with their volumes and logs, the containers' records and the pods in the API
//! all stay, so the agent's next start restarts the containers by their restart policy, as
//! a kubelet does after a reboot.

use std::time::Duration;

use crate::runtime::{ContainerState, Runtime, RuntimeError};

/// What [`stop_containers`] did, by container id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    pub stopped: Vec<String>,
    /// Containers that could not be stopped, with why.
    pub failed: Vec<(String, String)>,
}

/// Stops every running container of `runtime` at once, each with SIGTERM and, after its
/// pod's grace period (`grace` of the pod's uid), SIGKILL; returns once all have exited.
pub async fn stop_containers<R: Runtime>(
    runtime: &R,
    grace: impl Fn(&str) -> Duration,
) -> Result<Stopped, RuntimeError> {
    let mut running = Vec::new();
    for sandbox in runtime.list_sandboxes().await? {
        let pod_grace = grace(&sandbox.pod_uid);
        for container in runtime.list_containers(Some(&sandbox.id)).await? {
            if matches!(container.state, ContainerState::Running { .. }) {
                running.push((container.id, pod_grace));
            }
        }
    }
    let stops = running
        .iter()
        .map(|(id, grace)| async move { (id.clone(), runtime.stop_container(id, *grace).await) });
    let mut report = Stopped::default();
    for (id, result) in futures::future::join_all(stops).await {
        match result {
            Ok(()) => report.stopped.push(id),
            Err(e) => report.failed.push((id, e.to_string())),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::{Behavior, Call, FakeRuntime};
    use crate::runtime::{ContainerConfig, SandboxConfig};

    async fn pod_with(runtime: &FakeRuntime, uid: &str, container: &str) -> String {
        let sandbox = runtime
            .create_sandbox(&SandboxConfig {
                pod_uid: uid.into(),
                namespace: "default".into(),
                name: uid.into(),
                hostname: uid.into(),
                host_network: false,
            })
            .await
            .unwrap();
        let config = ContainerConfig {
            name: container.into(),
            attempt: 0,
            image: "busybox".into(),
            argv: vec!["httpd".into()],
            env: Default::default(),
            working_dir: None,
            mounts: Vec::new(),
        };
        let info = runtime
            .create_container(&sandbox.id, &config)
            .await
            .unwrap();
        runtime.start_container(&info.id).await.unwrap();
        info.id
    }

    #[tokio::test(start_paused = true)]
    async fn each_container_gets_sigterm_and_its_pods_grace_before_sigkill_and_the_rest_stays() {
        let fake = FakeRuntime::new();
        fake.script("polite", [Behavior::Run]);
        fake.script("stubborn", [Behavior::IgnoreSigterm]);
        fake.script(
            "done",
            [Behavior::Exit {
                after: Duration::from_secs(1),
                code: 0,
            }],
        );
        let polite = pod_with(&fake, "a", "polite").await;
        let stubborn = pod_with(&fake, "b", "stubborn").await;
        let done = pod_with(&fake, "c", "done").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let grace = |uid: &str| Duration::from_secs(if uid == "b" { 5 } else { 30 });

        let report = stop_containers(fake.as_ref(), grace).await.unwrap();
        let mut stopped = report.stopped.clone();
        stopped.sort();
        assert_eq!(stopped, [polite.clone(), stubborn.clone()], "{report:?}");
        assert!(report.failed.is_empty(), "{report:?}");
        // Both stops ran at once: the stubborn one was killed at its pod's 5 s.
        let calls = fake.timed_calls();
        let signals: Vec<(u64, &str, i32)> = calls
            .iter()
            .filter_map(|(at, call)| match call {
                Call::Signal { id, signal } => Some((at.as_secs(), id.as_str(), *signal)),
                _ => None,
            })
            .collect();
        assert!(signals.contains(&(2, polite.as_str(), 15)), "{signals:?}");
        assert!(signals.contains(&(2, stubborn.as_str(), 15)), "{signals:?}");
        assert!(signals.contains(&(7, stubborn.as_str(), 9)), "{signals:?}");
        assert!(!signals.iter().any(|(_, id, _)| *id == done), "{signals:?}");
        // Nothing removed: the next agent finds every sandbox and container record.
        assert!(
            !calls.iter().any(|(_, call)| matches!(
                call,
                Call::RemoveSandbox { .. } | Call::RemoveContainer { .. }
            )),
            "{calls:?}"
        );
        assert_eq!(fake.list_sandboxes().await.unwrap().len(), 3);
        assert_eq!(fake.list_containers(None).await.unwrap().len(), 3);
    }
}
