//! Pod placement, as a pure function of the nodes and the pods already on them.
//!
//! Filters (Ready, not cordoned, nodeSelector, cpu / memory / pod-count room) decide where
//! a pod may go; among those nodes, fewer pods of the same owner wins (spreading a
//! deployment), then the least allocated node, then the name. Placing a pod updates the
//! state, so one pass spreads a whole batch of pending pods. [`schedule`] turns the
//! placements into bindings, or into the reason a pod waits.

use std::collections::{BTreeMap, HashMap, HashSet};

use skiff_api::Kind;
use skiff_api::meta::Time;
use skiff_api::types::{Node, Pod, PodCondition, PodStatus, Quantity};

use super::snapshot::{PodFacts, Snapshot, Versioned};
use super::writes::{Writes, note, rfc3339};
use crate::raft_types::Command;

/// Kubernetes' default pod capacity of a node that does not state one.
pub const DEFAULT_MAX_PODS: u64 = 110;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub pods: u64,
}

impl Resources {
    fn add(&mut self, other: &Resources) {
        self.cpu_millis += other.cpu_millis;
        self.memory_bytes += other.memory_bytes;
        self.pods += other.pods;
    }

    /// What a pod asks for: the sum of its containers' requests (a limit stands in for a
    /// missing request, as in Kubernetes), and one pod slot.
    pub fn requested_by(pod: &Pod) -> Resources {
        let mut total = Resources {
            pods: 1,
            ..Resources::default()
        };
        for container in &pod.spec.containers {
            let Some(resources) = &container.resources else {
                continue;
            };
            let amount = |name: &str| {
                resources
                    .requests
                    .get(name)
                    .or_else(|| resources.limits.get(name))
            };
            total.cpu_millis += amount("cpu").map(cpu_millis).unwrap_or(0);
            total.memory_bytes += amount("memory").map(bytes).unwrap_or(0);
        }
        total
    }

    /// What a node offers: allocatable, else capacity. A resource it does not state is
    /// zero, except the pod count, which defaults to Kubernetes' 110.
    pub fn allocatable_on(node: &Node) -> Resources {
        let status = node.status.as_ref();
        let map = status
            .map(|s| {
                if s.allocatable.is_empty() {
                    &s.capacity
                } else {
                    &s.allocatable
                }
            })
            .cloned()
            .unwrap_or_default();
        Resources {
            cpu_millis: map.get("cpu").map(cpu_millis).unwrap_or(0),
            memory_bytes: map.get("memory").map(bytes).unwrap_or(0),
            pods: map
                .get("pods")
                .and_then(|q| q.value().ok())
                .map(|v| v.max(0.0) as u64)
                .unwrap_or(DEFAULT_MAX_PODS),
        }
    }
}

// Validation rejects malformed quantities before they are stored.
fn cpu_millis(q: &Quantity) -> u64 {
    q.cpu_millis().unwrap_or(u64::MAX / 4)
}

fn bytes(q: &Quantity) -> u64 {
    q.bytes().unwrap_or(u64::MAX / 4)
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub unschedulable: bool,
    pub allocatable: Resources,
}

impl NodeInfo {
    pub fn from_node(node: &Node) -> NodeInfo {
        let ready = node.is_ready();
        NodeInfo {
            name: node.metadata.name.clone(),
            labels: node.metadata.labels.clone(),
            ready,
            unschedulable: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            allocatable: Resources::allocatable_on(node),
        }
    }
}

/// A pod waiting for a node.
#[derive(Debug, Clone, Default)]
pub struct PendingPod<'a> {
    pub node_selector: Option<&'a BTreeMap<String, String>>,
    pub requests: Resources,
    /// The uid of the controller that owns the pod, for spreading.
    pub owner: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The index of the chosen node (see [`Scheduler::node_name`]).
    Node(usize),
    /// Why no node fits, worded like Kubernetes' message.
    Unschedulable(String),
}

/// Why a node was filtered out, in the order the filters run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Unfit {
    NotReady,
    Cordoned,
    Selector,
    Cpu,
    Memory,
    Pods,
}

