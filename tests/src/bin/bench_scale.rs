//! Memory at scale: what each control-plane member holds for many stored pods.
//!
//! `cargo run --release -p skiff-tests --bin bench-scale -- [--pods 20000] [--pod-bytes 1330]
//!  [--clients 64] [--settle-secs 5] [--cp-arg=--flag=value ...]`
//!
//! Starts a 3-node release control plane on loopback (real processes, so memory is per
//! member) and creates `--pods` pods in `default`, each about `--pod-bytes` of JSON as
//! stored (labels, a container with env, ports and requests, and an annotation padding it
//! to size). The pods name a scheduler no one runs, so they stay as created: the state
//! holds exactly the pods, and every member's memory is the cost of holding them (the
//! leader's controllers still read and cache every pod). After `--settle-secs` it prints
//! each member's VmRSS and VmHWM, its data dir's size, and the time a linearizable list of
//! every pod takes (through the leader and through a follower), and each member's memory
//! `--settle-secs` after the lists. Then it kills every member (SIGKILL), starts them all
//! again and prints the time until the first list returns every pod, and each member's
//! memory after that restart.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use skiff_api::types::Pod;
use skiff_client::{Client, ListParams};
use skiff_tests::scale::{LoadFlags, create_pods, mib, print_members};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
#[derive(Parser)]
#[command(about = "Memory per member, data dir size, list and restart time at many pods")]
struct Flags {
    /// Pods to create.
    #[arg(long, default_value_t = 20_000)]
    pods: usize,
    #[command(flatten)]
    load: LoadFlags,
    /// Seconds to wait after the last create before measuring (controllers settle).
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// How long the cluster may take after a full restart to list every pod.
    #[arg(long, default_value_t = 120)]
    restart_timeout_secs: u64,
}

/// Lists every pod of `default` once, checking the count; returns the time it took.
async fn timed_list(client: &Client, total: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let listed = client
        .list::<Pod>(&ListParams::namespace("default"))
        .await
        .context("list pods")?;
    let took = started.elapsed();
    ensure!(
        listed.items.len() == total,
        "listed {} pods, expected {total}",
        listed.items.len()
    );
    Ok(took)
}

async fn run(flags: &Flags) -> anyhow::Result<()> {
    println!(
        "# command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("# machine: {}", skiff_tests::host::machine_info());
    eprintln!("# building and starting a 3-node skiff cluster ...");
    let mut cluster = flags.load.start_cluster().await?;
    let leader = cluster.wait_for_leader(READY_TIMEOUT).await?;
    cluster.client().wait_ready(READY_TIMEOUT).await?;
    let clients: Vec<Client> = cluster
        .endpoints()
        .iter()
        .map(|e| cluster.client_for(std::slice::from_ref(e), Duration::from_secs(30)))
        .collect();
    print_members(&cluster, "empty").await;

    eprintln!("# creating {} pods ...", flags.pods);
    let took = create_pods(
        &clients,
        flags.pods,
        flags.load.pod_bytes,
        flags.load.clients,
    )
    .await?;
    let create_secs = took.as_secs_f64();
    let leader_client = cluster.client_for(&[cluster.endpoint(leader)], Duration::from_secs(30));
    let sample: Pod = leader_client
        .get("default", &format!("scale-{:06}", 0))
        .await
        .context("get a created pod")?;
    let stored_bytes = serde_json::to_vec(&sample)?.len();
    println!(
        "created: {} pods in {create_secs:.1} s = {:.0} pods/s; one pod is {stored_bytes} B \
         of JSON as read back, {:.1} MiB in all",
        flags.pods,
        flags.pods as f64 / create_secs,
        mib((stored_bytes * flags.pods) as u64)
    );
    tokio::time::sleep(Duration::from_secs(flags.settle_secs)).await;
    print_members(&cluster, "loaded").await;

    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .context("no follower")?;
    let follower_client =
        cluster.client_for(&[cluster.endpoint(follower)], Duration::from_secs(30));
    for (who, client) in [("leader", &leader_client), ("follower", &follower_client)] {
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(timed_list(client, flags.pods).await?);
        }
        let ms: Vec<String> = times
            .iter()
            .map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0))
            .collect();
        println!(
            "list of {} pods through the {who} (node {}): {} ms (three runs)",
            flags.pods,
            if who == "leader" { leader } else { follower },
            ms.join(", ")
        );
    }
    // Memory a list freed may take the allocator a moment to give back.
    tokio::time::sleep(Duration::from_secs(flags.settle_secs)).await;
    print_members(&cluster, "after lists").await;

    eprintln!("# killing every member and starting them again ...");
    cluster.kill_all();
    let restarted = Instant::now();
    cluster.restart_all();
    let deadline = restarted + Duration::from_secs(flags.restart_timeout_secs);
    let any = cluster.client_for(&cluster.endpoints(), Duration::from_secs(5));
    let mut last_error = String::new();
    loop {
        if Instant::now() > deadline {
            bail!(
                "no complete list within {} s of the restart (last: {last_error})",
                flags.restart_timeout_secs
            );
        }
        match timed_list(&any, flags.pods).await {
            Ok(_) => break,
            Err(e) => last_error = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "full restart (SIGKILL all, start all) to the first complete list: {:.2} s",
        restarted.elapsed().as_secs_f64()
    );
    print_members(&cluster, "right after that list").await;
    // As above: the restart's replay and that first list leave garbage to give back.
    tokio::time::sleep(Duration::from_secs(flags.settle_secs)).await;
    print_members(&cluster, "restarted, settled").await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    flags.load.check(flags.pods)?;
    skiff_tests::cluster::run_until_interrupted(run(&flags)).await
}
