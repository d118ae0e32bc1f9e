//! Node configuration, as given by `skiff-control-plane`'s flags.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::controllers::node_lifecycle::ClusterCidr;
use crate::raft_types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--peers: invalid entry {entry:?}: expected ID=HOST:PORT")]
    PeerEntry { entry: String },
    #[error("--peers: node id {0} appears twice")]
    DuplicatePeer(NodeId),
    #[error("--peers must name this node (--id {0}) with its advertised address")]
    MissingSelf(NodeId),
    #[error("--id must be greater than 0")]
    ZeroId,
    #[error("raft timing: {0}")]
    Raft(String),
    #[error("--cluster-cidr: {0}")]
    ClusterCidr(String),
    #[error("invalid duration {text:?}: expected a number with a unit (ms, s, m, h), e.g. 10s")]
    Duration { text: String },
    #[error("--initial-cluster-state: expected new or existing, got {0:?}")]
    InitialClusterState(String),
    #[error("--max-request-bytes must be at least 64 KiB, got {0}")]
    MaxRequestBytes(usize),
    #[error("--max-object-bytes must be at least 64 KiB, got {0}")]
    MaxObjectBytes(usize),
    #[error(
        "--max-object-bytes ({object}) must not exceed --max-request-bytes ({request}): an object that large could never be sent"
    )]
    ObjectOverRequest { object: usize, request: usize },
    #[error("--watch-history-bytes must be at least 1 MiB, got {0}")]
    WatchHistoryBytes(usize),
    #[error("--storage-cache-bytes must be at least 1 MiB, got {0}")]
    StorageCacheBytes(u64),
    #[error("--watch-history must be at least 1, got 0")]
    WatchHistory,
    #[error("--max-watches-per-connection must be at least 1, got 0")]
    MaxWatchesPerConnection,
}

/// etcd's `--initial-cluster-state`: whether a fresh data dir starts a new cluster with the
/// `--peers` membership, or joins one that already runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialClusterState {
    /// Every initial member initializes with the identical `--peers` membership (safe in
    /// openraft: identical membership at log index 0), unless the peers show the cluster
    /// already ran with this member in it — then its data was lost, and it is refused.
    #[default]
    New,
    /// Never initialize: wait for the cluster. A member that was a voter rejoins as a
    /// learner and is promoted again once it caught up; until then it grants no votes.
    Existing,
}

impl std::str::FromStr for InitialClusterState {
    type Err = ConfigError;
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        match text {
            "new" => Ok(InitialClusterState::New),
            "existing" => Ok(InitialClusterState::Existing),
            other => Err(ConfigError::InitialClusterState(other.to_string())),
        }
    }
}

/// The largest API request accepted by default, as DESIGN.md has it (~3 MiB; etcd's
/// default is 1.5 MiB). Replication handles entries of this size on slow links.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// The largest object stored by default: etcd's default request limit (1.5 MiB), which
/// is what bounds a Kubernetes object. Measured on the object's JSON as it would be stored.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// The watch history's default byte bound: 64 MiB of changes (objects and their previous
/// versions) for resuming watchers, whatever the objects' sizes.
pub const DEFAULT_WATCH_HISTORY_BYTES: usize = 64 * 1024 * 1024;

/// Concurrent watches one client connection may hold by default; more are refused with
/// RESOURCE_EXHAUSTED. HTTP/2 streams per connection are capped a little above it.
pub const DEFAULT_MAX_WATCHES_PER_CONNECTION: usize = 256;

