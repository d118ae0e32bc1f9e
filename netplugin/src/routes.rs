//! Planning of host-gw routes (flannel's host-gw model): one route per other node,
//! `their-pod-cidr via their-node-ip`. Pure functions, no I/O: [`desired_routes`] turns the
//! node list into the routes this node should have, [`plan`] compares them with the routes
//! the plugin owns now and says what to delete and what to add.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::ipam::{Cidr, CidrError};

/// A route to another node's pod CIDR via that node's address on the shared L2 segment.
/// Ordered by CIDR, then gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeRoute {
    pub cidr: Cidr,
    pub via: Ipv4Addr,
}

impl fmt::Display for NodeRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.cidr, self.via)
    }
}

/// What to change to get from the current routes to the desired ones. Both lists are sorted
/// (by CIDR, then gateway) and free of duplicates. Apply `delete` before `add`: a route whose
/// gateway changed appears in both, and the kernel refuses a second route to the same
/// destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlan {
    pub add: Vec<NodeRoute>,
    pub delete: Vec<NodeRoute>,
}

impl RoutePlan {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }
}

/// Compares `desired` with `current` (the routes the plugin owns now, recognised elsewhere
/// by its routing protocol number).
///
/// - A desired route missing from `current` is added; an owned route not desired is deleted.
/// - A route whose CIDR stays but whose gateway changed is deleted (old gateway) and added
///   (new gateway).
/// - Duplicates in either list are collapsed. If `desired` holds one CIDR with several
///   gateways, the first one listed wins (and a warning is logged): the kernel keeps only
///   one route per destination. [`desired_routes`] never produces that.
pub fn plan(desired: &[NodeRoute], current: &[NodeRoute]) -> RoutePlan {
    let mut by_cidr: BTreeMap<Cidr, Ipv4Addr> = BTreeMap::new();
    for route in desired {
        match by_cidr.entry(route.cidr) {
            Entry::Vacant(e) => {
                e.insert(route.via);
            }
            Entry::Occupied(e) if *e.get() != route.via => tracing::warn!(
                cidr = %route.cidr,
                kept = %e.get(),
                ignored = %route.via,
                "desired routes name two gateways for one pod CIDR; keeping the first"
            ),
            Entry::Occupied(_) => {}
        }
    }
    let want: BTreeSet<NodeRoute> = by_cidr
        .into_iter()
        .map(|(cidr, via)| NodeRoute { cidr, via })
        .collect();
    let have: BTreeSet<NodeRoute> = current.iter().copied().collect();
    RoutePlan {
        add: want.difference(&have).copied().collect(),
        delete: have.difference(&want).copied().collect(),
    }
}

/// What the route planner knows about a node (from the control plane's node objects).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub pod_cidr: Option<String>,
    pub internal_ip: Option<String>,
    pub ready: bool,
}

/// Why a node got no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("node is not Ready")]
    NotReady,
    #[error("node has no pod CIDR yet")]
    NoPodCidr,
    #[error("node has no InternalIP")]
    NoInternalIp,
    #[error("{0}")]
    BadPodCidr(CidrError),
    #[error("InternalIP {ip:?} is unusable as a gateway: {reason}")]
    BadInternalIp { ip: String, reason: &'static str },
    #[error("pod CIDR {cidr} overlaps this node's own pod CIDR {own}")]
    OverlapsOwn { cidr: Cidr, own: Cidr },
    #[error("pod CIDR {cidr} overlaps pod CIDR {other_cidr} of node {other:?}")]
    ConflictsWith {
        cidr: Cidr,
        other: String,
        other_cidr: Cidr,
    },
}

impl SkipReason {
    /// Whether this points at a misconfiguration (worth a warning), as opposed to a node that
    /// is merely not (yet) ready or not fully registered.
    pub fn is_anomaly(&self) -> bool {
        !matches!(
            self,
            SkipReason::NotReady | SkipReason::NoPodCidr | SkipReason::NoInternalIp
        )
    }
}

/// A node that got no route, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedNode {
    pub node: String,
    pub reason: SkipReason,
}

/// The result of [`desired_routes_detailed`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredRoutes {
    /// Sorted by CIDR, no duplicates.
    pub routes: Vec<NodeRoute>,
    /// In the order of the input node list.
    pub skipped: Vec<SkippedNode>,
}

/// The routes this node (`own_node`) should have, as [`desired_routes_detailed`], logging
/// skipped nodes: a warning for anomalies, debug for nodes that are just not ready.
pub fn desired_routes(own_node: &str, nodes: &[NodeInfo]) -> Vec<NodeRoute> {
    let desired = desired_routes_detailed(own_node, nodes);
    for s in &desired.skipped {
        if s.reason.is_anomaly() {
            tracing::warn!(node = %s.node, reason = %s.reason, "no pod route to node");
        } else {
            tracing::debug!(node = %s.node, reason = %s.reason, "no pod route to node");
        }
    }
    desired.routes
}

