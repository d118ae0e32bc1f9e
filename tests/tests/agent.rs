//! The node agent for real: a three-node control plane and a `skiff-agent` process running
//! busybox workloads with the `process` runtime. Needs root (namespaces, mounts) and
//! Debian's busybox-static at /bin/busybox; skipped otherwise (see `runnable`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use skiff_api::types::{ContainerStatus, Node, Pod};
use skiff_client::{Client, DeleteParams, LogParams};
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, eventually};
use skiff_tests::pod_security::allow_privileged_pods;

const READY: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);
use skiff_tests::host::BUSYBOX;

fn runnable() -> bool {
    skiff_tests::host::privileged_tests_can_run()
}

struct Setup {
    client: Client,
    agent: AgentProcess,
    _cluster: ControlPlaneCluster,
}

async fn setup() -> Setup {
    let cluster = ControlPlaneCluster::start(3).expect("start control plane");
    let client = cluster.client();
    client.wait_ready(READY).await.expect("cluster ready");
    let agent = AgentProcess::start(
        "node-1",
        &cluster.endpoints(),
        &["--backoff-base", "400ms", "--backoff-cap", "4s"],
    )
    .expect("start agent");
    eventually(READY, || async {
        let node = client.get::<Node>("", "node-1").await?;
        anyhow::ensure!(skiff_tests::nodes::is_ready(&node), "node not ready");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    Setup {
        client,
        agent,
        _cluster: cluster,
    }
}

/// A unique path for a test's mount point or marker file.
fn unique(tag: &str) -> String {
    format!("/tmp/skiff-test-{tag}-{}", uuid_ish())
}

fn uuid_ish() -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{n:016x}")
}

fn sh(script: &str) -> serde_json::Value {
    json!([BUSYBOX, "sh", "-c", script])
}

async fn create(client: &Client, pod: serde_json::Value) -> Pod {
    let pod: Pod = serde_json::from_value(pod).unwrap();
    client.create(&pod).await.unwrap()
}

async fn wait_pod(
    client: &Client,
    name: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Pod) -> bool,
) -> Pod {
    eventually(timeout, || async {
        let pod = client.get::<Pod>("default", name).await?;
        anyhow::ensure!(check(&pod), "{what}: status {:?}", pod.status);
        Ok(pod)
    })
    .await
    .unwrap()
}

fn container_opt<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.iter().find(|c| c.name == name))
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a ContainerStatus {
    container_opt(pod, name)
        .unwrap_or_else(|| panic!("no status for container {name}: {:?}", pod.status))
}

