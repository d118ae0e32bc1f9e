//! Controllers: node lifecycle, scheduler, deployments and event expiry. They run only on
//! the leader, level-triggered: every pass looks at the whole state, decides with the pure
//! functions of the submodules, and writes through Raft. A pass waits for its writes, so
//! the next one sees them; a new leader first catches up with everything committed.
//!
//! This module is the loop, the parse cache and the I/O (table, heartbeats, proposals,
//! events); the decisions take a [`snapshot::Snapshot`] and return [`writes::Writes`].

pub mod deployment;
pub mod namespace;
pub mod node_lifecycle;
pub mod propagation;
pub mod scheduler;
pub mod snapshot;
pub mod writes;

#[cfg(test)]
mod fixtures;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use serde::de::DeserializeOwned;
use skiff_api::events::{self, Note};
use skiff_api::meta::Time;
use skiff_api::pod_security::Level;
use skiff_api::types::{Deployment, Event, Node};
use skiff_api::{Kind, Object};
use tokio::time::Instant;

use crate::admission::{RandomIds, admit};
use crate::error::ApiError;
use crate::pod_security::NamespaceLevels;
use crate::raft_node::ControlPlane;
use crate::raft_types::{Command, UpdatePart};
use crate::store::StoredObject;
use crate::store::objects::namespace_terminating;
use node_lifecycle::{ClusterCidr, Heard};
use snapshot::{PodFacts, Snapshot, Versioned};
use writes::{rfc3339, to_json};

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
        crate::metrics::METRICS
            .controller_pass
            .observe(pass_started.elapsed().as_secs_f64());
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
        parse: impl Fn(&Arc<StoredObject>) -> Option<T>,
    ) -> Vec<Versioned<T>> {
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
            out.push(Versioned {
                version: stored.version,
                object: parsed,
            });
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
    ids: RandomIds,
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
            ids: RandomIds,
        }
    }

    /// One look at the whole state; returns when to look again at the latest.
    async fn pass(&mut self) -> Result<Option<Duration>, ApiError> {
        let (pods, nodes, deployments, levels, deleting, terminating) = {
            let table = self.node.shared.table.read().expect("table lock");
            let deleting: Vec<(String, Vec<u8>)> = table
                .system_prefixed(propagation::RECORD_PREFIX)
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect();
            let all = |kind| table.list(kind, None).cloned().collect::<Vec<_>>();
            let levels: NamespaceLevels = table
                .list(Kind::Namespace, None)
                .map(|ns| (ns.name.clone(), Level::of_namespace(&ns.summary.labels)))
                .collect();
            // Read with the pods under one lock: no pod the namespace holds is missed.
            let terminating: Vec<String> = table
                .list(Kind::Namespace, None)
                .filter(|ns| namespace_terminating(ns))
                .map(|ns| ns.name.clone())
                .collect();
            (
                all(Kind::Pod),
                all(Kind::Node),
                all(Kind::Deployment),
                levels,
                deleting,
                terminating,
            )
        };
        let pods = self.pods.refresh(&pods, PodFacts::from_stored);
        let nodes = self.nodes.refresh(&nodes, |s| parse::<Node>(s));
        let deployments = self
            .deployments
            .refresh(&deployments, |s| parse::<Deployment>(s));
        let now = Instant::now();
        let wall = chrono::Utc::now();

        let snapshot = Snapshot {
            nodes: &nodes,
            pods: &pods,
            deployments: &deployments,
        };
        let known: HashSet<&str> = nodes
            .iter()
            .map(|n| n.object.metadata.name.as_str())
            .collect();
        let beats = {
            let mut heartbeats = self.node.heartbeats.lock().expect("heartbeats lock");
            // Deleted nodes are forgotten.
            heartbeats.retain(|name, _| known.contains(name.as_str()));
            heartbeats.clone()
        };
        let heard = Heard {
            since: self.leader_since,
            beats: &beats,
        };

        let lifecycle = node_lifecycle::reconcile(
            snapshot,
            now,
            wall,
            &self.settings,
            heard,
            &mut self.cidr_warned,
        );
        let mut writes = lifecycle.writes;
        writes.append(scheduler::schedule(snapshot, &lifecycle.written, wall));
        // Deployments deleted with Orphan or Foreground, and their pods, are the propagation
        // step's alone until they are gone.
        let mut propagating = propagation::reconcile(&deleting, snapshot, wall);
        // So are those of a namespace being emptied: none may replace the pods it stops.
        let emptying = namespace::reconcile(&terminating, snapshot, wall);
        propagating.hidden.extend(
            deployments
                .iter()
                .filter(|d| {
                    d.object
                        .metadata
                        .namespace
                        .as_ref()
                        .is_some_and(|ns| terminating.contains(ns))
                })
                .filter_map(|d| d.object.metadata.uid.clone()),
        );
        writes.append(emptying.writes);
        let hiding = !propagating.hidden.is_empty();
        let (visible_pods, visible_deployments) = match hiding {
            true => propagation::visible(snapshot, &propagating.hidden),
            false => (Vec::new(), Vec::new()),
        };
        let visible = match hiding {
            true => Snapshot {
                nodes: &nodes,
                pods: &visible_pods,
                deployments: &visible_deployments,
            },
            false => snapshot,
        };
        writes.append(propagating.writes);
        let deployments = deployment::reconcile(visible, wall, &mut self.ids, &levels);
        writes.append(deployments.writes);
        let requeue = [deployments.requeue_after, emptying.requeue_after]
            .into_iter()
            .flatten()
            .min();
        // The events go with the writes they tell of, in the same batches: a second round
        // of Raft writes would double the pass (and the pause after it).
        let mut commands = writes.commands;
        commands.extend(self.event_commands(writes.notes, wall)?);
        self.submit(commands).await?;
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

    /// The writes that record events, counting repeats into the existing event.
    fn event_commands(&mut self, notes: Vec<Note>, now: Time) -> Result<Vec<Command>, ApiError> {
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
                    admit(&mut object, &mut self.ids, now)?;
                    commands.push(Command::Create {
                        kind: Kind::Event,
                        object: object.to_json(),
                    });
                }
            }
        }
        Ok(commands)
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
    fn the_cache_parses_each_stored_object_once() {
        let parses = Cell::new(0);
        let parse = |s: &Arc<StoredObject>| {
            parses.set(parses.get() + 1);
            (s.name != "bad").then(|| s.name.clone())
        };
        let mut cache = Cache::default();
        let (a, b, bad) = (stored("a", 1), stored("b", 2), stored("bad", 3));
        let names = |out: &[Versioned<String>]| {
            out.iter().map(|v| v.object.to_string()).collect::<Vec<_>>()
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
        assert_eq!(out[0].version, 4);
        assert_eq!(parses.get(), 5);
        assert_eq!(cache.entries.len(), 1);
    }
}