/// One route per OTHER node (`name != own_node`) that is Ready and has a parseable pod CIDR
/// and a parseable, usable IPv4 InternalIP. Skipped, with the reason:
/// - nodes not Ready, or without pod CIDR or InternalIP;
/// - an unparseable pod CIDR or InternalIP, or an InternalIP that cannot be a gateway
///   (unspecified, loopback, broadcast, multicast, or inside a pod CIDR, its own or ours);
/// - a pod CIDR overlapping our own (from `own_node`'s entry in `nodes`, if it has one);
/// - pod CIDRs overlapping each other across nodes: every node of such a conflict is skipped,
///   since there is no telling which one really owns the addresses.
pub fn desired_routes_detailed(own_node: &str, nodes: &[NodeInfo]) -> DesiredRoutes {
    let own_cidr = nodes
        .iter()
        .find(|n| n.name == own_node)
        .and_then(|n| n.pod_cidr.as_deref())
        .and_then(|c| Cidr::parse(c).ok());
    let mut skipped = Vec::new();
    let mut candidates: Vec<(&str, NodeRoute)> = Vec::new();
    for node in nodes.iter().filter(|n| n.name != own_node) {
        match candidate(node, own_cidr) {
            Ok(route) => candidates.push((&node.name, route)),
            Err(reason) => skipped.push(SkippedNode {
                node: node.name.clone(),
                reason,
            }),
        }
    }
    let mut routes = BTreeSet::new();
    for (i, (name, route)) in candidates.iter().enumerate() {
        let conflict = candidates
            .iter()
            .enumerate()
            .find(|(j, (other, r))| *j != i && other != name && r.cidr.overlaps(&route.cidr));
        match conflict {
            Some((_, (other, r))) => skipped.push(SkippedNode {
                node: name.to_string(),
                reason: SkipReason::ConflictsWith {
                    cidr: route.cidr,
                    other: other.to_string(),
                    other_cidr: r.cidr,
                },
            }),
            None => {
                routes.insert(*route);
            }
        }
    }
    // Conflicts were found after the per-node checks; restore input order.
    let order: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .rev()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    skipped.sort_by_key(|s| order.get(s.node.as_str()).copied().unwrap_or(usize::MAX));
    DesiredRoutes {
        routes: routes.into_iter().collect(),
        skipped,
    }
}

