//! `skiff-control-plane`: parses flags and serves one node until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_control_plane::config::{
    Config, DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_WATCHES_PER_CONNECTION, DEFAULT_WATCH_HISTORY_BYTES, InitialClusterState,
    parse_duration, parse_peers,
};

// Raft and the API allocate many short-lived buffers; mimalloc handles that pattern
// markedly better than glibc's allocator (measured with bench-writes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Once a second, mimalloc runs the purges it put off: memory a thread freed goes back to
/// the OS 10-100 ms later, but only when some thread allocates again past that point. A
/// member that loaded its state at startup or served a list of 20k pods, then went quiet,
/// kept up to 60 MiB it no longer used (bench-scale: a restarted follower at 161 MiB, 104
/// with this). Purging at once instead (`purge_delay` 0) cost 1-client writes ~15 %.
#[allow(unsafe_code)]
fn purge_freed_memory() {
    let spawned = std::thread::Builder::new()
        .name("mi-purge".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                // SAFETY: thread safe, takes no pointers; collects this (allocation-free)
                // thread's heap and the arenas' expired purges, which are process-wide.
                unsafe { libmimalloc_sys::mi_collect(false) }
            }
        });
    if let Err(e) = spawned {
        eprintln!("warning: no allocator purge thread: {e}");
    }
}

#[derive(Parser)]
#[command(
    name = "skiff-control-plane",
    about = "A Skiff control-plane node (Raft member and API server)"
)]
struct Flags {
    /// This node's Raft id (> 0), as named in --peers.
    #[arg(long)]
    id: u64,
    /// The cluster token (one line, from `skiff token generate`); required. Every member
    /// and agent of a cluster gets the same one. Keep it 0600: the CA derives from it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Where the log, state and snapshots live. A fresh dir bootstraps once.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to serve the API and Raft on.
    #[arg(long)]
    listen: String,
    /// Where to serve the Kubernetes API over HTTPS (HOST:PORT) [default: the --listen host,
    /// port 6443]; `off` disables it. A given address that cannot be bound is an error; the
    /// default one, taken (several members on one host), is skipped with a warning.
    #[arg(long)]
    kube_listen: Option<String>,
    /// Every initial member: 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT (this node's entry is its advertised address).
    #[arg(long)]
    peers: String,
    /// Range that node pod CIDRs are taken from.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// How long a request waits for a leader and a quorum before Unavailable.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
    /// Changes kept for watchers that resume from a resourceVersion.
    #[arg(long, default_value_t = 100_000)]
    watch_history: usize,
    /// Bytes of changes kept for resuming watchers (whichever of the two bounds comes
    /// first); a watch from an older version is told it is too old and relists.
    #[arg(long, default_value_t = DEFAULT_WATCH_HISTORY_BYTES)]
    watch_history_bytes: usize,
    /// Bytes of the storage engine's page cache (sled's: recent log entries and the
    /// snapshot as stored; the objects themselves are held in memory regardless).
    #[arg(long, default_value_t = skiff_control_plane::store::DEFAULT_CACHE_BYTES)]
    storage_cache_bytes: u64,
    /// Build a snapshot after this many log entries.
    #[arg(long, default_value_t = 10_000)]
    snapshot_after_entries: u64,
    /// Log entries kept behind a snapshot for followers that lag briefly.
    #[arg(long, default_value_t = 1_000)]
    log_entries_kept: u64,
    /// A node whose agent is silent this long becomes Ready=False.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    node_grace: Duration,
    /// A node not ready this long has its pods marked Failed (NodeLost), so their
    /// deployments replace them elsewhere.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pod_eviction_timeout: Duration,
    /// How long events are kept after they last happened.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    event_ttl: Duration,
    /// new: a fresh data dir starts the cluster named by --peers (every initial member
    /// does this). existing: a fresh data dir joins the running cluster (a replaced or
    /// wiped member; it rejoins as a learner and votes again once caught up).
    #[arg(long, default_value = "new")]
    initial_cluster_state: InitialClusterState,
    /// The largest API request accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// The largest object stored, in bytes of its JSON (etcd's default 1.5 MiB); at most
    /// --max-request-bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_OBJECT_BYTES)]
    max_object_bytes: usize,
    /// Concurrent watches one client connection may hold.
    #[arg(long, default_value_t = DEFAULT_MAX_WATCHES_PER_CONNECTION)]
    max_watches_per_connection: usize,
    /// Raft heartbeat interval; also the time one AppendEntries may take. Raise it on
    /// links with a long round trip (etcd's advice: about the round-trip time).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    heartbeat_interval: Duration,
    /// Raft election timeout, the lower bound (etcd's advice: ten heartbeats or more).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    election_timeout_min: Duration,
    /// Raft election timeout, the upper bound.
    #[arg(long, default_value = "400ms", value_parser = parse_duration)]
    election_timeout_max: Duration,
    /// Where to serve Prometheus metrics (plain HTTP, /metrics only) [default:
    /// 127.0.0.1:9190]; empty or `off` disables them. A given address that cannot be bound
    /// is an error; the default one, taken (several members on one host), is skipped with
    /// a warning.
    #[arg(long)]
    metrics_listen: Option<String>,
}

