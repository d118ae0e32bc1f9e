//! One control-plane node: the Raft instance, its store, and the paths every request takes
//! to the leader (writes, read barriers, membership changes) with a bounded wait.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, ServerState};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::network::{
    AdminRequest, AdminResult, ForwardError, PeerPool, ProposeResult, RaftMethod, ReadIndexResult,
    call,
};
use crate::raft_types::{Applied, Command, NodeId, Raft};
use crate::store::SharedState;

pub struct ControlPlane {
    pub id: NodeId,
    pub raft: Raft,
    pub shared: Arc<SharedState>,
    pub peers: Arc<PeerPool>,
    /// How long a request may wait for a leader and a quorum before it is Unavailable.
    pub request_timeout: Duration,
    /// The addresses given with --peers, used until membership names a node's address.
    pub initial_peers: BTreeMap<NodeId, String>,
}

fn unavailable(what: &str, timeout: Duration) -> ApiError {
    ApiError::Unavailable(format!(
        "no quorum: {what} did not complete within {} ms (is a majority of control-plane nodes up?)",
        timeout.as_millis()
    ))
}

fn leader_of(f: &ForwardToLeader<NodeId, BasicNode>) -> Option<(NodeId, String)> {
    match (f.leader_id, &f.leader_node) {
        (Some(id), Some(node)) => Some((id, node.addr.clone())),
        _ => None,
    }
}

impl ControlPlane {
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Waits until some node is known as leader (or the deadline passes).
    async fn wait_for_leader(&self, deadline: Instant) {
        let mut metrics = self.raft.metrics();
        let _ = tokio::time::timeout_at(deadline, metrics.wait_for(|m| m.current_leader.is_some()))
            .await;
    }

    fn leader_address(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let address = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .or_else(|| self.initial_peers.get(&leader).cloned())?;
        Some((leader, address))
    }

    /// Replicates a command and returns what applying it produced. Followers hand the
    /// command to the leader; without a quorum the caller gets Unavailable in bounded time.
    pub async fn propose(&self, command: Command) -> Result<Applied, ApiError> {
        let deadline = Instant::now() + self.request_timeout;
        let result = tokio::time::timeout_at(deadline, self.propose_until(command, deadline)).await;
        match result {
            Ok(r) => r?.map_err(ApiError::from),
            Err(_) => Err(unavailable("the write", self.request_timeout)),
        }
    }

