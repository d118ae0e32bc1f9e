//! A scriptable in-memory [`Runtime`] for tests (the `testing` feature, or this crate's own
//! tests): no namespaces, cgroups, runc or processes, so pod lifecycle tests run as an
//! ordinary user, and on tokio's paused clock, so back-offs of minutes take microseconds.
//!
//! Each container runs as its [`Behavior`] says (the behaviours queued for its name, one per
//! start; the last one repeats): it runs until stopped, exits with a code after a while,
//! cannot start, or ignores SIGTERM until SIGKILL. [`FakeRuntime::exit`] ends a running
//! container on demand. Every change (and the pod API's writes, through [`FakeApi`]) is
//! recorded in one journal, in order and with the fake clock, so tests check the order of
//! deletion across the runtime and the control plane. Reads (status, lists) are not
//! recorded: the worker polls them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use skiff_api::types::{Pod, PodStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use super::pty::{Pty, TerminalSize};
use super::{
    ContainerConfig, ContainerInfo, ContainerState, ExecProcess, Result, Runtime, RuntimeError,
    SandboxConfig, SandboxInfo,
};
use crate::pod::api::{PodApi, PodImages};

/// How one start of a container goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// Runs until stopped; exits on SIGTERM (143).
    Run,
    /// Runs for `after`, then exits with `code`.
    Exit { after: Duration, code: i32 },
    /// The program cannot be started: Exited with reason "StartError" (as runc reports it).
    CannotStart(String),
    /// Runs until stopped, and ignores SIGTERM: only SIGKILL ends it (137).
    IgnoreSigterm,
}

/// One entry of the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    CreateSandbox {
        pod_uid: String,
    },
    RemoveSandbox {
        id: String,
    },
    CreateContainer {
        name: String,
        attempt: u32,
    },
    StartContainer {
        id: String,
    },
    StopContainer {
        id: String,
        grace: Duration,
    },
    /// A signal the stop sent (15 or 9) to a running container.
    Signal {
        id: String,
        signal: i32,
    },
    RemoveContainer {
        id: String,
    },
    /// From [`FakeApi`]: the pod's status was written.
    WriteStatus(Box<PodStatus>),
    /// From [`FakeApi`]: the pod may leave the API.
    ConfirmDeletion {
        namespace: String,
        name: String,
    },
    /// From [`FakeApi`]: an event about the pod.
    Event {
        reason: String,
        message: String,
    },
    /// From [`FakeImages`]: a pull started.
    Pull {
        image: String,
    },
    /// `exec -t`: the command and the terminal's first size.
    ExecTty {
        id: String,
        argv: Vec<String>,
        size: TerminalSize,
    },
}

struct Container {
    info: ContainerInfo,
    behavior: Behavior,
    started: Option<Instant>,
    /// When it ends by itself, and how.
    exit_at: Option<(Instant, i32)>,
    ignores_sigterm: bool,
}

#[derive(Default)]
struct State {
    journal: Vec<(Duration, Call)>,
    sandboxes: BTreeMap<String, SandboxInfo>,
    containers: BTreeMap<String, Container>,
    scripts: HashMap<String, VecDeque<Behavior>>,
    open_ports: HashSet<u16>,
}

/// The fake runtime; share it as `Arc<FakeRuntime>`.
pub struct FakeRuntime {
    state: Mutex<State>,
    /// The fake clock's origin: tokio's clock (paused in tests) and the wall time it maps to.
    epoch: (Instant, DateTime<Utc>),
    /// What "open" ports connect to: a real loopback socket, as `connect` must return one.
    listener: TcpListener,
}

