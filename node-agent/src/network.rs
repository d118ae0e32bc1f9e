//! The agent's side of the pod network: set the node up once its pod CIDR is known, then
//! keep the routes to other nodes' pod CIDRs in step with the Node objects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_api::cidr::Cidr;
use skiff_api::types::Node;
use skiff_client::{Client, WatchEvent, WatchParams};
use skiff_netplugin::masquerade::{self, MasqueradeError};
use skiff_netplugin::network::PodNetwork;
use skiff_netplugin::routes::{NodeInfo, desired_routes};

use crate::config::AgentConfig;

/// Waits for the control plane to give this node a pod CIDR, then sets the node's network
/// up (bridge, forwarding, IPAM under `<data-dir>/network`).
pub async fn setup(client: &Client, config: &AgentConfig) -> Arc<PodNetwork> {
    let mut warned = false;
    loop {
        match client.get::<Node>("", &config.name).await {
            Ok(node) => {
                let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
                match cidr.as_deref().map(Cidr::parse) {
                    Some(Ok(cidr)) => {
                        match PodNetwork::setup(&config.data_dir.join("network"), cidr).await {
                            Ok(network) => match masquerade(config).await {
                                Ok(()) => {
                                    tracing::info!(%cidr, masquerade = config.masquerade, "pod network ready");
                                    return Arc::new(network);
                                }
                                Err(e) => tracing::error!("masquerade rules, retrying: {e}"),
                            },
                            Err(e) => tracing::error!("pod network setup failed, retrying: {e}"),
                        }
                    }
                    Some(Err(e)) => tracing::error!("node's podCIDR is unusable: {e}"),
                    None if !warned => {
                        warned = true;
                        tracing::info!("waiting for the control plane to assign a pod CIDR");
                    }
                    None => {}
                }
            }
            Err(e) => tracing::warn!("reading this node's pod CIDR: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Installs the masquerade rules when asked to, and removes stale ones otherwise (without
/// nft installed there can be none to remove).
async fn masquerade(config: &AgentConfig) -> Result<(), MasqueradeError> {
    let cidr = Cidr::parse(&config.cluster_cidr).ok();
    let on = config.masquerade;
    let result = tokio::task::spawn_blocking(move || masquerade::apply(cidr.filter(|_| on)))
        .await
        .unwrap_or_else(|e| Err(MasqueradeError::Rejected(format!("nft task: {e}"))));
    match result {
        Err(MasqueradeError::Spawn(_)) if !on => Ok(()),
        other => other,
    }
}

/// What the route planner needs to know of a node.
pub fn node_info(node: &Node) -> NodeInfo {
    let status = node.status.as_ref();
    NodeInfo {
        name: node.metadata.name.clone(),
        pod_cidr: node.spec.as_ref().and_then(|s| s.pod_cidr.clone()),
        internal_ip: status.and_then(|s| {
            s.addresses
                .iter()
                .find(|a| a.type_ == "InternalIP")
                .map(|a| a.address.clone())
        }),
        ready: node.is_ready(),
    }
}

/// Keeps one route per other Ready node (`their-pod-cidr via their-node-ip`), removing
/// routes of nodes that left or are not Ready: on every change to a Node (a watch, resumed
/// across control-plane failovers) and every `resync` besides, which also repairs routes
/// changed by hand. Runs until cancelled.
pub async fn sync_routes_loop(
    client: Client,
    network: Arc<PodNetwork>,
    own_name: String,
    resync: Duration,
) {
    let mut nodes: BTreeMap<String, NodeInfo> = BTreeMap::new();
    let mut events = client.watch::<Node>(WatchParams::all_namespaces());
    // Routes are computed only once the watch has delivered every node.
    let mut complete = false;
    let mut dirty = true;
    let mut resync_timer = tokio::time::interval(resync);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(WatchEvent::Added(node) | WatchEvent::Modified(node))) => {
                    nodes.insert(node.metadata.name.clone(), node_info(&node));
                    dirty = true;
                }
                Some(Ok(WatchEvent::Deleted(node))) => {
                    nodes.remove(&node.metadata.name);
                    dirty = true;
                }
                Some(Ok(WatchEvent::Bookmark(_))) => complete = true,
                Some(Err(e)) => {
                    tracing::warn!("node watch failed, starting over (routes kept): {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    nodes.clear();
                    complete = false;
                    events = client.watch::<Node>(WatchParams::all_namespaces());
                }
                None => {
                    nodes.clear();
                    complete = false;
                    events = client.watch::<Node>(WatchParams::all_namespaces());
                }
            },
            _ = resync_timer.tick() => dirty = true,
        }
        if !(complete && dirty) {
            continue;
        }
        dirty = false;
        let infos: Vec<NodeInfo> = nodes.values().cloned().collect();
        let desired = desired_routes(&own_name, &infos);
        match network.sync_routes(&desired).await {
            Ok(changes) if !changes.is_empty() => {
                tracing::info!(add = ?changes.add, delete = ?changes.delete, "routes changed")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("route sync failed: {e}");
                dirty = true;
            }
        }
    }
}
