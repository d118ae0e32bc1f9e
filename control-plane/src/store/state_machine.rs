//! The state machine in sled: objects, last applied log id and membership in one tree,
//! written with one atomic batch per `apply` call; snapshots in a tree of their own.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, Snapshot};
use serde::{Deserialize, Serialize};
use skiff_api::Kind;

use super::objects::{EventType, ObjectTable, StoredObject, apply_entry};
use super::{SharedState, decode, encode, io_read, io_write};
use crate::raft_types::{
    CommandResponse, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::watch::WatchHub;

const OBJECT_PREFIX: &[u8] = b"o/";
const LAST_APPLIED: &[u8] = b"m/last_applied";
const MEMBERSHIP: &[u8] = b"m/membership";
const SNAPSHOT_META: &[u8] = b"meta";
const SNAPSHOT_DATA: &[u8] = b"data";
/// Present while a received snapshot is being written over the state: a crash in
/// between is finished on the next open, from the stored snapshot.
const INSTALLING: &[u8] = b"installing";

fn object_db_key(key: &str) -> Vec<u8> {
    [OBJECT_PREFIX, key.as_bytes()].concat()
}

/// The serialized form of a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    objects: Vec<(Kind, serde_bytes::ByteBuf)>,
}

pub struct StateMachineStore {
    db: sled::Db,
    state: sled::Tree,
    snapshots: sled::Tree,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    shared: Arc<SharedState>,
    snapshot_seq: u64,
}

impl StateMachineStore {
    pub(super) fn open(
        db: &sled::Db,
        watch_history: usize,
    ) -> Result<(StateMachineStore, Arc<SharedState>), StorageError> {
        let state = db.open_tree("state").map_err(io_read)?;
        let snapshots = db.open_tree("snapshots").map_err(io_read)?;
        if snapshots.get(INSTALLING).map_err(io_read)?.is_some() {
            let data = snapshots
                .get(SNAPSHOT_DATA)
                .map_err(io_read)?
                .ok_or_else(|| {
                    io_read(std::io::Error::other(
                        "interrupted snapshot install has no data",
                    ))
                })?;
            write_payload(&state, &decode(&data)?)?;
            snapshots.remove(INSTALLING).map_err(io_write)?;
            db.flush().map_err(io_write)?;
        }
        let last_applied: Option<LogId> = match state.get(LAST_APPLIED).map_err(io_read)? {
            Some(b) => decode(&b)?,
            None => None,
        };
        let membership: StoredMembership = match state.get(MEMBERSHIP).map_err(io_read)? {
            Some(b) => decode(&b)?,
            None => StoredMembership::default(),
        };
        let mut table = ObjectTable::default();
        for item in state.scan_prefix(OBJECT_PREFIX) {
            let (key, json) = item.map_err(io_read)?;
            let kind = kind_of_key(&key[OBJECT_PREFIX.len()..])?;
            table.insert(Arc::new(load_object(kind, &json)?));
        }
        let applied = last_applied.map(|l| l.index).unwrap_or(0);
        let shared = Arc::new(SharedState {
            table: RwLock::new(table),
            applied: tokio::sync::watch::Sender::new(applied),
            hub: WatchHub::new(applied, watch_history),
        });
        let sm = StateMachineStore {
            db: db.clone(),
            state,
            snapshots,
            last_applied,
            membership,
            shared: shared.clone(),
            snapshot_seq: 0,
        };
        Ok((sm, shared))
    }
}

fn kind_of_key(key: &[u8]) -> Result<Kind, StorageError> {
    let key = std::str::from_utf8(key).map_err(io_read)?;
    let plural = key.split('/').next().unwrap_or_default();
    Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural)
        .ok_or_else(|| {
            io_read(std::io::Error::other(format!(
                "unknown kind in stored key {key:?}"
            )))
        })
}

fn load_object(kind: Kind, json: &[u8]) -> Result<StoredObject, StorageError> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(io_read)?;
    StoredObject::from_value(kind, &value).map_err(|e| {
        io_read(std::io::Error::other(format!(
            "stored {kind} is invalid: {e}"
        )))
    })
}

