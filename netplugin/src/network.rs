//! One node's share of the flat pod network (flannel's host-gw model): a bridge holding the
//! first address of the node's pod CIDR, a veth pair per pod (`eth0` inside the pod, the
//! host end on the bridge) with an address from the persistent IPAM, and one route per
//! other node (`their-pod-cidr via their-node-ip`). No NAT anywhere.
//!
//! Host-side operations act on the network namespace of the agent's process (a real host,
//! or a test host namespace); pod-side ones run on a thread inside the pod's namespace.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use skiff_api::hash::fnv1a_64;

use crate::ipam::{Cidr, Ipam, IpamError};
use crate::link::{LinkError, Links, SKIFF_ROUTE_PROTOCOL};
use crate::netns::{self, NetnsError};
use crate::routes::{NodeRoute, RoutePlan, plan};

/// The bridge every pod's host-side veth is attached to.
pub const BRIDGE: &str = "skiff0";
/// The pod's interface.
pub const POD_INTERFACE: &str = "eth0";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// The node's pod network.
pub struct PodNetwork {
    links: Links,
    cidr: Cidr,
    ipam: Mutex<Ipam>,
}

/// `veth` + 8 hex digits of a hash of the pod uid: stable across agent restarts and within
/// the 15-character limit of interface names.
pub fn host_veth_name(pod_uid: &str) -> String {
    format!("veth{:08x}", fnv1a_64(pod_uid.as_bytes()) as u32)
}

fn peer_temp_name(pod_uid: &str) -> String {
    format!("tmp{:08x}", fnv1a_64(pod_uid.as_bytes()) as u32)
}

impl PodNetwork {
    /// Sets the node up for `cidr`: bridge with the CIDR's gateway address, up, IP forwarding
    /// on; allocations are kept in `state_dir`. Safe to call on every agent start.
    pub async fn setup(state_dir: &Path, cidr: Cidr) -> Result<PodNetwork> {
        let links = Links::connect()?;
        links.ensure_bridge(BRIDGE).await?;
        links
            .add_address(BRIDGE, IpAddr::V4(cidr.gateway()), cidr.prefix_len())
            .await?;
        links.set_up(BRIDGE).await?;
        links.set_ip_forward(true)?;
        let ipam = Ipam::open(state_dir, cidr)?;
        Ok(PodNetwork {
            links,
            cidr,
            ipam: Mutex::new(ipam),
        })
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    fn ipam(&self) -> std::sync::MutexGuard<'_, Ipam> {
        self.ipam.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pod's address if it has one.
    pub fn address_of(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.ipam().get(pod_uid)
    }

    /// Gives the pod whose network namespace is pinned at `netns_path` its `eth0`, address
    /// and default route. Idempotent: a pod attached before (also by an earlier agent run)
    /// keeps its address.
    pub async fn attach(&self, pod_uid: &str, netns_path: &Path) -> Result<Ipv4Addr> {
        let address = self.ipam().allocate(pod_uid)?;
        let host = host_veth_name(pod_uid);
        let peer = peer_temp_name(pod_uid);
        if self.links.index(&host).await?.is_some() {
            if pod_side_ready(netns_path, address, self.cidr).await? {
                return Ok(address);
            }
            // Half made by an interrupted attach: start over.
            self.links.delete_link(&host).await?;
        }
        self.links.create_veth(&host, &peer).await?;
        let pod_ns = std::fs::File::open(netns_path).map_err(|source| NetnsError::Io {
            path: netns_path.to_path_buf(),
            what: "open",
            source,
        })?;
        self.links.move_to_netns(&peer, &pod_ns).await?;
        self.links.set_master(&host, BRIDGE).await?;
        self.links.set_up(&host).await?;
        let cidr = self.cidr;
        netns::run_async_in(netns_path, move || async move {
            let links = Links::connect()?;
            links.rename(&peer, POD_INTERFACE).await?;
            links
                .add_address(POD_INTERFACE, IpAddr::V4(address), cidr.prefix_len())
                .await?;
            links.set_up(POD_INTERFACE).await?;
            links.set_up("lo").await?;
            links.add_default_route(cidr.gateway()).await?;
            Ok::<_, LinkError>(())
        })
        .await??;
        Ok(address)
    }

    /// Removes the pod's veth pair (if its namespace still exists, the pair goes with it
    /// anyway) and frees its address.
    pub async fn detach(&self, pod_uid: &str) -> Result<()> {
        self.links.delete_link(&host_veth_name(pod_uid)).await?;
        self.ipam().release(pod_uid)?;
        Ok(())
    }

    /// Frees the addresses of pods for which `keep` says no (after an agent restart: pods
    /// that went while it was away), with their host-side veths.
    pub async fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, Ipv4Addr)>> {
        let freed = self.ipam().retain(|owner| keep(owner))?;
        for (owner, _) in &freed {
            self.links.delete_link(&host_veth_name(owner)).await?;
        }
        Ok(freed)
    }

    /// Every allocation: (pod uid, address).
    pub fn allocations(&self) -> Vec<(String, Ipv4Addr)> {
        self.ipam().allocations()
    }

    /// Makes the routes to other nodes' pod CIDRs exactly `desired`; returns what changed.
    pub async fn sync_routes(&self, desired: &[NodeRoute]) -> Result<RoutePlan> {
        let current: Vec<NodeRoute> = self
            .links
            .routes(SKIFF_ROUTE_PROTOCOL)
            .await?
            .into_iter()
            .filter_map(|r| {
                Some(NodeRoute {
                    cidr: Cidr::new(r.dest, r.prefix).ok()?,
                    via: r.gateway?,
                })
            })
            .collect();
        let changes = plan(desired, &current);
        for route in &changes.delete {
            self.links
                .delete_route(
                    route.cidr.network(),
                    route.cidr.prefix_len(),
                    SKIFF_ROUTE_PROTOCOL,
                )
                .await?;
        }
        for route in &changes.add {
            self.links
                .add_route(
                    route.cidr.network(),
                    route.cidr.prefix_len(),
                    Some(route.via),
                    SKIFF_ROUTE_PROTOCOL,
                )
                .await?;
        }
        Ok(changes)
    }
}

/// Whether the pod's namespace has `eth0` with `address` already.
async fn pod_side_ready(netns_path: &Path, address: Ipv4Addr, cidr: Cidr) -> Result<bool> {
    let path: PathBuf = netns_path.to_path_buf();
    let found = netns::run_async_in(&path, move || async move {
        let links = Links::connect()?;
        links.addresses(POD_INTERFACE).await
    })
    .await?;
    Ok(match found {
        Ok(addresses) => addresses.contains(&(IpAddr::V4(address), cidr.prefix_len())),
        Err(LinkError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_and_short() {
        let a = host_veth_name("0b5f3a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(a, host_veth_name("0b5f3a9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
        assert_ne!(a, host_veth_name("another-uid"));
        assert!(a.len() <= 15 && a.starts_with("veth"));
        assert!(peer_temp_name("x").len() <= 15);
    }
}
