//! Pod network throughput and latency against the underlay it runs on.
//!
//! `sudo cargo run --release -p skiff-tests --bin bench-network -- [--seconds 5] [--round-trips 2000]`
//!
//! Two test hosts (network namespaces on an underlay bridge), a control-plane member and an
//! agent on each (plus a third member-only host for quorum). iperf3 (Debian's package) runs
//! host to host over the underlay, then pod to pod across the hosts (server pod on host 2,
//! the client exec'd in a pod on host 1). Round-trip latency is this binary's own TCP
//! ping-pong (1-byte messages, TCP_NODELAY), run the same two ways. Prints both, and the
//! pod/host ratios.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use skiff_api::types::Pod;
use skiff_client::Client;
use skiff_tests::cluster::eventually;
use skiff_tests::multihost::MultiHost;

#[derive(Parser)]
#[command(about = "Pod-to-pod TCP throughput and latency vs host-to-host")]
struct Flags {
    #[command(subcommand)]
    role: Option<Role>,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Round trips per latency measurement.
    #[arg(long, default_value_t = 2000)]
    round_trips: u32,
}

/// The benchmark runs itself inside pods and hosts for the latency measurement.
#[derive(Subcommand)]
enum Role {
    /// Echo every byte back, forever.
    EchoServer { port: u16 },
    /// Ping-pong with an echo server; prints the median and p99 round trip in µs.
    Pinger { ip: Ipv4Addr, port: u16, count: u32 },
}

fn echo_server(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut byte = [0u8; 1];
            while stream.read_exact(&mut byte).is_ok() {
                if stream.write_all(&byte).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

fn pinger(ip: Ipv4Addr, port: u16, count: u32) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(3))?;
    stream.set_nodelay(true)?;
    let mut byte = [7u8; 1];
    let mut samples = Vec::with_capacity(count as usize);
    for i in 0..count + 100 {
        let start = Instant::now();
        stream.write_all(&byte)?;
        stream.read_exact(&mut byte)?;
        // The first 100 warm the path up.
        if i >= 100 {
            samples.push(start.elapsed().as_micros() as u64);
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!("{} {}", at(0.5), at(0.99));
    Ok(())
}

/// (median µs, p99 µs) from a pinger's output.
fn parse_rtt(out: &str) -> anyhow::Result<(u64, u64)> {
    let mut parts = out.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(p50)), Some(Ok(p99))) => Ok((p50, p99)),
        _ => bail!("unexpected pinger output {out:?}"),
    }
}

/// Gbit/s received from iperf3's JSON report.
fn parse_iperf(out: &str) -> anyhow::Result<f64> {
    let report: serde_json::Value = serde_json::from_str(out).context("iperf3 json")?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 1e9)
        .with_context(|| format!("no throughput in iperf3 report: {}", report["error"]))
}

fn pod(name: &str, host: usize, argv: &[String]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"host": format!("h{host}")},
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "bench", "command": argv}]
        }
    }))
    .expect("pod json")
}

async fn pod_ip(client: &Client, name: &str) -> anyhow::Result<Ipv4Addr> {
    let pod = client.get::<Pod>("default", name).await?;
    let status = pod.status.unwrap_or_default();
    anyhow::ensure!(
        status.phase.as_deref() == Some("Running"),
        "{name} not running"
    );
    Ok(status.pod_ip.context("no podIP")?.parse()?)
}

