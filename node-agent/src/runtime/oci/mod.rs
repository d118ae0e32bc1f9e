//! The `oci` runtime: containers from images in the node's [`ImageStore`], run by Debian's
//! `runc` from an OCI bundle.
//!
//! - Sandbox: the `process` runtime's (one implementation, [`crate::runtime::sandbox`]),
//!   plus the pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` in `<sandbox>/etc/`.
//! - Create: the image's layers (unpacked once per diff_id by the store) under a
//!   per-container overlayfs (`upper/`, `work/` beside the bundle) mounted at
//!   `bundle/rootfs`, and `bundle/config.json` ([`spec::runtime_spec`]): new mount, PID
//!   and IPC namespaces, the sandbox's network and UTS namespaces joined by path,
//!   `cgroupsPath` `/skiff-<container id>` with a pids limit, and the securityContext
//!   over containerd's defaults ([`security`]: user and groups, capabilities, RuntimeDefault
//!   seccomp ([`seccomp`]), masked and read-only paths, no_new_privs, read-only root,
//!   privileged mode). A `runAsNonRoot` container whose user is root is refused
//!   ([`RuntimeError::Config`]).
//! - Start: the same detached shim as the `process` runtime (logs, exit records, adoption
//!   by a restarted agent), running `runc run --keep` in the foreground: runc passes the
//!   shim's pipes to the container and exits with its status. `--keep` leaves the cgroup
//!   in place after the container died, so the shim reads its OOM-kill counter without a
//!   race; `runc delete` at removal takes the cgroup away.
//! - Stop: `runc kill` SIGTERM, SIGKILL after the grace period. Remove: `runc delete
//!   --force`, unmount the rootfs, delete the container's directory.
//!
//! ```text
//! <root>/runc/                              runc's state (--root)
//! <root>/sandboxes/<sandbox>/etc/{hosts,hostname,resolv.conf}
//! <root>/sandboxes/<sandbox>/containers/<name>_<attempt>/
//!     spec.json started.json exit.json shim.log    as for the process runtime
//!     upper/ work/                                  the overlay's writable layer
//!     bundle/config.json bundle/rootfs/             the OCI bundle
//! ```

pub mod cgroup;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod user;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use self::cgroup::Hierarchy;
use super::process::ProcessRuntime;
use super::process::layout::{
    Layout, OciShim, ShimSpec, container_id, split_container_id, write_json,
};
use super::pty::{self, TerminalSize};
use super::{
    ContainerConfig, ContainerInfo, ContainerOptions, ContainerState, ExecProcess, Result, Runtime,
    RuntimeError, SandboxConfig, SandboxInfo,
};
use crate::image::{ContainerSpec, ImageStore, resolve_process};
use crate::logs::Rotation;

/// Where Debian installs runc.
pub const DEFAULT_RUNC: &str = "/usr/sbin/runc";
/// Written by runc once the container's process runs (its pid on the host).
const PID_FILE: &str = "container.pid";
/// How long runc may take to set a container up before start gives up waiting.
const START_WAIT: Duration = Duration::from_secs(30);
/// How often a starting container is looked at.
const START_POLL: Duration = Duration::from_millis(5);
/// How long a SIGKILLed container may take to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// At most this many processes per container unless told otherwise (`--pod-pids-limit`).
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;
/// Numbers the pid files of exec'd commands (`<container>/exec-<n>.pid`).
static EXEC_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The mode of a new emptyDir volume, as the kubelet makes them: any user of the pod may
/// write to it (the agent's data dir keeps everyone else out).
const EMPTY_DIR_MODE: u32 = 0o777;

/// Why the `oci` runtime cannot work on this host.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the oci runtime needs root (mounts, namespaces, cgroups)")]
    NotRoot,
    #[error("the oci runtime needs runc: {0} (apt-get install runc)")]
    NoRunc(String),
    #[error("the oci runtime needs overlayfs, which this kernel does not offer (modprobe overlay)")]
    NoOverlay,
    #[error("the oci runtime needs cgroups mounted at /sys/fs/cgroup")]
    NoCgroups,
}

/// The runtime an agent runs pods with.
#[derive(Debug, PartialEq, Eq)]
pub enum RuntimeChoice {
    Oci,
    /// Host programs with no isolation: only when asked for by name (trusted hosts).
    Process,
}

