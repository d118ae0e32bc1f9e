//! Prometheus metrics and `skiff top` end to end: a three-member control plane and real
//! agents, each serving `/metrics` on its own loopback port (the harness gives every
//! member and agent a `--metrics-listen` of its own).
//!
//! - A real Prometheus (Debian's, `/usr/bin/prometheus`) scrapes all five endpoints, and
//!   `promtool check metrics` finds no parse error in a member's or an agent's output.
//! - The figures follow the cluster: writes grow the applied index and the request
//!   counters, a killed leader shows in the new leader's leader-changes counter, and the
//!   agents' pod-start histograms count the pods started.
//! - `skiff top pods` shows a container spinning a CPU at half a core or more and an idle
//!   one near zero (the `oci` runtime: its containers have cgroups), and `skiff top nodes`
//!   lists the node.
//!
//! Needs root and /bin/busybox (the agents run pods), Prometheus for the first test and
//! runc for the last; skipped without them unless SKIFF_REQUIRE_PRIVILEGED is set.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use skiff_api::types::{Namespace, Pod};
use skiff_client::{Client, Error, NewToken};
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually, free_port, skiff_cli};
use skiff_tests::host::{BUSYBOX, runs_without};
use skiff_tests::images::BusyboxImage;

const READY: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(60);
const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// A cluster and its agents (process runtime unless `extra` says otherwise), every node
/// Ready.
async fn setup(
    agents: &[&str],
    extra: &[&str],
) -> (ControlPlaneCluster, Client, Vec<AgentProcess>) {
    for program in ["skiff-control-plane", "skiff-agent", "skiff"] {
        binary(program);
    }
    let cluster = ControlPlaneCluster::start(3).expect("start control plane");
    let client = cluster.client();
    client.wait_ready(READY).await.expect("cluster ready");
    let agents = skiff_tests::agent::start_ready(&cluster, agents, extra, READY).await;
    (cluster, client, agents)
}

fn agent_metrics(agent: &AgentProcess) -> String {
    format!(
        "127.0.0.1:{}",
        agent
            .metrics_port
            .expect("the harness gives agents a metrics port")
    )
}

