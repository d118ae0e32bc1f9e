//! Cluster status and membership administration.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use skiff_api::proto::cluster_server::Cluster;
use skiff_api::proto::{
    AddLearnerRequest, ChangeMembershipRequest, ClusterStatusRequest, ClusterStatusResponse,
    CreateTokenRequest, CreateTokenResponse, DeleteTokenRequest, DeleteTokenResponse,
    JoinNodeRequest, JoinNodeResponse, ListTokensRequest, ListTokensResponse, Member,
    NodeHeartbeatRequest, NodeHeartbeatResponse, VersionRequest, VersionResponse,
};
use skiff_pki::{Attributes, NodeTarget, Verb};
use tonic::{Request, Response, Status};

use super::auth::Gate;
use super::raft::own_member;
use crate::error::ApiError;
use crate::raft_node::ControlPlane;
use crate::raft_transport::AdminRequest;
use crate::raft_types::Command;

pub struct ClusterServer {
    pub node: Arc<ControlPlane>,
    pub gate: Gate,
}

/// The largest CSR a joining agent may send (a real one is well under 1 KiB): the call is
/// open to anyone who can reach the port, before any proof is checked.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// How long a member may take to answer a status probe before it counts as unhealthy.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

impl ClusterServer {
    async fn probe(&self, id: u64, address: String, voter: bool) -> Member {
        if id == self.node.id {
            return own_member(&self.node);
        }
        let unhealthy = |error: String| Member {
            id,
            address: address.clone(),
            voter,
            healthy: false,
            state: "Unknown".into(),
            error,
            ..Member::default()
        };
        let mut client = match self.node.peers.client(&address) {
            Ok(c) => c,
            Err(e) => return unhealthy(e),
        };
        let mut request = Request::new(ClusterStatusRequest {});
        request.set_timeout(PROBE_TIMEOUT);
        match tokio::time::timeout(PROBE_TIMEOUT, client.node_status(request)).await {
            Ok(Ok(response)) => {
                let mut member = response.into_inner();
                member.voter = voter;
                member
            }
            Ok(Err(status)) => unhealthy(format!("{}: {}", status.code(), status.message())),
            Err(_) => unhealthy(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
        }
    }

    /// The key this node name was first claimed with (sha256 of its public key), read after
    /// a barrier so every claim committed before is seen.
    async fn node_key_claim(&self, key: &str) -> Result<Option<Vec<u8>>, Status> {
        self.node.read_barrier().await?;
        Ok(self
            .node
            .shared
            .table
            .read()
            .expect("table lock")
            .system(key)
            .map(<[u8]>::to_vec))
    }

    pub(crate) async fn status(&self) -> ClusterStatusResponse {
        let metrics = self.node.raft.metrics().borrow().clone();
        let probes = self
            .node
            .members()
            .into_iter()
            .map(|(id, address, voter)| self.probe(id, address, voter));
        ClusterStatusResponse {
            node_id: self.node.id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            last_applied: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            members: join_all(probes).await,
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterServer {
    async fn status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.gate
            .allow(&request, Attributes::new(Verb::Get, "members"))
            .await?;
        Ok(Response::new(ClusterServer::status(self).await))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.gate
            .allow(&request, Attributes::new(Verb::Create, "members"))
            .await?;
        let AddLearnerRequest { id, address } = request.into_inner();
        if address.parse::<std::net::SocketAddr>().is_err() && !address.contains(':') {
            return Err(ApiError::InvalidArgument(format!(
                "address: Invalid value: {address:?}: must be HOST:PORT"
            ))
            .into());
        }
        self.node
            .admin(AdminRequest::AddLearner { id, address })
            .await?;
        // Report the new membership even when this node is a follower yet to see it (best
        // effort: the change itself has succeeded).
        let _ = self.node.read_barrier().await;
        Ok(Response::new(ClusterServer::status(self).await))
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.gate
            .allow(&request, Attributes::new(Verb::Update, "members"))
            .await?;
        let voters = request.into_inner().voters.into_iter().collect();
        self.node
            .admin(AdminRequest::ChangeMembership { voters })
            .await?;
        let _ = self.node.read_barrier().await;
        Ok(Response::new(ClusterServer::status(self).await))
    }

    /// Needs no certificate (the agent has none yet): the proof over the CSR shows the
    /// caller holds the cluster token.
    async fn join_node(
        &self,
        request: Request<JoinNodeRequest>,
    ) -> Result<Response<JoinNodeResponse>, Status> {
        let remote = request.remote_addr();
        let JoinNodeRequest {
            node_name,
            csr_pem,
            proof,
            node_ip,
        } = request.into_inner();
        if node_name.is_empty() {
            return Err(Status::invalid_argument("node_name: Required value"));
        }
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(Status::invalid_argument(format!(
                "csr_pem: Too long: must have at most {MAX_CSR_BYTES} bytes"
            )));
        }
        let token = &self.node.credentials.token;
        let der = skiff_pki::csr_der(&csr_pem)
            .map_err(|e| Status::invalid_argument(format!("csr_pem: {e}")))?;
        if !skiff_pki::verify_join_proof(token, &der, &proof) {
            return Err(Status::unauthenticated(
                "the join proof does not match this cluster's token",
            ));
        }
        let ip: std::net::IpAddr = if node_ip.is_empty() {
            remote
                .map(|a| a.ip())
                .ok_or_else(|| Status::invalid_argument("node_ip: Required value"))?
        } else {
            node_ip.parse().map_err(|_| {
                Status::invalid_argument(format!("node_ip: Invalid value: {node_ip:?}"))
            })?
        };
        // Signing first checks the CSR: its self-signature and the node it names.
        let certificate_pem = skiff_pki::sign_node_csr(token, &csr_pem, &node_name, &[ip])
            .map_err(|e| Status::invalid_argument(format!("csr_pem: {e}")))?;
        let fingerprint = skiff_pki::csr_key_fingerprint(&csr_pem)
            .map_err(|e| Status::invalid_argument(format!("csr_pem: {e}")))?
            .into_bytes();
        // A node name belongs to the first key that joined with it.
        let key = format!("node/{node_name}/key");
        let taken = || {
            Status::permission_denied(format!(
                "node name {node_name:?} is already claimed by another key"
            ))
        };
        match self.node_key_claim(&key).await? {
            Some(claimed) if claimed == fingerprint => {}
            Some(_) => return Err(taken()),
            None => {
                // Create-if-absent: of two agents racing for one name, one wins.
                let claimed = self
                    .node
                    .propose(Command::CreateSystem {
                        key: key.clone(),
                        value: fingerprint.clone(),
                    })
                    .await;
                match claimed {
                    Ok(_) => {}
                    Err(ApiError::AlreadyExists(_)) => {
                        // The same key may have won a race with itself (a retried join).
                        if self.node_key_claim(&key).await? != Some(fingerprint) {
                            return Err(taken());
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        tracing::info!(node = %node_name, %ip, "node joined");
        Ok(Response::new(JoinNodeResponse {
            certificate_pem,
            ca_pem: self.node.credentials.ca_pem.clone(),
        }))
    }

    async fn node_heartbeat(
        &self,
        request: Request<NodeHeartbeatRequest>,
    ) -> Result<Response<NodeHeartbeatResponse>, Status> {
        let node_name = request.get_ref().node_name.clone();
        if node_name.is_empty() {
            return Err(ApiError::InvalidArgument("node_name: Required value".into()).into());
        }
        // A heartbeat keeps a node Ready: only the node itself (or a cluster-admin) may.
        self.gate
            .authorize(
                &request,
                Attributes::new(Verb::Update, "nodes")
                    .subresource("status")
                    .name(&node_name),
                || {
                    Ok(NodeTarget::Node {
                        pod_cidr_changes: false,
                    })
                },
            )
            .await?;
        self.node
            .admin(AdminRequest::NodeHeartbeat { node_name })
            .await?;
        Ok(Response::new(NodeHeartbeatResponse {}))
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        Ok(Response::new(
            super::tokens::create(&self.node, &subject, request.into_inner()).await?,
        ))
    }

    async fn list_tokens(
        &self,
        request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        Ok(Response::new(
            super::tokens::list(&self.node, &subject, request.into_inner()).await?,
        ))
    }

    async fn version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        self.gate.subject(&request).await?;
        let version = env!("CARGO_PKG_VERSION");
        Ok(Response::new(VersionResponse {
            version: version.into(),
            git_version: format!("v{version}"),
        }))
    }

    async fn delete_token(
        &self,
        request: Request<DeleteTokenRequest>,
    ) -> Result<Response<DeleteTokenResponse>, Status> {
        let subject = self.gate.subject(&request).await?;
        super::tokens::delete(&self.node, &subject, request.into_inner()).await?;
        Ok(Response::new(DeleteTokenResponse {}))
    }
}
