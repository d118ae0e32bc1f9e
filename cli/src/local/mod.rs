//! `skiff up`, `start`, `stop` and `down`: a whole cluster on this machine, with network
//! namespaces as hosts (see `skiff_netplugin::hosts`).
//!
//! Hosts `cp-1…` run a control-plane member each, hosts `worker-1…` an agent each; all sit
//! on one underlay bridge (10.250.0.0/24) and their namespaces are pinned in `/run/netns`
//! as `skiff-<name>-<host>`, so `ip netns exec skiff-local-worker-1 …` works. The processes
//! outlive `skiff up`; what the other commands need to find everything again is in
//! `<dir>/<name>/state.json`, written before anything is started, beside the cluster token,
//! the logs and a data dir per host.
//!
//! What runs is read from the system, never from the state file ([`status`]): after a
//! reboot the cluster reads stopped. `skiff start` (and `skiff up` on a cluster that is not
//! running) makes whatever namespaces are missing again and starts whatever daemon does not
//! run on its data dir — members first, which never bootstrap again on a data dir that holds
//! data, then the agents, which restart their pods' containers — and reuses what runs.
//! `skiff stop` stops the agents, the members and then every container with its pod's grace
//! period, and keeps the data; `skiff down` removes everything. Commands on one cluster take
//! turns: each holds a lock on the cluster's dir. What they ask of the cluster's API — the
//! waits for nodes and pods, the image import, the demo — is in [`api`]. The cluster's image
//! registry, which the agents pull Docker Hub names from, is in [`registry`].

mod api;
pub mod registry;
mod status;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use skiff_api::types::Pod;
use skiff_netplugin::hosts::{HostsError, SimulatedHosts, kill_inside};
use skiff_netplugin::netns;

use self::api::{admin_credentials, all, bring_up, come_back, with_client};
pub use self::status::{Process, Status, Verdict};
use crate::endpoints;

/// Where `ip netns` looks for named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// The control plane's port on each control-plane host.
pub const API_PORT: u16 = 7000;
/// The agent's port (logs, exec, port-forward) on each worker.
pub const AGENT_PORT: u16 = 10250;
/// The demo deployment `skiff up` applies.
pub const DEMO_MANIFEST: &str = include_str!("../../../examples/demo.yaml");
const BUSYBOX: &str = "/bin/busybox";
/// The image `skiff up` builds from [`BUSYBOX`] and imports into every node.
pub const BUSYBOX_IMAGE: &str = "busybox:latest";
/// Where local clusters keep their data, logs and state by default.
pub const DEFAULT_DIR: &str = "/var/lib/skiff-local";
/// The state file in a cluster's dir.
const STATE_FILE: &str = "state.json";
/// How long a member or an agent may take to stop after SIGTERM before SIGKILL.
const DAEMON_GRACE: Duration = Duration::from_secs(10);
/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_POD_GRACE: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "skiff {0} needs root: it creates network namespaces, a bridge, veths and routes (try: sudo skiff {0})"
    )]
    NotRoot(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "local cluster {name:?} is already running ({summary}; state in {dir}): use it with `skiff get nodes`, stop it with `skiff stop{flags}`, remove it with `skiff down{flags}`"
    )]
    Running {
        name: String,
        summary: String,
        dir: String,
        flags: String,
    },
    #[error("local cluster {name:?} is stopped: start it with skiff start{flags}")]
    Stopped { name: String, flags: String },
    #[error(
        "local cluster {name:?} is partly stopped (not running: {missing}): start the rest with skiff start{flags}"
    )]
    Partly {
        name: String,
        missing: String,
        flags: String,
    },
    #[error("no local cluster {name:?} in {dir}: create it with skiff up{flags}")]
    NotFound {
        name: String,
        dir: String,
        flags: String,
    },
    #[error(
        "local cluster {name:?} cannot start without its cluster token {path} (its certificates derive from it): remove it with skiff down{flags}"
    )]
    NoToken {
        name: String,
        path: String,
        flags: String,
    },
    #[error(
        "cannot find {binary} next to {exe} or on PATH: build everything first (cargo build --release)"
    )]
    Binary { binary: String, exe: String },
    #[error(
        "cannot create the host namespaces (is this a container without CAP_SYS_ADMIN, or a kernel without network namespaces?): {0}"
    )]
    Hosts(#[source] HostsError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}\n(logs are in {logs})")]
    Start {
        what: String,
        message: String,
        logs: String,
    },
    #[error(transparent)]
    Config(#[from] endpoints::EndpointsError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What `skiff up` builds.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Names the cluster: its namespaces, state dir and config entry.
    pub name: String,
    pub control_planes: usize,
    pub workers: usize,
    /// Parent of the cluster's state dir (`<dir>/<name>`).
    pub dir: PathBuf,
    /// Apply the demo deployment and wait for it.
    pub demo: bool,
    /// How long to wait for the nodes (and the demo pods).
    pub timeout: Duration,
    /// The CLI config file to add the cluster to.
    pub config: PathBuf,
}

/// Everything the other commands need; written before anything is started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    name: String,
    pin_dir: PathBuf,
    prefix: String,
    hosts: Vec<String>,
    control_planes: usize,
    workers: usize,
    servers: Vec<String>,
    config: PathBuf,
}

