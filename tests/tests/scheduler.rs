//! The scheduler and controllers against three real control-plane processes, with
//! simulated nodes (registered and heartbeating through the public API).

use anyhow::Context;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use skiff_api::meta::{LabelSelector, ObjectMeta};
use skiff_api::types::{
    Container, Deployment, DeploymentSpec, Event, Node, Pod, PodSpec, PodTemplateSpec,
    ResourceRequirements,
};
use skiff_client::{Client, DeleteParams, ListParams};
use skiff_tests::cluster::{ControlPlaneCluster, eventually};
use skiff_tests::nodes::{NodeShape, SimulatedNodes};

const READY: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(2);
const EVICTION: Duration = Duration::from_secs(3);
const SETTLE: Duration = Duration::from_secs(20);

struct Setup {
    cluster: ControlPlaneCluster,
    client: Client,
    nodes: SimulatedNodes,
}

/// A three-node control plane with short node timeouts and `nodes` simulated nodes.
async fn setup(nodes: &[(&str, NodeShape)]) -> Setup {
    let cluster = ControlPlaneCluster::builder(3)
        .arg("--node-grace")
        .arg("2s")
        .arg("--pod-eviction-timeout")
        .arg("3s")
        .start()
        .expect("start control plane");
    let client = cluster.client();
    client.wait_ready(READY).await.expect("cluster ready");
    let mut simulated = SimulatedNodes::new(client.clone(), Duration::from_millis(300));
    for (name, shape) in nodes {
        simulated
            .add(name, shape.clone())
            .await
            .expect("register node");
    }
    simulated.wait_ready(READY).await.expect("nodes ready");
    Setup {
        cluster,
        client,
        nodes: simulated,
    }
}

