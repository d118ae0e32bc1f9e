//! Simulated nodes: Node objects registered through the public API with a capacity and
//! labels, kept alive by heartbeats like an agent's — for scheduler and controller tests
//! before (and besides) the real agent. A node whose heartbeats are stopped goes silent,
//! as if its host died.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use skiff_api::types::{Node, NodeAddress, NodeStatus, Pod, PodCondition, PodStatus, Quantity};
use skiff_client::{Client, DeleteParams};

/// What a simulated node offers.
#[derive(Debug, Clone)]
pub struct NodeShape {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub labels: BTreeMap<String, String>,
}

impl Default for NodeShape {
    fn default() -> Self {
        NodeShape {
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 110,
            labels: BTreeMap::new(),
        }
    }
}

impl NodeShape {
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// Registered nodes and their heartbeat loops (which stop when this is dropped).
pub struct SimulatedNodes {
    client: Client,
    alive: HashMap<String, Arc<AtomicBool>>,
    interval: Duration,
}

impl SimulatedNodes {
    pub fn new(client: Client, interval: Duration) -> SimulatedNodes {
        SimulatedNodes {
            client,
            alive: HashMap::new(),
            interval,
        }
    }

    /// The Node object a simulated node registers (address 10.250.0.x, never contacted).
    pub fn node_object(name: &str, shape: &NodeShape, index: usize) -> Node {
        let capacity: BTreeMap<String, Quantity> = [
            ("cpu", shape.cpu.clone()),
            ("memory", shape.memory.clone()),
            ("pods", shape.pods.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity::from(v.as_str())))
        .collect();
        let mut node = Node::default();
        node.metadata.name = name.to_string();
        node.metadata.labels = shape.labels.clone();
        node.status = Some(NodeStatus {
            allocatable: capacity.clone(),
            capacity,
            addresses: vec![NodeAddress {
                type_: "InternalIP".into(),
                address: format!("10.250.{}.{}", index / 250, index % 250 + 1),
            }],
            ..NodeStatus::default()
        });
        node
    }

    /// Registers the node and starts heartbeating for it.
    pub async fn add(&mut self, name: &str, shape: NodeShape) -> anyhow::Result<()> {
        let node = Self::node_object(name, &shape, self.alive.len());
        match self.client.create(&node).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
        self.start_heartbeats(name);
        Ok(())
    }

    /// Starts (again) the heartbeat loop of a registered node.
    pub fn start_heartbeats(&mut self, name: &str) {
        let alive = Arc::new(AtomicBool::new(true));
        if let Some(old) = self.alive.insert(name.to_string(), alive.clone()) {
            old.store(false, Ordering::Relaxed);
        }
        let client = self.client.clone();
        let name = name.to_string();
        let interval = self.interval;
        tokio::spawn(async move {
            while alive.load(Ordering::Relaxed) {
                if let Err(e) = client.node_heartbeat(&name).await
                    && e.is_not_found()
                {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Silences a node, as if its host died.
    pub fn stop_heartbeats(&mut self, name: &str) {
        if let Some(alive) = self.alive.remove(name) {
            alive.store(false, Ordering::Relaxed);
        }
    }

    /// Plays the agent's part for pods on live simulated nodes, polling every 100 ms:
    /// a bound pod is reported Running and Ready, and a terminating one is confirmed gone.
    /// (The real agent runs processes; this only moves the API state along.)
    pub fn run_pods(&self) {
        let client = self.client.clone();
        let alive: Vec<(String, Arc<AtomicBool>)> = self
            .alive
            .iter()
            .map(|(name, flag)| (name.clone(), flag.clone()))
            .collect();
        tokio::spawn(async move {
            let live = |node: &str| {
                alive
                    .iter()
                    .any(|(name, flag)| name == node && flag.load(Ordering::Relaxed))
            };
            while alive.iter().any(|(_, flag)| flag.load(Ordering::Relaxed)) {
                if let Ok(pods) = client
                    .list::<Pod>(&skiff_client::ListParams::all_namespaces())
                    .await
                {
                    for pod in pods.items {
                        let Some(node) = pod.spec.node_name.clone() else {
                            continue;
                        };
                        if !live(&node) {
                            continue;
                        }
                        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                        if pod.metadata.deletion_timestamp.is_some() {
                            let _ = client
                                .delete::<Pod>(
                                    &namespace,
                                    &pod.metadata.name,
                                    &DeleteParams::force(),
                                )
                                .await;
                        } else if pod.status.as_ref().and_then(|s| s.phase.as_deref())
                            == Some("Pending")
                        {
                            let _ = client.update_status(&running(pod)).await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    /// Waits until every registered node is Ready with a pod CIDR.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let names: Vec<String> = self.alive.keys().cloned().collect();
        crate::cluster::eventually(timeout, || async {
            let nodes = self
                .client
                .list::<Node>(&skiff_client::ListParams::all_namespaces())
                .await?;
            let ready = nodes
                .items
                .iter()
                .filter(|n| names.contains(&n.metadata.name) && is_ready(n))
                .count();
            anyhow::ensure!(ready == names.len(), "{ready}/{} nodes ready", names.len());
            Ok(())
        })
        .await
    }
}

impl Drop for SimulatedNodes {
    fn drop(&mut self) {
        for alive in self.alive.values() {
            alive.store(false, Ordering::Relaxed);
        }
    }
}

/// The pod as an agent reports it once its containers run and pass readiness.
fn running(mut pod: Pod) -> Pod {
    let now = chrono_now();
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.phase = Some("Running".into());
    status.start_time = Some(now);
    status.conditions.retain(|c| c.type_ == "PodScheduled");
    for type_ in ["Initialized", "ContainersReady", "Ready"] {
        status.conditions.push(PodCondition {
            type_: type_.into(),
            status: "True".into(),
            last_transition_time: Some(now),
            ..PodCondition::default()
        });
    }
    pod
}

fn chrono_now() -> skiff_api::meta::Time {
    // Second precision, as stored.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    skiff_api::meta::Time::from_timestamp(secs, 0).unwrap_or_default()
}

/// Ready=True and a pod CIDR assigned.
pub fn is_ready(node: &Node) -> bool {
    node.is_ready() && node.spec.as_ref().is_some_and(|s| s.pod_cidr.is_some())
}
