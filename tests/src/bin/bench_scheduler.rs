//! Scheduling throughput: bare pods created, bound by the scheduler and committed, onto
//! simulated nodes.
//!
//! `cargo run --release -p skiff-tests --bin bench-scheduler -- [--nodes 1000] [--pods 10000]
//!  [--clients 64] [--heartbeat-secs 2] [--node-cpu 4] [--node-memory 16Gi] [--node-pods 110]
//!  [--cluster-cidr 10.244.0.0/14] [--timeout-secs 120]`
//!
//! Starts a 3-node release control plane on loopback, registers `--nodes` simulated nodes
//! (Node objects heartbeated through the public API, no agents) and waits until all are
//! Ready. A watcher on the pods of `default`, started from the current resourceVersion
//! before any pod exists, notes when each pod is first seen with `nodeName` set. Then
//! `--clients` closed-loop creators (spread round-robin over one client per control-plane
//! endpoint) create `--pods` bare pods (10m cpu / 16Mi each). Printed: create throughput,
//! scheduling throughput (pods / time from the first create to the last bind seen), the
//! create → bound latency quantiles and the leader's memory; then a final list checks that
//! every pod is bound and no node is over its pod count, cpu or memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use skiff_api::types::{Container, Node, Pod, Quantity, ResourceRequirements};
use skiff_client::{Client, ListParams, WatchEvent, WatchParams};
use skiff_tests::cluster::{ControlPlaneCluster, try_binary};
use skiff_tests::nodes::{NodeShape, SimulatedNodes, is_ready};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Node objects created at the same time while registering.
const REGISTER_CONCURRENCY: usize = 64;
const POD_CPU: &str = "10m";
const POD_MEMORY: &str = "16Mi";

#[derive(Parser)]
#[command(about = "Scheduler throughput: pods created, bound and committed per second")]
struct Flags {
    /// Simulated nodes to register.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Bare pods to create and wait for.
    #[arg(long, default_value_t = 10000)]
    pods: usize,
    /// Closed-loop pod creators.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Heartbeat interval of every simulated node.
    #[arg(long, default_value_t = 2)]
    heartbeat_secs: u64,
    /// CPU capacity of every node.
    #[arg(long, default_value = "4")]
    node_cpu: String,
    /// Memory capacity of every node.
    #[arg(long, default_value = "16Gi")]
    node_memory: String,
    /// Pod capacity of every node.
    #[arg(long, default_value_t = 110)]
    node_pods: u32,
    /// The control plane's `--cluster-cidr`: it hands every node a /24 from it, so it must
    /// hold `--nodes` of them (the control plane's default /16 holds only 256).
    #[arg(long, default_value = "10.244.0.0/14")]
    cluster_cidr: String,
    /// How long after the first create every pod must be seen bound.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Extra flags for every control-plane process (e.g. `--cp-arg=--watch-history=10000`).
    #[arg(long = "cp-arg", allow_hyphen_values = true)]
    cp_args: Vec<String>,
}

/// User + system CPU time a process has used so far, in seconds ("self" for this one).
fn cpu_secs(pid: &str) -> f64 {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / ticks
}

/// CPU seconds used so far by every control-plane member and by this process.
fn cpu_usage(cluster: &ControlPlaneCluster) -> Vec<(String, f64)> {
    let mut usage: Vec<(String, f64)> = cluster
        .ids()
        .into_iter()
        .filter_map(|id| {
            Some((
                format!("node {id}"),
                cpu_secs(&cluster.pid(id)?.to_string()),
            ))
        })
        .collect();
    usage.push(("bench".into(), cpu_secs("self")));
    usage
}

