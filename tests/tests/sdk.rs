//! The client SDK against a real three-node control plane: typed CRUD, failover, watches
//! that resume on another node, and `wait_for`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use skiff_api::meta::ObjectMeta;
use skiff_api::types::{Container, Node, Pod, PodSpec, PodStatus};
use skiff_client::{
    Client, DeleteParams, Error, ListParams, MetadataPatch, WatchEvent, WatchParams,
};
use skiff_tests::cluster::ControlPlaneCluster;

const READY: Duration = Duration::from_secs(30);

/// A pod no scheduler of Skiff's touches, so these tests see only their own writes.
fn pod(name: &str, app: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: name.into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            ..Default::default()
        },
        spec: PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: "busybox".into(),
                ..Default::default()
            }],
            scheduler_name: Some("manual".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn ready_cluster() -> (ControlPlaneCluster, Client) {
    let cluster = ControlPlaneCluster::start(3).expect("start control plane");
    let client = cluster.client();
    client.wait_ready(READY).await.expect("cluster ready");
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_and_errors() {
    let (_cluster, client) = ready_cluster().await;
    let created = client.create(&pod("web", "web")).await.unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        created.spec.restart_policy.as_deref(),
        Some("Always"),
        "defaults applied"
    );

    let got: Pod = client.get("default", "web").await.unwrap();
    assert_eq!(got, created);
    assert!(
        client
            .get::<Pod>("default", "nope")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        client
            .create(&pod("web", "web"))
            .await
            .unwrap_err()
            .is_already_exists()
    );

    let mut status = got.clone();
    status.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("10.244.1.2".into()),
        ..Default::default()
    });
    let updated = client.update_status(&status).await.unwrap();
    assert_eq!(
        updated.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );

    // Updating with the old version loses the race.
    let mut stale = got.clone();
    stale.metadata.labels.insert("x".into(), "y".into());
    assert!(matches!(
        client.update(&stale).await,
        Err(Error::Conflict(_))
    ));

    let patched: Pod = client
        .patch_metadata(
            "default",
            "web",
            &MetadataPatch {
                labels: vec![("tier".into(), Some("front".into()))],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels["tier"], "front");
    assert_eq!(patched.status, updated.status, "patches keep status");

    client.create(&pod("db", "db")).await.unwrap();
    let web = client
        .list::<Pod>(&ListParams::namespace("default").labels("app notin (db)"))
        .await
        .unwrap();
    assert_eq!(
        web.items
            .iter()
            .map(|p| p.metadata.name.as_str())
            .collect::<Vec<_>>(),
        vec!["web"]
    );
    let all = client
        .list::<Pod>(&ListParams::all_namespaces())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let bad = client
        .list::<Pod>(&ListParams::all_namespaces().fields("spec.image=x"))
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::Invalid(_)), "{bad}");

    // Nodes are cluster-scoped.
    let node = Node {
        metadata: ObjectMeta {
            name: "node-a".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let node = client.create(&node).await.unwrap();
    assert_eq!(node.metadata.namespace, None);

    let deleted = client
        .delete::<Pod>("default", "db", &DeleteParams::default())
        .await
        .unwrap();
    assert!(deleted.removed, "an unscheduled pod goes at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_deletion_and_wait_for() {
    let (_cluster, client) = ready_cluster().await;
    let mut bound = pod("bound", "web");
    bound.spec.node_name = Some("node-1".into());
    client.create(&bound).await.unwrap();

    let deleted = client
        .delete::<Pod>(
            "default",
            "bound",
            &DeleteParams {
                grace_period_seconds: Some(5),
                force: false,
            },
        )
        .await
        .unwrap();
    assert!(!deleted.removed, "a pod on a node terminates first");
    assert_eq!(
        deleted.object.metadata.deletion_grace_period_seconds,
        Some(5)
    );
    assert!(deleted.object.metadata.deletion_timestamp.is_some());

    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .wait_for::<Pod, _>("default", "bound", |p| p.is_none(), Duration::from_secs(20))
                .await
        })
    };
    // The node's agent confirms with a zero grace period.
    client
        .delete::<Pod>(
            "default",
            "bound",
            &DeleteParams {
                grace_period_seconds: Some(0),
                force: false,
            },
        )
        .await
        .unwrap();
    assert!(waiter.await.unwrap().unwrap().is_none());

    let timeout = client
        .wait_for::<Pod, _>(
            "default",
            "never",
            |p| p.is_some(),
            Duration::from_millis(300),
        )
        .await;
    assert!(matches!(timeout, Err(Error::Timeout(_))));
}

async fn next_added(events: &mut skiff_client::WatchStream<Pod>) -> String {
    loop {
        match tokio::time::timeout(READY, events.next())
            .await
            .expect("watch event in time")
        {
            Some(Ok(WatchEvent::Added(p))) => return p.metadata.name,
            Some(Ok(WatchEvent::Bookmark(_))) => continue,
            other => panic!("unexpected watch item {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_on_another_node_when_its_node_dies() {
    let (mut cluster, _) = ready_cluster().await;
    // The watcher's first endpoint is node 1; writers use the other two.
    let watcher = cluster.client_for(
        &[
            cluster.endpoint(1),
            cluster.endpoint(2),
            cluster.endpoint(3),
        ],
        Duration::from_secs(10),
    );
    let writer = cluster.client_for(
        &[cluster.endpoint(2), cluster.endpoint(3)],
        Duration::from_secs(10),
    );
    let start = watcher
        .list::<Pod>(&ListParams::namespace("default"))
        .await
        .unwrap();
    let mut events = watcher.watch::<Pod>(
        WatchParams {
            namespace: Some("default".into()),
            ..Default::default()
        }
        .from_version(start.resource_version),
    );

    let mut names = Vec::new();
    for i in 0..5 {
        writer.create(&pod(&format!("p-{i}"), "w")).await.unwrap();
    }
    for _ in 0..5 {
        names.push(next_added(&mut events).await);
    }
    cluster.kill(1);
    for i in 5..10 {
        writer.create(&pod(&format!("p-{i}"), "w")).await.unwrap();
    }
    for _ in 5..10 {
        names.push(next_added(&mut events).await);
    }
    let expected: Vec<String> = (0..10).map(|i| format!("p-{i}")).collect();
    assert_eq!(
        names, expected,
        "each creation seen once, in order, across the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_over_and_report_unavailable() {
    let (mut cluster, _) = ready_cluster().await;
    cluster.kill(1);
    // Node 1 is first in the list and dead: the client moves on.
    let client = cluster.client_for(&cluster.endpoints(), Duration::from_secs(20));
    client.create(&pod("after-failover", "x")).await.unwrap();
    let status = client.cluster_status().await.unwrap();
    assert!(status.leader_id.is_some());

    cluster.kill(2);
    cluster.kill(3);
    let client = cluster.client_for(&cluster.endpoints(), Duration::from_secs(2));
    let err = client
        .get::<Pod>("default", "after-failover")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}
