//! The container runtime interface, in the spirit of Kubernetes' CRI: the agent drives pod
//! sandboxes and containers only through [`Runtime`], so runtimes are interchangeable
//! (`process` runs host programs, `oci` runs images through runc). Container ids carry the
//! runtime's name: `process://<id>`, `oci://<id>`.
//!
//! A sandbox is what the containers of one pod share: a network namespace (with `lo` up;
//! the pod network adds `eth0`) and a UTS namespace with the pod's hostname. Containers
//! run in their own mount namespace with the pod's volumes at their mount paths.

#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod oci;
pub mod process;
pub mod pty;
pub mod sandbox;
pub mod security;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    /// The container's spec cannot be run (bad command, missing working dir, bad mount).
    #[error("invalid container config: {0}")]
    Invalid(String),
    /// The container's settings cannot be honoured as asked (a securityContext this runtime
    /// or this image cannot satisfy): the kubelet's CreateContainerConfigError.
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    System(String),
}

impl RuntimeError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// What a pod's sandbox is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// The pod's uid: sandbox ids are derived from it, so an agent restart finds them.
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// Set as the UTS namespace's hostname (the pod name unless `spec.hostname` is set).
    pub hostname: String,
    /// Share the node's network and UTS namespaces (`hostNetwork: true`).
    #[serde(default)]
    pub host_network: bool,
}

/// A sandbox that exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub id: String,
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// A bind-mounted network namespace file (`setns`-able), for the pod network.
    pub netns_path: PathBuf,
    /// The directory where the pod's emptyDir volumes live (deleted with the sandbox).
    pub volumes_dir: PathBuf,
}

/// A volume as the container sees it: `host_path` bind-mounted at `container_path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's name in the pod.
    pub name: String,
    /// How many times this container was started before (part of its id, so the previous
    /// instance's logs stay readable).
    pub attempt: u32,
    pub image: String,
    /// The program and its arguments (Kubernetes' command + args, already combined).
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running {
        pid: u32,
        started_at: chrono::DateTime<chrono::Utc>,
    },
    Exited {
        /// The exit code; 128 + n when killed by signal n (as shells report it).
        exit_code: i32,
        signal: Option<i32>,
        started_at: Option<chrono::DateTime<chrono::Utc>>,
        finished_at: chrono::DateTime<chrono::Utc>,
        /// "Completed" (code 0), "Error", or why it could not start ("StartError").
        reason: String,
        message: Option<String>,
    },
}

/// A container that exists in the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// `<runtime>://<id>`.
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub state: ContainerState,
    /// Where its output is logged (see the `logs` module for the format).
    pub log_path: PathBuf,
}

/// Compute resources of one container, from its `resources` (requests default to limits,
/// as in Kubernetes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// What the pod says about a container beyond [`ContainerConfig`]'s host-process view: its
/// command and args apart and its env in order (an image's Entrypoint, Cmd and Env fill in
/// what they leave out), and its resources. Kept apart from [`ContainerConfig`] so callers
/// that build that struct by its fields keep compiling; runtimes that run host programs
/// ignore all but `security`, which they refuse where they cannot honour it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOptions {
    pub spec: crate::image::ContainerSpec,
    pub resources: Resources,
    /// The pod's address, once the pod network gave it one: `/etc/hosts` maps the pod's
    /// hostname to it, as kubelet's managed hosts file does.
    pub pod_ip: Option<std::net::IpAddr>,
    /// The pod's and the container's securityContext, combined.
    pub security: security::Security,
}

/// A command started inside a container by `exec`: its pipes and its exit. Dropped before
/// it exited, the command is killed: a client gone or a probe timed out leaves nothing
/// running in the container.
pub struct ExecProcess {
    pub child: tokio::process::Child,
    /// Where the runtime wrote the command's host pid when `child` only relays it (`runc
    /// exec`: killing runc leaves the command running in the container); removed on drop.
    pub pid_file: Option<PathBuf>,
    /// The relay's own log (runc's `--log`, JSON lines), where it says why the command could
    /// not be started; removed on drop.
    pub start_log: Option<PathBuf>,
    /// A tty exec's terminal: its input and output (the child's pipes are none then).
    pub tty: Option<pty::Pty>,
}

/// What runc writes on its stderr, after the error, when the command could not be started
/// (the command never ran, so this line is all of that stderr).
pub const START_FAILURE_PREFIX: &[u8] = b"exec failed: ";

impl ExecProcess {
    /// A command that is `child` itself (killed on drop with it).
    pub fn direct(child: tokio::process::Child) -> ExecProcess {
        ExecProcess {
            child,
            pid_file: None,
            start_log: None,
            tty: None,
        }
    }

    /// Tells a tty exec that its terminal's window changed ([`pty::Pty::resize`]). A relay
    /// (`runc exec -t`) runs the command on a pty of its own and copies the size over when
    /// it gets SIGWINCH, which the kernel sends only to a terminal's foreground process
    /// group: so it is sent here. A command on the pty itself got it from the kernel.
    pub fn window_changed(&mut self) {
        // Only while the relay is not reaped, so its pid is still its own.
        if self.pid_file.is_some()
            && matches!(self.child.try_wait(), Ok(None))
            && let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGWINCH,
            );
        }
    }

    /// Why the command never started, given the relay's exit code: runc exits 255 and logs
    /// an error (a command that ran and exited 255 leaves no error there). In containerd's
    /// words, which kubectl users know.
    pub fn start_failure(&self, code: i32) -> Option<String> {
        if code != 255 {
            return None;
        }
        let log = std::fs::read_to_string(self.start_log.as_ref()?).ok()?;
        start_failure_in(&log).map(|m| format!("OCI runtime exec failed: {m}: unknown"))
    }
}

