//! `skiff-agent`: parses flags and runs the node agent until SIGINT/SIGTERM. Pods keep
//! running when it stops; the next start adopts them. `skiff-agent sweep` instead removes
//! what agents left on this host for good (what `skiff down` runs); `skiff-agent
//! stop-containers` stops the pods' containers gracefully and keeps everything else (what
//! `skiff stop` runs, a node shutdown).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_agent::config::{AgentConfig, parse_labels, parse_servers};
use skiff_agent::image::pull::parse_registry_auth;
use skiff_agent::image::{ImageLimits, ImageStore, NodeImages, PullOptions};
use skiff_agent::logs::Rotation;
use skiff_agent::pod::restart::BackoffPolicy;
use skiff_agent::runtime::Runtime;
use skiff_agent::runtime::oci::{self, OciRuntime, RuntimeChoice};
use skiff_agent::runtime::process::{ProcessRuntime, dispatch_internal};
use skiff_agent::server::ExecLimits;

#[derive(Parser)]
#[command(
    name = "skiff-agent",
    about = "The Skiff node agent: runs the pods bound to this node"
)]
struct Flags {
    /// This node's name (a DNS subdomain), as it appears in `skiff get nodes`.
    #[arg(long)]
    name: String,
    /// Control-plane endpoints, HOST:PORT[,HOST:PORT…].
    #[arg(long)]
    servers: String,
    /// The address other nodes and the control plane reach this node on.
    #[arg(long)]
    node_ip: String,
    /// Node labels, k=v,k2=v2 (matched by pods' nodeSelector).
    #[arg(long, default_value = "")]
    labels: String,
    /// The cluster token (one line, from `skiff token generate`); required, and the same
    /// file the control plane was given. The first start joins with it (the token itself
    /// never leaves the host) and keeps the node's credential in <data-dir>/node.conf.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Where sandboxes, container state, volumes and logs live.
    #[arg(long, default_value = "/var/lib/skiff-agent")]
    data_dir: PathBuf,
    /// Where to serve Prometheus metrics (plain HTTP, /metrics only) [default:
    /// 127.0.0.1:9191]; empty or `off` disables them. A given address that cannot be bound
    /// is an error; the default one, taken (several agents on one host), is skipped with a
    /// warning.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Address for logs, exec and port-forward (the control plane proxies to it; TLS, member
    /// certificates only). Default: --node-ip, port 10250.
    #[arg(long)]
    listen: Option<String>,
    /// Container runtime: `oci` runs images from the node's image store (<data-dir>/images)
    /// with runc, and needs root, runc, overlayfs and cgroups; `process` runs host programs.
    /// Default: `oci`; an agent whose host cannot run it refuses to start (never a silent
    /// fall-back to `process`, which isolates nothing: trusted hosts only).
    #[arg(long, value_parser = ["process", "oci"])]
    runtime: Option<String>,
    /// The runc binary for `--runtime oci` (default: runc on PATH, else /usr/sbin/runc).
    #[arg(long)]
    runc: Option<PathBuf>,
    /// A registry (HOST:PORT, as in image names) pulled from over plain HTTP; repeatable.
    /// Loopback registries (localhost, 127.0.0.0/8, [::1]) always are; others use HTTPS.
    /// Pulls happen only with `--runtime oci`.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// Pull a registry's images from a mirror instead: REGISTRY=HOST:PORT (REGISTRY as in
    /// image names, docker.io for short ones like busybox), as a containerd mirror; repeatable.
    /// `skiff up` points docker.io at its local registry.
    #[arg(long = "registry-mirror", value_name = "REGISTRY=HOST:PORT")]
    registry_mirrors: Vec<String>,
    /// Basic-auth credentials for a registry (HOST[:PORT] as in image names); repeatable.
    /// Other registries are pulled from anonymously. Visible in `ps`: prefer
    /// --registry-auth-file on shared hosts.
    #[arg(long = "registry-auth", value_name = "HOST=USER:PASSWORD")]
    registry_auth: Vec<String>,
    /// A file of registry credentials: one HOST=USER:PASSWORD per line (blank lines and
    /// lines starting with # are skipped).
    #[arg(long, value_name = "FILE")]
    registry_auth_file: Option<PathBuf>,
    /// Allocatable cpu (e.g. "4" or "3500m"); the host's core count otherwise.
    #[arg(long)]
    cpu: Option<String>,
    /// Allocatable memory (e.g. "8Gi"); the host's memory otherwise.
    #[arg(long)]
    memory: Option<String>,
    /// Pods this node takes at most.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// How often the agent tells the control plane it is alive.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// First delay before restarting a crashing container; doubles up to --backoff-cap.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    backoff_base: Duration,
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    backoff_cap: Duration,
    /// A container running this long has its back-off reset.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    backoff_reset: Duration,
    /// A container's log file is rotated at this size.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    log_max_bytes: u64,
    /// Log files kept per container, the current one included.
    #[arg(long, default_value_t = 5)]
    log_max_files: u32,
    /// Wire pods into the flat pod network (bridge skiff0, a veth per pod, routes to other
    /// nodes). `false` leaves the host's network alone: pods then have only `lo`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pod_network: bool,
    /// Masquerade traffic from pods to destinations outside --cluster-cidr (nftables, via
    /// Debian's nft). Pod-to-pod traffic is never masqueraded.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    masquerade: bool,
    /// Every node's pod CIDR lies in this range (the control plane's --cluster-cidr).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Routes to other nodes follow Node changes at once, and are checked (and repaired if
    /// changed by hand) at least this often.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    route_resync: Duration,
    /// At most this many processes in each container of the oci runtime; -1 for no limit.
    #[arg(long, default_value_t = 4096, allow_negative_numbers = true)]
    pod_pids_limit: i64,
    /// Exec sessions open at once in one pod; one more is refused (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = ExecLimits::default().per_pod)]
    max_exec_sessions_per_pod: usize,
    /// Exec sessions open at once on this node; one more is refused (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = ExecLimits::default().per_node)]
    max_exec_sessions: usize,
    /// Bytes of file content one image import or pull may unpack (all its layers); a
    /// layer that would unpack past it is refused and nothing of the image is kept.
    #[arg(long, default_value_t = ImageLimits::default().unpacked_bytes)]
    image_max_unpacked_bytes: u64,
    /// Tar entries (files, dirs, links) one image import or pull may unpack.
    #[arg(long, default_value_t = ImageLimits::default().entries)]
    image_max_entries: u64,
    /// The largest image manifest or index taken from a registry or an archive (4 MiB, as
    /// containerd); a longer one is refused as it streams in.
    #[arg(long, default_value_t = ImageLimits::default().manifest_bytes)]
    image_max_manifest_bytes: u64,
    /// Image imports and pulls unpacking at once; more wait their turn.
    #[arg(long, default_value_t = ImageLimits::default().concurrent_imports)]
    image_concurrent_imports: usize,
}

