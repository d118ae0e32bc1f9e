//! Identity and access, phase 2: bearer tokens with Kubernetes' roles, namespaced tokens,
//! refusals in kubectl's words, removal that takes effect on every member at once, no
//! escalation, and nodes confined to themselves (NodeRestriction). Each test is named by the
//! sentence it proves; each starts its own 3-member control plane (no agents needed: node
//! credentials come from the join call an agent makes).

use std::time::Duration;

use skiff_api::proto::cluster_client::ClusterClient;
use skiff_api::proto::{JoinNodeRequest, NodeHeartbeatRequest};
use skiff_api::types::{Namespace, Node, Pod};
use skiff_client::{Client, DeleteParams, Error, ListParams, MetadataPatch, NewToken};
use skiff_pki::NodeKey;
use skiff_tests::cluster::{ControlPlaneCluster, binary};

const READY: Duration = Duration::from_secs(30);

async fn ready_cluster() -> ControlPlaneCluster {
    ControlPlaneCluster::start_ready(3).await
}

fn pod(name: &str, namespace: &str, node: Option<&str>) -> Pod {
    let mut value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    if let Some(node) = node {
        value["spec"]["nodeName"] = node.into();
    }
    serde_json::from_value(value).unwrap()
}

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
    }))
    .unwrap()
}

/// Makes token `name` with the admin credential; returns its secret.
async fn make_token(
    admin: &Client,
    name: &str,
    role: &str,
    namespace: Option<&str>,
    ttl: Option<Duration>,
) -> String {
    let new = NewToken {
        name: name.into(),
        role: role.into(),
        namespace: namespace.map(String::from),
        ttl,
    };
    admin.create_token(&new).await.expect("create token").0
}

/// The PERMISSION_DENIED message of a refused call.
fn forbidden<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Forbidden(message)) => message,
        Err(other) => panic!("want PERMISSION_DENIED, got {other:?}"),
        Ok(_) => panic!("want PERMISSION_DENIED, got success"),
    }
}

fn is_forbidden<T>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::Forbidden(_)))
}

