//! The Raft log, vote and committed id in sled.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, Vote};

use super::{decode, encode, io_read, io_write};
use crate::raft_types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Log entries keyed by big-endian index (so sled's order is log order), plus Raft's
/// own metadata. Cloning shares the same trees.
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
}

impl LogStore {
    pub(super) fn open(db: &sled::Db) -> Result<LogStore, StorageError> {
        Ok(LogStore {
            db: db.clone(),
            log: db.open_tree("raft_log").map_err(io_read)?,
            meta: db.open_tree("raft_meta").map_err(io_read)?,
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self.meta.get(key).map_err(io_read)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn write_meta_durably<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
    ) -> Result<(), StorageError> {
        self.meta.insert(key, encode(value)).map_err(io_write)?;
        self.db.flush_async().await.map_err(io_write)?;
        Ok(())
    }

    /// Makes a node that was leader when it stopped stand for election again instead of
    /// resuming its leadership: a committed vote for `id` becomes an uncommitted one for
    /// the same term (it still votes for no one else in that term). Returns whether it
    /// changed anything. Call once at start-up, before Raft starts.
    ///
    /// Why: openraft 0.9 restores such a node as leader at once, without a new term or a
    /// blank entry, and serves linearizable reads from the committed id it reads back —
    /// which is behind whatever was committed (and acknowledged) after the last flush, so
    /// a read could miss an acknowledged write (cluster_10 saw a deleted object come back).
    /// Elected anew, the leader commits a blank entry of its term before serving reads, and
    /// the election restriction keeps a node missing committed entries from winning.
    /// Flushing `save_committed` instead closes the same hole but halves write throughput
    /// (bench-writes, 64 clients: ~6.2k → 3.1k writes/s).
    pub fn forget_own_leadership(&self, id: NodeId) -> Result<bool, StorageError> {
        let Some(vote) = self.read_meta::<Vote<NodeId>>(VOTE)? else {
            return Ok(false);
        };
        if !vote.is_committed() || vote.leader_id().voted_for() != Some(id) {
            return Ok(false);
        }
        let candidate = Vote::new(vote.leader_id().term, id);
        self.meta
            .insert(VOTE, encode(&candidate))
            .map_err(io_write)?;
        self.db.flush().map_err(io_write)?;
        Ok(true)
    }

    /// True when nothing was ever written: no vote and no log entry.
    pub fn is_fresh(&self) -> Result<bool, StorageError> {
        Ok(self.meta.get(VOTE).map_err(io_read)?.is_none() && self.log.is_empty())
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.log
            .range::<[u8; 8], _>((start, end))
            .map(|item| {
                let (_, bytes) = item.map_err(io_read)?;
                decode(&bytes)
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(LAST_PURGED)?;
        let last_log_id = match self.log.last().map_err(io_read)? {
            Some((_, bytes)) => Some(decode::<Entry>(&bytes)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.write_meta_durably(VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_meta(VOTE)
    }

    /// Not flushed here: openraft awaits this inside its core loop before applying, so a
    /// flush would stall every commit. The committed id is only a recovery hint (sled
    /// persists writes in order, so it never gets ahead of the entries it covers); the one
    /// reader that would trust a stale one, a leader resuming its term at start-up, is
    /// made to stand for election instead ([`LogStore::forget_own_leadership`]).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let index = committed.map_or(0, |c| c.index);
        crate::metrics::METRICS
            .commit_index
            .set(i64::try_from(index).unwrap_or(i64::MAX));
        self.meta
            .insert(COMMITTED, encode(&committed))
            .map_err(io_write)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Plain inserts, not a sled batch: a batch first writes out sled's current buffer
        // and a batch marker, each with a sync of its own (strace: three syncs per flush
        // instead of one). Atomicity is not needed: sled recovers a prefix of its writes,
        // and any prefix of appended entries is a valid log.
        for entry in entries {
            self.log
                .insert(index_key(entry.log_id.index), encode(&entry))
                .map_err(io_write)?;
        }
        // The callback means "on disk", so it fires only after a flush that began after
        // these entries were written. Flushing in the background lets openraft's core go on
        // (replicating, taking more writes) instead of waiting for the disk.
        let db = self.db.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let flushed = db
                .flush_async()
                .await
                .map(|_| ())
                .map_err(std::io::Error::other);
            crate::metrics::METRICS
                .wal_fsync
                .observe(crate::metrics::since(started));
            callback.log_io_completed(flushed);
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for key in self.log.range(index_key(log_id.index)..).keys() {
            batch.remove(key.map_err(io_read)?);
        }
        self.log.apply_batch(batch).map_err(io_write)?;
        self.db.flush_async().await.map_err(io_write)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves extra entries, never a hole.
        self.write_meta_durably(LAST_PURGED, &log_id).await?;
        let mut batch = sled::Batch::default();
        for key in self.log.range(..=index_key(log_id.index)).keys() {
            batch.remove(key.map_err(io_read)?);
        }
        self.log.apply_batch(batch).map_err(io_write)?;
        Ok(())
    }
}