/// The default `--metrics-listen`, as DESIGN.md has it.
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9190";

fn main() -> anyhow::Result<()> {
    purge_freed_memory();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    // Before anything is created: a member without the token must leave no trace.
    let token = skiff_pki::ClusterToken::from_required_file(
        flags.token_file.as_deref(),
        "make one with `skiff token generate`",
    )
    .unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let peers = parse_peers(&flags.peers)?;
    let mut config = Config::new(flags.id, flags.data_dir, peers);
    config.cluster_cidr = flags.cluster_cidr;
    config.request_timeout = Duration::from_millis(flags.request_timeout_ms);
    config.watch_history = flags.watch_history;
    config.watch_history_bytes = flags.watch_history_bytes;
    config.storage_cache_bytes = flags.storage_cache_bytes;
    config.max_object_bytes = flags.max_object_bytes;
    config.max_watches_per_connection = flags.max_watches_per_connection;
    config.snapshot_after_entries = flags.snapshot_after_entries;
    config.log_entries_kept = flags.log_entries_kept;
    config.node_grace = flags.node_grace;
    config.pod_eviction_timeout = flags.pod_eviction_timeout;
    config.event_ttl = flags.event_ttl;
    config.initial_cluster_state = flags.initial_cluster_state;
    config.max_request_bytes = flags.max_request_bytes;
    config.heartbeat_interval = flags.heartbeat_interval;
    config.election_timeout_min = flags.election_timeout_min;
    config.election_timeout_max = flags.election_timeout_max;
    config.token = Some(token);
    config.kube_listen =
        skiff_control_plane::kube::KubeListen::parse(flags.kube_listen.as_deref(), &flags.listen)
            .unwrap_or_else(|e| {
                eprintln!("error: {e}");
                std::process::exit(2);
            });
    if let Err(e) = config
        .check()
        .and_then(|()| config.raft_config().map(|_| ()))
    {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let listener = tokio::net::TcpListener::bind(&flags.listen)
        .await
        .with_context(|| format!("cannot listen on {}", flags.listen))?;
    let metrics_listener =
        skiff_metrics::bind(flags.metrics_listen.as_deref(), DEFAULT_METRICS_LISTEN).await?;
    match skiff_control_plane::run(config, listener, metrics_listener, shutdown_signal()).await {
        // A member that must not start as asked (it lost its data, or the cluster does
        // not know it) says why and exits 2, like a bad flag: retrying cannot help.
        Err(e @ skiff_control_plane::RunError::Refused(_)) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        other => Ok(other?),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
