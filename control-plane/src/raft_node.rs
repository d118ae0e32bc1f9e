//! One control-plane node: the Raft instance, its store, and the paths every request takes
//! to the leader (writes, read barriers, membership changes) with a bounded wait.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, ServerState};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use skiff_api::Kind;

use crate::error::ApiError;
use crate::raft_transport::{
    AdminRequest, AdminResult, ForwardError, PeerPool, ProposeResult, RaftMethod, ReadIndexResult,
    call,
};
use crate::raft_types::{Applied, Command, CommandResult, NodeId, Raft};
use crate::store::SharedState;

/// A command waiting for its batch, and where its result goes.
pub type Proposal = (Command, oneshot::Sender<ProposeResult>);

pub struct ControlPlane {
    pub id: NodeId,
    /// Feeds this node's batcher of Raft writes, used while it leads.
    pub proposals: mpsc::Sender<Proposal>,
    /// Feeds the batcher that hands commands to the leader, used while it follows.
    pub forwards: mpsc::Sender<Proposal>,
    pub raft: Raft,
    pub shared: Arc<SharedState>,
    pub peers: Arc<PeerPool>,
    /// How long a request may wait for a leader and a quorum before it is Unavailable.
    pub request_timeout: Duration,
    /// The addresses given with --peers, used until membership names a node's address.
    pub initial_peers: BTreeMap<NodeId, String>,
    /// When each node agent last reported in, as this node saw it while leading. Only the
    /// leader's copy matters; it is memory only, so heartbeats cost no Raft writes.
    pub heartbeats: Mutex<HashMap<String, Instant>>,
    /// Up while this member, having lost its data, catches up (no votes, no elections).
    pub rejoin: crate::bootstrap::RejoinGuard,
    /// Pre-vote and the elections it starts (openraft's own election timer is off).
    pub elections: crate::election::Elections,
    /// The cluster token, the CA and this member's certificate.
    pub credentials: Arc<crate::credentials::MemberCredentials>,
}

fn unavailable(what: &str, timeout: Duration) -> ApiError {
    ApiError::Unavailable(format!(
        "no quorum: {what} did not complete within {} ms (is a majority of control-plane nodes up?)",
        timeout.as_millis()
    ))
}

/// Member `id`'s address: as the membership names it, else as --peers gave it.
pub fn member_address(
    membership: &openraft::Membership<NodeId, BasicNode>,
    initial_peers: &BTreeMap<NodeId, String>,
    id: NodeId,
) -> Option<String> {
    membership
        .get_node(&id)
        .map(|n| n.addr.clone())
        .or_else(|| initial_peers.get(&id).cloned())
}

/// The current leader and its address, as this node knows them.
fn known_leader(raft: &Raft, initial_peers: &BTreeMap<NodeId, String>) -> Option<(NodeId, String)> {
    let metrics = raft.metrics().borrow().clone();
    let leader = metrics.current_leader?;
    let address = member_address(
        metrics.membership_config.membership(),
        initial_peers,
        leader,
    )?;
    Some((leader, address))
}

/// A forwarding failure as the API reports it.
fn forward_to_api(e: ForwardError) -> ApiError {
    match e {
        ForwardError::NotLeader { .. } => ApiError::Unavailable(e.to_string()),
        ForwardError::Unavailable(m) => ApiError::Unavailable(m),
        ForwardError::Unknown(m) => ApiError::Unknown(m),
        ForwardError::Invalid(m) => ApiError::InvalidArgument(m),
        ForwardError::NotFound(m) => ApiError::NotFound(m),
    }
}

/// How a failed Raft write (client write or membership change) looks to a forwarder.
fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ForwardError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardError::NotLeader {
            leader: leader_of(&f),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ForwardError::Invalid(e.to_string())
        }
        RaftError::Fatal(e) => ForwardError::Unknown(format!("raft stopped: {e}")),
    }
}

fn leader_of(f: &ForwardToLeader<NodeId, BasicNode>) -> Option<(NodeId, String)> {
    match (f.leader_id, &f.leader_node) {
        (Some(id), Some(node)) => Some((id, node.addr.clone())),
        _ => None,
    }
}

