//! The real kubectl (v1.32) writing through Skiff's Kubernetes API on a 3-member control
//! plane with two agents: create, client-side and server-side apply, the three patch
//! types, label and annotate, dry runs, deletion with a grace period, by label and with
//! each cascade, and the errors kubectl prints for unknown fields and invalid names.
//! kubectl missing skips these tests, and fails them when SKIFF_REQUIRE_PRIVILEGED is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, eventually};
use skiff_tests::host::runs_without;
use skiff_tests::kubectl::{Kubectl, missing_kubectl};

const SETTLE: Duration = Duration::from_secs(30);

/// A cluster of three members and two Ready agents, and kubectl for it.
async fn cluster_with_agents() -> (ControlPlaneCluster, Vec<AgentProcess>, Kubectl) {
    let (cluster, agents) = skiff_tests::kubectl::cluster_with_ready_agents(SETTLE).await;
    let kubectl = Kubectl::new(&cluster, None);
    (cluster, agents, kubectl)
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

fn pod(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n{labels}spec:\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n  terminationGracePeriodSeconds: 1\n"
    )
}

fn deployment(name: &str, replicas: u32, labels: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n{labels}spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n        command: [\"sleep\", \"3600\"]\n      terminationGracePeriodSeconds: 1\n"
    )
}

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl.ok(&all)).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_applies_patches_labels_annotates_and_deletes_as_on_kubernetes() {
    if !skiff_tests::host::privileged_tests_can_run() || !runs_without(missing_kubectl().as_deref())
    {
        return;
    }
    let (_cluster, _agents, kubectl) = cluster_with_agents().await;
    let dir = tempfile::tempdir().unwrap();

    // create -f, then label (refused without --overwrite), annotate.
    let web = write(dir.path(), "web.yaml", &pod("web", "    app: web\n"));
    assert_eq!(
        kubectl.ok(&["create", "-f", path(&web)]),
        "pod/web created\n"
    );
    assert_eq!(
        kubectl.ok(&["label", "pod", "web", "env=prod"]),
        "pod/web labeled\n"
    );
    let refused = kubectl.fails(&["label", "pod", "web", "env=dev"]);
    assert!(
        refused.contains("'env' already has a value (prod)"),
        "{refused}"
    );
    assert_eq!(
        kubectl.ok(&["label", "pod", "web", "env=dev", "--overwrite"]),
        "pod/web labeled\n"
    );
    assert_eq!(
        kubectl.ok(&["annotate", "pod", "web", "note=hello"]),
        "pod/web annotated\n"
    );
    let got = json(&kubectl, &["get", "pod", "web"]);
    assert_eq!(got["metadata"]["labels"]["env"], "dev");
    assert_eq!(got["metadata"]["annotations"]["note"], "hello");

    // kubectl patch, each type.
    let merged = kubectl.ok(&[
        "patch",
        "pod",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ]);
    assert_eq!(merged, "pod/web patched\n");
    let patched = kubectl.ok(&[
        "patch", "pod", "web", "--type=json", "-p",
        r#"[{"op":"test","path":"/metadata/labels/merged","value":"yes"},{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#,
    ]);
    assert_eq!(patched, "pod/web patched\n");
    let failed_test = kubectl.fails(&[
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/metadata/labels/merged","value":"no"}]"#,
    ]);
    assert!(failed_test.contains("test failed"), "{failed_test}");
    let unchanged = kubectl.ok(&[
        "patch",
        "pod",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ]);
    assert_eq!(unchanged, "pod/web patched (no change)\n");
    let got = json(&kubectl, &["get", "pod", "web"]);
    assert_eq!(got["metadata"]["labels"]["json"], "yes");

    // Client-side apply: created, unchanged, configured; a label removed from the file goes.
    let api = write(
        dir.path(),
        "api.yaml",
        &deployment("api", 1, "    app: api\n    tier: back\n", "busybox"),
    );
    assert_eq!(
        kubectl.ok(&["apply", "-f", path(&api)]),
        "deployment.apps/api created\n"
    );
    assert_eq!(
        kubectl.ok(&["apply", "-f", path(&api)]),
        "deployment.apps/api unchanged\n"
    );
    write(
        dir.path(),
        "api.yaml",
        &deployment("api", 2, "    app: api\n", "busybox"),
    );
    assert_eq!(
        kubectl.ok(&["apply", "-f", path(&api)]),
        "deployment.apps/api configured\n"
    );
    let got = json(&kubectl, &["get", "deployment", "api"]);
    assert_eq!(got["metadata"]["labels"], serde_json::json!({"app": "api"}));
    assert_eq!(got["spec"]["replicas"], 2);
    let applied =
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap_or_default();
    assert!(applied.contains(r#""replicas":2"#), "{applied}");

    // A strategic patch merges the container by name: its image and command stay.
    let strategic = kubectl.ok(&[
        "patch", "deployment", "api", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"MODE","value":"fast"}]}]}}}}"#,
    ]);
    assert_eq!(strategic, "deployment.apps/api patched\n");
    let got = json(&kubectl, &["get", "deployment", "api"]);
    let container = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox");
    assert_eq!(container["env"][0]["name"], "MODE");
    assert_eq!(container["command"][0], "sleep");

    // A server dry run checks everything and writes nothing.
    write(
        dir.path(),
        "api.yaml",
        &deployment("api", 5, "    app: api\n", "busybox"),
    );
    assert_eq!(
        kubectl.ok(&["apply", "-f", path(&api), "--dry-run=server"]),
        "deployment.apps/api configured (server dry run)\n"
    );
    assert_eq!(
        json(&kubectl, &["get", "deployment", "api"])["spec"]["replicas"],
        2
    );
    let dry_pod = write(dir.path(), "dry.yaml", &pod("dry", "    app: dry\n"));
    assert_eq!(
        kubectl.ok(&["create", "-f", path(&dry_pod), "--dry-run=server"]),
        "pod/dry created (server dry run)\n"
    );
    let (_, _, missing) = kubectl.run(&["get", "pod", "dry"]);
    assert!(missing.contains("NotFound"), "{missing}");
    assert_eq!(
        kubectl.ok(&["delete", "pod", "web", "--dry-run=server"]),
        "pod \"web\" deleted (server dry run)\n"
    );
    kubectl.ok(&["get", "pod", "web"]);

    // create namespace, run, delete with a grace period and by label.
    assert_eq!(
        kubectl.ok(&["create", "namespace", "team"]),
        "namespace/team created\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "run",
            "one",
            "--image=busybox",
            "--restart=Never",
            "-n",
            "team",
            "--",
            "sleep",
            "3600"
        ]),
        "pod/one created\n"
    );
    let one = json(&kubectl, &["get", "pod", "one", "-n", "team"]);
    assert_eq!(one["spec"]["restartPolicy"], "Never");
    assert_eq!(one["metadata"]["labels"]["run"], "one");
    for name in ["b1", "b2"] {
        let file = write(
            dir.path(),
            &format!("{name}.yaml"),
            &pod(name, "    app: batch\n"),
        );
        kubectl.ok(&["create", "-f", path(&file)]);
    }
    let by_label = kubectl.ok(&["delete", "pods", "-l", "app=batch", "--timeout=60s"]);
    assert_eq!(by_label, "pod \"b1\" deleted\npod \"b2\" deleted\n");
    assert_eq!(
        kubectl.ok(&["get", "pods", "-l", "app=batch", "-o", "name"]),
        ""
    );
    assert_eq!(
        kubectl.ok(&["delete", "pod", "web", "--grace-period=1", "--timeout=60s"]),
        "pod \"web\" deleted\n"
    );

    // Bad input: an unknown field is named, an invalid name is `is invalid`.
    let unknown = write(
        dir.path(),
        "unknown.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: odd\nspec:\n  foo: 1\n  containers:\n  - name: main\n    image: busybox\n",
    );
    let strict = kubectl.fails(&["create", "-f", path(&unknown)]);
    assert!(
        strict.contains(r#"strict decoding error: unknown field "spec.foo""#),
        "{strict}"
    );
    let invalid = write(dir.path(), "invalid.yaml", &pod("Bad_Name", "    app: x\n"));
    let refused = kubectl.fails(&["apply", "-f", path(&invalid)]);
    assert!(
        refused
            .contains(r#"The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name""#),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_owns_fields_and_cascades_orphan_and_foreground_as_on_kubernetes() {
    if !skiff_tests::host::privileged_tests_can_run() || !runs_without(missing_kubectl().as_deref())
    {
        return;
    }
    let (_cluster, _agents, kubectl) = cluster_with_agents().await;
    let dir = tempfile::tempdir().unwrap();

    // apply --server-side creates, applies again, and removes what it stops applying.
    let ssa = write(
        dir.path(),
        "ssa.yaml",
        &deployment("ssa", 2, "    app: ssa\n    tier: back\n", "busybox"),
    );
    for _ in 0..2 {
        assert_eq!(
            kubectl.ok(&["apply", "--server-side", "-f", path(&ssa)]),
            "deployment.apps/ssa serverside-applied\n"
        );
    }
    let got = json(
        &kubectl,
        &["get", "deployment", "ssa", "--show-managed-fields"],
    );
    let managed = &got["metadata"]["managedFields"][0];
    assert_eq!(managed["manager"], "kubectl");
    assert_eq!(managed["operation"], "Apply");
    assert_eq!(managed["fieldsType"], "FieldsV1");
    assert!(
        managed["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{managed}"
    );
    write(
        dir.path(),
        "ssa.yaml",
        &deployment("ssa", 2, "    app: ssa\n", "busybox"),
    );
    kubectl.ok(&["apply", "--server-side", "-f", path(&ssa)]);
    let got = json(&kubectl, &["get", "deployment", "ssa"]);
    assert_eq!(got["metadata"]["labels"], serde_json::json!({"app": "ssa"}));

    // Another manager changing kubectl's field conflicts, unless it forces.
    let other = write(
        dir.path(),
        "other.yaml",
        &deployment("ssa", 2, "    app: ssa\n", "busybox:1.36"),
    );
    let conflict = kubectl.fails(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        path(&other),
    ]);
    assert!(
        conflict.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.template.spec.containers[name="main"].image"#),
        "{conflict}"
    );
    assert_eq!(
        kubectl.ok(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            path(&other),
        ]),
        "deployment.apps/ssa serverside-applied\n"
    );
    let got = json(&kubectl, &["get", "deployment", "ssa"]);
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    // Both managers applied replicas 2, so they share it: on Kubernetes, either changing a
    // shared field conflicts with the other, and a server dry run detects the conflict as
    // the real apply would. Forced, the dry run succeeds and still writes nothing.
    let dry = write(
        dir.path(),
        "dry.yaml",
        &deployment("ssa", 4, "    app: ssa\n", "busybox:1.36"),
    );
    let dry_run = [
        "apply",
        "--server-side",
        "--field-manager=other",
        "--dry-run=server",
        "-f",
        path(&dry),
    ];
    let conflict = kubectl.fails(&dry_run);
    assert!(
        conflict
            .contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "{conflict}"
    );
    let forced = [&dry_run[..], &["--force-conflicts"]].concat();
    assert_eq!(
        kubectl.ok(&forced),
        "deployment.apps/ssa serverside-applied (server dry run)\n"
    );
    assert_eq!(
        json(&kubectl, &["get", "deployment", "ssa"])["spec"]["replicas"],
        2
    );

    // --cascade=orphan: the deployment goes, its pods stay, no longer owned.
    let pods_of = |app: &str| {
        let list = json(&kubectl, &["get", "pods", "-l", &format!("app={app}")]);
        list["items"].as_array().cloned().unwrap_or_default()
    };
    eventually(SETTLE, || async {
        anyhow::ensure!(pods_of("ssa").len() == 2);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        kubectl.ok(&[
            "delete",
            "deployment",
            "ssa",
            "--cascade=orphan",
            "--timeout=60s"
        ]),
        "deployment.apps \"ssa\" deleted\n"
    );
    let (_, _, gone) = kubectl.run(&["get", "deployment", "ssa"]);
    assert!(gone.contains("NotFound"), "{gone}");
    // Long enough for the controllers to have collected them, were they still owned.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = pods_of("ssa");
    assert_eq!(left.len(), 2, "{left:?}");
    for pod in &left {
        assert!(pod["metadata"].get("ownerReferences").is_none(), "{pod}");
        assert!(pod["metadata"].get("deletionTimestamp").is_none(), "{pod}");
    }

    // --cascade=foreground: the pods go first, then the deployment.
    let fg = write(
        dir.path(),
        "fg.yaml",
        &deployment("fg", 2, "    app: fg\n", "busybox"),
    );
    kubectl.ok(&["apply", "-f", path(&fg)]);
    eventually(SETTLE, || async {
        anyhow::ensure!(pods_of("fg").len() == 2);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        kubectl.ok(&[
            "delete",
            "deployment",
            "fg",
            "--cascade=foreground",
            "--timeout=60s"
        ]),
        "deployment.apps \"fg\" deleted\n"
    );
    assert!(pods_of("fg").is_empty());
    let (_, _, gone) = kubectl.run(&["get", "deployment", "fg"]);
    assert!(gone.contains("NotFound"), "{gone}");
}
