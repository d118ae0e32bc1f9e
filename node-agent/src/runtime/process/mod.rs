//! The `process` runtime: each pod gets network and UTS namespaces of its own (pinned by
//! bind mounts, see [`layout`]); each container is a host process started by a small shim
//! (the agent's own binary, see [`helpers`]) inside those namespaces and a private mount
//! namespace holding the pod's volumes. The shim outlives the agent, so pods keep running
//! while the agent restarts, and records the container's exit for whoever asks next.

pub mod helpers;
pub mod layout;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncBufReadExt;

use self::layout::{
    Exited, Layout, ShimSpec, Started, container_id, read_json, sandbox_id, split_container_id,
    write_json,
};
use super::pty::{self, TerminalSize};
use super::sandbox::teardown_sandbox_dir;
use super::{
    ContainerConfig, ContainerInfo, ContainerOptions, ContainerState, ExecProcess, Result, Runtime,
    RuntimeError, SandboxConfig, SandboxInfo,
};
use crate::logs::Rotation;

pub use helpers::dispatch_internal;

/// PATH for containers that do not set one (a process runtime runs host programs).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a stopping container is checked for its exit record.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// How long a SIGKILLed container may take to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

pub struct ProcessRuntime {
    /// The id prefix: `process`, or `oci` when this is the `oci` runtime's core.
    name: &'static str,
    layout: Layout,
    /// The `skiff-agent` executable, run again as sandbox maker, shim and nsexec.
    helper: PathBuf,
    rotation: Rotation,
    /// Serialises updates of the mount-point records.
    mountpoints: tokio::sync::Mutex<()>,
}

/// The directories this sandbox created on the host as mount points.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct MountPoints {
    created: BTreeSet<PathBuf>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |e| RuntimeError::io(what, e)
}

impl ProcessRuntime {
    /// A runtime keeping its state under `root`, running `helper` (the `skiff-agent`
    /// binary) for its helper processes. Sandboxes left half-made by a crash are removed.
    pub fn new(
        root: impl Into<PathBuf>,
        helper: impl Into<PathBuf>,
        rotation: Rotation,
    ) -> Result<ProcessRuntime> {
        ProcessRuntime::named("process", root, helper, rotation)
    }

    /// The same runtime with another id prefix: the `oci` runtime keeps its sandboxes and
    /// container records (and runs its shims) through it.
    pub(crate) fn named(
        name: &'static str,
        root: impl Into<PathBuf>,
        helper: impl Into<PathBuf>,
        rotation: Rotation,
    ) -> Result<ProcessRuntime> {
        let runtime = ProcessRuntime {
            name,
            layout: Layout::new(root),
            helper: helper.into(),
            rotation,
            mountpoints: tokio::sync::Mutex::new(()),
        };
        let sandboxes = runtime.layout.sandboxes();
        std::fs::create_dir_all(&sandboxes)
            .map_err(io(format!("create {}", sandboxes.display())))?;
        for entry in std::fs::read_dir(&sandboxes)
            .map_err(io("list sandboxes"))?
            .flatten()
        {
            if !entry.path().join("sandbox.json").exists() {
                tracing::info!(dir = %entry.path().display(), "removing a half-made sandbox");
                teardown_sandbox_dir(&entry.path())?;
            }
        }
        Ok(runtime)
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn sandbox_info(&self, sandbox_id: &str) -> Result<SandboxInfo> {
        read_json(&self.layout.sandbox(sandbox_id).join("sandbox.json"))
            .map_err(io("read sandbox"))?
            .ok_or_else(|| RuntimeError::SandboxNotFound(sandbox_id.to_string()))
    }

    pub(crate) fn container_dir(&self, container_id: &str) -> Result<(String, PathBuf)> {
        let (sandbox, local) = split_container_id(container_id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.to_string()))?;
        let dir = self.layout.container(sandbox, local);
        if !dir.join("spec.json").exists() {
            return Err(RuntimeError::ContainerNotFound(container_id.to_string()));
        }
        Ok((sandbox.to_string(), dir))
    }

