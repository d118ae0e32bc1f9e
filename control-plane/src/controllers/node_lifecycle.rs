//! Node lifecycle, pure: is a node Ready, should its pods be evicted, which pod CIDR does
//! it get — and [`reconcile`], which turns those verdicts into writes.
//!
//! Heartbeats live in the leader's memory only, so a new leader knows nothing of the
//! past: it counts every node's silence from the moment it took over (a fresh grace
//! period) and only then trusts the stored Ready transition time for eviction.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use skiff_api::Kind;
use skiff_api::cidr::Cidr;
use skiff_api::meta::Time;
use skiff_api::types::{Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodStatus};
use tokio::time::Instant;

use super::Settings;
use super::snapshot::Snapshot;
use super::writes::{Writes, delete_pod, note, status_update, to_json};
use crate::raft_types::{Command, UpdatePart};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Nothing,
    /// Heard from within the grace period, but not marked Ready=True.
    MarkReady,
    /// Silent for longer than the grace period, but not marked Ready=False.
    MarkNotReady,
    /// Not ready for longer than the eviction timeout: its pods are lost.
    EvictPods,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub grace: Duration,
    pub eviction: Duration,
}

/// The Ready condition as stored: its status and when it last changed.
pub fn ready_condition(node: &Node) -> (Option<&str>, Option<Time>) {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (Some(c.status.as_str()), c.last_transition_time))
        .unwrap_or((None, None))
}

/// Judges one node. `last_heard` is its latest heartbeat seen by this leader,
/// `leader_since` when this node became leader.
pub fn judge(
    ready: Option<&str>,
    not_ready_since: Option<Time>,
    last_heard: Option<Instant>,
    leader_since: Instant,
    now: Instant,
    wall_now: Time,
    timeouts: Timeouts,
) -> Verdict {
    let heard_recently =
        last_heard.is_some_and(|t| now.saturating_duration_since(t) <= timeouts.grace);
    let silent_for =
        now.saturating_duration_since(last_heard.unwrap_or(leader_since).max(leader_since));
    if heard_recently {
        return if ready == Some("True") {
            Verdict::Nothing
        } else {
            Verdict::MarkReady
        };
    }
    if silent_for <= timeouts.grace {
        return Verdict::Nothing;
    }
    if ready != Some("False") {
        return Verdict::MarkNotReady;
    }
    // Stored times have whole seconds: allow one more so eviction is never early.
    let eviction = chrono::Duration::from_std(timeouts.eviction + Duration::from_secs(1))
        .unwrap_or(chrono::Duration::MAX);
    match not_ready_since {
        Some(since) if wall_now - since >= eviction => Verdict::EvictPods,
        // A Ready=False without a time cannot be judged: count from now on.
        _ => Verdict::Nothing,
    }
}

/// The cluster CIDR, split into /24 pod CIDRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr(Cidr);

impl ClusterCidr {
    pub fn parse(text: &str) -> Result<ClusterCidr, String> {
        let range =
            Cidr::parse(text).map_err(|e| format!("cluster CIDR {text:?}: {}", e.reason))?;
        if range.prefix_len() > 24 {
            return Err(format!(
                "cluster CIDR {text:?}: the prefix must be /24 or shorter to hold /24 pod CIDRs"
            ));
        }
        Ok(ClusterCidr(range))
    }

    /// How many /24s fit.
    pub fn capacity(&self) -> u32 {
        1 << (24 - self.0.prefix_len())
    }

    /// The /24 with this index.
    pub fn subnet(&self, index: u32) -> String {
        format!(
            "{}/24",
            Ipv4Addr::from(u32::from(self.0.network()) + (index << 8))
        )
    }

    /// Which /24 of this range `cidr` is, if it is one.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let cidr = Cidr::parse(cidr).ok()?;
        (cidr.prefix_len() == 24 && self.0.contains(cidr.network()))
            .then(|| (u32::from(cidr.network()) - u32::from(self.0.network())) >> 8)
    }

    /// The lowest /24 no node holds, or None when the range is used up.
    pub fn allocate<'a>(&self, in_use: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let used: HashSet<u32> = in_use
            .into_iter()
            .filter_map(|c| self.index_of(c))
            .collect();
        (0..self.capacity())
            .find(|i| !used.contains(i))
            .map(|i| self.subnet(i))
    }
}

