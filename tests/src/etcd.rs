//! An etcd 3.4 cluster (Debian's `etcd-server`) on loopback, the benchmark's anchor.
//! fsync stays on, as in production.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::cluster::free_port;

/// etcd's KV service, generated from `proto/etcd_kv.proto`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
}

pub struct EtcdCluster {
    children: Vec<Child>,
    client_ports: Vec<u16>,
    root: TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster accepts a write.
    pub async fn start(n: usize) -> anyhow::Result<EtcdCluster> {
        let binary = which("etcd").context("etcd not found: install Debian's etcd-server")?;
        let root = tempfile::Builder::new().prefix("skiff-etcd-").tempdir()?;
        let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peer_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let initial_cluster = peer_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("e{}=http://127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("skiff-bench-{}", std::process::id());
        let mut children = Vec::new();
        for i in 0..n {
            let name = format!("e{}", i + 1);
            let log = File::create(root.path().join(format!("{name}.log")))?;
            let client = format!("http://127.0.0.1:{}", client_ports[i]);
            let peer = format!("http://127.0.0.1:{}", peer_ports[i]);
            let child = Command::new(&binary)
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(root.path().join(&name))
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args([
                    "--initial-cluster",
                    &initial_cluster,
                    "--initial-cluster-state",
                    "new",
                ])
                .args(["--initial-cluster-token", &token])
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
                .context("spawn etcd")?;
            children.push(child);
        }
        let cluster = EtcdCluster {
            children,
            client_ports,
            root,
        };
        cluster.wait_writable(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    async fn wait_writable(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            for endpoint in self.endpoints() {
                let channel = tonic::transport::Channel::from_shared(format!("http://{endpoint}"))?
                    .connect_lazy();
                let mut kv = proto::kv_client::KvClient::new(channel);
                let put = proto::PutRequest {
                    key: b"/ready".to_vec(),
                    value: b"1".to_vec(),
                    ..Default::default()
                };
                match kv.put(put).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs: String = (1..=self.children.len())
            .map(|i| {
                std::fs::read_to_string(self.root.path().join(format!("e{i}.log")))
                    .unwrap_or_default()
            })
            .collect();
        bail!("etcd did not accept a write within {timeout:?}: {last}\n{logs}")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|p| p.is_file())
}