impl FakeRuntime {
    pub fn new() -> Arc<FakeRuntime> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        Arc::new(FakeRuntime {
            state: Mutex::new(State::default()),
            epoch: (Instant::now(), Utc::now()),
            listener,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake runtime lock")
    }

    /// Wall time that follows tokio's (paused) clock, so container run times add up.
    pub fn now_utc(&self) -> DateTime<Utc> {
        let elapsed = Instant::now() - self.epoch.0;
        self.epoch.1 + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }

    /// Time since the fake was made, on tokio's clock.
    pub fn elapsed(&self) -> Duration {
        Instant::now() - self.epoch.0
    }

    fn record(&self, state: &mut State, call: Call) {
        state.journal.push((self.elapsed(), call));
    }

    /// Queues how the next starts of the container `name` go (in any pod); the last
    /// behaviour repeats. Without a script a container runs until stopped.
    pub fn script(&self, name: &str, behaviors: impl IntoIterator<Item = Behavior>) {
        self.lock()
            .scripts
            .entry(name.to_string())
            .or_default()
            .extend(behaviors);
    }

    /// Makes the running instance of the container `name` exit with `code` now.
    pub fn exit(&self, name: &str, code: i32) {
        let now = Instant::now();
        let mut state = self.lock();
        for c in state.containers.values_mut() {
            if c.info.name == name && matches!(c.info.state, ContainerState::Running { .. }) {
                c.exit_at = Some((now, code));
            }
        }
    }

    /// Whether TCP connects (tcpSocket and httpGet probes) to `port` succeed.
    pub fn set_port_open(&self, port: u16, open: bool) {
        let mut state = self.lock();
        if open {
            state.open_ports.insert(port);
        } else {
            state.open_ports.remove(&port);
        }
    }

    /// Everything recorded so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().journal.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Everything recorded so far, with the fake clock's time of each.
    pub fn timed_calls(&self) -> Vec<(Duration, Call)> {
        self.lock().journal.clone()
    }

    /// The last status written through [`FakeApi`].
    pub fn last_status(&self) -> Option<PodStatus> {
        self.lock().journal.iter().rev().find_map(|(_, c)| match c {
            Call::WriteStatus(s) => Some((**s).clone()),
            _ => None,
        })
    }

    /// The pod API that records into this fake's journal.
    pub fn api(self: &Arc<Self>) -> Arc<FakeApi> {
        Arc::new(FakeApi {
            runtime: self.clone(),
            echo: Mutex::new(None),
        })
    }

    /// Brings a container's state up to the clock: exits that are due happen.
    fn settle(container: &mut Container, now: Instant, epoch: (Instant, DateTime<Utc>)) {
        let ContainerState::Running { started_at, .. } = container.info.state else {
            return;
        };
        let Some((at, code)) = container.exit_at else {
            return;
        };
        if at > now {
            return;
        }
        let finished_at = epoch.1 + chrono::Duration::from_std(at - epoch.0).unwrap_or_default();
        let signal = (code > 128).then_some(code - 128);
        container.info.state = ContainerState::Exited {
            exit_code: code,
            signal,
            started_at: Some(started_at),
            finished_at,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
        };
    }

    fn find(state: &State, id: &str) -> Result<ContainerInfo> {
        let container = state
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(id.into()))?;
        Ok(container.info.clone())
    }
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn create_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo> {
        let mut state = self.lock();
        let id = format!("sandbox-{}", config.pod_uid);
        // Idempotent, like the real runtimes: an agent restart finds the sandbox again.
        if let Some(existing) = state.sandboxes.get(&id) {
            return Ok(existing.clone());
        }
        self.record(
            &mut state,
            Call::CreateSandbox {
                pod_uid: config.pod_uid.clone(),
            },
        );
        let info = SandboxInfo {
            id: id.clone(),
            pod_uid: config.pod_uid.clone(),
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            netns_path: format!("/fake/{id}/netns").into(),
            volumes_dir: format!("/fake/{id}/volumes").into(),
        };
        state.sandboxes.insert(id, info.clone());
        Ok(info)
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let mut state = self.lock();
        self.record(
            &mut state,
            Call::RemoveSandbox {
                id: sandbox_id.into(),
            },
        );
        state.sandboxes.remove(sandbox_id);
        state
            .containers
            .retain(|_, c| c.info.sandbox_id != sandbox_id);
        Ok(())
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        Ok(self.lock().sandboxes.values().cloned().collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
    ) -> Result<ContainerInfo> {
        let mut state = self.lock();
        let sandbox = state
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| RuntimeError::SandboxNotFound(sandbox_id.into()))?
            .clone();
        self.record(
            &mut state,
            Call::CreateContainer {
                name: config.name.clone(),
                attempt: config.attempt,
            },
        );
        let behavior = match state.scripts.get_mut(&config.name) {
            Some(queue) if queue.len() > 1 => queue.pop_front().unwrap_or(Behavior::Run),
            Some(queue) => queue.front().cloned().unwrap_or(Behavior::Run),
            None => Behavior::Run,
        };
        let id = format!(
            "fake://{}_{}_{}",
            sandbox.pod_uid, config.name, config.attempt
        );
        let info = ContainerInfo {
            id: id.clone(),
            sandbox_id: sandbox_id.into(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            state: ContainerState::Created,
            log_path: format!("/fake/{sandbox_id}/{}_{}.log", config.name, config.attempt).into(),
        };
        state.containers.insert(
            id,
            Container {
                info: info.clone(),
                ignores_sigterm: behavior == Behavior::IgnoreSigterm,
                behavior,
                started: None,
                exit_at: None,
            },
        );
        Ok(info)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let now = Instant::now();
        let started_at = self.now_utc();
        let mut state = self.lock();
        self.record(
            &mut state,
            Call::StartContainer {
                id: container_id.into(),
            },
        );
        let container = state
            .containers
            .get_mut(container_id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.into()))?;
        container.started = Some(now);
        container.info.state = match &container.behavior {
            Behavior::CannotStart(message) => ContainerState::Exited {
                exit_code: 128,
                signal: None,
                started_at: None,
                finished_at: started_at,
                reason: "StartError".into(),
                message: Some(message.clone()),
            },
            _ => ContainerState::Running {
                pid: 4242,
                started_at,
            },
        };
        if let Behavior::Exit { after, code } = container.behavior {
            container.exit_at = Some((now + after, code));
        }
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let ignores_sigterm = {
            let now = Instant::now();
            let mut state = self.lock();
            self.record(
                &mut state,
                Call::StopContainer {
                    id: container_id.into(),
                    grace,
                },
            );
            let epoch = self.epoch;
            let Some(container) = state.containers.get_mut(container_id) else {
                return Ok(());
            };
            FakeRuntime::settle(container, now, epoch);
            if !matches!(container.info.state, ContainerState::Running { .. }) {
                return Ok(());
            }
            let ignores = container.ignores_sigterm;
            if !ignores {
                container.exit_at = Some((now, 143));
                FakeRuntime::settle(container, now, epoch);
            }
            self.record(
                &mut state,
                Call::Signal {
                    id: container_id.into(),
                    signal: 15,
                },
            );
            ignores
        };
        if !ignores_sigterm {
            return Ok(());
        }
        tokio::time::sleep(grace).await;
        let now = Instant::now();
        let epoch = self.epoch;
        let mut state = self.lock();
        let Some(container) = state.containers.get_mut(container_id) else {
            return Ok(());
        };
        FakeRuntime::settle(container, now, epoch);
        if matches!(container.info.state, ContainerState::Running { .. }) {
            container.exit_at = Some((now, 137));
            FakeRuntime::settle(container, now, epoch);
            self.record(
                &mut state,
                Call::Signal {
                    id: container_id.into(),
                    signal: 9,
                },
            );
        }
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let mut state = self.lock();
        self.record(
            &mut state,
            Call::RemoveContainer {
                id: container_id.into(),
            },
        );
        state.containers.remove(container_id);
        Ok(())
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerInfo> {
        let now = Instant::now();
        let epoch = self.epoch;
        let mut state = self.lock();
        if let Some(container) = state.containers.get_mut(container_id) {
            FakeRuntime::settle(container, now, epoch);
        }
        FakeRuntime::find(&state, container_id)
    }

    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let now = Instant::now();
        let epoch = self.epoch;
        let mut state = self.lock();
        Ok(state
            .containers
            .values_mut()
            .filter(|c| sandbox_id.is_none_or(|s| c.info.sandbox_id == s))
            .map(|c| {
                FakeRuntime::settle(c, now, epoch);
                c.info.clone()
            })
            .collect())
    }