/// A bare pod in `default`: one busybox container asking for 10m cpu and 16Mi memory.
fn bench_pod(name: &str) -> Pod {
    let requests = [("cpu", POD_CPU), ("memory", POD_MEMORY)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity::from(v)))
        .collect();
    let mut pod = Pod::default();
    pod.metadata.name = name.to_string();
    pod.metadata.namespace = Some("default".into());
    pod.spec.containers = vec![Container {
        name: "main".into(),
        image: "busybox".into(),
        resources: Some(ResourceRequirements {
            requests,
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }];
    pod
}

fn node_name(i: usize) -> String {
    format!("bench-node-{i:04}")
}

/// Creates the Node objects concurrently (spread over `clients`), then starts their
/// heartbeats spread over one interval so they do not all arrive at once.
async fn register_nodes(
    nodes: &mut SimulatedNodes,
    clients: &[Client],
    flags: &Flags,
    interval: Duration,
) -> anyhow::Result<()> {
    let shape = NodeShape {
        cpu: flags.node_cpu.clone(),
        memory: flags.node_memory.clone(),
        pods: flags.node_pods,
        ..NodeShape::default()
    };
    let created: Vec<anyhow::Result<()>> = futures::stream::iter(0..flags.nodes)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let node = SimulatedNodes::node_object(&node_name(i), &shape, i);
            async move {
                match client.create(&node).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_already_exists() => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("create node {}", node_name(i))),
                }
            }
        })
        .buffer_unordered(REGISTER_CONCURRENCY)
        .collect()
        .await;
    created.into_iter().collect::<anyhow::Result<()>>()?;
    let gap = interval / flags.nodes.max(1) as u32;
    for i in 0..flags.nodes {
        nodes.start_heartbeats(&node_name(i));
        tokio::time::sleep(gap).await;
    }
    Ok(())
}

/// What the watcher saw before it stopped.
struct Watched {
    bound_at: HashMap<String, Instant>,
    /// Why it stopped before seeing every pod bound.
    stopped: Option<String>,
}

/// Notes when each pod is first seen with a node, until `total` are or `deadline` passes.
async fn watch_binds(
    mut events: skiff_client::WatchStream<Pod>,
    total: usize,
    deadline: tokio::time::Instant,
) -> Watched {
    let mut bound_at = HashMap::with_capacity(total);
    let mut stopped = None;
    while bound_at.len() < total {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)))) => {
                if pod.spec.node_name.is_some() {
                    bound_at
                        .entry(pod.metadata.name)
                        .or_insert_with(Instant::now);
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                stopped = Some(format!("watch failed: {e}"));
                break;
            }
            Ok(None) => {
                stopped = Some("watch ended".into());
                break;
            }
            Err(_) => {
                stopped = Some("timed out".into());
                break;
            }
        }
    }
    Watched { bound_at, stopped }
}

/// What one creator did: each created pod's index and create-start time.
#[derive(Default)]
struct Created {
    started: Vec<(usize, Instant)>,
    finished: Option<Instant>,
    errors: usize,
    first_error: Option<String>,
}

/// One closed-loop creator: takes the next pod index until all are taken.
async fn creator(client: Client, next: Arc<AtomicUsize>, total: usize) -> Created {
    let mut created = Created::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return created;
        }
        let pod = bench_pod(&format!("bench-{i}"));
        let at = Instant::now();
        match client.create(&pod).await {
            // A create retried on another endpoint may already have been applied.
            Ok(_) => created.started.push((i, at)),
            Err(e) if e.is_already_exists() => created.started.push((i, at)),
            Err(e) => {
                created.errors += 1;
                created.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        created.finished = Some(Instant::now());
    }
}

