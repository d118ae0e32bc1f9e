//! Durable state in one sled database: the Raft log (flushed before entries count as
//! written) and the state machine's snapshots; between snapshots the log is the record of
//! every applied change.

// openraft's storage traits fix the error type (`StorageError`), large as it is.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod objects;
pub mod state_machine;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use openraft::{AnyError, StorageIOError};
use skiff_api::Kind;

pub use log_store::LogStore;
pub use objects::{ObjectTable, StoredObject, WatchRecord};
pub use state_machine::StateMachineStore;

use crate::raft_types::StorageError;
use watch::{TooOld, WatchHub};

/// What readers see of the state machine: the object table, the applied index, and the
/// history watchers resume from. Writers (apply) hold the table's write lock while they
/// publish, so a list and a watch started from its version fit together without gaps.
pub struct SharedState {
    pub table: RwLock<ObjectTable>,
    pub applied: tokio::sync::watch::Sender<u64>,
    pub hub: WatchHub,
}

impl SharedState {
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// The objects of `kind` (in `namespace`, or all) whose key sorts after `after`, in key
    /// order, as they were at version `at` (None: now), and that version. A past state is
    /// the current one with the history's later changes undone, so it is exact as long as
    /// the history reaches back to `at`; `at` must not be ahead of this node.
    pub fn list_at(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        after: &str,
        at: Option<u64>,
    ) -> Result<(u64, Vec<Arc<StoredObject>>), TooOld> {
        let table = self.table.read().expect("table lock");
        // Read under the table lock: apply publishes under its write lock, so the table,
        // the applied version and the history agree.
        let applied = self.applied_index();
        let current = table.list_after(kind, namespace, after);
        let at = match at {
            Some(at) if at < applied => at,
            _ => return Ok((applied, current.cloned().collect())),
        };
        let prefix = objects::kind_prefix(kind, namespace);
        let mut state: BTreeMap<String, Arc<StoredObject>> =
            current.map(|o| (o.key(), o.clone())).collect();
        // The first change after `at` to a key holds the key's state at `at`.
        let mut undone = BTreeSet::new();
        for record in self.hub.since(at)? {
            let key = record.object.key();
            if record.object.kind != kind
                || !key.starts_with(&prefix)
                || key.as_str() <= after
                || !undone.insert(key.clone())
            {
                continue;
            }
            match record.previous {
                Some(previous) => state.insert(key, previous),
                None => state.remove(&key),
            };
        }
        Ok((at, state.into_values().collect()))
    }

    /// Waits until this node has applied `index`.
    pub async fn wait_applied(&self, index: u64) {
        let mut rx = self.applied.subscribe();
        // The sender lives as long as self, so this only ends when the index is reached.
        let _ = rx.wait_for(|applied| *applied >= index).await;
    }
}

/// sled's page cache by default (`--storage-cache-bytes`). sled's own default is 1 GiB;
/// the cache serves log reads (replication, a lagging follower) and the snapshot, while the
/// state itself is in memory anyway.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Opens (or creates) the store under `dir`.
pub fn open(
    dir: &Path,
    watch_history: watch::Window,
) -> Result<(LogStore, StateMachineStore, Arc<SharedState>), StorageError> {
    open_with(dir, watch_history, DEFAULT_CACHE_BYTES)
}

/// Like [`open`], with sled's page cache bounded by `cache_bytes`.
pub fn open_with(
    dir: &Path,
    watch_history: watch::Window,
    cache_bytes: u64,
) -> Result<(LogStore, StateMachineStore, Arc<SharedState>), StorageError> {
    let db = sled::Config::new()
        .path(dir.join("sled"))
        .cache_capacity(cache_bytes)
        .open()
        .map_err(|e| StorageIOError::<u64>::read(AnyError::new(&e)))?;
    let log = LogStore::open(&db)?;
    let (sm, shared) = StateMachineStore::open(&db, watch_history)?;
    Ok((log, sm, shared))
}

pub(crate) fn io_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read(AnyError::new(&e)).into()
}

pub(crate) fn io_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("raft types always encode")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(io_read)
}

#[cfg(test)]
mod tests;
