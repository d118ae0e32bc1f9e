//! How a member with a fresh data dir comes up: every initial member initializes the
//! cluster with the identical `--peers` membership (so no early crash of one member can
//! leave the others without a membership), unless the running cluster shows that this
//! member held data before — then it lost it and is refused, as etcd refuses a wiped
//! member started with `--initial-cluster-state new`. With `existing`, a fresh member never
//! initializes: it rejoins, granting no votes and standing for no election until its log
//! holds everything the cluster had committed when it came back.
//!
//! The decision is a pure function over what the reachable peers report; the probe and
//! the rejoin loop around it do the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use skiff_api::proto::{ClusterStatusRequest, Member};

use crate::raft_node::ControlPlane;
use crate::raft_transport::{PeerPool, RaftMethod, ReadIndexResult, call};
use crate::raft_types::{Command, NodeId};

/// The system-record key saying member `id` has held data.
pub fn started_key(id: NodeId) -> String {
    format!("member/{id}/started")
}

/// The prefix of every [`started_key`].
pub const STARTED_PREFIX: &str = "member/";

/// Parses a [`started_key`] back into its member id.
pub fn started_id(key: &str) -> Option<NodeId> {
    key.strip_prefix(STARTED_PREFIX)?
        .strip_suffix("/started")?
        .parse()
        .ok()
}

/// What a reachable peer said about the cluster, as far as bootstrapping cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub id: NodeId,
    pub last_log_index: u64,
    pub started_members: Vec<NodeId>,
    pub member_ids: Vec<NodeId>,
}

impl From<&Member> for PeerView {
    fn from(m: &Member) -> Self {
        PeerView {
            id: m.id,
            last_log_index: m.last_log_index,
            started_members: m.started_members.clone(),
            member_ids: m.member_ids.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "member {id} has held data in this cluster before (member {peer} records it), but its data dir is empty: \
         it lost its data. Start it with --initial-cluster-state existing to rejoin safely"
    )]
    LostData { id: NodeId, peer: NodeId },
    #[error(
        "the cluster already runs without member {id} (member {peer}'s membership: {members:?}): \
         add it with Cluster/AddLearner and start it with --initial-cluster-state existing"
    )]
    NotAMember {
        id: NodeId,
        peer: NodeId,
        members: Vec<NodeId>,
    },
}

/// Whether a member with a fresh data dir and `--initial-cluster-state new` may initialize
/// the cluster, from what the peers it reached report. Initializing next to a running
/// cluster is safe (the entry at index 0 is the same everywhere), so only data loss and a
/// cluster that does not know this member are refused.
pub fn may_initialize(id: NodeId, peers: &[PeerView]) -> Result<(), Refusal> {
    if let Some(p) = peers.iter().find(|p| p.started_members.contains(&id)) {
        return Err(Refusal::LostData { id, peer: p.id });
    }
    if let Some(p) = peers
        .iter()
        .find(|p| p.last_log_index > 0 && !p.member_ids.is_empty() && !p.member_ids.contains(&id))
    {
        return Err(Refusal::NotAMember {
            id,
            peer: p.id,
            members: p.member_ids.clone(),
        });
    }
    Ok(())
}

