//! Listing many pods: the Kubernetes API against the gRPC API, time and memory.
//!
//! `cargo run --release -p skiff-tests --bin bench-kube-list -- [--pods 10000]
//!  [--pod-bytes 1330] [--runs 5] [--limit 500] [--member follower|leader]`
//!
//! Starts a 3-node release control plane on loopback, creates `--pods` pods of about
//! `--pod-bytes` stored bytes in `default` (the pods of bench-scale), then lists them all
//! from one member (`--member`) in each mode, `--runs` times:
//! - kube: `GET /api/v1/namespaces/default/pods` over HTTPS (HTTP/1.1, the cluster-admin
//!   certificate of admin.conf), without `limit`;
//! - kube, `limit=N`, following `continue` to the end;
//! - kube, as a Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, kubectl's);
//! - gRPC: the SDK's `list` of every pod, and with pages of N.
//!
//! The kube times run from the request to the last byte of the body (a paged list sums its
//! pages; the client's JSON parse, needed for each page's `continue`, is not counted). The
//! SDK times include decoding every pod, as the SDK's `list` returns typed pods.
//!
//! Memory is the serving member's: VmRSS before and after a mode, and its peak while the
//! mode ran. The peak is VmHWM after resetting it (`5` into /proc/PID/clear_refs, Linux's
//! reset of the peak to the current RSS) before the mode's first run; when the reset is
//! refused, the lifetime VmHWM is printed and marked so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use skiff_api::types::Pod;
use skiff_client::{Client, ListParams};
use skiff_tests::scale::{LoadFlags, create_pods, mib, print_members};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Member {
    Leader,
    Follower,
}

#[derive(Parser)]
#[command(about = "List time and member memory: the Kubernetes API against the gRPC API")]
struct Flags {
    /// Pods to create.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    #[command(flatten)]
    load: LoadFlags,
    /// Lists per mode (best and median are printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The page size of the paged modes.
    #[arg(long, default_value_t = 500)]
    limit: u64,
    /// The member that serves the lists.
    #[arg(long, value_enum, default_value_t = Member::Follower)]
    member: Member,
    /// Seconds to wait after the creates, and between modes, before measuring.
    #[arg(long, default_value_t = 3)]
    settle_secs: u64,
}

#[derive(Clone, Copy)]
enum Mode {
    KubeAll,
    KubePaged,
    KubeTable,
    GrpcAll,
    GrpcPaged,
}

impl Mode {
    fn name(self, limit: u64) -> String {
        match self {
            Mode::KubeAll => "kube, no limit".into(),
            Mode::KubePaged => format!("kube, limit={limit}"),
            Mode::KubeTable => "kube, as=Table".into(),
            Mode::GrpcAll => "grpc SDK list".into(),
            Mode::GrpcPaged => format!("grpc SDK list, pages of {limit}"),
        }
    }
}

/// One HTTP/1.1 connection to a member's Kubernetes API.
struct Kube {
    sender: SendRequest<Empty<Bytes>>,
    authority: String,
}

impl Kube {
    async fn connect(url: &str, tls: &rustls::ClientConfig) -> anyhow::Result<Kube> {
        let authority = url
            .strip_prefix("https://")
            .with_context(|| format!("{url} is not https"))?
            .to_string();
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(host, _)| host);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
        let mut config = tls.clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(&authority).await?;
        tcp.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .context("tls handshake with the kube port")?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Kube { sender, authority })
    }

    /// GETs `path`; the body and the time from the request to its last byte.
    async fn get(&mut self, path: &str, accept: &str) -> anyhow::Result<(Bytes, Duration)> {
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, accept)
            .body(Empty::new())?;
        self.sender.ready().await?;
        let started = Instant::now();
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let took = started.elapsed();
        ensure!(
            status == hyper::StatusCode::OK,
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
        Ok((body, took))
    }
}

