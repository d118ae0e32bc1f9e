//! The web console in a real browser, and `kubectl top` through metrics.k8s.io, on a
//! 3-member control plane with real agents.
//!
//! The browser is Debian's headless Chromium, driven over its DevTools protocol (a websocket
//! on loopback, `--remote-debugging-port=0`): the test navigates, reads the live DOM and
//! takes screenshots. Chromium has no way to be handed the cluster CA without an NSS tool,
//! so the test verifies the member's certificate against the cluster CA itself (rustls) and
//! then tells Chromium to accept exactly that key (`--ignore-certificate-errors-spki-list`):
//! any other certificate is still refused.
//!
//! With SKIFF_CONSOLE_SCREENSHOTS=DIR the first test saves the overview and pods pages at
//! 1280×900 there (docs/images/ holds the ones the README shows).
//!
//! Needs root and /bin/busybox (agents run pods), chromium, kubectl, and runc for the
//! `kubectl top` test; skipped without them unless SKIFF_REQUIRE_PRIVILEGED is set.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use skiff_api::types::Pod;
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually, skiff_cli};
use skiff_tests::host::{BUSYBOX, runs_without};
use skiff_tests::images::BusyboxImage;
use skiff_tests::kubectl::missing_kubectl;
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";
const READY: Duration = Duration::from_secs(30);
/// How soon a pod created while the console is open must show, without a reload.
const LIVE: Duration = Duration::from_secs(2);

fn missing_chromium() -> Option<String> {
    (!std::path::Path::new(CHROMIUM).exists()).then(|| "chromium (apt-get install chromium)".into())
}

/// A cluster and agents `agents` (with `extra` agent flags), every node Ready.
async fn setup(agents: &[&str], extra: &[&str]) -> (ControlPlaneCluster, Vec<AgentProcess>) {
    for program in ["skiff-control-plane", "skiff-agent", "skiff"] {
        binary(program);
    }
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let agents = skiff_tests::agent::start_ready(&cluster, agents, extra, READY).await;
    (cluster, agents)
}

fn sleeper(name: &str, image: &str, node: Option<&str>) -> Pod {
    let mut pod = json!({
        "metadata": {"name": name, "labels": {"app": "console"}},
        "spec": {"containers": [{
            "name": "main", "image": image, "command": ["sleep", "3600"]
        }]}
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = node.into();
    }
    serde_json::from_value(pod).unwrap()
}

/// The SHA-256 of the public key (SPKI, base64) of the certificate member 1 serves the
/// Kubernetes API with, after checking it chains to the cluster CA.
fn member_key_pin(cluster: &ControlPlaneCluster) -> String {
    let url = cluster.kube_url(1);
    let address = url.strip_prefix("https://").expect("https url");
    let config: Arc<rustls::ClientConfig> = cluster.ca_only_tls_config();
    let host = address.rsplit_once(':').unwrap().0.to_string();
    let name = rustls::pki_types::ServerName::try_from(host).expect("server name");
    let mut connection = rustls::ClientConnection::new(config, name).expect("tls client");
    let mut socket = std::net::TcpStream::connect(address).expect("connect to the kube port");
    // The handshake verifies the chain against the cluster CA, or fails here.
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .expect("tls handshake with the cluster CA");
    }
    let leaf = connection.peer_certificates().expect("server certificate")[0].clone();
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("x509");
    let digest =
        <sha2::Sha256 as sha2::Digest>::digest(certificate.tbs_certificate.subject_pki.raw);
    data_encoding::BASE64.encode(&digest)
}

/// Headless Chromium with one page, driven over the DevTools protocol. Killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    next_id: u64,
}

