//! Raft's transport: openraft messages encoded with bincode inside a gRPC call, on the
//! same port as the public API. Also the messages followers send to the leader.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
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
use tonic::transport::Channel;

use crate::raft_types::{CommandResult, NodeId, TypeConfig};
use crate::staging::{INLINE_APPEND_BYTES, UploadState, Uploads, digest};
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
    /// The write may have been applied: it reached a leader, and then the answer was lost
    /// or came too late.
    #[error("{0}")]
    Unknown(String),
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

/// One lazily connected channel per peer address, shared by Raft and forwarding. Members
/// dial each other over TLS with their member certificate, and accept only a member's
/// certificate from the server ([`ServerCheck::Member`]).
pub struct PeerPool {
    clients: Mutex<HashMap<String, RaftClient<Channel>>>,
    tls: Arc<rustls::ClientConfig>,
}

impl PeerPool {
    /// `tls`: the member's client config (its certificate, the cluster CA, members only).
    pub fn new(tls: Arc<rustls::ClientConfig>) -> PeerPool {
        PeerPool {
            clients: Mutex::default(),
            tls,
        }
    }

    /// A pool of its own (separate connections) with the same credentials.
    pub fn sibling(&self) -> PeerPool {
        PeerPool::new(self.tls.clone())
    }

    /// The client config members dial each other with.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    pub fn client(&self, address: &str) -> Result<RaftClient<Channel>, String> {
        let mut clients = self.clients.lock().expect("peer pool lock");
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let endpoint = skiff_pki::tls::endpoint(address)
            .map_err(|e| format!("bad peer address {address:?}: {e}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .initial_stream_window_size(crate::STREAM_WINDOW)
            .initial_connection_window_size(crate::CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let channel =
            endpoint.connect_with_connector_lazy(skiff_pki::tls::connector(self.tls.clone()));
        let client = RaftClient::new(channel)
            .max_decoding_message_size(256 * 1024 * 1024)
            .max_encoding_message_size(256 * 1024 * 1024);
        clients.insert(address.to_string(), client.clone());
        Ok(client)
    }

    /// After a call to `address` failed with `status`: when no answer came (a timeout, a
    /// dead or reset connection), the next [`PeerPool::client`] dials afresh. A connection
    /// that carried data while its peer was cut off sits in TCP's retransmission back-off
    /// after the link heals (RTO doubling: seconds), and every later call on it would wait
    /// for the next retransmission; a new connection does not. Calls still under way on the
    /// old one finish on it. True when the connection was dropped.
    pub fn after_failure(&self, address: &str, status: &tonic::Status) -> bool {
        let dropped = unanswered(status);
        if dropped {
            self.clients.lock().expect("peer pool lock").remove(address);
        }
        dropped
    }
}

/// Whether a failed call may have got no answer from its peer at all (as opposed to an
/// answer that refused it), so its connection is suspect.
fn unanswered(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unavailable
            | tonic::Code::Unknown
    )
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
        RaftMethod::Stage => client.stage(request).await,
        RaftMethod::AppendStaged => client.append_staged(request).await,
        RaftMethod::PreVote => client.pre_vote(request).await,
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
    Stage,
    AppendStaged,
    PreVote,
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
    /// A second connection per peer for bulk transfers (staged appends, snapshots), so
    /// heartbeats and votes never wait behind them.
    bulk: std::sync::Arc<PeerPool>,
    uploads: std::sync::Arc<Uploads>,
}

impl NetworkFactory {
    pub fn new(pool: std::sync::Arc<PeerPool>) -> NetworkFactory {
        NetworkFactory {
            bulk: std::sync::Arc::new(pool.sibling()),
            pool,
            uploads: Default::default(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            target,
            address: node.addr.clone(),
            client: self.pool.client(&node.addr),
            bulk_client: self.bulk.client(&node.addr),
            pool: self.pool.clone(),
            bulk: self.bulk.clone(),
            uploads: self.uploads.clone(),
        }
    }
}

pub struct PeerNetwork {
    target: NodeId,
    address: String,
    client: Result<RaftClient<Channel>, String>,
    bulk_client: Result<RaftClient<Channel>, String>,
    pool: std::sync::Arc<PeerPool>,
    bulk: std::sync::Arc<PeerPool>,
    uploads: std::sync::Arc<Uploads>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

fn unreachable<E: std::error::Error>(e: &str) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e.to_string())))
}

impl PeerNetwork {
    async fn send<Req, Resp, E>(
        &mut self,
        method: RaftMethod,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let bulk = matches!(method, RaftMethod::InstallSnapshot);
        self.send_raw(method, encode(request), option.hard_ttl(), bulk)
            .await
    }

