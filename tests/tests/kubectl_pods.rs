//! The real kubectl (v1.32) working with pods and deployments through Skiff's Kubernetes
//! API on a 3-member control plane with two agents: logs, exec, describe with events,
//! scale, rollout status, wait, cordon and drain. kubectl missing skips these tests, and
//! fails them when SKIFF_REQUIRE_PRIVILEGED is set (CI).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use skiff_api::types::Pod;
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, eventually};
use skiff_tests::host::runs_without;
use skiff_tests::kubectl::{Kubectl, missing_kubectl};

const SETTLE: Duration = Duration::from_secs(60);

/// Three members and two agents whose nodes are Ready, or `None` when the test cannot run.
async fn cluster_with_agents() -> Option<(ControlPlaneCluster, Vec<AgentProcess>)> {
    if !skiff_tests::host::privileged_tests_can_run() || !runs_without(missing_kubectl().as_deref())
    {
        return None;
    }
    Some(skiff_tests::kubectl::cluster_with_ready_agents(SETTLE).await)
}

fn write(dir: &Path, name: &str, manifest: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, manifest).unwrap();
    path
}

/// A pod with two containers: `main` counts a line a second, `side` says it started.
const TALKER: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done"]
  - name: side
    image: busybox
    command: ["sh", "-c", "echo side-started; exec sleep 3600"]
"#;

/// A pod whose container exits after two seconds and is restarted, counting its attempts
/// in an emptyDir that outlives them.
const RESTARTER: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: restarter
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: data
    emptyDir: {}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo attempt $n; sleep 2"]
    volumeMounts:
    - name: data
      mountPath: /data
"#;

