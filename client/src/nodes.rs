//! Node operations: the agent's heartbeat, and cordon / uncordon / drain as kubectl does
//! them (drain cordons, then evicts every pod on the node gracefully).

use skiff_api::proto::NodeHeartbeatRequest;
use skiff_api::proto::cluster_client::ClusterClient;
use skiff_api::types::{Node, NodeSpec, Pod};

use crate::client::{Client, DeleteParams, ListParams};
use crate::error::Error;

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// `namespace/name` of every pod asked to stop.
    pub evicted: Vec<String>,
}

impl Client {
    /// Tells the leader this node's agent is alive. NotFound means the Node object is
    /// gone (register it again).
    pub async fn node_heartbeat(&self, node_name: &str) -> Result<(), Error> {
        self.with_failover(|channel| {
            let request = NodeHeartbeatRequest {
                node_name: node_name.to_string(),
            };
            async move { ClusterClient::new(channel).node_heartbeat(request).await }
        })
        .await
        .map(drop)
    }

    /// Marks a node unschedulable: running pods stay, new ones go elsewhere.
    pub async fn cordon(&self, node_name: &str) -> Result<Node, Error> {
        self.set_unschedulable(node_name, true).await
    }

    pub async fn uncordon(&self, node_name: &str) -> Result<Node, Error> {
        self.set_unschedulable(node_name, false).await
    }

    async fn set_unschedulable(&self, node_name: &str, unschedulable: bool) -> Result<Node, Error> {
        self.modify("", node_name, |node: &mut Node| {
            let spec = node.spec.get_or_insert_with(NodeSpec::default);
            let changed = spec.unschedulable.unwrap_or(false) != unschedulable;
            spec.unschedulable = unschedulable.then_some(true);
            changed
        })
        .await
    }

    /// Cordons the node and deletes its pods gracefully (each with its own grace period
    /// unless `grace_period_seconds` is given). Pods owned by a deployment come back on
    /// other nodes; bare pods do not. Does not wait for the pods to stop.
    pub async fn drain(
        &self,
        node_name: &str,
        grace_period_seconds: Option<i64>,
    ) -> Result<Drained, Error> {
        self.cordon(node_name).await?;
        let pods = self
            .list::<Pod>(&ListParams::all_namespaces().fields(format!("spec.nodeName={node_name}")))
            .await?;
        let params = DeleteParams {
            grace_period_seconds,
            force: false,
        };
        let mut drained = Drained::default();
        for pod in pods.items {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone();
            match self.delete::<Pod>(&namespace, &name, &params).await {
                Ok(_) => drained.evicted.push(format!("{namespace}/{name}")),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(drained)
    }
}