/// `skiff-agent sweep`: kills the processes started under agent data dirs, unmounts what is
/// mounted there and removes their container cgroups, again until nothing is left or the
/// timeout passes. Prints what is left, one per line; exits 0 when nothing is, else 1.
#[derive(Parser)]
#[command(
    name = "skiff-agent sweep",
    about = "Removes what agents left under their data dirs: processes, mounts, cgroups"
)]
struct SweepFlags {
    /// An agent's data dir, or a dir holding agents' data dirs; repeatable.
    #[arg(long = "data-dir", value_name = "DIR", required = true)]
    data_dirs: Vec<PathBuf>,
    /// How long to keep sweeping while something is left.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// `skiff-agent stop-containers`: a node shutdown's stop of every container under agent
/// data dirs — SIGTERM, then SIGKILL after the pod's grace period — keeping the sandboxes,
/// volumes, logs and records, so the agent's next start restarts them. Run it once the
/// agents themselves stopped (a running agent would restart them at once). Prints each
/// container stopped, one per line; exits 0 when all stopped, else 1.
#[derive(Parser)]
#[command(
    name = "skiff-agent stop-containers",
    about = "Stops every container under agents' data dirs gracefully, as a node shutdown does"
)]
struct StopFlags {
    /// An agent's data dir; repeatable.
    #[arg(long = "data-dir", value_name = "DIR", required = true)]
    data_dirs: Vec<PathBuf>,
    /// The grace period of pods that --pod-grace does not name.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    grace_period: Duration,
    /// A pod's own grace period (its terminationGracePeriodSeconds); repeatable.
    #[arg(long = "pod-grace", value_name = "POD-UID=DURATION", value_parser = parse_pod_grace)]
    pod_graces: Vec<(String, Duration)>,
    /// The runc binary of the oci runtime's containers (default: runc on PATH, else
    /// /usr/sbin/runc).
    #[arg(long)]
    runc: Option<PathBuf>,
}

fn parse_pod_grace(text: &str) -> Result<(String, Duration), String> {
    let (uid, grace) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: give POD-UID=DURATION"))?;
    Ok((uid.to_string(), parse_duration(grace)?))
}