/// The final list: every pod bound to a known node, no node over its capacity.
async fn verify(client: &Client, flags: &Flags) -> anyhow::Result<()> {
    let nodes = client
        .list::<Node>(&ListParams::all_namespaces())
        .await
        .context("list nodes")?;
    let allocatable: HashMap<String, (u64, u64, u64)> = nodes
        .items
        .iter()
        .map(|node| {
            let status = node.status.as_ref();
            let get =
                |k: &str| status.and_then(|s| s.allocatable.get(k).or_else(|| s.capacity.get(k)));
            let cpu = get("cpu").map_or(Ok(0), Quantity::cpu_millis)?;
            let memory = get("memory").map_or(Ok(0), Quantity::bytes)?;
            let pods = get("pods").map_or(Ok(110.0), Quantity::value)? as u64;
            Ok((node.metadata.name.clone(), (cpu, memory, pods)))
        })
        .collect::<anyhow::Result<_>>()?;
    let pods = client
        .list::<Pod>(&ListParams::namespace("default"))
        .await
        .context("list pods")?;
    let pod_cpu = Quantity::from(POD_CPU).cpu_millis()?;
    let pod_memory = Quantity::from(POD_MEMORY).bytes()?;
    let mut present = 0;
    let mut unbound = Vec::new();
    // Per node: pods, cpu millis, memory bytes.
    let mut used: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for pod in &pods.items {
        let name = &pod.metadata.name;
        let is_bench = name
            .strip_prefix("bench-")
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < flags.pods);
        if !is_bench {
            continue;
        }
        present += 1;
        match &pod.spec.node_name {
            Some(node) => {
                let entry = used.entry(node.clone()).or_default();
                entry.0 += 1;
                entry.1 += pod_cpu;
                entry.2 += pod_memory;
            }
            None => unbound.push(name.clone()),
        }
    }
    ensure!(
        present == flags.pods,
        "verify: {present} of {} pods exist",
        flags.pods
    );
    ensure!(
        unbound.is_empty(),
        "verify: {} pods unbound (e.g. {})",
        unbound.len(),
        unbound
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut problems = Vec::new();
    for (node, &(pods, cpu, memory)) in &used {
        let Some(&(max_cpu, max_memory, max_pods)) = allocatable.get(node) else {
            problems.push(format!("{node}: not a registered node ({pods} pods)"));
            continue;
        };
        if pods > max_pods {
            problems.push(format!("{node}: {pods} pods > {max_pods}"));
        }
        if cpu > max_cpu {
            problems.push(format!("{node}: {cpu}m cpu > {max_cpu}m"));
        }
        if memory > max_memory {
            problems.push(format!("{node}: {memory} B memory > {max_memory} B"));
        }
    }
    if !problems.is_empty() {
        bail!(
            "verify: {} nodes overcommitted:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    let max_per_node = used.values().map(|u| u.0).max().unwrap_or(0);
    println!(
        "verified: {} pods bound on {} nodes, max per node {max_per_node}",
        flags.pods,
        used.len()
    );
    Ok(())
}

async fn run(flags: &Flags) -> anyhow::Result<()> {
    println!(
        "# command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("# machine: {}", skiff_tests::host::machine_info());
    println!(
        "# {} nodes ({} cpu, {} memory, {} pods, heartbeat {} s), {} pods ({POD_CPU} cpu, \
         {POD_MEMORY}), {} creators",
        flags.nodes,
        flags.node_cpu,
        flags.node_memory,
        flags.node_pods,
        flags.heartbeat_secs,
        flags.pods,
        flags.clients
    );
    eprintln!("# building (release) and starting a 3-node skiff cluster ...");
    // Built off the async threads so that Ctrl-C is still handled during the build.
    tokio::task::spawn_blocking(|| try_binary("skiff-control-plane", true)).await??;
    let mut builder = ControlPlaneCluster::builder(3)
        .release(true)
        .arg("--cluster-cidr")
        .arg(&flags.cluster_cidr);
    for arg in &flags.cp_args {
        builder = builder.arg(arg.clone());
    }
    let cluster = builder.start().context("start control plane")?;
    let leader = cluster.wait_for_leader(READY_TIMEOUT).await?;
    let admin = cluster.client();
    admin.wait_ready(READY_TIMEOUT).await?;
    // One client per endpoint; creators are spread over them round-robin.
    let clients: Vec<Client> = cluster
        .endpoints()
        .iter()
        .map(|e| cluster.client_for(std::slice::from_ref(e), Duration::from_secs(10)))
        .collect();

    eprintln!("# registering {} nodes ...", flags.nodes);
    let registering = Instant::now();
    let interval = Duration::from_secs(flags.heartbeat_secs);
    let mut nodes = SimulatedNodes::new(admin.clone(), interval);
    register_nodes(&mut nodes, &clients, flags, interval).await?;
    nodes
        .wait_ready(Duration::from_secs(60))
        .await
        .context("wait for the nodes to be Ready")?;
    let ready = admin
        .list::<Node>(&ListParams::all_namespaces())
        .await?
        .items
        .iter()
        .filter(|n| is_ready(n))
        .count();
    println!(
        "# {ready} nodes Ready after {:.1} s",
        registering.elapsed().as_secs_f64()
    );

    let listed = admin.list::<Pod>(&ListParams::namespace("default")).await?;
    let events =
        admin.watch::<Pod>(WatchParams::namespace("default").from_version(listed.resource_version));
    let total = flags.pods;
    let cpu_before = cpu_usage(&cluster);
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + Duration::from_secs(flags.timeout_secs));
    let watcher = tokio::spawn(watch_binds(events, total, deadline));

    eprintln!("# creating {total} pods ...");
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..flags.clients)
        .map(|c| {
            let client = clients[c % clients.len()].clone();
            tokio::spawn(creator(client, next.clone(), total))
        })
        .collect();
    let mut create_start: Vec<Option<Instant>> = vec![None; total];
    let mut create_end = start;
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let created = task.await?;
        for (i, at) in created.started {
            create_start[i] = Some(at);
        }
        if let Some(end) = created.finished {
            create_end = create_end.max(end);
        }
        errors += created.errors;
        if first_error.is_none() {
            first_error = created.first_error;
        }
    }
    let create_secs = create_end.duration_since(start).as_secs_f64();
    let created = create_start.iter().flatten().count();
    println!(
        "create:     {created} pods in {create_secs:.2} s = {:.0} pods/s ({errors} errors)",
        created as f64 / create_secs
    );
    if let Some(error) = &first_error {
        bail!("{errors} of {total} creates failed; first error: {error}");
    }

    let watched = watcher.await?;
    let bound = watched.bound_at.len();
    if bound < total {
        let (rss, hwm) = cluster
            .pid(leader)
            .map(skiff_tests::host::memory_kib)
            .unwrap_or_default();
        println!(
            "# leader (node {leader}) VmHWM {:.1} MiB, VmRSS {:.1} MiB",
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        );
        bail!(
            "only {bound} of {total} pods were seen bound within {} s of the first create ({})",
            flags.timeout_secs,
            watched.stopped.as_deref().unwrap_or("?")
        );
    }
    let last_bind = watched
        .bound_at
        .values()
        .max()
        .copied()
        .context("no pods")?;
    let schedule_secs = last_bind.duration_since(start).as_secs_f64();
    println!(
        "scheduling: {total} pods bound in {schedule_secs:.2} s = {:.0} pods/s \
         (first create to last bind seen)",
        total as f64 / schedule_secs
    );
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for (i, at) in create_start.iter().enumerate() {
        let Some(at) = at else { continue };
        if let Some(seen) = watched.bound_at.get(&format!("bench-{i}")) {
            let micros = seen.saturating_duration_since(*at).as_micros();
            latency_us.saturating_record(micros.try_into().unwrap_or(u64::MAX));
        }
    }
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "create -> bound: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(latency_us.value_at_quantile(0.50)),
        ms(latency_us.value_at_quantile(0.90)),
        ms(latency_us.value_at_quantile(0.99)),
        ms(latency_us.max())
    );
    let cpu_after = cpu_usage(&cluster);
    let cpu_wall = start.elapsed().as_secs_f64();
    let cpu: Vec<String> = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|((who, before), (_, after))| {
            format!("{who} {:.0} %", (after - before) / cpu_wall * 100.0)
        })
        .collect();
    println!("# cpu over the run: {}", cpu.join(", "));
    let now_leader = cluster.leader_id().await.unwrap_or(leader);
    if now_leader != leader {
        println!("# leadership moved from node {leader} to node {now_leader} during the run");
    }
    let pid = cluster
        .pid(now_leader)
        .context("the leader is not running")?;
    let (rss, hwm) = skiff_tests::host::memory_kib(pid);
    println!(
        "leader (node {now_leader}, pid {pid}): VmHWM {:.1} MiB, VmRSS {:.1} MiB",
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );

    verify(&admin, flags).await?;
    drop(nodes);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    if flags.nodes == 0 || flags.pods == 0 || flags.clients == 0 || flags.heartbeat_secs == 0 {
        bail!("--nodes, --pods, --clients and --heartbeat-secs must be at least 1");
    }
    let subnets = flags
        .cluster_cidr
        .split_once('/')
        .and_then(|(_, prefix)| prefix.parse::<u32>().ok())
        .filter(|prefix| *prefix <= 24)
        .map(|prefix| 1usize << (24 - prefix))
        .context("--cluster-cidr must be ADDRESS/PREFIX with a prefix of /24 or shorter")?;
    if flags.nodes > subnets {
        bail!(
            "--cluster-cidr {} holds {subnets} node /24s, fewer than --nodes {}",
            flags.cluster_cidr,
            flags.nodes
        );
    }
    skiff_tests::cluster::run_until_interrupted(run(&flags)).await
}