impl Unfit {
    fn describe(self) -> &'static str {
        match self {
            Unfit::NotReady => "node(s) were not ready",
            Unfit::Cordoned => "node(s) were unschedulable",
            Unfit::Selector => "node(s) didn't match node selector",
            Unfit::Cpu => "node(s) had insufficient cpu",
            Unfit::Memory => "node(s) had insufficient memory",
            Unfit::Pods => "node(s) had too many pods",
        }
    }
}

pub struct Scheduler {
    nodes: Vec<NodeInfo>,
    requested: Vec<Resources>,
    /// Per owner uid, how many of its pods each node holds (indexed like `nodes`).
    owned: HashMap<String, Vec<u32>>,
    index: HashMap<String, usize>,
}

impl Scheduler {
    /// Nodes (in any order) and the pods bound to them that still use resources:
    /// `(node name, requests, owner uid)`. Pods naming unknown nodes are ignored.
    pub fn new<'a>(
        mut nodes: Vec<NodeInfo>,
        bound: impl IntoIterator<Item = (&'a str, Resources, Option<&'a str>)>,
    ) -> Scheduler {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut scheduler = Scheduler {
            requested: vec![Resources::default(); nodes.len()],
            nodes,
            owned: HashMap::new(),
            index,
        };
        for (node, requests, owner) in bound {
            if let Some(&i) = scheduler.index.get(node) {
                scheduler.account(i, &requests, owner);
            }
        }
        scheduler
    }

    pub fn node_name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn account(&mut self, node: usize, requests: &Resources, owner: Option<&str>) {
        self.requested[node].add(requests);
        if let Some(owner) = owner {
            let count = self.nodes.len();
            self.owned
                .entry(owner.to_string())
                .or_insert_with(|| vec![0; count])[node] += 1;
        }
    }

    fn unfit(&self, i: usize, pod: &PendingPod) -> Option<Unfit> {
        let node = &self.nodes[i];
        if !node.ready {
            return Some(Unfit::NotReady);
        }
        if node.unschedulable {
            return Some(Unfit::Cordoned);
        }
        if let Some(selector) = pod.node_selector
            && !selector
                .iter()
                .all(|(k, v)| node.labels.get(k).is_some_and(|have| have == v))
        {
            return Some(Unfit::Selector);
        }
        let used = &self.requested[i];
        let room = &node.allocatable;
        let want = &pod.requests;
        if want.cpu_millis > 0 && used.cpu_millis + want.cpu_millis > room.cpu_millis {
            return Some(Unfit::Cpu);
        }
        if want.memory_bytes > 0 && used.memory_bytes + want.memory_bytes > room.memory_bytes {
            return Some(Unfit::Memory);
        }
        if used.pods + want.pods > room.pods {
            return Some(Unfit::Pods);
        }
        None
    }

    /// How full the node would be with the pod, in millionths (lower is better).
    fn allocation_after(&self, i: usize, pod: &PendingPod) -> u64 {
        let used = &self.requested[i];
        let room = &self.nodes[i].allocatable;
        let fraction = |used: u64, want: u64, room: u64| -> u64 {
            if room == 0 {
                0
            } else {
                ((used + want) as u128 * 1_000_000 / room as u128) as u64
            }
        };
        (fraction(used.cpu_millis, pod.requests.cpu_millis, room.cpu_millis)
            + fraction(
                used.memory_bytes,
                pod.requests.memory_bytes,
                room.memory_bytes,
            )
            + fraction(used.pods, pod.requests.pods, room.pods))
            / 3
    }

    /// Picks a node for `pod` and counts the pod there, or says why none fits.
    pub fn place(&mut self, pod: &PendingPod) -> Placement {
        let mut best: Option<(u32, u64, usize)> = None;
        let mut reasons: BTreeMap<Unfit, usize> = BTreeMap::new();
        let owned = pod.owner.and_then(|o| self.owned.get(o));
        for i in 0..self.nodes.len() {
            if let Some(reason) = self.unfit(i, pod) {
                *reasons.entry(reason).or_default() += 1;
                continue;
            }
            let score = (
                owned.map(|counts| counts[i]).unwrap_or(0),
                self.allocation_after(i, pod),
                i,
            );
            if best.is_none_or(|b| score < b) {
                best = Some(score);
            }
        }
        match best {
            Some((_, _, i)) => {
                self.account(i, &pod.requests, pod.owner);
                Placement::Node(i)
            }
            None => Placement::Unschedulable(unschedulable_message(self.nodes.len(), &reasons)),
        }
    }
}

