//! Controllers: node lifecycle, scheduler, deployments and event expiry. They run only on
//! the leader, level-triggered: every pass looks at the whole state, decides with the pure
//! functions of the submodules, and writes through Raft. A pass waits for its writes, so
//! the next one sees them; a new leader first catches up with everything committed.

pub mod deployment;
pub mod node_lifecycle;
pub mod scheduler;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_api::meta::{OwnerReference, Time};
use skiff_api::types::{
    Deployment, Event, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodStatus,
};
use skiff_api::{Kind, Object};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::node::ControlPlane;
use crate::raft_types::{Command, UpdatePart};
use crate::server::objects::admit_new;
use crate::store::StoredObject;
use deployment::{OwnedPod, TEMPLATE_HASH_LABEL};
use node_lifecycle::{ClusterCidr, Timeouts, Verdict};
use scheduler::{NodeInfo, PendingPod, Placement, Resources, Scheduler};
use skiff_api::events::{self, Note};

/// How the control plane signs its events.
const COMPONENT: &str = "skiff-control-plane";

/// The controllers' settings (from the control plane's flags).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub node_grace: Duration,
    pub pod_eviction_timeout: Duration,
    pub cluster_cidr: ClusterCidr,
    pub event_ttl: Duration,
}

/// Longest time between passes when nothing changes (node silence is judged this often).
const MAX_IDLE: Duration = Duration::from_secs(1);
/// How often expired events are looked for.
const EVENT_SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Passes start at most this often: under a stream of writes one pass then handles many
/// changes instead of one pass per change (each pass looks at the whole state).
const MIN_PASS_GAP: Duration = Duration::from_millis(5);
/// And at most once per this many times a pass's own duration: a pass costs time in
/// proportion to the objects stored, so with many of them under a stream of writes the
/// controllers take at most about a third of a core from the leader's writes. Profiled
/// before this bound: 40 % of the leader's CPU in bench-writes (50k pods). Measured with
/// it (bench-scheduler, 10k pods): 4 would bind 4.8k pods/s at p50 535 ms, 2 binds 4.6k/s at
/// p50 205 ms.
const PASS_COST_FACTOR: u32 = 2;

/// Runs the controllers for as long as this node leads in `term`.
pub async fn run_while_leading(node: Arc<ControlPlane>, settings: Settings, term: u64) {
    let leading = |node: &ControlPlane| {
        let m = node.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_term == term
    };
    // Decisions need everything earlier leaders committed: catch up first.
    if node.read_barrier().await.is_err() || !leading(&node) {
        return;
    }
    tracing::info!(term, "controllers started");
    let mut applied = node.shared.applied.subscribe();
    let mut metrics = node.raft.metrics();
    let mut controllers = Controllers::new(node.clone(), settings);
    let idle = MAX_IDLE.min(settings.node_grace / 4);
    loop {
        if !leading(&node) {
            tracing::info!(term, "controllers stopped: leadership lost");
            return;
        }
        applied.borrow_and_update();
        let pass_started = Instant::now();
        let requeue = match controllers.pass().await {
            Ok(requeue) => requeue,
            Err(e) => {
                tracing::warn!("controller pass failed: {e}");
                Some(Duration::from_millis(200))
            }
        };
        let wait = requeue.unwrap_or(idle).min(idle);
        tokio::select! {
            _ = applied.changed() => {}
            _ = metrics.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        let gap = MIN_PASS_GAP.max(pass_started.elapsed() * PASS_COST_FACTOR);
        tokio::time::sleep_until(pass_started + gap).await;
    }
}

/// Parsed objects, reused while the table holds the same stored object. Keyed by the
/// stored object's address: the cache keeps its `Arc`, so the address cannot be reused
/// while cached, and no key string is built per object per pass. Updated in place (a pass
/// marks what it saw): rebuilding the map every pass cost the leader more than its writes.
struct Cache<T> {
    entries: HashMap<usize, Cached<T>>,
    pass: u64,
}

struct Cached<T> {
    _stored: Arc<StoredObject>,
    parsed: Arc<T>,
    seen_in_pass: u64,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            entries: HashMap::new(),
            pass: 0,
        }
    }
}