/// `--runtime` as given (`requested`), else `oci`. The agent never falls back to `process`
/// on its own: that runtime isolates nothing, so a host that cannot run `oci` (`host`: what
/// [`check_host`] found) is an error, and the agent refuses to start rather than run
/// workloads as host processes behind the operator's back.
pub fn choose_runtime(
    requested: Option<&str>,
    host: impl FnOnce() -> std::result::Result<(), Unavailable>,
) -> std::result::Result<RuntimeChoice, Unavailable> {
    match requested {
        Some("process") => Ok(RuntimeChoice::Process),
        _ => host().map(|()| RuntimeChoice::Oci),
    }
}

/// Checks that `runc` runs and that the host has what containers need; the error names
/// the first thing missing.
pub fn check_host(runc: &Path) -> std::result::Result<(), Unavailable> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Unavailable::NotRoot);
    }
    match std::process::Command::new(runc)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(Unavailable::NoRunc(format!(
                "{} --version failed: {}",
                runc.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Err(e) => return Err(Unavailable::NoRunc(format!("{}: {e}", runc.display()))),
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        // Not listed until the module is loaded: an overlay mount attempt would load it, so
        // only a missing module file counts as missing.
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let module = Path::new("/lib/modules")
            .join(release)
            .join("kernel/fs/overlayfs");
        if !module.exists() {
            return Err(Unavailable::NoOverlay);
        }
    }
    if !Path::new("/sys/fs/cgroup").is_dir()
        || std::fs::read_dir("/sys/fs/cgroup").is_ok_and(|mut d| d.next().is_none())
    {
        return Err(Unavailable::NoCgroups);
    }
    Ok(())
}

/// The `runc` on PATH, else Debian's path.
pub fn find_runc() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("runc"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNC))
}

pub struct OciRuntime {
    /// Sandboxes, container records and shims: the process runtime's, with `oci://` ids.
    core: ProcessRuntime,
    bundles: Arc<Bundles>,
}

/// What making and discarding a container's bundle needs. That work blocks (the image's
/// `/etc/passwd`, mounts, the spec's files), so it runs on tokio's blocking threads, never
/// on an async worker that heartbeats and other pods need.
#[derive(Clone)]
struct Bundles {
    layout: Layout,
    runc: PathBuf,
    runc_root: PathBuf,
    images: ImageStore,
    rotation: Rotation,
    hierarchy: Hierarchy,
    /// What the kernel offers, and where Localhost seccomp profiles are
    /// (`<root>/seccomp/`).
    node: security::Node,
    pids_limit: Option<u64>,
}

/// The pod's `/etc/hosts`: its hostname on the pod's address once it has one (before that,
/// on 127.0.1.1 as Debian does).
fn hosts_file(hostname: &str, ip: Option<std::net::IpAddr>) -> String {
    let address = ip.map_or_else(|| "127.0.1.1".to_string(), |ip| ip.to_string());
    format!(
        "# Skiff-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{hostname}\n"
    )
}

/// Puts the pod's address into its hosts file, in place: running containers bind-mount
/// that inode, and the address is the sandbox's for its whole life.
fn update_hosts(path: &Path, hostname: &str, ip: std::net::IpAddr) -> Result<()> {
    let text = hosts_file(hostname.trim(), Some(ip));
    if std::fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(io(format!("write {}", path.display())))
}

/// Runs blocking filesystem work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RuntimeError::System(format!("blocking task: {e}")))?
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |e| RuntimeError::io(what, e)
}

/// The pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` in `dir`, unless there.
fn write_pod_etc(dir: &Path, hostname: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let hosts = hosts_file(hostname, None);
    // The node's resolvers: pods have no cluster DNS yet.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (file, text) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let path = dir.join(file);
        if !path.exists() {
            std::fs::write(&path, text).map_err(io(format!("write {}", path.display())))?;
        }
    }
    Ok(())
}

/// Makes an emptyDir volume the first time a container of the pod mounts it: writable by
/// every user (the kubelet's 0777) and, with the pod's `fsGroup`, owned by that group with
/// the setgid bit, so what the pod writes there belongs to the group too.
fn make_empty_dir(path: &Path, fs_group: Option<u32>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(io(format!("create emptyDir {}", path.display())))?;
    let mut mode = EMPTY_DIR_MODE;
    if let Some(gid) = fs_group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io(format!(
            "chown emptyDir {} to group {gid}",
            path.display()
        )))?;
        mode |= 0o2000;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod emptyDir {}", path.display())))
}