/// Runs `skiff-agent sweep …` or `skiff-agent stop-containers …` if that is what this
/// process was started as: its exit code. (Before the agent's flags are parsed, which
/// these commands do not take.)
fn dispatch_commands() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    let command = args.next()?;
    let command = command.to_str()?;
    // Usage errors exit 2, --help 0.
    let args = std::iter::once(format!("skiff-agent {command}").into()).chain(args);
    match command {
        "sweep" => Some(sweep(SweepFlags::parse_from(args))),
        "stop-containers" => Some(stop_containers(StopFlags::parse_from(args))),
        _ => None,
    }
}

fn sweep(flags: SweepFlags) -> i32 {
    let left = skiff_agent::cleanup::sweep_until_clean(&flags.data_dirs, flags.timeout);
    for leftover in &left {
        println!("{leftover}");
    }
    if left.is_empty() { 0 } else { 1 }
}

fn stop_containers(flags: StopFlags) -> i32 {
    let graces: HashMap<String, Duration> = flags.pod_graces.into_iter().collect();
    let grace = |uid: &str| graces.get(uid).copied().unwrap_or(flags.grace_period);
    let runc = flags.runc.unwrap_or_else(oci::find_runc);
    let failed = |what: String| {
        eprintln!("skiff-agent stop-containers: {what}");
        1
    };
    let helper = match std::env::current_exe() {
        Ok(helper) => helper,
        Err(e) => return failed(format!("cannot find the agent's own executable: {e}")),
    };
    let tokio = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(tokio) => tokio,
        Err(e) => return failed(format!("tokio runtime: {e}")),
    };
    let stops = flags.data_dirs.iter().map(|data_dir| {
        let (helper, runc, grace) = (&helper, &runc, &grace);
        async move {
            // Each runtime this data dir has used.
            let mut results = Vec::new();
            if data_dir.join("oci").is_dir() {
                let stopped = match open_oci(
                    data_dir,
                    helper,
                    Rotation::default(),
                    runc,
                    ImageLimits::default(),
                ) {
                    Ok((runtime, _)) => stop_all(&runtime, grace).await,
                    Err(e) => Err(format!("{e:#}")),
                };
                results.push(stopped);
            }
            if data_dir.join("process").is_dir() {
                let root = data_dir.join("process");
                let stopped = match ProcessRuntime::new(root, helper, Rotation::default()) {
                    Ok(runtime) => stop_all(&runtime, grace).await,
                    Err(e) => Err(e.to_string()),
                };
                results.push(stopped);
            }
            (data_dir, results)
        }
    });
    let mut code = 0;
    for (data_dir, results) in tokio.block_on(futures::future::join_all(stops)) {
        for result in results {
            match result {
                Ok(stopped) => {
                    for id in stopped.stopped {
                        println!("stopped {id}");
                    }
                    for (id, why) in stopped.failed {
                        code = failed(format!("{id}: {why}"));
                    }
                }
                Err(why) => code = failed(format!("{}: {why}", data_dir.display())),
            }
        }
    }
    code
}

async fn stop_all<R: Runtime>(
    runtime: &R,
    grace: impl Fn(&str) -> Duration,
) -> Result<skiff_agent::shutdown::Stopped, String> {
    skiff_agent::shutdown::stop_containers(runtime, grace)
        .await
        .map_err(|e| e.to_string())
}

/// The `oci` runtime of the agent at `data_dir` (state in `oci/`) and the image store it
/// runs containers from (`images/`).
fn open_oci(
    data_dir: &Path,
    helper: &Path,
    rotation: Rotation,
    runc: &Path,
    limits: ImageLimits,
) -> anyhow::Result<(OciRuntime, ImageStore)> {
    let images = ImageStore::open(data_dir.join("images"))
        .context("image store")?
        .with_limits(limits);
    let runtime = OciRuntime::new(data_dir.join("oci"), helper, rotation, images.clone(), runc)
        .context("oci runtime")?;
    Ok((runtime, images))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    skiff_api::duration::parse(text).map_err(|e| e.to_string())
}

/// The default `--metrics-listen`, as DESIGN.md has it.
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9191";

