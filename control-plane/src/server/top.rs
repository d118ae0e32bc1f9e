//! `skiff top`: the nodes' and pods' CPU and memory, asked of the agents when a client asks
//! (as metrics-server scrapes kubelets for `kubectl top`). Nothing is stored and nothing goes
//! through Raft: any member answers, from its own view of which pods run where, with what
//! each agent's cgroup sampler measured over its last interval.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use skiff_api::Kind;
use skiff_api::Selector;
use skiff_api::proto::metrics_server::Metrics;
use skiff_api::proto::{
    NodeMetrics, PodUsage, TopNodesRequest, TopNodesResponse, TopPodsRequest, TopPodsResponse,
    UsageRequest, UsageResponse,
};
use skiff_api::types::Node;
use skiff_pki::{Attributes, NodeTarget, Subject, Verb};
use tonic::{Request, Response, Status};

use super::agent_proxy::AgentProxy;
use super::auth::check;
use crate::controllers::scheduler::Resources;
use crate::error::ApiError;
use crate::raft_node::ControlPlane;

/// How long one agent may take to answer; a slow or dead one is left out, not waited for.
const AGENT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct MetricsServer {
    pub node: Arc<ControlPlane>,
    pub agents: AgentProxy,
}

fn selector(text: &str) -> Result<Selector, Status> {
    Selector::parse(text).map_err(|e| ApiError::InvalidArgument(e.to_string()).into())
}

impl MetricsServer {
    /// What the agent of `node` measured; `None` when it cannot say (unreachable, slow,
    /// no reading yet).
    async fn usage_of(&self, node: &str) -> Option<UsageResponse> {
        let ask = async {
            let mut agent = self.agents.agent_on(node).await.ok()?;
            let request = UsageRequest {
                node: node.to_string(),
            };
            agent.usage(request).await.ok().map(Response::into_inner)
        };
        tokio::time::timeout(AGENT_TIMEOUT, ask)
            .await
            .ok()
            .flatten()
            .filter(|usage| usage.window_ms > 0)
    }

    /// [`MetricsServer::usage_of`] for every node in `nodes`, at once.
    async fn usage_of_all(
        &self,
        nodes: impl IntoIterator<Item = String>,
    ) -> BTreeMap<String, Option<UsageResponse>> {
        let asks = nodes.into_iter().map(|node| async move {
            let usage = self.usage_of(&node).await;
            (node, usage)
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// The nodes' usage for `subject`, as `skiff top nodes` and the Kubernetes API's
    /// metrics.k8s.io (kube/metrics_api.rs) both serve it.
    pub async fn nodes_for(
        &self,
        subject: &Subject,
        request: &TopNodesRequest,
    ) -> Result<TopNodesResponse, Status> {
        check(subject, &Attributes::new(Verb::List, "nodes"), || {
            Ok(NodeTarget::None)
        })?;
        let labels = selector(&request.label_selector)?;
        let nodes: Vec<(String, Resources)> = {
            let table = self.node.shared.table.read().expect("table lock");
            table
                .list(Kind::Node, None)
                .filter(|n| labels.matches(&n.summary.labels))
                .map(|n| {
                    let allocatable = serde_json::from_slice::<Node>(&n.json)
                        .map(|node| Resources::allocatable_on(&node))
                        .unwrap_or_default();
                    (n.name.clone(), allocatable)
                })
                .collect()
        };
        let mut usage = self
            .usage_of_all(nodes.iter().map(|(name, _)| name.clone()))
            .await;
        let nodes = nodes
            .into_iter()
            .map(|(name, allocatable)| {
                let usage = usage.remove(&name).flatten();
                NodeMetrics {
                    cpu_millicores: usage.as_ref().map_or(0, |u| u.cpu_millicores),
                    memory_bytes: usage.as_ref().map_or(0, |u| u.memory_bytes),
                    cpu_allocatable_millicores: allocatable.cpu_millis,
                    memory_allocatable_bytes: allocatable.memory_bytes,
                    available: usage.is_some(),
                    name,
                }
            })
            .collect();
        Ok(TopNodesResponse { nodes })
    }

    /// The pods' usage for `subject`: `skiff top pods` and metrics.k8s.io's PodMetrics.
    pub async fn pods_for(
        &self,
        subject: &Subject,
        request: &TopPodsRequest,
    ) -> Result<TopPodsResponse, Status> {
        let mut attributes = Attributes::new(Verb::List, "pods");
        if !request.namespace.is_empty() {
            attributes = attributes.namespace(&request.namespace);
        }
        check(subject, &attributes, || Ok(NodeTarget::None))?;
        let labels = selector(&request.label_selector)?;
        let namespace = (!request.namespace.is_empty()).then_some(request.namespace.as_str());
        // The pods asked about, and the nodes they run on.
        let (wanted, nodes): (BTreeSet<(String, String)>, BTreeSet<String>) = {
            let table = self.node.shared.table.read().expect("table lock");
            let pods: Vec<_> = table
                .list(Kind::Pod, namespace)
                .filter(|p| labels.matches(&p.summary.labels))
                .filter_map(|p| {
                    let node = p.summary.node_name.clone()?;
                    Some(((p.namespace.clone(), p.name.clone()), node))
                })
                .collect();
            let nodes = pods.iter().map(|(_, node)| node.clone()).collect();
            (pods.into_iter().map(|(pod, _)| pod).collect(), nodes)
        };
        let usage = self.usage_of_all(nodes).await;
        let mut pods: Vec<PodUsage> = usage
            .into_values()
            .flatten()
            .flat_map(|usage| usage.pods)
            .filter(|p| wanted.contains(&(p.namespace.clone(), p.name.clone())))
            .collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(TopPodsResponse { pods })
    }
}

#[tonic::async_trait]
impl Metrics for MetricsServer {
    async fn top_nodes(
        &self,
        request: Request<TopNodesRequest>,
    ) -> Result<Response<TopNodesResponse>, Status> {
        let subject = self.agents.gate.subject(&request).await?;
        let nodes = self.nodes_for(&subject, request.get_ref()).await?;
        Ok(Response::new(nodes))
    }

    async fn top_pods(
        &self,
        request: Request<TopPodsRequest>,
    ) -> Result<Response<TopPodsResponse>, Status> {
        let subject = self.agents.gate.subject(&request).await?;
        let pods = self.pods_for(&subject, request.get_ref()).await?;
        Ok(Response::new(pods))
    }
}