fn container(memory_request: Option<&str>) -> Container {
    Container {
        name: "main".into(),
        image: "busybox".into(),
        command: vec!["sleep".into(), "3600".into()],
        resources: memory_request.map(|m| ResourceRequirements {
            requests: [("memory".to_string(), m.into())].into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, selector: &[(&str, &str)], memory: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: name.into(),
            ..Default::default()
        },
        spec: PodSpec {
            containers: vec![container(memory)],
            node_selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    let mut template_container = container(None);
    template_container.image = image.into();
    Deployment {
        metadata: ObjectMeta {
            name: name.into(),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: ObjectMeta {
                    labels,
                    ..Default::default()
                },
                spec: PodSpec {
                    containers: vec![template_container],
                    ..Default::default()
                },
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn pods_of(client: &Client, app: &str) -> Vec<Pod> {
    client
        .list::<Pod>(&ListParams::namespace("default").labels(format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn active(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Failed" | "Succeeded")
                )
        })
        .collect()
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.node_name.as_deref()
}

fn scheduled_condition(pod: &Pod) -> Option<(String, Option<String>, Option<String>)> {
    pod.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

async fn events_for(client: &Client, name: &str) -> Vec<Event> {
    client
        .list::<Event>(&ListParams::namespace("default"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selector_and_unschedulable_pods() {
    let gpu = NodeShape::default().label("gpu", "true");
    let s = setup(&[
        ("node-a", gpu.clone()),
        ("node-b", NodeShape::default()),
        ("node-c", gpu),
    ])
    .await;
    let client = &s.client;

    // Pod CIDRs are distinct /24s of the cluster range.
    let nodes = client
        .list::<Node>(&ListParams::all_namespaces())
        .await
        .unwrap();
    let cidrs: BTreeSet<String> = nodes
        .items
        .iter()
        .filter_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()))
        .collect();
    assert_eq!(cidrs.len(), 3, "{cidrs:?}");
    assert!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.244.") && c.ends_with(".0/24"))
    );

    for i in 0..6 {
        client
            .create(&pod(&format!("gpu-{i}"), &[("gpu", "true")], None))
            .await
            .unwrap();
    }
    let placed = eventually(SETTLE, || async {
        let pods = client
            .list::<Pod>(&ListParams::namespace("default"))
            .await?;
        let nodes: Vec<String> = pods
            .items
            .iter()
            .filter_map(|p| node_of(p).map(str::to_string))
            .collect();
        anyhow::ensure!(nodes.len() == 6, "{} of 6 bound", nodes.len());
        Ok(nodes)
    })
    .await
    .unwrap();
    assert!(
        placed.iter().all(|n| n == "node-a" || n == "node-c"),
        "gpu pods only on gpu nodes: {placed:?}"
    );
    let gpu_0 = client.get::<Pod>("default", "gpu-0").await.unwrap();
    assert_eq!(scheduled_condition(&gpu_0).unwrap().0, "True");
    eventually(SETTLE, || async {
        let events = events_for(client, "gpu-0").await;
        anyhow::ensure!(
            events
                .iter()
                .any(|e| e.reason.as_deref() == Some("Scheduled")),
            "no Scheduled event yet"
        );
        Ok(())
    })
    .await
    .unwrap();

    // Fits nowhere: a selector no node matches.
    client
        .create(&pod("tpu", &[("tpu", "v5")], None))
        .await
        .unwrap();
    let expected = "0/3 nodes are available: 3 node(s) didn't match node selector.";
    eventually(SETTLE, || async {
        let pod = client.get::<Pod>("default", "tpu").await?;
        let condition = scheduled_condition(&pod);
        anyhow::ensure!(
            condition
                == Some((
                    "False".into(),
                    Some("Unschedulable".into()),
                    Some(expected.into())
                )),
            "condition: {condition:?}"
        );
        Ok(())
    })
    .await
    .unwrap();
    // The event is written after the condition.
    let failed = eventually(SETTLE, || async {
        events_for(client, "tpu")
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
            .context("a FailedScheduling event")
    })
    .await
    .unwrap();
    assert_eq!(failed.message.as_deref(), Some(expected));
    assert_eq!(failed.type_.as_deref(), Some("Warning"));

    // Too big for any node: the message names memory.
    client
        .create(&pod("huge", &[], Some("64Gi")))
        .await
        .unwrap();
    eventually(SETTLE, || async {
        let pod = client.get::<Pod>("default", "huge").await?;
        let message = scheduled_condition(&pod).and_then(|c| c.2);
        anyhow::ensure!(
            message.as_deref()
                == Some("0/3 nodes are available: 3 node(s) had insufficient memory."),
            "message: {message:?}"
        );
        Ok(())
    })
    .await
    .unwrap();

    // A pod for another scheduler is left alone.
    let mut foreign = pod("foreign", &[], None);
    foreign.spec.scheduler_name = Some("my-scheduler".into());
    client.create(&foreign).await.unwrap();

    // A node that matches arrives: the pending pod is retried and lands there.
    let mut nodes = s.nodes;
    nodes
        .add("node-tpu", NodeShape::default().label("tpu", "v5"))
        .await
        .unwrap();
    eventually(SETTLE, || async {
        let pod = client.get::<Pod>("default", "tpu").await?;
        anyhow::ensure!(node_of(&pod) == Some("node-tpu"), "on {:?}", node_of(&pod));
        Ok(())
    })
    .await
    .unwrap();
    let foreign = client.get::<Pod>("default", "foreign").await.unwrap();
    assert_eq!(node_of(&foreign), None);
    assert_eq!(scheduled_condition(&foreign), None);
    drop(s.cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_spreads_and_survives_a_dead_node() {
    let mut s = setup(&[
        ("node-a", NodeShape::default()),
        ("node-b", NodeShape::default()),
        ("node-c", NodeShape::default()),
    ])
    .await;
    s.nodes.run_pods();
    let client = &s.client;
    let created = client
        .create(&deployment("web", 3, "busybox"))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    let pods = eventually(SETTLE, || async {
        let pods = pods_of(client, "web").await;
        let bound: BTreeSet<&str> = pods.iter().filter_map(node_of).collect();
        anyhow::ensure!(pods.len() == 3 && bound.len() == 3, "pods on {bound:?}");
        Ok(pods)
    })
    .await
    .unwrap();
    for pod in &pods {
        let hash = pod.metadata.labels["pod-template-hash"].clone();
        let name = &pod.metadata.name;
        let suffix = name
            .strip_prefix(&format!("web-{hash}-"))
            .unwrap_or_else(|| panic!("{name} is not web-{hash}-xxxxx"));
        assert_eq!(suffix.len(), 5);
        let owner = &pod.metadata.owner_references[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Deployment", uid.as_str())
        );
        assert_eq!(owner.controller, Some(true));
    }
    // Status follows: the simulated agent reports the pods ready.
    eventually(SETTLE, || async {
        let d = client.get::<Deployment>("default", "web").await?;
        let st = d.status.unwrap_or_default();
        anyhow::ensure!(
            (
                st.replicas,
                st.updated_replicas,
                st.ready_replicas,
                st.available_replicas
            ) == (Some(3), Some(3), Some(3), Some(3))
                && st.observed_generation == d.metadata.generation,
            "status {st:?}"
        );
        Ok(())
    })
    .await
    .unwrap();

    // A bare pod on the node that will die.
    let victim = node_of(&pods[0]).unwrap().to_string();
    let mut bare = pod("bare", &[], None);
    bare.spec.node_name = Some(victim.clone());
    client.create(&bare).await.unwrap();

    let silenced = tokio::time::Instant::now();
    s.nodes.stop_heartbeats(&victim);
    eventually(GRACE + EVICTION + Duration::from_secs(5), || async {
        let pods = pods_of(client, "web").await;
        let active = active(&pods);
        let nodes: BTreeSet<&str> = active.iter().filter_map(|p| node_of(p)).collect();
        anyhow::ensure!(
            active.len() == 3 && nodes.len() == 2 && !nodes.contains(victim.as_str()),
            "{} active on {nodes:?}",
            active.len()
        );
        Ok(())
    })
    .await
    .unwrap();
    eprintln!(
        "replaced {:?} after the node went silent",
        silenced.elapsed()
    );
    let node = client.get::<Node>("", &victim).await.unwrap();
    let ready = node.status.unwrap().conditions;
    assert!(
        ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False"),
        "{ready:?}"
    );
    assert!(
        events_for(client, &victim)
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("NodeNotReady"))
    );
    // The bare pod is lost with its node, and nothing replaces it.
    let bare = client.get::<Pod>("default", "bare").await.unwrap();
    let status = bare.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("NodeLost"));
    let all = client
        .list::<Pod>(&ListParams::namespace("default"))
        .await
        .unwrap();
    assert_eq!(
        all.items
            .iter()
            .filter(|p| p.metadata.owner_references.is_empty())
            .count(),
        1,
        "only the one bare pod"
    );

    // Deleting the deployment deletes its pods.
    client
        .delete::<Deployment>("default", "web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SETTLE, || async {
        let left = active(&pods_of(client, "web").await).len();
        anyhow::ensure!(left == 0, "{left} pods left");
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_during_scale_up_ends_with_exact_count() {
    let shape = NodeShape {
        pods: 110,
        ..NodeShape::default()
    };
    let mut s = setup(&[
        ("node-a", shape.clone()),
        ("node-b", shape.clone()),
        ("node-c", shape),
    ])
    .await;
    let client = &s.client;
    client
        .create(&deployment("scale", 1, "busybox"))
        .await
        .unwrap();
    eventually(SETTLE, || async {
        anyhow::ensure!(pods_of(client, "scale").await.len() == 1);
        Ok(())
    })
    .await
    .unwrap();

    client.scale("default", "scale", 50).await.unwrap();
    // Kill the leader as soon as the scale-up is under way.
    eventually(SETTLE, || async {
        let n = pods_of(client, "scale").await.len();
        anyhow::ensure!(n > 1, "{n} pods");
        Ok(())
    })
    .await
    .unwrap();
    let leader = s.cluster.wait_for_leader(READY).await.unwrap();
    s.cluster.kill(leader);

    let check = || async {
        let pods = pods_of(client, "scale").await;
        let names: BTreeSet<&str> = pods.iter().map(|p| p.metadata.name.as_str()).collect();
        anyhow::ensure!(names.len() == pods.len(), "duplicate names");
        let bound = pods.iter().filter(|p| node_of(p).is_some()).count();
        anyhow::ensure!(
            pods.len() == 50 && bound == 50,
            "{} pods, {bound} bound",
            pods.len()
        );
        Ok(())
    };
    eventually(Duration::from_secs(30), check).await.unwrap();
    // And it stays exactly 50: no late duplicates from either leader.
    for _ in 0..10 {
        check().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = client.get::<Deployment>("default", "scale").await.unwrap();
    assert_eq!(d.status.unwrap().replicas, Some(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_cordon_and_drain() {
    let s = setup(&[
        ("node-a", NodeShape::default()),
        ("node-b", NodeShape::default()),
        ("node-c", NodeShape::default()),
    ])
    .await;
    s.nodes.run_pods();
    let client = &s.client;
    client
        .create(&deployment("roll", 4, "busybox:1"))
        .await
        .unwrap();
    let ready = |image: &'static str| async move {
        let d = client.get::<Deployment>("default", "roll").await?;
        let st = d.status.clone().unwrap_or_default();
        let pods = pods_of(client, "roll").await;
        let images: BTreeSet<String> = pods
            .iter()
            .map(|p| p.spec.containers[0].image.clone())
            .collect();
        anyhow::ensure!(
            st.updated_replicas == Some(4)
                && st.available_replicas == Some(4)
                && st.replicas == Some(4)
                && pods.len() == 4
                && images == BTreeSet::from([image.to_string()]),
            "status {st:?}, images {images:?}, {} pods",
            pods.len()
        );
        Ok(())
    };
    eventually(SETTLE, || ready("busybox:1")).await.unwrap();

    // Roll to a new image; with maxUnavailable 25% of 4 = 1, at least 3 stay available.
    client
        .modify("default", "roll", |d: &mut Deployment| {
            d.spec.template.spec.containers[0].image = "busybox:2".into();
            true
        })
        .await
        .unwrap();
    let lowest = Cell::new(4);
    let highest = Cell::new(0);
    eventually(Duration::from_secs(30), || async {
        let pods = pods_of(client, "roll").await;
        let active = active(&pods);
        let available = active
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        lowest.set(lowest.get().min(available));
        highest.set(highest.get().max(active.len()));
        ready("busybox:2").await
    })
    .await
    .unwrap();
    let (lowest, highest) = (lowest.get(), highest.get());
    assert!(lowest >= 3, "availability fell to {lowest}");
    assert!(highest <= 5, "surged to {highest} pods (max 4 + 1)");

    // Cordon: new pods avoid the node. Drain: its pods come back elsewhere.
    client.cordon("node-a").await.unwrap();
    let drained = client.drain("node-a", None).await.unwrap();
    eventually(SETTLE, || async {
        let pods = pods_of(client, "roll").await;
        let active = active(&pods);
        let on_a = active
            .iter()
            .filter(|p| node_of(p) == Some("node-a"))
            .count();
        let bound = active.iter().filter(|p| node_of(p).is_some()).count();
        anyhow::ensure!(
            active.len() == 4 && bound == 4 && on_a == 0,
            "{} active, {bound} bound, {on_a} on node-a (drained {:?})",
            active.len(),
            drained.evicted
        );
        Ok(())
    })
    .await
    .unwrap();
    let node = client.get::<Node>("", "node-a").await.unwrap();
    assert_eq!(node.spec.unwrap().unschedulable, Some(true));
    client.uncordon("node-a").await.unwrap();
    let node = client.get::<Node>("", "node-a").await.unwrap();
    assert_eq!(node.spec.unwrap().unschedulable, None);
}
