//! A cluster on test hosts: host i runs control-plane member i (if it is one of the first
//! `members`) and an agent `host-<i>` (label `host=h<i>`) with the pod network on. API calls
//! go out from the underlay namespace, the one place besides the hosts that reaches them.
//!
//! [`MultiHost::start_local`] makes the cluster `skiff up` makes: agents on the default
//! runtime (oci) pulling Docker Hub's names from a registry on the underlay bridge, which
//! holds `skiff up`'s `busybox:latest`, and a CLI config whose cluster is reached from the
//! underlay namespace, as `skiff up`'s is ([`MultiHost::skiff`]).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use skiff_client::Client;
use skiff_netplugin::netns;

use crate::agent::AgentProcess;
use crate::cluster::{ControlPlaneCluster, eventually, run_skiff, skiff_command, wait_for_file};
use crate::hosts::{TestHosts, UNDERLAY_IP};
use crate::registry::Registry;

/// The port of `skiff up`'s registry on the underlay bridge's address (the CLI's
/// `local::registry::PORT`): a CLI reaching its cluster from the underlay pushes there.
pub const REGISTRY_PORT: u16 = 5000;

/// Every member's `--node-grace`: a node silent this long becomes NotReady.
pub const NODE_GRACE: Duration = Duration::from_secs(3);
const NODE_GRACE_FLAG: &str = "3s";

pub struct MultiHost {
    // Dropped in this order: agents (and their pods), the control plane, the registry, the
    // hosts.
    pub agents: Vec<AgentProcess>,
    pub cluster: ControlPlaneCluster,
    /// The underlay's registry ([`MultiHost::start_local`]).
    pub registry: Option<Registry>,
    pub hosts: TestHosts,
}

/// The agent flags that make `docker.io` images come from the underlay's registry (as the
/// CLI's `local::registry::agent_args` gives `skiff up`'s agents).
fn mirror_args() -> Vec<String> {
    let registry = format!("{UNDERLAY_IP}:{REGISTRY_PORT}");
    vec![
        "--registry-mirror".into(),
        format!("docker.io={registry}"),
        "--insecure-registry".into(),
        registry,
    ]
}

impl MultiHost {
    /// `n` hosts with a control-plane member on each of the first three and an agent on
    /// every one.
    pub fn start(n: usize) -> MultiHost {
        Self::try_start(n, false).expect("multi-host cluster")
    }

    /// Like [`MultiHost::start`]; `release` picks the release binaries (benchmarks).
    pub fn try_start(n: usize, release: bool) -> anyhow::Result<MultiHost> {
        Self::try_start_with(n, release, &[])
    }

    /// Like [`MultiHost::try_start`], with `agent_args` after every agent's flags.
    pub fn try_start_with(
        n: usize,
        release: bool,
        agent_args: &[&str],
    ) -> anyhow::Result<MultiHost> {
        Self::try_start_with_control_plane(n, release, agent_args, &[])
    }

    /// Like [`MultiHost::try_start_with`], with `control_plane_args` after every member's
    /// flags (e.g. `--pod-eviction-timeout 4s`; `--node-grace` is always 3s here).
    pub fn try_start_with_control_plane(
        n: usize,
        release: bool,
        agent_args: &[&str],
        control_plane_args: &[&str],
    ) -> anyhow::Result<MultiHost> {
        let hosts = TestHosts::start(n)?;
        Self::start_on(hosts, None, release, agent_args, control_plane_args)
    }