impl State {
    fn host_names(&self) -> Vec<&str> {
        self.hosts.iter().map(String::as_str).collect()
    }

    fn hosts(&self) -> Result<SimulatedHosts, LocalError> {
        SimulatedHosts::existing(&self.pin_dir, &self.prefix, &self.host_names())
            .map_err(LocalError::Hosts)
    }

    fn summary(&self) -> String {
        format!(
            "{} control-plane host(s), {} worker(s)",
            self.control_planes, self.workers
        )
    }

    fn underlay(&self) -> PathBuf {
        self.pin_dir.join(format!("{}-underlay", self.prefix))
    }
}

fn check_name(name: &str) -> Result<(), LocalError> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LocalError::Invalid(format!(
            "cluster name {name:?}: use up to 20 of a-z, 0-9 and -, starting with a letter"
        )))
    }
}

fn check_root(verb: &'static str) -> Result<(), LocalError> {
    if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err(LocalError::NotRoot(verb))
    }
}

fn cluster_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The flags that name cluster `name` in `dir` to `skiff start`, `stop` and `down`: those
/// that differ from the defaults.
fn cluster_flags(name: &str, dir: &Path) -> String {
    let mut flags = String::new();
    if name != "local" {
        flags.push_str(&format!(" --name {name}"));
    }
    if dir != Path::new(DEFAULT_DIR) {
        flags.push_str(&format!(" --dir {}", dir.display()));
    }
    flags
}

fn read_state(path: &Path) -> Result<Option<State>, LocalError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LocalError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// The state of cluster `name` in `dir`, or the error that says there is none.
fn existing_state(name: &str, dir: &Path) -> Result<State, LocalError> {
    read_state(&cluster_dir(dir, name).join(STATE_FILE))?.ok_or_else(|| LocalError::NotFound {
        name: name.to_string(),
        dir: dir.display().to_string(),
        flags: cluster_flags(name, dir),
    })
}

/// An exclusive lock on a cluster's dir, held until dropped: commands on one cluster take
/// turns, so no two starts race for a data dir.
struct ClusterLock {
    _dir: Flock<File>,
}

/// Takes the lock on `cluster` (made if missing), waiting for another command to finish.
fn lock_cluster(cluster: &Path, out: &mut dyn Write) -> Result<ClusterLock, LocalError> {
    let failed = |errno: nix::errno::Errno| io(cluster)(std::io::Error::from(errno));
    loop {
        std::fs::create_dir_all(cluster).map_err(io(cluster))?;
        let dir = File::open(cluster).map_err(io(cluster))?;
        let locked = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((dir, nix::errno::Errno::EWOULDBLOCK)) => {
                writeln!(
                    out,
                    "Waiting for another skiff command on {} to finish…",
                    cluster.display()
                )
                .ok();
                Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| failed(e))?
            }
            Err((_, e)) => return Err(failed(e)),
        };
        // `skiff down` may have removed the dir meanwhile: then lock the one there now.
        let same = match (locked.metadata(), std::fs::metadata(cluster)) {
            (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
            _ => false,
        };
        if same {
            return Ok(ClusterLock { _dir: locked });
        }
    }
}

/// A binary of ours: next to the running `skiff`, else on PATH.
fn find_binary(name: &str) -> Result<PathBuf, LocalError> {
    let exe = std::env::current_exe().unwrap_or_default();
    let beside = exe.parent().map(|dir| dir.join(name));
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|path| path.is_file())
        .ok_or_else(|| LocalError::Binary {
            binary: name.to_string(),
            exe: exe.display().to_string(),
        })
}

/// The last lines of every log under `logs`, for an error message.
fn log_tails(logs: &Path) -> String {
    let mut out = String::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(logs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(5)..];
        out.push_str(&format!("\n--- {}\n{}", file.display(), tail.join("\n")));
    }
    out
}

/// A failed start's error with the tails of the logs it points at.
fn with_log_tails(error: LocalError) -> LocalError {
    match error {
        LocalError::Start {
            what,
            message,
            logs,
        } => LocalError::Start {
            what,
            message: format!("{message}{}", log_tails(Path::new(&logs))),
            logs,
        },
        other => other,
    }
}