impl<T> Cache<T> {
    fn refresh(
        &mut self,
        objects: &[Arc<StoredObject>],
        parse: impl Fn(&StoredObject) -> Option<T>,
    ) -> Vec<(Arc<StoredObject>, Arc<T>)> {
        use std::collections::hash_map::Entry;
        self.pass += 1;
        let pass = self.pass;
        let mut out = Vec::with_capacity(objects.len());
        for stored in objects {
            let address = Arc::as_ptr(stored) as usize;
            let parsed = match self.entries.entry(address) {
                Entry::Occupied(mut cached) => {
                    cached.get_mut().seen_in_pass = pass;
                    cached.get().parsed.clone()
                }
                Entry::Vacant(slot) => match parse(stored) {
                    Some(p) => {
                        let parsed = Arc::new(p);
                        slot.insert(Cached {
                            _stored: stored.clone(),
                            parsed: parsed.clone(),
                            seen_in_pass: pass,
                        });
                        parsed
                    }
                    None => continue,
                },
            };
            out.push((stored.clone(), parsed));
        }
        // Every object seen is cached, so more entries than that means some went.
        if self.entries.len() > out.len() {
            self.entries.retain(|_, cached| cached.seen_in_pass == pass);
        }
        out
    }
}

fn parse<T: DeserializeOwned>(stored: &StoredObject) -> Option<T> {
    match serde_json::from_slice(&stored.json) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key = stored.key(), "unreadable stored object: {e}");
            None
        }
    }
}

/// A pod with what the controllers derive from it.
struct PodFacts {
    pod: Pod,
    requests: Resources,
    /// The uid of its controlling Deployment, if any.
    deployment: Option<String>,
    owned: OwnedPod,
}

impl PodFacts {
    fn new(pod: Pod) -> PodFacts {
        let deployment = pod
            .metadata
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            .map(|o| o.uid.clone());
        PodFacts {
            requests: Resources::requested_by(&pod),
            owned: OwnedPod::from_pod(&pod),
            deployment,
            pod,
        }
    }

    fn node(&self) -> Option<&str> {
        self.pod.spec.node_name.as_deref().filter(|n| !n.is_empty())
    }
}

type Entry<T> = (Arc<StoredObject>, Arc<T>);

struct Controllers {
    node: Arc<ControlPlane>,
    settings: Settings,
    leader_since: Instant,
    pods: Cache<PodFacts>,
    nodes: Cache<Node>,
    deployments: Cache<Deployment>,
    last_event_sweep: Option<Instant>,
    /// Nodes already told that no pod CIDR is left (once per leadership, not per pass).
    cidr_warned: HashSet<String>,
}

/// What one pass decided to write.
#[derive(Default)]
struct Writes {
    commands: Vec<Command>,
    notes: Vec<Note>,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("objects serialize")
}

