//! A second client for Skiff's Kubernetes API: PyPI's `kubernetes` package
//! (tests/python/kube_client.py), stricter than kubectl about response fields, against a
//! 3-member control plane. Also the kube port's limits as that client sees them: an
//! oversized body (413), no quorum (503) and an event rate limit (429), each a
//! metav1.Status, the last two with Retry-After. python3 or the package missing skips
//! these tests, and fails them when SKIFF_REQUIRE_PRIVILEGED is set (CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skiff_tests::cluster::{ControlPlaneCluster, skiff_cli};
use skiff_tests::host::runs_without;

const SETTLE: Duration = Duration::from_secs(30);

/// python3 with the `kubernetes` package, unless missing (then what to install).
fn missing_python_client() -> Option<String> {
    let found = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!found).then(|| "python3 with PyPI's kubernetes package (pip install kubernetes)".into())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kube_client.py")
}

/// A kubeconfig for member `id`'s Kubernetes API alone, from `skiff kubeconfig`.
fn kubeconfig(cluster: &ControlPlaneCluster, id: u64, dir: &Path) -> PathBuf {
    let url = cluster.kube_url(id);
    let (code, out, err) = skiff_cli(
        &cluster.endpoints().join(","),
        &["kubeconfig", "--kube-server", &url],
    );
    assert_eq!(code, 0, "skiff kubeconfig: {err}");
    let path = dir.join(format!("kubeconfig-{id}"));
    std::fs::write(&path, out).unwrap();
    path
}

/// Runs the script's `command`: its JSON answer.
fn python(kubeconfig: &Path, command: &[&str]) -> Value {
    let output = Command::new("python3")
        .arg(script())
        .arg(kubeconfig)
        .args(command)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kube_client.py {command:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn runnable() -> bool {
    skiff_tests::host::privileged_tests_can_run()
        && runs_without(missing_python_client().as_deref())
}

/// A refusal as a metav1.Status with `code` and `reason`.
fn assert_status(refused: &Value, code: u64, reason: &str) {
    assert_eq!(refused["code"], code, "{refused}");
    let status = &refused["status"];
    assert_eq!(status["kind"], "Status", "{refused}");
    assert_eq!(status["apiVersion"], "v1", "{refused}");
    assert_eq!(status["status"], "Failure", "{refused}");
    assert_eq!(status["reason"], reason, "{refused}");
    assert_eq!(status["code"], code, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_kubernetes_client_lists_nodes_and_pods_creates_watches_reads_and_deletes_a_pod()
{
    if !runnable() {
        return;
    }
    // The agents live as long as the test: dropping them stops them.
    let (cluster, _agents) = skiff_tests::kubectl::cluster_with_ready_agents(SETTLE).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&cluster, 1, dir.path());

    let flow = python(&config, &["flow"]);
    assert_eq!(
        flow["nodes"],
        serde_json::json!(["node-1", "node-2"]),
        "{flow}"
    );
    assert!(
        flow["list_resource_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{flow}"
    );
    assert_eq!(flow["running"], true, "{flow}");
    let watched = flow["watched"].as_array().unwrap();
    assert_eq!(watched.first().unwrap()[0], "ADDED", "{flow}");
    assert_eq!(watched.last().unwrap()[1], "Running", "{flow}");
    assert_eq!(flow["read_phase"], "Running", "{flow}");
    assert_eq!(flow["read_uid"], flow["created_uid"], "{flow}");
    assert_eq!(flow["gone"], true, "{flow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_request_bytes_gets_413_request_entity_too_large_and_the_member_keeps_serving()
 {
    if !runnable() {
        return;
    }
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&cluster, 1, dir.path());
    // The default --max-request-bytes is 3 MiB.
    let answer = python(&config, &["oversized", &(4 * 1024 * 1024).to_string()]);
    assert_status(&answer["refused"], 413, "RequestEntityTooLarge");
    assert!(
        answer["refused"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-request-bytes"),
        "{answer}"
    );
    assert_eq!(answer["listed_after"], true, "{answer}");
    assert!(cluster.is_running(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_a_kube_request_gets_503_with_retry_after_within_a_bounded_time() {
    if !runnable() {
        return;
    }
    let mut cluster = ControlPlaneCluster::start_ready(3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&cluster, 1, dir.path());
    cluster.kill(2);
    cluster.kill(3);
    let answer = python(&config, &["unavailable"]);
    let refused = &answer["refused"];
    assert_status(refused, 503, "ServiceUnavailable");
    assert_eq!(refused["retry_after"], "1", "{answer}");
    // One attempt (the script turns urllib3's Retry-After retries off): the member answers
    // on its own once its request timeout (--request-timeout-ms, 5 s) runs out, well before
    // the client's 60 s.
    let seconds = answer["seconds"].as_f64().unwrap();
    assert!(seconds < 8.0, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_the_rate_limit_get_429_too_many_requests_with_retry_after() {
    if !runnable() {
        return;
    }
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&cluster, 1, dir.path());
    let answer = python(&config, &["events", "40"]);
    // A burst of 25 from one source about one object (event_limit.rs), then refusals.
    assert_eq!(answer["accepted"], 25, "{answer}");
    let refused = &answer["refused"];
    assert_status(refused, 429, "TooManyRequests");
    assert_eq!(refused["retry_after"], "1", "{answer}");
}