    async fn exec(&self, container_id: &str, _argv: &[String]) -> Result<ExecProcess> {
        // Exec probes would need a real child process; the fake offers port probes instead.
        Err(RuntimeError::System(format!(
            "the fake runtime cannot exec in {container_id}"
        )))
    }

    /// Runs `argv` on the host (the fake has no containers to enter) on a real pty, so a
    /// test sees what a terminal's program sees: its size (`stty size`), its input, its
    /// output. The call and the first size go to the journal.
    async fn exec_tty(
        &self,
        container_id: &str,
        argv: &[String],
        size: TerminalSize,
    ) -> Result<ExecProcess> {
        {
            let mut state = self.lock();
            FakeRuntime::find(&state, container_id)?;
            let call = Call::ExecTty {
                id: container_id.into(),
                argv: argv.to_vec(),
                size,
            };
            self.record(&mut state, call);
        }
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| RuntimeError::Invalid("exec needs a command".into()))?;
        let (pty, slave) = Pty::open(size).map_err(|e| RuntimeError::io("open a pty", e))?;
        let clone = |fd: &std::os::fd::OwnedFd| {
            fd.try_clone()
                .map_err(|e| RuntimeError::io("dup the pty", e))
        };
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(clone(&slave)?)
            .stdout(clone(&slave)?)
            .stderr(slave)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RuntimeError::io(format!("run {program}"), e))?;
        let mut process = ExecProcess::direct(child);
        process.tty = Some(pty);
        Ok(process)
    }

    async fn connect(
        &self,
        sandbox_id: &str,
        port: u16,
        _timeout: Duration,
    ) -> Result<tokio::net::TcpStream> {
        if !self.lock().open_ports.contains(&port) {
            return Err(RuntimeError::System(format!(
                "dial tcp 127.0.0.1:{port} in {sandbox_id}: connection refused"
            )));
        }
        // A blocking loopback connect completes at once, so no await point lets a paused
        // clock run ahead; the accept keeps the listener's backlog empty.
        let address = self
            .listener
            .local_addr()
            .map_err(|e| RuntimeError::io("fake listener", e))?;
        let stream =
            std::net::TcpStream::connect(address).map_err(|e| RuntimeError::io("connect", e))?;
        drop(self.listener.accept());
        stream
            .set_nonblocking(true)
            .map_err(|e| RuntimeError::io("connect", e))?;
        tokio::net::TcpStream::from_std(stream).map_err(|e| RuntimeError::io("connect", e))
    }
}