async fn exec(client: &Client, pod: &str, argv: Vec<String>) -> anyhow::Result<String> {
    let out = client.exec_output("default", pod, None, &argv).await?;
    if out.exit_code != 0 {
        bail!(
            "{argv:?} in {pod}: exit {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_on_host(world: &MultiHost, host: usize, argv: &[String]) -> anyhow::Result<String> {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = world.hosts.spawn(host, command)?.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{argv:?} on host {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    match flags.role {
        Some(Role::EchoServer { port }) => return echo_server(port),
        Some(Role::Pinger { ip, port, count }) => return pinger(ip, port, count),
        None => {}
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("bench-network needs root (network namespaces)");
    }
    let iperf = "/usr/bin/iperf3";
    if !std::path::Path::new(iperf).exists() {
        bail!("{iperf} is missing (apt-get install iperf3)");
    }
    let me = std::env::current_exe()?.display().to_string();
    let world = MultiHost::try_start(3, true)?;
    world.wait_ready(Duration::from_secs(60)).await?;
    let seconds = flags.seconds.to_string();
    let count = flags.round_trips.to_string();

    // Host to host over the underlay: host 1 -> host 2.
    let host2 = world.hosts.ip(2).to_string();
    let mut servers = Vec::new();
    for argv in [
        strings(&[iperf, "-s", "-p", "5202"]),
        strings(&[&me, "echo-server", "7002"]),
    ] {
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        servers.push(world.hosts.spawn(2, command)?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let host_gbps = parse_iperf(&run_on_host(
        &world,
        1,
        &strings(&[iperf, "-c", &host2, "-p", "5202", "-t", &seconds, "-J"]),
    )?)?;
    let host_rtt = parse_rtt(&run_on_host(
        &world,
        1,
        &strings(&[&me, "pinger", &host2, "7002", &count]),
    )?)?;
    for mut server in servers {
        let _ = server.kill();
        let _ = server.wait();
    }

    // Pod to pod: servers in a pod on host 2, clients exec'd in a pod on host 1.
    let pods = [
        pod("iperf-server", 2, &strings(&[iperf, "-s", "-p", "5201"])),
        pod("echo-server", 2, &strings(&[&me, "echo-server", "7001"])),
        pod("client", 1, &strings(&["/bin/sleep", "3600"])),
    ];
    let (seconds2, count2, me2) = (seconds.clone(), count.clone(), me.clone());
    let (pod_gbps, pod_rtt) = world
        .api(move |client| async move {
            for p in &pods {
                client.create(p).await?;
            }
            let timeout = Duration::from_secs(60);
            let iperf_ip = eventually(timeout, || pod_ip(&client, "iperf-server")).await?;
            let echo_ip = eventually(timeout, || pod_ip(&client, "echo-server")).await?;
            eventually(timeout, || pod_ip(&client, "client")).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let ip = iperf_ip.to_string();
            let gbps = parse_iperf(
                &exec(
                    &client,
                    "client",
                    strings(&[iperf, "-c", &ip, "-p", "5201", "-t", &seconds2, "-J"]),
                )
                .await?,
            )?;
            let ip = echo_ip.to_string();
            let rtt = parse_rtt(
                &exec(
                    &client,
                    "client",
                    strings(&[&me2, "pinger", &ip, "7001", &count2]),
                )
                .await?,
            )?;
            for p in ["iperf-server", "echo-server", "client"] {
                let _ = client
                    .delete::<Pod>("default", p, &skiff_client::DeleteParams::force())
                    .await;
            }
            anyhow::Ok((gbps, rtt))
        })
        .await?;

    println!("pod network (host-gw) vs the underlay, 2 test hosts on one bridge");
    println!("  TCP throughput (iperf3, {seconds} s):");
    println!("    host to host  {host_gbps:8.2} Gbit/s");
    println!(
        "    pod to pod    {pod_gbps:8.2} Gbit/s   ratio {:.2}",
        pod_gbps / host_gbps
    );
    println!("  TCP round trip ({count} x 1 byte), p50 / p99:");
    println!("    host to host  {:6} / {:6} µs", host_rtt.0, host_rtt.1);
    println!(
        "    pod to pod    {:6} / {:6} µs   ratio {:.2}",
        pod_rtt.0,
        pod_rtt.1,
        pod_rtt.0 as f64 / host_rtt.0 as f64
    );
    Ok(())
}
