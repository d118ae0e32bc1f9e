//! Logs, exec, port-forward and the nodes' image stores through any control-plane node: the
//! call is passed on to the agent of the pod's node, or of the node the image call names
//! (its InternalIP and `daemonEndpoints.kubeletEndpoint.Port`), so a client needs only a
//! control-plane endpoint.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use skiff_api::Kind;
use skiff_api::proto::agent_client::AgentClient;
use skiff_api::proto::agent_server::Agent;
use skiff_api::proto::{
    ExecRequest, ExecResponse, ExportImageChunk, ExportImageRequest, ImportImageRequest,
    ImportImageResponse, ListImagesRequest, ListImagesResponse, LogsChunk, LogsRequest,
    PortForwardRequest, PortForwardResponse, RemoveImageRequest, RemoveImageResponse, UsageRequest,
    UsageResponse,
};
use skiff_api::types::{Node, Pod};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use skiff_pki::{Attributes, NodeTarget, Subject, Verb};

use super::auth::{Gate, check};
use crate::error::ApiError;
use crate::raft_node::ControlPlane;

/// Image chunks and lists are larger than tonic's 4 MiB default allows.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct AgentProxy {
    pub node: Arc<ControlPlane>,
    pub gate: Gate,
}

/// A pod call's namespace: empty means `default`, as for every namespaced request.
fn pod_namespace(namespace: &str) -> &str {
    if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

/// `verb` on subresource `sub` of pod `namespace/pod`, for `subject`.
pub(crate) fn check_pod(
    subject: &Subject,
    verb: Verb,
    sub: &str,
    namespace: &str,
    pod: &str,
) -> Result<(), Status> {
    let attributes = Attributes::new(verb, "pods")
        .subresource(sub)
        .namespace(pod_namespace(namespace))
        .name(pod);
    check(subject, &attributes, || Ok(NodeTarget::None))
}

/// Images live on nodes, outside any namespace: cluster-admin's.
fn check_images(subject: &Subject, verb: Verb, node: &str) -> Result<(), Status> {
    let mut attributes = Attributes::new(verb, "images");
    if !node.is_empty() {
        attributes = attributes.name(node);
    }
    check(subject, &attributes, || Ok(NodeTarget::None))
}

impl AgentProxy {
    pub(crate) fn stored<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<T, ApiError> {
        let stored = self
            .node
            .shared
            .table
            .read()
            .expect("table lock")
            .get(kind, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("{} \"{name}\" not found", kind.plural())))?;
        serde_json::from_slice(&stored.json)
            .map_err(|e| ApiError::Internal(format!("stored {kind} is unreadable: {e}")))
    }

    /// A connection to the agent running `namespace/pod`.
    async fn agent_for(&self, namespace: &str, pod: &str) -> Result<AgentClient<Channel>, Status> {
        let pod: Pod = self.stored(Kind::Pod, pod_namespace(namespace), pod)?;
        let node_name = pod.spec.node_name.clone().ok_or_else(|| {
            ApiError::FailedPrecondition(format!(
                "pod {} is not scheduled to a node yet",
                pod.metadata.name
            ))
        })?;
        self.agent_on(&node_name).await
    }

    /// A connection to the agent of node `node_name`.
    pub(crate) async fn agent_on(&self, node_name: &str) -> Result<AgentClient<Channel>, Status> {
        if node_name.is_empty() {
            return Err(Status::invalid_argument("node: Required value"));
        }
        let node: Node = self.stored(Kind::Node, "", node_name)?;
        let status = node.status.unwrap_or_default();
        let address = status
            .addresses
            .iter()
            .find(|a| a.type_ == "InternalIP")
            .map(|a| a.address.clone());
        let port = status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port);
        let (Some(address), Some(port)) = (address, port) else {
            return Err(ApiError::FailedPrecondition(format!(
                "node {node_name} does not say where its agent listens"
            ))
            .into());
        };
        let host = if address.contains(':') {
            format!("[{address}]")
        } else {
            address
        };
        // The agent serves only members' client certificates, and must itself present the
        // certificate of this very node.
        let tls = self
            .node
            .credentials
            .client_config(skiff_pki::tls::ServerCheck::Node(node_name.to_string()))
            .map_err(|e| Status::internal(e.to_string()))?;
        let channel = skiff_pki::tls::endpoint(&format!("{host}:{port}"))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .connect_with_connector(skiff_pki::tls::connector(tls))
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "cannot reach the agent of node {node_name} at {host}:{port}: {e}"
                ))
            })?;
        Ok(AgentClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Passes a response stream on.
fn relay<T: Send + 'static>(stream: Streaming<T>) -> BoxStream<T> {
    Box::pin(stream)
}