    /// Reads a container's records into its state, recording an exit for a container whose
    /// shim died without writing one (and killing what is left of it).
    pub(crate) fn read_container(&self, sandbox: &str, dir: &Path) -> Result<ContainerInfo> {
        let local = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RuntimeError::System(format!("bad container dir {}", dir.display())))?;
        let (name, attempt) = local
            .rsplit_once('_')
            .and_then(|(n, a)| Some((n.to_string(), a.parse::<u32>().ok()?)))
            .ok_or_else(|| RuntimeError::System(format!("bad container dir {}", dir.display())))?;
        let spec: ShimSpec = read_json(&dir.join("spec.json"))
            .map_err(io("read container spec"))?
            .ok_or_else(|| RuntimeError::ContainerNotFound(local.to_string()))?;
        let started: Option<Started> =
            read_json(&dir.join("started.json")).map_err(io("read started.json"))?;
        let mut exited: Option<Exited> =
            read_json(&dir.join("exit.json")).map_err(io("read exit.json"))?;
        if exited.is_none()
            && let Some(started) = &started
            && !shim_alive(started.shim_pid, dir)
        {
            // Read again: the shim may have finished between the two reads.
            exited = read_json(&dir.join("exit.json")).map_err(io("read exit.json"))?;
            if exited.is_none() {
                // What is left of it — unless the host rebooted since: its pid is another's.
                if started.this_boot() {
                    kill_group(started.pid, Signal::SIGKILL);
                }
                let record = Exited {
                    exit_code: 255,
                    signal: None,
                    started_at: Some(started.started_at),
                    finished_at: chrono::Utc::now(),
                    reason: "Unknown".into(),
                    message: Some("the container's shim ended without recording its exit".into()),
                };
                write_json(&dir.join("exit.json"), &record).map_err(io("write exit.json"))?;
                exited = Some(record);
            }
        }
        let state = match (exited, started) {
            (Some(e), _) => ContainerState::Exited {
                exit_code: e.exit_code,
                signal: e.signal,
                started_at: e.started_at,
                finished_at: e.finished_at,
                reason: e.reason,
                message: e.message,
            },
            (None, Some(s)) => ContainerState::Running {
                pid: s.pid,
                started_at: s.started_at,
            },
            (None, None) => ContainerState::Created,
        };
        Ok(ContainerInfo {
            id: format!("{}://{}", self.name, container_id(sandbox, &name, attempt)),
            sandbox_id: sandbox.to_string(),
            name,
            attempt,
            image: spec.image,
            state,
            log_path: spec.log_path,
        })
    }

    /// Creates each missing mount point on the host (recording it for removal with the
    /// sandbox) and each emptyDir directory; a missing hostPath is an error.
    async fn prepare_mounts(&self, sandbox: &SandboxInfo, config: &ContainerConfig) -> Result<()> {
        let _guard = self.mountpoints.lock().await;
        let record_path = self.layout.sandbox(&sandbox.id).join("mountpoints.json");
        let mut record: MountPoints = read_json(&record_path)
            .map_err(io("read mountpoints.json"))?
            .unwrap_or_default();
        let before = record.created.len();
        for m in &config.mounts {
            if m.host_path.starts_with(&sandbox.volumes_dir) {
                std::fs::create_dir_all(&m.host_path)
                    .map_err(io(format!("create emptyDir {}", m.host_path.display())))?;
            }
            let metadata = std::fs::metadata(&m.host_path).map_err(|e| {
                RuntimeError::Invalid(format!("volume source {}: {e}", m.host_path.display()))
            })?;
            if !m.container_path.is_absolute() {
                return Err(RuntimeError::Invalid(format!(
                    "mountPath {} is not absolute",
                    m.container_path.display()
                )));
            }
            if std::fs::symlink_metadata(&m.container_path).is_ok() {
                continue;
            }
            // Record every directory we create, outermost first, so removal can go deepest first.
            let mut missing = Vec::new();
            let mut path = m.container_path.as_path();
            while std::fs::symlink_metadata(path).is_err() {
                missing.push(path.to_path_buf());
                match path.parent() {
                    Some(parent) => path = parent,
                    None => break,
                }
            }
            let (target, parents) = missing
                .split_first()
                .expect("the mount path itself is missing");
            for dir in parents.iter().rev() {
                std::fs::create_dir(dir).map_err(io(format!("create {}", dir.display())))?;
            }
            if metadata.is_dir() {
                std::fs::create_dir(target)
            } else {
                std::fs::File::create(target).map(drop)
            }
            .map_err(io(format!("create mount point {}", target.display())))?;
            record.created.extend(missing);
        }
        if record.created.len() != before {
            write_json(&record_path, &record).map_err(io("write mountpoints.json"))?;
        }
        Ok(())
    }

    /// Removes the mount points this sandbox created that no other sandbox also uses.
    async fn remove_mountpoints(&self, sandbox_id: &str) -> Result<()> {
        let _guard = self.mountpoints.lock().await;
        let record_path = self.layout.sandbox(sandbox_id).join("mountpoints.json");
        let Some(record) =
            read_json::<MountPoints>(&record_path).map_err(io("read mountpoints.json"))?
        else {
            return Ok(());
        };
        let mut in_use = BTreeSet::new();
        for other in self.sandbox_dirs()? {
            if other.file_name().and_then(|n| n.to_str()) == Some(sandbox_id) {
                continue;
            }
            if let Ok(Some(r)) = read_json::<MountPoints>(&other.join("mountpoints.json")) {
                in_use.extend(r.created);
            }
        }
        // Deepest first; a directory that is not empty (or a file) stays unless it is ours.
        for path in record.created.iter().rev().filter(|p| !in_use.contains(*p)) {
            let removed = std::fs::remove_dir(path).or_else(|_| {
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.len() == 0 && m.is_file()) {
                    std::fs::remove_file(path)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), "cannot remove mount point: {e}");
            }
        }
        let _ = std::fs::remove_file(&record_path);
        Ok(())
    }

    fn sandbox_dirs(&self) -> Result<Vec<PathBuf>> {
        Ok(std::fs::read_dir(self.layout.sandboxes())
            .map_err(io("list sandboxes"))?
            .flatten()
            .map(|e| e.path())
            .collect())
    }

    fn container_dirs(&self, sandbox_id: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.layout.sandbox(sandbox_id).join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("spec.json").exists())
            .collect()
    }

    /// Makes the sandbox's namespaces and pins them on `dir/netns` and `dir/utsns` (the
    /// node's own for a host-network pod), through the `__sandbox` helper.
    async fn make_namespaces(&self, dir: &Path, config: &SandboxConfig) -> Result<()> {
        let output = tokio::process::Command::new(&self.helper)
            .arg(helpers::SANDBOX)
            .arg(dir)
            .arg(&config.hostname)
            .args(config.host_network.then_some(helpers::HOST_NETWORK))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(io(format!("run {}", self.helper.display())))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(RuntimeError::System(format!(
                "making the pod's namespaces failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Waits for the container's exit record up to `deadline`.
    pub(crate) async fn wait_exit(
        &self,
        sandbox: &str,
        dir: &Path,
        deadline: Instant,
    ) -> Result<bool> {
        loop {
            if matches!(
                self.read_container(sandbox, dir)?.state,
                ContainerState::Exited { .. }
            ) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

/// Is the shim still running (and still ours: pids get reused)?
fn shim_alive(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()))
}

/// Signals a container's process group, if that group still exists.
fn kill_group(pid: u32, signal: Signal) {
    let Ok(pid) = i32::try_from(pid) else { return };
    let _ = killpg(Pid::from_raw(pid), signal);
}

impl ProcessRuntime {
    /// `exec` through the `__nsexec` helper, with pipes or (`tty`) on a pty of that size,
    /// which the helper makes the command's controlling terminal.
    async fn nsexec(
        &self,
        container_id: &str,
        argv: &[String],
        tty: Option<TerminalSize>,
    ) -> Result<ExecProcess> {
        if argv.is_empty() {
            return Err(RuntimeError::Invalid("exec needs a command".into()));
        }
        let info = self.container_status(container_id).await?;
        let ContainerState::Running { pid, .. } = info.state else {
            return Err(RuntimeError::Invalid(format!(
                "container {:?} is not running",
                info.name
            )));
        };
        let mut command = tokio::process::Command::new(&self.helper);
        command
            .arg(helpers::NSEXEC)
            .arg(pid.to_string())
            .arg("--")
            .args(argv)
            .kill_on_drop(true);
        let pty = pty::exec_stdio(&mut command, tty, pty::Slave::Direct)
            .map_err(io("give the exec its pty or pipes"))?;
        let child = command
            .spawn()
            .map_err(io(format!("run {}", self.helper.display())));
        // Only the command holds the slave now: the master reads end of file once it is gone.
        drop(command);
        let mut process = ExecProcess::direct(child?);
        process.tty = pty;
        Ok(process)
    }
}

impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn create_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo> {
        let id = sandbox_id(&config.pod_uid);
        if id.is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "pod uid {:?} gives no sandbox id",
                config.pod_uid
            )));
        }
        let dir = self.layout.sandbox(&id);
        if let Ok(existing) = self.sandbox_info(&id) {
            if ["netns", "utsns"]
                .iter()
                .all(|pin| skiff_netplugin::netns::is_pinned(&dir.join(pin)))
            {
                return Ok(existing);
            }
            // Its files are here but its namespaces are not: the host rebooted. Make them
            // again in place, as the kubelet makes a new sandbox for a pod after a reboot;
            // volumes and logs stay, and the containers' records read as exited (so the
            // restart policy decides).
            tracing::info!(sandbox = id, "making the namespaces of a sandbox again");
            self.make_namespaces(&dir, config).await?;
            return Ok(existing);
        }
        // A sandbox left half-made (the agent died while making it) is made again.
        teardown_sandbox_dir(&dir)?;
        let volumes_dir = dir.join("volumes");
        for sub in [
            volumes_dir.clone(),
            dir.join("containers"),
            dir.join("logs"),
        ] {
            std::fs::create_dir_all(&sub).map_err(io(format!("create {}", sub.display())))?;
        }
        if let Err(e) = self.make_namespaces(&dir, config).await {
            let _ = teardown_sandbox_dir(&dir);
            return Err(e);
        }
        let info = SandboxInfo {
            id: id.clone(),
            pod_uid: config.pod_uid.clone(),
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            netns_path: dir.join("netns"),
            volumes_dir,
        };
        std::fs::write(dir.join("hostname"), &config.hostname).map_err(io("write hostname"))?;
        write_json(&dir.join("sandbox.json"), &info).map_err(io("write sandbox.json"))?;
        Ok(info)
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let dir = self.layout.sandbox(sandbox_id);
        if !dir.exists() {
            return Ok(());
        }
        for container in self.container_dirs(sandbox_id) {
            let info = self.read_container(sandbox_id, &container)?;
            self.stop_container(&info.id, Duration::ZERO).await?;
        }
        self.remove_mountpoints(sandbox_id).await?;
        teardown_sandbox_dir(&dir)
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        let mut sandboxes = Vec::new();
        for dir in self.sandbox_dirs()? {
            if let Some(info) = read_json::<SandboxInfo>(&dir.join("sandbox.json"))
                .map_err(io("read sandbox.json"))?
            {
                sandboxes.push(info);
            }
        }
        Ok(sandboxes)
    }

    /// Containers are host processes of the agent's user: a securityContext asking for
    /// anything else is refused, naming the field, rather than silently not applied.
    async fn create_container_with(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        options: &ContainerOptions,
    ) -> Result<ContainerInfo> {
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        if let Some(refusal) = options.security.process_refusal(uid, gid) {
            return Err(RuntimeError::Config(format!(
                "container {:?}: {refusal}",
                config.name
            )));
        }
        self.create_container(sandbox_id, config).await
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
    ) -> Result<ContainerInfo> {
        let sandbox = self.sandbox_info(sandbox_id)?;
        if config.argv.is_empty() || config.argv[0].is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "container {:?}: the process runtime needs a command (it runs host programs, not images)",
                config.name
            )));
        }
        let id = container_id(&sandbox.id, &config.name, config.attempt);
        let (_, local) = split_container_id(&id)
            .ok_or_else(|| RuntimeError::Invalid(format!("container name {:?}", config.name)))?;
        let dir = self.layout.container(&sandbox.id, local);
        if dir.join("spec.json").exists() {
            return Err(RuntimeError::Invalid(format!(
                "container {id} exists already"
            )));
        }
        self.prepare_mounts(&sandbox, config).await?;
        let mut env = config.env.clone();
        env.entry("PATH".into())
            .or_insert_with(|| DEFAULT_PATH.into());
        if let Some(hostname) = read_hostname(&self.layout, &sandbox.id) {
            env.entry("HOSTNAME".into()).or_insert(hostname);
        }
        let spec = ShimSpec {
            argv: config.argv.clone(),
            env,
            working_dir: config.working_dir.clone(),
            mounts: config.mounts.clone(),
            netns: self.layout.sandbox(&sandbox.id).join("netns"),
            utsns: self.layout.sandbox(&sandbox.id).join("utsns"),
            log_path: self.layout.log(&sandbox.id, &config.name, config.attempt),
            log_max_bytes: self.rotation.max_bytes,
            log_max_files: self.rotation.max_files,
            image: config.image.clone(),
            oci: None,
        };
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        write_json(&dir.join("spec.json"), &spec).map_err(io("write spec.json"))?;
        self.read_container(&sandbox.id, &dir)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let (sandbox, dir) = self.container_dir(container_id)?;
        if !matches!(
            self.read_container(&sandbox, &dir)?.state,
            ContainerState::Created
        ) {
            return Err(RuntimeError::Invalid(format!(
                "container {container_id} was started already"
            )));
        }
        let shim_log =
            std::fs::File::create(dir.join("shim.log")).map_err(io("create shim.log"))?;
        let mut shim = tokio::process::Command::new(&self.helper)
            .arg(helpers::SHIM)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(shim_log))
            // Its own process group: signals meant for the agent's group do not reach pods.
            .process_group(0)
            .spawn()
            .map_err(io(format!("run {}", self.helper.display())))?;
        let stdout = shim.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let read = tokio::io::BufReader::new(stdout).read_line(&mut line).await;
        // Reap the shim whenever it ends (while this agent lives; init does it otherwise).
        tokio::spawn(async move {
            let _ = shim.wait().await;
        });
        if read.is_err() || !(line.starts_with("started ") || line.starts_with("error ")) {
            // The shim died before reporting: record why, so the container shows StartError.
            if read_json::<Exited>(&dir.join("exit.json"))
                .ok()
                .flatten()
                .is_none()
            {
                let why = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                let record =
                    Exited::start_error(format!("the container's shim failed: {}", why.trim()));
                write_json(&dir.join("exit.json"), &record).map_err(io("write exit.json"))?;
            }
        }
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let (sandbox, dir) = self.container_dir(container_id)?;
        let ContainerState::Running { pid, .. } = self.read_container(&sandbox, &dir)?.state else {
            return Ok(());
        };
        if !grace.is_zero() {
            kill_group(pid, Signal::SIGTERM);
            if self
                .wait_exit(&sandbox, &dir, Instant::now() + grace)
                .await?
            {
                return Ok(());
            }
        }
        kill_group(pid, Signal::SIGKILL);
        if self
            .wait_exit(&sandbox, &dir, Instant::now() + KILL_WAIT)
            .await?
        {
            Ok(())
        } else {
            Err(RuntimeError::System(format!(
                "container {container_id} did not exit after SIGKILL"
            )))
        }
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let (_, dir) = match self.container_dir(container_id) {
            Ok(found) => found,
            Err(RuntimeError::ContainerNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.stop_container(container_id, Duration::ZERO).await?;
        std::fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerInfo> {
        let (sandbox, dir) = self.container_dir(container_id)?;
        self.read_container(&sandbox, &dir)
    }

    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let sandboxes: Vec<String> = match sandbox_id {
            Some(id) => vec![id.to_string()],
            None => self
                .list_sandboxes()
                .await?
                .into_iter()
                .map(|s| s.id)
                .collect(),
        };
        let mut containers = Vec::new();
        for sandbox in sandboxes {
            for dir in self.container_dirs(&sandbox) {
                containers.push(self.read_container(&sandbox, &dir)?);
            }
        }
        containers.sort_by(|a, b| {
            (&a.sandbox_id, &a.name, a.attempt).cmp(&(&b.sandbox_id, &b.name, b.attempt))
        });
        Ok(containers)
    }

    async fn exec(&self, container_id: &str, argv: &[String]) -> Result<ExecProcess> {
        self.nsexec(container_id, argv, None).await
    }

    async fn exec_tty(
        &self,
        container_id: &str,
        argv: &[String],
        size: TerminalSize,
    ) -> Result<ExecProcess> {
        self.nsexec(container_id, argv, Some(size)).await
    }

    async fn connect(
        &self,
        sandbox_id: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<tokio::net::TcpStream> {
        let netns = self.sandbox_info(sandbox_id)?.netns_path;
        super::sandbox::connect_in_netns(&netns, port, timeout).await
    }
}

/// The sandbox's hostname (the pod name unless `spec.hostname` is set); containers get it
/// as `HOSTNAME`, as in Kubernetes.
fn read_hostname(layout: &Layout, sandbox_id: &str) -> Option<String> {
    std::fs::read_to_string(layout.sandbox(sandbox_id).join("hostname")).ok()
}
