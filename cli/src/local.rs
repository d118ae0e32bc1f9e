//! `skiff up` and `skiff down`: a whole cluster on this machine, with network namespaces as
//! hosts (see `skiff_netplugin::hosts`).
//!
//! Hosts `cp-1…` run a control-plane member each, hosts `worker-1…` an agent each; all sit
//! on one underlay bridge (10.250.0.0/24) and their namespaces are pinned in `/run/netns`
//! as `skiff-<name>-<host>`, so `ip netns exec skiff-local-worker-1 …` works. The processes
//! outlive `skiff up`; what `skiff down` needs to find everything again is in
//! `<dir>/<name>/state.json`, written before anything is started.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skiff_api::types::{Node, Pod};
use skiff_client::{Client, ListParams};
use skiff_netplugin::hosts::{HostsError, SimulatedHosts, kill_inside};
use skiff_netplugin::netns;

use crate::endpoints;
use crate::{apply, get};

/// Where `ip netns` looks for named namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// The control plane's port on each control-plane host.
pub const API_PORT: u16 = 7000;
/// The agent's port (logs, exec, port-forward) on each worker.
pub const AGENT_PORT: u16 = 10250;
/// The demo deployment `skiff up` applies.
pub const DEMO_MANIFEST: &str = include_str!("../../examples/demo.yaml");
const BUSYBOX: &str = "/bin/busybox";
/// The image `skiff up` builds from [`BUSYBOX`] and imports into every node.
pub const BUSYBOX_IMAGE: &str = "busybox:latest";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "skiff {0} needs root: it creates network namespaces, a bridge, veths and routes (try: sudo skiff {0})"
    )]
    NotRoot(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "local cluster {name:?} is already running ({summary}; state in {dir}): use it with `skiff get nodes`, stop it with `skiff down{flag}`"
    )]
    Running {
        name: String,
        summary: String,
        dir: String,
        flag: String,
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
    #[error("the demo deployment: {0}")]
    Demo(String),
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

/// Everything `skiff down` needs; written before anything is started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct State {
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

/// Starts a local cluster (see the module documentation) and returns what to print.
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
    let dir = cluster_dir(&options.dir, &options.name);
    let state_path = dir.join("state.json");
    if let Some(state) = read_state(&state_path)? {
        return Err(LocalError::Running {
            name: state.name.clone(),
            summary: state.summary(),
            dir: dir.display().to_string(),
            flag: down_flags(&options.name, &options.dir),
        });
    }
    let control_plane = find_binary("skiff-control-plane")?;
    let agent = find_binary("skiff-agent")?;
    if options.demo && !Path::new(BUSYBOX).is_file() {
        return Err(LocalError::Invalid(format!(
            "the demo runs {BUSYBOX} httpd: install it (apt-get install busybox-static), or use --no-demo"
        )));
    }

    // A dir without a state file is what a failed `up` left (its logs): start afresh.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(&logs))?;

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

    let started = Instant::now();
    let result = start(options, &state, &dir, &control_plane, &agent, out);
    if let Err(e) = result {
        // Leave nothing running; keep the logs for the error message's reader.
        let _ = teardown(&state, &dir, false);
        let _ = std::fs::remove_file(&state_path);
        return Err(match e {
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
        });
    }
    writeln!(
        out,
        "\nLocal cluster {:?} is up ({:.1} s). Stop it and remove everything with: skiff down{}",
        options.name,
        started.elapsed().as_secs_f64(),
        down_flags(&options.name, &options.dir)
    )
    .ok();
    Ok(())
}

