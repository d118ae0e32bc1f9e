//! An etcd 3.4 cluster on loopback, the write benchmark's anchor. fsync stays on, as in
//! production, and every URL is TLS with client certificates required (clients and peers),
//! as Skiff's port is: this is the durable-write baseline Skiff is measured against, like
//! for like. The certificates come from a throwaway Skiff cluster token's CA: members get
//! member certificates (server and client use, SAN 127.0.0.1), clients an admin's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::cluster::free_port;

/// etcd's KV service (just `Put`), generated from `proto/etcd_kv.proto`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
}

struct Member {
    name: String,
    client_port: u16,
    child: Option<Child>,
}

/// N `etcd` processes (`e1..eN`) with data dirs and logs in one temp dir. Dropping it kills
/// every process and removes the temp dir (the logs are printed first when panicking).
pub struct EtcdCluster {
    members: Vec<Member>,
    root: TempDir,
    tls: Arc<rustls::ClientConfig>,
}

/// Writes `pem` to `path`, readable by the owner only (keys among them).
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    std::io::Write::write_all(&mut file, pem.as_bytes())?;
    Ok(())
}

impl EtcdCluster {
    /// Starts `n` members in a fresh temp dir and waits until each accepts a write.
    pub async fn start(n: usize) -> anyhow::Result<EtcdCluster> {
        EtcdCluster::start_in(n, &std::env::temp_dir()).await
    }

    /// Like [`start`](Self::start), with the temp dir created inside `parent`.
    pub async fn start_in(n: usize, parent: &Path) -> anyhow::Result<EtcdCluster> {
        let binary = which("etcd").context("etcd not found on PATH (Debian: etcd-server)")?;
        let root = tempfile::Builder::new()
            .prefix("skiff-test-etcd-")
            .tempdir_in(parent)?;
        let peer_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let initial_cluster = peer_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("e{}=https://127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        // The temp dir's name is random, so it makes a unique cluster token without another
        // source of randomness: members of a stale run can never join this cluster.
        let token = format!(
            "skiff-bench-{}",
            root.path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
        let ca_token = skiff_pki::ClusterToken::parse(&skiff_pki::generate_token())?;
        let ca_pem = ca_token.ca_cert_pem();
        let ca_file = root.path().join("ca.pem");
        write_private(&ca_file, &ca_pem)?;
        let admin = skiff_pki::issue_client_cert(&ca_token, &skiff_pki::Identity::admin())?;
        let tls = skiff_pki::tls::client_config(
            &ca_pem,
            Some((&admin.cert_pem, &admin.key_pem)),
            skiff_pki::tls::ServerCheck::Member,
        )?;
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            root,
            tls,
        };
        // Members are pushed as they spawn, so an error drops (kills) the ones started.
        for (i, peer_port) in peer_ports.iter().enumerate() {
            let name = format!("e{}", i + 1);
            let client_port = free_port();
            let client = format!("https://127.0.0.1:{client_port}");
            let peer = format!("https://127.0.0.1:{peer_port}");
            let data_dir = cluster.root.path().join(&name);
            let certified =
                skiff_pki::issue_member_cert(&ca_token, i as u64 + 1, &["127.0.0.1".into()])?;
            let cert_file = cluster.root.path().join(format!("{name}.pem"));
            let key_file = cluster.root.path().join(format!("{name}-key.pem"));
            write_private(&cert_file, &certified.cert_pem)?;
            write_private(&key_file, &certified.key_pem)?;
            let log = File::create(cluster.log_path(&name))?;
            let child = Command::new(&binary)
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                // The same certificate serves and dials, on both the client and peer URLs,
                // and a certificate from the CA is required of whoever connects.
                .arg("--cert-file")
                .arg(&cert_file)
                .arg("--key-file")
                .arg(&key_file)
                .arg("--trusted-ca-file")
                .arg(&ca_file)
                .arg("--client-cert-auth")
                .arg("--peer-cert-file")
                .arg(&cert_file)
                .arg("--peer-key-file")
                .arg(&key_file)
                .arg("--peer-trusted-ca-file")
                .arg(&ca_file)
                .arg("--peer-client-cert-auth")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
                .with_context(|| format!("spawn {}", binary.display()))?;
            cluster.members.push(Member {
                name,
                client_port,
                child: Some(child),
            });
        }
        cluster.wait_writable(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// `127.0.0.1:PORT` client endpoints, one per member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The TLS client config for these members: their CA and an admin client certificate.
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// A TLS channel to `endpoint` (one of [`endpoints`](Self::endpoints)), connected lazily.
    pub fn channel(&self, endpoint: &str) -> anyhow::Result<tonic::transport::Channel> {
        Ok(skiff_pki::tls::endpoint(endpoint)?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(1))
            // A stuck write shows up as an error instead of stalling a run.
            .timeout(Duration::from_secs(10))
            .connect_with_connector_lazy(skiff_pki::tls::connector(self.tls.clone())))
    }

    /// The temp dir holding data dirs and logs.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.log"))
    }

    /// Every member's log, headed by its name.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.log_path(&m.name)).unwrap_or_default();
                format!("----- etcd {} log -----\n{log}", m.name)
            })
            .collect()
    }

    /// Waits until a `Put` through every member succeeds, so that no benchmark client starts
    /// against a member that has not joined yet.
    async fn wait_writable(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        for endpoint in self.endpoints() {
            let mut kv = proto::kv_client::KvClient::new(self.channel(&endpoint)?);
            loop {
                let mut put = tonic::Request::new(proto::PutRequest {
                    key: b"/skiff-test/ready".to_vec(),
                    value: b"1".to_vec(),
                    ..Default::default()
                });
                put.set_timeout(Duration::from_secs(1));
                let error = match kv.put(put).await {
                    Ok(_) => break,
                    Err(e) => e,
                };
                if let Some(exited) = self.exited_member() {
                    bail!("etcd {exited} exited during startup\n{}", self.logs());
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "etcd at {endpoint} did not accept a write within {timeout:?}: {error}\n{}",
                        self.logs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The name of a member whose process has exited, if any.
    fn exited_member(&mut self) -> Option<String> {
        self.members.iter_mut().find_map(|m| {
            let exited = m
                .child
                .as_mut()
                .is_none_or(|c| !matches!(c.try_wait(), Ok(None)));
            exited.then(|| m.name.clone())
        })
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in self.members.iter_mut().filter_map(|m| m.child.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}