/// The UNAUTHENTICATED message of a refused call.
fn unauthorized<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Unauthorized(message)) => message,
        Err(other) => panic!("want UNAUTHENTICATED, got {other:?}"),
        Ok(_) => panic!("want UNAUTHENTICATED, got success"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_token_reads_and_reads_logs_but_cannot_exec_delete_or_label_in_kubectls_words() {
    let cluster = ready_cluster().await;
    let admin = cluster.client();
    admin.create(&pod("p", "default", None)).await.unwrap();
    let view = make_token(&admin, "viewer", "view", None, None).await;
    let viewer = cluster.bearer_client(&cluster.endpoints(), &view);

    let pods = viewer
        .list::<Pod>(&ListParams::namespace("default"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1);
    viewer.get::<Pod>("default", "p").await.unwrap();
    // Logs pass authorization: the pod is not scheduled, which is the next thing said.
    let logs = viewer
        .logs("default", "p", &Default::default())
        .await
        .map(drop)
        .expect_err("an unscheduled pod has no logs");
    assert!(!logs.is_forbidden(), "{logs}");

    assert_eq!(
        forbidden(viewer.create(&pod("q", "default", None)).await),
        r#"pods "q" is forbidden: User "viewer" cannot create resource "pods" in API group "" in the namespace "default""#
    );
    assert_eq!(
        forbidden(
            viewer
                .delete::<Pod>("default", "p", &DeleteParams::default())
                .await
        ),
        r#"pods "p" is forbidden: User "viewer" cannot delete resource "pods" in API group "" in the namespace "default""#
    );
    let label = MetadataPatch::default().set_label("app", "x");
    assert_eq!(
        forbidden(viewer.patch_metadata::<Pod>("default", "p", &label).await),
        r#"pods "p" is forbidden: User "viewer" cannot patch resource "pods" in API group "" in the namespace "default""#
    );
    assert_eq!(
        forbidden(
            viewer
                .exec_output("default", "p", None, &["true".into()])
                .await
        ),
        r#"pods "p" is forbidden: User "viewer" cannot create resource "pods/exec" in API group "" in the namespace "default""#
    );
    assert!(is_forbidden(viewer.port_forward("default", "p", 80).await));

    // edit may exec: the refusal now is the pod's state, not the caller's role.
    let edit = make_token(&admin, "editor", "edit", None, None).await;
    let editor = cluster.bearer_client(&cluster.endpoints(), &edit);
    editor.create(&pod("q", "default", None)).await.unwrap();
    let exec = editor
        .exec_output("default", "p", None, &["true".into()])
        .await
        .map(drop)
        .expect_err("an unscheduled pod cannot exec");
    assert!(!exec.is_forbidden(), "{exec}");

    // The CLI prints kubectl's line, with --token and with SKIFF_TOKEN.
    let cli = |args: &[&str], env_token: Option<&str>| {
        let mut command = std::process::Command::new(binary("skiff"));
        command
            .arg("--config")
            .arg(cluster.admin_conf())
            .args(args)
            .env_remove("SKIFF_SERVER")
            .env_remove("SKIFF_TOKEN");
        if let Some(token) = env_token {
            command.env("SKIFF_TOKEN", token);
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = cli(&["--token", &view, "delete", "pod", "p"], None);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        r#"Error from server (Forbidden): pods "p" is forbidden: User "viewer" cannot delete resource "pods" in API group "" in the namespace "default""#
    );
    let (code, stdout, stderr) = cli(&["get", "pods"], Some(&view));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains('p'), "{stdout}");
    let (code, _, stderr) = cli(&["create", "namespace", "x"], Some(&view));
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        r#"Error from server (Forbidden): namespaces "x" is forbidden: User "viewer" cannot create resource "namespaces" in API group "" at the cluster scope"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cluster_admin_changes_membership_imports_images_or_reads_nodes() {
    let cluster = ready_cluster().await;
    let admin = cluster.client();
    for role in ["view", "edit", "admin"] {
        let secret = make_token(&admin, &format!("t-{role}"), role, None, None).await;
        let client = cluster.bearer_client(&cluster.endpoints(), &secret);
        let user = format!("t-{role}");
        assert_eq!(
            forbidden(client.add_learner(9, "127.0.0.1:1").await),
            format!(
                r#"members.skiff.io is forbidden: User "{user}" cannot create resource "members" in API group "skiff.io" at the cluster scope"#
            )
        );
        assert!(is_forbidden(client.change_membership(vec![1, 2, 3]).await));
        assert!(is_forbidden(client.cluster_status().await));
        assert!(is_forbidden(client.list_images("w1").await));
        assert!(is_forbidden(
            client.import_image("w1", &b"not an archive"[..]).await
        ));
        // Reading an image out of a node's store is cluster-admin's too.
        assert!(is_forbidden(
            client.export_image("w1", "busybox", &mut Vec::new()).await
        ));
        assert!(is_forbidden(
            client.list::<Node>(&ListParams::default()).await
        ));
        assert!(is_forbidden(
            client.create(&namespace(&format!("ns-{role}"))).await
        ));
    }
    let root = make_token(&admin, "root", "cluster-admin", None, None).await;
    let root = cluster.bearer_client(&cluster.endpoints(), &root);
    root.cluster_status().await.unwrap();
    root.list::<Node>(&ListParams::default()).await.unwrap();
    root.create(&namespace("by-root")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_token_sees_nothing_in_other_namespaces_or_among_cluster_scoped_objects() {
    let cluster = ready_cluster().await;
    let admin = cluster.client();
    admin.create(&namespace("team-a")).await.unwrap();
    admin.create(&pod("mine", "team-a", None)).await.unwrap();
    admin.create(&pod("theirs", "default", None)).await.unwrap();
    let secret = make_token(&admin, "team-a-ci", "admin", Some("team-a"), None).await;
    let ci = cluster.bearer_client(&cluster.endpoints(), &secret);

    ci.get::<Pod>("team-a", "mine").await.unwrap();
    ci.create(&pod("new", "team-a", None)).await.unwrap();
    assert_eq!(
        forbidden(ci.get::<Pod>("default", "theirs").await),
        r#"pods "theirs" is forbidden: User "team-a-ci" cannot get resource "pods" in API group "" in the namespace "default""#
    );
    assert!(is_forbidden(
        ci.list::<Pod>(&ListParams::namespace("default")).await
    ));
    assert_eq!(
        forbidden(ci.list::<Pod>(&ListParams::default()).await),
        r#"pods is forbidden: User "team-a-ci" cannot list resource "pods" in API group "" at the cluster scope"#
    );
    let mut watch = ci.watch::<Pod>(skiff_client::WatchParams::all_namespaces());
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        futures::StreamExt::next(&mut watch),
    )
    .await
    .expect("the watch answers");
    assert!(
        matches!(&first, Some(Err(e)) if e.is_forbidden()),
        "{first:?}"
    );
    assert!(is_forbidden(ci.get::<Namespace>("", "team-a").await));
    assert!(is_forbidden(ci.list::<Node>(&ListParams::default()).await));
    // Its tokens: those of its namespace, no others.
    let listed = ci.list_tokens(Some("team-a")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "team-a-ci");
    assert!(is_forbidden(ci.list_tokens(None).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_makes_a_token_with_more_than_they_hold() {
    let cluster = ready_cluster().await;
    let admin = cluster.client();
    admin.create(&namespace("team-a")).await.unwrap();
    let secret = make_token(&admin, "lead", "admin", Some("team-a"), None).await;
    let lead = cluster.bearer_client(&cluster.endpoints(), &secret);
    let new = |name: &str, role: &str, namespace: Option<&str>| NewToken {
        name: name.into(),
        role: role.into(),
        namespace: namespace.map(String::from),
        ttl: None,
    };
    let (dev, _) = lead
        .create_token(&new("dev", "edit", Some("team-a")))
        .await
        .unwrap();
    assert_eq!(
        forbidden(
            lead.create_token(&new("boss", "cluster-admin", Some("team-a")))
                .await
        ),
        r#"tokens.skiff.io "boss" is forbidden: User "lead" is attempting to grant role "cluster-admin" in the namespace "team-a", which it does not hold"#
    );
    assert!(is_forbidden(
        lead.create_token(&new("x", "view", Some("default"))).await
    ));
    assert!(is_forbidden(
        lead.create_token(&new("y", "view", None)).await
    ));
    // edit holds no tokens at all.
    let dev = cluster.bearer_client(&cluster.endpoints(), &dev);
    assert!(is_forbidden(
        dev.create_token(&new("z", "view", Some("team-a"))).await
    ));
    assert!(is_forbidden(dev.delete_token("lead", Some("team-a")).await));
    // A name is taken once, cluster-wide.
    let taken = lead.create_token(&new("dev", "view", Some("team-a"))).await;
    assert!(matches!(taken, Err(Error::AlreadyExists(_))), "{taken:?}");
    // Bad input is named.
    let bad = admin.create_token(&new("Bad.Name", "view", None)).await;
    assert!(
        matches!(&bad, Err(Error::Invalid(m)) if m.contains("name")),
        "{bad:?}"
    );
    let bad = admin.create_token(&new("ok", "root", None)).await;
    assert!(
        matches!(&bad, Err(Error::Invalid(m)) if m.contains("role")),
        "{bad:?}"
    );
    // A ttl is bounded: a hundred years at most.
    let forever = NewToken {
        ttl: Some(Duration::from_secs(101 * 365 * 24 * 3600)),
        ..new("ok", "view", None)
    };
    let bad = admin.create_token(&forever).await;
    assert!(
        matches!(&bad, Err(Error::Invalid(m)) if m.contains("ttl")),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_expired_and_removed_tokens_are_unauthenticated_on_every_member() {
    let cluster = ready_cluster().await;
    let admin = cluster.client();
    let made_up = format!("skt.viewer.{}", "a".repeat(52));
    let message = unauthorized(
        cluster
            .bearer_client(&cluster.endpoints(), &made_up)
            .list::<Pod>(&ListParams::default())
            .await,
    );
    assert_eq!(message, "invalid bearer token");
    let garbage = cluster.bearer_client(&cluster.endpoints(), "not-a-token");
    unauthorized(garbage.list::<Pod>(&ListParams::default()).await);

    let short = make_token(&admin, "short", "view", None, Some(Duration::from_secs(2))).await;
    let short = cluster.bearer_client(&cluster.endpoints(), &short);
    short.list::<Pod>(&ListParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let message = unauthorized(short.list::<Pod>(&ListParams::default()).await);
    assert!(message.contains("expired"), "{message}");

    let secret = make_token(&admin, "leaver", "edit", None, None).await;
    let per_member: Vec<Client> = cluster
        .endpoints()
        .iter()
        .map(|e| cluster.bearer_client(std::slice::from_ref(e), &secret))
        .collect();
    for client in &per_member {
        client.list::<Pod>(&ListParams::default()).await.unwrap();
    }
    // Removed through member 3, refused by every member right after.
    let through_3 = cluster.client_for(&[cluster.endpoint(3)], Duration::from_secs(10));
    through_3.delete_token("leaver", None).await.unwrap();
    for (i, client) in per_member.iter().enumerate() {
        let message = unauthorized(client.list::<Pod>(&ListParams::default()).await);
        assert_eq!(message, "invalid bearer token", "member {}", i + 1);
    }
    assert!(
        admin
            .list_tokens(None)
            .await
            .unwrap()
            .iter()
            .all(|t| t.name != "leaver")
    );
    assert!(
        admin
            .delete_token("leaver", None)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_with_a_csr_over_16_kib_is_refused_before_anything_is_parsed() {
    let cluster = ready_cluster().await;
    let channel = skiff_pki::tls::endpoint(&cluster.endpoint(1))
        .unwrap()
        .connect_with_connector_lazy(skiff_pki::tls::connector(cluster.ca_only_tls_config()));
    // Anyone who reaches the port may call JoinNode: no proof, no certificate needed yet.
    let err = ClusterClient::new(channel)
        .join_node(JoinNodeRequest {
            node_name: "w1".into(),
            csr_pem: "x".repeat(16 * 1024 + 1),
            proof: vec![0; 32],
            node_ip: "127.0.0.1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "csr_pem: Too long: must have at most 16384 bytes"
    );
}

/// A node credential for `name`, obtained as an agent does: (certificate PEM, key PEM).
async fn join(cluster: &ControlPlaneCluster, name: &str) -> (String, String) {
    let key = NodeKey::generate().unwrap();
    let cert = cluster
        .join_node(&cluster.cluster_token(), name, &key)
        .await
        .unwrap();
    (cert, key.key_pem())
}

fn node_client(cluster: &ControlPlaneCluster, cert: &str, key: &str) -> Client {
    Client::builder(cluster.endpoints())
        .tls(cluster.tls_config_with(Some((cert, key))))
        .build()
        .unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_credential_writes_only_its_own_node_and_the_status_of_pods_bound_to_it() {
    let cluster = ready_cluster().await;
    let admin = cluster.client();
    let (cert1, key1) = join(&cluster, "w1").await;
    let (cert2, key2) = join(&cluster, "w2").await;
    let w1 = node_client(&cluster, &cert1, &key1);
    let w2 = node_client(&cluster, &cert2, &key2);
    w1.create(&node("w1")).await.unwrap();
    w2.create(&node("w2")).await.unwrap();
    assert_eq!(
        forbidden(w1.create(&node("w3")).await),
        r#"nodes "w3" is forbidden: node "w1" is not allowed to modify node "w3""#
    );
    // The control plane gives each node its pod CIDR.
    let cidr_of = |n: Node| n.spec.and_then(|s| s.pod_cidr);
    let own = {
        let mut got = None;
        for _ in 0..100 {
            got = cidr_of(admin.get::<Node>("", "w1").await.unwrap());
            if got.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got.expect("w1 gets a pod CIDR")
    };

    // Label or cordon w2, write its status, beat for it: all refused.
    let label = MetadataPatch::default().set_label("gpu", "true");
    assert_eq!(
        forbidden(w1.patch_metadata::<Node>("", "w2", &label).await),
        r#"nodes "w2" is forbidden: node "w1" is not allowed to modify node "w2""#
    );
    let mut w2_node = admin.get::<Node>("", "w2").await.unwrap();
    w2_node
        .spec
        .get_or_insert_with(Default::default)
        .unschedulable = Some(true);
    assert!(is_forbidden(w1.update(&w2_node).await));
    assert!(is_forbidden(w1.update_status(&w2_node).await));
    let beat = cluster_call(&cluster, &cert1, &key1, "w2").await;
    assert_eq!(beat.code(), tonic::Code::PermissionDenied, "{beat:?}");
    // Its own: status and labels yes, the pod CIDR no.
    let mut w1_node = admin.get::<Node>("", "w1").await.unwrap();
    w1.update_status(&w1_node).await.unwrap();
    w1.patch_metadata::<Node>("", "w1", &label).await.unwrap();
    w1_node = admin.get::<Node>("", "w1").await.unwrap();
    w1_node.spec.get_or_insert_with(Default::default).pod_cidr = Some("10.244.250.0/24".into());
    assert_eq!(
        forbidden(w1.update(&w1_node).await),
        r#"nodes "w1" is forbidden: node "w1" is not allowed to modify spec.podCIDR"#
    );
    assert_eq!(
        cidr_of(admin.get::<Node>("", "w1").await.unwrap()),
        Some(own)
    );

    // Pods: status of its own only; no creates, no spec changes, no deletes it starts.
    let on_w1 = admin
        .create(&pod("on-w1", "default", Some("w1")))
        .await
        .unwrap();
    let on_w2 = admin
        .create(&pod("on-w2", "default", Some("w2")))
        .await
        .unwrap();
    w1.update_status(&on_w1).await.unwrap();
    assert_eq!(
        forbidden(w1.update_status(&on_w2).await),
        r#"pods "on-w2" is forbidden: node "w1" can only update pod status for pods with spec.nodeName set to itself"#
    );
    assert!(is_forbidden(
        w1.create(&pod("mine", "default", Some("w1"))).await
    ));
    assert!(is_forbidden(w1.update(&on_w1).await));
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        force: false,
    };
    for name in ["on-w1", "on-w2"] {
        assert_eq!(
            forbidden(w1.delete::<Pod>("default", name, &now).await),
            format!(
                r#"pods "{name}" is forbidden: node "w1" may only confirm the deletion of terminating pods with spec.nodeName set to itself"#
            )
        );
    }
    // Once someone else deleted its pod, the node confirms the containers are gone.
    admin
        .delete::<Pod>("default", "on-w1", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = w1.delete::<Pod>("default", "on-w1", &now).await.unwrap();
    assert!(deleted.removed);
    // And nodes change nothing else.
    assert!(is_forbidden(w1.create(&namespace("x")).await));
    assert!(is_forbidden(w1.list_tokens(None).await));
    assert!(is_forbidden(w1.cluster_status().await));
    // Reading what an agent needs still works.
    w1.list::<Pod>(&ListParams::default()).await.unwrap();
    w1.list::<Node>(&ListParams::default()).await.unwrap();
}

/// A heartbeat for `name` with the node credential `cert`/`key`: the refusal, if any.
async fn cluster_call(
    cluster: &ControlPlaneCluster,
    cert: &str,
    key: &str,
    name: &str,
) -> tonic::Status {
    let channel = skiff_pki::tls::endpoint(&cluster.endpoint(1))
        .unwrap()
        .connect_with_connector_lazy(skiff_pki::tls::connector(
            cluster.tls_config_with(Some((cert, key))),
        ));
    match ClusterClient::new(channel)
        .node_heartbeat(NodeHeartbeatRequest {
            node_name: name.into(),
        })
        .await
    {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_token_reads_a_running_pods_logs_an_edit_token_execs_and_the_agent_works_within_noderestriction()
 {
    use skiff_tests::agent::AgentProcess;
    use skiff_tests::cluster::eventually;
    use skiff_tests::host::BUSYBOX;
    if !skiff_tests::host::privileged_tests_can_run() {
        return;
    }
    let cluster = ready_cluster().await;
    let admin = cluster.client();
    // The agent runs on its node credential: registering, heartbeats, pod status, events and
    // the confirmation of a deletion all pass NodeRestriction, or the pod never runs or goes.
    let agent = AgentProcess::start("node-1", &cluster.endpoints(), &[]).expect("agent");
    let mut web = pod("web", "default", None);
    web.spec.containers[0].image = "busybox".into();
    web.spec.containers[0].command = vec![
        BUSYBOX.into(),
        "sh".into(),
        "-c".into(),
        "echo hello-from-web; exec sleep 3600".into(),
    ];
    admin.create(&web).await.unwrap();
    let view = make_token(&admin, "viewer", "view", None, None).await;
    let viewer = cluster.bearer_client(&cluster.endpoints(), &view);
    eventually(READY, || async {
        let logs = viewer
            .logs_text("default", "web", &Default::default())
            .await?;
        anyhow::ensure!(logs.contains("hello-from-web"), "logs so far: {logs:?}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    assert!(is_forbidden(
        viewer
            .exec_output("default", "web", None, &["true".into()])
            .await
    ));
    let edit = make_token(&admin, "editor", "edit", None, None).await;
    let editor = cluster.bearer_client(&cluster.endpoints(), &edit);
    let output = editor
        .exec_output(
            "default",
            "web",
            None,
            &[BUSYBOX.into(), "echo".into(), "in-the-pod".into()],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "in-the-pod");
    // Deleted by the editor, confirmed gone by the node.
    editor
        .delete::<Pod>(
            "default",
            "web",
            &DeleteParams {
                grace_period_seconds: Some(1),
                force: false,
            },
        )
        .await
        .unwrap();
    eventually(READY, || async {
        match admin.get::<Pod>("default", "web").await {
            Err(e) if e.is_not_found() => Ok(()),
            other => anyhow::bail!("still there: {other:?}"),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    assert!(
        !agent.log().contains("is forbidden"),
        "the agent was refused something:\n{}",
        agent.log()
    );
}
