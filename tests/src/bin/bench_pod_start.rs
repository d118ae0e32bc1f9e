//! Pod start latency with the `process` or the `oci` runtime, and the agent's memory.
//!
//! `cargo run --release -p skiff-tests --bin bench-pod-start -- [--runtime process|oci]
//!  [--pods 100] [--rate 20] [--concurrency 10] [--dev-build] [--agent-arg=FLAG]…`
//!  (`--rate 0` creates back to back: a throughput burst)
//!
//! Starts a 3-node control plane and one `skiff-agent` on loopback (as root), then creates
//! pods (`busybox sleep`) and measures, per pod, the time from the create call to a watcher
//! seeing the pod Running. Prints p50 / p99 / max, and the agent's RSS idle (no pods) and
//! with every pod running. Needs root and /bin/busybox.
//!
//! `--runtime oci` runs the agent with `--runtime oci` (runc, overlayfs) and imports a
//! one-layer busybox image into its node's store before the clock starts; the pods name it
//! with `imagePullPolicy: IfNotPresent`, so what is measured is a warm start (no pull).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use skiff_api::types::{Node, Pod};
use skiff_client::{DeleteParams, ListParams, WatchEvent, WatchParams};
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, eventually};

#[derive(Parser)]
#[command(about = "Pod start latency (create → Running seen by a watcher) and agent RSS")]
struct Flags {
    /// The agent's container runtime: `process` runs /bin/busybox on the host; `oci` runs a
    /// busybox image (imported into the node's store first: a warm start) with runc.
    #[arg(long, value_enum, default_value_t = Runtime::Process)]
    runtime: Runtime,
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods created at the same time.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Creations per second (0: back to back, limited only by --concurrency). Latency is
    /// meaningful at a rate the node sustains; a burst measures throughput instead.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Run the dev profile's control plane instead of a release build (a quick look while
    /// developing; its figures are not release figures). The agent is always the one of the
    /// benchmark's own profile.
    #[arg(long)]
    dev_build: bool,
    /// Another flag for the agent (e.g. `--agent-arg=--runc=/usr/local/sbin/runc`); repeatable.
    #[arg(long = "agent-arg", value_name = "FLAG", allow_hyphen_values = true)]
    agent_args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Runtime {
    Process,
    Oci,
}

impl Runtime {
    /// As `skiff-agent --runtime` and container ids (`oci://…`) name it.
    fn name(self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Oci => "oci",
        }
    }
}

/// The image `--runtime oci` imports and its pods run.
const OCI_IMAGE: &str = "skiff-bench/busybox:start";