/// The number in a `line N` output line.
fn line_number(line: &str) -> Option<u64> {
    line.trim().strip_prefix("line ")?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_logs_execs_with_exit_codes_and_stdin_and_describes_a_pod_with_its_events() {
    let Some((cluster, agents)) = cluster_with_agents().await else {
        return;
    };
    let kubectl = Kubectl::new(&cluster, None);
    let dir = tempfile::tempdir().unwrap();
    let talker = write(dir.path(), "talker", TALKER);
    kubectl.ok(&["create", "-f", talker.to_str().unwrap()]);
    let (code, out, err) = kubectl.run(&[
        "wait",
        "--for=condition=Ready",
        "pod/talker",
        "--timeout=60s",
    ]);
    assert_eq!(code, 0, "{out}{err}\n{}", agents[0].log());

    // -c picks a container; without it kubectl takes the first, and says so.
    eventually(SETTLE, || async {
        let side = kubectl.ok(&["logs", "talker", "-c", "side"]);
        anyhow::ensure!(side == "side-started\n", "{side:?}");
        Ok(())
    })
    .await
    .unwrap();
    let (code, out, err) = kubectl.run(&["logs", "talker"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("line 0\n"), "{out}");
    assert!(
        err.contains(r#"Defaulted container "main" out of: main, side"#),
        "{err}"
    );
    let (_, _, err) = kubectl.run(&["logs", "talker", "-c", "nope"]);
    assert_eq!(
        err.trim(),
        // kubectl checks the name against the pod itself before asking the server.
        "error: container nope is not valid for pod talker"
    );

    // --tail: the last lines only; --timestamps: each line after its RFC 3339 time.
    eventually(SETTLE, || async {
        let all = kubectl.ok(&["logs", "talker", "-c", "main"]);
        anyhow::ensure!(all.lines().count() >= 3, "{all}");
        Ok(())
    })
    .await
    .unwrap();
    let tail = kubectl.ok(&["logs", "talker", "-c", "main", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(line_number(&tail).is_some_and(|n| n >= 2), "{tail}");
    let stamped = kubectl.ok(&["logs", "talker", "-c", "side", "--timestamps"]);
    let (time, text) = stamped.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "side-started");
    assert!(time.parse::<skiff_api::meta::Time>().is_ok(), "{stamped}");

    // -f: a line written after kubectl started comes through while it runs.
    let before = kubectl.ok(&["logs", "talker", "-c", "main"]);
    let last_before = before.lines().filter_map(line_number).max().unwrap();
    let mut follow = kubectl
        .command()
        .args(["logs", "-f", "talker", "-c", "main"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut newer = None;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line_number(&line).is_some_and(|n| n > last_before + 1) {
            newer = Some(line);
            break;
        }
    }
    let still_running = follow.try_wait().unwrap().is_none();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        newer.is_some(),
        "logs -f showed no line after line {last_before}"
    );
    assert!(still_running, "logs -f ended while the container runs");

    // --previous: the attempt before the restart; a container never restarted has none.
    let (_, _, err) = kubectl.run(&["logs", "talker", "-c", "side", "--previous"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (BadRequest): previous terminated container "side" in pod "talker" not found"#
    );
    let restarter = write(dir.path(), "restarter", RESTARTER);
    kubectl.ok(&["create", "-f", restarter.to_str().unwrap()]);
    let client = cluster.client();
    eventually(SETTLE, || async {
        let pod = client.get::<Pod>("default", "restarter").await?;
        let restarts = pod
            .status
            .and_then(|s| s.container_statuses.first().map(|c| c.restart_count))
            .unwrap_or(0);
        anyhow::ensure!(restarts >= 1, "not restarted yet");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", agents[0].log(), agents[1].log()));
    let previous = kubectl.ok(&["logs", "restarter", "--previous"]);
    let attempt: u64 = previous
        .trim()
        .strip_prefix("attempt ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{previous:?}"));
    assert!(attempt >= 1);

    // exec: the command's exit code is kubectl's, its streams are kubectl's.
    let (code, out, err) =
        kubectl.run(&["exec", "talker", "-c", "main", "--", "sh", "-c", "exit 3"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("command terminated with exit code 3"), "{err}");
    let (code, out, err) = kubectl.run(&[
        "exec",
        "talker",
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!((code, out.as_str()), (0, "out\n"), "{err}");
    assert_eq!(err, "err\n");
    // -i: kubectl's stdin reaches the command, and its end ends the command's input.
    let mut cat = kubectl
        .command()
        .args(["exec", "-i", "talker", "-c", "main", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl exec -i");
    cat.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let output = cat.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hi\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success());
    let (_, _, err) = kubectl.run(&["exec", "nope", "--", "true"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );

    // describe finds the pod's events by its involvedObject.
    let described = kubectl.ok(&["describe", "pod", "talker"]);
    let events = described
        .split_once("\nEvents:")
        .map(|(_, events)| events)
        .unwrap_or_else(|| panic!("{described}"));
    assert!(!events.trim_start().starts_with("<none>"), "{described}");
    assert!(events.contains("Started"), "{described}");
    drop(agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scales_a_deployment_waits_for_its_rollout_and_its_pods_and_drains_a_node() {
    let Some((cluster, agents)) = cluster_with_agents().await else {
        return;
    };
    let kubectl = Kubectl::new(&cluster, None);
    kubectl.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=1",
        "--",
        "sleep",
        "3600",
    ]);
    // --current-replicas makes kubectl read the Scale and write it back (GET and PUT).
    let scaled = kubectl.ok(&[
        "scale",
        "deployment/web",
        "--current-replicas=1",
        "--replicas=3",
    ]);
    assert_eq!(scaled, "deployment.apps/web scaled\n");
    let scale: serde_json::Value = serde_json::from_str(&kubectl.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, out, err) = kubectl.run(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert_eq!(code, 0, "{out}{err}\n{}", agents[0].log());
    assert!(
        out.trim_end()
            .ends_with(r#"deployment "web" successfully rolled out"#),
        "{out}"
    );
    let waited = kubectl.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);
    assert_eq!(waited.lines().count(), 3, "{waited}");
    assert!(
        waited.lines().all(|l| l.ends_with(" condition met")),
        "{waited}"
    );

    // An eviction is a graceful delete: the deployment replaces the pod.
    let pods = kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let first = pods
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("pod/")
        .to_string();
    let eviction = serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": first, "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 1},
    });
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("eviction.json");
    std::fs::write(&body, eviction.to_string()).unwrap();
    let evicted = kubectl.ok(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{first}/eviction"),
        "-f",
        body.to_str().unwrap(),
    ]);
    assert!(evicted.contains(r#""status":"Success""#), "{evicted}");
    eventually(SETTLE, || async {
        let names = kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        anyhow::ensure!(!names.contains(&format!("pod/{first}\n")), "{names}");
        anyhow::ensure!(names.lines().count() == 3, "{names}");
        Ok(())
    })
    .await
    .unwrap();

    // The status subresources read as the objects do.
    let node_status: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "--raw", "/api/v1/nodes/node-1/status"]))
            .unwrap();
    assert_eq!(node_status["metadata"]["name"], "node-1");
    let deployment_status: serde_json::Value = serde_json::from_str(&kubectl.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/status",
    ]))
    .unwrap();
    assert_eq!(deployment_status["status"]["replicas"], 3);

    // A plain scale is a merge patch of the Scale.
    let scaled = kubectl.ok(&["scale", "deployment/web", "--replicas=2"]);
    assert_eq!(scaled, "deployment.apps/web scaled\n");
    eventually(SETTLE, || async {
        let names = kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        anyhow::ensure!(names.lines().count() == 2, "{names}");
        Ok(())
    })
    .await
    .unwrap();

    // cordon marks the node unschedulable; drain evicts its pods, which the deployment
    // starts again on the other node.
    assert_eq!(kubectl.ok(&["cordon", "node-1"]), "node/node-1 cordoned\n");
    let nodes = kubectl.ok(&["get", "node", "node-1"]);
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    let (code, out, err) = kubectl.run(&[
        "drain",
        "node-1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--grace-period=1",
        "--timeout=90s",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.trim_end().ends_with("node/node-1 drained"),
        "{out}{err}"
    );
    eventually(SETTLE, || async {
        let wide = kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "wide", "--no-headers"]);
        anyhow::ensure!(wide.lines().count() == 2, "{wide}");
        anyhow::ensure!(
            wide.lines()
                .all(|l| l.contains("Running") && l.contains("node-2")),
            "{wide}"
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        kubectl.ok(&["uncordon", "node-1"]),
        "node/node-1 uncordoned\n"
    );
    drop(agents);
}