fn down_flags(name: &str, dir: &Path) -> String {
    let mut flags = String::new();
    if name != "local" {
        flags.push_str(&format!(" --name {name}"));
    }
    if dir != Path::new(DEFAULT_DIR) {
        flags.push_str(&format!(" --dir {}", dir.display()));
    }
    flags
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

/// Where local clusters keep their data, logs and state by default.
pub const DEFAULT_DIR: &str = "/var/lib/skiff-local";

fn start(
    options: &UpOptions,
    state: &State,
    dir: &Path,
    control_plane: &Path,
    agent: &Path,
    out: &mut dyn Write,
) -> Result<(), LocalError> {
    let logs = dir.join("logs");
    let failed = |what: &str, message: String| LocalError::Start {
        what: what.to_string(),
        message,
        logs: logs.display().to_string(),
    };
    let hosts = SimulatedHosts::create(&state.pin_dir, &state.prefix, &state.host_names())
        .map_err(LocalError::Hosts)?;
    writeln!(
        out,
        "Hosts: {} (network namespaces {}/{}-*, underlay 10.250.0.0/24)",
        state.hosts.join(", "),
        state.pin_dir.display(),
        state.prefix
    )
    .ok();

    // The cluster token: one file every daemon reads (never a command-line argument).
    let token_file = dir.join("token");
    write_private(
        &token_file,
        format!("{}\n", skiff_pki::generate_token()).as_bytes(),
    )?;
    let peers: Vec<String> = state
        .servers
        .iter()
        .enumerate()
        .map(|(i, server)| format!("{}={server}", i + 1))
        .collect();
    let spawn = |host: usize, name: &str, mut command: Command| -> Result<(), LocalError> {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).map_err(io(&log))?;
        let err = file.try_clone().map_err(io(&log))?;
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            // Its own process group: a Ctrl-C in this terminal does not reach the cluster.
            .process_group(0);
        hosts
            .spawn(host, command)
            .map_err(|e| failed(&format!("start {name}"), e.to_string()))?;
        Ok(())
    };
    for i in 1..=state.control_planes {
        let mut command = Command::new(control_plane);
        command
            .arg("--id")
            .arg(i.to_string())
            .arg("--data-dir")
            .arg(dir.join(format!("cp-{i}")))
            .arg("--listen")
            .arg(&state.servers[i - 1])
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--token-file")
            .arg(&token_file);
        spawn(i, &format!("cp-{i}"), command)?;
    }
    for w in 1..=state.workers {
        let host = state.control_planes + w;
        let name = format!("worker-{w}");
        let ip = hosts.ip(host);
        let mut command = Command::new(agent);
        command
            .arg("--name")
            .arg(&name)
            .arg("--servers")
            .arg(state.servers.join(","))
            .arg("--node-ip")
            .arg(ip.to_string())
            .arg("--labels")
            .arg("skiff.dev/role=worker")
            .arg("--data-dir")
            .arg(dir.join(&name))
            .arg("--listen")
            .arg(format!("{ip}:{AGENT_PORT}"))
            .arg("--token-file")
            .arg(&token_file);
        spawn(host, &name, command)?;
    }
    writeln!(
        out,
        "Started {} control-plane member(s) on {} and {} agent(s)",
        state.control_planes,
        state.servers.join(","),
        state.workers
    )
    .ok();

    // Member 1's admin.conf: the CA and a cluster-admin certificate, for us and the config.
    let admin_conf = dir.join("cp-1").join("admin.conf");
    let deadline = Instant::now() + options.timeout;
    while !admin_conf.exists() {
        if Instant::now() > deadline {
            return Err(failed(
                "start cp-1",
                format!("{} did not appear", admin_conf.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let admin = skiff_pki::config::load(&admin_conf)
        .map_err(|e| failed("read admin.conf", e.to_string()))?;
    let (admin_name, admin_entry) =
        skiff_client::select_cluster(&admin, None).map_err(|e| failed("read admin.conf", e))?;
    let tls = admin_entry
        .tls_config(&admin_conf, admin_name, skiff_pki::tls::ServerCheck::Member)
        .map_err(|e| failed("read admin.conf", e.to_string()))?
        .ok_or_else(|| failed("read admin.conf", "it has no CA".into()))?;
    let mut entry = admin_entry.clone();

    let servers = state.servers.clone();
    let workers = state.workers;
    let demo = options.demo;
    let timeout = options.timeout;
    let underlay = hosts.underlay_path();
    let report = netns::run_async_in(&underlay, move || async move {
        let client = Client::connect(servers, tls).map_err(|e| e.to_string())?;
        bring_up(&client, workers, demo, timeout).await
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("start a runtime", e.to_string()))?;
    let report = runtime
        .block_on(report)
        .map_err(|e| failed("reach the cluster", e.to_string()))?
        .map_err(|message| failed("bring the cluster up", message))?;
    out.write_all(report.as_bytes()).ok();

    entry.servers = state.servers.clone();
    entry.netns = Some(hosts.underlay_path());
    endpoints::save_cluster(&options.config, &options.name, entry)?;
    writeln!(
        out,
        "Wrote cluster {:?} to {} (now current): plain `skiff get nodes` talks to it",
        options.name,
        options.config.display()
    )
    .ok();
    if demo {
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

/// Waits for the API and the nodes, applies the demo and waits for its pods; returns the
/// report to print.
async fn bring_up(
    client: &Client,
    workers: usize,
    demo: bool,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let started = Instant::now();
    client
        .wait_ready(timeout)
        .await
        .map_err(|e| e.to_string())?;
    let mut report = String::new();
    let mut last;
    loop {
        let nodes = client
            .list::<Node>(&ListParams::all_namespaces())
            .await
            .map_err(|e| e.to_string())?;
        let ready: Vec<String> = nodes
            .items
            .iter()
            .filter(|n| n.is_ready())
            .map(|n| n.metadata.name.clone())
            .collect();
        if ready.len() >= workers {
            report.push_str(&format!(
                "Nodes ready after {:.1} s: {}\n",
                started.elapsed().as_secs_f64(),
                ready.join(", ")
            ));
            break;
        }
        last = format!("{} of {workers} nodes ready", ready.len());
        if Instant::now() > deadline {
            return Err(format!("nodes not ready within {timeout:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if Path::new(BUSYBOX).is_file() {
        let nodes: Vec<String> = report_ready_nodes(client).await?;
        import_busybox(client, &nodes).await?;
        report.push_str(&format!(
            "Imported {BUSYBOX_IMAGE} (built from this host's {BUSYBOX}) into {}\n",
            nodes.join(", ")
        ));
    }
    if !demo {
        return Ok(report);
    }
    let source = apply::parse_source("examples/demo.yaml", DEMO_MANIFEST)
        .map_err(|e| format!("the demo manifest: {e}"))?;
    let applied = apply::apply(client, &[source], "default")
        .await
        .map_err(|e| format!("apply the demo: {e}"))?;
    for line in applied {
        report.push_str(&line);
        report.push('\n');
    }
    let selector = ListParams::namespace("default").labels("app=demo");
    loop {
        let pods = client
            .list::<Pod>(&selector)
            .await
            .map_err(|e| e.to_string())?;
        let ready = pods.items.iter().filter(|p| pod_ready(p)).count();
        if ready >= 3 {
            break;
        }
        last = format!("{ready} of 3 demo pods ready");
        if Instant::now() > deadline {
            return Err(format!("demo pods not ready within {timeout:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let table = get::get(
        client,
        &get::GetArgs {
            kind: skiff_api::Kind::Pod,
            names: Vec::new(),
            namespace: "default".into(),
            all_namespaces: false,
            selector: Some("app=demo".into()),
            field_selector: None,
            show_labels: false,
            label_columns: Vec::new(),
            output: get::Output::Wide,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    report.push_str("\n$ skiff get pods -o wide\n");
    report.push_str(&table);
    Ok(report)
}

async fn report_ready_nodes(client: &Client) -> Result<Vec<String>, String> {
    let nodes = client
        .list::<Node>(&ListParams::all_namespaces())
        .await
        .map_err(|e| e.to_string())?;
    Ok(nodes
        .items
        .iter()
        .filter(|n| n.is_ready())
        .map(|n| n.metadata.name.clone())
        .collect())
}

/// Puts a busybox image into every node's image store, so that pods (the demo's too) can
/// name `busybox` with no registry in reach: the `oci` runtime runs images only.
async fn import_busybox(client: &Client, nodes: &[String]) -> Result<(), String> {
    let busybox = std::fs::read(BUSYBOX).map_err(|e| format!("read {BUSYBOX}: {e}"))?;
    let archive = skiff_image::busybox_archive(&busybox, BUSYBOX_IMAGE)
        .map_err(|e| format!("build the busybox image: {e}"))?;
    for node in nodes {
        client
            .import_image(node, std::io::Cursor::new(archive.clone()))
            .await
            .map_err(|e| format!("import {BUSYBOX_IMAGE} into node {node}: {e}"))?;
    }
    Ok(())
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// What [`down`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    pub processes: usize,
    pub namespaces: usize,
    /// Mounts or processes that could not be removed (the dir is then kept).
    pub leftovers: Vec<String>,
}

/// Stops local cluster `name` and removes every namespace, link, process, mount and data
/// dir it made, and its entry in the CLI config. A cluster that is not there is fine.
pub fn down(name: &str, dir: &Path, out: &mut dyn Write) -> Result<DownReport, LocalError> {
    check_name(name)?;
    check_root("down")?;
    let cluster = cluster_dir(dir, name);
    let state_path = cluster.join("state.json");
    let Some(state) = read_state(&state_path)? else {
        if cluster.exists() {
            // Logs of a failed `up`.
            std::fs::remove_dir_all(&cluster).map_err(io(&cluster))?;
        }
        writeln!(out, "No local cluster {name:?} is running.").ok();
        return Ok(DownReport::default());
    };
    let report = teardown(&state, &cluster, true)?;
    endpoints::forget_cluster(&state.config, name)?;
    if report.leftovers.is_empty() {
        writeln!(
            out,
            "Local cluster {name:?} stopped: {} process(es) killed, {} namespace(s) and {} removed.",
            report.processes,
            report.namespaces,
            cluster.display()
        )
        .ok();
    } else {
        writeln!(
            out,
            "Local cluster {name:?} stopped, but these remain (kept {}):\n  {}",
            cluster.display(),
            report.leftovers.join("\n  ")
        )
        .ok();
    }
    Ok(report)
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
        let source = apply::parse_source("examples/demo.yaml", DEMO_MANIFEST).unwrap();
        assert_eq!(source.objects.len(), 1);
    }

    #[test]
    fn down_flags_name_what_differs_from_the_defaults() {
        assert_eq!(down_flags("local", Path::new(DEFAULT_DIR)), "");
        assert_eq!(
            down_flags("t1", Path::new("/tmp/x")),
            " --name t1 --dir /tmp/x"
        );
    }
}