impl OciRuntime {
    /// A runtime keeping its state under `root`, running `helper` (the `skiff-agent`
    /// binary) as sandbox maker and shim, `runc` for containers, with images from `images`.
    pub fn new(
        root: impl Into<PathBuf>,
        helper: impl Into<PathBuf>,
        rotation: Rotation,
        images: ImageStore,
        runc: impl Into<PathBuf>,
    ) -> Result<OciRuntime> {
        let root = root.into();
        let runc_root = root.join("runc");
        std::fs::create_dir_all(&runc_root)
            .map_err(io(format!("create {}", runc_root.display())))?;
        let core = ProcessRuntime::named("oci", &root, helper, rotation)?;
        // Leases of containers that went without releasing theirs (a crash in between).
        let layout = core.layout().clone();
        let ended = images
            .retain_leases(|holder| {
                split_container_id(holder)
                    .is_some_and(|(sandbox, local)| layout.container(sandbox, local).exists())
            })
            .map_err(|e| RuntimeError::System(format!("image leases: {e}")))?;
        if !ended.is_empty() {
            tracing::info!(?ended, "ended the image leases of containers that are gone");
        }
        Ok(OciRuntime {
            core,
            bundles: Arc::new(Bundles {
                layout,
                runc: runc.into(),
                runc_root,
                images,
                rotation,
                hierarchy: Hierarchy::detect(),
                node: security::Node::detect(root.join("seccomp")),
                pids_limit: Some(DEFAULT_PIDS_LIMIT),
            }),
        })
    }

    /// At most `limit` processes in each container (None: no limit).
    pub fn with_pids_limit(mut self, limit: Option<u64>) -> OciRuntime {
        Arc::make_mut(&mut self.bundles).pids_limit = limit;
        self
    }

    /// Where Localhost seccomp profiles are read from (`localhostProfile` is relative to it).
    pub fn seccomp_dir(&self) -> &Path {
        &self.bundles.node.seccomp_dir
    }

    /// runc's name for a container: its local id (`<sandbox>_<name>_<attempt>`).
    fn runc_id(container_id: &str) -> Result<String> {
        let (sandbox, local) = split_container_id(container_id)
            .ok_or_else(|| RuntimeError::ContainerNotFound(container_id.to_string()))?;
        Ok(format!("{sandbox}_{local}"))
    }

    /// The cgroup runc puts a container in (also how tests find its limits).
    pub fn cgroups_path(container_id: &str) -> Result<String> {
        Ok(format!("/skiff-{}", OciRuntime::runc_id(container_id)?))
    }

    /// The container's cgroup directory for `controller` on this host.
    pub fn cgroup_dir(&self, container_id: &str, controller: &str) -> Result<PathBuf> {
        Ok(self
            .bundles
            .hierarchy
            .dir(controller, &OciRuntime::cgroups_path(container_id)?))
    }

    /// Where runc keeps its state (one directory per container it knows).
    pub fn runc_root(&self) -> &Path {
        &self.bundles.runc_root
    }

    fn runc(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.bundles.runc);
        command.arg("--root").arg(&self.bundles.runc_root);
        command
    }

    /// Runs a runc subcommand to completion; its stderr on failure.
    async fn runc_call(&self, args: &[&str]) -> std::result::Result<(), String> {
        let output = self
            .runc()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("run {}: {e}", self.bundles.runc.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }

    /// Writes the pod's `/etc` files (kept across calls: containers bind-mount them), on a
    /// blocking thread.
    async fn write_etc_files(&self, sandbox: &SandboxInfo, hostname: &str) -> Result<()> {
        let dir = self.core.layout().sandbox(&sandbox.id).join("etc");
        let hostname = hostname.to_string();
        blocking(move || write_pod_etc(&dir, &hostname)).await
    }

    async fn kill(&self, container_id: &str, signal: &str) -> Result<()> {
        let runc_id = OciRuntime::runc_id(container_id)?;
        if let Err(e) = self.runc_call(&["kill", &runc_id, signal]).await {
            // Gone or stopped already: the exit record follows.
            tracing::debug!(container = container_id, "runc kill {signal}: {e}");
        }
        Ok(())
    }

    async fn wait_exit(&self, container_id: &str, deadline: Instant) -> Result<bool> {
        let (sandbox, dir) = self.core.container_dir(container_id)?;
        self.core.wait_exit(&sandbox, &dir, deadline).await
    }
}

