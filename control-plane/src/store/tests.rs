//! Store tests: openraft's own storage suite against the sled store, then durability
//! across a reopen.

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader};
use skiff_api::Kind;
use std::sync::Arc;

use tempfile::TempDir;

use super::*;
use crate::raft_types::{Command, Entry, TypeConfig};

const WINDOW: watch::Window = watch::Window {
    records: 1000,
    bytes: 64 * 1024 * 1024,
};

struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-store-")
            .tempdir()
            .map_err(io_write)?;
        let (log, sm, _) = open(dir.path(), WINDOW)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn the_store_passes_the_openraft_storage_suite() {
    Suite::test_all(SledStoreBuilder).unwrap();
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn create_pod(name: &str) -> Command {
    let json = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    Command::Create {
        kind: Kind::Pod,
        object: serde_json::to_vec(&json).unwrap(),
    }
}

fn entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(command),
    }
}

#[tokio::test]
async fn reopen_starts_from_the_latest_snapshot() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .unwrap();
    {
        let (_log, mut sm, shared) = open(dir.path(), WINDOW).unwrap();
        let ns = Command::EnsureNamespace {
            name: "default".into(),
            uid: "u".into(),
            now: "2024-01-01T00:00:00Z".into(),
        };
        let responses = sm
            .apply(vec![
                entry(1, ns),
                entry(2, create_pod("a")),
                entry(3, create_pod("b")),
            ])
            .await
            .unwrap();
        assert!(
            responses
                .iter()
                .all(|r| r.results.iter().all(Result::is_ok)),
            "{responses:?}"
        );
        assert_eq!(shared.applied_index(), 3);
        let delete = Command::Delete {
            kind: Kind::Pod,
            namespace: "default".into(),
            name: "a".into(),
            grace_period_seconds: None,
            force: false,
            now: "2024-01-01T00:00:00Z".into(),
        };
        sm.apply(vec![entry(4, delete)]).await.unwrap();
        let mut builder = sm.get_snapshot_builder().await;
        openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
            .await
            .unwrap();
        // Applied after the snapshot: only the log (replayed by openraft) has it.
        sm.apply(vec![entry(5, create_pod("c"))]).await.unwrap();
    }
    let (_log, mut sm, shared) = open(dir.path(), WINDOW).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(4)));
    let table = shared.table.read().unwrap();
    assert!(table.get(Kind::Pod, "default", "a").is_none());
    assert_eq!(table.get(Kind::Pod, "default", "b").unwrap().version, 3);
    assert!(table.get(Kind::Pod, "default", "c").is_none());
}

#[tokio::test]
async fn snapshot_install_replaces_state() {
    let source_dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .unwrap();
    let target_dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .unwrap();
    let (_l1, mut source, _) = open(source_dir.path(), WINDOW).unwrap();
    let (target_log, mut target, target_shared) = open(target_dir.path(), WINDOW).unwrap();
    let ns = || Command::EnsureNamespace {
        name: "default".into(),
        uid: "u".into(),
        now: "2024-01-01T00:00:00Z".into(),
    };
    source
        .apply(vec![entry(1, ns()), entry(2, create_pod("kept"))])
        .await
        .unwrap();
    // The target has an object the snapshot does not: it must be gone afterwards.
    target
        .apply(vec![entry(1, ns()), entry(2, create_pod("stale"))])
        .await
        .unwrap();

    let mut builder = source.get_snapshot_builder().await;
    let snapshot = openraft::RaftSnapshotBuilder::build_snapshot(&mut builder)
        .await
        .unwrap();
    target
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    {
        let table = target_shared.table.read().unwrap();
        assert!(table.get(Kind::Pod, "default", "stale").is_none());
        assert!(table.get(Kind::Pod, "default", "kept").is_some());
    }
    drop((target, target_log, target_shared));
    let (_l3, _sm, reopened) = open(target_dir.path(), WINDOW).unwrap();
    let table = reopened.table.read().unwrap();
    assert!(
        table.get(Kind::Pod, "default", "stale").is_none(),
        "deleted objects stay deleted"
    );
    assert!(table.get(Kind::Pod, "default", "kept").is_some());
}

#[tokio::test]
async fn log_entries_round_trip() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .unwrap();
    let (mut log, _sm, _) = open(dir.path(), WINDOW).unwrap();
    let entries: Vec<Entry> = (1..=5)
        .map(|i| entry(i, create_pod(&format!("p{i}"))))
        .collect();
    openraft::storage::RaftLogStorageExt::blocking_append(&mut log, entries.clone())
        .await
        .unwrap();
    let got = log.try_get_log_entries(2..4).await.unwrap();
    assert_eq!(got, entries[1..3].to_vec());
    log.purge(log_id(2)).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2)));
    assert_eq!(state.last_log_id, Some(log_id(5)));
}