/// Starts a local cluster (see the module documentation), or one that exists but does not
/// run, as [`start`] does.
pub fn up(options: &UpOptions, out: &mut dyn Write) -> Result<(), LocalError> {
    check_name(&options.name)?;
    if !(1..=7).contains(&options.control_planes) {
        return Err(LocalError::Invalid(format!(
            "--control-planes {}: between 1 and 7 (an odd number keeps a majority through failures)",
            options.control_planes
        )));
    }
    if options.workers > 100 {
        return Err(LocalError::Invalid(format!(
            "--workers {}: at most 100",
            options.workers
        )));
    }
    if options.demo && options.workers == 0 {
        return Err(LocalError::Invalid(
            "the demo needs a worker: give --workers 1 or more, or --no-demo".into(),
        ));
    }
    check_root("up")?;
    let cluster = cluster_dir(&options.dir, &options.name);
    let flags = cluster_flags(&options.name, &options.dir);
    find_binary("skiff-control-plane")?;
    find_binary("skiff-agent")?;
    // Only a new cluster runs the demo (a look before the lock, which makes the dir).
    let new = read_state(&cluster.join(STATE_FILE))?.is_none();
    if new && options.demo && !Path::new(BUSYBOX).is_file() {
        return Err(LocalError::Invalid(format!(
            "the demo runs {BUSYBOX} httpd: install it (apt-get install busybox-static), or use --no-demo"
        )));
    }
    let _lock = lock_cluster(&cluster, out)?;
    let state_path = cluster.join(STATE_FILE);
    if let Some(state) = read_state(&state_path)? {
        if Status::read(&state, &cluster).verdict() == Verdict::Running {
            return Err(LocalError::Running {
                name: state.name.clone(),
                summary: state.summary(),
                dir: cluster.display().to_string(),
                flags,
            });
        }
        writeln!(
            out,
            "Local cluster {:?} exists but does not run: starting it as it was made ({}), as skiff start{flags} does",
            options.name,
            state.summary()
        )
        .ok();
        return start_locked(&state, &cluster, options.timeout, out);
    }

    // A dir without a state file holds what a failed `up` left (its logs): start afresh.
    for entry in std::fs::read_dir(&cluster).map_err(io(&cluster))?.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io(&path))?;
    }

    let mut hosts: Vec<String> = (1..=options.control_planes)
        .map(|i| format!("cp-{i}"))
        .collect();
    hosts.extend((1..=options.workers).map(|i| format!("worker-{i}")));
    let servers: Vec<String> = (1..=options.control_planes)
        .map(|i| format!("10.250.0.{}:{API_PORT}", i + 1))
        .collect();
    let state = State {
        name: options.name.clone(),
        pin_dir: PathBuf::from(NETNS_DIR),
        prefix: format!("skiff-{}", options.name),
        hosts,
        control_planes: options.control_planes,
        workers: options.workers,
        servers,
        config: options.config.clone(),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| LocalError::Io {
        path: state_path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&state_path, json).map_err(io(&state_path))?;
    // The cluster token: one file every daemon reads (never a command-line argument).
    write_private(
        &cluster.join("token"),
        format!("{}\n", skiff_pki::generate_token()).as_bytes(),
    )?;

    let started = Instant::now();
    let boot = Boot::Fresh { demo: options.demo };
    if let Err(e) = boot.run(&state, &cluster, options.timeout, out) {
        // Leave nothing running; keep the logs for the error message's reader.
        let _ = teardown(&state, &cluster, false);
        let _ = std::fs::remove_file(&state_path);
        return Err(with_log_tails(e));
    }
    writeln!(
        out,
        "\nLocal cluster {:?} is up ({:.1} s). Stop it with skiff stop{flags}; remove everything with skiff down{flags}",
        options.name,
        started.elapsed().as_secs_f64(),
    )
    .ok();
    Ok(())
}

/// Starts local cluster `name` in `dir` again — after a reboot, `skiff stop` or a start
/// that did not finish — from its state file: the namespaces that are missing, and each
/// member and agent that does not run, on its data dir; what runs is reused. Waits for the
/// nodes and for the pods whose containers had stopped to run again.
pub fn start(
    name: &str,
    dir: &Path,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), LocalError> {
    let (state, cluster, _lock) = lock_existing("start", name, dir, out)?;
    start_locked(&state, &cluster, timeout, out)
}

