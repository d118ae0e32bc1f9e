//! Raft's transport: openraft messages encoded with bincode inside a gRPC call, on the
//! same port as the public API. Also the messages followers send to the leader.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use skiff_api::proto::RaftPayload;
use skiff_api::proto::raft_client::RaftClient;
use tonic::transport::{Channel, Endpoint};

use crate::raft_types::{CommandResult, NodeId, TypeConfig};
use crate::store::{decode, encode};

/// Why the leader did not take a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, String)> },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
}

/// What a proposal (or a forwarded batch of them) came to.
pub type ProposeResult<T = CommandResult> = Result<T, ForwardError>;
pub type ReadIndexResult = Result<u64, ForwardError>;
pub type AdminResult = Result<(), ForwardError>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminRequest {
    AddLearner {
        id: NodeId,
        address: String,
    },
    ChangeMembership {
        voters: BTreeSet<NodeId>,
    },
    /// A node agent's heartbeat, recorded in the leader's memory.
    NodeHeartbeat {
        node_name: String,
    },
}

/// One lazily connected channel per peer address, shared by Raft and forwarding.
#[derive(Default)]
pub struct PeerPool {
    clients: Mutex<HashMap<String, RaftClient<Channel>>>,
}

impl PeerPool {
    pub fn client(&self, address: &str) -> Result<RaftClient<Channel>, String> {
        let mut clients = self.clients.lock().expect("peer pool lock");
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("bad peer address {address:?}: {e}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let client = RaftClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(256 * 1024 * 1024)
            .max_encoding_message_size(256 * 1024 * 1024);
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }
}

/// Sends a bincode payload through one of the Raft service's methods.
pub async fn call_raw(
    client: &mut RaftClient<Channel>,
    method: RaftMethod,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, tonic::Status> {
    let mut request = tonic::Request::new(RaftPayload { data: payload });
    request.set_timeout(timeout);
    let response = match method {
        RaftMethod::AppendEntries => client.append_entries(request).await,
        RaftMethod::Vote => client.vote(request).await,
        RaftMethod::InstallSnapshot => client.install_snapshot(request).await,
        RaftMethod::Propose => client.propose(request).await,
        RaftMethod::ReadIndex => client.read_index(request).await,
        RaftMethod::Admin => client.admin(request).await,
    }?;
    Ok(response.into_inner().data)
}

#[derive(Debug, Clone, Copy)]
pub enum RaftMethod {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Propose,
    ReadIndex,
    Admin,
}

/// Typed call: encode the request, decode the response.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    client: &mut RaftClient<Channel>,
    method: RaftMethod,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, tonic::Status> {
    let data = call_raw(client, method, encode(request), timeout).await?;
    decode(&data).map_err(|e| tonic::Status::internal(format!("undecodable raft response: {e}")))
}

pub struct NetworkFactory {
    pool: std::sync::Arc<PeerPool>,
}

impl NetworkFactory {
    pub fn new(pool: std::sync::Arc<PeerPool>) -> NetworkFactory {
        NetworkFactory { pool }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            target,
            client: self.pool.client(&node.addr),
        }
    }
}

pub struct PeerNetwork {
    target: NodeId,
    client: Result<RaftClient<Channel>, String>,
}

impl PeerNetwork {
    async fn send<Req, Resp, E>(
        &mut self,
        method: RaftMethod,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(c) => c,
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::other(e.clone()),
                )));
            }
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            call(client, method, request, option.hard_ttl())
                .await
                .map_err(|status| status_to_rpc_error(&status))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Connection failures are `Unreachable` so openraft backs off instead of hammering.
fn status_to_rpc_error<E: std::error::Error>(
    status: &tonic::Status,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    let any = AnyError::error(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => {
            RPCError::Unreachable(Unreachable::new(&any))
        }
        _ => RPCError::Network(NetworkError::new(&any)),
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send(RaftMethod::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.send(RaftMethod::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send(RaftMethod::Vote, &rpc, &option).await
    }
}