    /// A cluster as `skiff up` makes it, on `n` hosts: agents on the default runtime (oci,
    /// runc) pulling `docker.io` names from Debian's `docker-registry` on the underlay
    /// bridge (10.250.0.1:5000), which holds `skiff up`'s busybox image as
    /// `busybox:latest`; the CLI ([`MultiHost::skiff`]) reaches the cluster from the underlay
    /// namespace. `agent_args` go after every agent's flags. Waits until every node is Ready
    /// (60 s).
    pub async fn start_local(n: usize, agent_args: &[&str]) -> anyhow::Result<MultiHost> {
        let hosts = TestHosts::start(n)?;
        let registry =
            Registry::start_in(&hosts.underlay_path(), UNDERLAY_IP, REGISTRY_PORT).await?;
        // skiff up's own busybox image.
        let busybox = std::fs::read(crate::host::BUSYBOX).context("read busybox")?;
        let image = skiff_image::busybox_manifest(&busybox)?;
        registry
            .push_manifest("library/busybox", "latest", image)
            .await?;
        let mut args: Vec<String> = vec!["--runtime".into(), "oci".into()];
        args.extend(mirror_args());
        args.extend(agent_args.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cluster = Self::start_on(hosts, Some(registry), false, &args, &[])?;
        cluster.write_cli_config()?;
        cluster
            .wait_ready(Duration::from_secs(60))
            .await
            .with_context(|| cluster.logs())?;
        Ok(cluster)
    }

    fn start_on(
        hosts: TestHosts,
        registry: Option<Registry>,
        release: bool,
        agent_args: &[&str],
        control_plane_args: &[&str],
    ) -> anyhow::Result<MultiHost> {
        let n = hosts.len();
        let members = n.min(3);
        let placement = (1..=members)
            .map(|i| (hosts.netns_path(i), hosts.ip(i)))
            .collect();
        let mut builder = ControlPlaneCluster::builder(members)
            .on_hosts(placement)
            .release(release)
            .arg("--node-grace")
            .arg(NODE_GRACE_FLAG);
        for arg in control_plane_args {
            builder = builder.arg(*arg);
        }
        let cluster = builder.start()?;
        let agents = (1..=n)
            .map(|i| MultiHost::agent(&hosts, &cluster, i, agent_args))
            .collect::<anyhow::Result<_>>()?;
        Ok(MultiHost {
            agents,
            cluster,
            registry,
            hosts,
        })
    }

    /// The CLI config of [`MultiHost::skiff`]: member 1's admin.conf (every endpoint, the CA,
    /// a cluster-admin certificate) with the underlay namespace to reach them from, as
    /// `skiff up` writes its cluster into `~/.skiff/config`.
    pub fn cli_config(&self) -> PathBuf {
        self.cluster.root().join("underlay.conf")
    }

    fn write_cli_config(&self) -> anyhow::Result<()> {
        let admin = self.cluster.admin_conf();
        wait_for_file(&admin)?;
        let mut config = skiff_pki::config::load(&admin)?;
        for entry in config.clusters.values_mut() {
            entry.netns = Some(self.hosts.underlay_path());
        }
        skiff_pki::config::save(&self.cli_config(), &config)?;
        Ok(())
    }

    /// `skiff --config CONFIG` of this cluster (see [`MultiHost::cli_config`]), to add
    /// arguments to and run.
    pub fn skiff_command(&self) -> Command {
        skiff_command(&self.cli_config())
    }

    /// Runs `skiff ARGS…` against this cluster: (exit code, stdout, stderr).
    pub fn skiff(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = self.skiff_command();
        command.args(args);
        run_skiff(command)
    }

    fn agent(
        hosts: &TestHosts,
        cluster: &ControlPlaneCluster,
        i: usize,
        agent_args: &[&str],
    ) -> anyhow::Result<AgentProcess> {
        let label = format!("host=h{i}");
        // Explicitly: test hosts reuse the same addresses in every run, so the endpoints
        // alone do not name this cluster when several run at once.
        let token_file = cluster.token_file().display().to_string();
        let mut args = vec![
            "--labels",
            &label,
            "--heartbeat-interval",
            "1s",
            "--token-file",
            &token_file,
        ];
        args.extend_from_slice(agent_args);
        AgentProcess::start_on_host(
            &format!("host-{i}"),
            &cluster.endpoints(),
            &hosts.netns_path(i),
            hosts.ip(i),
            &args,
        )
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.cluster.endpoints()
    }

    /// Runs API work from the underlay namespace with a client of the cluster.
    pub async fn api<T, F, Fut>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let builder = self
            .cluster
            .client_builder(&self.endpoints(), Duration::from_secs(10));
        netns::run_async_in(&self.hosts.underlay_path(), move || async move {
            // Built here: its connections are made from the underlay namespace.
            let client = builder.build().expect("client");
            work(client).await
        })
        .await
        .expect("underlay namespace")
    }

    /// Waits until the API answers and every host's node is Ready.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let want = self.agents.len();
        self.api(move |client| async move {
            client.wait_ready(timeout).await?;
            eventually(timeout, || async {
                let nodes = client
                    .list::<skiff_api::types::Node>(&skiff_client::ListParams::all_namespaces())
                    .await?;
                let ready = nodes
                    .items
                    .iter()
                    .filter(|n| crate::nodes::is_ready(n))
                    .count();
                anyhow::ensure!(ready == want, "{ready} of {want} nodes ready");
                Ok(())
            })
            .await
        })
        .await
    }

    /// Every agent's log, for failure messages.
    pub fn logs(&self) -> String {
        self.agents
            .iter()
            .map(|a| format!("----- agent {}\n{}", a.name, a.log()))
            .collect()
    }
}