fn pod(name: &str, runtime: Runtime) -> Pod {
    let container = match runtime {
        Runtime::Process => serde_json::json!({"name": "main", "image": "busybox",
            "command": ["/bin/busybox", "sleep", "3600"]}),
        // The image holds only /bin/busybox (no applet links) and has Entrypoint
        // /bin/busybox: args alone make it `busybox sleep 3600`.
        Runtime::Oci => serde_json::json!({"name": "main", "image": OCI_IMAGE,
            "imagePullPolicy": "IfNotPresent", "args": ["sleep", "3600"]}),
    };
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "start"}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}
    }))
    .expect("pod json")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    println!(
        "# command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    if !nix::unistd::Uid::effective().is_root() {
        bail!("bench-pod-start needs root (network namespaces, mounts)");
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        bail!("/bin/busybox is missing (apt-get install busybox-static)");
    }
    let cluster = ControlPlaneCluster::builder(3)
        .release(!flags.dev_build)
        .start()
        .context("start control plane")?;
    let client = cluster.client();
    client.wait_ready(Duration::from_secs(30)).await?;
    let runtime = flags.runtime;
    // Room for every pod: the node's default (110, as the kubelet's) would leave the rest
    // Pending.
    let max_pods = flags.pods.max(110).to_string();
    let mut agent_args = vec!["--runtime", runtime.name(), "--max-pods", &max_pods];
    agent_args.extend(flags.agent_args.iter().map(String::as_str));
    let agent = AgentProcess::start("bench-node", &cluster.endpoints(), &agent_args)?;
    eventually(Duration::from_secs(30), || async {
        let node = client.get::<Node>("", "bench-node").await?;
        anyhow::ensure!(skiff_tests::nodes::is_ready(&node), "node not ready");
        Ok(())
    })
    .await
    .with_context(|| agent.log())?;
    let node = client.get::<Node>("", "bench-node").await?;
    let runtime_version = node
        .status
        .and_then(|s| s.node_info)
        .map(|i| i.container_runtime_version)
        .unwrap_or_default();
    let mut imported = None;
    if runtime == Runtime::Oci {
        let archive = skiff_tests::images::busybox_docker_archive(
            &std::fs::read("/bin/busybox").context("read /bin/busybox")?,
            OCI_IMAGE,
        );
        let size = archive.len();
        let at = Instant::now();
        let images = client
            .import_image("bench-node", std::io::Cursor::new(archive))
            .await
            .with_context(|| format!("import {OCI_IMAGE}\n{}", agent.log()))?;
        anyhow::ensure!(images.len() == 1, "imported {images:?}");
        imported = Some((size, at.elapsed()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let agent_pid = agent.pid().context("agent pid")?;
    let (idle_rss, _) = skiff_tests::host::memory_kib(agent_pid);

    // The watcher notes when each pod is first seen Running.
    let listed = client
        .list::<Pod>(&ListParams::namespace("default"))
        .await?;
    let mut events = client.watch::<Pod>(
        WatchParams::namespace("default")
            .labels("bench=start")
            .from_version(listed.resource_version),
    );
    let total = flags.pods;
    let watcher = tokio::spawn(async move {
        let mut running: HashMap<String, Instant> = HashMap::new();
        while running.len() < total {
            match tokio::time::timeout(Duration::from_secs(60), events.next()).await {
                Ok(Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)))) => {
                    if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                        running
                            .entry(p.metadata.name.clone())
                            .or_insert_with(Instant::now);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        running
    });

    let names: Vec<String> = (0..total).map(|i| format!("start-{i:04}")).collect();
    let started = Instant::now();
    let interval = (flags.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / flags.rate));
    let created: Vec<(String, Instant)> =
        futures::stream::iter(names.clone().into_iter().enumerate())
            .map(|(i, name)| {
                let client = client.clone();
                async move {
                    if let Some(interval) = interval {
                        tokio::time::sleep_until((started + interval * i as u32).into()).await;
                    }
                    let at = Instant::now();
                    client
                        .create(&pod(&name, runtime))
                        .await
                        .map(|_| (name, at))
                }
            })
            .buffer_unordered(flags.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
    let running = watcher.await?;
    let wall = started.elapsed();
    if running.len() < total {
        bail!(
            "only {} of {total} pods were seen Running\n{}",
            running.len(),
            agent.log()
        );
    }
    // Every pod ran under the runtime asked for (container ids carry its name).
    let prefix = format!("{}://", runtime.name());
    for pod in client
        .list::<Pod>(&ListParams::namespace("default").labels("bench=start"))
        .await?
        .items
    {
        let ids: Vec<_> = pod
            .status
            .iter()
            .flat_map(|s| &s.container_statuses)
            .map(|c| c.container_id.clone().unwrap_or_default())
            .collect();
        if ids.is_empty() || !ids.iter().all(|id| id.starts_with(&prefix)) {
            bail!(
                "pod {} has container ids {ids:?}, not {prefix}…",
                pod.metadata.name
            );
        }
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    for (name, at) in &created {
        let seen = running[name];
        histogram.record(seen.duration_since(*at).as_micros() as u64)?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (busy_rss, peak) = skiff_tests::host::memory_kib(agent_pid);
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "pod start ({} runtime, {runtime_version}), create -> Running seen by a watcher",
        runtime.name()
    );
    if let Some((size, took)) = imported {
        println!(
            "  image {OCI_IMAGE} ({:.1} MiB) imported in {:.0} ms before the clock started; \
             imagePullPolicy IfNotPresent (warm, no pull)",
            size as f64 / 1024.0 / 1024.0,
            took.as_secs_f64() * 1000.0
        );
    }
    let pace = if flags.rate > 0.0 {
        format!(
            "created at {} pods/s, at most {} at a time",
            flags.rate, flags.concurrency
        )
    } else {
        format!("created back to back, {} at a time", flags.concurrency)
    };
    println!(
        "  pods {total}, {pace}, all Running after {:.2} s ({:.0} pods/s)",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    println!(
        "  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max())
    );
    println!(
        "agent RSS: idle {:.1} MiB, with {total} pods {:.1} MiB (peak {:.1} MiB)",
        idle_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );

    for name in &names {
        let _ = client
            .delete::<Pod>("default", name, &DeleteParams::grace_period(1))
            .await;
    }
    eventually(Duration::from_secs(60), || async {
        let left = client
            .list::<Pod>(&ListParams::namespace("default"))
            .await?
            .items
            .len();
        anyhow::ensure!(left == 0, "{left} pods left");
        Ok(())
    })
    .await?;
    let leftovers = agent.leftovers();
    if !leftovers.is_empty() {
        bail!("left behind: {leftovers:#?}");
    }
    Ok(())
}