/// "0/3 nodes are available: 2 node(s) didn't match node selector, 1 node(s) had
/// insufficient memory." — most common reason first.
fn unschedulable_message(total: usize, reasons: &BTreeMap<Unfit, usize>) -> String {
    if total == 0 {
        return "0/0 nodes are available: no nodes are registered.".into();
    }
    let mut counted: Vec<(usize, Unfit)> = reasons.iter().map(|(r, n)| (*n, *r)).collect();
    counted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let parts: Vec<String> = counted
        .iter()
        .map(|(n, r)| format!("{n} {}", r.describe()))
        .collect();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

/// Binds pending pods, or says why they cannot be placed. Nodes in `busy` were written
/// this pass and take no pods until the next.
pub fn schedule(snapshot: Snapshot, busy: &HashSet<String>, wall: Time) -> Writes {
    let mut writes = Writes::default();
    let mut pending: Vec<&Versioned<PodFacts>> = snapshot
        .pods
        .iter()
        .filter(|p| {
            let f = &p.object;
            f.node().is_none() && !f.owned.terminating && !f.owned.finished
        })
        .filter(|p| p.object.scheduler_name.is_none())
        .collect();
    if pending.is_empty() {
        return writes;
    }
    // Oldest first: versions grow with every write, creation included.
    pending.sort_by_key(|p| p.version);
    let infos: Vec<NodeInfo> = snapshot
        .nodes
        .iter()
        .map(|n| {
            let n = &*n.object;
            let mut info = NodeInfo::from_node(n);
            // A node without a pod CIDR cannot give pods addresses yet, and one being
            // written this pass is judged again on the next.
            let has_cidr = n.spec.as_ref().is_some_and(|s| s.pod_cidr.is_some());
            info.ready = info.ready && has_cidr && !busy.contains(&info.name);
            info
        })
        .collect();
    let bound = snapshot.pods.iter().filter_map(|p| {
        let f = &*p.object;
        let node = f.node()?;
        (!f.owned.finished).then_some((node, f.requests, f.deployment.as_deref()))
    });
    let mut scheduler = Scheduler::new(infos, bound);
    let now = rfc3339(wall);
    for entry in pending {
        let facts = &*entry.object;
        let pod = &facts.pod;
        let request = PendingPod {
            node_selector: Some(&pod.spec.node_selector),
            requests: facts.requests,
            owner: facts.deployment.as_deref(),
        };
        let started = std::time::Instant::now();
        let placement = scheduler.place(&request);
        let metrics = &crate::metrics::METRICS;
        metrics
            .scheduling_duration
            .observe(crate::metrics::since(started));
        let result = match placement {
            Placement::Node(_) => "scheduled",
            Placement::Unschedulable(_) => "unschedulable",
        };
        metrics
            .schedule_attempts
            .get_or_create(&crate::metrics::ResultLabel { result })
            .inc();
        match placement {
            Placement::Node(i) => {
                let node_name = scheduler.node_name(i).to_string();
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                writes.notes.push(note(
                    Kind::Pod,
                    &pod.metadata,
                    "Normal",
                    "Scheduled",
                    format!(
                        "Successfully assigned {namespace}/{} to {node_name}",
                        pod.metadata.name
                    ),
                ));
                writes.commands.push(Command::Bind {
                    namespace,
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone().unwrap_or_default(),
                    node_name,
                    now: now.clone(),
                });
            }
            Placement::Unschedulable(message) => {
                let current = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "PodScheduled"));
                // Told already: writing the same reason again would only cost a log entry.
                if current.is_some_and(|c| {
                    c.status == "False" && c.message.as_deref() == Some(message.as_str())
                }) {
                    continue;
                }
                let mut updated = pod.clone();
                let status = updated.status.get_or_insert_with(PodStatus::default);
                status.phase.get_or_insert_with(|| "Pending".into());
                status.conditions.retain(|c| c.type_ != "PodScheduled");
                status.conditions.insert(
                    0,
                    PodCondition {
                        type_: "PodScheduled".into(),
                        status: "False".into(),
                        reason: Some("Unschedulable".into()),
                        message: Some(message.clone()),
                        last_transition_time: Some(wall),
                        last_probe_time: None,
                    },
                );
                writes.pod_status_with_warning(
                    &updated,
                    entry.version,
                    "FailedScheduling",
                    message,
                );
            }
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: &[(&str, &str)], cpu: u64, memory: u64) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ready: true,
            unschedulable: false,
            allocatable: Resources {
                cpu_millis: cpu,
                memory_bytes: memory,
                pods: DEFAULT_MAX_PODS,
            },
        }
    }

    fn pod(cpu: u64, memory: u64) -> PendingPod<'static> {
        PendingPod {
            node_selector: None,
            requests: Resources {
                cpu_millis: cpu,
                memory_bytes: memory,
                pods: 1,
            },
            owner: None,
        }
    }

    const GI: u64 = 1 << 30;

    fn placed_on(s: &mut Scheduler, p: &PendingPod) -> String {
        match s.place(p) {
            Placement::Node(i) => s.node_name(i).to_string(),
            Placement::Unschedulable(m) => panic!("unschedulable: {m}"),
        }
    }

    #[test]
    fn node_selector_picks_only_matching_nodes() {
        let mut s = Scheduler::new(
            vec![
                node("a", &[], 4000, 8 * GI),
                node("b", &[("gpu", "true")], 4000, 8 * GI),
                node("c", &[("gpu", "false")], 4000, 8 * GI),
            ],
            [],
        );
        let selector: BTreeMap<String, String> = [("gpu".to_string(), "true".to_string())].into();
        for _ in 0..5 {
            let p = PendingPod {
                node_selector: Some(&selector),
                ..pod(0, 0)
            };
            assert_eq!(placed_on(&mut s, &p), "b");
        }
    }

    #[test]
    fn resources_must_fit() {
        let mut s = Scheduler::new(
            vec![
                node("small", &[], 1000, GI),
                node("big", &[], 8000, 16 * GI),
            ],
            [],
        );
        assert_eq!(placed_on(&mut s, &pod(2000, GI)), "big");
        // 6000m left on big; 1000m fits on either, the less allocated wins.
        assert_eq!(placed_on(&mut s, &pod(1000, 0)), "big");
        assert_eq!(placed_on(&mut s, &pod(5000, 0)), "big");
        match s.place(&pod(2000, 0)) {
            Placement::Unschedulable(m) => {
                assert_eq!(
                    m,
                    "0/2 nodes are available: 2 node(s) had insufficient cpu."
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pod_count_limit() {
        let mut one = node("a", &[], 1000, GI);
        one.allocatable.pods = 2;
        let mut s = Scheduler::new(vec![one], [("a", pod(0, 0).requests, None)]);
        assert_eq!(placed_on(&mut s, &pod(0, 0)), "a");
        assert_eq!(
            s.place(&pod(0, 0)),
            Placement::Unschedulable(
                "0/1 nodes are available: 1 node(s) had too many pods.".into()
            )
        );
    }

    #[test]
    fn spreads_an_owners_pods() {
        // "a" is emptier, but already holds two of the owner's pods.
        let mut s = Scheduler::new(
            vec![
                node("a", &[], 4000, 8 * GI),
                node("b", &[], 4000, 8 * GI),
                node("c", &[], 4000, 8 * GI),
            ],
            [
                ("a", pod(0, 0).requests, Some("web")),
                ("a", pod(0, 0).requests, Some("web")),
                ("b", pod(2000, 4 * GI).requests, None),
                ("c", pod(2000, 4 * GI).requests, None),
            ],
        );
        let web = PendingPod {
            owner: Some("web"),
            ..pod(0, 0)
        };
        let first = placed_on(&mut s, &web);
        let second = placed_on(&mut s, &web);
        let mut got = vec![first, second];
        got.sort();
        assert_eq!(got, vec!["b", "c"]);
        // b and c hold one each, a two: b and c first, then a, the least allocated.
        assert_eq!(placed_on(&mut s, &web), "b");
        assert_eq!(placed_on(&mut s, &web), "c");
        assert_eq!(placed_on(&mut s, &web), "a");
    }

    #[test]
    fn three_replicas_land_on_three_nodes() {
        let mut s = Scheduler::new(
            (0..3)
                .map(|i| node(&format!("n{i}"), &[], 1000, GI))
                .collect(),
            [],
        );
        let web = PendingPod {
            owner: Some("uid-1"),
            ..pod(100, 0)
        };
        let mut got: Vec<String> = (0..3).map(|_| placed_on(&mut s, &web)).collect();
        got.sort();
        assert_eq!(got, vec!["n0", "n1", "n2"]);
    }

    #[test]
    fn prefers_least_allocated() {
        let mut s = Scheduler::new(
            vec![
                node("busy", &[], 4000, 8 * GI),
                node("idle", &[], 4000, 8 * GI),
            ],
            [("busy", pod(3000, 6 * GI).requests, None)],
        );
        assert_eq!(placed_on(&mut s, &pod(100, 0)), "idle");
    }

    #[test]
    fn unschedulable_message_counts_each_reason() {
        let mut not_ready = node("d", &[], 4000, 8 * GI);
        not_ready.ready = false;
        let mut cordoned = node("e", &[("gpu", "true")], 4000, 8 * GI);
        cordoned.unschedulable = true;
        let mut s = Scheduler::new(
            vec![
                node("a", &[], 4000, 8 * GI),
                node("b", &[], 4000, 8 * GI),
                node("c", &[("gpu", "true")], 4000, GI),
                not_ready,
                cordoned,
            ],
            [],
        );
        let selector: BTreeMap<String, String> = [("gpu".to_string(), "true".to_string())].into();
        let p = PendingPod {
            node_selector: Some(&selector),
            ..pod(0, 2 * GI)
        };
        assert_eq!(
            s.place(&p),
            Placement::Unschedulable(
                "0/5 nodes are available: 2 node(s) didn't match node selector, \
                 1 node(s) were not ready, 1 node(s) were unschedulable, \
                 1 node(s) had insufficient memory."
                    .into()
            )
        );
        let mut empty = Scheduler::new(vec![], []);
        assert_eq!(
            empty.place(&pod(0, 0)),
            Placement::Unschedulable("0/0 nodes are available: no nodes are registered.".into())
        );
    }

    #[test]
    fn requests_come_from_containers() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "c"}
            ]}
        }))
        .unwrap();
        assert_eq!(
            Resources::requested_by(&pod),
            Resources {
                cpu_millis: 1250,
                memory_bytes: (64 << 20) + GI,
                pods: 1
            }
        );
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "20"}}
        }))
        .unwrap();
        assert_eq!(
            Resources::allocatable_on(&node),
            Resources {
                cpu_millis: 4000,
                memory_bytes: 8 * GI,
                pods: 20
            }
        );
    }
}

