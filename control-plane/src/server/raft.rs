//! The internal Raft service: peer traffic in, and requests followers hand to the leader.

use std::sync::Arc;

use openraft::ServerState;
use serde::de::DeserializeOwned;
use skiff_api::proto::raft_server::Raft as RaftService;
use skiff_api::proto::{ClusterStatusRequest, Member, RaftPayload};
use tonic::{Request, Response, Status};

use crate::election::PreVoteRequest;
use crate::raft_node::{ControlPlane, member_address};
use crate::raft_transport::{AdminRequest, AdminResult, ProposeResult, ReadIndexResult};
use crate::raft_types::Command;
use crate::staging::{Digest32, StageChunk, StageError, StagingArea};
use crate::store::{decode, encode};

pub struct RaftServer {
    pub node: Arc<ControlPlane>,
    /// Large AppendEntries uploaded ahead by the leader (see `staging.rs`).
    pub staging: Arc<StagingArea>,
}

fn payload<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    decode(&request.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft payload: {e}")))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    Ok(Response::new(RaftPayload {
        data: encode(value),
    }))
}

pub fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

/// This node's own view, as reported in cluster status.
pub fn own_member(node: &ControlPlane) -> Member {
    let m = node.raft.metrics().borrow().clone();
    let address = member_address(
        m.membership_config.membership(),
        &node.initial_peers,
        node.id,
    )
    .unwrap_or_default();
    Member {
        id: node.id,
        address,
        voter: m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == node.id),
        healthy: true,
        state: state_name(m.state).to_string(),
        term: m.current_term,
        last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
        last_log_index: m.last_log_index.unwrap_or(0),
        error: String::new(),
        started_members: node.started_members(),
        member_ids: m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect(),
    }
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/AppendEntries")?;
        let result = self.node.raft.append_entries(payload(request)?).await;
        reply(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/Vote")?;
        if self.node.rejoin.is_active() {
            // A member that lost its data may have promised votes and entries it no longer
            // knows of: it grants nothing until it holds everything committed again.
            return Err(Status::unavailable(
                "this member is rejoining after losing its data and grants no votes yet",
            ));
        }
        let result = self.node.raft.vote(payload(request)?).await;
        reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/InstallSnapshot")?;
        let result = self.node.raft.install_snapshot(payload(request)?).await;
        reply(&result)
    }

    async fn propose(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/Propose")?;
        let commands: Vec<Command> = payload(request)?;
        let result: ProposeResult<Vec<_>> = self.node.propose_forwarded(commands).await;
        reply(&result)
    }

    async fn read_index(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/ReadIndex")?;
        let result: ReadIndexResult = self.node.read_index_local().await;
        reply(&result)
    }

    async fn node_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<Member>, Status> {
        super::require_member(&request, "Raft/NodeStatus")?;
        Ok(Response::new(own_member(&self.node)))
    }

    async fn stage(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/Stage")?;
        let chunk: StageChunk = payload(request)?;
        let result: Result<bool, StageError> = self.staging.put(chunk);
        reply(&result)
    }

    async fn append_staged(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/AppendStaged")?;
        let digest: Digest32 = payload(request)?;
        let data = self
            .staging
            .get(&digest)
            .map_err(|e| Status::not_found(e.to_string()))?;
        let append = decode(&data)
            .map_err(|e| Status::invalid_argument(format!("undecodable staged append: {e}")))?;
        let result = self.node.raft.append_entries(append).await;
        reply(&result)
    }

    async fn admin(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/Admin")?;
        let admin: AdminRequest = payload(request)?;
        let result: AdminResult = self.node.admin_local(admin).await;
        reply(&result)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        super::require_member(&request, "Raft/PreVote")?;
        let ask: PreVoteRequest = payload(request)?;
        reply(&self.node.elections.answer(&self.node, &ask).await)
    }
}