fn restarts(pod: &Pod, name: &str) -> i32 {
    container_opt(pod, name).map_or(0, |c| c.restart_count)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn running(pod: &Pod) -> bool {
    phase(pod) == Some("Running")
}

async fn exec(client: &Client, pod: &str, container: Option<&str>, script: &str) -> (i32, String) {
    let command: Vec<String> = [BUSYBOX, "sh", "-c", script]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = client
        .exec_output("default", pod, container, &command)
        .await
        .unwrap();
    (
        out.exit_code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn delete_all_and_check_clean(s: &Setup) {
    let pods = s
        .client
        .list::<Pod>(&skiff_client::ListParams::namespace("default"))
        .await
        .unwrap();
    for pod in pods.items {
        let _ = s
            .client
            .delete::<Pod>(
                "default",
                &pod.metadata.name,
                &DeleteParams::grace_period(1),
            )
            .await;
    }
    eventually(SETTLE, || async {
        let left = s
            .client
            .list::<Pod>(&skiff_client::ListParams::namespace("default"))
            .await?
            .items
            .len();
        anyhow::ensure!(left == 0, "{left} pods left");
        let leftovers = s.agent.leftovers();
        anyhow::ensure!(leftovers.is_empty(), "leftovers: {leftovers:#?}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.agent.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_share_localhost_and_a_volume() {
    if !runnable() {
        return;
    }
    let s = setup().await;
    let shared = unique("shared");
    create(
        &s.client,
        json!({
            "metadata": {"name": "pair"},
            "spec": {
                "containers": [
                    {"name": "web", "image": "busybox",
                     "command": sh("echo hello > index.html; exec /bin/busybox httpd -f -p 8080 -h ."),
                     "workingDir": shared,
                     "volumeMounts": [{"name": "shared", "mountPath": shared}]},
                    {"name": "fetch", "image": "busybox",
                     "command": sh(&format!("sleep 1; timeout 3 /bin/busybox wget -q -O {shared}/fetched http://127.0.0.1:8080/index.html; exec /bin/busybox sleep 3600")),
                     "volumeMounts": [{"name": "shared", "mountPath": shared}]}
                ],
                "volumes": [{"name": "shared", "emptyDir": {}}]
            }
        }),
    )
    .await;
    let pod = wait_pod(&s.client, "pair", SETTLE, "running and ready", |p| {
        running(p) && ready(p)
    })
    .await;
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(status.start_time.is_some());
    assert!(
        container(&pod, "web")
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("process://"))
    );
    // The second container fetched from the first over localhost, into the shared volume.
    eventually(SETTLE, || async {
        let (code, text) = exec(
            &s.client,
            "pair",
            Some("web"),
            &format!("cat {shared}/fetched"),
        )
        .await;
        anyhow::ensure!(code == 0 && text == "hello\n", "exit {code}: {text:?}");
        Ok(())
    })
    .await
    .unwrap();
    let (_, hostname) = exec(&s.client, "pair", Some("fetch"), "/bin/busybox hostname").await;
    assert_eq!(hostname.trim(), "pair");
    // The emptyDir is not the host's: the host path stays empty.
    assert!(!Path::new(&shared).join("fetched").exists());
    delete_all_and_check_clean(&s).await;
    assert!(!Path::new(&shared).exists(), "mount point removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_back_off() {
    if !runnable() {
        return;
    }
    let s = setup().await;
    create(
        &s.client,
        json!({
            "metadata": {"name": "crashy"},
            "spec": {"containers": [
                {"name": "main", "image": "busybox", "command": [BUSYBOX, "sleep", "3600"]},
                {"name": "crash", "image": "busybox", "command": sh("echo dying; exit 3")}
            ]}
        }),
    )
    .await;
    // Watch the restart count grow and note when each restart was seen.
    let mut seen: BTreeMap<i32, tokio::time::Instant> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut crash_loop = false;
    while tokio::time::Instant::now() < deadline && seen.len() < 5 {
        let pod = s.client.get::<Pod>("default", "crashy").await.unwrap();
        if let Some(status) = pod.status.as_ref()
            && status.container_statuses.len() == 2
        {
            let crash = container(&pod, "crash");
            seen.entry(crash.restart_count)
                .or_insert_with(tokio::time::Instant::now);
            let waiting = crash.state.as_ref().and_then(|s| s.waiting.as_ref());
            if waiting.and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff") {
                crash_loop = true;
                let ready_count = status.container_statuses.iter().filter(|c| c.ready).count();
                assert_eq!(ready_count, 1, "READY 1/2");
                assert_eq!(phase(&pod), Some("Running"));
                let last = crash
                    .last_state
                    .as_ref()
                    .unwrap()
                    .terminated
                    .as_ref()
                    .unwrap();
                assert_eq!(last.exit_code, 3);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(crash_loop, "CrashLoopBackOff seen");
    let times: Vec<tokio::time::Instant> = seen.values().copied().collect();
    assert!(times.len() >= 5, "restart counts seen: {:?}", seen.keys());
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Back-off 0, 0.4, 0.8, 1.6 s…: later restarts come further apart.
    assert!(gaps[3] > gaps[1], "delays grow: {gaps:?}");
    let logs = s
        .client
        .logs_text(
            "default",
            "crashy",
            &LogParams {
                container: Some("crash".into()),
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logs, "dying\n");
    delete_all_and_check_clean(&s).await;
}

/// Pids whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_container_is_restarted() {
    if !runnable() {
        return;
    }
    let s = setup().await;
    let marker = format!("{}", 3000 + (std::process::id() % 1000));
    create(
        &s.client,
        json!({
            "metadata": {"name": "victim"},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                "command": [BUSYBOX, "sleep", marker]}]}
        }),
    )
    .await;
    wait_pod(&s.client, "victim", SETTLE, "running", running).await;
    let pids = pids_running(&[BUSYBOX, "sleep", &marker]);
    assert_eq!(pids.len(), 1, "one container process: {pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let pod = wait_pod(&s.client, "victim", SETTLE, "restarted", |p| {
        running(p) && restarts(p, "main") == 1
    })
    .await;
    let last = container(&pod, "main")
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!((last.exit_code, last.signal), (137, Some(9)));
    let again = pids_running(&[BUSYBOX, "sleep", &marker]);
    assert_eq!(again.len(), 1);
    assert_ne!(again, pids);
    delete_all_and_check_clean(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_and_forced_deletion() {
    if !runnable() {
        return;
    }
    let s = setup().await;
    // The hostPath volume below needs a namespace that admits pods using the host.
    allow_privileged_pods(&s.client, "default").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().display().to_string();
    create(
        &s.client,
        json!({
            "metadata": {"name": "polite"},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                "command": sh("trap 'echo bye > /out/term; exit 0' TERM; while true; do /bin/busybox sleep 0.1; done"),
                "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
                "volumes": [{"name": "out", "hostPath": {"path": out_dir}}]}
        }),
    )
    .await;
    create(
        &s.client,
        json!({
            "metadata": {"name": "stubborn"},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                "command": sh("trap '' TERM; while true; do /bin/busybox sleep 0.1; done")}]}
        }),
    )
    .await;
    create(
        &s.client,
        json!({
            "metadata": {"name": "forced"},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                "command": [BUSYBOX, "sleep", "3999"]}]}
        }),
    )
    .await;
    for name in ["polite", "stubborn", "forced"] {
        wait_pod(&s.client, name, SETTLE, "running", running).await;
    }

    // Polite: its TERM handler runs, and the pod reads Terminating until then.
    let deleted = s
        .client
        .delete::<Pod>("default", "polite", &DeleteParams::grace_period(10))
        .await
        .unwrap();
    assert!(!deleted.removed);
    assert!(deleted.object.metadata.deletion_timestamp.is_some());
    eventually(SETTLE, || async {
        match s.client.get::<Pod>("default", "polite").await {
            Err(e) if e.is_not_found() => Ok(()),
            other => anyhow::bail!(
                "still there: {:?}",
                other.map(|p| p.metadata.deletion_timestamp)
            ),
        }
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("term")).unwrap(),
        "bye\n"
    );

    // Stubborn: ignores TERM, killed when the grace period ends.
    let started = tokio::time::Instant::now();
    s.client
        .delete::<Pod>("default", "stubborn", &DeleteParams::grace_period(2))
        .await
        .unwrap();
    let terminating = s.client.get::<Pod>("default", "stubborn").await.unwrap();
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "Terminating"
    );
    eventually(SETTLE, || async {
        match s.client.get::<Pod>("default", "stubborn").await {
            Err(e) if e.is_not_found() => Ok(()),
            _ => anyhow::bail!("still there"),
        }
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for the grace period"
    );

    // Forced: gone from the API at once, and its process soon after.
    let pids = pids_running(&[BUSYBOX, "sleep", "3999"]);
    assert_eq!(pids.len(), 1);
    let deleted = s
        .client
        .delete::<Pod>("default", "forced", &DeleteParams::force())
        .await
        .unwrap();
    assert!(deleted.removed);
    eventually(Duration::from_secs(10), || async {
        anyhow::ensure!(pids_running(&[BUSYBOX, "sleep", "3999"]).is_empty());
        Ok(())
    })
    .await
    .unwrap();
    delete_all_and_check_clean(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_runtime_refuses_a_security_context_it_cannot_honour_naming_the_field() {
    if !runnable() {
        return;
    }
    let s = setup().await;
    create(
        &s.client,
        json!({
            "metadata": {"name": "as-user"},
            "spec": {"securityContext": {"runAsUser": 1000},
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": [BUSYBOX, "sleep", "3600"]}]}
        }),
    )
    .await;
    let waiting = |pod: &Pod| {
        container_opt(pod, "main")
            .and_then(|c| c.state.as_ref())
            .and_then(|st| st.waiting.clone())
    };
    let pod = wait_pod(&s.client, "as-user", SETTLE, "refused", |p| {
        waiting(p).and_then(|w| w.reason).as_deref() == Some("CreateContainerConfigError")
    })
    .await;
    let uid = nix::unistd::geteuid();
    assert_eq!(
        waiting(&pod).unwrap().message.unwrap_or_default(),
        format!(
            "container \"main\": the process runtime cannot honour securityContext.runAsUser: 1000 (containers run as the agent's user {uid}); run the pod on a node with the oci runtime"
        )
    );
    assert_eq!(restarts(&pod, "main"), 0);
    delete_all_and_check_clean(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_exec_and_port_forward_through_the_control_plane() {
    if !runnable() {
        return;
    }
    let s = setup().await;
    let www = unique("www");
    create(
        &s.client,
        json!({
            "metadata": {"name": "tools"},
            "spec": {"containers": [
                {"name": "web", "image": "busybox",
                 "command": sh("echo one; echo two; echo three; echo served > index.html; exec /bin/busybox httpd -f -p 8080 -h ."),
                 "workingDir": www,
                 "volumeMounts": [{"name": "www", "mountPath": www}]},
                {"name": "ticker", "image": "busybox",
                 "command": sh("i=0; while true; do echo tick $i; i=$((i+1)); /bin/busybox sleep 0.2; done")}
            ],
            "volumes": [{"name": "www", "emptyDir": {}}]}
        }),
    )
    .await;
    wait_pod(&s.client, "tools", SETTLE, "ready", ready).await;
    let web = LogParams {
        container: Some("web".into()),
        ..LogParams::default()
    };
    let all = s.client.logs_text("default", "tools", &web).await.unwrap();
    assert_eq!(all, "one\ntwo\nthree\n");
    let tail = LogParams {
        tail_lines: Some(1),
        ..web.clone()
    };
    assert_eq!(
        s.client.logs_text("default", "tools", &tail).await.unwrap(),
        "three\n"
    );
    let ambiguous = s
        .client
        .logs_text("default", "tools", &LogParams::default())
        .await
        .unwrap_err();
    assert!(
        ambiguous
            .to_string()
            .contains("choose one of: [web ticker]"),
        "{ambiguous}"
    );

    // Follow: new lines keep arriving.
    let follow = LogParams {
        container: Some("ticker".into()),
        follow: true,
        tail_lines: Some(0),
        ..LogParams::default()
    };
    let mut stream = Box::pin(s.client.logs("default", "tools", &follow).await.unwrap());
    let mut followed = String::new();
    while followed.matches("tick").count() < 3 {
        use futures::StreamExt;
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("followed lines")
            .unwrap()
            .unwrap();
        followed.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);

    // Exec: output and exit code come back.
    let (code, text) = exec(&s.client, "tools", Some("web"), "cat index.html; exit 7").await;
    assert_eq!((code, text.as_str()), (7, "served\n"));

    // Port-forward: a byte stream into the pod's port 8080.
    let mut forward = s
        .client
        .port_forward("default", "tools", 8080)
        .await
        .unwrap();
    forward
        .to_pod
        .send(b"GET /index.html HTTP/1.0\r\n\r\n".to_vec())
        .await
        .unwrap();
    let mut response = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), forward.read())
        .await
        .expect("response in time")
    {
        response.extend(chunk.unwrap());
    }
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("served\n"), "{response}");
    delete_all_and_check_clean(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_liveness_probes_flip_ready_and_restart_the_container() {
    if !runnable() {
        return;
    }
    let s = setup().await;
    let www = unique("probe");
    create(
        &s.client,
        json!({
            "metadata": {"name": "lively"},
            "spec": {"containers": [{"name": "web", "image": "busybox",
                "command": sh("echo ok > index.html; exec /bin/busybox httpd -f -p 8081 -h ."),
                "workingDir": www,
                "volumeMounts": [{"name": "www", "mountPath": www}],
                "livenessProbe": {"httpGet": {"path": "/index.html", "port": 8081},
                                  "periodSeconds": 1, "failureThreshold": 2},
                "readinessProbe": {"tcpSocket": {"port": 8081}, "periodSeconds": 1}}],
                "volumes": [{"name": "www", "emptyDir": {}}]}
        }),
    )
    .await;
    create(
        &s.client,
        json!({
            "metadata": {"name": "unready"},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                "command": [BUSYBOX, "sleep", "3600"],
                "readinessProbe": {"exec": {"command": [BUSYBOX, "test", "-e", "/nonexistent-skiff"]},
                                   "periodSeconds": 1}}]}
        }),
    )
    .await;
    wait_pod(&s.client, "lively", SETTLE, "ready", |p| {
        running(p) && ready(p)
    })
    .await;
    // Break the liveness check: the container is restarted (and serves again).
    let (code, _) = exec(&s.client, "lively", None, "rm index.html").await;
    assert_eq!(code, 0);
    wait_pod(&s.client, "lively", SETTLE, "restarted by liveness", |p| {
        restarts(p, "web") >= 1 && ready(p)
    })
    .await;
    let events = s
        .client
        .list::<skiff_api::types::Event>(&skiff_client::ListParams::namespace("default"))
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unhealthy")
                && e.involved_object.name.as_deref() == Some("lively")),
        "an Unhealthy event"
    );
    // A failing readiness probe keeps the pod running but not ready.
    let pod = wait_pod(&s.client, "unready", SETTLE, "running", running).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod = s
        .client
        .get::<Pod>("default", &pod.metadata.name)
        .await
        .unwrap();
    assert!(running(&pod) && !ready(&pod), "{:?}", pod.status);
    assert!(!container(&pod, "main").ready);
    delete_all_and_check_clean(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_adopts_its_pods_and_leaks_nothing() {
    if !runnable() {
        return;
    }
    let mut s = setup().await;
    for i in 0..3 {
        create(
            &s.client,
            json!({
                "metadata": {"name": format!("keep-{i}")},
                "spec": {"containers": [{"name": "main", "image": "busybox",
                    "command": [BUSYBOX, "sleep", format!("{}", 4100 + i)]}]}
            }),
        )
        .await;
    }
    for i in 0..3 {
        wait_pod(&s.client, &format!("keep-{i}"), SETTLE, "running", running).await;
    }
    let before: Vec<Vec<i32>> = (0..3)
        .map(|i| pids_running(&[BUSYBOX, "sleep", &format!("{}", 4100 + i)]))
        .collect();
    s.agent.kill();
    // The pods live on without their agent.
    for (i, pids) in before.iter().enumerate() {
        assert_eq!(pids.len(), 1);
        assert_eq!(
            &pids_running(&[BUSYBOX, "sleep", &format!("{}", 4100 + i)]),
            pids
        );
    }
    s.agent.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, pids) in before.iter().enumerate() {
        let pod = wait_pod(&s.client, &format!("keep-{i}"), SETTLE, "running", running).await;
        assert_eq!(
            container(&pod, "main").restart_count,
            0,
            "adopted, not restarted"
        );
        assert_eq!(
            &pids_running(&[BUSYBOX, "sleep", &format!("{}", 4100 + i)]),
            pids
        );
    }
    delete_all_and_check_clean(&s).await;
}