/// The pod API of the worker, recording into a [`FakeRuntime`]'s journal; every write
/// succeeds.
pub struct FakeApi {
    runtime: Arc<FakeRuntime>,
    /// Where written statuses come back, as the control plane's watch brings them back.
    echo: Mutex<Option<watch::Sender<Option<Pod>>>>,
}

impl FakeApi {
    /// Sends each written status back into the worker's pod channel, as the control plane
    /// does: the worker compares its next status with that one.
    /// None stops it (the sender it holds would keep the channel open).
    pub fn echo_to(&self, pod: Option<watch::Sender<Option<Pod>>>) {
        *self.echo.lock().expect("fake api lock") = pod;
    }

    fn record(&self, call: Call) {
        let mut state = self.runtime.lock();
        self.runtime.record(&mut state, call);
    }
}

impl PodApi for FakeApi {
    fn write_status(&self, pod: &Pod) -> BoxFuture<'static, Result<(), skiff_client::Error>> {
        self.record(Call::WriteStatus(Box::new(
            pod.status.clone().unwrap_or_default(),
        )));
        if let Some(sender) = &*self.echo.lock().expect("fake api lock") {
            sender.send_modify(|current| {
                if let Some(current) = current {
                    current.status = pod.status.clone();
                }
            });
        }
        Box::pin(async { Ok(()) })
    }

    fn confirm_deletion(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<(), skiff_client::Error>> {
        self.record(Call::ConfirmDeletion {
            namespace: namespace.into(),
            name: name.into(),
        });
        Box::pin(async { Ok(()) })
    }

    fn event(&self, _pod: &Pod, _type: &'static str, reason: &'static str, message: String) {
        self.record(Call::Event {
            reason: reason.into(),
            message,
        });
    }
}

/// An image store for the worker's pulls: images are present once pulled or added; each
/// pull of an image takes the next scripted result (the last one repeats; none: success).
pub struct FakeImages {
    runtime: Arc<FakeRuntime>,
    state: Mutex<ImagesState>,
}

#[derive(Default)]
struct ImagesState {
    present: HashSet<String>,
    pulls: HashMap<String, VecDeque<std::result::Result<(), String>>>,
}

impl FakeImages {
    /// Records its pulls into `runtime`'s journal.
    pub fn new(runtime: &Arc<FakeRuntime>) -> Arc<FakeImages> {
        Arc::new(FakeImages {
            runtime: runtime.clone(),
            state: Mutex::new(ImagesState::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ImagesState> {
        self.state.lock().expect("fake images lock")
    }

    pub fn add(&self, image: &str) {
        self.lock().present.insert(image.into());
    }

    /// Queues the results of the next pulls of `image` (Err: the registry's reason).
    pub fn script_pulls(
        &self,
        image: &str,
        results: impl IntoIterator<Item = std::result::Result<(), String>>,
    ) {
        self.lock()
            .pulls
            .entry(image.into())
            .or_default()
            .extend(results);
    }
}

impl PodImages for FakeImages {
    fn present(&self, image: &str) -> BoxFuture<'static, bool> {
        let present = self.lock().present.contains(image);
        Box::pin(async move { present })
    }

    fn pull(&self, image: &str) -> BoxFuture<'static, std::result::Result<String, String>> {
        {
            let mut state = self.runtime.lock();
            self.runtime.record(
                &mut state,
                Call::Pull {
                    image: image.into(),
                },
            );
        }
        let mut state = self.lock();
        let result = match state.pulls.get_mut(image) {
            Some(queue) if queue.len() > 1 => queue.pop_front().unwrap_or(Ok(())),
            Some(queue) => queue.front().cloned().unwrap_or(Ok(())),
            None => Ok(()),
        };
        if result.is_ok() {
            state.present.insert(image.into());
        }
        let result = result.map(|()| format!("sha256:{:064x}", image.len()));
        Box::pin(async move { result })
    }
}