/// `GET path` over HTTP/1.0 (so no chunked answer): the status line and the body.
async fn http_get(address: &str, path: &str) -> anyhow::Result<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8(answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {answer:?}"))?;
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

/// The metrics text an endpoint serves.
async fn scrape(address: &str) -> anyhow::Result<String> {
    let (status, body) = http_get(address, "/metrics").await?;
    anyhow::ensure!(status.contains(" 200 "), "{address}: {status}");
    Ok(body)
}

/// The value of the sample named exactly `series` (name and labels as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The sum of every sample of `name`, whatever its labels.
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// A Prometheus server scraping `targets` every second, with its data in a temp dir; killed
/// when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(members: &[String], agents: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "skiff-control-plane", "static_configs": [{"targets": members}]},
                {"job_name": "skiff-agent", "static_configs": [{"targets": agents}]},
            ],
        });
        // JSON is YAML.
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        Prometheus { child, port, dir }
    }

    /// The single number an instant query answers.
    async fn query(&self, query: &str) -> anyhow::Result<f64> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let address = format!("127.0.0.1:{}", self.port);
        let (status, body) = http_get(&address, &format!("/api/v1/query?query={encoded}")).await?;
        anyhow::ensure!(status.contains(" 200 "), "{status}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body)?;
        let value = answer["data"]["result"][0]["value"][1]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no value in {answer}"))?;
        Ok(value.parse()?)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check metrics` on `text`: its exit code and what it printed.
fn promtool_check(text: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_every_member_and_agent_and_promtool_parses_them() {
    if !skiff_tests::host::privileged_tests_can_run() {
        return;
    }
    let missing = [PROMETHEUS, PROMTOOL]
        .iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("{p} (apt-get install prometheus)"));
    if !runs_without(missing.as_deref()) {
        return;
    }
    let (cluster, _client, agents) = setup(&["node-1", "node-2"], &[]).await;
    let members: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.metrics_endpoint(id))
        .collect();
    let agent_endpoints: Vec<String> = agents.iter().map(agent_metrics).collect();
    let prometheus = Prometheus::start(&members, &agent_endpoints);
    eventually(SETTLE, || async {
        let up = prometheus.query("count(up == 1)").await?;
        anyhow::ensure!(up == 5.0, "count(up == 1) is {up}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n----- prometheus log\n{}", prometheus.log()));

    for endpoint in [&members[0], &agent_endpoints[0]] {
        let text = scrape(endpoint).await.unwrap();
        let (code, printed) = promtool_check(&text);
        assert_eq!(
            code, 0,
            "promtool check metrics on {endpoint}: {printed}\n{text}"
        );
    }
    // Only /metrics is served.
    let (status, _) = http_get(&members[0], "/").await.unwrap();
    assert!(status.contains(" 404 "), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_follow_the_cluster_through_writes_a_leader_change_and_pod_starts() {
    if !skiff_tests::host::privileged_tests_can_run() {
        return;
    }
    let (mut cluster, client, agents) = setup(&["node-1", "node-2"], &[]).await;
    let leader = cluster.wait_for_leader(READY).await.unwrap();
    let requests = |text: &str| sum(text, "skiff_apiserver_request_total");
    let applied = |text: &str| value(text, "skiff_raft_applied_index").unwrap_or(0.0);
    let mut requests_before = 0.0;
    for id in cluster.ids() {
        requests_before += requests(&scrape(&cluster.metrics_endpoint(id)).await.unwrap());
    }
    let leader_metrics = cluster.metrics_endpoint(leader);
    let applied_before = applied(&scrape(&leader_metrics).await.unwrap());

    for i in 0..100 {
        let mut namespace = Namespace::default();
        namespace.metadata.name = format!("metrics-{i}");
        client.create(&namespace).await.unwrap();
    }
    let mut requests_after = 0.0;
    for id in cluster.ids() {
        requests_after += requests(&scrape(&cluster.metrics_endpoint(id)).await.unwrap());
    }
    assert!(
        requests_after >= requests_before + 100.0,
        "requests {requests_before} -> {requests_after}"
    );
    let applied_after = applied(&scrape(&leader_metrics).await.unwrap());
    assert!(
        applied_after >= applied_before + 100.0,
        "applied index {applied_before} -> {applied_after}"
    );

    // Pods started: each agent's histogram counts its own.
    let pods = 3;
    for i in 0..pods {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("sleeper-{i}")},
            "spec": {"containers": [
                {"name": "main", "image": "busybox", "command": [BUSYBOX, "sleep", "3600"]}
            ]}
        }))
        .unwrap();
        client.create(&pod).await.unwrap();
    }
    let pod_starts = "skiff_kubelet_pod_start_duration_seconds_count";
    eventually(SETTLE, || async {
        let mut started = 0.0;
        for agent in &agents {
            started += value(&scrape(&agent_metrics(agent)).await?, pod_starts).unwrap_or(0.0);
        }
        anyhow::ensure!(started == pods as f64, "{pod_starts} sums to {started}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agents[0].log()));
    let running = client
        .list::<Pod>(&skiff_client::ListParams::namespace("default"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    assert_eq!(running, pods, "every counted pod runs");

    // A leader change, as the new leader saw it.
    let changes = "skiff_raft_leader_changes_seen_total";
    let mut before = std::collections::BTreeMap::new();
    for id in cluster.ids() {
        let text = scrape(&cluster.metrics_endpoint(id)).await.unwrap();
        before.insert(id, value(&text, changes).unwrap_or(0.0));
    }
    cluster.kill(leader);
    let new_leader = eventually(SETTLE, || async {
        let id = cluster.wait_for_leader(READY).await?;
        anyhow::ensure!(id != leader, "still {leader}");
        Ok(id)
    })
    .await
    .unwrap();
    let new_leader_metrics = cluster.metrics_endpoint(new_leader);
    let text = eventually(READY, || async {
        let text = scrape(&new_leader_metrics).await?;
        anyhow::ensure!(
            value(&text, "skiff_raft_is_leader") == Some(1.0),
            "not leading yet"
        );
        Ok(text)
    })
    .await
    .unwrap();
    let after = value(&text, changes).unwrap_or(0.0);
    assert!(
        after > before[&new_leader],
        "{changes} on {new_leader}: {} -> {after}",
        before[&new_leader]
    );
}

/// Root and busybox, then what `--runtime oci` needs.
fn oci_runnable() -> bool {
    if !skiff_tests::host::privileged_tests_can_run() {
        return false;
    }
    let runc = skiff_agent::runtime::oci::find_runc();
    let missing = skiff_agent::runtime::oci::check_host(&runc)
        .err()
        .map(|e| format!("what --runtime oci needs: {e} (apt-get install runc)"));
    runs_without(missing.as_deref())
}

/// The CPU column of `skiff top`'s row for `name`, in millicores.
fn millicores(table: &str, name: &str) -> Option<u64> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .and_then(|cells| cells.get(1)?.strip_suffix('m')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skiff_top_shows_a_spinning_pod_at_half_a_core_and_an_idle_one_near_zero() {
    if !oci_runnable() {
        return;
    }
    let (cluster, client, agents) = setup(&["node-1"], &["--runtime", "oci"]).await;
    let servers = cluster.endpoints().join(",");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    let image = BusyboxImage::with_applets(&std::fs::read(BUSYBOX).expect("read /bin/busybox"));
    std::fs::write(&archive, image.docker_archive("busybox:top")).unwrap();
    let archive = archive.display().to_string();
    let (code, _, err) = skiff_cli(&servers, &["image", "import", &archive, "--node", "node-1"]);
    assert_eq!(code, 0, "import: {err}\n{}", agents[0].log());

    for (name, command, requests) in [
        (
            "spin",
            json!(["sh", "-c", "while :; do :; done"]),
            json!({"cpu": "1"}),
        ),
        ("idle", json!(["sleep", "3600"]), json!({})),
    ] {
        // The spinner requests a core: a container without a request gets cpu.shares 2,
        // as in Kubernetes, and next to a busy machine's other work almost no CPU at all.
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{
                "name": "main", "image": "busybox:top", "command": command,
                "resources": {"requests": requests}
            }]}
        }))
        .unwrap();
        client.create(&pod).await.unwrap();
    }
    // Authorized as listing is: a viewer of `default` gets its pods (a label selector
    // narrows them), not every namespace's, nor the nodes.
    let new = NewToken {
        name: "top-viewer".into(),
        role: "view".into(),
        namespace: Some("default".into()),
        ttl: None,
    };
    let (secret, _) = client.create_token(&new).await.unwrap();
    let viewer = cluster.bearer_client(&cluster.endpoints(), &secret);
    eventually(SETTLE, || async {
        let seen = viewer.top_pods("default", "").await?;
        anyhow::ensure!(seen.iter().any(|p| p.name == "spin"), "{seen:?}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agents[0].log()));
    assert!(
        viewer
            .top_pods("default", "app=none")
            .await
            .unwrap()
            .is_empty()
    );
    let everywhere = viewer.top_pods("", "").await;
    assert!(
        matches!(everywhere, Err(Error::Forbidden(_))),
        "{everywhere:?}"
    );
    let nodes = viewer.top_nodes("").await;
    assert!(matches!(nodes, Err(Error::Forbidden(_))), "{nodes:?}");

    eventually(SETTLE, || async {
        let (code, out, err) = skiff_cli(&servers, &["top", "pods"]);
        anyhow::ensure!(code == 0, "skiff top pods: {err}");
        let spin = millicores(&out, "spin");
        let idle = millicores(&out, "idle");
        anyhow::ensure!(
            spin.is_some_and(|m| m >= 500) && idle.is_some_and(|m| m < 50),
            "spin {spin:?}, idle {idle:?} in\n{out}"
        );
        anyhow::ensure!(out.starts_with("NAME"), "{out}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agents[0].log()));

    let (code, out, err) = skiff_cli(&servers, &["top", "nodes"]);
    assert_eq!(code, 0, "skiff top nodes: {err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
        "{out}"
    );
    assert!(millicores(&out, "node-1").is_some(), "{out}");
    // The pod is in `default`, not in another namespace.
    let (code, out, _) = skiff_cli(&servers, &["top", "pods", "-n", "kube-system"]);
    assert_eq!(code, 0);
    assert!(millicores(&out, "spin").is_none(), "{out}");
}
