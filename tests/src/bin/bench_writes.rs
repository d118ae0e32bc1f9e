//! Durable replicated writes: Skiff vs etcd 3.4 on the same machine, same harness, same load.
//!
//! `cargo run --release -p skiff-tests --bin bench-writes -- [--duration-secs 10]
//!  [--clients 1,16,64] [--target skiff|etcd|both] [--value-bytes 1024]
//!  [--skiff-endpoints HOST:PORT,...] [--skiff-metrics on|off]`
//!
//! Both systems run as 3-node clusters on loopback with their data dirs under one temp dir.
//! For each concurrency level every client writes fresh ~1 KiB objects back to back (closed
//! loop) for a 1 s warm-up plus the measured duration and records each measured write's
//! latency. Clients are spread round-robin over the three nodes of each system (one HTTP/2
//! channel per node, shared), so two thirds of the writes take the follower-forwarding path.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use skiff_api::proto::objects_client::ObjectsClient;
use skiff_api::proto::{ClusterStatusRequest, CreateRequest, cluster_client::ClusterClient};
use skiff_tests::cluster::{ControlPlaneCluster, ControlPlaneClusterBuilder, try_binary};
use skiff_tests::etcd::{EtcdCluster, proto::PutRequest, proto::kv_client::KvClient};
use tonic::transport::Channel;

const WARM_UP: Duration = Duration::from_secs(1);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(about = "Replicated write throughput and latency: Skiff vs etcd 3.4")]
struct Flags {
    /// Measured seconds per concurrency level (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Concurrency levels (closed-loop clients) to run.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Which system(s) to measure.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    target: Which,
    /// Size of each written object (Skiff: the Pod's JSON; etcd: the value).
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Measure an already running Skiff cluster (HOST:PORT,...) instead of starting one.
    #[arg(long, value_delimiter = ',')]
    skiff_endpoints: Vec<String>,
    /// The client config (a member's admin.conf) for --skiff-endpoints.
    #[arg(long)]
    skiff_config: Option<std::path::PathBuf>,
    /// Send every Skiff write to the leader (no follower forwarding), to tell the cost of
    /// forwarding from that of the Raft path.
    #[arg(long)]
    skiff_leader_only: bool,
    /// Whether the started Skiff members serve Prometheus metrics (on or off), to measure
    /// what metrics cost.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    skiff_metrics: String,
    /// Run the dev-profile members (target/debug) instead of release ones: for profiling
    /// between edits, never for the figures.
    #[arg(long)]
    dev_build: bool,
    /// Run this skiff-control-plane binary instead of the workspace's (e.g. an older
    /// commit's release build, for before/after figures against the same etcd run).
    #[arg(long)]
    skiff_binary: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Which {
    Skiff,
    Etcd,
    Both,
}

/// A connection to one node of the system under test; cloning shares the channel.
#[derive(Clone)]
enum Conn {
    Skiff(ObjectsClient<Channel>),
    Etcd(KvClient<Channel>),
}

/// One system under test: a connection per node, handed out round-robin to clients.
struct Target {
    name: &'static str,
    conns: Vec<Conn>,
}

impl Conn {
    /// One durable write of a fresh ~`size`-byte object. The request is built inside the
    /// timed region, as a real client's would be.
    async fn write(&mut self, name: &str, size: usize) -> Result<(), tonic::Status> {
        match self {
            Conn::Skiff(objects) => {
                let object = pod_json(name, size).into_bytes();
                let create = CreateRequest {
                    kind: "Pod".into(),
                    object,
                };
                objects.create(create).await.map(drop)
            }
            Conn::Etcd(kv) => {
                let put = PutRequest {
                    key: format!("/bench/{name}").into_bytes(),
                    value: vec![b'x'; size],
                    ..Default::default()
                };
                kv.put(put).await.map(drop)
            }
        }
    }
}

/// A Pod in `default` whose JSON is `size` bytes (or its minimum), padded with ASCII in the
/// `bench/payload` annotation. Formatted directly so the size is exact and cheap to make.
/// A Pod of about `size` bytes of JSON. It names a scheduler that does not run, so the
/// scheduler leaves it alone (as kube-scheduler leaves another scheduler's pods): the run
/// measures the store's writes, not the scheduler's status write and event per new pod.
fn pod_json(name: &str, size: usize) -> String {
    let render = |pad: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default","annotations":{{"bench/payload":"{pad}"}}}},"spec":{{"schedulerName":"bench-unscheduled","containers":[{{"name":"c","image":"busybox"}}]}}}}"#
        )
    };
    let bare = render("").len();
    render(&"x".repeat(size.saturating_sub(bare)))
}

/// The TLS config Skiff channels use (the admin credential), set once Skiff is known.
static SKIFF_TLS: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
    std::sync::OnceLock::new();

