//! Control-plane clusters of real `skiff-control-plane` processes on loopback ports.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use skiff_api::proto::ClusterStatusRequest;
use skiff_api::proto::cluster_client::ClusterClient;
use tempfile::TempDir;

/// The path of a workspace binary, built once per test process. Integration tests live in
/// another package than the binaries, so cargo does not build them for us.
pub fn binary(name: &str, package: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().expect("binary cache lock");
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let release = !cfg!(debug_assertions);
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "--bin", name, "-p", package]);
    if release {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "cargo build of {name} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let path = target
        .join(if release { "release" } else { "debug" })
        .join(name);
    assert!(path.exists(), "{} was not built", path.display());
    built.insert(name.to_string(), path.clone());
    path
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

struct Member {
    port: u16,
    child: Option<Child>,
}

/// N control-plane processes with their data dirs in one temp dir. Dropping it kills every
/// process and removes the data, also when a test panics.
pub struct ControlPlaneCluster {
    members: BTreeMap<u64, Member>,
    root: TempDir,
    binary: PathBuf,
    extra_args: Vec<String>,
}

impl ControlPlaneCluster {
    pub fn start(nodes: usize) -> anyhow::Result<ControlPlaneCluster> {
        ControlPlaneCluster::start_with(nodes, &[])
    }

    /// Starts `nodes` members, each with `extra_args` after the standard flags.
    pub fn start_with(nodes: usize, extra_args: &[&str]) -> anyhow::Result<ControlPlaneCluster> {
        let root = tempfile::Builder::new().prefix("skiff-test-").tempdir()?;
        let members = (1..=nodes as u64)
            .map(|id| {
                (
                    id,
                    Member {
                        port: free_port(),
                        child: None,
                    },
                )
            })
            .collect();
        let mut cluster = ControlPlaneCluster {
            members,
            root,
            binary: binary("skiff-control-plane", "skiff-control-plane"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for id in cluster.ids() {
            cluster.restart(id);
        }
        Ok(cluster)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    pub fn running_ids(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, m)| m.child.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn endpoint(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.members[&id].port)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.ids().into_iter().map(|id| self.endpoint(id)).collect()
    }

    pub fn running_endpoints(&self) -> Vec<String> {
        self.running_ids()
            .into_iter()
            .map(|id| self.endpoint(id))
            .collect()
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    fn log_path(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("node-{id}.log"))
    }

    pub fn peers_flag(&self) -> String {
        self.members
            .iter()
            .map(|(id, m)| format!("{id}=127.0.0.1:{}", m.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts (or restarts, with the same flags and data dir) one member.
    pub fn restart(&mut self, id: u64) {
        if self.members[&id].child.is_some() {
            return;
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("open node log");
        let child = Command::new(&self.binary)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--listen")
            .arg(self.endpoint(id))
            .arg("--peers")
            .arg(self.peers_flag())
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn skiff-control-plane");
        self.members.get_mut(&id).expect("member").child = Some(child);
    }

    /// Starts a new member with a fresh data dir; it joins only once the cluster adds it
    /// (as a learner, then a voter) through the membership API.
    pub fn add_member(&mut self) -> u64 {
        let id = self.members.keys().max().copied().unwrap_or(0) + 1;
        self.members.insert(
            id,
            Member {
                port: free_port(),
                child: None,
            },
        );
        self.restart(id);
        id
    }

    /// `kill -9`, then reap.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.members.get_mut(&id).and_then(|m| m.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn kill_all(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }

    pub fn restart_all(&mut self) {
        for id in self.ids() {
            self.restart(id);
        }
    }

    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.ids()
            .into_iter()
            .map(|id| format!("----- node {id} -----\n{}", self.log_of(id)))
            .collect()
    }

    /// The leader as seen by the first running node that answers.
    pub async fn leader_id(&self) -> Option<u64> {
        for endpoint in self.running_endpoints() {
            let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
            else {
                continue;
            };
            let channel = channel
                .connect_timeout(Duration::from_millis(300))
                .connect_lazy();
            let mut request = tonic::Request::new(ClusterStatusRequest {});
            request.set_timeout(Duration::from_secs(2));
            if let Ok(status) = ClusterClient::new(channel).status(request).await {
                let status = status.into_inner();
                // Only a leader that is still running counts.
                if let Some(leader) = status.leader_id.filter(|l| self.running_ids().contains(l)) {
                    return Some(leader);
                }
            }
        }
        None
    }

    /// Polls until a running node reports a running leader. (Outside the process there is
    /// nothing to wait on but the API itself.)
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader_id().await {
                return Ok(leader);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no leader within {timeout:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Path of the temp dir holding data dirs and logs.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for ControlPlaneCluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Runs `f` until it succeeds or `timeout` passes; for conditions visible only through the API.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).context(format!("not true within {timeout:?}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