/// The number of entries under `field` of a JSON list, and its `metadata.continue`.
fn entries(body: &[u8], field: &str) -> anyhow::Result<(usize, String)> {
    let value: Value = serde_json::from_slice(body).context("list body is not json")?;
    let count = value[field]
        .as_array()
        .with_context(|| format!("the list has no {field}"))?
        .len();
    let next = value["metadata"]["continue"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((count, next))
}

/// One list of every pod in `mode`: the time it took, the bytes received (kube modes).
async fn list_once(
    mode: Mode,
    kube: &mut Kube,
    sdk: &Client,
    limit: u64,
    total: usize,
) -> anyhow::Result<(Duration, usize)> {
    const PODS: &str = "/api/v1/namespaces/default/pods";
    let (count, took, bytes) = match mode {
        Mode::KubeAll | Mode::KubeTable => {
            let (accept, field) = match mode {
                Mode::KubeTable => (TABLE, "rows"),
                _ => ("application/json", "items"),
            };
            let (body, took) = kube.get(PODS, accept).await?;
            let (count, next) = entries(&body, field)?;
            ensure!(next.is_empty(), "an unpaged list has a continue token");
            (count, took, body.len())
        }
        Mode::KubePaged => {
            let (mut count, mut took, mut bytes) = (0, Duration::ZERO, 0);
            let mut next = String::new();
            loop {
                let mut path = format!("{PODS}?limit={limit}");
                if !next.is_empty() {
                    path.push_str("&continue=");
                    path.push_str(&next);
                }
                let (body, page_took) = kube.get(&path, "application/json").await?;
                let (page, token) = entries(&body, "items")?;
                count += page;
                took += page_took;
                bytes += body.len();
                next = token;
                if next.is_empty() {
                    break;
                }
            }
            (count, took, bytes)
        }
        Mode::GrpcAll | Mode::GrpcPaged => {
            let params = ListParams {
                page_size: if matches!(mode, Mode::GrpcPaged) {
                    limit
                } else {
                    0
                },
                ..ListParams::namespace("default")
            };
            let started = Instant::now();
            let listed = sdk.list::<Pod>(&params).await.context("sdk list")?;
            (listed.items.len(), started.elapsed(), 0)
        }
    };
    ensure!(count == total, "listed {count} pods, expected {total}");
    Ok((took, bytes))
}

/// Resets the process's peak RSS to its current RSS; false when the kernel refuses.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(flags: &Flags) -> anyhow::Result<()> {
    println!(
        "# command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("# machine: {}", skiff_tests::host::machine_info());
    eprintln!("# building and starting a 3-node skiff cluster ...");
    let cluster = flags.load.start_cluster().await?;
    let leader = cluster.wait_for_leader(READY_TIMEOUT).await?;
    cluster.client().wait_ready(READY_TIMEOUT).await?;
    let clients: Vec<Client> = cluster
        .endpoints()
        .iter()
        .map(|e| cluster.client_for(std::slice::from_ref(e), Duration::from_secs(60)))
        .collect();
    eprintln!("# creating {} pods ...", flags.pods);
    let took = create_pods(
        &clients,
        flags.pods,
        flags.load.pod_bytes,
        flags.load.clients,
    )
    .await?;
    println!(
        "created: {} pods of ~{} B in {:.1} s",
        flags.pods,
        flags.load.pod_bytes,
        took.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(flags.settle_secs)).await;
    print_members(&cluster, "loaded").await;

    let serving = match flags.member {
        Member::Leader => leader,
        Member::Follower => cluster
            .ids()
            .into_iter()
            .find(|id| *id != leader)
            .context("no follower")?,
    };
    let pid = cluster
        .pid(serving)
        .context("the serving member is not running")?;
    let sdk = cluster.client_for(&[cluster.endpoint(serving)], Duration::from_secs(60));
    let mut kube = Kube::connect(&cluster.kube_url(serving), &cluster.tls_config()).await?;
    println!(
        "serving member: node {serving} ({}), {} runs per mode",
        if serving == leader {
            "leader"
        } else {
            "follower"
        },
        flags.runs
    );
    println!(
        "{:<28} {:>9} {:>9} {:>10} {:>11} {:>11} {:>11}",
        "mode", "best ms", "median ms", "body MiB", "RSS before", "peak", "RSS after"
    );
    for mode in [
        Mode::KubeAll,
        Mode::KubePaged,
        Mode::KubeTable,
        Mode::GrpcAll,
        Mode::GrpcPaged,
    ] {
        let (rss_before, _) = skiff_tests::host::memory_kib(pid);
        let reset = reset_peak(pid);
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..flags.runs {
            let (took, body) = list_once(mode, &mut kube, &sdk, flags.limit, flags.pods)
                .await
                .with_context(|| mode.name(flags.limit))?;
            times.push(took);
            bytes = body;
        }
        let (rss_after, peak) = skiff_tests::host::memory_kib(pid);
        times.sort();
        println!(
            "{:<28} {:>9.0} {:>9.0} {:>10} {:>7.1} MiB {:>7.1} MiB{} {:>7.1} MiB",
            mode.name(flags.limit),
            ms(times[0]),
            ms(times[times.len() / 2]),
            if bytes > 0 {
                format!("{:.1}", mib(bytes as u64))
            } else {
                "-".into()
            },
            rss_before as f64 / 1024.0,
            peak as f64 / 1024.0,
            if reset { " " } else { "*" },
            rss_after as f64 / 1024.0,
        );
        tokio::time::sleep(Duration::from_secs(flags.settle_secs)).await;
    }
    println!(
        "peak: the member's VmHWM after resetting it before the mode's first run \
         (* where the reset was refused: the lifetime VmHWM)"
    );
    print_members(&cluster, "after lists").await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    flags.load.check(flags.pods)?;
    if flags.runs == 0 || flags.limit == 0 {
        bail!("--runs and --limit must be at least 1");
    }
    skiff_tests::cluster::run_until_interrupted(run(&flags)).await
}
