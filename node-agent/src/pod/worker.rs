//! One task per pod: the runner half of the pod's lifecycle. It makes the runtime match the
//! pod (sandbox, containers, probes), writes the pod's status, and tears everything down on
//! deletion; what to do — restarts, back-off, pulls, probe verdicts, the order of deletion —
//! is decided by the pure step functions of `lifecycle.rs`, whose [`Action`]s it performs.
//!
//! The loop is level-triggered: each round looks at the latest pod from the watch and at the
//! runtime's containers, acts, and sleeps until the pod changes, a probe verdict flips, a
//! back-off ends or the next status poll.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_api::object::Object;
use skiff_api::types::{Container, Pod, PodStatus, Probe};
use skiff_api::validate::{ValidationError, validate};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::api::{PodApi, PodImages};
use super::lifecycle::{
    self, Action, Next, POLL, ProbeKind, ProbeResult, RETRY, Round, Slot, teardown,
};
use super::probe::{self, Timing, Verdict};
use super::restart::{BackoffPolicy, RestartPolicy};
use super::status::{PodFacts, pod_status};
use crate::image::ContainerSpec;
use crate::pod_index::{ContainerEntry, PodIndex};
use crate::runtime::security::Security;
use crate::runtime::{
    ContainerConfig, ContainerOptions, Mount, Resources, Runtime, RuntimeError, SandboxConfig,
    SandboxInfo,
};

/// The reason (status and event) of a pod the agent refuses because its spec is invalid.
pub const INVALID_POD_REASON: &str = "InvalidPodSpec";

/// The API's own validation, run again on what the watch brought.
fn validate_pod(pod: &Pod) -> Result<(), ValidationError> {
    validate(&Object::Pod(pod.clone()))
}

/// What every pod worker shares.
pub struct Shared<R> {
    pub runtime: Arc<R>,
    /// The pod network, unless the agent runs without one.
    pub network: Option<Arc<skiff_netplugin::network::PodNetwork>>,
    /// Status writes, deletion confirmations and events.
    pub api: Arc<dyn PodApi>,
    pub node_name: String,
    pub node_ip: String,
    pub backoff: BackoffPolicy,
    pub pod_index: Arc<PodIndex>,
    /// The image store and pull settings, when the runtime runs containers from images.
    pub images: Option<Arc<dyn PodImages>>,
}

/// The tasks a slot runs besides the worker.
#[derive(Default)]
struct Tasks {
    probes: Vec<JoinHandle<()>>,
    /// A pull of its image under way: the image's digest, or the reason.
    pull: Option<JoinHandle<Result<String, String>>>,
}

impl Tasks {
    fn stop_probes(&mut self) {
        for probe in self.probes.drain(..) {
            probe.abort();
        }
    }
}

/// The clock of back-offs and pulls: tokio's, so a paused clock in tests moves them too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub struct PodWorker<R: Runtime> {
    shared: Arc<Shared<R>>,
    pod: watch::Receiver<Option<Pod>>,
    uid: String,
    sandbox: Option<SandboxInfo>,
    slots: Vec<Slot>,
    /// Beside `slots`, index for index.
    tasks: Vec<Tasks>,
    last_status: Option<PodStatus>,
    /// The resourceVersion of the pod copy `last_status` was written over: while the copy
    /// seen is still that one, the watch has not brought the write back yet.
    last_written_over: Option<String>,
    start_time: Option<skiff_api::meta::Time>,
    /// The pod's address on the pod network, once attached.
    pod_ip: Option<std::net::Ipv4Addr>,
    probe_tx: mpsc::UnboundedSender<ProbeResult>,
    probe_rx: mpsc::UnboundedReceiver<ProbeResult>,
    /// When this agent first saw the pod not yet running, until its Running status is
    /// written (the pod-start histogram); `None` for a pod adopted already running.
    start_seen: Option<Instant>,
}