#[derive(Debug, Clone)]
pub struct Config {
    pub id: NodeId,
    pub data_dir: PathBuf,
    /// Every initial member's advertised HOST:PORT, this node included.
    pub peers: BTreeMap<NodeId, String>,
    /// Where pod CIDRs come from (used by the node controller).
    pub cluster_cidr: String,
    /// How long a request may wait for a leader and a quorum.
    pub request_timeout: Duration,
    /// How many changes the watch history keeps for resuming watchers.
    pub watch_history: usize,
    /// How many bytes of changes the watch history keeps (whichever bound comes first).
    pub watch_history_bytes: usize,
    /// Bytes of sled's page cache (the log and the snapshot as stored).
    pub storage_cache_bytes: u64,
    /// The largest object stored (its JSON, as it would be stored).
    pub max_object_bytes: usize,
    /// Concurrent watches per client connection.
    pub max_watches_per_connection: usize,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot (and purge the log behind it) after this many entries.
    pub snapshot_after_entries: u64,
    /// Entries kept behind a snapshot, so briefly lagging followers catch up from the log
    /// rather than with a whole snapshot.
    pub log_entries_kept: u64,
    /// A node silent this long becomes Ready=False.
    pub node_grace: Duration,
    /// A node not ready this long loses its pods (marked Failed, reason NodeLost).
    pub pod_eviction_timeout: Duration,
    /// Events are deleted this long after they last happened.
    pub event_ttl: Duration,
    /// What a fresh data dir does: start the cluster, or join the running one.
    pub initial_cluster_state: InitialClusterState,
    /// The largest public API request (gRPC message) accepted.
    pub max_request_bytes: usize,
    /// The cluster token (`--token-file`): the CA and every certificate derive from it.
    pub token: Option<skiff_pki::ClusterToken>,
    /// Where the Kubernetes API is served (`--kube-listen`); off unless asked for.
    pub kube_listen: crate::kube::KubeListen,
}

impl Config {
    pub fn new(id: NodeId, data_dir: PathBuf, peers: BTreeMap<NodeId, String>) -> Config {
        Config {
            id,
            data_dir,
            peers,
            cluster_cidr: "10.244.0.0/16".into(),
            request_timeout: Duration::from_secs(5),
            watch_history: 100_000,
            watch_history_bytes: DEFAULT_WATCH_HISTORY_BYTES,
            storage_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            max_watches_per_connection: DEFAULT_MAX_WATCHES_PER_CONNECTION,
            // A voter of a dead leader waits out the leader's lease (openraft 0.9: the
            // maximum election timeout), plus up to a quarter of max - min, then asks for
            // pre-votes (election.rs): failover takes about 400-450 ms, one round. A
            // spurious election needs a 400 ms stall of 50 ms heartbeats at a majority.
            // Halving all three (30 ms, 100/200 ms), measured before pre-vote, tripled the
            // tail in a 30-minute soak (elections under load on 2 vCPUs), so not here.
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(200),
            election_timeout_max: Duration::from_millis(400),
            snapshot_after_entries: 10_000,
            log_entries_kept: 1_000,
            node_grace: Duration::from_secs(10),
            pod_eviction_timeout: Duration::from_secs(30),
            event_ttl: Duration::from_secs(3600),
            initial_cluster_state: InitialClusterState::New,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            token: None,
            kube_listen: crate::kube::KubeListen::Off,
        }
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if !self.peers.contains_key(&self.id) {
            return Err(ConfigError::MissingSelf(self.id));
        }
        if self.max_request_bytes < 64 * 1024 {
            return Err(ConfigError::MaxRequestBytes(self.max_request_bytes));
        }
        if self.max_object_bytes < 64 * 1024 {
            return Err(ConfigError::MaxObjectBytes(self.max_object_bytes));
        }
        if self.max_object_bytes > self.max_request_bytes {
            return Err(ConfigError::ObjectOverRequest {
                object: self.max_object_bytes,
                request: self.max_request_bytes,
            });
        }
        if self.watch_history == 0 {
            return Err(ConfigError::WatchHistory);
        }
        if self.watch_history_bytes < 1024 * 1024 {
            return Err(ConfigError::WatchHistoryBytes(self.watch_history_bytes));
        }
        if self.storage_cache_bytes < 1024 * 1024 {
            return Err(ConfigError::StorageCacheBytes(self.storage_cache_bytes));
        }
        if self.max_watches_per_connection == 0 {
            return Err(ConfigError::MaxWatchesPerConnection);
        }
        self.pod_cidr_range()?;
        Ok(())
    }

    pub fn pod_cidr_range(&self) -> Result<ClusterCidr, ConfigError> {
        ClusterCidr::parse(&self.cluster_cidr).map_err(ConfigError::ClusterCidr)
    }

    pub fn raft_config(&self) -> Result<openraft::Config, ConfigError> {
        openraft::Config {
            cluster_name: "skiff".into(),
            heartbeat_interval: self.heartbeat_interval.as_millis() as u64,
            election_timeout_min: self.election_timeout_min.as_millis() as u64,
            election_timeout_max: self.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.log_entries_kept,
            // election.rs starts elections, after a pre-vote (openraft 0.9 has none).
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConfigError::Raft(e.to_string()))
    }
}

