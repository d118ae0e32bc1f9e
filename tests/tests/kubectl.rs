//! The real kubectl (v1.32) against Skiff's Kubernetes API on a 3-member control plane,
//! through the kubeconfig `skiff kubeconfig` prints: reading, writing and Kubernetes'
//! own error messages. kubectl missing skips these tests, and fails them when
//! SKIFF_REQUIRE_PRIVILEGED is set (CI), as every missing prerequisite does.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_tests::cluster::{ControlPlaneCluster, eventually};
use skiff_tests::host::runs_without;
use skiff_tests::kubectl::{Kubectl, missing_kubectl};

const SETTLE: Duration = Duration::from_secs(30);

fn write_pod(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: web\nspec:\n  containers:\n  - name: main\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n"
    );
    std::fs::write(&path, manifest).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_ready_nodes_and_pods_in_every_output_and_creates_and_deletes_a_pod() {
    if !skiff_tests::host::privileged_tests_can_run() || !runs_without(missing_kubectl().as_deref())
    {
        return;
    }
    let (cluster, agents) = skiff_tests::kubectl::cluster_with_ready_agents(SETTLE).await;
    let kubectl = Kubectl::new(&cluster, None);

    let nodes = kubectl.ok(&[
        "get",
        "nodes",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    assert_eq!(nodes, "node-1=True\nnode-2=True\n");
    // Server-side tables: kubectl prints Kubernetes' columns.
    let table = kubectl.ok(&["get", "nodes"]);
    assert!(
        table.starts_with("NAME     STATUS   ROLES    AGE   VERSION\n"),
        "{table}"
    );
    for name in ["node-1", "node-2"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(&format!("{name}   Ready    <none>"))),
            "{table}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let manifest = write_pod(dir.path(), "web");
    let created = kubectl.ok(&["create", "-f", manifest.to_str().unwrap()]);
    assert_eq!(created, "pod/web created\n");
    let (_, _, again) = kubectl.run(&["create", "-f", manifest.to_str().unwrap()]);
    assert_eq!(
        again.trim(),
        r#"Error from server (AlreadyExists): error when creating "PATH": pods "web" already exists"#
            .replace("PATH", manifest.to_str().unwrap())
    );

    let list: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "pods", "-o", "json"])).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["kind"], "Pod");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");
    assert_eq!(list["items"][0]["metadata"]["namespace"], "default");
    let yaml = kubectl.ok(&["get", "pod", "web", "-o", "yaml"]);
    assert!(yaml.starts_with("apiVersion: v1\nkind: Pod\n"), "{yaml}");
    assert!(yaml.contains("  name: web\n"), "{yaml}");
    assert_eq!(kubectl.ok(&["get", "pods", "-o", "name"]), "pod/web\n");
    assert_eq!(
        kubectl.ok(&["get", "pods", "-A", "-o", "name"]),
        "pod/web\n"
    );
    assert_eq!(
        kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]),
        "pod/web\n"
    );
    assert_eq!(
        kubectl.ok(&["get", "pods", "-l", "app!=web", "-o", "name"]),
        ""
    );
    let pods = kubectl.ok(&["get", "pods"]);
    assert!(pods.starts_with("NAME   READY   STATUS"), "{pods}");
    let all = kubectl.ok(&["get", "pods", "-A", "--show-labels"]);
    assert!(
        all.starts_with("NAMESPACE   NAME   READY   STATUS"),
        "{all}"
    );
    let row = all.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("default     web    ") && row.ends_with("app=web"),
        "{all}"
    );
    // The scheduler binds it and the agent runs it: -o wide shows where.
    eventually(SETTLE, || async {
        let wide = kubectl.ok(&["get", "pods", "-o", "wide"]);
        anyhow::ensure!(wide.contains("   NODE   "), "{wide}");
        let row = wide.lines().nth(1).unwrap_or_default();
        anyhow::ensure!(
            row.starts_with("web    1/1     Running") && row.contains("node-"),
            "{wide}"
        );
        Ok(())
    })
    .await
    .unwrap();

    // kubectl wait and delete watch the pod: Ready, then gone once the agent stopped it.
    let waited = kubectl.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=30s"]);
    assert_eq!(waited, "pod/web condition met\n");
    let deleted = kubectl.ok(&["delete", "pod", "web", "--timeout=30s"]);
    assert_eq!(deleted, "pod \"web\" deleted\n");
    let (_, _, err) = kubectl.run(&["get", "pod", "web"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): pods "web" not found"#
    );
    drop(agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_prints_kubernetes_errors_for_missing_invalid_forbidden_and_unauthenticated_requests()
 {
    if !runs_without(missing_kubectl().as_deref()) {
        return;
    }
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let admin = Kubectl::new(&cluster, None);
    let dir = tempfile::tempdir().unwrap();

    // The version skew check reads 1.32: no warning.
    let (code, out, err) = admin.run(&["version"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Server Version: v1.32.0-skiff."), "{out}");
    assert!(!err.contains("WARNING"), "{err}");

    let missing = admin.fails(&["get", "pod", "missing"]);
    assert_eq!(
        missing.trim(),
        r#"Error from server (NotFound): pods "missing" not found"#
    );
    let missing_ns = admin.fails(&["get", "namespace", "nope"]);
    assert_eq!(
        missing_ns.trim(),
        r#"Error from server (NotFound): namespaces "nope" not found"#
    );

    let bad = write_pod(dir.path(), "Bad_Name");
    let invalid = admin.fails(&["create", "-f", bad.to_str().unwrap()]);
    assert!(
        invalid.starts_with(
            r#"The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": "#
        ),
        "{invalid}"
    );

    let viewer = Kubectl::with_new_token(&cluster, "viewer", "view").await;
    assert_eq!(viewer.ok(&["get", "pods", "-o", "name"]), "");
    let web = write_pod(dir.path(), "web");
    let forbidden = viewer.fails(&["create", "-f", web.to_str().unwrap()]);
    // The gRPC API's authorizer and words: it names the object a create is refused for.
    assert_eq!(
        forbidden.trim(),
        format!(
            r#"Error from server (Forbidden): error when creating "{}": pods "web" is forbidden: User "viewer" cannot create resource "pods" in API group "" in the namespace "default""#,
            web.display()
        )
    );

    // kubectl lists in chunks (--chunk-size, 500 by default) and follows the continue token.
    for name in ["a", "b"] {
        let manifest = write_pod(dir.path(), name);
        admin.ok(&["create", "-f", manifest.to_str().unwrap()]);
    }
    assert_eq!(
        admin.ok(&["get", "pods", "--chunk-size=1", "-o", "name"]),
        "pod/a\npod/b\n"
    );
    let page: serde_json::Value = serde_json::from_str(&admin.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods?limit=1",
    ]))
    .unwrap();
    assert_eq!(page["kind"], "PodList");
    assert_eq!(page["items"][0]["metadata"]["name"], "a");
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    assert!(
        page["metadata"]["continue"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );

    // Every member serves it, followers forwarding their writes to the leader.
    for (i, name) in ["m1", "m2", "m3"].iter().enumerate() {
        let manifest = write_pod(dir.path(), name);
        let context = format!("skiff-{}", i + 1);
        let created = admin.ok(&[
            "--context",
            &context,
            "create",
            "-f",
            manifest.to_str().unwrap(),
        ]);
        assert_eq!(created, format!("pod/{name} created\n"));
        let read = admin.ok(&["--context", &context, "get", "pod", "m1", "-o", "name"]);
        assert_eq!(read, "pod/m1\n");
    }

    // get -w prints a pod created while it watches.
    let mut watching = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&admin.kubeconfig)
        .args(["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let lines = BufReader::new(watching.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The initial list first (its header and a row), so the watch is open before the create.
    let first: Vec<String> = (0..2)
        .map(|_| {
            rx.recv_timeout(SETTLE)
                .expect("kubectl get -w printed nothing")
        })
        .collect();
    assert!(first[0].starts_with("NAME   READY   STATUS"), "{first:?}");
    let late = write_pod(dir.path(), "late");
    admin.ok(&["create", "-f", late.to_str().unwrap()]);
    let seen =
        std::iter::from_fn(|| rx.recv_timeout(SETTLE).ok()).find(|line| line.starts_with("late "));
    let _ = watching.kill();
    let _ = watching.wait();
    assert!(
        seen.is_some_and(|l| l.contains("Pending")),
        "get -w never showed the pod"
    );

    let stranger = Kubectl::new(
        &cluster,
        Some("skt.nobody.0123456789abcdef0123456789abcdef"),
    );
    let unauthorized = stranger.fails(&["get", "pods"]);
    assert_eq!(
        unauthorized.trim(),
        "error: You must be logged in to the server (Unauthorized)"
    );
}
