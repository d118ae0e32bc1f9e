//! `kubectl port-forward` against Skiff's Kubernetes API on a 3-member control plane with
//! two agents: kubectl 1.32 tunnels SPDY/3.1 through a WebSocket, and with
//! KUBECTL_PORT_FORWARD_WEBSOCKETS=false speaks SPDY/3.1 on the upgraded connection; both
//! reach a busybox httpd in the pod. kubectl missing skips, and fails under
//! SKIFF_REQUIRE_PRIVILEGED, as every missing prerequisite does.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiff_tests::cluster::eventually;
use skiff_tests::host::{BUSYBOX, runs_without};
use skiff_tests::kubectl::{Kubectl, missing_kubectl};

const SETTLE: Duration = Duration::from_secs(30);

/// A `kubectl port-forward` in the background, its output in files; killed when dropped
/// (also when the test fails).
struct PortForward {
    child: Child,
    dir: tempfile::TempDir,
}

impl PortForward {
    fn start(kubectl: &Kubectl, args: &[&str], websockets: bool) -> PortForward {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let err = std::fs::File::create(dir.path().join("err")).unwrap();
        // -v=6 logs each request with its method and status: which transport was used.
        let child = kubectl
            .command()
            .args(["port-forward", "-v=6"])
            .args(args)
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if websockets { "true" } else { "false" },
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("run kubectl port-forward");
        PortForward { child, dir }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err")).unwrap_or_default()
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `http://127.0.0.1:PORT/` through busybox wget (3 s at most): the body.
fn fetch(port: u16) -> anyhow::Result<String> {
    let output = Command::new("timeout")
        .args(["3", BUSYBOX, "wget", "-qO-"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "wget: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Forwards 18080 to the pod's 8080 over the transport asked for and fetches the page
/// through it, twice (two forwarded connections on one upgraded connection); kubectl's
/// log, to see how it went.
async fn forward_and_fetch(kubectl: &Kubectl, websockets: bool, body: &str) -> String {
    let forward = PortForward::start(kubectl, &["pod/web", "18080:8080"], websockets);
    eventually(SETTLE, || async {
        anyhow::ensure!(
            forward
                .stdout()
                .contains("Forwarding from 127.0.0.1:18080 -> 8080"),
            "not forwarding yet: {}",
            forward.stderr()
        );
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..2 {
        let fetched = tokio::task::spawn_blocking(|| fetch(18080)).await.unwrap();
        let fetched = fetched
            .unwrap_or_else(|e| panic!("{e}\nkubectl:\n{}{}", forward.stdout(), forward.stderr()));
        assert_eq!(fetched, body);
    }
    assert!(
        forward.stdout().contains("Handling connection for 18080"),
        "{}",
        forward.stdout()
    );
    forward.stderr()
}

/// kubectl's -v=6 line for the upgrade request: its method, and its status.
fn upgrade_line(log: &str) -> Option<&str> {
    log.lines()
        .find(|l| l.contains("/pods/web/portforward") && l.contains("101 Switching Protocols"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_reaches_a_pods_web_server_over_a_websocket_and_over_plain_spdy() {
    if !skiff_tests::host::privileged_tests_can_run() || !runs_without(missing_kubectl().as_deref())
    {
        return;
    }
    // The agents live as long as the test: dropping them stops them.
    let (cluster, _agents) = skiff_tests::kubectl::cluster_with_ready_agents(SETTLE).await;
    let kubectl = Kubectl::new(&cluster, None);

    // A page only this test serves: another test's server on the port would not pass.
    let token = format!("skiff-port-forward-{}", std::process::id());
    let script = format!(
        "mkdir -p /tmp/{token} && echo {token} > /tmp/{token}/index.html && \
         exec {BUSYBOX} httpd -f -p 8080 -h /tmp/{token}"
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: main\n    image: busybox\n    command: [{BUSYBOX}, sh, -c, \"{script}\"]\n    \
         ports:\n    - containerPort: 8080\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, manifest).unwrap();
    kubectl.ok(&["create", "-f", path.to_str().unwrap()]);
    kubectl.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);
    let body = format!("{token}\n");

    // kubectl 1.32's default: SPDY tunnelled through a WebSocket (a GET upgraded).
    let log = forward_and_fetch(&kubectl, true, &body).await;
    let line = upgrade_line(&log).unwrap_or_else(|| panic!("no upgrade logged:\n{log}"));
    assert!(line.contains("GET"), "{line}");

    // Forced onto plain SPDY/3.1 (a POST upgraded).
    let log = forward_and_fetch(&kubectl, false, &body).await;
    let line = upgrade_line(&log).unwrap_or_else(|| panic!("no upgrade logged:\n{log}"));
    assert!(line.contains("POST"), "{line}");

    // A port nothing listens on: the agent's refusal comes back on the error stream, and
    // kubectl prints it.
    let forward = PortForward::start(&kubectl, &["pod/web", "18081:9"], true);
    eventually(SETTLE, || async {
        anyhow::ensure!(
            forward
                .stdout()
                .contains("Forwarding from 127.0.0.1:18081 -> 9")
        );
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", forward.stderr()));
    let fetched = tokio::task::spawn_blocking(|| fetch(18081)).await.unwrap();
    assert!(fetched.is_err(), "{fetched:?}");
    eventually(SETTLE, || async {
        let err = forward.stderr();
        anyhow::ensure!(
            err.contains("error forwarding port 9 to pod web"),
            "not yet: {err}"
        );
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    drop(forward);
    kubectl.ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
}