fn main() -> anyhow::Result<()> {
    // The same binary is the runtime's sandbox maker, shim and nsexec.
    if let Some(code) = dispatch_internal().or_else(dispatch_commands) {
        std::process::exit(code);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    // Before anything is created: an agent without the token must leave no trace.
    let token = skiff_pki::ClusterToken::from_required_file(
        flags.token_file.as_deref(),
        "the cluster token the control plane has",
    )
    .unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let pull_options = pull_options(&flags)?;
    let mut config = AgentConfig::new(
        &flags.name,
        parse_servers(&flags.servers),
        &flags.node_ip,
        flags.data_dir.clone(),
    );
    config.labels = parse_labels(&flags.labels)?;
    config.listen = flags
        .listen
        .clone()
        .unwrap_or_else(|| AgentConfig::default_listen(&flags.node_ip));
    config.token = Some(token);
    config.cpu = flags.cpu;
    config.memory = flags.memory;
    config.max_pods = flags.max_pods;
    config.heartbeat_interval = flags.heartbeat_interval;
    config.backoff = BackoffPolicy {
        base: flags.backoff_base,
        cap: flags.backoff_cap,
        reset_after: flags.backoff_reset,
    };
    config.log_rotation = Rotation {
        max_bytes: flags.log_max_bytes,
        max_files: flags.log_max_files.max(1),
    };
    config.pod_network = flags.pod_network;
    config.masquerade = flags.masquerade;
    config.cluster_cidr = flags.cluster_cidr;
    config.route_resync = flags.route_resync;
    config.pod_pids_limit = flags.pod_pids_limit;
    config.exec_limits = ExecLimits {
        per_pod: flags.max_exec_sessions_per_pod,
        per_node: flags.max_exec_sessions,
    };
    config.image_limits = ImageLimits {
        unpacked_bytes: flags.image_max_unpacked_bytes,
        entries: flags.image_max_entries,
        manifest_bytes: flags.image_max_manifest_bytes,
        concurrent_imports: flags.image_concurrent_imports.max(1),
    };
    config.check()?;
    skiff_pki::config::private_dir(&config.data_dir)
        .with_context(|| format!("data dir {}", config.data_dir.display()))?;
    let runc = flags.runc.clone().unwrap_or_else(oci::find_runc);
    let choice = oci::choose_runtime(flags.runtime.as_deref(), || oci::check_host(&runc)).context(
        "the oci runtime cannot work on this host; the agent does not fall back to the \
             process runtime on its own (it runs pods as host programs, with no isolation): \
             give --runtime process to run it on a trusted host",
    )?;
    let use_oci = choice == RuntimeChoice::Oci;
    if use_oci {
        // check_host ran it already: it answers.
        let output = std::process::Command::new(&runc)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("{} --version", runc.display()))?;
        config.runtime_version =
            skiff_agent::node::oci_runtime_version(&String::from_utf8_lossy(&output.stdout));
    }
    tracing::info!(
        runtime = if use_oci { "oci" } else { "process" },
        "container runtime"
    );

    let metrics_listen = flags.metrics_listen.clone();
    // Two workers: the agent mostly waits, and a small footprint matters on every node.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    tokio.block_on(async move {
        let helper = std::env::current_exe().context("cannot find the agent's own executable")?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics_listener =
            skiff_metrics::bind(metrics_listen.as_deref(), DEFAULT_METRICS_LISTEN).await?;
        if use_oci {
            let (runtime, store) = open_oci(
                &config.data_dir,
                &helper,
                config.log_rotation,
                &runc,
                config.image_limits,
            )?;
            let runtime = runtime.with_pids_limit(config.pids_limit());
            let images = NodeImages {
                store,
                pull: pull_options,
            };
            skiff_agent::serve(
                config,
                Arc::new(runtime),
                Some(images),
                listener,
                metrics_listener,
                shutdown_signal(),
            )
            .await?;
        } else {
            let runtime =
                ProcessRuntime::new(config.data_dir.join("process"), helper, config.log_rotation)
                    .context("process runtime")?;
            skiff_agent::serve(
                config,
                Arc::new(runtime),
                None,
                listener,
                metrics_listener,
                shutdown_signal(),
            )
            .await?;
        }
        Ok(())
    })
}

/// `--insecure-registry`, `--registry-mirror`, `--registry-auth` and `--registry-auth-file`
/// as pull options.
fn pull_options(flags: &Flags) -> anyhow::Result<PullOptions> {
    let mut options = PullOptions {
        insecure_registries: flags.insecure_registries.clone(),
        ..Default::default()
    };
    for mirror in &flags.registry_mirrors {
        match mirror.split_once('=') {
            Some((registry, endpoint)) if !registry.is_empty() && !endpoint.is_empty() => {
                options
                    .mirrors
                    .insert(registry.to_string(), endpoint.to_string());
            }
            _ => anyhow::bail!("--registry-mirror {mirror:?}: expected REGISTRY=HOST:PORT"),
        }
    }
    let mut entries: Vec<String> = Vec::new();
    if let Some(path) = &flags.registry_auth_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--registry-auth-file {}", path.display()))?;
        entries.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    entries.extend(flags.registry_auth.iter().cloned());
    for entry in entries {
        let (host, credentials) =
            parse_registry_auth(&entry).map_err(|e| anyhow::anyhow!("--registry-auth: {e}"))?;
        options.auth.insert(host, credentials);
    }
    Ok(options)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
