//! Multi-process tests of the replicated control plane: three `skiff-control-plane`
//! processes on loopback ports, killed and restarted for real.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::proto::cluster_client::ClusterClient;
use skiff_api::proto::objects_client::ObjectsClient;
use skiff_api::proto::{
    ClusterStatusRequest, CreateRequest, DeleteRequest, GetRequest, ListRequest, UpdateRequest,
    WatchRequest,
};
use skiff_tests::cluster::ControlPlaneCluster;
use tonic::Code;
use tonic::transport::Channel;

const STARTUP: Duration = Duration::from_secs(30);

async fn objects(endpoint: &str) -> ObjectsClient<Channel> {
    // The admin credential of the test cluster serving `endpoint`.
    let tls = skiff_tests::cluster::admin_tls_for(&[endpoint.to_string()]);
    let channel = skiff_pki::tls::endpoint(endpoint)
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect_with_connector_lazy(skiff_pki::tls::connector(tls));
    ObjectsClient::new(channel)
}

async fn cluster_client(endpoint: &str) -> ClusterClient<Channel> {
    // The admin credential of the test cluster serving `endpoint`.
    let tls = skiff_tests::cluster::admin_tls_for(&[endpoint.to_string()]);
    let channel = skiff_pki::tls::endpoint(endpoint)
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .connect_with_connector_lazy(skiff_pki::tls::connector(tls));
    ClusterClient::new(channel)
}

fn pod_json(name: &str, labels: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}
    }))
    .unwrap()
}

async fn create_pod(endpoint: &str, name: &str) -> Result<Value, tonic::Status> {
    let response = objects(endpoint)
        .await
        .create(CreateRequest {
            kind: "Pod".into(),
            object: pod_json(name, json!({"app": "test"})),
        })
        .await?;
    Ok(serde_json::from_slice(&response.into_inner().object).unwrap())
}

async fn get_pod(endpoint: &str, name: &str) -> Result<Value, tonic::Status> {
    let response = objects(endpoint)
        .await
        .get(GetRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: name.into(),
            stale_ok: false,
        })
        .await?;
    Ok(serde_json::from_slice(&response.into_inner().object).unwrap())
}