/// The last error runc logged (one JSON object a line; other lines are skipped).
fn start_failure_in(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["level"] == "error")
        .filter_map(|entry| entry["msg"].as_str().map(str::to_string))
        .next_back()
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        if let Some(log) = self.start_log.take() {
            let _ = std::fs::remove_file(log);
        }
        let Some(pid_file) = self.pid_file.take() else {
            return;
        };
        // Only while the relay has not been reaped: until then it has not reaped the
        // command either, so the pid cannot belong to another process.
        if matches!(self.child.try_wait(), Ok(None))
            && let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
                .filter(|pid| *pid > 1)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_file(&pid_file);
        // `child` is kill_on_drop: the relay goes with it.
    }
}

/// The runtime interface. Every method is idempotent where Kubernetes' CRI is: removing
/// something already gone succeeds.
pub trait Runtime: Send + Sync + 'static {
    /// `process`, `oci`: the prefix of container ids.
    fn name(&self) -> &'static str;

    fn create_sandbox(
        &self,
        config: &SandboxConfig,
    ) -> impl Future<Output = Result<SandboxInfo>> + Send;

    /// Stops every container left in the sandbox, removes the namespaces and the volumes dir.
    fn remove_sandbox(&self, sandbox_id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Every sandbox that exists (after an agent restart: what to adopt or clean up).
    fn list_sandboxes(&self) -> impl Future<Output = Result<Vec<SandboxInfo>>> + Send;

    fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
    ) -> impl Future<Output = Result<ContainerInfo>> + Send;

    /// [`Runtime::create_container`] with what an image-based runtime needs as well; the
    /// default ignores `options` (the process runtime runs `config.argv` as given).
    fn create_container_with(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        options: &ContainerOptions,
    ) -> impl Future<Output = Result<ContainerInfo>> + Send {
        let _ = options;
        self.create_container(sandbox_id, config)
    }

    /// Starts a created container. A program that cannot be started gives an Exited state
    /// with reason "StartError" rather than an error.
    fn start_container(&self, container_id: &str) -> impl Future<Output = Result<()>> + Send;

    /// SIGTERM to the container's process group, SIGKILL after `grace`; returns once it exited.
    fn stop_container(
        &self,
        container_id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Forgets an exited container (its log file stays until the sandbox goes).
    fn remove_container(&self, container_id: &str) -> impl Future<Output = Result<()>> + Send;

    fn container_status(
        &self,
        container_id: &str,
    ) -> impl Future<Output = Result<ContainerInfo>> + Send;

    /// Containers of one sandbox, or all.
    fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;

    /// Starts `argv` inside a running container (its namespaces, env and working dir), with
    /// piped stdin/stdout/stderr.
    fn exec(
        &self,
        container_id: &str,
        argv: &[String],
    ) -> impl Future<Output = Result<ExecProcess>> + Send;

    /// [`Runtime::exec`] on a terminal (`exec -t`): the command's stdin, stdout and stderr
    /// are one pty of `size`, whose master is [`ExecProcess::tty`]; the command leads its
    /// own session with the pty as its controlling terminal, as a login shell does.
    fn exec_tty(
        &self,
        container_id: &str,
        argv: &[String],
        size: pty::TerminalSize,
    ) -> impl Future<Output = Result<ExecProcess>> + Send;

    /// A TCP connection to `port` on the sandbox's loopback, made inside its network namespace
    /// (port-forward and probes).
    fn connect(
        &self,
        sandbox_id: &str,
        port: u16,
        timeout: Duration,
    ) -> impl Future<Output = Result<tokio::net::TcpStream>> + Send;

    /// The container's CPU time and memory from its cgroup (blocking file reads), for
    /// runtimes that give containers one; `None` otherwise or once it is gone.
    fn container_usage(&self, container_id: &str) -> Option<crate::usage::ContainerUsage> {
        let _ = container_id;
        None
    }
}

#[cfg(test)]
mod exec_tests {
    use super::*;

    #[test]
    fn the_last_error_runc_logged_is_why_an_exec_did_not_start() {
        let log = concat!(
            "{\"level\":\"warning\",\"msg\":\"a warning\",\"time\":\"t\"}\n",
            "not json\n",
            "{\"level\":\"error\",\"msg\":\"exec failed: unable to start container process: ",
            "exec: \\\"nope\\\": executable file not found in $PATH\",\"time\":\"t\"}\n",
        );
        assert_eq!(
            start_failure_in(log).as_deref(),
            Some(
                "exec failed: unable to start container process: exec: \"nope\": \
                 executable file not found in $PATH"
            )
        );
        assert_eq!(
            start_failure_in("{\"level\":\"info\",\"msg\":\"x\"}\n"),
            None
        );
        assert_eq!(start_failure_in(""), None);
    }
}