/// Asks every other initial member for its view, each within `timeout`; silent peers are
/// left out (at a cluster's first start they may not run yet).
pub async fn probe_peers(
    id: NodeId,
    peers: &BTreeMap<NodeId, String>,
    pool: &PeerPool,
    timeout: Duration,
) -> Vec<PeerView> {
    let probes = peers
        .iter()
        .filter(|(peer, _)| **peer != id)
        .map(|(_, address)| async move {
            let mut client = pool.client(address).ok()?;
            let mut request = tonic::Request::new(ClusterStatusRequest {});
            request.set_timeout(timeout);
            let member = tokio::time::timeout(timeout, client.node_status(request))
                .await
                .ok()?
                .ok()?
                .into_inner();
            Some(PeerView::from(&member))
        });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Set while a member that lost its data catches up. Persisted as a file in the data dir
/// so a crash in the middle keeps the guard up after a restart.
pub struct RejoinGuard {
    path: PathBuf,
    active: AtomicBool,
}

impl RejoinGuard {
    pub fn open(data_dir: &Path) -> RejoinGuard {
        let path = data_dir.join("rejoining");
        let active = AtomicBool::new(path.exists());
        RejoinGuard { path, active }
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Raises the guard durably before the member talks to anyone.
    pub fn begin(&self) -> std::io::Result<()> {
        std::fs::write(&self.path, b"rejoining after data loss\n")?;
        if let Ok(dir) = std::fs::File::open(self.path.parent().unwrap_or(Path::new("."))) {
            dir.sync_all()?;
        }
        self.active.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn finish(&self) -> std::io::Result<()> {
        self.active.store(false, Ordering::SeqCst);
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Holds elections and votes back until this member's log covers what the cluster had
/// committed when the rejoin began (the leader's read index), then lets them go.
pub async fn rejoin(node: Arc<ControlPlane>) {
    // election.rs neither stands nor grants a pre-vote while the marker is up.
    tracing::warn!("rejoining: no votes and no elections until caught up with the leader");
    let index = loop {
        if let Some(index) = leader_read_index(&node).await {
            break index;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    node.shared.wait_applied(index).await;
    if let Err(e) = node.rejoin.finish() {
        tracing::error!("cannot clear the rejoin marker: {e}");
    }
    tracing::info!(
        index,
        "rejoined: caught up with the cluster's commit point, voting again"
    );
}

/// The leader's commit point, confirmed by its quorum, asked of whichever member leads.
async fn leader_read_index(node: &ControlPlane) -> Option<u64> {
    for address in node.initial_peers.values() {
        let mut client = node.peers.client(address).ok()?;
        if let Ok(Ok(index)) = call::<_, ReadIndexResult>(
            &mut client,
            RaftMethod::ReadIndex,
            &(),
            Duration::from_secs(2),
        )
        .await
        {
            return Some(index);
        }
    }
    None
}

/// The leader records every member that holds data (its own log, and followers that
/// acknowledged an entry), once: what a wiped member is later recognised by. `recorded`
/// is the leader's memory of what is recorded, filled from the table when its term
/// begins, so the check on every metrics change reads no table.
pub async fn record_started_members(node: &ControlPlane, recorded: &mut BTreeSet<NodeId>) {
    let holding: Vec<NodeId> = {
        let metrics = node.raft.metrics();
        let metrics = metrics.borrow();
        let Some(replication) = metrics.replication.as_ref() else {
            return;
        };
        replication
            .iter()
            .filter(|(_, matched)| matched.is_some_and(|m| m.index > 0))
            .map(|(id, _)| *id)
            .chain(std::iter::once(node.id))
            .filter(|id| !recorded.contains(id))
            .collect()
    };
    for id in holding {
        let command = Command::PutSystem {
            key: started_key(id),
            value: Vec::new(),
        };
        if let Err(e) = node.propose_as_leader(command).await {
            tracing::debug!("could not record member {id} as started: {e}");
            return;
        }
        recorded.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: NodeId, last: u64, started: &[NodeId], members: &[NodeId]) -> PeerView {
        PeerView {
            id,
            last_log_index: last,
            started_members: started.to_vec(),
            member_ids: members.to_vec(),
        }
    }

    #[test]
    fn a_fresh_cluster_initializes_on_every_member() {
        assert_eq!(may_initialize(1, &[]), Ok(()));
        // Peers that initialized already hold the same membership at index 0.
        assert_eq!(
            may_initialize(1, &[view(2, 0, &[], &[1, 2, 3]), view(3, 0, &[], &[])]),
            Ok(())
        );
    }

    #[test]
    fn a_member_starting_late_joins_a_young_cluster() {
        // Members 2 and 3 elected and committed before member 3's partner came up.
        assert_eq!(
            may_initialize(1, &[view(2, 5, &[2, 3], &[1, 2, 3])]),
            Ok(())
        );
    }

    #[test]
    fn a_member_that_held_data_and_lost_it_is_refused() {
        assert_eq!(
            may_initialize(
                1,
                &[view(3, 0, &[], &[]), view(2, 90, &[1, 2, 3], &[1, 2, 3])]
            ),
            Err(Refusal::LostData { id: 1, peer: 2 })
        );
    }

    #[test]
    fn a_member_the_running_cluster_does_not_know_is_refused() {
        let refusal = may_initialize(4, &[view(1, 12, &[1, 2, 3], &[1, 2, 3])]).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::NotAMember { id: 4, peer: 1, .. }
        ));
        assert!(
            refusal
                .to_string()
                .contains("--initial-cluster-state existing")
        );
    }

    #[test]
    fn started_keys_round_trip() {
        assert_eq!(started_id(&started_key(7)), Some(7));
        assert_eq!(started_id("member/x/started"), None);
        assert_eq!(started_id("token/a"), None);
    }
}