impl ControlPlane {
    /// The members the replicated state records as having held data.
    pub fn started_members(&self) -> Vec<NodeId> {
        let table = self.shared.table.read().expect("table lock");
        table
            .system_prefixed(crate::bootstrap::STARTED_PREFIX)
            .filter_map(|(key, _)| crate::bootstrap::started_id(key))
            .collect()
    }

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
        known_leader(&self.raft, &self.initial_peers)
    }

    /// Replicates a command and returns what applying it produced. Followers hand the
    /// command to the leader; without a quorum the caller gets Unavailable in bounded time.
    pub async fn propose(&self, command: Command) -> Result<Applied, ApiError> {
        let deadline = Instant::now() + self.request_timeout;
        // Whether an attempt may have reached a leader when the deadline struck.
        let handed = std::sync::atomic::AtomicBool::new(false);
        let result =
            tokio::time::timeout_at(deadline, self.propose_until(command, deadline, &handed)).await;
        match result {
            Ok(r) => r?.map_err(ApiError::from),
            Err(_) if handed.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(ApiError::Unknown(format!(
                    "the write did not complete within {} ms",
                    self.request_timeout.as_millis()
                )))
            }
            Err(_) => Err(unavailable("the write", self.request_timeout)),
        }
    }

    async fn propose_until(
        &self,
        command: Command,
        deadline: Instant,
        handed: &std::sync::atomic::AtomicBool,
    ) -> Result<CommandResult, ApiError> {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            let queue = if self.is_leader() {
                &self.proposals
            } else if self.leader_address().is_some_and(|(id, _)| id != self.id) {
                &self.forwards
            } else {
                self.wait_for_leader(deadline).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            handed.store(true, SeqCst);
            match enqueue(queue, command.clone()).await {
                Ok(result) => return Ok(result),
                // Leadership moved, or the leader is unreachable; the command was not
                // appended: look again shortly.
                Err(ForwardError::NotLeader { .. }) => {
                    handed.store(false, SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(forward_to_api(e)),
            }
        }
    }

    /// Replicates a command only if this node leads: the controllers' writes, which must
    /// never be carried out by a newer leader on the strength of this node's stale view.
    pub async fn propose_as_leader(&self, command: Command) -> Result<Applied, ApiError> {
        if !self.is_leader() {
            return Err(ApiError::Unavailable("this node no longer leads".into()));
        }
        match tokio::time::timeout(self.request_timeout, enqueue(&self.proposals, command)).await {
            Ok(Ok(result)) => result.map_err(ApiError::from),
            Ok(Err(ForwardError::NotLeader { .. })) => {
                Err(ApiError::Unavailable("this node no longer leads".into()))
            }
            Ok(Err(e)) => Err(forward_to_api(e)),
            Err(_) => Err(ApiError::Unknown(format!(
                "the write did not complete within {} ms",
                self.request_timeout.as_millis()
            ))),
        }
    }

    /// Proposes commands forwarded by a follower, if this node leads; batched with
    /// everything else proposed here.
    pub async fn propose_forwarded(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<CommandResult>, ForwardError> {
        if !self.is_leader() {
            return Err(ForwardError::NotLeader {
                leader: self.leader_address(),
            });
        }
        let pending: Vec<_> = commands
            .into_iter()
            .map(|c| enqueue(&self.proposals, c))
            .collect();
        futures::future::join_all(pending)
            .await
            .into_iter()
            .collect()
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
                            Ok(Err(_)) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                            Err(status) => {
                                self.peers.after_failure(&address, &status);
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

    /// Adds a learner, sets the voters or records a heartbeat, on the leader (forwarded
    /// from followers).
    pub async fn admin(&self, request: AdminRequest) -> Result<(), ApiError> {
        let timeout = match request {
            // Membership changes wait for the new member to catch up: allow more time.
            AdminRequest::AddLearner { .. } | AdminRequest::ChangeMembership { .. } => {
                self.request_timeout * 4
            }
            AdminRequest::NodeHeartbeat { .. } => self.request_timeout,
        };
        let what = match request {
            AdminRequest::NodeHeartbeat { .. } => "the heartbeat",
            _ => "the membership change",
        };
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
                            Ok(Err(ForwardError::NotFound(m))) => {
                                return Err(ApiError::NotFound(m));
                            }
                            Ok(Err(_)) | Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50)).await
                            }
                        }
                    }
                    Err(e) => return Err(forward_to_api(e)),
                }
            }
        })
        .await;
        result.unwrap_or_else(|_| Err(unavailable(what, timeout)))
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
            AdminRequest::NodeHeartbeat { node_name } => return self.record_heartbeat(node_name),
        };
        result.map_err(write_error)
    }

    /// Notes a node agent's heartbeat, if this node leads and the Node exists.
    fn record_heartbeat(&self, node_name: String) -> AdminResult {
        if !self.is_leader() {
            return Err(ForwardError::NotLeader {
                leader: self.leader_address(),
            });
        }
        let registered = self
            .shared
            .table
            .read()
            .expect("table lock")
            .get(Kind::Node, "", &node_name)
            .is_some();
        if !registered {
            return Err(ForwardError::NotFound(format!(
                "nodes \"{node_name}\" not found"
            )));
        }
        self.heartbeats
            .lock()
            .expect("heartbeats lock")
            .insert(node_name, Instant::now());
        Ok(())
    }

    /// Creates the built-in `default` namespace unless this node already has it. Every new
    /// leader calls this, and so does a create in `default` that arrives before it is there.
    pub async fn ensure_default_namespace(&self) -> Result<(), ApiError> {
        let missing = self
            .shared
            .table
            .read()
            .expect("table lock")
            .get(Kind::Namespace, "", "default")
            .is_none();
        if missing {
            self.propose(Command::EnsureNamespace {
                name: "default".into(),
                uid: uuid::Uuid::new_v4().to_string(),
                now: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
            .await?;
        }
        Ok(())
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

/// Most commands in one log entry.
const MAX_BATCH: usize = 512;
/// Most bytes of commands in one log entry (or one forwarded batch).
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Group commit: one batch replicates at a time and the next gathers everything that
/// arrives meanwhile, so batches grow with the load and each costs one entry and one flush
/// per node. (bench-writes, 64 clients: 4 batches in flight gave ~3.7k writes/s, 1 ~5.7k.)
const LEADER_BATCHES_IN_FLIGHT: usize = 1;
/// A follower keeps a second batch queued at the leader while the first commits.
const FORWARDED_BATCHES_IN_FLIGHT: usize = 2;

/// Queues one command and waits for its result.
async fn enqueue(queue: &mpsc::Sender<Proposal>, command: Command) -> ProposeResult {
    let (sender, receiver) = oneshot::channel();
    queue
        .send((command, sender))
        .await
        .map_err(|_| ForwardError::Unavailable("this node is shutting down".into()))?;
    receiver.await.unwrap_or_else(|_| {
        Err(ForwardError::Unknown(
            "this node stopped while the write was under way".into(),
        ))
    })
}

type BatchOutcome = Result<Vec<CommandResult>, ForwardError>;

/// Starts a task that gathers concurrent proposals into batches and hands each batch to
/// `submit`, with at most `max_in_flight` batches outstanding. Under load, requests queue while batches are
/// in flight, so batches grow with the load.
fn spawn_batcher<F, Fut>(max_in_flight: usize, submit: F) -> mpsc::Sender<Proposal>
where
    F: Fn(Vec<Command>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = BatchOutcome> + Send + 'static,
{
    let (sender, mut receiver) = mpsc::channel::<Proposal>(16 * 1024);
    tokio::spawn(async move {
        let in_flight = Arc::new(Semaphore::new(max_in_flight));
        // A proposal that did not fit the last batch starts the next one.
        let mut carried: Option<Proposal> = None;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => match receiver.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut bytes = first.0.size_hint();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(proposal) => {
                        // One entry stays small enough to replicate briskly; a single large
                        // command still goes, alone.
                        bytes += proposal.0.size_hint();
                        if bytes > MAX_BATCH_BYTES {
                            carried = Some(proposal);
                            break;
                        }
                        batch.push(proposal);
                    }
                    Err(_) => break,
                }
            }
            let (commands, waiters): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
            let count = commands.len();
            let outcome = submit(commands);
            tokio::spawn(async move {
                let outcome = match outcome.await {
                    Ok(results) if results.len() != count => Err(ForwardError::Unavailable(
                        format!("{} results for {count} commands", results.len()),
                    )),
                    other => other,
                };
                drop(permit);
                match outcome {
                    Ok(results) => {
                        for (waiter, result) in waiters.into_iter().zip(results) {
                            let _ = waiter.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        for waiter in waiters {
                            let _ = waiter.send(Err(e.clone()));
                        }
                    }
                }
            });
        }
    });
    sender
}

/// The leader's batcher: one log entry per batch. openraft appends (and flushes) each
/// client write on its own, so one entry per batch lets one flush on each node serve
/// every write in it.
pub fn spawn_raft_batcher(raft: Raft, timeout: Duration) -> mpsc::Sender<Proposal> {
    spawn_batcher(LEADER_BATCHES_IN_FLIGHT, move |commands| {
        let raft = raft.clone();
        async move { write_batch(&raft, commands, timeout).await }
    })
}

/// Appends one batch and waits for it to be applied — at most `timeout`. The bound matters:
/// openraft 0.9 never answers a write whose entry a snapshot install purged (a leader cut
/// off, then caught up by snapshot after the heal; openraft#1761), and with one batch in
/// flight such a write would block every later write on this node for good, even once it
/// leads again (the chaos suite caught that). Callers see Unavailable: the write may or
/// may not have been applied, as with any timeout.
async fn write_batch(raft: &Raft, mut commands: Vec<Command>, timeout: Duration) -> BatchOutcome {
    let proposals = commands.len() as u64;
    let entry = if commands.len() == 1 {
        commands.pop().expect("one command")
    } else {
        Command::Batch(commands)
    };
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, raft.client_write(entry)).await {
        Ok(written) => written
            .map(|response| response.data.results)
            .map_err(write_error),
        Err(_) => Err(ForwardError::Unknown(format!(
            "the write was not committed within {} ms",
            timeout.as_millis()
        ))),
    };
    let metrics = &crate::metrics::METRICS;
    if outcome.is_ok() {
        metrics
            .commit_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.proposals_committed.inc_by(proposals);
    } else {
        metrics.proposals_failed.inc_by(proposals);
    }
    outcome
}

/// A follower's batcher: one forwarding RPC to the leader per batch.
pub fn spawn_forwarder(
    raft: Raft,
    peers: Arc<PeerPool>,
    initial_peers: BTreeMap<NodeId, String>,
    timeout: Duration,
) -> mpsc::Sender<Proposal> {
    spawn_batcher(FORWARDED_BATCHES_IN_FLIGHT, move |commands| {
        let raft = raft.clone();
        let peers = peers.clone();
        let initial_peers = initial_peers.clone();
        async move {
            let Some((_, address)) = known_leader(&raft, &initial_peers) else {
                return Err(ForwardError::NotLeader { leader: None });
            };
            // A leader that cannot be reached is treated like a moved one: the caller looks
            // again. Once the batch went out, a lost answer leaves its outcome unknown:
            // sending it again could apply it twice.
            let mut client = peers
                .client(&address)
                .map_err(|_| ForwardError::NotLeader { leader: None })?;
            match call::<_, ProposeResult<Vec<CommandResult>>>(
                &mut client,
                RaftMethod::Propose,
                &commands,
                timeout,
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(status) => {
                    peers.after_failure(&address, &status);
                    if skiff_api::outcome::never_sent(&status) {
                        Err(ForwardError::NotLeader { leader: None })
                    } else {
                        Err(ForwardError::Unknown(format!(
                            "the leader's answer was lost: {}",
                            status.message()
                        )))
                    }
                }
            }
        }
    })
}
