//! A cluster on test hosts: host i runs control-plane member i (if it is one of the first
//! `members`) and an agent `host-<i>` (label `host=h<i>`) with the pod network on. API calls
//! go out from the underlay namespace, the one place besides the hosts that reaches them.

use std::time::Duration;

use skiff_client::Client;
use skiff_netplugin::netns;

use crate::agent::AgentProcess;
use crate::cluster::{ControlPlaneCluster, eventually};
use crate::hosts::TestHosts;

/// Every member's `--node-grace`: a node silent this long becomes NotReady.
pub const NODE_GRACE: Duration = Duration::from_secs(3);
const NODE_GRACE_FLAG: &str = "3s";

pub struct MultiHost {
    // Dropped in this order: agents (and their pods), the control plane, the hosts.
    pub agents: Vec<AgentProcess>,
    pub cluster: ControlPlaneCluster,
    pub hosts: TestHosts,
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
            hosts,
        })
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