/// Replaces the whole state with a snapshot's (objects deleted since must stay deleted).
fn write_payload(state: &sled::Tree, payload: &SnapshotPayload) -> Result<(), StorageError> {
    state.clear().map_err(io_write)?;
    let mut batch = sled::Batch::default();
    for (kind, json) in &payload.objects {
        let object = load_object(*kind, json)?;
        batch.insert(object_db_key(&object.key()), json.as_slice());
    }
    batch.insert(LAST_APPLIED, encode(&payload.last_applied));
    batch.insert(MEMBERSHIP, encode(&payload.membership));
    state.apply_batch(batch).map_err(io_write)
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = crate::raft_types::Entry> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut all_records = Vec::new();
        let mut batch = sled::Batch::default();
        // Held across the batch so readers never see a half-applied batch.
        let mut table = self.shared.table.write().expect("table lock");
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(CommandResponse::default()),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    responses.push(CommandResponse::default());
                }
                EntryPayload::Normal(command) => {
                    let (results, records) = apply_entry(&mut table, entry.log_id.index, &command);
                    for r in &records {
                        match r.event {
                            EventType::Deleted => batch.remove(object_db_key(&r.object.key())),
                            _ => batch.insert(object_db_key(&r.object.key()), &*r.object.json),
                        }
                    }
                    all_records.extend(records);
                    responses.push(CommandResponse { results });
                }
            }
        }
        batch.insert(LAST_APPLIED, encode(&self.last_applied));
        batch.insert(MEMBERSHIP, encode(&self.membership));
        self.state.apply_batch(batch).map_err(io_write)?;
        self.shared.hub.publish(all_records);
        let applied = self.last_applied.map(|l| l.index).unwrap_or(0);
        self.shared.applied.send_replace(applied);
        drop(table);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        // A consistent copy: applies cannot run while we hold &mut self; the copy shares the
        // immutable object buffers, so it is cheap.
        let objects = self
            .shared
            .table
            .read()
            .expect("table lock")
            .iter()
            .map(|o| (o.kind, serde_bytes::ByteBuf::from(o.json.to_vec())))
            .collect();
        SnapshotBuilder {
            db: self.db.clone(),
            snapshots: self.snapshots.clone(),
            payload: SnapshotPayload {
                last_applied: self.last_applied,
                membership: self.membership.clone(),
                objects,
            },
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let payload: SnapshotPayload = decode(&data)?;
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, encode(meta));
        batch.insert(SNAPSHOT_DATA, data.as_slice());
        batch.insert(INSTALLING, &[1u8][..]);
        self.snapshots.apply_batch(batch).map_err(io_write)?;
        self.db.flush_async().await.map_err(io_write)?;

        write_payload(&self.state, &payload)?;
        self.snapshots.remove(INSTALLING).map_err(io_write)?;
        self.db.flush_async().await.map_err(io_write)?;

        let mut fresh = ObjectTable::default();
        for (kind, json) in &payload.objects {
            fresh.insert(Arc::new(load_object(*kind, json)?));
        }
        let mut table = self.shared.table.write().expect("table lock");
        *table = fresh;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let applied = self.last_applied.map(|l| l.index).unwrap_or(0);
        tracing::info!(snapshot = %meta.snapshot_id, objects = payload.objects.len(), "installed snapshot");
        // Changes between the old state and the snapshot are not known one by one.
        self.shared.hub.reset(applied);
        self.shared.applied.send_replace(applied);
        drop(table);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let meta = self.snapshots.get(SNAPSHOT_META).map_err(io_read)?;
        let data = self.snapshots.get(SNAPSHOT_DATA).map_err(io_read)?;
        match (meta, data) {
            (Some(meta), Some(data)) => Ok(Some(Snapshot {
                meta: decode(&meta)?,
                snapshot: Box::new(Cursor::new(data.to_vec())),
            })),
            _ => Ok(None),
        }
    }
}

pub struct SnapshotBuilder {
    db: sled::Db,
    snapshots: sled::Tree,
    payload: SnapshotPayload,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = encode(&self.payload);
        let last = self.payload.last_applied;
        // Unique across restarts: the clock separates runs, the sequence separates builds.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{}-{}", l.leader_id, l.index, started, self.seq),
            None => format!("none-{}-{}", started, self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.payload.membership.clone(),
            snapshot_id,
        };
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, encode(&meta));
        batch.insert(SNAPSHOT_DATA, data.as_slice());
        self.snapshots.apply_batch(batch).map_err(io_write)?;
        // Also makes the state up to the snapshot durable before the log behind it is purged.
        self.db.flush_async().await.map_err(io_write)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
