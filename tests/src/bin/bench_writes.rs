//! Durable replicated writes: Skiff vs etcd 3.4, same machine, same harness, same load.
//!
//! `cargo run --release -p skiff-tests --bin bench-writes -- --duration-secs 10 --clients 1,16,64`
//!
//! Each client writes fresh ~1 KiB objects back to back (closed loop) and records every
//! write's latency. Clients are spread round-robin over the three nodes of each system, so
//! writes that land on followers take the real forwarding path.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use skiff_api::proto::CreateRequest;
use skiff_api::proto::objects_client::ObjectsClient;
use skiff_tests::cluster::ControlPlaneCluster;
use skiff_tests::etcd::{EtcdCluster, proto as etcd};
use tonic::transport::Channel;

#[derive(Parser)]
#[command(about = "Replicated write throughput and latency: Skiff vs etcd")]
struct Flags {
    /// Measured seconds per concurrency level (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Concurrency levels to run.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// skiff, etcd or both.
    #[arg(long, default_value = "both")]
    target: String,
    /// Size of each written object.
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Use a running Skiff cluster instead of starting one (HOST:PORT,...).
    #[arg(long, value_delimiter = ',')]
    skiff_endpoints: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Skiff,
    Etcd,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Skiff => "skiff",
            Target::Etcd => "etcd",
        }
    }
}

struct Outcome {
    histogram: Histogram<u64>,
    writes: u64,
    errors: u64,
    first_error: Option<String>,
}

/// A Pod whose JSON is about `size` bytes, padded with an annotation.
fn pod_of_size(name: &str, size: usize) -> Vec<u8> {
    let mut pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": {"bench/payload": ""}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    let base = serde_json::to_vec(&pod).expect("json").len();
    pod["metadata"]["annotations"]["bench/payload"] =
        serde_json::Value::String("x".repeat(size.saturating_sub(base)));
    serde_json::to_vec(&pod).expect("json")
}

fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{endpoint}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

/// One client's closed loop until `until`; latencies in microseconds.
async fn client_loop(
    target: Target,
    channel: Channel,
    run: String,
    value_bytes: usize,
    until: Instant,
) -> Outcome {
    let mut outcome = Outcome {
        histogram: Histogram::new(3).expect("histogram"),
        writes: 0,
        errors: 0,
        first_error: None,
    };
    let mut skiff = ObjectsClient::new(channel.clone());
    let mut kv = etcd::kv_client::KvClient::new(channel);
    let value = vec![b'x'; value_bytes];
    let mut seq = 0u64;
    while Instant::now() < until {
        seq += 1;
        let name = format!("{run}-{seq}");
        let started = Instant::now();
        let result = match target {
            Target::Skiff => skiff
                .create(CreateRequest {
                    kind: "Pod".into(),
                    object: pod_of_size(&name, value_bytes),
                })
                .await
                .map(|_| ()),
            Target::Etcd => kv
                .put(etcd::PutRequest {
                    key: format!("/bench/{name}").into_bytes(),
                    value: value.clone(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        };
        let micros = started.elapsed().as_micros() as u64;
        match result {
            Ok(()) => {
                outcome.writes += 1;
                let _ = outcome.histogram.record(micros.max(1));
            }
            Err(status) => {
                outcome.errors += 1;
                outcome
                    .first_error
                    .get_or_insert_with(|| status.to_string());
            }
        }
    }
    outcome
}

async fn run_level(
    target: Target,
    endpoints: &[String],
    clients: usize,
    flags: &Flags,
    measure: Duration,
) -> anyhow::Result<Outcome> {
    let channels: Vec<Channel> = endpoints
        .iter()
        .map(|e| channel(e))
        .collect::<anyhow::Result<_>>()?;
    let until = Instant::now() + measure;
    // Unique per process, level, phase and client, so no write collides with another.
    let phase = if measure > Duration::from_secs(1) {
        "m"
    } else {
        "w"
    };
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let run = format!("bench-{}-{clients}-{phase}-{c}", std::process::id());
            tokio::spawn(client_loop(
                target,
                channels[c % channels.len()].clone(),
                run,
                flags.value_bytes,
                until,
            ))
        })
        .collect();
    let mut total = Outcome {
        histogram: Histogram::new(3)?,
        writes: 0,
        errors: 0,
        first_error: None,
    };
    for task in tasks {
        let outcome = task.await?;
        total.histogram.add(&outcome.histogram)?;
        total.writes += outcome.writes;
        total.errors += outcome.errors;
        if total.first_error.is_none() {
            total.first_error = outcome.first_error;
        }
    }
    Ok(total)
}

async fn bench(target: Target, endpoints: &[String], flags: &Flags) -> anyhow::Result<()> {
    for &clients in &flags.clients {
        // Warm-up: connections, leader caches, allocator.
        run_level(target, endpoints, clients, flags, Duration::from_secs(1)).await?;
        let measure = Duration::from_secs(flags.duration_secs);
        let outcome = run_level(target, endpoints, clients, flags, measure).await?;
        let h = &outcome.histogram;
        println!(
            "{:<7} {:>7} {:>8} {:>10.0} {:>7.2} {:>7.2} {:>6}",
            target.name(),
            clients,
            outcome.writes,
            outcome.writes as f64 / measure.as_secs_f64(),
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            outcome.errors
        );
        if let Some(e) = outcome.first_error {
            println!("        first error: {e}");
        }
    }
    Ok(())
}

async fn wait_skiff_ready(endpoints: &[String]) -> anyhow::Result<()> {
    let client = skiff_client::Client::connect(endpoints)?;
    client
        .wait_ready(Duration::from_secs(30))
        .await
        .context("skiff cluster not ready")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "# bench-writes: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "# machine: {cpus} cpus; 3-node clusters on loopback; {} B objects; {} s per level",
        flags.value_bytes, flags.duration_secs
    );
    println!(
        "{:<7} {:>7} {:>8} {:>10} {:>7} {:>7} {:>6}",
        "target", "clients", "writes", "writes/s", "p50_ms", "p99_ms", "errors"
    );
    let targets: Vec<Target> = match flags.target.as_str() {
        "skiff" => vec![Target::Skiff],
        "etcd" => vec![Target::Etcd],
        "both" => vec![Target::Skiff, Target::Etcd],
        other => anyhow::bail!("--target: expected skiff, etcd or both, not {other:?}"),
    };
    for target in targets {
        match target {
            Target::Skiff if !flags.skiff_endpoints.is_empty() => {
                wait_skiff_ready(&flags.skiff_endpoints).await?;
                bench(target, &flags.skiff_endpoints, &flags).await?;
            }
            Target::Skiff => {
                let cluster = ControlPlaneCluster::start(3)?;
                wait_skiff_ready(&cluster.endpoints()).await?;
                bench(target, &cluster.endpoints(), &flags).await?;
            }
            Target::Etcd => {
                let cluster = EtcdCluster::start(3).await?;
                bench(target, &cluster.endpoints(), &flags).await?;
            }
        }
    }
    Ok(())
}