/// What this leader has heard from the agents, and since when it has been listening.
#[derive(Debug, Clone, Copy)]
pub struct Heard<'a> {
    /// When this node became leader.
    pub since: Instant,
    /// Each node's latest heartbeat seen by this leader.
    pub beats: &'a HashMap<String, Instant>,
}

/// What the node lifecycle decided in one pass.
#[derive(Debug, Default)]
pub struct NodePass {
    pub writes: Writes,
    /// Nodes written this pass: their other updates wait for the next pass, to not race
    /// their own version.
    pub written: HashSet<String>,
}

/// Pod CIDRs, Ready transitions and evictions. `cidr_warned` holds the nodes already told
/// that no pod CIDR is left: they are told once per leadership, not once per pass.
pub fn reconcile(
    snapshot: Snapshot,
    now: Instant,
    wall: Time,
    settings: &Settings,
    heard: Heard,
    cidr_warned: &mut HashSet<String>,
) -> NodePass {
    let mut out = NodePass::default();
    let writes = &mut out.writes;
    let known: HashSet<&str> = snapshot
        .nodes
        .iter()
        .map(|n| n.object.metadata.name.as_str())
        .collect();
    let timeouts = Timeouts {
        grace: settings.node_grace,
        eviction: settings.pod_eviction_timeout,
    };
    let mut in_use: Vec<String> = snapshot
        .nodes
        .iter()
        .filter_map(|n| n.object.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
        .collect();
    let mut lost: HashSet<&str> = HashSet::new();
    // Nodes whose Ready is False after this pass: their pods are not ready either.
    let mut not_ready: HashSet<&str> = HashSet::new();
    for entry in snapshot.nodes {
        let node = &*entry.object;
        let name = node.metadata.name.as_str();
        if node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_ref())
            .is_none()
        {
            match settings
                .cluster_cidr
                .allocate(in_use.iter().map(String::as_str))
            {
                Some(cidr) => {
                    let mut updated = node.clone();
                    let spec = updated.spec.get_or_insert_with(NodeSpec::default);
                    spec.pod_cidr = Some(cidr.clone());
                    spec.pod_cidrs = vec![cidr.clone()];
                    writes.commands.push(Command::Update {
                        kind: Kind::Node,
                        object: to_json(&updated),
                        part: UpdatePart::Main,
                        expected_version: Some(entry.version),
                    });
                    in_use.push(cidr);
                    out.written.insert(name.to_string());
                    continue;
                }
                None => {
                    if cidr_warned.insert(name.to_string()) {
                        writes.notes.push(note(
                            Kind::Node,
                            &node.metadata,
                            "Warning",
                            "CIDRNotAvailable",
                            format!("no pod CIDR left in the cluster range for node {name}"),
                        ));
                    }
                }
            }
        }
        let (ready, since) = ready_condition(node);
        let verdict = judge(
            ready,
            since,
            heard.beats.get(name).copied(),
            heard.since,
            now,
            wall,
            timeouts,
        );
        if verdict == Verdict::MarkNotReady
            || (ready == Some("False") && verdict != Verdict::MarkReady)
        {
            not_ready.insert(name);
        }
        let (ok, reason) = match verdict {
            Verdict::Nothing => continue,
            Verdict::EvictPods => {
                lost.insert(name);
                continue;
            }
            Verdict::MarkReady => (true, "NodeReady"),
            Verdict::MarkNotReady => (false, "NodeNotReady"),
        };
        let mut updated = node.clone();
        let status = updated.status.get_or_insert_with(NodeStatus::default);
        status.conditions.retain(|c| c.type_ != "Ready");
        status.conditions.insert(0, ready_condition_at(ok, wall));
        writes
            .commands
            .push(status_update(Kind::Node, &updated, entry.version));
        writes.notes.push(note(
            Kind::Node,
            &node.metadata,
            "Normal",
            reason,
            format!("Node {name} status is now: {reason}"),
        ));
        out.written.insert(name.to_string());
    }

    // Pods on lost nodes, or on nodes that no longer exist, will not run again.
    let orphan_age = chrono::Duration::from_std(timeouts.grace).unwrap_or(chrono::Duration::MAX);
    for entry in snapshot.pods {
        let facts = &*entry.object;
        let Some(node_name) = facts.node() else {
            continue;
        };
        let pod = &facts.pod;
        let gone = !known.contains(node_name)
            && pod
                .metadata
                .creation_timestamp
                .is_some_and(|t| wall - t > orphan_age);
        if !lost.contains(node_name) && !gone {
            if not_ready.contains(node_name) && !facts.owned.finished {
                let mut updated = Pod::clone(pod);
                if mark_not_ready(&mut updated, wall) {
                    writes
                        .commands
                        .push(status_update(Kind::Pod, &updated, entry.version));
                }
            }
            continue;
        }
        if facts.owned.terminating {
            // No agent will confirm the deletion: finish it.
            writes.commands.push(delete_pod(pod, true, wall));
        } else if !facts.owned.finished {
            let mut updated = pod.clone();
            let status = updated.status.get_or_insert_with(PodStatus::default);
            status.phase = Some("Failed".into());
            status.reason = Some("NodeLost".into());
            let message = if gone {
                format!(
                    "Node {node_name} which was running pod {} no longer exists",
                    pod.metadata.name
                )
            } else {
                format!(
                    "Node {node_name} which was running pod {} is unresponsive",
                    pod.metadata.name
                )
            };
            status.message = Some(message.clone());
            mark_not_ready(&mut updated, wall);
            writes.pod_status_with_warning(&updated, entry.version, "Evicted", message);
        }
    }
    out
}