/// [`schedule`]: bindings, conditions and events.
#[cfg(test)]
mod schedule_tests {
    use serde_json::json;

    use super::*;
    use crate::controllers::fixtures::*;
    use crate::raft_types::UpdatePart;

    fn run(nodes: &[Versioned<Node>], pods: &[Versioned<PodFacts>], busy: &[&str]) -> Writes {
        let busy = busy.iter().map(|n| n.to_string()).collect();
        let snapshot = Snapshot {
            nodes,
            pods,
            deployments: &[],
        };
        schedule(snapshot, &busy, wall(0))
    }

    fn binds(writes: &Writes) -> Vec<(String, String)> {
        writes
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Bind {
                    name, node_name, ..
                } => Some((name.clone(), node_name.clone())),
                _ => None,
            })
            .collect()
    }

    fn selecting_gpu(name: &str) -> Versioned<PodFacts> {
        pod(name, 7, json!({"spec": {"nodeSelector": {"gpu": "true"}}}))
    }

    #[test]
    fn a_pending_pod_is_bound_with_a_scheduled_event() {
        let writes = run(
            &[ready_node("n1", 1, "10.244.0.0/24")],
            &[pod("web", 7, json!({}))],
            &[],
        );
        assert_eq!(
            writes.commands,
            [Command::Bind {
                namespace: "default".into(),
                name: "web".into(),
                uid: "uid-web".into(),
                node_name: "n1".into(),
                now: "2026-01-01T00:00:00Z".into(),
            }]
        );
        assert_eq!(
            notes(&writes),
            [(
                "web".into(),
                "Normal",
                "Scheduled",
                "Successfully assigned default/web to n1".into()
            )]
        );
    }

    #[test]
    fn a_pod_no_node_fits_is_marked_unschedulable_with_the_reason_and_an_event() {
        let writes = run(
            &[ready_node("n1", 1, "10.244.0.0/24")],
            &[selecting_gpu("web")],
            &[],
        );
        let written = updates(&writes, Kind::Pod);
        assert_eq!(written.len(), 1);
        let (pod, part, version) = &written[0];
        assert_eq!((*part, *version), (UpdatePart::Status, Some(7)));
        let message = "0/1 nodes are available: 1 node(s) didn't match node selector.";
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(
            condition(pod, "PodScheduled"),
            &json!({
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastTransitionTime": wall(0),
            })
        );
        assert_eq!(
            notes(&writes),
            [("web".into(), "Warning", "FailedScheduling", message.into())]
        );
    }

    #[test]
    fn a_pod_already_told_the_same_reason_is_not_written_again() {
        let mut told = selecting_gpu("web").object.pod.clone();
        told.status = Some(PodStatus {
            conditions: vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some(
                    "0/1 nodes are available: 1 node(s) didn't match node selector.".into(),
                ),
                last_transition_time: Some(wall(-30)),
                last_probe_time: None,
            }],
            ..PodStatus::default()
        });
        let pods = [Versioned::new(7, PodFacts::new(told))];
        let writes = run(&[ready_node("n1", 1, "10.244.0.0/24")], &pods, &[]);
        assert!(writes.commands.is_empty());
        assert!(writes.notes.is_empty());
    }

    #[test]
    fn nodes_without_a_pod_cidr_or_written_this_pass_take_no_pods() {
        let nodes = [
            node(
                "no-cidr",
                1,
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            ready_node("busy", 2, "10.244.1.0/24"),
        ];
        let writes = run(&nodes, &[pod("web", 7, json!({}))], &["busy"]);
        assert!(binds(&writes).is_empty());
        assert_eq!(
            notes(&writes)[0].3,
            "0/2 nodes are available: 2 node(s) were not ready."
        );
    }

    #[test]
    fn pods_for_another_scheduler_or_already_ending_are_left_alone() {
        let pods = [
            pod(
                "other",
                7,
                json!({"spec": {"schedulerName": "my-scheduler"}}),
            ),
            pod(
                "going",
                8,
                json!({"metadata": {"deletionTimestamp": wall(-1)}}),
            ),
            pod("done", 9, json!({"status": {"phase": "Failed"}})),
        ];
        let writes = run(&[ready_node("n1", 1, "10.244.0.0/24")], &pods, &[]);
        assert!(writes.commands.is_empty(), "{:?}", writes.commands);
    }

    #[test]
    fn the_oldest_pending_pod_gets_the_last_place() {
        let one_slot = node(
            "n1",
            1,
            json!({
                "spec": {"podCIDR": "10.244.0.0/24"},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "allocatable": {"pods": "1"},
                },
            }),
        );
        // Listed newest first; the lower version was written first.
        let pods = [pod("newer", 12, json!({})), pod("older", 11, json!({}))];
        let writes = run(&[one_slot], &pods, &[]);
        assert_eq!(binds(&writes), [("older".to_string(), "n1".to_string())]);
        assert_eq!(
            notes(&writes)[1].3,
            "0/1 nodes are available: 1 node(s) had too many pods."
        );
    }
}