#[tokio::test]
async fn a_leader_that_stopped_stands_for_election_again() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .unwrap();
    {
        let (mut log, _sm, _) = open(dir.path(), WINDOW).unwrap();
        log.save_vote(&openraft::Vote::new_committed(7, 1))
            .await
            .unwrap();
    }
    let (mut log, sm, _) = open(dir.path(), WINDOW).unwrap();
    // Someone else's leadership is kept: this node was its follower.
    assert!(!log.forget_own_leadership(2).unwrap());
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(openraft::Vote::new_committed(7, 1))
    );
    // Its own becomes a candidacy in the same term, durably.
    assert!(log.forget_own_leadership(1).unwrap());
    drop((log, sm));
    let (mut log, _sm, _) = open(dir.path(), WINDOW).unwrap();
    let vote = log.read_vote().await.unwrap().unwrap();
    assert_eq!(vote, openraft::Vote::new(7, 1));
    assert!(!vote.is_committed());
    assert!(!log.forget_own_leadership(1).unwrap());
}

fn names_of(objects: &[Arc<StoredObject>]) -> Vec<(String, u64)> {
    objects
        .iter()
        .map(|o| (o.name.clone(), o.version))
        .collect()
}

#[tokio::test]
async fn a_list_at_a_past_version_undoes_the_later_changes_and_too_far_back_is_too_old() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .unwrap();
    let (_log, mut sm, shared) = open(dir.path(), WINDOW).unwrap();
    let ns = Command::EnsureNamespace {
        name: "default".into(),
        uid: "u".into(),
        now: "2024-01-01T00:00:00Z".into(),
    };
    sm.apply(vec![
        entry(1, ns),
        entry(2, create_pod("a")),
        entry(3, create_pod("b")),
        entry(4, create_pod("c")),
    ])
    .await
    .unwrap();
    let delete_a = Command::Delete {
        kind: Kind::Pod,
        namespace: "default".into(),
        name: "a".into(),
        grace_period_seconds: None,
        force: false,
        now: "2024-01-01T00:00:00Z".into(),
    };
    let label_b = Command::Patch {
        kind: Kind::Pod,
        namespace: "default".into(),
        name: "b".into(),
        labels: vec![("x".into(), Some("1".into()))],
        annotations: vec![],
        overwrite: false,
        expected_version: None,
    };
    sm.apply(vec![
        entry(5, delete_a),
        entry(6, label_b),
        entry(7, create_pod("d")),
    ])
    .await
    .unwrap();
    let pair = |name: &str, version| (name.to_string(), version);

    let (version, now) = shared
        .list_at(Kind::Pod, Some("default"), "", None)
        .unwrap();
    assert_eq!(version, 7);
    assert_eq!(
        names_of(&now),
        vec![pair("b", 6), pair("c", 4), pair("d", 7)]
    );

    let (version, then) = shared
        .list_at(Kind::Pod, Some("default"), "", Some(4))
        .unwrap();
    assert_eq!(version, 4);
    assert_eq!(
        names_of(&then),
        vec![pair("a", 2), pair("b", 3), pair("c", 4)]
    );

    let (_, rest) = shared
        .list_at(Kind::Pod, Some("default"), "pods/default/a", Some(4))
        .unwrap();
    assert_eq!(names_of(&rest), vec![pair("b", 3), pair("c", 4)]);

    // Another kind's prefix and keys outside the range stay out.
    let (_, namespaces) = shared.list_at(Kind::Namespace, None, "", Some(4)).unwrap();
    assert_eq!(names_of(&namespaces), vec![pair("default", 1)]);

    let narrow_dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .unwrap();
    let narrow = watch::Window {
        records: 2,
        bytes: 64 * 1024 * 1024,
    };
    let (_log, mut sm, shared) = open(narrow_dir.path(), narrow).unwrap();
    let ns = Command::EnsureNamespace {
        name: "default".into(),
        uid: "u".into(),
        now: "2024-01-01T00:00:00Z".into(),
    };
    sm.apply(vec![
        entry(1, ns),
        entry(2, create_pod("a")),
        entry(3, create_pod("b")),
        entry(4, create_pod("c")),
        entry(5, create_pod("d")),
    ])
    .await
    .unwrap();
    let (_, kept) = shared
        .list_at(Kind::Pod, Some("default"), "", Some(3))
        .unwrap();
    assert_eq!(names_of(&kept), vec![pair("a", 2), pair("b", 3)]);
    let err = shared
        .list_at(Kind::Pod, Some("default"), "", Some(2))
        .unwrap_err();
    assert_eq!(err.oldest, 3);
}
