//! A `view` token on the Kubernetes API's newer entry points, with the real kubectl (v1.32)
//! against a 3-member control plane with two agents: the viewer reads pods, and is refused
//! exec, port-forward, patch, eviction, scale and the console's cluster data, each with
//! Kubernetes' Forbidden wording naming the resource and subresource. (An oversized body's
//! 413 is kube_python's.) kubectl missing skips, and fails under SKIFF_REQUIRE_PRIVILEGED,
//! as every missing prerequisite does.

use std::time::Duration;

use skiff_tests::host::{BUSYBOX, runs_without};
use skiff_tests::kubectl::{Kubectl, missing_kubectl};

const SETTLE: Duration = Duration::from_secs(30);

/// Kubernetes' words for `verb` on `resource` refused to the viewer, about pod or
/// deployment `name` in `default`.
fn forbidden(qualified: &str, name: &str, verb: &str, resource: &str, group: &str) -> String {
    format!(
        r#"{qualified} "{name}" is forbidden: User "viewer" cannot {verb} resource "{resource}" in API group "{group}" in the namespace "default""#
    )
}

/// kubectl's whole output for that refusal, as a server error.
fn refused(qualified: &str, name: &str, verb: &str, resource: &str, group: &str) -> String {
    format!(
        "Error from server (Forbidden): {}",
        forbidden(qualified, name, verb, resource, group)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_pods_but_is_refused_exec_port_forward_patch_eviction_scale_and_cluster_data()
 {
    if !skiff_tests::host::privileged_tests_can_run() || !runs_without(missing_kubectl().as_deref())
    {
        return;
    }
    let (cluster, agents) = skiff_tests::kubectl::cluster_with_ready_agents(SETTLE).await;
    let admin = Kubectl::new(&cluster, None);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("x.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: main\n    image: busybox\n    command: [{BUSYBOX}, sleep, \"3600\"]\n"
        ),
    )
    .unwrap();
    admin.ok(&["create", "-f", manifest.to_str().unwrap()]);
    // exec and port-forward look the pod up first and want it running.
    let (code, out, err) = admin.run(&["wait", "--for=condition=Ready", "pod/x", "--timeout=60s"]);
    assert_eq!(
        code,
        0,
        "{out}{err}\n{}\n{}",
        agents[0].log(),
        agents[1].log()
    );
    // A manifest, not `kubectl create deployment`: that one sends protobuf (README).
    let deployment = dir.path().join("web.yaml");
    std::fs::write(
        &deployment,
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: main\n        image: busybox\n        command: [{BUSYBOX}, sleep, \"3600\"]\n"
        ),
    )
    .unwrap();
    admin.ok(&["create", "-f", deployment.to_str().unwrap()]);

    let viewer = Kubectl::with_new_token(&cluster, "viewer", "view").await;

    // What a viewer may do.
    assert_eq!(viewer.ok(&["get", "pods", "-o", "name"]), "pod/x\n");
    assert_eq!(viewer.ok(&["get", "pod", "x", "-o", "name"]), "pod/x\n");

    let exec = viewer.fails(&["exec", "x", "--", "true"]);
    assert!(
        exec.contains(&forbidden("pods", "x", "create", "pods/exec", "")),
        "{exec}"
    );

    let forward = viewer.fails(&["port-forward", "pod/x", "0:8080"]);
    assert!(
        forward.contains(&forbidden("pods", "x", "create", "pods/portforward", "")),
        "{forward}"
    );

    for patch_type in ["merge", "strategic"] {
        let patch = viewer.fails(&[
            "patch",
            "pod",
            "x",
            "--type",
            patch_type,
            "-p",
            r#"{"metadata":{"labels":{"a":"b"}}}"#,
        ]);
        assert_eq!(
            patch.trim(),
            refused("pods", "x", "patch", "pods", ""),
            "--type {patch_type}"
        );
    }

    // What `kubectl drain` posts for each pod.
    let eviction = dir.path().join("eviction.json");
    std::fs::write(
        &eviction,
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"x","namespace":"default"}}"#,
    )
    .unwrap();
    let evict = viewer.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/x/eviction",
        "-f",
        eviction.to_str().unwrap(),
    ]);
    assert_eq!(
        evict.trim(),
        refused("pods", "x", "create", "pods/eviction", "")
    );

    let scale = viewer.fails(&["scale", "deployment", "web", "--replicas=2"]);
    assert_eq!(
        scale.trim(),
        refused(
            "deployments.apps",
            "web",
            "patch",
            "deployments/scale",
            "apps"
        )
    );

    // The console's cluster figures are the members' (`skiff cluster status`): cluster-admin's.
    let (code, out, err) = viewer.run(&["get", "--raw", "/ui/api/cluster"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.starts_with("Error from server (Forbidden): "), "{err}");
    // The same request with the admin's credential is served: the refusal is the role's.
    let figures: serde_json::Value =
        serde_json::from_str(&admin.ok(&["get", "--raw", "/ui/api/cluster"])).unwrap();
    assert!(figures.is_object(), "{figures}");

    // Nothing the viewer tried changed anything.
    assert_eq!(
        admin.ok(&["get", "pod", "x", "-o", "jsonpath={.metadata.labels}"]),
        ""
    );
    assert_eq!(
        admin.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "0"
    );
    assert_eq!(
        admin.ok(&["get", "pod", "x", "-o", "jsonpath={.status.phase}"]),
        "Running"
    );
    drop(agents);
}