/// For `skiff start` and `stop` (`verb`): cluster `name` in `dir`, its state and its dir,
/// locked; a cluster that is not there is an error that says how to make one.
fn lock_existing(
    verb: &'static str,
    name: &str,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<(State, PathBuf, ClusterLock), LocalError> {
    check_name(name)?;
    check_root(verb)?;
    // Before the lock, which would make the dir.
    existing_state(name, dir)?;
    let cluster = cluster_dir(dir, name);
    let lock = lock_cluster(&cluster, out)?;
    // Again under the lock: a `skiff down` may have gone first.
    let state = existing_state(name, dir)?;
    Ok((state, cluster, lock))
}

fn start_locked(
    state: &State,
    cluster: &Path,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), LocalError> {
    let flags = cluster_flags(&state.name, cluster.parent().unwrap_or(cluster));
    let token = cluster.join("token");
    if !token.is_file() {
        return Err(LocalError::NoToken {
            name: state.name.clone(),
            path: token.display().to_string(),
            flags,
        });
    }
    if Status::read(state, cluster).verdict() == Verdict::Running {
        writeln!(
            out,
            "Local cluster {:?} is running already: nothing to start.",
            state.name
        )
        .ok();
        return Ok(());
    }
    let started = Instant::now();
    Boot::Again
        .run(state, cluster, timeout, out)
        .map_err(with_log_tails)?;
    writeln!(
        out,
        "\nLocal cluster {:?} is running again ({:.1} s). Stop it with skiff stop{flags}; remove everything with skiff down{flags}",
        state.name,
        started.elapsed().as_secs_f64()
    )
    .ok();
    Ok(())
}

/// Writes a file only its owner may read (the token).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LocalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// How [`Boot::run`] brings a cluster up.
enum Boot {
    /// A new cluster: import the busybox image, and apply the demo when asked.
    Fresh { demo: bool },
    /// A cluster that ran before: wait for its pods to run again.
    Again,
}

impl Boot {
    /// Makes the hosts, starts the members and then the agents (each unless it runs on its
    /// data dir already), waits for the API and the nodes (and what `self` says), and
    /// writes the cluster into its config file.
    fn run(
        &self,
        state: &State,
        cluster: &Path,
        timeout: Duration,
        out: &mut dyn Write,
    ) -> Result<(), LocalError> {
        let logs = cluster.join("logs");
        std::fs::create_dir_all(&logs).map_err(io(&logs))?;
        let failed = |what: &str, message: String| LocalError::Start {
            what: what.to_string(),
            message,
            logs: logs.display().to_string(),
        };
        let pinned_before = std::iter::once(state.underlay())
            .chain(status::daemons(state, cluster).into_iter().map(|d| d.pin))
            .filter(|pin| netns::is_pinned(pin))
            .count();
        let hosts = SimulatedHosts::create(&state.pin_dir, &state.prefix, &state.host_names())
            .map_err(LocalError::Hosts)?;
        writeln!(
            out,
            "Hosts: {} (network namespaces {}/{}-*, underlay 10.250.0.0/24{})",
            state.hosts.join(", "),
            state.pin_dir.display(),
            state.prefix,
            match pinned_before {
                0 => String::new(),
                n => format!("; {n} of {} were there already", hosts.len() + 1),
            }
        )
        .ok();
        // Before the agents, which pull from it.
        let registry_started = registry::ensure(cluster, &state.underlay(), &logs)
            .map_err(|e| failed("start the image registry", e))?;
        writeln!(
            out,
            "Image registry: {} on {} in the underlay namespace{} (agents pull docker.io images from it)",
            registry::BINARY,
            registry::address(),
            if registry_started {
                ""
            } else {
                ", running already"
            }
        )
        .ok();
        let launcher = Launcher::new(state, cluster, &hosts)?;
        let (members, agents) = launcher.daemons.split_at(state.control_planes);
        let mut started = Vec::new();
        let mut reused = Vec::new();
        // Members first: agents join and register through them.
        for member in members {
            launcher.ensure(member, &mut started, &mut reused, out)?;
        }
        let admin_conf = cluster.join("cp-1").join("admin.conf");
        let deadline = Instant::now() + timeout;
        while !admin_conf.exists() {
            if Instant::now() > deadline {
                return Err(failed(
                    "start cp-1",
                    format!("{} did not appear", admin_conf.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (mut entry, tls) =
            admin_credentials(cluster).map_err(|e| failed("read admin.conf", e))?;
        let underlay = state.underlay();
        let servers = state.servers.clone();
        // Each pod's resourceVersion before any agent starts: one that an agent restarted
        // is written again.
        let before = with_client(
            &underlay,
            servers.clone(),
            tls.clone(),
            move |client| async move {
                client
                    .wait_ready(timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(all::<Pod>(&client)
                    .await?
                    .into_iter()
                    .filter_map(|p| Some((p.metadata.uid?, p.metadata.resource_version?)))
                    .collect::<HashMap<String, String>>())
            },
        )
        .map_err(|e| failed("reach the control plane", e))?;
        // Nodes whose containers all stopped: their agents restart every pod.
        let cold: Vec<String> = agents
            .iter()
            .filter(|a| {
                status::process_of(a) == Process::Stopped
                    && !status::anything_runs_under(&a.data_dir)
            })
            .map(|a| a.name.clone())
            .collect();
        for agent in agents {
            launcher.ensure(agent, &mut started, &mut reused, out)?;
        }
        writeln!(
            out,
            "Started {}{} (the members answer on {})",
            if started.is_empty() {
                "nothing".to_string()
            } else {
                started.join(", ")
            },
            if reused.is_empty() {
                String::new()
            } else {
                format!("; running already: {}", reused.join(", "))
            },
            state.servers.join(",")
        )
        .ok();

        let workers = state.workers;
        let report = match *self {
            Boot::Fresh { demo } => {
                with_client(&underlay, servers, tls, move |client| async move {
                    bring_up(&client, workers, demo, timeout).await
                })
            }
            Boot::Again => with_client(&underlay, servers, tls, move |client| async move {
                come_back(&client, workers, &cold, &before, timeout).await
            }),
        }
        .map_err(|message| failed("bring the cluster up", message))?;
        out.write_all(report.as_bytes()).ok();

        entry.servers = state.servers.clone();
        entry.netns = Some(underlay);
        entry.local_state = Some(cluster.join(STATE_FILE));
        endpoints::save_cluster(&state.config, &state.name, entry)?;
        writeln!(
            out,
            "Wrote cluster {:?} to {} (now current): plain `skiff get nodes` talks to it",
            state.name,
            state.config.display()
        )
        .ok();
        if matches!(self, Boot::Fresh { demo: true }) {
            // Workers have routes to every pod CIDR (the control-plane hosts run no agent).
            writeln!(
                out,
                "Reach a pod by its IP from a worker host: ip netns exec {}-{} {BUSYBOX} wget -qO- http://<pod IP>/",
                state.prefix,
                state.hosts[state.control_planes]
            )
            .ok();
        }
        Ok(())
    }
}

/// Starts the cluster's daemons in their hosts.
struct Launcher<'a> {
    state: &'a State,
    hosts: &'a SimulatedHosts,
    daemons: Vec<status::Daemon>,
    control_plane: PathBuf,
    agent: PathBuf,
    token: PathBuf,
    logs: PathBuf,
}

impl<'a> Launcher<'a> {
    fn new(
        state: &'a State,
        cluster: &Path,
        hosts: &'a SimulatedHosts,
    ) -> Result<Launcher<'a>, LocalError> {
        Ok(Launcher {
            state,
            hosts,
            daemons: status::daemons(state, cluster),
            control_plane: find_binary("skiff-control-plane")?,
            agent: find_binary("skiff-agent")?,
            token: cluster.join("token"),
            logs: cluster.join("logs"),
        })
    }

    /// The daemon's command line (the same on every start: members find their data on
    /// their data dir and never bootstrap again, agents their node credential).
    fn command(&self, daemon: &status::Daemon) -> Command {
        let state = self.state;
        let mut command;
        if let Some(id) = daemon.member {
            let peers: Vec<String> = state
                .servers
                .iter()
                .enumerate()
                .map(|(i, server)| format!("{}={server}", i + 1))
                .collect();
            command = Command::new(&self.control_plane);
            command
                .arg("--id")
                .arg(id.to_string())
                .arg("--listen")
                .arg(&state.servers[id - 1])
                .arg("--peers")
                .arg(peers.join(","));
        } else {
            let ip = self.hosts.ip(daemon.host);
            command = Command::new(&self.agent);
            command
                .arg("--name")
                .arg(&daemon.name)
                .arg("--servers")
                .arg(state.servers.join(","))
                .arg("--node-ip")
                .arg(ip.to_string())
                .arg("--labels")
                .arg("skiff.dev/role=worker")
                .arg("--listen")
                .arg(format!("{ip}:{AGENT_PORT}"))
                .args(registry::agent_args());
        }
        command
            .arg("--data-dir")
            .arg(&daemon.data_dir)
            .arg("--token-file")
            .arg(&self.token);
        command
    }

    /// Starts `daemon` in its host unless it runs there already; one that runs on its data
    /// dir outside its host (whose namespace went) is stopped first, so that no data dir
    /// ever has two.
    fn ensure(
        &self,
        daemon: &status::Daemon,
        started: &mut Vec<String>,
        reused: &mut Vec<String>,
        out: &mut dyn Write,
    ) -> Result<(), LocalError> {
        match status::process_of(daemon) {
            Process::Running(pid) => {
                reused.push(format!("{} (pid {pid})", daemon.name));
                return Ok(());
            }
            Process::Stray(pid) => {
                writeln!(
                    out,
                    "Stopping {} (pid {pid}): it runs outside its host's namespace",
                    daemon.name
                )
                .ok();
                stop_processes(&[pid], DAEMON_GRACE);
            }
            Process::Stopped => {}
        }
        let log = self.logs.join(format!("{}.log", daemon.name));
        let failed = |e: String| LocalError::Start {
            what: format!("start {}", daemon.name),
            message: e,
            logs: self.logs.display().to_string(),
        };
        // Appended to: a restart's log follows the earlier ones'.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(&log))?;
        let err = file.try_clone().map_err(io(&log))?;
        let mut command = self.command(daemon);
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            // Its own process group: a Ctrl-C in this terminal does not reach the cluster.
            .process_group(0);
        self.hosts
            .spawn(daemon.host, command)
            .map_err(|e| failed(e.to_string()))?;
        started.push(daemon.name.clone());
        Ok(())
    }
}

/// SIGTERM to each of `pids`, SIGKILL to those still there after `grace`; returns once all
/// are gone (or 5 s after the SIGKILL).
fn stop_processes(pids: &[u32], grace: Duration) {
    let gone = |pid: u32| {
        // Gone, or a zombie whose parent (an earlier skiff) left it to init.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    };
    let signal = |signal: Signal| {
        for pid in pids.iter().filter(|pid| !gone(**pid)) {
            let _ = kill(Pid::from_raw(*pid as i32), signal);
        }
    };
    let wait = |until: Instant| {
        while Instant::now() < until {
            if pids.iter().all(|pid| gone(*pid)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    signal(Signal::SIGTERM);
    if !wait(Instant::now() + grace) {
        signal(Signal::SIGKILL);
        wait(Instant::now() + Duration::from_secs(5));
    }
}

/// What [`down`] or [`stop`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Members and agents stopped, or processes killed.
    pub processes: usize,
    /// Containers stopped gracefully ([`stop`]).
    pub containers: usize,
    pub namespaces: usize,
    /// Mounts or processes that could not be removed (the dir is then kept), or containers
    /// that could not be stopped.
    pub leftovers: Vec<String>,
}

impl DownReport {
    /// Prints `done` when nothing was left, else `left` and what was.
    fn print(&self, out: &mut dyn Write, done: String, left: String) {
        if self.leftovers.is_empty() {
            writeln!(out, "{done}")
        } else {
            writeln!(out, "{left}:\n  {}", self.leftovers.join("\n  "))
        }
        .ok();
    }
}

/// Stops local cluster `name` in `dir` gracefully and keeps its data: the agents (so that
/// nothing restarts a container), the members, then every container with its pod's grace
/// period (SIGTERM, SIGKILL after it); then its namespaces go. The pods stay in the API;
/// [`start`] brings everything back.
pub fn stop(name: &str, dir: &Path, out: &mut dyn Write) -> Result<DownReport, LocalError> {
    let (state, cluster, _lock) = lock_existing("stop", name, dir, out)?;
    let flags = cluster_flags(name, dir);
    let status = Status::read(&state, &cluster);
    let pinned = status.underlay.1 || status.daemons.iter().any(|(_, pinned, _)| *pinned);
    if status.verdict() == Verdict::Stopped && !pinned {
        writeln!(
            out,
            "Local cluster {name:?} is stopped already. Start it with skiff start{flags}"
        )
        .ok();
        return Ok(DownReport::default());
    }
    let started = Instant::now();
    // The pods' grace periods, while the API answers.
    let graces = if status.reachable() {
        pod_graces(&state, &cluster)
    } else {
        Err("no member runs".to_string())
    };
    let graces = graces.unwrap_or_else(|e| {
        writeln!(
            out,
            "Cannot read the pods' grace periods ({e}): each container gets {DEFAULT_POD_GRACE} s"
        )
        .ok();
        HashMap::new()
    });
    let mut report = DownReport::default();
    let (members, agents) = status.daemons.split_at(state.control_planes);
    for daemons in [agents, members] {
        let pids: Vec<u32> = daemons
            .iter()
            .filter_map(|(_, _, p)| match p {
                Process::Running(pid) | Process::Stray(pid) => Some(*pid),
                Process::Stopped => None,
            })
            .collect();
        stop_processes(&pids, DAEMON_GRACE);
        report.processes += pids.len();
    }
    let agent_dirs: Vec<PathBuf> = agents
        .iter()
        .map(|(d, _, _)| d.data_dir.clone())
        .filter(|d| d.is_dir())
        .collect();
    let (containers, failed) = stop_containers(&agent_dirs, &graces);
    report.containers = containers;
    report.leftovers = failed;
    // What is left is in the kernel only: the namespaces, the pods' pinned namespaces and
    // mounts. The data stays.
    let torn = teardown(&state, &cluster, false)?;
    report.processes += torn.processes;
    report.namespaces = torn.namespaces;
    report.leftovers.extend(torn.leftovers);
    report.print(
        out,
        format!(
            "Local cluster {name:?} stopped ({:.1} s): {} process(es) and {} container(s) stopped, {} namespace(s) removed; its data stays in {}.\nStart it again with: skiff start{flags}",
            started.elapsed().as_secs_f64(),
            report.processes,
            report.containers,
            report.namespaces,
            cluster.display()
        ),
        format!("Local cluster {name:?} stopped, but these remain"),
    );
    Ok(report)
}

/// Each pod's grace period in seconds, by uid.
fn pod_graces(state: &State, cluster: &Path) -> Result<HashMap<String, i64>, String> {
    let (_, tls) = admin_credentials(cluster)?;
    with_client(
        &state.underlay(),
        state.servers.clone(),
        tls,
        |client| async move {
            Ok(all::<Pod>(&client)
                .await?
                .into_iter()
                .filter_map(|p| {
                    let grace = p
                        .spec
                        .termination_grace_period_seconds
                        .unwrap_or(DEFAULT_POD_GRACE);
                    Some((p.metadata.uid?, grace))
                })
                .collect())
        },
    )
}

/// Stops the containers of the agents at `agent_dirs` with `skiff-agent stop-containers`,
/// each with its pod's grace period (`graces`, by pod uid; else the default); returns how
/// many it stopped and what failed.
fn stop_containers(agent_dirs: &[PathBuf], graces: &HashMap<String, i64>) -> (usize, Vec<String>) {
    if agent_dirs.is_empty() {
        return (0, Vec::new());
    }
    let agent = match find_binary("skiff-agent") {
        Ok(agent) => agent,
        Err(e) => return (0, vec![format!("the pods' containers, not stopped: {e}")]),
    };
    let mut command = Command::new(&agent);
    command
        .arg("stop-containers")
        .arg("--grace-period")
        .arg(format!("{DEFAULT_POD_GRACE}s"));
    for dir in agent_dirs {
        command.arg("--data-dir").arg(dir);
    }
    for (uid, grace) in graces {
        command
            .arg("--pod-grace")
            .arg(format!("{uid}={}s", grace.max(&0)));
    }
    let output = match command.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) => {
            return (0, vec![format!("cannot run {}: {e}", agent.display())]);
        }
    };
    let stopped = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with("stopped "))
        .count();
    let failed = if output.status.success() {
        Vec::new()
    } else {
        let mut failed: Vec<String> = String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(str::to_string)
            .collect();
        if failed.is_empty() {
            failed.push(format!(
                "{} stop-containers {}",
                agent.display(),
                output.status
            ));
        }
        failed
    };
    (stopped, failed)
}

/// Stops local cluster `name` and removes every namespace, link, process, mount and data
/// dir it made, and its entry in the CLI config. A cluster that is not there is fine.
pub fn down(name: &str, dir: &Path, out: &mut dyn Write) -> Result<DownReport, LocalError> {
    check_name(name)?;
    check_root("down")?;
    let cluster = cluster_dir(dir, name);
    if !cluster.exists() {
        writeln!(out, "No local cluster {name:?} is there.").ok();
        return Ok(DownReport::default());
    }
    let _lock = lock_cluster(&cluster, out)?;
    let Some(state) = read_state(&cluster.join(STATE_FILE))? else {
        // Logs of a failed `up`.
        std::fs::remove_dir_all(&cluster).map_err(io(&cluster))?;
        writeln!(out, "No local cluster {name:?} is there.").ok();
        return Ok(DownReport::default());
    };
    let report = teardown(&state, &cluster, true)?;
    endpoints::forget_cluster(&state.config, name)?;
    report.print(
        out,
        format!(
            "Local cluster {name:?} removed: {} process(es) killed, {} namespace(s) and {} removed.",
            report.processes,
            report.namespaces,
            cluster.display()
        ),
        format!(
            "Local cluster {name:?} stopped, but these remain (kept {})",
            cluster.display()
        ),
    );
    Ok(report)
}

/// For a verb about to connect to config cluster `name`, reached in network namespace
/// `netns`: what of that local cluster runs (`local_state`: its state file, which entries
/// written by `skiff up` name). A cluster that is stopped, or that no client can reach, is
/// the error that says how to start it.
pub fn check_config_cluster(
    name: &str,
    netns: &Path,
    local_state: Option<&Path>,
) -> Result<Option<Status>, LocalError> {
    let Some(state_path) = local_state else {
        // An entry from before entries named their state file: its namespace tells.
        if netns::is_pinned(netns) {
            return Ok(None);
        }
        return Err(LocalError::Stopped {
            name: name.to_string(),
            flags: cluster_flags(name, Path::new(DEFAULT_DIR)),
        });
    };
    let cluster = state_path.parent().unwrap_or(Path::new("/"));
    let dir = cluster.parent().unwrap_or(cluster);
    let Some(state) = read_state(state_path)? else {
        return Err(LocalError::NotFound {
            name: name.to_string(),
            dir: dir.display().to_string(),
            flags: cluster_flags(name, dir),
        });
    };
    let status = Status::read(&state, cluster);
    let flags = cluster_flags(&state.name, dir);
    match status.verdict() {
        Verdict::Stopped => Err(LocalError::Stopped {
            name: state.name,
            flags,
        }),
        Verdict::Partly(missing) if !status.reachable() => Err(LocalError::Partly {
            name: state.name,
            missing: missing.join(", "),
            flags,
        }),
        _ => Ok(Some(status)),
    }
}

impl Status {
    /// For a cluster that runs only partly: the warning that says what does not and how to
    /// start it.
    pub fn warning(&self) -> Option<String> {
        let Verdict::Partly(missing) = self.verdict() else {
            return None;
        };
        let dir = self.cluster.parent().unwrap_or(&self.cluster);
        Some(
            LocalError::Partly {
                name: self.name.clone(),
                missing: missing.join(", "),
                flags: cluster_flags(&self.name, dir),
            }
            .to_string(),
        )
    }
}

/// Removes what the agents left under `agent_dirs` (their pods' processes, mounts and
/// cgroups) with `skiff-agent sweep`, which retries for up to 10 s; what is left then. A
/// sweep that cannot run is a leftover too: the cluster's dir is then kept.
fn sweep_agents(agent_dirs: &[PathBuf]) -> Vec<String> {
    let not_swept = |why: String| vec![format!("the agents' pods, not swept: {why}")];
    let agent = match find_binary("skiff-agent") {
        Ok(agent) => agent,
        Err(e) => return not_swept(e.to_string()),
    };
    let mut sweep = Command::new(&agent);
    sweep.args(["sweep", "--timeout", "10s"]);
    for agent_dir in agent_dirs {
        sweep.arg("--data-dir").arg(agent_dir);
    }
    let out = match sweep.stdin(Stdio::null()).stderr(Stdio::inherit()).output() {
        Ok(out) => out,
        Err(e) => return not_swept(format!("cannot run {}: {e}", agent.display())),
    };
    // 0: nothing is left; 1: what is left, one per line.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return not_swept(format!("{} sweep {}", agent.display(), out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Kills the hosts' processes and the agents' pods, unmounts and removes what they made,
/// then the namespaces; with `remove_dir`, the cluster's dir too (only when nothing is
/// mounted there any more, so no volume's contents can be deleted through a mount).
fn teardown(state: &State, dir: &Path, remove_dir: bool) -> Result<DownReport, LocalError> {
    let mut hosts = state.hosts()?;
    let mut report = DownReport::default();
    // Also one that runs outside the underlay (whose namespace went).
    report.processes += registry::stop(dir, DAEMON_GRACE);
    // The daemons first: no agent may restart a pod we are about to kill.
    for pin in hosts.pins() {
        report.processes += kill_inside(pin);
    }
    let agent_dirs: Vec<PathBuf> = (1..=state.workers)
        .map(|w| dir.join(format!("worker-{w}")))
        .collect();
    report.leftovers = sweep_agents(&agent_dirs);
    report.namespaces = hosts.pins().len();
    let errors = hosts.destroy();
    report
        .leftovers
        .extend(errors.into_iter().map(|e| e.to_string()));
    if remove_dir && report.leftovers.is_empty() && dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes_are_checked_first() {
        assert!(check_name("local").is_ok());
        assert!(check_name("t-123").is_ok());
        for bad in ["", "Local", "1abc", "a_b", "averyveryverylongname1"] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("cluster name"), "{bad}: {err}");
        }
        let options = UpOptions {
            name: "local".into(),
            control_planes: 0,
            workers: 2,
            dir: "/nonexistent".into(),
            demo: true,
            timeout: Duration::from_secs(1),
            config: "/nonexistent/config".into(),
        };
        let err = up(&options, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("--control-planes 0"), "{err}");
        let err = up(
            &UpOptions {
                control_planes: 3,
                workers: 0,
                ..options.clone()
            },
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--no-demo"), "{err}");
        assert!(!Path::new("/nonexistent").exists());
    }

    #[test]
    fn the_demo_manifest_is_valid() {
        let source = crate::apply::parse_source("examples/demo.yaml", DEMO_MANIFEST).unwrap();
        assert_eq!(source.objects.len(), 1);
    }

    #[test]
    fn cluster_flags_name_what_differs_from_the_defaults() {
        assert_eq!(cluster_flags("local", Path::new(DEFAULT_DIR)), "");
        assert_eq!(
            cluster_flags("t1", Path::new("/tmp/x")),
            " --name t1 --dir /tmp/x"
        );
    }

    #[test]
    fn a_verb_on_a_stopped_cluster_says_how_to_start_it() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("c1");
        std::fs::create_dir_all(&cluster).unwrap();
        let state = State {
            name: "c1".into(),
            pin_dir: dir.path().join("pins"),
            prefix: "skiff-c1".into(),
            hosts: vec!["cp-1".into(), "worker-1".into()],
            control_planes: 1,
            workers: 1,
            servers: vec!["10.250.0.2:7000".into()],
            config: dir.path().join("config"),
        };
        let state_path = cluster.join(STATE_FILE);
        std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
        let netns = state.underlay();
        let err = check_config_cluster("c1", &netns, Some(&state_path))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "local cluster \"c1\" is stopped: start it with skiff start --name c1 --dir {}",
                dir.path().display()
            )
        );
        // An entry written before entries named their state: its namespace decides.
        let err = check_config_cluster("local", &netns, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "local cluster \"local\" is stopped: start it with skiff start"
        );
        // A state file that went: the cluster is gone.
        std::fs::remove_file(&state_path).unwrap();
        let err = check_config_cluster("c1", &netns, Some(&state_path))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("no local cluster \"c1\""), "{err}");
        assert!(err.contains("skiff up --name c1"), "{err}");
    }

    #[test]
    fn start_and_stop_of_a_cluster_that_is_not_there_say_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        for err in [
            start("c9", dir.path(), Duration::from_secs(1), &mut Vec::new()),
            stop("c9", dir.path(), &mut Vec::new()).map(drop),
        ] {
            let err = err.unwrap_err().to_string();
            if nix::unistd::Uid::effective().is_root() {
                assert!(err.starts_with("no local cluster \"c9\" in"), "{err}");
                let how = format!(
                    "create it with skiff up --name c9 --dir {}",
                    dir.path().display()
                );
                assert!(err.ends_with(&how), "{err}");
            } else {
                assert!(err.contains("needs root"), "{err}");
            }
        }
        assert!(!dir.path().join("c9").exists(), "nothing made");
    }
}
