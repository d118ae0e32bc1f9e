//! One task per pod: makes the runtime match the pod (sandbox, containers, restarts with
//! back-off, probes), writes the pod's status, and tears everything down on deletion.
//!
//! The loop is level-triggered: each round looks at the latest pod from the watch and at the
//! runtime's containers, acts, and sleeps until the pod changes, a probe verdict flips, a
//! back-off ends or the next status poll.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::types::{Container, Pod, PodStatus, Probe};
use skiff_client::{Client, DeleteParams};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::probe::{self, Timing, Verdict};
use super::pull::{Decision, PullBackoff, PullPolicy, PullWait, decide, never_pull_message};
use super::restart::{Backoff, BackoffPolicy, RestartPolicy};
use super::status::{ContainerView, Current, Ended, PodFacts, pod_status};
use crate::events::Recorder;
use crate::image::ContainerSpec;
use crate::registry::{ContainerEntry, Registry};
use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerOptions, ContainerState, Mount, Resources, Runtime,
    SandboxConfig, SandboxInfo,
};

/// How often running containers are looked at for exits.
const POLL: Duration = Duration::from_millis(100);

/// What every pod worker shares.
pub struct Shared<R> {
    pub runtime: Arc<R>,
    /// The pod network, unless the agent runs without one.
    pub network: Option<Arc<skiff_netplugin::network::PodNetwork>>,
    pub client: Client,
    pub events: Recorder,
    pub node_name: String,
    pub node_ip: String,
    pub backoff: BackoffPolicy,
    pub registry: Arc<Registry>,
    /// The image store and pull settings, when the runtime runs containers from images.
    pub images: Option<crate::image::NodeImages>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Liveness,
    Readiness,
}

struct ProbeResult {
    container: String,
    /// The container instance the verdict is about (stale results are dropped).
    instance: String,
    kind: ProbeKind,
    passing: bool,
    message: String,
}

/// One container of the pod, across its restarts.
struct Slot {
    spec: Container,
    /// The runtime's container of the current attempt.
    instance: Option<ContainerInfo>,
    /// Attempts started so far (the next attempt's number).
    attempts: u32,
    backoff: Backoff,
    /// Set while waiting out a back-off.
    restart_at: Option<(Instant, u64)>,
    last: Option<Ended>,
    /// Exited for good.
    done: Option<Ended>,
    ready: bool,
    probes: Vec<JoinHandle<()>>,
    /// Why it cannot start, as a waiting reason and message.
    failing: Option<(String, String)>,
    /// A pull of its image under way (`oci` runtime): the image's digest, or the reason.
    pulling: Option<(JoinHandle<Result<String, String>>, std::time::Instant)>,
    /// Failed pulls and their back-off.
    pull_backoff: PullBackoff,
}

impl Slot {
    fn new(spec: Container) -> Slot {
        Slot {
            spec,
            instance: None,
            attempts: 0,
            backoff: Backoff::default(),
            restart_at: None,
            last: None,
            done: None,
            ready: false,
            probes: Vec::new(),
            failing: None,
            pulling: None,
            pull_backoff: PullBackoff::default(),
        }
    }

    fn stop_probes(&mut self) {
        for probe in self.probes.drain(..) {
            probe.abort();
        }
    }

    fn restart_count(&self) -> i32 {
        self.attempts.saturating_sub(1) as i32
    }
}