impl Bundles {
    /// Makes the bundle and the records of a new container; on error nothing is left.
    fn prepare(
        &self,
        sandbox: &SandboxInfo,
        config: &ContainerConfig,
        options: &ContainerOptions,
        dir: &Path,
        id: &str,
    ) -> Result<()> {
        // Leased until the container is removed: its layers stay under the overlay mount.
        let image = self
            .images
            .lease(&OciRuntime::runc_id(id)?, &config.image)
            .map_err(|e| RuntimeError::Invalid(format!("image {:?}: {e}", config.image)))?;
        let image_config = self
            .images
            .image_config(&image)
            .map_err(|e| RuntimeError::Invalid(format!("image {:?}: {e}", config.image)))?;
        let lowerdirs = self
            .images
            .lowerdirs(&image)
            .map_err(|e| RuntimeError::Invalid(format!("image {:?}: {e}", config.image)))?;
        let mut process = resolve_process(&image_config, &options.spec)
            .map_err(|e| RuntimeError::Invalid(format!("container {:?}: {e}", config.name)))?;
        let sandbox_dir = self.layout.sandbox(&sandbox.id);
        if let Ok(hostname) = std::fs::read_to_string(sandbox_dir.join("hostname")) {
            if let Some(ip) = options.pod_ip {
                update_hosts(&sandbox_dir.join("etc/hosts"), &hostname, ip)?;
            }
            if !process.env.iter().any(|(k, _)| k == "HOSTNAME") {
                process.env.push(("HOSTNAME".into(), hostname));
            }
        }
        let security = &options.security;
        for m in &config.mounts {
            if m.host_path.starts_with(&sandbox.volumes_dir) {
                make_empty_dir(&m.host_path, security.fs_group)?;
            } else if !m.host_path.exists() {
                return Err(RuntimeError::Invalid(format!(
                    "volume source {} does not exist",
                    m.host_path.display()
                )));
            }
            if !m.container_path.is_absolute() {
                return Err(RuntimeError::Invalid(format!(
                    "mountPath {} is not absolute",
                    m.container_path.display()
                )));
            }
        }

        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        for d in [&rootfs, &upper, &work] {
            std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
        let lower = lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let data = format!(
            "lowerdir={lower},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| RuntimeError::System(format!("mount overlay at {}: {e}", rootfs.display())))?;
        let user = user::container_user(
            process.user.as_deref(),
            security.run_as_user,
            security.run_as_group,
            security.extra_groups(),
            &rootfs,
        )
        .map_err(|e| RuntimeError::Invalid(format!("container {:?}: {e}", config.name)))?;
        let refused = |e: String| RuntimeError::Config(format!("container {:?}: {e}", config.name));
        let pod = format!(
            "{}_{}({})",
            sandbox.name, sandbox.namespace, sandbox.pod_uid
        );
        security::verify_non_root(security, user.uid, &pod, &config.name)
            .map_err(RuntimeError::Config)?;
        let hardening =
            security::Hardening::for_container(security, &self.node).map_err(refused)?;
        let cgroups_path = OciRuntime::cgroups_path(id)?;
        let spec = spec::runtime_spec(&spec::SpecInputs {
            process: &process,
            user: &user,
            hardening: &hardening,
            rootfs: &rootfs,
            netns: &sandbox_dir.join("netns"),
            utsns: &sandbox_dir.join("utsns"),
            etc_dir: &sandbox_dir.join("etc"),
            mounts: &config.mounts,
            resources: options.resources,
            cgroups_path: &cgroups_path,
            limit_swap: self.hierarchy.limits_swap(),
            pids_limit: self.pids_limit,
        });
        let bytes =
            serde_json::to_vec_pretty(&spec).map_err(|e| RuntimeError::System(e.to_string()))?;
        std::fs::write(bundle.join("config.json"), bytes).map_err(io("write config.json"))?;

        let runc_id = OciRuntime::runc_id(id)?;
        let argv = vec![
            self.runc.display().to_string(),
            "--root".into(),
            self.runc_root.display().to_string(),
            "run".into(),
            "--keep".into(),
            "--pid-file".into(),
            dir.join(PID_FILE).display().to_string(),
            "--bundle".into(),
            bundle.display().to_string(),
            runc_id,
        ];
        let shim = ShimSpec {
            argv,
            env: BTreeMap::from([(
                "PATH".to_string(),
                crate::image::config::DEFAULT_PATH.to_string(),
            )]),
            working_dir: None,
            mounts: Vec::new(),
            netns: sandbox_dir.join("netns"),
            utsns: sandbox_dir.join("utsns"),
            log_path: self.layout.log(&sandbox.id, &config.name, config.attempt),
            log_max_bytes: self.rotation.max_bytes,
            log_max_files: self.rotation.max_files,
            image: config.image.clone(),
            oci: Some(OciShim {
                memory_cgroup: self.hierarchy.dir("memory", &cgroups_path),
            }),
        };
        // Written last: its presence makes the container exist.
        write_json(&dir.join("spec.json"), &shim).map_err(io("write spec.json"))
    }

    /// Unmounts the rootfs, deletes the container's directory, and ends its image lease.
    fn discard(&self, dir: &Path, container_id: &str) -> Result<()> {
        let rootfs = dir.join("bundle/rootfs");
        match umount2(&rootfs, MntFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            // Busy (a process of ours still inside it): detach, the kernel finishes later.
            Err(_) => {
                let _ = umount2(&rootfs, MntFlags::MNT_DETACH);
            }
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io(format!("remove {}", dir.display()), e)),
        }
        self.images
            .release(&OciRuntime::runc_id(container_id)?)
            .map_err(|e| RuntimeError::System(format!("release the image lease: {e}")))
    }
}

impl OciRuntime {
    /// `runc exec`, with pipes or (`tty`) on a pty of that size. With `--tty` and without
    /// `--detach`, runc wants a terminal as its own stdio (it opens `/dev/tty` otherwise): it
    /// makes a second pty inside the container for the command (the container's devpts, the
    /// command's session and controlling terminal), copies between the two, and copies the
    /// window size over on SIGWINCH. `--console-socket` is only for `--detach`, which would
    /// leave the command's exit code unknowable.
    async fn runc_exec(
        &self,
        container_id: &str,
        argv: &[String],
        tty: Option<TerminalSize>,
    ) -> Result<ExecProcess> {
        if argv.is_empty() {
            return Err(RuntimeError::Invalid("exec needs a command".into()));
        }
        let info = self.core.container_status(container_id).await?;
        if !matches!(info.state, ContainerState::Running { .. }) {
            return Err(RuntimeError::Invalid(format!(
                "container {:?} is not running",
                info.name
            )));
        }
        let runc_id = OciRuntime::runc_id(container_id)?;
        let (_, dir) = self.core.container_dir(container_id)?;
        let seq = EXEC_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid_file = dir.join(format!("exec-{seq}.pid"));
        // runc's own errors (the command could not be started) go to this log too, where
        // they are told apart from the command's stderr.
        let start_log = dir.join(format!("exec-{seq}.log"));
        // runc exec takes the container's env, user, cwd and capabilities from its spec.
        let mut command = self.runc();
        command
            .arg("--log")
            .arg(&start_log)
            .arg("--log-format")
            .arg("json")
            .arg("exec")
            .arg("--pid-file")
            .arg(&pid_file);
        if tty.is_some() {
            command.arg("--tty");
        }
        let pty = pty::exec_stdio(&mut command, tty, pty::Slave::Raw)
            .map_err(io("give the exec its pty or pipes"))?;
        // `command` holds the slave: dropped at once, only runc has it, and the master reads
        // end of file when runc is gone.
        let child = command
            .arg(&runc_id)
            .args(argv)
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("run {}", self.bundles.runc.display())));
        drop(command);
        Ok(ExecProcess {
            child: child?,
            pid_file: Some(pid_file),
            start_log: Some(start_log),
            tty: pty,
        })
    }
}