async fn list_pod_names(endpoint: &str) -> Result<BTreeSet<String>, tonic::Status> {
    let response = objects(endpoint)
        .await
        .list(ListRequest {
            kind: "pods".into(),
            namespace: "default".into(),
            ..Default::default()
        })
        .await?;
    Ok(response
        .into_inner()
        .items
        .iter()
        .map(|item| {
            let v: Value = serde_json::from_slice(item).unwrap();
            v["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect())
}

async fn delete_pod(endpoint: &str, name: &str) {
    objects(endpoint)
        .await
        .delete(DeleteRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Pod names on `endpoint` once it answers (a restarted node may be Unavailable at first).
async fn list_pod_names_once_ready(endpoint: &str) -> BTreeSet<String> {
    skiff_tests::cluster::eventually(STARTUP, || async { Ok(list_pod_names(endpoint).await?) })
        .await
        .unwrap()
}

/// A write the cluster acknowledged; retried on Unavailable (e.g. during an election).
async fn create_acknowledged(cluster: &ControlPlaneCluster, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        for endpoint in cluster.running_endpoints() {
            match create_pod(&endpoint, name).await {
                Ok(v) => return v,
                Err(s) if s.code() == Code::AlreadyExists => {
                    return get_pod(&endpoint, name).await.unwrap();
                }
                Err(s) if tokio::time::Instant::now() > deadline => {
                    panic!("write {name} never succeeded: {s}")
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn started(nodes: usize) -> ControlPlaneCluster {
    let cluster = ControlPlaneCluster::start(nodes).expect("start control plane");
    cluster
        .wait_for_leader(STARTUP)
        .await
        .expect("a leader is elected");
    // The default namespace is written by the first leader.
    create_acknowledged(&cluster, "warmup").await;
    cluster
}

async fn follower_of(cluster: &ControlPlaneCluster) -> (u64, u64) {
    let leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    (leader, follower)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_on_follower_is_readable_on_every_node() {
    let cluster = started(3).await;
    let (_, follower) = follower_of(&cluster).await;
    let created = create_pod(&cluster.endpoint(follower), "via-follower")
        .await
        .unwrap();
    let version = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let version: u64 = version.parse().unwrap();
    for endpoint in cluster.endpoints() {
        // Linearizable reads: every node sees the write at once (or a later one: the
        // scheduler marks the pod unschedulable, as no node exists).
        let got = get_pod(&endpoint, "via-follower").await.unwrap();
        let seen: u64 = got["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(seen >= version, "on {endpoint}: version {seen} < {version}");
        assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_keeps_every_acknowledged_write() {
    let mut cluster = started(3).await;
    let mut acknowledged = BTreeSet::new();
    for i in 0..30 {
        let name = format!("before-{i}");
        create_acknowledged(&cluster, &name).await;
        acknowledged.insert(name);
    }
    let old_leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    cluster.kill(old_leader);
    let new_leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    assert_ne!(new_leader, old_leader);
    create_acknowledged(&cluster, "after").await;
    for endpoint in cluster.running_endpoints() {
        let names = list_pod_names(&endpoint).await.unwrap();
        let missing: Vec<_> = acknowledged.difference(&names).collect();
        assert!(
            missing.is_empty(),
            "{endpoint} lost acknowledged writes: {missing:?}"
        );
        assert!(names.contains("after"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_all_objects() {
    let mut cluster = started(3).await;
    let endpoint = cluster.endpoint(1);
    let mut expected = BTreeSet::from(["warmup".to_string()]);
    for i in 0..20 {
        let name = format!("keep-{i}");
        create_acknowledged(&cluster, &name).await;
        expected.insert(name);
    }
    // A delete and an update must survive too.
    delete_pod(&endpoint, "keep-0").await;
    expected.remove("keep-0");
    let mut updated = get_pod(&endpoint, "keep-1").await.unwrap();
    updated["metadata"]["labels"]["app"] = json!("changed");
    objects(&endpoint)
        .await
        .update(UpdateRequest {
            kind: "Pod".into(),
            object: serde_json::to_vec(&updated).unwrap(),
        })
        .await
        .unwrap();
    let before = get_pod(&endpoint, "keep-1").await.unwrap();

    cluster.kill_all();
    cluster.restart_all();
    cluster
        .wait_for_leader(STARTUP)
        .await
        .expect("leader after full restart");
    for endpoint in cluster.endpoints() {
        let names = loop {
            match list_pod_names(&endpoint).await {
                Ok(names) => break names,
                Err(s) if s.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(s) => panic!("list on {endpoint}: {s}"),
            }
        };
        assert_eq!(names, expected, "objects on {endpoint} after restart");
        let after = get_pod(&endpoint, "keep-1").await.unwrap();
        assert_eq!(after, before, "keep-1 on {endpoint}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumed_on_another_node_misses_nothing() {
    let mut cluster = started(3).await;
    let (leader, follower) = follower_of(&cluster).await;
    let listed = objects(&cluster.endpoint(follower))
        .await
        .list(ListRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = objects(&cluster.endpoint(follower))
        .await
        .watch(WatchRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            label_selector: "app=test".into(),
            resource_version: listed.resource_version.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let writer_endpoint = cluster.endpoint(leader);
    let mut seen = Vec::new();
    let mut last_version = listed.resource_version;
    for i in 0..5 {
        create_pod(&writer_endpoint, &format!("w-{i}"))
            .await
            .unwrap();
    }
    // The scheduler also writes to these pods (no node fits them), so MODIFIED events
    // interleave; the creations must each arrive once, in order.
    while seen.len() < 5 {
        let event = stream.message().await.unwrap().expect("watch event");
        if event.r#type == "BOOKMARK" {
            continue;
        }
        last_version = event.resource_version;
        if event.r#type == "ADDED" {
            let v: Value = serde_json::from_slice(&event.object).unwrap();
            seen.push(v["metadata"]["name"].as_str().unwrap().to_string());
        }
    }
    // The node serving the watch dies; writes go on meanwhile.
    drop(stream);
    cluster.kill(follower);
    for i in 5..10 {
        create_pod(&writer_endpoint, &format!("w-{i}"))
            .await
            .unwrap();
    }
    let other = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let mut resumed = objects(&cluster.endpoint(other))
        .await
        .watch(WatchRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            label_selector: "app=test".into(),
            resource_version: last_version.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while seen.len() < 10 {
        let event = resumed.message().await.unwrap().expect("watch event");
        if event.r#type == "BOOKMARK" {
            continue;
        }
        // Commands batched into one Raft entry share its index, so equal versions follow
        // each other; they never go back.
        assert!(
            event.resource_version >= last_version,
            "versions never go back"
        );
        last_version = event.resource_version;
        match event.r#type.as_str() {
            "ADDED" => {
                let v: Value = serde_json::from_slice(&event.object).unwrap();
                seen.push(v["metadata"]["name"].as_str().unwrap().to_string());
            }
            "MODIFIED" => {}
            other => panic!("unexpected {other} event"),
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("w-{i}")).collect();
    assert_eq!(seen, expected, "every change exactly once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_quorum_is_unavailable_not_a_hang() {
    let mut cluster = started(3).await;
    let (leader, follower) = follower_of(&cluster).await;
    let survivor = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader && *id != follower)
        .unwrap();
    cluster.kill(leader);
    cluster.kill(follower);
    let endpoint = cluster.endpoint(survivor);
    // The server bounds the wait (5 s by default); the outer timeout only catches a hang.
    let write =
        tokio::time::timeout(Duration::from_secs(30), create_pod(&endpoint, "lonely")).await;
    let status = write
        .expect("the write must not hang")
        .expect_err("no quorum, no write");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    let read = tokio::time::timeout(Duration::from_secs(30), get_pod(&endpoint, "warmup")).await;
    let status = read
        .expect("the read must not hang")
        .expect_err("no quorum, no linearizable read");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_carry_codes_and_field_paths() {
    let cluster = started(3).await;
    let endpoint = cluster.endpoint(2);
    let mut client = objects(&endpoint).await;

    let bad_name = client
        .create(CreateRequest {
            kind: "Pod".into(),
            object: pod_json("Bad_Name", json!({})),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_name.code(), Code::InvalidArgument);
    assert!(
        bad_name.message().contains("metadata.name"),
        "{}",
        bad_name.message()
    );

    let unknown_field = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i", "imagee": "typo"}]}}))
    .unwrap();
    let status = client
        .create(CreateRequest {
            kind: "Pod".into(),
            object: unknown_field,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("imagee"), "{}", status.message());

    let status = client
        .get(GetRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "nope".into(),
            stale_ok: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "pods \"nope\" not found");

    let status = create_pod(&endpoint, "warmup").await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    let mut missing_ns = serde_json::from_slice::<Value>(&pod_json("p", json!({}))).unwrap();
    missing_ns["metadata"]["namespace"] = json!("nowhere");
    let status = client
        .create(CreateRequest {
            kind: "Pod".into(),
            object: serde_json::to_vec(&missing_ns).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("nowhere"));

    // Stale resourceVersion → Aborted, and the stored object is unchanged. The first update
    // is read again when it races the scheduler's status write (no node fits the pod).
    let mut attempts = 0;
    let current = loop {
        attempts += 1;
        let current = get_pod(&endpoint, "warmup").await.unwrap();
        let mut first = current.clone();
        first["metadata"]["labels"]["v"] = json!("1");
        match client
            .update(UpdateRequest {
                kind: "Pod".into(),
                object: serde_json::to_vec(&first).unwrap(),
            })
            .await
        {
            Ok(_) => break current,
            Err(status) if status.code() == Code::Aborted && attempts < 10 => continue,
            Err(status) => panic!("{status}"),
        }
    };
    let mut stale = current.clone();
    stale["metadata"]["labels"]["v"] = json!("2");
    let status = client
        .update(UpdateRequest {
            kind: "Pod".into(),
            object: serde_json::to_vec(&stale).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(
        get_pod(&endpoint, "warmup").await.unwrap()["metadata"]["labels"]["v"],
        "1"
    );

    // Pod specs are immutable after creation.
    let mut changed = get_pod(&endpoint, "warmup").await.unwrap();
    changed["spec"]["containers"][0]["command"] = json!(["true"]);
    let status = client
        .update(UpdateRequest {
            kind: "Pod".into(),
            object: serde_json::to_vec(&changed).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status}");

    let status = client
        .list(ListRequest {
            kind: "Pod".into(),
            label_selector: "app in (a,".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("position"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_every_member() {
    let mut cluster = started(3).await;
    let leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    let status = cluster_client(&cluster.endpoint(2))
        .await
        .status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.leader_id, Some(leader));
    assert_eq!(status.members.len(), 3);
    assert!(
        status.members.iter().all(|m| m.healthy && m.voter),
        "{:?}",
        status.members
    );
    assert_eq!(
        status
            .members
            .iter()
            .filter(|m| m.state == "Leader")
            .count(),
        1
    );
    let down = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != 2)
        .unwrap();
    cluster.kill(down);
    let status = cluster_client(&cluster.endpoint(2))
        .await
        .status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let member = status.members.iter().find(|m| m.id == down).unwrap();
    assert!(!member.healthy, "a killed member is reported unhealthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_add_learner_promote_and_remove() {
    let mut cluster = started(3).await;
    create_acknowledged(&cluster, "before-join").await;
    // Any node takes membership requests; a follower forwards them to the leader. Not
    // node 1, which the test removes (a removed member stops hearing of changes).
    let leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    let follower = [2, 3].into_iter().find(|id| *id != leader).unwrap();
    let new_id = cluster.add_member();
    let new_endpoint = cluster.endpoint(new_id);
    let mut admin = cluster_client(&cluster.endpoint(follower)).await;
    let status = admin
        .add_learner(skiff_api::proto::AddLearnerRequest {
            id: new_id,
            address: new_endpoint.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let learner = status
        .members
        .iter()
        .find(|m| m.id == new_id)
        .expect("learner listed");
    assert!(!learner.voter);
    // The learner has caught up: it serves the data written before it joined. (Retried:
    // under a loaded CI machine a read may time out as Unavailable.)
    let before_join = skiff_tests::cluster::eventually(STARTUP, || {
        let endpoint = new_endpoint.clone();
        async move { Ok(get_pod(&endpoint, "before-join").await?) }
    })
    .await
    .unwrap();
    assert_eq!(before_join["metadata"]["name"], "before-join");

    let status = admin
        .change_membership(skiff_api::proto::ChangeMembershipRequest {
            voters: vec![1, 2, 3, new_id],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        status
            .members
            .iter()
            .find(|m| m.id == new_id)
            .unwrap()
            .voter,
        "promoted"
    );

    // Remove node 1 and stop it: the remaining three still form a quorum.
    let remaining: Vec<u64> = vec![2, 3, new_id];
    let status = admin
        .change_membership(skiff_api::proto::ChangeMembershipRequest {
            voters: remaining.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<u64> = status.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, remaining);
    cluster.kill(1);
    // The removed node is gone; the three remaining voters carry on.
    let leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    assert_ne!(leader, 1);
    create_acknowledged(&cluster, "after-removal").await;
    skiff_tests::cluster::eventually(STARTUP, || {
        let endpoint = new_endpoint.clone();
        async move { Ok(get_pod(&endpoint, "after-removal").await?) }
    })
    .await
    .unwrap();

    let empty = admin
        .change_membership(skiff_api::proto::ChangeMembershipRequest { voters: vec![] })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_catches_up_from_a_snapshot() {
    // Tiny snapshot and log-retention settings, so the log behind the stopped node is
    // purged and it can only catch up by installing a snapshot.
    let mut cluster = ControlPlaneCluster::start_with(
        3,
        &["--snapshot-after-entries", "20", "--log-entries-kept", "5"],
    )
    .unwrap();
    cluster.wait_for_leader(STARTUP).await.unwrap();
    create_acknowledged(&cluster, "warmup").await;
    let leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    let lagging = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    create_acknowledged(&cluster, "doomed").await;
    cluster.kill(lagging);

    let mut expected = BTreeSet::from(["warmup".to_string()]);
    for i in 0..60 {
        let name = format!("snap-{i}");
        create_acknowledged(&cluster, &name).await;
        expected.insert(name);
    }
    let endpoint = cluster.endpoint(leader);
    delete_pod(&endpoint, "doomed").await;

    cluster.restart(lagging);
    let lagging_endpoint = cluster.endpoint(lagging);
    // Linearizable reads on the restarted node wait until it has caught up.
    let names = list_pod_names_once_ready(&lagging_endpoint).await;
    assert_eq!(
        names, expected,
        "deleted objects stay deleted after a snapshot install"
    );
    assert!(
        cluster.log_of(lagging).contains("installed snapshot"),
        "the catch-up went through a snapshot:\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_state_from_snapshot_plus_log() {
    // Snapshots every 20 entries: after the restart each node starts from its latest
    // snapshot and replays the log written after it.
    let mut cluster =
        ControlPlaneCluster::start_with(3, &["--snapshot-after-entries", "20"]).unwrap();
    cluster.wait_for_leader(STARTUP).await.unwrap();
    let mut expected = BTreeSet::new();
    for i in 0..55 {
        let name = format!("durable-{i}");
        create_acknowledged(&cluster, &name).await;
        expected.insert(name);
    }
    let leader = cluster.wait_for_leader(STARTUP).await.unwrap();
    delete_pod(&cluster.endpoint(leader), "durable-3").await;
    expected.remove("durable-3");
    assert!(
        cluster.log_of(leader).contains("built snapshot"),
        "{}",
        cluster.logs()
    );

    cluster.kill_all();
    cluster.restart_all();
    cluster.wait_for_leader(STARTUP).await.unwrap();
    for endpoint in cluster.endpoints() {
        let names = list_pod_names_once_ready(&endpoint).await;
        assert_eq!(names, expected, "objects on {endpoint} after restart");
    }
}
