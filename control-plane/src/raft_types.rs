//! The Raft type configuration and the replicated command set.
//!
//! Log entries live forever: only append variants to [`Command`], never change or
//! reorder existing ones.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use skiff_api::Kind;

openraft::declare_raft_types!(
    /// Skiff's openraft configuration: commands in, apply results out.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;

/// Which part of an object an update replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdatePart {
    /// Spec, labels and annotations; status and server-managed metadata are kept.
    Main,
    /// Status only.
    Status,
}

/// A replicated write. Everything non-deterministic (uids, timestamps) is decided by the
/// API layer before proposing, so every node applies an entry to the same result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Store a new object (complete JSON: uid and creationTimestamp already set).
    Create {
        kind: Kind,
        #[serde(with = "serde_bytes")]
        object: Vec<u8>,
    },
    /// Replace part of an object. With `expected_version`, a different stored
    /// resourceVersion is a conflict.
    Update {
        kind: Kind,
        #[serde(with = "serde_bytes")]
        object: Vec<u8>,
        part: UpdatePart,
        expected_version: Option<u64>,
    },
    /// Set (Some) or remove (None) labels and annotations.
    Patch {
        kind: Kind,
        namespace: String,
        name: String,
        labels: Vec<(String, Option<String>)>,
        annotations: Vec<(String, Option<String>)>,
        overwrite: bool,
        expected_version: Option<u64>,
    },
    /// Delete an object; a pod bound to a node is first marked terminating unless forced.
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
        grace_period_seconds: Option<i64>,
        force: bool,
        /// RFC 3339 time of the request, the base of the deletion timestamp.
        now: String,
    },
    /// Create a namespace unless it exists (the built-in `default`).
    EnsureNamespace {
        name: String,
        uid: String,
        now: String,
    },
    /// Several commands in one entry, applied in order (each succeeds or fails on its
    /// own). The leader batches concurrent writes so one disk flush serves them all.
    Batch(Vec<Command>),
    /// The scheduler's binding: set a pending pod's node and mark it scheduled. Fails if
    /// the pod was replaced (another uid), is bound already or is being deleted.
    Bind {
        namespace: String,
        name: String,
        uid: String,
        node_name: String,
        /// RFC 3339 time of the decision, for the PodScheduled condition.
        now: String,
    },
    /// Set one of the cluster's own records (not an API object).
    PutSystem {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Remove one of the cluster's own records.
    DeleteSystem { key: String },
    /// Set one of the cluster's own records only if it does not exist yet (AlreadyExists
    /// otherwise): a claim that two concurrent callers cannot both win.
    CreateSystem {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Mark a namespace Terminating (deletionTimestamp `now`, status.phase Terminating):
    /// nothing new may be created in it, and the namespace controller empties it (pods
    /// gracefully) before deleting it. Marking a terminating namespace changes nothing.
    MarkNamespaceTerminating {
        name: String,
        /// RFC 3339 time of the request.
        now: String,
    },
}

impl Command {
    /// About how many bytes the command takes in a log entry: what batches are sized by.
    pub fn size_hint(&self) -> usize {
        const FIXED: usize = 64;
        FIXED
            + match self {
                Command::Create { object, .. } | Command::Update { object, .. } => object.len(),
                Command::Patch {
                    labels,
                    annotations,
                    ..
                } => labels
                    .iter()
                    .chain(annotations)
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len))
                    .sum(),
                Command::Batch(commands) => commands.iter().map(Command::size_hint).sum(),
                Command::PutSystem { key, value } | Command::CreateSystem { key, value } => {
                    key.len() + value.len()
                }
                Command::Delete { .. }
                | Command::EnsureNamespace { .. }
                | Command::Bind { .. }
                | Command::DeleteSystem { .. }
                | Command::MarkNamespaceTerminating { .. } => 0,
            }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The object as stored after the command (its last state when removed).
    #[serde(with = "serde_bytes")]
    pub object: Vec<u8>,
    /// The object left the store.
    pub removed: bool,
}

/// Why a command changed nothing. Decided deterministically on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// An admission rule the state itself decides refuses the write (a create in a
    /// terminating namespace).
    #[error("{0}")]
    Forbidden(String),
}

/// The outcome of one command.
pub type CommandResult = Result<Applied, ApplyError>;

/// What applying one log entry produced: one result per command (several for a batch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub results: Vec<CommandResult>,
}