fn rfc3339(t: Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn pod_note(pod: &Pod, type_: &'static str, reason: &'static str, message: String) -> Note {
    Note {
        kind: "Pod",
        api_version: "v1",
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        type_,
        reason,
        message,
        component: COMPONENT,
        host: None,
    }
}

fn node_note(node: &Node, type_: &'static str, reason: &'static str, message: String) -> Note {
    Note {
        kind: "Node",
        api_version: "v1",
        namespace: String::new(),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone().unwrap_or_default(),
        type_,
        reason,
        message,
        component: COMPONENT,
        host: None,
    }
}

fn deployment_note(
    d: &Deployment,
    type_: &'static str,
    reason: &'static str,
    message: String,
) -> Note {
    Note {
        kind: "Deployment",
        api_version: "apps/v1",
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        type_,
        reason,
        message,
        component: COMPONENT,
        host: None,
    }
}

fn status_update<T: Serialize>(kind: Kind, object: &T, version: u64) -> Command {
    Command::Update {
        kind,
        object: to_json(object),
        part: UpdatePart::Status,
        expected_version: Some(version),
    }
}

fn delete_pod(pod: &Pod, force: bool, now: Time) -> Command {
    Command::Delete {
        kind: Kind::Pod,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone(),
        grace_period_seconds: force.then_some(0),
        force,
        now: rfc3339(now),
    }
}

impl Controllers {
    fn new(node: Arc<ControlPlane>, settings: Settings) -> Controllers {
        Controllers {
            node,
            settings,
            leader_since: Instant::now(),
            pods: Cache::default(),
            nodes: Cache::default(),
            deployments: Cache::default(),
            last_event_sweep: None,
            cidr_warned: HashSet::new(),
        }
    }

    /// One look at the whole state; returns when to look again at the latest.
    async fn pass(&mut self) -> Result<Option<Duration>, ApiError> {
        let (pods, nodes, deployments) = {
            let table = self.node.shared.table.read().expect("table lock");
            let all = |kind| table.list(kind, None).cloned().collect::<Vec<_>>();
            (all(Kind::Pod), all(Kind::Node), all(Kind::Deployment))
        };
        let pods = self.pods.refresh(&pods, |s| parse(s).map(PodFacts::new));
        let nodes = self.nodes.refresh(&nodes, parse::<Node>);
        let deployments = self.deployments.refresh(&deployments, parse::<Deployment>);
        let now = Instant::now();
        let wall = chrono::Utc::now();

        let mut writes = Writes::default();
        let busy_nodes = self.node_lifecycle(&nodes, &pods, now, wall, &mut writes);
        self.schedule(&nodes, &pods, &busy_nodes, wall, &mut writes);
        let requeue = self.reconcile_deployments(&deployments, &pods, wall, &mut writes);
        self.submit(writes.commands).await?;
        self.record(writes.notes, wall).await?;
        if self
            .last_event_sweep
            .is_none_or(|t| now.duration_since(t) >= EVENT_SWEEP_EVERY)
        {
            self.last_event_sweep = Some(now);
            self.expire_events(wall).await?;
        }
        Ok(requeue)
    }

    /// Writes commands concurrently (the leader batches them into few log entries).
    /// Conflicts and vanished objects are expected races: the next pass looks again.
    async fn submit(&self, commands: Vec<Command>) -> Result<(), ApiError> {
        let results =
            futures::future::join_all(commands.into_iter().map(|c| self.node.propose_as_leader(c)))
                .await;
        for result in results {
            match result {
                Ok(_) | Err(ApiError::Conflict(_) | ApiError::NotFound(_)) => {}
                Err(ApiError::AlreadyExists(m)) => tracing::debug!("controller write: {m}"),
                Err(e @ (ApiError::Unavailable(_) | ApiError::Unknown(_))) => return Err(e),
                Err(e) => tracing::warn!("controller write rejected: {e}"),
            }
        }
        Ok(())
    }

    /// Records events, counting repeats into the existing event.
    async fn record(&self, notes: Vec<Note>, now: Time) -> Result<(), ApiError> {
        let mut commands = Vec::with_capacity(notes.len());
        let mut seen = HashSet::new();
        for note in notes {
            let name = note.event_name();
            if !seen.insert(name.clone()) {
                continue;
            }
            let existing = self
                .node
                .shared
                .table
                .read()
                .expect("table lock")
                .get(Kind::Event, note.event_namespace(), &name)
                .cloned();
            let existing_event = existing.as_deref().and_then(parse::<Event>);
            let event = note.merged_into(existing_event.as_ref(), now);
            match existing {
                Some(stored) => commands.push(Command::Update {
                    kind: Kind::Event,
                    object: to_json(&event),
                    part: UpdatePart::Main,
                    expected_version: Some(stored.version),
                }),
                None => {
                    let mut object = Object::Event(event);
                    admit_new(&mut object)?;
                    commands.push(Command::Create {
                        kind: Kind::Event,
                        object: object.to_json(),
                    });
                }
            }
        }
        self.submit(commands).await
    }

    async fn expire_events(&self, now: Time) -> Result<(), ApiError> {
        let events: Vec<_> = {
            let table = self.node.shared.table.read().expect("table lock");
            table.list(Kind::Event, None).cloned().collect()
        };
        let commands = events
            .iter()
            .filter(|stored| {
                parse::<Event>(stored)
                    .is_some_and(|e| events::expired(&e, now, self.settings.event_ttl))
            })
            .map(|stored| Command::Delete {
                kind: Kind::Event,
                namespace: stored.namespace.clone(),
                name: stored.name.clone(),
                grace_period_seconds: None,
                force: false,
                now: rfc3339(now),
            })
            .collect();
        self.submit(commands).await
    }

    /// Pod CIDRs, Ready transitions and evictions. Returns the nodes written this pass
    /// (their other updates wait for the next pass, to not race their own version).
    fn node_lifecycle(
        &mut self,
        nodes: &[Entry<Node>],
        pods: &[Entry<PodFacts>],
        now: Instant,
        wall: Time,
        writes: &mut Writes,
    ) -> HashSet<String> {
        let known: HashSet<&str> = nodes
            .iter()
            .map(|(_, n)| n.metadata.name.as_str())
            .collect();
        let heard = {
            let mut heartbeats = self.node.heartbeats.lock().expect("heartbeats lock");
            // Deleted nodes are forgotten.
            heartbeats.retain(|name, _| known.contains(name.as_str()));
            heartbeats.clone()
        };
        let timeouts = Timeouts {
            grace: self.settings.node_grace,
            eviction: self.settings.pod_eviction_timeout,
        };
        let mut in_use: Vec<String> = nodes
            .iter()
            .filter_map(|(_, n)| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
            .collect();
        let mut written = HashSet::new();
        let mut lost: HashSet<&str> = HashSet::new();
        for (stored, node) in nodes {
            let name = node.metadata.name.as_str();
            if node
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_ref())
                .is_none()
            {
                match self
                    .settings
                    .cluster_cidr
                    .allocate(in_use.iter().map(String::as_str))
                {
                    Some(cidr) => {
                        let mut updated = (**node).clone();
                        let spec = updated.spec.get_or_insert_with(NodeSpec::default);
                        spec.pod_cidr = Some(cidr.clone());
                        spec.pod_cidrs = vec![cidr.clone()];
                        writes.commands.push(Command::Update {
                            kind: Kind::Node,
                            object: to_json(&updated),
                            part: UpdatePart::Main,
                            expected_version: Some(stored.version),
                        });
                        in_use.push(cidr);
                        written.insert(name.to_string());
                        continue;
                    }
                    None => {
                        if self.cidr_warned.insert(name.to_string()) {
                            writes.notes.push(node_note(
                                node,
                                "Warning",
                                "CIDRNotAvailable",
                                format!("no pod CIDR left in the cluster range for node {name}"),
                            ));
                        }
                    }
                }
            }
            let (ready, since) = node_lifecycle::ready_condition(node);
            let verdict = node_lifecycle::judge(
                ready,
                since,
                heard.get(name).copied(),
                self.leader_since,
                now,
                wall,
                timeouts,
            );
            let set_ready = |ok: bool| {
                let mut updated = (**node).clone();
                let status = updated.status.get_or_insert_with(NodeStatus::default);
                status.conditions.retain(|c| c.type_ != "Ready");
                let (status_text, reason, message) = if ok {
                    ("True", "AgentReady", "skiff-agent is posting heartbeats")
                } else {
                    (
                        "False",
                        "NodeStatusUnknown",
                        "skiff-agent stopped posting heartbeats",
                    )
                };
                status.conditions.insert(
                    0,
                    NodeCondition {
                        type_: "Ready".into(),
                        status: status_text.into(),
                        reason: Some(reason.into()),
                        message: Some(message.into()),
                        last_heartbeat_time: Some(wall),
                        last_transition_time: Some(wall),
                    },
                );
                status_update(Kind::Node, &updated, stored.version)
            };
            match verdict {
                Verdict::Nothing => {}
                Verdict::MarkReady => {
                    writes.commands.push(set_ready(true));
                    writes.notes.push(node_note(
                        node,
                        "Normal",
                        "NodeReady",
                        format!("Node {name} status is now: NodeReady"),
                    ));
                    written.insert(name.to_string());
                }
                Verdict::MarkNotReady => {
                    writes.commands.push(set_ready(false));
                    writes.notes.push(node_note(
                        node,
                        "Normal",
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    ));
                    written.insert(name.to_string());
                }
                Verdict::EvictPods => {
                    lost.insert(name);
                }
            }
        }

        // Pods on lost nodes, or on nodes that no longer exist, will not run again.
        let orphan_age =
            chrono::Duration::from_std(timeouts.grace).unwrap_or(chrono::Duration::MAX);
        for (stored, facts) in pods {
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
                for c in status.conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                    if c.status != "False" {
                        c.status = "False".into();
                        c.last_transition_time = Some(wall);
                    }
                }
                writes
                    .commands
                    .push(status_update(Kind::Pod, &updated, stored.version));
                writes
                    .notes
                    .push(pod_note(pod, "Warning", "Evicted", message));
            }
        }
        written
    }

    /// Binds pending pods, or says why they cannot be placed.
    fn schedule(
        &self,
        nodes: &[Entry<Node>],
        pods: &[Entry<PodFacts>],
        busy_nodes: &HashSet<String>,
        wall: Time,
        writes: &mut Writes,
    ) {
        let mut pending: Vec<&Entry<PodFacts>> = pods
            .iter()
            .filter(|(_, f)| f.node().is_none() && !f.owned.terminating && !f.owned.finished)
            .filter(|(_, f)| {
                f.pod
                    .spec
                    .scheduler_name
                    .as_deref()
                    .is_none_or(|s| s == skiff_api::object::DEFAULT_SCHEDULER)
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        // Oldest first: versions grow with every write, creation included.
        pending.sort_by_key(|(stored, _)| stored.version);
        let infos: Vec<NodeInfo> = nodes
            .iter()
            .map(|(_, n)| {
                let mut info = NodeInfo::from_node(n);
                // A node without a pod CIDR cannot give pods addresses yet, and one being
                // written this pass is judged again on the next.
                let has_cidr = n.spec.as_ref().is_some_and(|s| s.pod_cidr.is_some());
                info.ready = info.ready && has_cidr && !busy_nodes.contains(&info.name);
                info
            })
            .collect();
        let bound = pods.iter().filter_map(|(_, f)| {
            let node = f.node()?;
            (!f.owned.finished).then(|| (node, f.requests, f.deployment.as_deref()))
        });
        let mut scheduler = Scheduler::new(infos, bound);
        let now = rfc3339(wall);
        for (stored, facts) in pending {
            let pod = &facts.pod;
            let request = PendingPod {
                node_selector: Some(&pod.spec.node_selector),
                requests: facts.requests,
                owner: facts.deployment.as_deref(),
            };
            match scheduler.place(&request) {
                Placement::Node(i) => {
                    let node_name = scheduler.node_name(i).to_string();
                    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                    writes.notes.push(pod_note(
                        pod,
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
                    writes
                        .commands
                        .push(status_update(Kind::Pod, &updated, stored.version));
                    writes
                        .notes
                        .push(pod_note(pod, "Warning", "FailedScheduling", message));
                }
            }
        }
    }

    /// Creates, deletes and reports on each deployment's pods; deletes pods whose
    /// deployment is gone.
    fn reconcile_deployments(
        &self,
        deployments: &[Entry<Deployment>],
        pods: &[Entry<PodFacts>],
        wall: Time,
        writes: &mut Writes,
    ) -> Option<Duration> {
        let mut owned: HashMap<&str, Vec<&PodFacts>> = HashMap::new();
        for (_, facts) in pods {
            if let Some(uid) = &facts.deployment {
                owned.entry(uid.as_str()).or_default().push(facts);
            }
        }
        let mut requeue: Option<Duration> = None;
        for (stored, d) in deployments {
            let uid = d.metadata.uid.clone().unwrap_or_default();
            let mine = owned.remove(uid.as_str()).unwrap_or_default();
            let views: Vec<OwnedPod> = mine.iter().map(|f| f.owned.clone()).collect();
            let plan = deployment::plan(d, &views, wall);
            if let Some(after) = plan.requeue_after {
                requeue = Some(requeue.map_or(after, |r| r.min(after)));
            }
            if plan.create > 0 {
                let hash = deployment::template_hash(&d.spec.template);
                let mut created = 0;
                for _ in 0..plan.create {
                    match new_pod(d, &uid, &hash) {
                        Ok(object) => {
                            created += 1;
                            writes.commands.push(Command::Create {
                                kind: Kind::Pod,
                                object: object.to_json(),
                            });
                        }
                        Err(e) => {
                            writes.notes.push(deployment_note(
                                d,
                                "Warning",
                                "FailedCreate",
                                format!("Error creating pod: {e}"),
                            ));
                            break;
                        }
                    }
                }
                if created > 0 {
                    writes.notes.push(deployment_note(
                        d,
                        "Normal",
                        "ScalingUp",
                        format!(
                            "Created {created} pod(s) with template hash {hash} ({} of {} desired running)",
                            views.iter().filter(|p| !p.terminating && !p.finished).count() + created,
                            d.spec.replicas.unwrap_or(1)
                        ),
                    ));
                }
            }
            if !plan.delete.is_empty() {
                for name in &plan.delete {
                    if let Some(facts) = mine.iter().find(|f| f.pod.metadata.name == *name) {
                        writes.commands.push(delete_pod(&facts.pod, false, wall));
                    }
                }
                writes.notes.push(deployment_note(
                    d,
                    "Normal",
                    "ScalingDown",
                    format!("Deleted pod(s) {}", plan.delete.join(", ")),
                ));
            }
            if d.status.as_ref() != Some(&plan.status) {
                let mut updated = (**d).clone();
                updated.status = Some(plan.status);
                writes
                    .commands
                    .push(status_update(Kind::Deployment, &updated, stored.version));
            }
        }
        // Whatever is left belongs to deployments that no longer exist.
        for facts in owned.into_values().flatten() {
            if !facts.owned.terminating {
                writes.commands.push(delete_pod(&facts.pod, false, wall));
            }
        }
        requeue
    }
}

/// A new pod from the deployment's template, admitted like a client's create.
fn new_pod(d: &Deployment, uid: &str, hash: &str) -> Result<Object, ApiError> {
    let template = &d.spec.template;
    let mut meta = template.metadata.clone();
    meta.labels
        .insert(TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
    meta.name = deployment::pod_name(
        &d.metadata.name,
        hash,
        &deployment::random_suffix(uuid::Uuid::new_v4().as_u128()),
    );
    meta.generate_name = None;
    meta.namespace = d.metadata.namespace.clone();
    meta.owner_references = vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }];
    let mut object = Object::Pod(Pod {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        metadata: meta,
        spec: template.spec.clone(),
        status: None,
    });
    admit_new(&mut object)?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn stored(name: &str, version: u64) -> Arc<StoredObject> {
        let value = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "resourceVersion": version.to_string(), "uid": name},
        });
        Arc::new(StoredObject::from_value(Kind::Namespace, &value).unwrap())
    }

    #[test]
    fn controllers_1_the_cache_parses_each_stored_object_once() {
        let parses = Cell::new(0);
        let parse = |s: &StoredObject| {
            parses.set(parses.get() + 1);
            (s.name != "bad").then(|| s.name.clone())
        };
        let mut cache = Cache::default();
        let (a, b, bad) = (stored("a", 1), stored("b", 2), stored("bad", 3));
        let names = |out: &[(Arc<StoredObject>, Arc<String>)]| {
            out.iter().map(|(_, n)| n.to_string()).collect::<Vec<_>>()
        };
        let out = cache.refresh(&[a.clone(), b.clone(), bad.clone()], parse);
        assert_eq!(names(&out), ["a", "b"]);
        assert_eq!(parses.get(), 3);
        // Same objects: nothing parsed again (the unparseable one is tried again).
        let out = cache.refresh(&[a.clone(), b.clone(), bad.clone()], parse);
        assert_eq!(names(&out), ["a", "b"]);
        assert_eq!(parses.get(), 4);
        // `a` replaced by a new version, `b` gone: one parse, and `b` leaves the cache.
        let a2 = stored("a", 4);
        let out = cache.refresh(std::slice::from_ref(&a2), parse);
        assert_eq!(names(&out), ["a"]);
        assert!(Arc::ptr_eq(&out[0].0, &a2));
        assert_eq!(parses.get(), 5);
        assert_eq!(cache.entries.len(), 1);
    }
}