fn candidate(node: &NodeInfo, own_cidr: Option<Cidr>) -> Result<NodeRoute, SkipReason> {
    if !node.ready {
        return Err(SkipReason::NotReady);
    }
    let cidr_text = node.pod_cidr.as_deref().ok_or(SkipReason::NoPodCidr)?;
    let ip_text = node
        .internal_ip
        .as_deref()
        .ok_or(SkipReason::NoInternalIp)?;
    let cidr = Cidr::parse(cidr_text).map_err(SkipReason::BadPodCidr)?;
    let bad_ip = |reason| SkipReason::BadInternalIp {
        ip: ip_text.to_owned(),
        reason,
    };
    let via: Ipv4Addr = ip_text.parse().map_err(|_| bad_ip("not an IPv4 address"))?;
    if via.is_unspecified() || via.is_loopback() || via.is_broadcast() || via.is_multicast() {
        return Err(bad_ip("unspecified, loopback, broadcast or multicast"));
    }
    if cidr.contains(via) {
        return Err(bad_ip("inside the node's own pod CIDR"));
    }
    if let Some(own) = own_cidr {
        if cidr.overlaps(&own) {
            return Err(SkipReason::OverlapsOwn { cidr, own });
        }
        if own.contains(via) {
            return Err(bad_ip("inside this node's pod CIDR"));
        }
    }
    Ok(NodeRoute { cidr, via })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(cidr: &str, via: &str) -> NodeRoute {
        NodeRoute {
            cidr: Cidr::parse(cidr).unwrap(),
            via: via.parse().unwrap(),
        }
    }

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>, ready: bool) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            pod_cidr: cidr.map(Into::into),
            internal_ip: ip.map(Into::into),
            ready,
        }
    }

    fn ready(name: &str, cidr: &str, ip: &str) -> NodeInfo {
        node(name, Some(cidr), Some(ip), true)
    }

    #[test]
    fn plan_adds_missing_and_deletes_stale() {
        let desired = [
            route("10.244.2.0/24", "10.250.0.2"),
            route("10.244.1.0/24", "10.250.0.1"),
        ];
        let current = [
            route("10.244.1.0/24", "10.250.0.1"),
            route("10.244.9.0/24", "10.250.0.9"),
        ];
        let p = plan(&desired, &current);
        assert_eq!(p.add, vec![route("10.244.2.0/24", "10.250.0.2")]);
        assert_eq!(p.delete, vec![route("10.244.9.0/24", "10.250.0.9")]);
        assert!(!p.is_empty());
    }

    #[test]
    fn plan_in_sync_is_empty() {
        let routes = [
            route("10.244.1.0/24", "10.250.0.1"),
            route("10.244.2.0/24", "10.250.0.2"),
        ];
        assert!(plan(&routes, &routes).is_empty());
        assert!(plan(&[], &[]).is_empty());
    }

    #[test]
    fn plan_gateway_change_is_delete_and_add() {
        let p = plan(
            &[route("10.244.1.0/24", "10.250.0.7")],
            &[route("10.244.1.0/24", "10.250.0.1")],
        );
        assert_eq!(p.delete, vec![route("10.244.1.0/24", "10.250.0.1")]);
        assert_eq!(p.add, vec![route("10.244.1.0/24", "10.250.0.7")]);
    }

    #[test]
    fn plan_collapses_duplicates() {
        let r = route("10.244.1.0/24", "10.250.0.1");
        let p = plan(&[r, r, r], &[]);
        assert_eq!(p.add, vec![r]);
        let p = plan(&[], &[r, r]);
        assert_eq!(p.delete, vec![r]);
        // One CIDR, two gateways: the first listed wins.
        let p = plan(&[r, route("10.244.1.0/24", "10.250.0.5")], &[]);
        assert_eq!(p.add, vec![r]);
        let p = plan(&[route("10.244.1.0/24", "10.250.0.5"), r], &[r]);
        assert_eq!(p.add, vec![route("10.244.1.0/24", "10.250.0.5")]);
        assert_eq!(p.delete, vec![r]);
        // Two owned routes to one CIDR: the one not desired goes.
        let p = plan(&[r], &[r, route("10.244.1.0/24", "10.250.0.5")]);
        assert!(p.add.is_empty());
        assert_eq!(p.delete, vec![route("10.244.1.0/24", "10.250.0.5")]);
    }

    #[test]
    fn plan_order_is_deterministic() {
        let a = route("10.244.1.0/24", "10.250.0.1");
        let b = route("10.244.2.0/24", "10.250.0.2");
        let c = route("10.244.10.0/24", "10.250.0.10");
        let p1 = plan(&[c, a, b], &[route("10.244.3.0/24", "10.250.0.3"), a]);
        let p2 = plan(&[b, c, a], &[a, route("10.244.3.0/24", "10.250.0.3")]);
        assert_eq!(p1, p2);
        assert_eq!(p1.add, vec![b, c]);
    }

    #[test]
    fn desired_routes_for_other_ready_nodes() {
        let nodes = [
            ready("n3", "10.244.3.0/24", "10.250.0.13"),
            ready("n1", "10.244.1.0/24", "10.250.0.11"),
            ready("n2", "10.244.2.0/24", "10.250.0.12"),
        ];
        let d = desired_routes_detailed("n1", &nodes);
        assert_eq!(
            d.routes,
            vec![
                route("10.244.2.0/24", "10.250.0.12"),
                route("10.244.3.0/24", "10.250.0.13"),
            ]
        );
        assert!(d.skipped.is_empty());
        assert_eq!(desired_routes("n1", &nodes), d.routes);
        // Our own node is never routed, even when it is not in the list.
        assert_eq!(desired_routes("n9", &nodes).len(), 3);
    }

    #[test]
    fn desired_routes_skip_unready_and_incomplete_nodes() {
        let nodes = [
            ready("me", "10.244.1.0/24", "10.250.0.11"),
            node("down", Some("10.244.2.0/24"), Some("10.250.0.12"), false),
            node("new", None, Some("10.250.0.13"), true),
            node("noip", Some("10.244.4.0/24"), None, true),
            ready("ok", "10.244.5.0/24", "10.250.0.15"),
        ];
        let d = desired_routes_detailed("me", &nodes);
        assert_eq!(d.routes, vec![route("10.244.5.0/24", "10.250.0.15")]);
        let reasons: Vec<(&str, &SkipReason)> = d
            .skipped
            .iter()
            .map(|s| (s.node.as_str(), &s.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("down", &SkipReason::NotReady),
                ("new", &SkipReason::NoPodCidr),
                ("noip", &SkipReason::NoInternalIp),
            ]
        );
        assert!(d.skipped.iter().all(|s| !s.reason.is_anomaly()));
    }

    #[test]
    fn desired_routes_skip_unparseable_cidr_and_ip() {
        let nodes = [
            ready("me", "10.244.1.0/24", "10.250.0.11"),
            ready("badcidr", "10.244.2.0/33", "10.250.0.12"),
            ready("hostbits", "10.244.3.1/24", "10.250.0.13"),
            ready("badip", "10.244.4.0/24", "node-4.local"),
            ready("v6ip", "10.244.5.0/24", "fd00::5"),
            ready("loop", "10.244.6.0/24", "127.0.0.1"),
            ready("inself", "10.244.7.0/24", "10.244.7.1"),
            ready("inours", "10.244.8.0/24", "10.244.1.9"),
            ready("ok", "10.244.9.0/24", "10.250.0.19"),
        ];
        let d = desired_routes_detailed("me", &nodes);
        assert_eq!(d.routes, vec![route("10.244.9.0/24", "10.250.0.19")]);
        let names: Vec<&str> = d.skipped.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(
            names,
            [
                "badcidr", "hostbits", "badip", "v6ip", "loop", "inself", "inours"
            ]
        );
        assert!(matches!(d.skipped[0].reason, SkipReason::BadPodCidr(_)));
        assert!(matches!(d.skipped[1].reason, SkipReason::BadPodCidr(_)));
        for s in &d.skipped[2..] {
            assert!(
                matches!(s.reason, SkipReason::BadInternalIp { .. }),
                "{}: {}",
                s.node,
                s.reason
            );
        }
        assert!(d.skipped.iter().all(|s| s.reason.is_anomaly()));
        assert!(d.skipped[0].reason.to_string().contains("10.244.2.0/33"));
    }

    #[test]
    fn desired_routes_skip_overlap_with_own_cidr() {
        let nodes = [
            ready("me", "10.244.1.0/24", "10.250.0.11"),
            ready("same", "10.244.1.0/24", "10.250.0.12"),
            ready("wide", "10.244.0.0/16", "10.250.0.13"),
            ready("ok", "10.244.2.0/24", "10.250.0.14"),
        ];
        let d = desired_routes_detailed("me", &nodes);
        assert_eq!(d.routes, vec![route("10.244.2.0/24", "10.250.0.14")]);
        let own = Cidr::parse("10.244.1.0/24").unwrap();
        assert_eq!(
            d.skipped,
            vec![
                SkippedNode {
                    node: "same".into(),
                    reason: SkipReason::OverlapsOwn { cidr: own, own },
                },
                SkippedNode {
                    node: "wide".into(),
                    reason: SkipReason::OverlapsOwn {
                        cidr: Cidr::parse("10.244.0.0/16").unwrap(),
                        own,
                    },
                },
            ]
        );
    }

    #[test]
    fn desired_routes_skip_both_sides_of_a_conflict_between_other_nodes() {
        let nodes = [
            ready("a", "10.244.2.0/24", "10.250.0.12"),
            ready("b", "10.244.2.0/24", "10.250.0.13"),
            ready("c", "10.244.3.0/24", "10.250.0.14"),
            ready("d", "10.244.4.0/23", "10.250.0.15"),
            ready("e", "10.244.5.0/24", "10.250.0.16"),
        ];
        let d = desired_routes_detailed("me", &nodes);
        assert_eq!(d.routes, vec![route("10.244.3.0/24", "10.250.0.14")]);
        let pairs: Vec<(&str, &str)> = d
            .skipped
            .iter()
            .map(|s| match &s.reason {
                SkipReason::ConflictsWith { other, .. } => (s.node.as_str(), other.as_str()),
                r => panic!("unexpected reason {r}"),
            })
            .collect();
        assert_eq!(pairs, [("a", "b"), ("b", "a"), ("d", "e"), ("e", "d")]);
    }

    #[test]
    fn desired_routes_then_plan() {
        let nodes = [
            ready("me", "10.244.1.0/24", "10.250.0.11"),
            ready("n2", "10.244.2.0/24", "10.250.0.22"), // moved to a new address
            node("n3", Some("10.244.3.0/24"), Some("10.250.0.13"), false), // went down
            ready("n4", "10.244.4.0/24", "10.250.0.14"), // joined
        ];
        let current = [
            route("10.244.2.0/24", "10.250.0.12"),
            route("10.244.3.0/24", "10.250.0.13"),
        ];
        let p = plan(&desired_routes("me", &nodes), &current);
        assert_eq!(
            p.add,
            vec![
                route("10.244.2.0/24", "10.250.0.22"),
                route("10.244.4.0/24", "10.250.0.14"),
            ]
        );
        assert_eq!(p.delete, current.to_vec());
    }
}