impl Browser {
    async fn start(pin: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                // Root cannot use Chromium's sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--ignore-certificate-errors-spki-list={pin}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start chromium");
        // Chromium writes its DevTools port and browser path here once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let mut browser_path = None;
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&active)
                && let [port, path, ..] = text.lines().collect::<Vec<_>>()[..]
            {
                browser_path = Some(format!("ws://127.0.0.1:{port}{path}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = browser_path.unwrap_or_else(|| {
            panic!(
                "chromium did not start:\n{}",
                std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default()
            )
        });
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("devtools websocket");
        let mut browser = Browser {
            child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 0,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await
            .expect("new page");
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await
            .expect("attach to the page");
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await
            .expect("viewport");
        browser
    }

    /// One DevTools command (on the page once attached): its result.
    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = self.session.clone().into();
        }
        self.socket.send(Message::text(message.to_string())).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let next = tokio::time::timeout_at(deadline.into(), self.socket.next()).await;
            let Ok(Some(frame)) = next else {
                anyhow::bail!("{method}: no answer from chromium");
            };
            let Message::Text(text) = frame? else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text)?;
            if answer["id"] != id {
                continue; // an event
            }
            if !answer["error"].is_null() {
                anyhow::bail!("{method}: {}", answer["error"]);
            }
            return Ok(answer["result"].clone());
        }
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}))
            .await
            .expect("navigate");
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await
            .expect("evaluate");
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is true; how long that took, or what the page showed.
    async fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            if self.eval(expression).await == Value::Bool(true) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                let text = self.eval("document.body.innerText").await;
                return Err(format!(
                    "not true within {timeout:?}: {expression}\npage text:\n{}",
                    text.as_str().unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page as PNG, saved into SKIFF_CONSOLE_SCREENSHOTS (when set) as `name`.
    async fn screenshot(&mut self, name: &str) {
        let Some(dir) = std::env::var_os("SKIFF_CONSOLE_SCREENSHOTS") else {
            return;
        };
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await
            .expect("screenshot");
        let png = data_encoding::BASE64
            .decode(shot["data"].as_str().unwrap().as_bytes())
            .unwrap();
        let path = PathBuf::from(dir).join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JavaScript expression: every one of `names` is in the console's page text.
fn shows_all(names: &[&str]) -> String {
    let names = serde_json::to_string(names).unwrap();
    format!(
        "(() => {{ const t = document.getElementById('page').textContent; return {names}.every(n => t.includes(n)); }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signed_in_through_the_dashboard_link_shows_every_node_and_pod_and_a_new_pod_within_two_seconds()
 {
    if !skiff_tests::host::privileged_tests_can_run()
        || !runs_without(missing_chromium().as_deref())
    {
        return;
    }
    let (cluster, agents) = setup(&["node-1", "node-2"], &[]).await;
    let client = cluster.client();
    for (name, node) in [("web-1", "node-1"), ("web-2", "node-2")] {
        client
            .create(&sleeper(name, "busybox", Some(node)))
            .await
            .unwrap();
    }
    // The admin.conf holds a client certificate: the verb mints a token and says so.
    let kube = cluster.kube_url(1);
    let servers = cluster.endpoints().join(",");
    let (code, out, err) = skiff_cli(&servers, &["dashboard", "--url", "--kube-server", &kube]);
    assert_eq!(code, 0, "skiff dashboard --url: {err}");
    let link = out.trim();
    assert!(
        link.starts_with(&format!("{kube}/ui/#token=skt.dashboard-")),
        "{link}"
    );
    assert!(err.contains("cluster-admin"), "{err}");

    let mut browser = Browser::start(&member_key_pin(&cluster)).await;
    browser.navigate(link).await;
    let every = ["node-1", "node-2"];
    let overview = browser.wait_for(&shows_all(&every), READY).await;
    overview.unwrap_or_else(|e| panic!("{e}\n{}", agents[0].log()));
    // The token left the address bar and lives in the tab's session only.
    let storage = browser
        .eval("[location.hash, localStorage.length, sessionStorage.length > 0]")
        .await;
    assert_eq!(storage, json!(["#/overview", 0, true]));
    // The Raft group: three members, one of them the leader.
    browser
        .wait_for(
            "document.querySelectorAll('#page td.leader').length === 1 && document.getElementById('page').textContent.includes('Follower')",
            READY,
        )
        .await
        .unwrap();
    browser
        .wait_for(
            "!document.getElementById('page').textContent.includes('— / ')",
            Duration::from_secs(20),
        )
        .await
        .ok();
    browser.screenshot("console-overview.png").await;

    browser.eval("location.hash = '#/pods'").await;
    browser
        .wait_for(&shows_all(&["web-1", "web-2", "node-1", "node-2"]), READY)
        .await
        .unwrap();
    let created = Instant::now();
    client
        .create(&sleeper("late-1", "busybox", Some("node-2")))
        .await
        .unwrap();
    let seen = browser
        .wait_for(&shows_all(&["late-1"]), LIVE)
        .await
        .unwrap_or_else(|e| panic!("a pod created after the page loaded: {e}"));
    eprintln!(
        "late-1 shown {:?} after its create returned ({:?} after it was sent)",
        seen,
        created.elapsed()
    );
    // It was a live update: the page never reloaded (its sign-in state is the same tab's).
    assert_eq!(
        browser
            .eval("performance.getEntriesByType('navigation').length")
            .await,
        json!(1)
    );
    browser
        .wait_for(
            "document.getElementById('page').textContent.includes('Running')",
            READY,
        )
        .await
        .ok();
    browser.screenshot("console-pods.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_gets_the_console_sign_in_page_and_no_data() {
    if !skiff_tests::host::privileged_tests_can_run()
        || !runs_without(missing_chromium().as_deref())
    {
        return;
    }
    for program in ["skiff-control-plane", "skiff"] {
        binary(program);
    }
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let client = cluster.client();
    client
        .create(&sleeper("secret-pod", "busybox", None))
        .await
        .unwrap();
    let mut browser = Browser::start(&member_key_pin(&cluster)).await;
    let kube = cluster.kube_url(1);
    browser
        .navigate(&format!("{kube}/ui/#token=skt.nobody.not-a-secret"))
        .await;
    browser
        .wait_for(
            "!document.getElementById('sign-in').hidden && document.getElementById('sign-in-error').textContent.includes('refused')",
            READY,
        )
        .await
        .unwrap();
    // Give any stray request time to come back, then look for data.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = browser
        .eval("[document.getElementById('page').hidden, document.body.textContent.includes('secret-pod'), document.getElementById('nav').hidden, sessionStorage.length]")
        .await;
    assert_eq!(state, json!([true, false, true, 0]));
    // A good token typed into the form signs in.
    let (code, out, err) = skiff_cli(
        &cluster.endpoints().join(","),
        &[
            "token",
            "create",
            "console-viewer",
            "--role",
            "cluster-admin",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let token = out.lines().next().unwrap().to_string();
    let fill = format!(
        "document.getElementById('token').value = {}; document.getElementById('sign-in-form').requestSubmit(); true",
        serde_json::to_string(&token).unwrap()
    );
    browser.eval(&fill).await;
    browser.eval("location.hash = '#/pods'").await;
    browser
        .wait_for(&shows_all(&["secret-pod"]), READY)
        .await
        .unwrap();
}

/// Root, busybox, kubectl and what `--runtime oci` needs (its containers have cgroups, so
/// the agents measure them).
fn kubectl_top_runnable() -> bool {
    if !skiff_tests::host::privileged_tests_can_run() {
        return false;
    }
    let runc = skiff_agent::runtime::oci::find_runc();
    let missing = skiff_agent::runtime::oci::check_host(&runc)
        .err()
        .map(|e| format!("what --runtime oci needs: {e} (apt-get install runc)"))
        .or_else(missing_kubectl);
    runs_without(missing.as_deref())
}

fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The rows of a `kubectl top` table whose first cell is one of `names`, when every one has
/// figures (`NNNm` CPU).
fn rows_with_figures(table: &str, names: &[&str]) -> bool {
    names.iter().all(|name| {
        table.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.first() == Some(name) && cells.get(1).is_some_and(|c| c.ends_with('m'))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_nodes_and_pods_print_the_workers_and_their_pods() {
    if !kubectl_top_runnable() {
        return;
    }
    let (cluster, agents) = setup(&["node-1", "node-2"], &["--runtime", "oci"]).await;
    let servers = cluster.endpoints().join(",");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    let image = BusyboxImage::with_applets(&std::fs::read(BUSYBOX).expect("read /bin/busybox"));
    std::fs::write(&archive, image.docker_archive("busybox:top")).unwrap();
    let archive = archive.display().to_string();
    for node in ["node-1", "node-2"] {
        let (code, _, err) = skiff_cli(&servers, &["image", "import", &archive, "--node", node]);
        assert_eq!(code, 0, "import: {err}\n{}", agents[0].log());
    }
    let client = cluster.client();
    for (name, node) in [("idle-1", "node-1"), ("idle-2", "node-2")] {
        client
            .create(&sleeper(name, "busybox:top", Some(node)))
            .await
            .unwrap();
    }
    let kube = cluster.kube_url(1);
    let (code, config, err) = skiff_cli(&servers, &["kubeconfig", "--kube-server", &kube]);
    assert_eq!(code, 0, "skiff kubeconfig: {err}");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::File::create(&kubeconfig)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();

    // The agents sample every few seconds: the first figures come after a window.
    let mut last = String::new();
    let pods = eventually(Duration::from_secs(60), || {
        let (code, out, err) = kubectl(&kubeconfig, &["top", "pods"]);
        last = format!("{out}{err}");
        async move {
            if code != 0 || !rows_with_figures(&out, &["idle-1", "idle-2"]) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                anyhow::bail!("kubectl top pods: not yet");
            }
            Ok(out)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{last}\n{}", agents[1].log()));
    assert!(
        pods.starts_with("NAME     CPU(cores)   MEMORY(bytes)"),
        "{pods}"
    );
    let (code, nodes, err) = kubectl(&kubeconfig, &["top", "nodes"]);
    assert_eq!(code, 0, "kubectl top nodes: {err}");
    assert!(rows_with_figures(&nodes, &["node-1", "node-2"]), "{nodes}");
    assert!(
        // kubectl 1.32's heading.
        nodes.contains("CPU(%)") && nodes.contains("MEMORY(%)"),
        "{nodes}"
    );
    // One pod by name, and a label selector that matches none.
    let (code, one, err) = kubectl(&kubeconfig, &["top", "pod", "idle-2"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        rows_with_figures(&one, &["idle-2"]) && !one.contains("idle-1"),
        "{one}"
    );
    let (_, none, err) = kubectl(&kubeconfig, &["top", "pods", "-l", "app=nothing"]);
    assert!(
        !none.contains("idle-") && err.contains("No resources found"),
        "{none}{err}"
    );
}