impl Runtime for OciRuntime {
    fn name(&self) -> &'static str {
        "oci"
    }

    async fn create_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo> {
        let info = self.core.create_sandbox(config).await?;
        if let Err(e) = self.write_etc_files(&info, &config.hostname).await {
            let _ = self.core.remove_sandbox(&info.id).await;
            return Err(e);
        }
        Ok(info)
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        for container in self.core.list_containers(Some(sandbox_id)).await? {
            self.remove_container(&container.id).await?;
        }
        self.core.remove_sandbox(sandbox_id).await
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        self.core.list_sandboxes().await
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
    ) -> Result<ContainerInfo> {
        // Without the pod's spec apart, argv counts as the container's command.
        let options = ContainerOptions {
            spec: ContainerSpec {
                command: config.argv.clone(),
                args: Vec::new(),
                env: config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                working_dir: config.working_dir.as_ref().map(|p| p.display().to_string()),
            },
            resources: Default::default(),
            pod_ip: None,
            security: Default::default(),
        };
        self.create_container_with(sandbox_id, config, &options)
            .await
    }

    async fn create_container_with(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        options: &ContainerOptions,
    ) -> Result<ContainerInfo> {
        let sandbox = self.core.sandbox_info(sandbox_id)?;
        let id = container_id(&sandbox.id, &config.name, config.attempt);
        let (_, local) = split_container_id(&id)
            .ok_or_else(|| RuntimeError::Invalid(format!("container name {:?}", config.name)))?;
        let dir = self.core.layout().container(&sandbox.id, local);
        if dir.join("spec.json").exists() {
            return Err(RuntimeError::Invalid(format!(
                "container {id} exists already"
            )));
        }
        let bundles = self.bundles.clone();
        let (config, options) = (config.clone(), options.clone());
        let made = blocking(move || {
            let made = bundles.prepare(&sandbox, &config, &options, &dir, &id);
            if made.is_err() {
                let _ = bundles.discard(&dir, &id);
            }
            made.map(|()| (sandbox, dir))
        });
        let (sandbox, dir) = made.await?;
        self.core.read_container(&sandbox.id, &dir)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        self.core.start_container(container_id).await?;
        // The shim reports once runc runs; the container exists (for exec, stop, its
        // cgroup) once runc wrote its pid file, or it failed and the shim records the exit.
        let (sandbox, dir) = self.core.container_dir(container_id)?;
        let deadline = Instant::now() + START_WAIT;
        while !dir.join(PID_FILE).exists() {
            let state = self.core.read_container(&sandbox, &dir)?.state;
            if matches!(state, ContainerState::Exited { .. }) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(START_POLL).await;
        }
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let ContainerState::Running { .. } = self.core.container_status(container_id).await?.state
        else {
            return Ok(());
        };
        if !grace.is_zero() {
            self.kill(container_id, "TERM").await?;
            if self.wait_exit(container_id, Instant::now() + grace).await? {
                return Ok(());
            }
        }
        self.kill(container_id, "KILL").await?;
        if self
            .wait_exit(container_id, Instant::now() + KILL_WAIT)
            .await?
        {
            return Ok(());
        }
        // runc no longer knows the container (its state lost): stop its shim's group.
        self.core.stop_container(container_id, Duration::ZERO).await
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let dir = match self.core.container_dir(container_id) {
            Ok((_, dir)) => dir,
            Err(RuntimeError::ContainerNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.stop_container(container_id, Duration::ZERO).await?;
        let runc_id = OciRuntime::runc_id(container_id)?;
        if let Err(e) = self.runc_call(&["delete", "--force", &runc_id]).await
            && !e.contains("does not exist")
            && !e.contains("not exist")
        {
            return Err(RuntimeError::System(format!("runc delete {runc_id}: {e}")));
        }
        let bundles = self.bundles.clone();
        let id = container_id.to_string();
        blocking(move || bundles.discard(&dir, &id)).await
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerInfo> {
        self.core.container_status(container_id).await
    }

    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerInfo>> {
        self.core.list_containers(sandbox_id).await
    }

    fn container_usage(&self, container_id: &str) -> Option<crate::usage::ContainerUsage> {
        crate::usage::read_cgroup(
            self.bundles.hierarchy == Hierarchy::V2,
            &self.cgroup_dir(container_id, "cpuacct").ok()?,
            &self.cgroup_dir(container_id, "memory").ok()?,
        )
    }

    async fn exec(&self, container_id: &str, argv: &[String]) -> Result<ExecProcess> {
        self.runc_exec(container_id, argv, None).await
    }

    async fn exec_tty(
        &self,
        container_id: &str,
        argv: &[String],
        size: TerminalSize,
    ) -> Result<ExecProcess> {
        self.runc_exec(container_id, argv, Some(size)).await
    }

    async fn connect(
        &self,
        sandbox_id: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<tokio::net::TcpStream> {
        self.core.connect(sandbox_id, port, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_is_oci_and_never_process_unless_asked_for_by_name() {
        let able = || Ok(());
        let unable = || Err(Unavailable::NoRunc("not found".into()));
        assert_eq!(choose_runtime(None, able), Ok(RuntimeChoice::Oci));
        assert_eq!(
            choose_runtime(None, unable),
            Err(Unavailable::NoRunc("not found".into()))
        );
        assert_eq!(choose_runtime(Some("oci"), able), Ok(RuntimeChoice::Oci));
        assert_eq!(
            choose_runtime(Some("oci"), unable),
            Err(Unavailable::NoRunc("not found".into()))
        );
        for host in [able as fn() -> _, unable] {
            assert_eq!(
                choose_runtime(Some("process"), host),
                Ok(RuntimeChoice::Process)
            );
        }
    }
}