fn ended_of(info: &ContainerInfo) -> Option<Ended> {
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

pub struct PodWorker<R: Runtime> {
    shared: Arc<Shared<R>>,
    pod: watch::Receiver<Option<Pod>>,
    uid: String,
    sandbox: Option<SandboxInfo>,
    slots: Vec<Slot>,
    last_status: Option<PodStatus>,
    start_time: Option<skiff_api::meta::Time>,
    /// The pod's address on the pod network, once attached.
    pod_ip: Option<std::net::Ipv4Addr>,
    probe_tx: mpsc::UnboundedSender<ProbeResult>,
    probe_rx: mpsc::UnboundedReceiver<ProbeResult>,
}

impl<R: Runtime> PodWorker<R> {
    pub fn new(shared: Arc<Shared<R>>, uid: String, pod: watch::Receiver<Option<Pod>>) -> Self {
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        PodWorker {
            shared,
            pod,
            uid,
            sandbox: None,
            slots: Vec::new(),
            last_status: None,
            start_time: None,
            pod_ip: None,
            probe_tx,
            probe_rx,
        }
    }

    /// Runs the pod until it is deleted (and its sandbox is gone).
    pub async fn run(mut self) {
        loop {
            let pod = self.pod.borrow_and_update().clone();
            let Some(pod) = pod else {
                // Gone from the API (force-deleted): stop at once.
                self.teardown(None, Duration::ZERO).await;
                return;
            };
            if pod.metadata.deletion_timestamp.is_some() {
                let grace = deletion_grace(&pod);
                self.teardown(Some(&pod), grace).await;
                self.confirm_deletion(&pod).await;
                return;
            }
            let wake = self.sync(&pod).await;
            tokio::select! {
                changed = self.pod.changed() => {
                    if changed.is_err() {
                        // The agent dropped this pod's channel: it is shutting down.
                        self.stop_probes();
                        return;
                    }
                }
                Some(result) = self.probe_rx.recv() => self.on_probe(&pod, result),
                _ = tokio::time::sleep(wake) => {}
            }
        }
    }

    fn stop_probes(&mut self) {
        for slot in &mut self.slots {
            slot.stop_probes();
        }
    }

    fn on_probe(&mut self, pod: &Pod, result: ProbeResult) {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.spec.name == result.container)
        else {
            return;
        };
        if slot.instance.as_ref().map(|i| i.id.as_str()) != Some(result.instance.as_str()) {
            return;
        }
        match result.kind {
            ProbeKind::Readiness => slot.ready = result.passing,
            ProbeKind::Liveness if !result.passing => {
                let message = format!(
                    "Container {} failed liveness probe, will be restarted",
                    slot.spec.name
                );
                self.shared.events.pod(pod, "Normal", "Killing", message);
                let runtime = self.shared.runtime.clone();
                let id = result.instance.clone();
                let grace = Duration::from_secs(
                    pod.spec
                        .termination_grace_period_seconds
                        .unwrap_or(30)
                        .max(0) as u64,
                );
                slot.stop_probes();
                // The exit is then seen like any other and restarted by policy.
                tokio::spawn(async move {
                    let _ = runtime.stop_container(&id, grace).await;
                });
            }
            ProbeKind::Liveness => {}
        }
        if !result.passing {
            let kind = match result.kind {
                ProbeKind::Liveness => "Liveness",
                ProbeKind::Readiness => "Readiness",
            };
            self.shared.events.pod(
                pod,
                "Warning",
                "Unhealthy",
                format!("{kind} probe failed: {}", result.message),
            );
        }
    }

    /// One round; returns how long to sleep at most.
    async fn sync(&mut self, pod: &Pod) -> Duration {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished_elsewhere = matches!(phase, Some("Failed" | "Succeeded"))
            && self.slots.iter().all(|s| s.done.is_none());
        if finished_elsewhere && self.slots.iter().any(|s| s.instance.is_some()) {
            // Someone else (the node controller after a partition) declared the pod over.
            self.teardown(Some(pod), Duration::ZERO).await;
            return Duration::from_secs(3600);
        }
        if self.slots.is_empty() {
            self.slots = pod.spec.containers.iter().cloned().map(Slot::new).collect();
        } else {
            // Only images may change in a pod's spec; the next start uses the new one.
            for (slot, spec) in self.slots.iter_mut().zip(&pod.spec.containers) {
                slot.spec = spec.clone();
            }
        }
        if self.sandbox.is_none() {
            match self.ensure_sandbox(pod).await {
                Ok(()) => {}
                Err(message) => {
                    for slot in &mut self.slots {
                        slot.failing = Some(("CreatePodSandboxError".into(), message.clone()));
                    }
                    self.write_status(pod).await;
                    return Duration::from_secs(2);
                }
            }
        }
        let policy = RestartPolicy::parse(pod.spec.restart_policy.as_deref());
        let mut wake = POLL;
        for i in 0..self.slots.len() {
            if let Some(delay) = self.sync_container(pod, i, policy).await {
                wake = wake.min(delay);
            }
        }
        self.write_status(pod).await;
        wake
    }

    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let host_network = pod.spec.host_network.unwrap_or(false);
        let config = SandboxConfig {
            pod_uid: self.uid.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone(),
            // A host-network pod shares the node's UTS namespace, hence its hostname.
            hostname: if host_network {
                self.shared.node_name.clone()
            } else {
                pod.spec
                    .hostname
                    .clone()
                    .unwrap_or_else(|| pod.metadata.name.chars().take(63).collect())
            },
            host_network,
        };
        let sandbox = self
            .shared
            .runtime
            .create_sandbox(&config)
            .await
            .map_err(|e| format!("cannot create the pod sandbox: {e}"))?;
        if config.host_network {
            self.pod_ip = self.shared.node_ip.parse().ok();
        } else if let Some(network) = &self.shared.network {
            let address = network
                .attach(&self.uid, &sandbox.netns_path)
                .await
                .map_err(|e| format!("cannot attach the pod to the network: {e}"))?;
            self.pod_ip = Some(address);
        }
        // After an agent restart the sandbox may hold this pod's containers already.
        let existing = self
            .shared
            .runtime
            .list_containers(Some(&sandbox.id))
            .await
            .map_err(|e| format!("cannot list the pod's containers: {e}"))?;
        for slot in &mut self.slots {
            let latest = existing
                .iter()
                .filter(|c| c.name == slot.spec.name)
                .max_by_key(|c| c.attempt);
            if let Some(latest) = latest {
                slot.attempts = latest.attempt + 1;
                slot.instance = Some(latest.clone());
            }
        }
        self.start_time.get_or_insert_with(chrono::Utc::now);
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        self.shared
            .registry
            .update(&namespace, &pod.metadata.name, |entry| {
                entry.uid = self.uid.clone();
                entry.sandbox_id = sandbox.id.clone();
                entry.container_order =
                    pod.spec.containers.iter().map(|c| c.name.clone()).collect();
                for slot in &self.slots {
                    let mut logs: Vec<PathBuf> = existing
                        .iter()
                        .filter(|c| c.name == slot.spec.name)
                        .map(|c| (c.attempt, c.log_path.clone()))
                        .collect::<BTreeMap<_, _>>()
                        .into_values()
                        .collect();
                    if let Some(instance) = &slot.instance
                        && !logs.contains(&instance.log_path)
                    {
                        logs.push(instance.log_path.clone());
                    }
                    entry.containers.insert(
                        slot.spec.name.clone(),
                        ContainerEntry {
                            current: slot.instance.as_ref().map(|i| i.id.clone()),
                            logs,
                        },
                    );
                }
            });
        self.sandbox = Some(sandbox);
        Ok(())
    }

    /// Brings one container along; returns when it needs looking at again, if sooner
    /// than the poll.
    async fn sync_container(
        &mut self,
        pod: &Pod,
        index: usize,
        policy: RestartPolicy,
    ) -> Option<Duration> {
        let runtime = self.shared.runtime.clone();
        let slot = &mut self.slots[index];
        if slot.done.is_some() {
            return None;
        }
        if let Some(instance) = &slot.instance {
            match runtime.container_status(&instance.id).await {
                Ok(info) => slot.instance = Some(info),
                Err(e) => {
                    tracing::warn!(container = instance.id, "status unknown: {e}");
                    slot.instance = None;
                }
            }
        }
        if let Some(info) = slot.instance.clone()
            && let Some(ended) = ended_of(&info)
        {
            slot.stop_probes();
            slot.ready = false;
            let _ = runtime.remove_container(&info.id).await;
            slot.instance = None;
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            self.shared
                .registry
                .update(&namespace, &pod.metadata.name, |entry| {
                    if let Some(c) = entry.containers.get_mut(&slot.spec.name) {
                        c.current = None;
                    }
                });
            let ran = ended
                .started_at
                .map(|s| (ended.finished_at - s).to_std().unwrap_or_default())
                .unwrap_or_default();
            if policy.restarts(ended.exit_code) {
                let delay = slot.backoff.on_exit(ran, &self.shared.backoff);
                slot.restart_at = Some((Instant::now() + delay, delay.as_secs()));
                if !delay.is_zero() {
                    self.shared.events.pod(
                        pod,
                        "Warning",
                        "BackOff",
                        format!("Back-off restarting failed container {}", slot.spec.name),
                    );
                }
                slot.last = Some(ended);
            } else {
                slot.done = Some(ended);
                return None;
            }
        }
        if slot.instance.is_some() {
            return None;
        }
        if let Some((at, _)) = slot.restart_at {
            let now = Instant::now();
            if at > now {
                return Some(at - now);
            }
        }
        slot.restart_at = None;
        if let Some(wait) = self.ensure_image(pod, index).await {
            return Some(wait);
        }
        self.start_container(pod, index).await;
        None
    }

    /// With a runtime that runs images, makes sure the container's image is in the store
    /// as its `imagePullPolicy` says, pulling it in the background. `None`: go ahead and
    /// create the container; `Some(wait)`: not yet (pulling, backing off, or never to be
    /// pulled), with the waiting reason set on the slot. Runtimes of host programs ignore
    /// images.
    async fn ensure_image(&mut self, pod: &Pod, index: usize) -> Option<Duration> {
        let crate::image::NodeImages {
            store,
            pull: options,
        } = self.shared.images.clone()?;
        let backoff = self.shared.backoff;
        let events = self.shared.events.clone();
        let slot = &mut self.slots[index];
        let image = slot.spec.image.clone();
        let now = std::time::Instant::now();

        if let Some((task, started)) = &slot.pulling {
            if !task.is_finished() {
                return Some(POLL);
            }
            let started = *started;
            let (task, _) = slot.pulling.take()?;
            let result = task
                .await
                .unwrap_or_else(|e| Err(format!("pull interrupted: {e}")));
            match result {
                Ok(digest) => {
                    slot.pull_backoff.on_success();
                    slot.failing = None;
                    events.pod(
                        pod,
                        "Normal",
                        "Pulled",
                        format!(
                            "Successfully pulled image \"{image}\" in {:.3}s (digest {digest})",
                            started.elapsed().as_secs_f64()
                        ),
                    );
                    return None;
                }
                Err(message) => {
                    slot.pull_backoff.on_failure(now, message.clone(), &backoff);
                    events.pod(
                        pod,
                        "Warning",
                        "Failed",
                        format!("Failed to pull image \"{image}\": {message}"),
                    );
                    events.pod(pod, "Warning", "Failed", "Error: ErrImagePull".into());
                }
            }
        }

        match slot.pull_backoff.wait(now, &image) {
            PullWait::ErrImagePull { message, until } => {
                slot.failing = Some(("ErrImagePull".into(), message));
                return Some(until.saturating_duration_since(now).max(POLL / 2));
            }
            PullWait::BackOff {
                message,
                retry_at,
                announce,
            } => {
                if announce {
                    events.pod(
                        pod,
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                    );
                    events.pod(pod, "Warning", "Failed", "Error: ImagePullBackOff".into());
                }
                slot.failing = Some(("ImagePullBackOff".into(), message));
                return Some(retry_at.saturating_duration_since(now).max(POLL / 2));
            }
            PullWait::Retry => {}
        }

        let policy = PullPolicy::parse(slot.spec.image_pull_policy.as_deref(), &image);
        let present = {
            let store = store.clone();
            let image = image.clone();
            tokio::task::spawn_blocking(move || store.get(&image).is_ok())
                .await
                .unwrap_or(false)
        };
        match decide(policy, present) {
            Decision::UseLocal => None,
            Decision::NeverPull => {
                slot.failing = Some(("ErrImageNeverPull".into(), never_pull_message(&image)));
                events.pod(
                    pod,
                    "Warning",
                    "ErrImageNeverPull",
                    never_pull_message(&image),
                );
                Some(Duration::from_secs(2))
            }
            Decision::Pull => {
                let reference = match crate::image::Reference::parse(&image) {
                    Ok(r) => r,
                    Err(e) => {
                        let message = format!("Failed to apply default image tag \"{image}\": {e}");
                        slot.failing = Some(("InvalidImageName".into(), message.clone()));
                        events.pod(pod, "Warning", "InspectFailed", message);
                        return Some(Duration::from_secs(2));
                    }
                };
                events.pod(
                    pod,
                    "Normal",
                    "Pulling",
                    format!("Pulling image \"{image}\""),
                );
                let task = tokio::spawn(async move {
                    store
                        .pull(&reference, &options)
                        .await
                        .map(|image| image.digest.to_string())
                        .map_err(|e| e.to_string())
                });
                slot.pulling = Some((task, now));
                Some(POLL)
            }
        }
    }

    async fn start_container(&mut self, pod: &Pod, index: usize) {
        let Some(sandbox) = self.sandbox.clone() else {
            return;
        };
        let runtime = self.shared.runtime.clone();
        let pod_ip = self.pod_ip.map(std::net::IpAddr::V4);
        let slot = &mut self.slots[index];
        let config =
            match container_config(pod, &slot.spec, slot.attempts, &sandbox).and_then(|c| {
                let mut options = container_options(&slot.spec)?;
                options.pod_ip = pod_ip;
                Ok((c, options))
            }) {
                Ok(c) => c,
                Err(message) => {
                    slot.failing = Some(("CreateContainerConfigError".into(), message));
                    return;
                }
            };
        let (config, options) = config;
        let info = match runtime
            .create_container_with(&sandbox.id, &config, &options)
            .await
        {
            Ok(info) => info,
            Err(e) => {
                slot.failing = Some(("CreateContainerError".into(), e.to_string()));
                return;
            }
        };
        slot.attempts += 1;
        slot.failing = None;
        self.shared.events.pod(
            pod,
            "Normal",
            "Created",
            format!("Created container {}", slot.spec.name),
        );
        if let Err(e) = runtime.start_container(&info.id).await {
            slot.failing = Some(("RunContainerError".into(), e.to_string()));
            let _ = runtime.remove_container(&info.id).await;
            return;
        }
        let info = runtime.container_status(&info.id).await.unwrap_or(info);
        if matches!(info.state, ContainerState::Running { .. }) {
            self.shared.events.pod(
                pod,
                "Normal",
                "Started",
                format!("Started container {}", slot.spec.name),
            );
        }
        slot.ready = slot.spec.readiness_probe.is_none();
        let named_ports: Vec<(String, i32)> = slot
            .spec
            .ports
            .iter()
            .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
            .collect();
        for (kind, probe) in [
            (ProbeKind::Liveness, slot.spec.liveness_probe.clone()),
            (ProbeKind::Readiness, slot.spec.readiness_probe.clone()),
        ] {
            let Some(probe) = probe else { continue };
            slot.probes.push(tokio::spawn(probe_loop(
                runtime.clone(),
                sandbox.id.clone(),
                info.id.clone(),
                slot.spec.name.clone(),
                kind,
                probe,
                named_ports.clone(),
                self.probe_tx.clone(),
            )));
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        self.shared
            .registry
            .update(&namespace, &pod.metadata.name, |entry| {
                let c = entry.containers.entry(slot.spec.name.clone()).or_default();
                c.current = Some(info.id.clone());
                if !c.logs.contains(&info.log_path) {
                    c.logs.push(info.log_path.clone());
                }
            });
        slot.instance = Some(info);
    }

    fn views(&self) -> Vec<ContainerView> {
        self.slots
            .iter()
            .map(|slot| {
                let current = if let Some(done) = &slot.done {
                    Current::Done(done.clone())
                } else if let Some((reason, message)) = &slot.failing {
                    Current::Failing {
                        reason: reason.clone(),
                        message: message.clone(),
                    }
                } else if let Some(info) = &slot.instance {
                    match &info.state {
                        ContainerState::Running { started_at, .. } => Current::Running {
                            container_id: info.id.clone(),
                            started_at: *started_at,
                            ready: slot.ready,
                        },
                        ContainerState::Created => Current::Creating,
                        ContainerState::Exited { .. } => match ended_of(info) {
                            Some(e) => Current::Done(e),
                            None => Current::Creating,
                        },
                    }
                } else if let (Some((_, delay)), Some(last)) = (slot.restart_at, &slot.last) {
                    Current::BackOff {
                        delay_secs: delay,
                        last: last.clone(),
                    }
                } else {
                    Current::Creating
                };
                ContainerView {
                    name: slot.spec.name.clone(),
                    image: slot.spec.image.clone(),
                    current,
                    restart_count: slot.restart_count(),
                    last: slot.last.clone(),
                }
            })
            .collect()
    }

    async fn write_status(&mut self, pod: &Pod) {
        let facts = PodFacts {
            pod_name: pod.metadata.name.clone(),
            pod_ip: self.pod_ip.map(|ip| ip.to_string()),
            host_ip: Some(self.shared.node_ip.clone()),
            start_time: self.start_time,
        };
        let previous = pod.status.as_ref();
        let status = pod_status(previous, &self.views(), &facts, chrono::Utc::now());
        if self.last_status.as_ref() == Some(&status) || previous == Some(&status) {
            self.last_status = Some(status);
            return;
        }
        let mut updated = pod.clone();
        updated.status = Some(status.clone());
        // The agent owns the status of its pods: replace it whatever the version.
        updated.metadata.resource_version = None;
        match self.shared.client.update_status(&updated).await {
            Ok(_) => self.last_status = Some(status),
            Err(e) => tracing::debug!(pod = pod.metadata.name, "status not written: {e}"),
        }
    }

    /// Stops every container (SIGTERM, then SIGKILL after `grace`) and removes the sandbox.
    async fn teardown(&mut self, pod: Option<&Pod>, grace: Duration) {
        self.stop_probes();
        let runtime = self.shared.runtime.clone();
        let sandbox = match &self.sandbox {
            Some(s) => Some(s.clone()),
            None => runtime
                .list_sandboxes()
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|s| s.pod_uid == self.uid)),
        };
        let Some(sandbox) = sandbox else {
            return;
        };
        let containers = runtime
            .list_containers(Some(&sandbox.id))
            .await
            .unwrap_or_default();
        let stops = containers
            .iter()
            .filter(|c| matches!(c.state, ContainerState::Running { .. }))
            .map(|c| {
                if let Some(pod) = pod {
                    self.shared.events.pod(
                        pod,
                        "Normal",
                        "Killing",
                        format!("Stopping container {}", c.name),
                    );
                }
                runtime.stop_container(&c.id, grace)
            });
        for result in futures::future::join_all(stops).await {
            if let Err(e) = result {
                tracing::warn!("stopping a container: {e}");
            }
        }
        if let Err(e) = runtime.remove_sandbox(&sandbox.id).await {
            tracing::warn!(sandbox = sandbox.id, "removing the sandbox: {e}");
        }
        if let Some(network) = &self.shared.network
            && let Err(e) = network.detach(&self.uid).await
        {
            tracing::warn!(pod = self.uid, "detaching from the pod network: {e}");
        }
        self.pod_ip = None;
        self.sandbox = None;
        for slot in &mut self.slots {
            slot.instance = None;
        }
        if let Some(pod) = pod {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            self.shared
                .registry
                .remove(&namespace, &pod.metadata.name, &self.uid);
        } else {
            self.shared
                .registry
                .remove(&sandbox.namespace, &sandbox.name, &self.uid);
        }
    }

    /// Everything is stopped: let the pod leave the API.
    async fn confirm_deletion(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            force: false,
        };
        for _ in 0..10 {
            match self
                .shared
                .client
                .delete::<Pod>(&namespace, &pod.metadata.name, &params)
                .await
            {
                Ok(_) => return,
                Err(e) if e.is_not_found() => return,
                Err(e) => {
                    tracing::warn!(pod = pod.metadata.name, "confirming deletion: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The grace period left for a terminating pod.
fn deletion_grace(pod: &Pod) -> Duration {
    let Some(deadline) = pod.metadata.deletion_timestamp else {
        return Duration::ZERO;
    };
    let by_deadline = (deadline - chrono::Utc::now()).to_std().unwrap_or_default();
    let requested = pod
        .metadata
        .deletion_grace_period_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(by_deadline);
    requested.min(by_deadline + Duration::from_secs(1))
}

/// What an image runtime needs beyond [`container_config`]: command, args and env as the
/// pod gives them, and resources (requests default to limits, as in Kubernetes).
pub fn container_options(container: &Container) -> Result<ContainerOptions, String> {
    let mut resources = Resources::default();
    if let Some(r) = &container.resources {
        let cpu = |q: &skiff_api::types::Quantity| {
            q.cpu_millis()
                .map_err(|e| format!("container {:?}: cpu: {e}", container.name))
        };
        let bytes = |q: &skiff_api::types::Quantity| {
            q.bytes()
                .map_err(|e| format!("container {:?}: memory: {e}", container.name))
        };
        resources.cpu_limit_millis = r.limits.get("cpu").map(cpu).transpose()?;
        resources.cpu_request_millis = r
            .requests
            .get("cpu")
            .map(cpu)
            .transpose()?
            .or(resources.cpu_limit_millis);
        resources.memory_limit_bytes = r.limits.get("memory").map(bytes).transpose()?;
    }
    Ok(ContainerOptions {
        spec: ContainerSpec::from(container),
        resources,
        pod_ip: None,
    })
}

/// The runtime's view of a container: argv, env, mounts resolved against the sandbox.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    attempt: u32,
    sandbox: &SandboxInfo,
) -> Result<ContainerConfig, String> {
    // May be empty: an image runtime takes the image's Entrypoint/Cmd; the process runtime
    // refuses it.
    let mut argv: Vec<String> = container.command.clone();
    argv.extend(container.args.iter().cloned());
    let env: BTreeMap<String, String> = container
        .env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let mut mounts = Vec::new();
    for mount in &container.volume_mounts {
        let volume = pod
            .spec
            .volumes
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| format!("volume {:?} is not defined in the pod", mount.name))?;
        let host_path = if volume.empty_dir.is_some() {
            sandbox.volumes_dir.join(&volume.name)
        } else if let Some(host) = &volume.host_path {
            PathBuf::from(&host.path)
        } else {
            return Err(format!("volume {:?} has no source", volume.name));
        };
        mounts.push(Mount {
            host_path,
            container_path: PathBuf::from(&mount.mount_path),
            read_only: mount.read_only.unwrap_or(false),
        });
    }
    Ok(ContainerConfig {
        name: container.name.clone(),
        attempt,
        image: container.image.clone(),
        argv,
        env,
        working_dir: container.working_dir.as_ref().map(PathBuf::from),
        mounts,
    })
}

#[allow(clippy::too_many_arguments)]
async fn probe_loop<R: Runtime>(
    runtime: Arc<R>,
    sandbox: String,
    instance: String,
    container: String,
    kind: ProbeKind,
    probe: Probe,
    named_ports: Vec<(String, i32)>,
    results: mpsc::UnboundedSender<ProbeResult>,
) {
    let timing = Timing::of(&probe);
    let mut verdict = Verdict::new(kind == ProbeKind::Liveness);
    tokio::time::sleep(timing.initial_delay).await;
    loop {
        let outcome = probe::check(
            runtime.as_ref(),
            &sandbox,
            &instance,
            &probe,
            &named_ports,
            timing.timeout,
        )
        .await;
        let ok = outcome.is_ok();
        if verdict.record(ok, &timing) {
            let sent = results.send(ProbeResult {
                container: container.clone(),
                instance: instance.clone(),
                kind,
                passing: verdict.passing(),
                message: outcome.err().unwrap_or_default(),
            });
            if sent.is_err() {
                return;
            }
        }
        tokio::time::sleep(timing.period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> SandboxInfo {
        SandboxInfo {
            id: "s1".into(),
            pod_uid: "u1".into(),
            namespace: "default".into(),
            name: "web".into(),
            netns_path: "/run/x/netns".into(),
            volumes_dir: "/var/lib/skiff/s1/volumes".into(),
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {
                "containers": [{
                    "name": "main", "image": "busybox",
                    "command": ["/bin/busybox"], "args": ["httpd", "-f"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B"}],
                    "workingDir": "/tmp",
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/scratch"},
                        {"name": "host", "mountPath": "/host", "readOnly": true}
                    ]
                }],
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": "/srv/data"}}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn worker_1_container_config_resolves_volumes_and_argv() {
        let pod = pod();
        let c = container_config(&pod, &pod.spec.containers[0], 2, &sandbox()).unwrap();
        assert_eq!(c.argv, vec!["/bin/busybox", "httpd", "-f"]);
        assert_eq!(c.attempt, 2);
        assert_eq!(c.env["A"], "1");
        assert_eq!(c.env["B"], "");
        assert_eq!(c.working_dir, Some(PathBuf::from("/tmp")));
        assert_eq!(
            c.mounts,
            vec![
                Mount {
                    host_path: "/var/lib/skiff/s1/volumes/scratch".into(),
                    container_path: "/scratch".into(),
                    read_only: false
                },
                Mount {
                    host_path: "/srv/data".into(),
                    container_path: "/host".into(),
                    read_only: true
                },
            ]
        );
    }

    #[test]
    fn worker_2_container_config_errors_name_the_problem() {
        let mut pod = pod();
        pod.spec.containers[0].volume_mounts[0].name = "nope".into();
        let err = container_config(&pod, &pod.spec.containers[0], 0, &sandbox()).unwrap_err();
        assert!(err.contains("\"nope\""), "{err}");
        // No command is the image's business (Entrypoint/Cmd); the process runtime refuses it.
        let mut pod = self::pod();
        pod.spec.containers[0].command.clear();
        pod.spec.containers[0].args.clear();
        let c = container_config(&pod, &pod.spec.containers[0], 0, &sandbox()).unwrap();
        assert!(c.argv.is_empty());
    }

    #[test]
    fn worker_4_container_options_keep_command_args_and_resources() {
        let mut pod = pod();
        pod.spec.containers[0].resources = Some(
            serde_json::from_value(serde_json::json!({
                "limits": {"cpu": "500m", "memory": "16Mi"}
            }))
            .unwrap(),
        );
        let o = container_options(&pod.spec.containers[0]).unwrap();
        assert_eq!(o.spec.command, vec!["/bin/busybox"]);
        assert_eq!(o.spec.args, vec!["httpd", "-f"]);
        assert_eq!(o.spec.env[0], ("A".to_string(), "1".to_string()));
        assert_eq!(
            o.resources,
            Resources {
                cpu_request_millis: Some(500),
                cpu_limit_millis: Some(500),
                memory_limit_bytes: Some(16 << 20),
            }
        );
        pod.spec.containers[0].resources =
            Some(serde_json::from_value(serde_json::json!({"requests": {"cpu": "250m"}})).unwrap());
        let o = container_options(&pod.spec.containers[0]).unwrap();
        assert_eq!(o.resources.cpu_request_millis, Some(250));
        assert_eq!(o.resources.cpu_limit_millis, None);
    }

    #[test]
    fn worker_3_deletion_grace_is_bounded_by_the_deadline() {
        let mut pod = pod();
        pod.metadata.deletion_timestamp = Some(chrono::Utc::now() + chrono::Duration::seconds(5));
        pod.metadata.deletion_grace_period_seconds = Some(30);
        assert!(deletion_grace(&pod) <= Duration::from_secs(6));
        pod.metadata.deletion_grace_period_seconds = Some(2);
        assert_eq!(deletion_grace(&pod), Duration::from_secs(2));
        pod.metadata.deletion_timestamp = None;
        assert_eq!(deletion_grace(&pod), Duration::ZERO);
    }
}