/// Parses `1=HOST:PORT,2=HOST:PORT`.
pub fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut peers = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || ConfigError::PeerEntry {
            entry: entry.to_string(),
        };
        let (id, address) = entry.split_once('=').ok_or_else(bad)?;
        let id: NodeId = id.trim().parse().map_err(|_| bad())?;
        let address = address.trim();
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        if peers.insert(id, address.to_string()).is_some() {
            return Err(ConfigError::DuplicatePeer(id));
        }
    }
    Ok(peers)
}

/// Parses `500ms`, `10s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    skiff_api::duration::parse(text).map_err(|e| ConfigError::Duration { text: e.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_as_id_equals_address() {
        let peers = parse_peers("1=127.0.0.1:7001, 2=127.0.0.1:7002,3=host-c:7003").unwrap();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[&3], "host-c:7003");
    }

    #[test]
    fn rejects_bad_peers() {
        for bad in ["1", "x=127.0.0.1:1", "1=127.0.0.1", "1=:80", "1=h:99999"] {
            assert!(
                matches!(parse_peers(bad), Err(ConfigError::PeerEntry { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_peers("1=a:1,1=b:2"),
            Err(ConfigError::DuplicatePeer(1))
        ));
    }

    #[test]
    fn initial_cluster_state_is_new_or_existing() {
        assert_eq!(
            "new".parse::<InitialClusterState>().unwrap(),
            InitialClusterState::New
        );
        assert_eq!(
            "existing".parse::<InitialClusterState>().unwrap(),
            InitialClusterState::Existing
        );
        assert!(matches!(
            "old".parse::<InitialClusterState>(),
            Err(ConfigError::InitialClusterState(_))
        ));
    }

    #[test]
    fn durations_and_cidr() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("10").is_err());
        let mut config = Config::new(1, "d".into(), parse_peers("1=a:1").unwrap());
        config.cluster_cidr = "10.244.0.0/25".into();
        assert!(matches!(config.check(), Err(ConfigError::ClusterCidr(_))));
    }

    #[test]
    fn a_request_cap_under_64_kib_is_refused_by_name_and_64_kib_is_taken() {
        let mut config = Config::new(1, "d".into(), parse_peers("1=a:1").unwrap());
        config.max_request_bytes = 64 * 1024 - 1;
        let err = config.check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "--max-request-bytes must be at least 64 KiB, got 65535"
        );
        config.max_request_bytes = 64 * 1024;
        config.max_object_bytes = 64 * 1024;
        config.check().unwrap();
    }

    #[test]
    fn an_object_cap_over_the_request_cap_or_under_64_kib_is_refused_by_name() {
        let mut config = Config::new(1, "d".into(), parse_peers("1=a:1").unwrap());
        config.check().unwrap();
        config.max_object_bytes = config.max_request_bytes + 1;
        assert_eq!(
            config.check().unwrap_err().to_string(),
            "--max-object-bytes (3145729) must not exceed --max-request-bytes (3145728): an object that large could never be sent"
        );
        config.max_object_bytes = 1000;
        assert_eq!(
            config.check().unwrap_err().to_string(),
            "--max-object-bytes must be at least 64 KiB, got 1000"
        );
    }

    #[test]
    fn watch_bounds_of_zero_or_a_history_under_1_mib_are_refused_by_name() {
        let mut config = Config::new(1, "d".into(), parse_peers("1=a:1").unwrap());
        config.watch_history_bytes = 1024 * 1024 - 1;
        assert_eq!(
            config.check().unwrap_err().to_string(),
            "--watch-history-bytes must be at least 1 MiB, got 1048575"
        );
        config.watch_history_bytes = 1024 * 1024;
        config.watch_history = 0;
        assert!(matches!(config.check(), Err(ConfigError::WatchHistory)));
        config.watch_history = 1;
        config.max_watches_per_connection = 0;
        assert!(matches!(
            config.check(),
            Err(ConfigError::MaxWatchesPerConnection)
        ));
        config.max_watches_per_connection = 1;
        config.check().unwrap();
    }
}