/// A TLS channel to a Skiff member, with the admin credential.
fn skiff_channel(endpoint: &str) -> anyhow::Result<Channel> {
    let tls = SKIFF_TLS.get().context("no Skiff TLS config")?.clone();
    Ok(skiff_pki::tls::endpoint(endpoint)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(1))
        // A stuck write shows up as an error instead of stalling the run.
        .timeout(Duration::from_secs(10))
        .connect_with_connector_lazy(skiff_pki::tls::connector(tls)))
}

/// The results of one concurrency level.
struct Outcome {
    latency_us: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Outcome {
    fn new() -> Self {
        Outcome {
            // 1 µs to 60 s at 3 significant figures; one fixed layout for every histogram
            // keeps merging simple (merged auto-resizing ones reported 0 ms quantiles).
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: Outcome) -> anyhow::Result<()> {
        self.latency_us.add(&other.latency_us)?;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }
}

/// One client's closed loop: writes back to back until `end`, recording the writes that
/// start at or after `measure_from`. `prefix` makes every object name unique.
async fn client_loop(
    mut conn: Conn,
    prefix: String,
    size: usize,
    measure_from: Instant,
    end: Instant,
) -> Outcome {
    let mut outcome = Outcome::new();
    let mut seq = 0u64;
    loop {
        let started = Instant::now();
        if started >= end {
            return outcome;
        }
        seq += 1;
        let result = conn.write(&format!("{prefix}-{seq}"), size).await;
        if started < measure_from {
            continue;
        }
        match result {
            Ok(()) => {
                let micros = started.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
                outcome.latency_us.saturating_record(micros);
            }
            Err(status) => {
                outcome.errors += 1;
                outcome
                    .first_error
                    .get_or_insert_with(|| status.to_string());
                // Don't spin on a failing cluster; errors are counted, not retried.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Runs `clients` closed loops (numbered from `first_client`) against `target`.
async fn run_level(
    target: &Target,
    run: &str,
    first_client: usize,
    clients: usize,
    flags: &Flags,
) -> anyhow::Result<Outcome> {
    let measure_from = Instant::now() + WARM_UP;
    let end = measure_from + Duration::from_secs(flags.duration_secs);
    let tasks: Vec<_> = (first_client..first_client + clients)
        .map(|client| {
            let conn = target.conns[client % target.conns.len()].clone();
            let prefix = format!("bench-{run}-{client}");
            tokio::spawn(client_loop(
                conn,
                prefix,
                flags.value_bytes,
                measure_from,
                end,
            ))
        })
        .collect();
    let mut total = Outcome::new();
    for task in tasks {
        total.merge(task.await?)?;
    }
    Ok(total)
}

fn print_row(target: &str, clients: usize, outcome: &Outcome, measured: Duration) {
    let h = &outcome.latency_us;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{target:<7} {clients:>7} {:>8} {:>10.0} {:>7.2} {:>7.2} {:>7}",
        h.len(),
        h.len() as f64 / measured.as_secs_f64(),
        ms(0.50),
        ms(0.99),
        outcome.errors
    );
    if let Some(error) = &outcome.first_error {
        println!("#   first {target} error: {error}");
    }
}

/// Ready means: some node reports a leader, and a create through every endpoint (followers
/// forward) succeeds. Retried until `timeout`; the error is the last failure.
async fn wait_skiff_ready(
    endpoints: &[String],
    run: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for (i, endpoint) in endpoints.iter().enumerate() {
        let channel = skiff_channel(endpoint)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last_error = match ClusterClient::new(channel.clone())
                .status(ClusterStatusRequest {})
                .await
            {
                Ok(status) if status.get_ref().leader_id.is_none() => "no leader yet".to_string(),
                Ok(_) => {
                    let name = format!("bench-{run}-ready-{i}-{attempt}");
                    let create = CreateRequest {
                        kind: "Pod".into(),
                        object: pod_json(&name, 0).into_bytes(),
                    };
                    match ObjectsClient::new(channel.clone()).create(create).await {
                        Ok(_) => break,
                        Err(e) => format!("test create: {e}"),
                    }
                }
                Err(e) => format!("cluster status: {e}"),
            };
            if Instant::now() > deadline {
                bail!("skiff at {endpoint} not ready within {timeout:?}: {last_error}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The leader's address, as `endpoint` reports it.
async fn skiff_leader(endpoint: &str) -> anyhow::Result<String> {
    let status = ClusterClient::new(skiff_channel(endpoint)?)
        .status(ClusterStatusRequest {})
        .await?
        .into_inner();
    let leader = status.leader_id.context("no leader")?;
    status
        .members
        .iter()
        .find(|m| m.id == leader)
        .map(|m| m.address.clone())
        .with_context(|| format!("leader {leader} is not among the members"))
}

fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(|| "etcd version unknown".into())
}

/// Starts Skiff (unless endpoints were given) and waits until it takes writes.
async fn start_skiff(
    flags: &Flags,
    root: &Path,
    run: &str,
) -> anyhow::Result<(Option<ControlPlaneCluster>, Target)> {
    let (cluster, endpoints) = if flags.skiff_endpoints.is_empty() {
        let release = !flags.dev_build;
        eprintln!("# building and starting a 3-node skiff cluster (release: {release}) ...");
        // Built off the async threads so that Ctrl-C is still handled during the build.
        if flags.skiff_binary.is_none() {
            tokio::task::spawn_blocking(move || try_binary("skiff-control-plane", release))
                .await??;
        }
        let cluster = ControlPlaneClusterBuilder::new(3)
            .metrics(flags.skiff_metrics == "on")
            .release(release)
            .binary(flags.skiff_binary.clone())
            .parent_dir(root)
            .start()?;
        let endpoints = cluster.endpoints();
        let _ = SKIFF_TLS.set(cluster.tls_config());
        (Some(cluster), endpoints)
    } else {
        let config = flags
            .skiff_config
            .as_deref()
            .context("--skiff-endpoints needs --skiff-config (a member's admin.conf)")?;
        let _ = SKIFF_TLS.set(skiff_tests::cluster::admin_tls(config)?);
        (None, flags.skiff_endpoints.clone())
    };
    if let Err(e) = wait_skiff_ready(&endpoints, run, READY_TIMEOUT).await {
        let logs = cluster.as_ref().map(|c| c.logs()).unwrap_or_default();
        bail!("{e:#}\n{logs}");
    }
    let endpoints = if flags.skiff_leader_only {
        vec![skiff_leader(&endpoints[0]).await?]
    } else {
        endpoints
    };
    let conns = endpoints
        .iter()
        .map(|e| Ok(Conn::Skiff(ObjectsClient::new(skiff_channel(e)?))))
        .collect::<anyhow::Result<_>>()?;
    Ok((
        cluster,
        Target {
            name: if flags.skiff_leader_only {
                "skiff-leader"
            } else {
                "skiff"
            },
            conns,
        },
    ))
}

async fn start_etcd(root: &Path) -> anyhow::Result<(EtcdCluster, Target)> {
    eprintln!("# starting a 3-node etcd cluster ...");
    let cluster = EtcdCluster::start_in(3, root).await?;
    let conns = cluster
        .endpoints()
        .iter()
        .map(|e| Ok(Conn::Etcd(KvClient::new(cluster.channel(e)?))))
        .collect::<anyhow::Result<_>>()?;
    Ok((
        cluster,
        Target {
            name: "etcd",
            conns,
        },
    ))
}

async fn run(flags: &Flags) -> anyhow::Result<()> {
    println!(
        "# command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("# machine: {}", skiff_tests::host::machine_info());
    println!(
        "# 3-node clusters on loopback, fsync on, TLS with client certificates on every URL; {} B objects; {} s per level after {} s warm-up",
        flags.value_bytes,
        flags.duration_secs,
        WARM_UP.as_secs()
    );
    // Unique per run, so repeated runs against the same Skiff cluster don't collide.
    let run = format!(
        "{:x}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()
    );
    // Declared before the clusters so it is removed after they are killed.
    let root = tempfile::Builder::new()
        .prefix("skiff-test-bench-")
        .tempdir()
        .context("create the benchmark's temp dir")?;
    let mut targets = Vec::new();
    let mut _skiff_cluster = None;
    let mut _etcd_cluster = None;
    if flags.target != Which::Etcd {
        let (cluster, target) = start_skiff(flags, root.path(), &run).await?;
        _skiff_cluster = cluster;
        targets.push(target);
    }
    if flags.target != Which::Skiff {
        println!("# {}", etcd_version());
        let (cluster, target) = start_etcd(root.path()).await?;
        _etcd_cluster = Some(cluster);
        targets.push(target);
    }
    println!(
        "{:<7} {:>7} {:>8} {:>10} {:>7} {:>7} {:>7}",
        "target", "clients", "writes", "writes/s", "p50_ms", "p99_ms", "errors"
    );
    let measured = Duration::from_secs(flags.duration_secs);
    // Client numbers keep counting across levels so every object name is fresh.
    let mut first_client = 0;
    for &clients in &flags.clients {
        for target in &targets {
            let outcome = run_level(target, &run, first_client, clients, flags).await?;
            print_row(target.name, clients, &outcome, measured);
            first_client += clients;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    if flags.duration_secs == 0 || flags.clients.contains(&0) {
        bail!("--duration-secs and every --clients level must be at least 1");
    }
    skiff_tests::cluster::run_until_interrupted(run(&flags)).await
}