    async fn propose_until(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<crate::raft_types::CommandResponse, ApiError> {
        loop {
            match self.propose_local(command.clone()).await {
                Ok(response) => return Ok(response),
                Err(ForwardError::NotLeader { leader }) => {
                    let leader = leader.or_else(|| self.leader_address());
                    let Some((leader_id, address)) = leader.filter(|(id, _)| *id != self.id) else {
                        self.wait_for_leader(deadline).await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    match self.forward_propose(&address, &command, deadline).await {
                        Ok(Ok(response)) => return Ok(response),
                        Ok(Err(ForwardError::Invalid(m))) => {
                            return Err(ApiError::InvalidArgument(m));
                        }
                        // The leader moved or is unreachable: look again shortly.
                        Ok(Err(_)) | Err(_) => {
                            tracing::debug!(leader_id, "forwarding to leader failed; retrying");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                Err(ForwardError::Unavailable(m)) => return Err(ApiError::Unavailable(m)),
                Err(ForwardError::Invalid(m)) => return Err(ApiError::InvalidArgument(m)),
            }
        }
    }

    async fn forward_propose(
        &self,
        address: &str,
        command: &Command,
        deadline: Instant,
    ) -> Result<ProposeResult, tonic::Status> {
        let mut client = self
            .peers
            .client(address)
            .map_err(tonic::Status::unavailable)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        call(&mut client, RaftMethod::Propose, command, remaining).await
    }

    /// Proposes on this node if it leads. Used by the forwarding RPC too.
    pub async fn propose_local(&self, command: Command) -> ProposeResult {
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader {
                    leader: leader_of(&f),
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ForwardError::Invalid(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => {
                Err(ForwardError::Unavailable(format!("raft stopped: {e}")))
            }
        }
    }

    /// Makes the next local read linearizable: the leader confirms its leadership with a
    /// quorum; a follower asks the leader for that index and waits until it applied it.
    pub async fn read_barrier(&self) -> Result<(), ApiError> {
        let deadline = Instant::now() + self.request_timeout;
        let result = tokio::time::timeout_at(deadline, async {
            loop {
                let index = match self.read_index_local().await {
                    Ok(index) => index,
                    Err(ForwardError::NotLeader { leader }) => {
                        let leader = leader.or_else(|| self.leader_address());
                        let Some((_, address)) = leader.filter(|(id, _)| *id != self.id) else {
                            self.wait_for_leader(deadline).await;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        let mut client = match self.peers.client(&address) {
                            Ok(c) => c,
                            Err(e) => return Err(ApiError::Unavailable(e)),
                        };
                        match call::<_, ReadIndexResult>(
                            &mut client,
                            RaftMethod::ReadIndex,
                            &(),
                            remaining,
                        )
                        .await
                        {
                            Ok(Ok(index)) => index,
                            Ok(Err(_)) | Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        }
                    }
                    Err(e) => return Err(ApiError::Unavailable(e.to_string())),
                };
                self.shared.wait_applied(index).await;
                return Ok(());
            }
        })
        .await;
        result.unwrap_or_else(|_| Err(unavailable("the linearizable read", self.request_timeout)))
    }

    /// The leader's read index (its commit point, confirmed by a quorum).
    pub async fn read_index_local(&self) -> ReadIndexResult {
        match self.raft.ensure_linearizable().await {
            Ok(read_log_id) => Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader {
                    leader: leader_of(&f),
                })
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(ForwardError::Unavailable(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => {
                Err(ForwardError::Unavailable(format!("raft stopped: {e}")))
            }
        }
    }

    /// Adds a learner or sets the voters, on the leader (forwarded from followers).
    pub async fn admin(&self, request: AdminRequest) -> Result<(), ApiError> {
        // Membership changes wait for the new member to catch up: allow more time.
        let timeout = self.request_timeout * 4;
        let deadline = Instant::now() + timeout;
        let result = tokio::time::timeout_at(deadline, async {
            loop {
                match self.admin_local(request.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(ForwardError::NotLeader { leader }) => {
                        let leader = leader.or_else(|| self.leader_address());
                        let Some((_, address)) = leader.filter(|(id, _)| *id != self.id) else {
                            self.wait_for_leader(deadline).await;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        let mut client =
                            self.peers.client(&address).map_err(ApiError::Unavailable)?;
                        match call::<_, AdminResult>(
                            &mut client,
                            RaftMethod::Admin,
                            &request,
                            remaining,
                        )
                        .await
                        {
                            Ok(Ok(())) => return Ok(()),
                            Ok(Err(ForwardError::Invalid(m))) => {
                                return Err(ApiError::InvalidArgument(m));
                            }
                            Ok(Err(_)) | Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50)).await
                            }
                        }
                    }
                    Err(ForwardError::Invalid(m)) => return Err(ApiError::InvalidArgument(m)),
                    Err(ForwardError::Unavailable(m)) => return Err(ApiError::Unavailable(m)),
                }
            }
        })
        .await;
        result.unwrap_or_else(|_| Err(unavailable("the membership change", timeout)))
    }

    pub async fn admin_local(&self, request: AdminRequest) -> AdminResult {
        let result = match request {
            AdminRequest::AddLearner { id, address } => self
                .raft
                .add_learner(id, BasicNode::new(address), true)
                .await
                .map(|_| ()),
            AdminRequest::ChangeMembership { voters } => {
                if voters.is_empty() {
                    return Err(ForwardError::Invalid(
                        "voters: must name at least one node".into(),
                    ));
                }
                self.raft.change_membership(voters, false).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader {
                    leader: leader_of(&f),
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ForwardError::Invalid(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => {
                Err(ForwardError::Unavailable(format!("raft stopped: {e}")))
            }
        }
    }

    /// Every node named by the current membership, with its address and whether it votes.
    pub fn members(&self) -> Vec<(NodeId, String, bool)> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut members: Vec<_> = membership
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone(), voters.contains(id)))
            .collect();
        if members.is_empty() {
            members = self
                .initial_peers
                .iter()
                .map(|(id, addr)| (*id, addr.clone(), true))
                .collect();
        }
        members
    }
}
