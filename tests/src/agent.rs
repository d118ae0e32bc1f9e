//! Real `skiff-agent` processes for tests, against a control plane on loopback (node IP
//! 127.0.0.1, pod network off). Dropping one kills it and sweeps whatever its pods left: processes started
//! under its data dir (shims and their containers) and mounts there (namespace files,
//! volumes), also when a test fails.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use tempfile::TempDir;

use crate::cluster::{binary, cluster_files, free_port};

/// `--token-file` of the test cluster behind `servers` (see [`cluster_files`]); a test
/// that passes its own `--token-file` in `extra` overrides it.
fn token_args(servers: &[String], extra: &[&str]) -> Vec<String> {
    if extra.contains(&"--token-file") {
        return Vec::new();
    }
    match servers.first().and_then(|s| cluster_files(s)) {
        Some(files) => vec![
            "--token-file".into(),
            files.token_file.display().to_string(),
        ],
        None => Vec::new(),
    }
}

pub struct AgentProcess {
    pub name: String,
    pub port: u16,
    /// Where it serves Prometheus metrics (`--metrics-listen`), when on loopback.
    pub metrics_port: Option<u16>,
    root: TempDir,
    args: Vec<String>,
    child: Option<Child>,
    /// The test host's network namespace it runs in, if any.
    netns: Option<PathBuf>,
}

/// Appends `extra`, and `--runtime process` unless `extra` picks a runtime: test pods run
/// host programs unless a test is about images.
fn with_flags(args: &mut Vec<String>, extra: &[&str]) {
    if !extra.contains(&"--runtime") {
        args.extend(["--runtime".to_string(), "process".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
}

impl AgentProcess {
    /// Starts `skiff-agent --name NAME` against `servers`, with `extra` flags after ours
    /// (`--runtime process` unless they say otherwise).
    pub fn start(name: &str, servers: &[String], extra: &[&str]) -> anyhow::Result<AgentProcess> {
        let root = tempfile::Builder::new()
            .prefix(&format!("skiff-agent-{name}-"))
            .tempdir()
            .context("agent temp dir")?;
        let port = free_port();
        let mut args: Vec<String> = vec![
            "--name".into(),
            name.into(),
            "--servers".into(),
            servers.join(","),
            "--node-ip".into(),
            "127.0.0.1".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            root.path().join("data").display().to_string(),
            // This agent runs in the machine's own network namespace, which tests never
            // change: no bridge, veths or routes (multi-host tests use test hosts instead).
            "--pod-network".into(),
            "false".into(),
        ];
        args.extend(token_args(servers, extra));
        // A port of its own: several agents share this host, and the default is one port.
        let metrics_port = (!extra.contains(&"--metrics-listen")).then(free_port);
        if let Some(metrics_port) = metrics_port {
            args.extend([
                "--metrics-listen".into(),
                format!("127.0.0.1:{metrics_port}"),
            ]);
        }
        with_flags(&mut args, extra);
        let mut agent = AgentProcess {
            name: name.into(),
            port,
            metrics_port,
            root,
            args,
            child: None,
            netns: None,
        };
        agent.spawn()?;
        Ok(agent)
    }

    /// Starts `skiff-agent --name NAME` inside a test host (its netns pin and address) with
    /// the pod network on, against `servers`, with `extra` flags after ours.
    pub fn start_on_host(
        name: &str,
        servers: &[String],
        netns: &Path,
        ip: std::net::Ipv4Addr,
        extra: &[&str],
    ) -> anyhow::Result<AgentProcess> {
        let root = tempfile::Builder::new()
            .prefix(&format!("skiff-agent-{name}-"))
            .tempdir()
            .context("agent temp dir")?;
        let mut args: Vec<String> = vec![
            "--name".into(),
            name.into(),
            "--servers".into(),
            servers.join(","),
            "--node-ip".into(),
            ip.to_string(),
            "--listen".into(),
            format!("{ip}:10250"),
            "--data-dir".into(),
            root.path().join("data").display().to_string(),
        ];
        args.extend(token_args(servers, extra));
        with_flags(&mut args, extra);
        let mut agent = AgentProcess {
            name: name.into(),
            port: 10250,
            metrics_port: None,
            root,
            args,
            child: None,
            netns: Some(netns.to_path_buf()),
        };
        agent.spawn()?;
        Ok(agent)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("agent.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        writeln!(log, "===== skiff-agent {}", self.args.join(" "))?;
        let mut command = Command::new(binary("skiff-agent"));
        command
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = match &self.netns {
            Some(netns) => skiff_netplugin::netns::run_in(netns, move || command.spawn())?,
            None => command.spawn(),
        }
        .context("spawn skiff-agent")?;
        self.child = Some(child);
        Ok(())
    }

    /// The agent's exit status if it has exited by itself (`None` while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// `kill -9` of the agent alone: its pods' processes live on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("restart skiff-agent");
    }

    /// Processes (other than the agent itself) and mounts that live under its data dir.
    pub fn leftovers(&self) -> Vec<String> {
        leftovers(&self.data_dir(), self.pid())
    }
}

/// Agents `names` (with `extra` flags) of `cluster`, each node Ready within `settle`; a node
/// that is not shows the agent's log.
pub async fn start_ready(
    cluster: &crate::cluster::ControlPlaneCluster,
    names: &[&str],
    extra: &[&str],
    settle: std::time::Duration,
) -> Vec<AgentProcess> {
    let client = cluster.client();
    let agents: Vec<AgentProcess> = names
        .iter()
        .map(|name| AgentProcess::start(name, &cluster.endpoints(), extra).expect("start agent"))
        .collect();
    for agent in &agents {
        crate::cluster::eventually(settle, || async {
            let node = client
                .get::<skiff_api::types::Node>("", &agent.name)
                .await?;
            anyhow::ensure!(
                crate::nodes::is_ready(&node),
                "node {} not ready",
                agent.name
            );
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    }
    agents
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
        sweep(&self.data_dir());
        if std::thread::panicking() {
            eprintln!("----- agent {} log\n{}", self.name, self.log());
        }
    }
}

/// What is still running or mounted under `dir`, described for an assertion message.
pub fn leftovers(dir: &Path, except: Option<u32>) -> Vec<String> {
    skiff_agent::cleanup::leftovers(dir, except)
}

/// Kills every process started under `dir` (and their children), then unmounts what is
/// mounted there.
pub fn sweep(dir: &Path) {
    skiff_agent::cleanup::sweep(dir);
}
