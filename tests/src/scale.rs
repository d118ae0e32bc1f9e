//! Many pods for the benchmarks: pods of a given stored size shaped like a real workload's,
//! created by closed-loop clients, and the figures the benchmarks print about members.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use skiff_api::types::{Container, ContainerPort, EnvVar, Pod, Quantity, ResourceRequirements};
use skiff_client::Client;

use crate::cluster::ControlPlaneCluster;

/// The flags the many-pods benchmarks share: the pods' shape and load, and the members'
/// build and extra flags.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadFlags {
    /// Bytes of each pod's JSON as stored (at least ~800: the pod without padding).
    #[arg(long, default_value_t = 1330)]
    pub pod_bytes: usize,
    /// Closed-loop pod creators.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Run the dev profile's control plane instead of a release build (a quick look where a
    /// release build does not fit; its figures are not release figures).
    #[arg(long)]
    pub dev_build: bool,
    /// Extra flags for every control-plane process (e.g. `--cp-arg=--watch-history=10000`).
    #[arg(long = "cp-arg", allow_hyphen_values = true)]
    pub cp_args: Vec<String>,
}

impl LoadFlags {
    /// Refuses a load that cannot run: no pods, no creators, pods too large to pad.
    pub fn check(&self, pods: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            pods > 0 && self.clients > 0,
            "--pods and --clients must be at least 1"
        );
        anyhow::ensure!(
            self.pod_bytes <= 64 * 1024,
            "--pod-bytes must be at most 65536"
        );
        Ok(())
    }

    /// Builds the control plane (unless built already) and starts three members with
    /// [`LoadFlags::cp_args`].
    pub async fn start_cluster(&self) -> anyhow::Result<ControlPlaneCluster> {
        let release = !self.dev_build;
        tokio::task::spawn_blocking(move || {
            crate::cluster::try_binary("skiff-control-plane", release)
        })
        .await??;
        let mut builder = ControlPlaneCluster::builder(3).release(release);
        for arg in &self.cp_args {
            builder = builder.arg(arg.clone());
        }
        builder.start().context("start control plane")
    }
}

/// A scheduler no one runs: the pods stay pending and unchanged.
pub const IDLE_SCHEDULER: &str = "bench-scale-nobody";
/// The bytes the server adds to a created pod (uid, creationTimestamp, resourceVersion,
/// generation, status), measured once: the padding aims at the stored size.
const SERVER_ADDED_BYTES: usize = 281;

/// A pod of about `bytes` stored bytes, shaped like a real workload's.
pub fn scale_pod(i: usize, bytes: usize) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = format!("scale-{i:06}");
    pod.metadata.namespace = Some("default".into());
    pod.metadata.labels = [
        ("app", format!("app-{}", i % 100)),
        ("tier", "backend".to_string()),
        ("release", "stable".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    pod.spec.scheduler_name = Some(IDLE_SCHEDULER.into());
    let requests = [("cpu", "100m"), ("memory", "128Mi")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity::from(v)))
        .collect();
    pod.spec.containers = vec![Container {
        name: "main".into(),
        image: "registry.example/team/service:1.4.2".into(),
        command: vec!["/bin/service".into()],
        args: vec!["--port=8080".into(), "--log-level=info".into()],
        env: (0..6)
            .map(|e| EnvVar {
                name: format!("SERVICE_SETTING_{e}"),
                value: Some(format!("value-{e}-{i}")),
            })
            .collect(),
        ports: vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..ContainerPort::default()
        }],
        resources: Some(ResourceRequirements {
            requests,
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }];
    let unpadded = serde_json::to_vec(&pod).map_or(0, |j| j.len()) + SERVER_ADDED_BYTES;
    // The annotation's key, quotes and separators cost about 30 bytes of their own.
    let padding = bytes.saturating_sub(unpadded + 30);
    pod.metadata
        .annotations
        .insert("bench.skiff.dev/padding".into(), "x".repeat(padding));
    pod
}

/// One closed-loop creator: takes the next pod index until all are taken.
async fn creator(
    client: Client,
    next: Arc<AtomicUsize>,
    total: usize,
    bytes: usize,
) -> anyhow::Result<()> {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return Ok(());
        }
        match client.create(&scale_pod(i, bytes)).await {
            // A create retried on another endpoint may already have been applied.
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e).with_context(|| format!("create pod {i}")),
        }
    }
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Creates pods `scale-000000` … in `default` with `concurrency` closed-loop creators spread
/// over `clients`; the time it took.
pub async fn create_pods(
    clients: &[Client],
    pods: usize,
    bytes: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    anyhow::ensure!(!clients.is_empty(), "no client to create pods with");
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|c| {
            let client = clients[c % clients.len()].clone();
            tokio::spawn(creator(client, next.clone(), pods, bytes))
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// One line per member: its role, memory and data dir size.
pub async fn print_members(cluster: &ControlPlaneCluster, when: &str) {
    let leader = cluster.leader_id().await;
    for id in cluster.ids() {
        let role = if Some(id) == leader {
            "leader"
        } else {
            "follower"
        };
        let (rss, hwm) = cluster
            .pid(id)
            .map(crate::host::memory_kib)
            .unwrap_or_default();
        println!(
            "{when}: node {id} ({role:8}) VmRSS {:6.1} MiB  VmHWM {:6.1} MiB  data dir {:6.1} MiB",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            mib(dir_bytes(&cluster.data_dir(id)))
        );
    }
}