/// The caller's stream with its first message put back in front.
fn replay<T: Send + 'static>(
    first: T,
    rest: Streaming<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::once(async move { first }).chain(rest.filter_map(|m| async move { m.ok() }))
}

#[tonic::async_trait]
impl Agent for AgentProxy {
    type LogsStream = BoxStream<LogsChunk>;
    type ExecStream = BoxStream<ExecResponse>;
    type PortForwardStream = BoxStream<PortForwardResponse>;
    type ExportImageStream = BoxStream<ExportImageChunk>;

    async fn logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let subject = self.gate.subject(&request).await?;
        let request = request.into_inner();
        check_pod(&subject, Verb::Get, "log", &request.namespace, &request.pod)?;
        let mut agent = self.agent_for(&request.namespace, &request.pod).await?;
        let stream = agent.logs(request).await?.into_inner();
        Ok(Response::new(relay(stream)))
    }

    async fn exec(
        &self,
        request: Request<Streaming<ExecRequest>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let subject = self.gate.subject(&request).await?;
        let mut input = request.into_inner();
        let first = input
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the first exec message must name the pod"))?;
        let start = first
            .start
            .clone()
            .ok_or_else(|| Status::invalid_argument("the first exec message must name the pod"))?;
        check_pod(&subject, Verb::Create, "exec", &start.namespace, &start.pod)?;
        let mut agent = self.agent_for(&start.namespace, &start.pod).await?;
        let stream = agent.exec(replay(first, input)).await?.into_inner();
        Ok(Response::new(relay(stream)))
    }

    async fn port_forward(
        &self,
        request: Request<Streaming<PortForwardRequest>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let subject = self.gate.subject(&request).await?;
        let mut input = request.into_inner();
        let first = input.message().await?.ok_or_else(|| {
            Status::invalid_argument("the first message must name the pod and port")
        })?;
        check_pod(
            &subject,
            Verb::Create,
            "portforward",
            &first.namespace,
            &first.pod,
        )?;
        let mut agent = self.agent_for(&first.namespace, &first.pod).await?;
        let stream = agent.port_forward(replay(first, input)).await?.into_inner();
        Ok(Response::new(relay(stream)))
    }

    async fn import_image(
        &self,
        request: Request<Streaming<ImportImageRequest>>,
    ) -> Result<Response<ImportImageResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let mut input = request.into_inner();
        let first = input.message().await?.ok_or_else(|| {
            Status::invalid_argument("the first import message must name the node")
        })?;
        check_images(&subject, Verb::Create, &first.node)?;
        let mut agent = self.agent_on(&first.node).await?;
        agent.import_image(replay(first, input)).await
    }

    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let request = request.into_inner();
        check_images(&subject, Verb::List, &request.node)?;
        let mut agent = self.agent_on(&request.node).await?;
        agent.list_images(request).await
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let request = request.into_inner();
        check_images(&subject, Verb::Delete, &request.node)?;
        let mut agent = self.agent_on(&request.node).await?;
        agent.remove_image(request).await
    }

    /// Reading an image out of a node's store is getting it: cluster-admin's, as the other
    /// image calls.
    async fn export_image(
        &self,
        request: Request<ExportImageRequest>,
    ) -> Result<Response<Self::ExportImageStream>, Status> {
        let subject = self.gate.subject(&request).await?;
        let request = request.into_inner();
        check_images(&subject, Verb::Get, &request.node)?;
        let mut agent = self.agent_on(&request.node).await?;
        let stream = agent.export_image(request).await?.into_inner();
        Ok(Response::new(relay(stream)))
    }

    /// A node's figures cover every pod on it: for those who may read the node and list
    /// pods in every namespace (`skiff top` asks through the Metrics service instead).
    async fn usage(
        &self,
        request: Request<UsageRequest>,
    ) -> Result<Response<UsageResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        let request = request.into_inner();
        let node = Attributes::new(Verb::Get, "nodes").name(&request.node);
        check(&subject, &node, || Ok(NodeTarget::None))?;
        check(&subject, &Attributes::new(Verb::List, "pods"), || {
            Ok(NodeTarget::None)
        })?;
        let mut agent = self.agent_on(&request.node).await?;
        agent.usage(request).await
    }
}