/// What Kubernetes' MarkPodsNotReady does to a pod of a node that stopped reporting: its
/// Ready and ContainersReady conditions False, and every container not ready (no one can
/// vouch for them). Whether anything changed; the node's agent restores its own status when
/// it is heard again.
pub fn mark_not_ready(pod: &mut Pod, wall: Time) -> bool {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let mut changed = false;
    for c in status
        .conditions
        .iter_mut()
        .filter(|c| c.type_ == "Ready" || c.type_ == "ContainersReady")
    {
        if c.status != "False" {
            c.status = "False".into();
            c.reason = Some("NodeNotReady".into());
            c.message = None;
            c.last_transition_time = Some(wall);
            changed = true;
        }
    }
    for c in status.container_statuses.iter_mut().filter(|c| c.ready) {
        c.ready = false;
        changed = true;
    }
    changed
}

/// The Ready condition the lifecycle writes: the agent is heard (`ok`) or silent.
fn ready_condition_at(ok: bool, wall: Time) -> NodeCondition {
    let (status, reason, message) = if ok {
        ("True", "AgentReady", "skiff-agent is posting heartbeats")
    } else {
        (
            "False",
            "NodeStatusUnknown",
            "skiff-agent stopped posting heartbeats",
        )
    };
    NodeCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(wall),
        last_transition_time: Some(wall),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);
    const EVICTION: Duration = Duration::from_secs(30);
    const TIMEOUTS: Timeouts = Timeouts {
        grace: GRACE,
        eviction: EVICTION,
    };

    fn wall(seconds: i64) -> Time {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn heartbeat_makes_ready() {
        let start = Instant::now();
        let now = start + Duration::from_secs(1);
        let v = judge(None, None, Some(now), start, now, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::MarkReady);
        let v = judge(
            Some("False"),
            Some(wall(-100)),
            Some(now),
            start,
            now,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::MarkReady);
        let v = judge(Some("True"), None, Some(now), start, now, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::Nothing);
    }

    #[test]
    fn silence_beyond_grace_is_not_ready() {
        let start = Instant::now();
        let beat = start + Duration::from_secs(1);
        let within = beat + GRACE;
        let v = judge(
            Some("True"),
            None,
            Some(beat),
            start,
            within,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::Nothing);
        let after = beat + GRACE + Duration::from_millis(1);
        let v = judge(
            Some("True"),
            None,
            Some(beat),
            start,
            after,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::MarkNotReady);
    }

    #[test]
    fn new_leader_gives_a_fresh_grace_period() {
        // Never heard by this leader, and Ready=False long ago: nothing until the grace
        // period since taking over has passed.
        let start = Instant::now();
        let soon = start + GRACE / 2;
        let v = judge(Some("True"), None, None, start, soon, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::Nothing);
        let v = judge(
            Some("False"),
            Some(wall(-1000)),
            None,
            start,
            soon,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::Nothing);
        let later = start + GRACE + Duration::from_secs(1);
        let v = judge(Some("True"), None, None, start, later, wall(0), TIMEOUTS);
        assert_eq!(v, Verdict::MarkNotReady);
        let v = judge(
            Some("False"),
            Some(wall(-1000)),
            None,
            start,
            later,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::EvictPods);
    }

    #[test]
    fn eviction_waits_for_the_timeout() {
        let start = Instant::now();
        let now = start + GRACE * 2;
        // Stored times have whole seconds, so eviction waits one second more.
        let v = judge(
            Some("False"),
            Some(wall(-30)),
            None,
            start,
            now,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::Nothing);
        let v = judge(
            Some("False"),
            Some(wall(-31)),
            None,
            start,
            now,
            wall(0),
            TIMEOUTS,
        );
        assert_eq!(v, Verdict::EvictPods);
    }

    #[test]
    fn pod_cidrs_are_the_lowest_free_24s_of_the_cluster_cidr() {
        let range = ClusterCidr::parse("10.244.0.0/16").unwrap();
        assert_eq!(range.capacity(), 256);
        assert_eq!(range.allocate([]), Some("10.244.0.0/24".into()));
        assert_eq!(
            range.allocate(["10.244.0.0/24", "10.244.2.0/24"]),
            Some("10.244.1.0/24".into())
        );
        assert_eq!(range.index_of("10.244.3.0/24"), Some(3));
        assert_eq!(range.index_of("10.245.0.0/24"), None);
        assert_eq!(range.index_of("10.244.0.128/25"), None);
        let tiny = ClusterCidr::parse("10.0.0.0/23").unwrap();
        assert_eq!(tiny.allocate(["10.0.0.0/24", "10.0.1.0/24"]), None);
        for bad in [
            "10.244.0.0",
            "10.244.0.0/25",
            "10.244.1.0/16",
            "x/16",
            "10.0.0.0/x",
        ] {
            assert!(ClusterCidr::parse(bad).is_err(), "{bad}");
        }
    }
}