    async fn send_raw<Resp, E>(
        &mut self,
        method: RaftMethod,
        data: Vec<u8>,
        timeout: Duration,
        bulk: bool,
    ) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let (slot, pool) = if bulk {
            (&mut self.bulk_client, &self.bulk)
        } else {
            (&mut self.client, &self.pool)
        };
        let client = match slot {
            Ok(c) => c,
            Err(e) => return Err(unreachable(e)),
        };
        let raw = match call_raw(client, method, data, timeout).await {
            Ok(raw) => raw,
            Err(status) => {
                if pool.after_failure(&self.address, &status) {
                    *slot = pool.client(&self.address);
                }
                return Err(status_to_rpc_error(&status));
            }
        };
        let result: Result<Resp, RaftError<NodeId, E>> = decode(&raw).map_err(|e| {
            RPCError::Network(NetworkError::new(&AnyError::error(format!(
                "undecodable raft response: {e}"
            ))))
        })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// A large AppendEntries: several entries are split (openraft sends fewer at a time
    /// when told the payload is too large); one large entry is staged out of band, and
    /// until the follower holds it, a heartbeat keeps the follower's leader lease fresh.
    async fn append_large(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: &RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        if rpc.entries.len() > 1 {
            let mut fit = 0;
            let mut bytes = 0;
            for entry in &rpc.entries {
                bytes += entry_size_hint(entry);
                if fit > 0 && bytes > INLINE_APPEND_BYTES {
                    break;
                }
                fit += 1;
            }
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit as u64),
            ));
        }
        // Named by the entry's log id (one entry per log id within a term): nothing large
        // is hashed or encoded on this call's clock.
        let Some(entry) = rpc.entries.first() else {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(1),
            ));
        };
        let digest = digest(&encode(&(&rpc.vote, entry.log_id)));
        let (vote, prev_log_id, leader_commit) = (rpc.vote, rpc.prev_log_id, rpc.leader_commit);
        let mut state = self
            .uploads
            .ensure(&self.bulk, &self.address, digest, move || encode(&rpc));
        // Wait for the upload a part of this RPC's time; a heartbeat needs the rest.
        let _ = tokio::time::timeout(
            option.hard_ttl() / 4,
            state.wait_for(|s| *s != UploadState::Running),
        )
        .await;
        let done = *state.borrow() == UploadState::Done;
        if done {
            let result: RpcResult<AppendEntriesResponse<NodeId>> = self
                .send_raw(
                    RaftMethod::AppendStaged,
                    encode(&digest),
                    option.hard_ttl(),
                    false,
                )
                .await;
            match result {
                Err(RPCError::Network(_)) => {
                    // The follower lost it (restart, or room made for another): upload again.
                    self.uploads.forget(&self.address, digest);
                }
                other => return other,
            }
        }
        let heartbeat = AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id,
            leader_commit,
            entries: Vec::new(),
        };
        let answer: AppendEntriesResponse<NodeId> = self
            .send_raw(
                RaftMethod::AppendEntries,
                encode(&heartbeat),
                option.hard_ttl(),
                false,
            )
            .await?;
        Ok(match answer {
            // The follower matches up to prev_log_id: exactly what openraft should hear
            // (it sends the entry again, by then perhaps staged).
            AppendEntriesResponse::Success => AppendEntriesResponse::PartialSuccess(prev_log_id),
            other => other,
        })
    }
}

/// About how many bytes an entry takes on the wire, without encoding it.
fn entry_size_hint(entry: &crate::raft_types::Entry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(command) => command.size_hint(),
        _ => 256,
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
        if rpc.entries.iter().map(entry_size_hint).sum::<usize>() > INLINE_APPEND_BYTES {
            return self.append_large(rpc, &option).await;
        }
        self.send_raw(
            RaftMethod::AppendEntries,
            encode(&rpc),
            option.hard_ttl(),
            false,
        )
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PeerPool {
        let token = skiff_pki::ClusterToken::parse(&skiff_pki::generate_token()).unwrap();
        let tls = skiff_pki::tls::client_config(
            &token.ca_cert_pem(),
            None,
            skiff_pki::tls::ServerCheck::Member,
        )
        .unwrap();
        PeerPool::new(tls)
    }

    fn pooled(pool: &PeerPool, address: &str) -> bool {
        pool.clients.lock().unwrap().contains_key(address)
    }

    #[tokio::test]
    async fn a_call_that_got_no_answer_makes_the_next_call_dial_a_new_connection() {
        let pool = pool();
        for status in [
            tonic::Status::deadline_exceeded("no answer"),
            tonic::Status::cancelled("Timeout expired"),
            tonic::Status::unavailable("connection reset"),
            tonic::Status::unknown("transport error"),
        ] {
            pool.client("127.0.0.1:1").unwrap();
            assert!(pooled(&pool, "127.0.0.1:1"));
            pool.after_failure("127.0.0.1:1", &status);
            assert!(!pooled(&pool, "127.0.0.1:1"), "{status:?}");
        }
    }

    #[tokio::test]
    async fn a_call_the_peer_answered_with_a_refusal_keeps_its_connection() {
        let pool = pool();
        pool.client("127.0.0.1:1").unwrap();
        pool.client("127.0.0.1:2").unwrap();
        pool.after_failure(
            "127.0.0.1:1",
            &tonic::Status::permission_denied("not a member"),
        );
        pool.after_failure(
            "127.0.0.1:1",
            &tonic::Status::invalid_argument("undecodable"),
        );
        assert!(pooled(&pool, "127.0.0.1:1"));
        // Only the failed peer's connection is renewed.
        pool.after_failure(
            "127.0.0.1:1",
            &tonic::Status::deadline_exceeded("no answer"),
        );
        assert!(pooled(&pool, "127.0.0.1:2"));
    }
}