impl<R: Runtime> PodWorker<R> {
    pub fn new(shared: Arc<Shared<R>>, uid: String, pod: watch::Receiver<Option<Pod>>) -> Self {
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let running = pod
            .borrow()
            .as_ref()
            .is_some_and(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
        let start_seen = (!running).then(Instant::now);
        PodWorker {
            shared,
            pod,
            uid,
            sandbox: None,
            slots: Vec::new(),
            tasks: Vec::new(),
            last_status: None,
            last_written_over: None,
            start_time: None,
            pod_ip: None,
            probe_tx,
            probe_rx,
            start_seen,
        }
    }

    /// Runs the pod until it is deleted (and its sandbox is gone).
    pub async fn run(mut self) {
        loop {
            let pod = self.pod.borrow_and_update().clone();
            let round = lifecycle::round(pod.as_ref(), &self.slots, chrono::Utc::now());
            match round {
                Round::Gone => {
                    self.teardown(None, Duration::ZERO, false).await;
                    return;
                }
                Round::Delete { grace } => {
                    self.teardown(pod.as_ref(), grace, true).await;
                    return;
                }
                Round::FinishedElsewhere | Round::Sync => {}
            }
            let Some(pod) = pod else { return };
            let wake = if let Err(e) = validate_pod(&pod) {
                // Names become paths, cgroups and runc ids: a spec the API should have refused
                // (a bug, an old server, a store edited by hand) touches nothing on this node.
                self.refuse(&pod, e).await;
                Duration::from_secs(3600)
            } else if round == Round::FinishedElsewhere {
                self.teardown(Some(&pod), Duration::ZERO, false).await;
                Duration::from_secs(3600)
            } else {
                self.sync(&pod).await
            };
            tokio::select! {
                changed = self.pod.changed() => {
                    if changed.is_err() {
                        // The agent dropped this pod's channel: it is shutting down.
                        self.stop_probes();
                        return;
                    }
                }
                Some(result) = self.probe_rx.recv() => self.on_probe(&pod, result).await,
                _ = tokio::time::sleep(wake) => {}
            }
        }
    }

    fn stop_probes(&mut self) {
        for tasks in &mut self.tasks {
            tasks.stop_probes();
        }
    }

    async fn on_probe(&mut self, pod: &Pod, result: ProbeResult) {
        let Some(index) = self
            .slots
            .iter()
            .position(|s| s.spec.name == result.container)
        else {
            return;
        };
        let grace = lifecycle::termination_grace(pod);
        let actions = self.slots[index].on_probe(&result, grace);
        self.apply(pod, Some(index), actions).await;
    }

    /// Performs `actions`, those of a slot with its index.
    async fn apply(&mut self, pod: &Pod, index: Option<usize>, actions: Vec<Action>) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        for action in actions {
            match action {
                Action::Event {
                    type_,
                    reason,
                    message,
                } => self.shared.api.event(pod, type_, reason, message),
                Action::StopProbes => {
                    if let Some(i) = index {
                        self.tasks[i].stop_probes();
                    }
                }
                Action::StartProbes { instance } => {
                    if let Some(i) = index {
                        self.start_probes(i, &instance);
                    }
                }
                Action::RemoveContainer { id } => {
                    let _ = self.shared.runtime.remove_container(&id).await;
                    if let Some(i) = index {
                        let name = &self.slots[i].spec.name;
                        self.shared
                            .pod_index
                            .update(&namespace, &pod.metadata.name, |entry| {
                                if let Some(c) = entry.containers.get_mut(name) {
                                    c.current = None;
                                }
                            });
                    }
                }
                Action::DiscardContainer { id } => {
                    let _ = self.shared.runtime.remove_container(&id).await;
                }
                Action::StopContainer { id, grace } => {
                    let runtime = self.shared.runtime.clone();
                    tokio::spawn(async move {
                        let _ = runtime.stop_container(&id, grace).await;
                    });
                }
                Action::Register { instance } => {
                    let Some(i) = index else { continue };
                    let name = self.slots[i].spec.name.clone();
                    let mut kept = Vec::new();
                    self.shared
                        .pod_index
                        .update(&namespace, &pod.metadata.name, |entry| {
                            let c = entry.containers.entry(name).or_default();
                            c.current = Some(instance.id.clone());
                            if !c.logs.contains(&instance.log_path) {
                                c.logs.push(instance.log_path.clone());
                            }
                            // The current attempt's and the previous one's, as the kubelet.
                            let older = c.logs.len().saturating_sub(2);
                            c.logs.drain(..older);
                            kept = c.logs.clone();
                        });
                    let pruned = tokio::task::spawn_blocking(move || crate::logs::keep_only(&kept));
                    match pruned.await {
                        Ok(Ok(removed)) if !removed.is_empty() => {
                            tracing::debug!(?removed, "deleted the logs of older attempts")
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::warn!("deleting older attempts' logs: {e}"),
                        Err(e) => tracing::warn!("deleting older attempts' logs: {e}"),
                    }
                }
                Action::Pull { image } => {
                    if let (Some(i), Some(images)) = (index, &self.shared.images) {
                        self.tasks[i].pull = Some(tokio::spawn(images.pull(&image)));
                    }
                }
                Action::StopContainers { ids, grace } => {
                    let runtime = &self.shared.runtime;
                    let stops = ids.iter().map(|id| runtime.stop_container(id, grace));
                    for result in futures::future::join_all(stops).await {
                        if let Err(e) = result {
                            tracing::warn!("stopping a container: {e}");
                        }
                    }
                }
                Action::RemoveSandbox { id } => {
                    if let Err(e) = self.shared.runtime.remove_sandbox(&id).await {
                        tracing::warn!(sandbox = id, "removing the sandbox: {e}");
                    }
                    self.sandbox = None;
                    for slot in &mut self.slots {
                        slot.instance = None;
                    }
                }
                Action::DetachNetwork => {
                    if let Some(network) = &self.shared.network
                        && let Err(e) = network.detach(&self.uid).await
                    {
                        tracing::warn!(pod = self.uid, "detaching from the pod network: {e}");
                    }
                    self.pod_ip = None;
                }
                Action::Forget { namespace, name } => {
                    self.shared.pod_index.remove(&namespace, &name, &self.uid);
                }
                Action::ConfirmDeletion { namespace, name } => {
                    self.confirm_deletion(&namespace, &name).await;
                }
            }
        }
    }

    /// One round; returns how long to sleep at most.
    async fn sync(&mut self, pod: &Pod) -> Duration {
        if self.slots.is_empty() {
            self.slots = pod.spec.containers.iter().cloned().map(Slot::new).collect();
            self.tasks = self.slots.iter().map(|_| Tasks::default()).collect();
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
                        slot.fail("CreatePodSandboxError", message.clone());
                    }
                    self.write_status(pod).await;
                    return RETRY;
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
            slot.adopt(&existing);
        }
        self.start_time.get_or_insert_with(chrono::Utc::now);
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        self.shared
            .pod_index
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
        let slot = &self.slots[index];
        if slot.done.is_some() {
            return None;
        }
        if let Some(instance) = &slot.instance {
            let status = match self.shared.runtime.container_status(&instance.id).await {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!(container = instance.id, "status unknown: {e}");
                    None
                }
            };
            let backoff = self.shared.backoff;
            let actions = self.slots[index].observe(status, policy, &backoff, now());
            self.apply(pod, Some(index), actions).await;
        }
        match self.slots[index].next(now()) {
            Next::Idle => None,
            Next::Wait(delay) => Some(delay),
            Next::Start => {
                if let Some(wait) = self.ensure_image(pod, index).await {
                    return Some(wait);
                }
                self.start_container(pod, index).await;
                // One that exited at once (StartError) is restarted or done by policy now:
                // shown as exited, the pod would read Failed and, once that comes back
                // through the watch, look finished elsewhere.
                let started = self.slots[index].instance.clone();
                if started.as_ref().and_then(lifecycle::ended_of).is_some() {
                    let backoff = self.shared.backoff;
                    let actions = self.slots[index].observe(started, policy, &backoff, now());
                    self.apply(pod, Some(index), actions).await;
                }
                None
            }
        }
    }

    /// With a runtime that runs images, makes sure the container's image is in the store
    /// as its `imagePullPolicy` says, pulling it in the background. `None`: go ahead and
    /// create the container; `Some(wait)`: not yet (pulling, backing off, or never to be
    /// pulled), with the waiting reason set on the slot. Runtimes of host programs ignore
    /// images.
    async fn ensure_image(&mut self, pod: &Pod, index: usize) -> Option<Duration> {
        let images = self.shared.images.clone()?;
        let backoff = self.shared.backoff;
        if let Some(task) = &self.tasks[index].pull {
            if !task.is_finished() {
                return Some(POLL);
            }
            let task = self.tasks[index].pull.take()?;
            let result = task
                .await
                .unwrap_or_else(|e| Err(format!("pull interrupted: {e}")));
            let (actions, go) = self.slots[index].pull_finished(result, now(), &backoff);
            self.apply(pod, Some(index), actions).await;
            if go {
                return None;
            }
        }
        if let Some((actions, wait)) = self.slots[index].pull_wait(now()) {
            self.apply(pod, Some(index), actions).await;
            return Some(wait);
        }
        let present = images.present(&self.slots[index].spec.image).await;
        let (actions, wait) = self.slots[index].image_decision(present, now())?;
        self.apply(pod, Some(index), actions).await;
        Some(wait)
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
                let mut options = container_options(pod, &slot.spec)?;
                options.pod_ip = pod_ip;
                Ok((c, options))
            }) {
                Ok(c) => c,
                Err(message) => {
                    slot.fail("CreateContainerConfigError", message);
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
                let reason = match e {
                    RuntimeError::Config(_) => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                slot.fail(reason, e.to_string());
                return;
            }
        };
        if info.attempt > 0 {
            crate::metrics::METRICS.container_restarts.inc();
        }
        let actions = slot.created();
        self.apply(pod, Some(index), actions).await;
        if let Err(e) = runtime.start_container(&info.id).await {
            let actions = self.slots[index].start_failed(&info.id, e.to_string());
            self.apply(pod, Some(index), actions).await;
            return;
        }
        let info = runtime.container_status(&info.id).await.unwrap_or(info);
        let actions = self.slots[index].started(info);
        self.apply(pod, Some(index), actions).await;
    }

    fn start_probes(&mut self, index: usize, instance: &str) {
        let Some(sandbox) = &self.sandbox else {
            return;
        };
        let spec = &self.slots[index].spec;
        let named_ports: Vec<(String, i32)> = spec
            .ports
            .iter()
            .filter_map(|p| p.name.clone().map(|n| (n, p.container_port)))
            .collect();
        for (kind, probe) in [
            (ProbeKind::Liveness, spec.liveness_probe.clone()),
            (ProbeKind::Readiness, spec.readiness_probe.clone()),
        ] {
            let Some(probe) = probe else { continue };
            self.tasks[index].probes.push(tokio::spawn(probe_loop(
                self.shared.runtime.clone(),
                sandbox.id.clone(),
                instance.to_string(),
                spec.name.clone(),
                kind,
                probe,
                named_ports.clone(),
                self.probe_tx.clone(),
            )));
        }
    }

    /// Fails a pod the agent will not run, once: a Warning event and a Failed status naming
    /// what is invalid.
    async fn refuse(&mut self, pod: &Pod, error: ValidationError) {
        let message = format!("Pod {:?} is invalid: {error}", pod.metadata.name);
        let status = PodStatus {
            phase: Some("Failed".into()),
            reason: Some(INVALID_POD_REASON.into()),
            message: Some(message.clone()),
            host_ip: Some(self.shared.node_ip.clone()),
            ..PodStatus::default()
        };
        if self.last_status.as_ref() == Some(&status) || pod.status.as_ref() == Some(&status) {
            return;
        }
        self.shared
            .api
            .event(pod, "Warning", INVALID_POD_REASON, message);
        let mut updated = pod.clone();
        updated.status = Some(status.clone());
        match self.shared.api.write_status(&updated).await {
            Ok(()) => self.last_status = Some(status),
            Err(e) => tracing::debug!(pod = pod.metadata.name, "status not written: {e}"),
        }
    }

    async fn write_status(&mut self, pod: &Pod) {
        let facts = PodFacts {
            pod_name: pod.metadata.name.clone(),
            pod_ip: self.pod_ip.map(|ip| ip.to_string()),
            host_ip: Some(self.shared.node_ip.clone()),
            start_time: self.start_time,
        };
        let previous = pod.status.as_ref();
        let views: Vec<_> = self.slots.iter().map(Slot::view).collect();
        let status = pod_status(previous, &views, &facts, chrono::Utc::now());
        // The API's copy decides: another writer (the node lifecycle controller marking the
        // pod not ready while this node was lost) may have changed it since this agent last
        // wrote the same status, which must then be written again.
        let write_pending = self.last_status.as_ref() == Some(&status)
            && self.last_written_over == pod.metadata.resource_version;
        if write_pending || previous == Some(&status) {
            self.last_status = Some(status);
            return;
        }
        let mut updated = pod.clone();
        updated.status = Some(status.clone());
        match self.shared.api.write_status(&updated).await {
            Ok(()) => {
                if status.phase.as_deref() == Some("Running")
                    && let Some(seen) = self.start_seen.take()
                {
                    crate::metrics::METRICS
                        .pod_start
                        .observe(seen.elapsed().as_secs_f64());
                }
                self.last_status = Some(status);
                self.last_written_over = pod.metadata.resource_version.clone();
            }
            Err(e) => tracing::debug!(pod = pod.metadata.name, "status not written: {e}"),
        }
    }

    /// Stops every container (SIGTERM, then SIGKILL after `grace`), removes the sandbox
    /// and, with `confirm`, lets the pod leave the API.
    async fn teardown(&mut self, pod: Option<&Pod>, grace: Duration, confirm: bool) {
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
        let containers = match &sandbox {
            Some(sandbox) => runtime
                .list_containers(Some(&sandbox.id))
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let actions = teardown(pod, sandbox.as_ref(), &containers, grace, confirm);
        // A pod gone from the API has no events or confirmation: any pod stands in.
        let fallback = Pod::default();
        self.apply(pod.unwrap_or(&fallback), None, actions).await;
    }

    /// Everything is stopped: let the pod leave the API.
    async fn confirm_deletion(&self, namespace: &str, name: &str) {
        for _ in 0..10 {
            match self.shared.api.confirm_deletion(namespace, name).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(pod = name, "confirming deletion: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// What an image runtime needs beyond [`container_config`]: command, args and env as the
/// pod gives them, resources (requests default to limits, as in Kubernetes), and the
/// container's securityContext over the pod's.
pub fn container_options(pod: &Pod, container: &Container) -> Result<ContainerOptions, String> {
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
        security: Security::effective(
            pod.spec.security_context.as_ref(),
            container.security_context.as_ref(),
        ),
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
    use crate::pod::lifecycle::deletion_grace;

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
    fn container_config_resolves_volumes_and_argv() {
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
    fn container_config_errors_name_the_problem() {
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
    fn container_options_keep_command_args_and_resources() {
        let mut pod = pod();
        pod.spec.containers[0].resources = Some(
            serde_json::from_value(serde_json::json!({
                "limits": {"cpu": "500m", "memory": "16Mi"}
            }))
            .unwrap(),
        );
        let o = container_options(&pod, &pod.spec.containers[0]).unwrap();
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
        let o = container_options(&pod, &pod.spec.containers[0]).unwrap();
        assert_eq!(o.resources.cpu_request_millis, Some(250));
        assert_eq!(o.resources.cpu_limit_millis, None);
    }

    #[test]
    fn container_options_carry_the_containers_security_context_over_the_pods() {
        let mut pod = pod();
        pod.spec.security_context = Some(
            serde_json::from_value(serde_json::json!({"runAsUser": 1000, "fsGroup": 2000}))
                .unwrap(),
        );
        pod.spec.containers[0].security_context = Some(
            serde_json::from_value(
                serde_json::json!({"runAsUser": 1001, "readOnlyRootFilesystem": true}),
            )
            .unwrap(),
        );
        let o = container_options(&pod, &pod.spec.containers[0]).unwrap();
        assert_eq!(o.security.run_as_user, Some(1001));
        assert_eq!(o.security.fs_group, Some(2000));
        assert!(o.security.read_only_root_filesystem);
    }

    #[test]
    fn deletion_grace_is_bounded_by_the_deadline() {
        let mut pod = pod();
        pod.metadata.deletion_timestamp = Some(chrono::Utc::now() + chrono::Duration::seconds(5));
        pod.metadata.deletion_grace_period_seconds = Some(30);
        assert!(deletion_grace(&pod, chrono::Utc::now()) <= Duration::from_secs(6));
        pod.metadata.deletion_grace_period_seconds = Some(2);
        assert_eq!(
            deletion_grace(&pod, chrono::Utc::now()),
            Duration::from_secs(2)
        );
        pod.metadata.deletion_timestamp = None;
        assert_eq!(deletion_grace(&pod, chrono::Utc::now()), Duration::ZERO);
    }
}