/// [`reconcile`]: what the verdicts write.
#[cfg(test)]
mod reconcile_tests {
    use serde_json::json;

    use super::*;
    use crate::controllers::fixtures::*;
    use crate::controllers::snapshot::{PodFacts, Versioned};

    /// One pass at `wall(0)`, a minute after this leader took over, having heard from the
    /// nodes in `heard_now` just now and from no other.
    fn pass(
        nodes: &[Versioned<Node>],
        pods: &[Versioned<PodFacts>],
        heard_now: &[&str],
    ) -> NodePass {
        pass_warned(nodes, pods, heard_now, &mut HashSet::new(), "10.244.0.0/16")
    }

    fn pass_warned(
        nodes: &[Versioned<Node>],
        pods: &[Versioned<PodFacts>],
        heard_now: &[&str],
        warned: &mut HashSet<String>,
        cidr: &str,
    ) -> NodePass {
        let since = Instant::now();
        let now = since + Duration::from_secs(60);
        let beats = heard_now.iter().map(|n| (n.to_string(), now)).collect();
        let snapshot = Snapshot {
            nodes,
            pods,
            deployments: &[],
        };
        let heard = Heard {
            since,
            beats: &beats,
        };
        reconcile(snapshot, now, wall(0), &settings(cidr), heard, warned)
    }

    /// A node with a pod CIDR, Ready=False since `seconds` before now.
    fn not_ready_node(name: &str, seconds: i64) -> Versioned<Node> {
        node(
            name,
            5,
            json!({
                "spec": {"podCIDR": "10.244.1.0/24"},
                "status": {"conditions": [{
                    "type": "Ready", "status": "False",
                    "lastTransitionTime": wall(-seconds),
                }]},
            }),
        )
    }

    fn running_on(name: &str, node: &str) -> Versioned<PodFacts> {
        pod(
            name,
            8,
            json!({
                "spec": {"nodeName": node},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": wall(-50)}
                ]},
            }),
        )
    }

    #[test]
    fn pods_of_a_node_not_ready_longer_than_the_eviction_timeout_fail_as_node_lost() {
        let out = pass(
            &[not_ready_node("n1", 100)],
            &[running_on("web", "n1")],
            &[],
        );
        let written = updates(&out.writes, Kind::Pod);
        assert_eq!(written.len(), 1);
        let (pod, part, version) = &written[0];
        assert_eq!((*part, *version), (UpdatePart::Status, Some(8)));
        let message = "Node n1 which was running pod web is unresponsive";
        assert_eq!(pod["status"]["phase"], "Failed");
        assert_eq!(pod["status"]["reason"], "NodeLost");
        assert_eq!(pod["status"]["message"], message);
        let ready = condition(pod, "Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["lastTransitionTime"], json!(wall(0)));
        assert_eq!(
            notes(&out.writes),
            [("web".into(), "Warning", "Evicted", message.into())]
        );
    }

    #[test]
    fn a_node_not_ready_for_less_than_the_eviction_timeout_keeps_its_pods_marked_not_ready() {
        // Exactly the timeout: stored times have whole seconds, so eviction waits one more.
        let web = pod(
            "web",
            8,
            json!({
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": wall(-50)},
                    {"type": "ContainersReady", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                ], "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "busybox"}]},
            }),
        );
        let out = pass(&[not_ready_node("n1", 30)], &[web], &[]);
        assert!(deletes(&out.writes).is_empty());
        assert!(out.writes.notes.is_empty());
        let written = updates(&out.writes, Kind::Pod);
        assert_eq!(written.len(), 1);
        let (pod, part, version) = &written[0];
        assert_eq!((*part, *version), (UpdatePart::Status, Some(8)));
        assert_eq!(pod["status"]["phase"], "Running");
        for type_ in ["Ready", "ContainersReady"] {
            let condition = condition(pod, type_);
            assert_eq!(condition["status"], "False", "{type_}");
            assert_eq!(condition["reason"], "NodeNotReady", "{type_}");
            assert_eq!(condition["lastTransitionTime"], json!(wall(0)), "{type_}");
        }
        assert_eq!(condition(pod, "PodScheduled")["status"], "True");
        assert_eq!(pod["status"]["containerStatuses"][0]["ready"], false);

        // Marked once: a pod already not ready is not written again.
        let mut marked: Pod = serde_json::from_value(pod.clone()).unwrap();
        assert!(!mark_not_ready(&mut marked, wall(5)));
        let again = pass(
            // Still within the eviction timeout (30 s), as in the first pass.
            &[not_ready_node("n1", 30)],
            &[Versioned::new(9, PodFacts::new(marked))],
            &[],
        );
        assert!(again.writes.commands.is_empty());
    }

    #[test]
    fn the_pods_of_a_node_marked_not_ready_this_pass_are_marked_too_and_a_ready_nodes_are_not() {
        let silent = node(
            "n1",
            5,
            json!({"spec": {"podCIDR": "10.244.1.0/24"}, "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": wall(-100)}
            ]}}),
        );
        let heard = node(
            "n2",
            6,
            json!({"spec": {"podCIDR": "10.244.2.0/24"}, "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": wall(-100)}
            ]}}),
        );
        let out = pass(
            &[silent, heard],
            &[running_on("a", "n1"), running_on("b", "n2")],
            &["n2"],
        );
        let pods: Vec<String> = updates(&out.writes, Kind::Pod)
            .iter()
            .map(|(pod, _, _)| pod["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(pods, ["a"]);
    }

    #[test]
    fn deletions_on_a_lost_node_are_finished_at_once_since_no_agent_will_confirm_them() {
        let going = pod(
            "going",
            9,
            json!({
                "metadata": {"deletionTimestamp": wall(-40)},
                "spec": {"nodeName": "n1"},
            }),
        );
        let out = pass(&[not_ready_node("n1", 100)], &[going], &[]);
        assert_eq!(deletes(&out.writes), [("going".to_string(), true)]);
        assert!(out.writes.notes.is_empty());
    }

    #[test]
    fn finished_pods_and_pods_on_healthy_nodes_are_not_evicted() {
        let done = pod(
            "done",
            9,
            json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}}),
        );
        let nodes = [
            not_ready_node("n1", 100),
            ready_node("n2", 6, "10.244.2.0/24"),
        ];
        let out = pass(&nodes, &[done, running_on("web", "n2")], &["n2"]);
        assert!(out.writes.commands.is_empty(), "{:?}", out.writes.commands);
    }

    #[test]
    fn pods_on_a_node_that_no_longer_exists_fail_once_older_than_the_grace_period() {
        let old = running_on("old", "ghost");
        let mut young = running_on("young", "ghost").object.pod.clone();
        young.metadata.creation_timestamp = Some(wall(-5));
        let young = Versioned::new(8, PodFacts::new(young));
        let out = pass(&[], &[old, young], &[]);
        let written = updates(&out.writes, Kind::Pod);
        assert_eq!(written.len(), 1);
        let message = "Node ghost which was running pod old no longer exists";
        assert_eq!(written[0].0["metadata"]["name"], "old");
        assert_eq!(written[0].0["status"]["reason"], "NodeLost");
        assert_eq!(written[0].0["status"]["message"], message);
        assert_eq!(
            notes(&out.writes),
            [("old".into(), "Warning", "Evicted", message.into())]
        );
    }

    #[test]
    fn a_node_heard_from_is_marked_ready_with_its_condition_and_event() {
        let n1 = node("n1", 4, json!({"spec": {"podCIDR": "10.244.0.0/24"}}));
        let out = pass(&[n1], &[], &["n1"]);
        let written = updates(&out.writes, Kind::Node);
        assert_eq!(written.len(), 1);
        let (node, part, version) = &written[0];
        assert_eq!((*part, *version), (UpdatePart::Status, Some(4)));
        assert_eq!(
            condition(node, "Ready"),
            &json!({
                "type": "Ready", "status": "True", "reason": "AgentReady",
                "message": "skiff-agent is posting heartbeats",
                "lastHeartbeatTime": wall(0), "lastTransitionTime": wall(0),
            })
        );
        assert_eq!(
            notes(&out.writes),
            [(
                "n1".into(),
                "Normal",
                "NodeReady",
                "Node n1 status is now: NodeReady".into()
            )]
        );
        assert!(out.written.contains("n1"));
    }

    #[test]
    fn a_silent_node_is_marked_not_ready_with_its_condition_and_event() {
        let out = pass(&[ready_node("n1", 4, "10.244.0.0/24")], &[], &[]);
        let written = updates(&out.writes, Kind::Node);
        assert_eq!(written.len(), 1);
        assert_eq!(
            condition(&written[0].0, "Ready"),
            &json!({
                "type": "Ready", "status": "False", "reason": "NodeStatusUnknown",
                "message": "skiff-agent stopped posting heartbeats",
                "lastHeartbeatTime": wall(0), "lastTransitionTime": wall(0),
            })
        );
        assert_eq!(
            notes(&out.writes),
            [(
                "n1".into(),
                "Normal",
                "NodeNotReady",
                "Node n1 status is now: NodeNotReady".into()
            )]
        );
    }

    #[test]
    fn nodes_without_a_pod_cidr_get_the_lowest_free_ones_and_nothing_else_this_pass() {
        let nodes = [
            ready_node("a", 1, "10.244.0.0/24"),
            node("b", 2, json!({})),
            node("c", 3, json!({})),
        ];
        let out = pass(&nodes, &[], &["a", "b", "c"]);
        let written = updates(&out.writes, Kind::Node);
        let cidrs: Vec<_> = written
            .iter()
            .map(|(n, part, version)| {
                assert_eq!(*part, UpdatePart::Main);
                (
                    n["metadata"]["name"].clone(),
                    n["spec"]["podCIDR"].clone(),
                    n["spec"]["podCIDRs"].clone(),
                    *version,
                )
            })
            .collect();
        assert_eq!(
            cidrs,
            [
                (
                    json!("b"),
                    json!("10.244.1.0/24"),
                    json!(["10.244.1.0/24"]),
                    Some(2)
                ),
                (
                    json!("c"),
                    json!("10.244.2.0/24"),
                    json!(["10.244.2.0/24"]),
                    Some(3)
                ),
            ]
        );
        // Marking them Ready waits for the next pass, as does scheduling onto them.
        assert!(out.writes.notes.is_empty());
        assert_eq!(
            out.written,
            HashSet::from(["b".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn a_used_up_cluster_range_is_reported_once_per_node_per_leadership() {
        let nodes = [ready_node("a", 1, "10.0.0.0/24"), node("b", 2, json!({}))];
        let mut warned = HashSet::new();
        let out = pass_warned(&nodes, &[], &["a"], &mut warned, "10.0.0.0/24");
        assert_eq!(
            notes(&out.writes)[0],
            (
                "b".into(),
                "Warning",
                "CIDRNotAvailable",
                "no pod CIDR left in the cluster range for node b".into()
            )
        );
        let again = pass_warned(&nodes, &[], &["a"], &mut warned, "10.0.0.0/24");
        assert!(
            again
                .writes
                .notes
                .iter()
                .all(|n| n.reason != "CIDRNotAvailable")
        );
    }
}
