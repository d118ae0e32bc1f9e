//! Pods on the `oci` runtime end to end: a three-node control plane, one real
//! `skiff-agent --runtime oci` (runc, overlayfs), driven only through the SDK and the `skiff`
//! binary. The busybox image is built here from Debian's /bin/busybox
//! (`skiff_tests::images`), imported as a `docker save` archive and as an OCI image layout,
//! or pushed to a loopback `docker-registry` (`skiff_tests::registry`) and pulled by the
//! agent. Proves at pod level: imported images run as isolated containers (own PID
//! namespace and root filesystem), a missing tag shows `ErrImagePull` then
//! `ImagePullBackOff` and runs once pushed, a memory limit ends in `OOMKilled`, and a
//! corrupt archive is refused without changing the node's images.
//!
//! Needs root, /bin/busybox, runc (/usr/sbin/runc), overlayfs and cgroups; the registry
//! test also /usr/bin/docker-registry. Skipped without them, unless SKIFF_REQUIRE_PRIVILEGED
//! is set, when a missing prerequisite fails the test naming it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use skiff_api::types::{ContainerStatus, Event, Node, Pod};
use skiff_client::{Client, DeleteParams, ListParams};
use skiff_tests::agent::AgentProcess;
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually, skiff_cli as skiff};
use skiff_tests::host::BUSYBOX;
use skiff_tests::images::BusyboxImage;
use skiff_tests::pod_security::allow_privileged_pods;
use skiff_tests::registry::Registry;

const READY: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(60);
const NODE: &str = "node-1";

/// Root, busybox and what `--runtime oci` needs; the registry too when `registry`.
fn runnable(registry: bool) -> bool {
    skiff_tests::host::oci_tests_can_run(registry)
}

/// A test's cluster and agent. Dropping the agent kills it and sweeps what its pods left:
/// processes, mounts and container cgroups (`skiff_agent::cleanup::sweep`).
struct Setup {
    client: Client,
    /// `--server` for the CLI.
    servers: String,
    agent: AgentProcess,
    _cluster: ControlPlaneCluster,
    started: std::time::Instant,
    name: &'static str,
}

async fn setup(name: &'static str) -> Setup {
    setup_with(name, &[]).await
}

/// [`setup`] with more flags for the agent.
async fn setup_with(name: &'static str, extra: &[&str]) -> Setup {
    // Built first (once per test process), so that a test's time is its own.
    for program in ["skiff-control-plane", "skiff-agent", "skiff"] {
        binary(program);
    }
    let started = std::time::Instant::now();
    let cluster = ControlPlaneCluster::start(3).expect("start control plane");
    let client = cluster.client();
    client.wait_ready(READY).await.expect("cluster ready");
    // Explicitly: the default runtime may change. A short back-off for failed pulls.
    let mut args = vec![
        "--runtime",
        "oci",
        "--backoff-base",
        "1s",
        "--backoff-cap",
        "2s",
    ];
    args.extend_from_slice(extra);
    let agent = AgentProcess::start(NODE, &cluster.endpoints(), &args).expect("start agent");
    eventually(READY, || async {
        let node = client.get::<Node>("", NODE).await?;
        anyhow::ensure!(skiff_tests::nodes::is_ready(&node), "node not ready");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log()));
    Setup {
        client,
        servers: cluster.endpoints().join(","),
        agent,
        _cluster: cluster,
        started,
        name,
    }
}

impl Setup {
    fn skiff(&self, args: &[&str]) -> (i32, String, String) {
        skiff(&self.servers, args)
    }

    /// `skiff exec POD -- ARGV…`: (exit code, stdout, stderr).
    fn exec(&self, pod: &str, argv: &[&str]) -> (i32, String, String) {
        let args: Vec<&str> = ["exec", pod, "--"].iter().chain(argv).copied().collect();
        self.skiff(&args)
    }

    /// `skiff image import FILE --node node-1`, which must succeed; its output.
    fn import(&self, file: &Path) -> String {
        let (code, out, err) = self.skiff(&[
            "image",
            "import",
            &file.display().to_string(),
            "--node",
            NODE,
        ]);
        assert_eq!(
            code,
            0,
            "import {}: {err}\n{}",
            file.display(),
            self.agent.log()
        );
        out
    }

    /// Imports the busybox image (applet links included) tagged `tag`.
    fn import_busybox(&self, tag: &str) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("busybox.tar");
        std::fs::write(&archive, busybox_image().docker_archive(tag)).unwrap();
        self.import(&archive);
    }

    /// The log of `container` (the pod's only one: None) once it has `lines` lines.
    async fn log_lines(&self, pod: &str, container: Option<&str>, lines: usize) -> String {
        let params = skiff_client::LogParams {
            container: container.map(String::from),
            ..Default::default()
        };
        eventually(SETTLE, || async {
            let text = self.client.logs_text("default", pod, &params).await?;
            anyhow::ensure!(
                text.lines().count() >= lines,
                "{pod} {container:?}: {text:?}"
            );
            Ok(text)
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n----- agent log\n{}", self.agent.log()))
    }

    async fn create(&self, pod: serde_json::Value) {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.client.create(&pod).await.unwrap();
    }

    /// Polls the pod until `check` holds (failing with the last status and the agent's
    /// log).
    async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        eventually(SETTLE, || async {
            let pod = self.client.get::<Pod>("default", name).await?;
            anyhow::ensure!(check(&pod), "{name}: {what}: status {:#?}", pod.status);
            Ok(pod)
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n----- agent log\n{}", self.agent.log()))
    }

    /// The pod's events.
    async fn events_of(&self, pod: &str) -> Vec<Event> {
        self.client
            .list::<Event>(&ListParams::namespace("default"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .collect()
    }

    /// Deletes every pod, waits until the API has none and the agent left nothing running
    /// or mounted, no runc state and no container cgroup (the agent's leftovers include
    /// those).
    async fn delete_all_and_check_clean(&self) {
        let pods = self
            .client
            .list::<Pod>(&ListParams::namespace("default"))
            .await
            .unwrap();
        for pod in pods.items {
            let _ = self
                .client
                .delete::<Pod>(
                    "default",
                    &pod.metadata.name,
                    &DeleteParams::grace_period(1),
                )
                .await;
        }
        let runc_state = self.agent.data_dir().join("oci").join("runc");
        eventually(SETTLE, || async {
            let left = self
                .client
                .list::<Pod>(&ListParams::namespace("default"))
                .await?
                .items
                .len();
            anyhow::ensure!(left == 0, "{left} pods left");
            let leftovers = self.agent.leftovers();
            anyhow::ensure!(leftovers.is_empty(), "leftovers: {leftovers:#?}");
            let runc: Vec<PathBuf> = std::fs::read_dir(&runc_state)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            anyhow::ensure!(runc.is_empty(), "runc state left: {runc:?}");
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.agent.log()));
        eprintln!(
            "{}: passed in {:.1}s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// A file in the host's /tmp, removed on drop.
struct Marker(PathBuf);

impl Marker {
    fn new() -> Marker {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = PathBuf::from(format!(
            "/tmp/skiff-oci-pods-marker-{}-{nanos}",
            std::process::id()
        ));
        std::fs::write(&path, "the host's /tmp\n").unwrap();
        Marker(path)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.iter().find(|c| c.name == name))
        .unwrap_or_else(|| panic!("no status for container {name}: {:#?}", pod.status))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running")
        && pod.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// The waiting (reason, message) of the pod's first container, if it is waiting.
fn waiting(pod: &Pod) -> Option<(String, String)> {
    let waiting = pod
        .status
        .as_ref()?
        .container_statuses
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?;
    Some((
        waiting.reason.clone().unwrap_or_default(),
        waiting.message.clone().unwrap_or_default(),
    ))
}

/// A pod of one container `web` running busybox httpd on port 8080 from `image` (found on
/// the image's PATH through its applet links), ready once the port accepts connections.
fn httpd_pod(name: &str, image: &str, pull_policy: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "web",
            "image": image,
            "imagePullPolicy": pull_policy,
            "command": ["httpd", "-f", "-p", "8080"],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        }]}
    })
}

fn busybox_image() -> BusyboxImage {
    BusyboxImage::with_applets(&std::fs::read(BUSYBOX).expect("read /bin/busybox"))
}

/// 12 hex digits of a `sha256:…` digest, as `skiff image` shows ids.
fn short(digest: &str) -> &str {
    &digest["sha256:".len().."sha256:".len() + 12]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_pods_1_imported_images_run_in_their_own_pid_namespace_and_root() {
    if !runnable(false) {
        return;
    }
    let s = setup("oci_pods_1").await;
    let image = busybox_image();
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("busybox-docker.tar");
    std::fs::write(&docker, image.docker_archive("skiff-test/busybox:docker")).unwrap();
    let layout = image.oci_layout("skiff-test/busybox:oci");
    let oci = dir.path().join("busybox-oci.tar");
    std::fs::write(&oci, &layout.archive).unwrap();

    // Both archives import, under their names; the same config: the same image id.
    let id = image.config_digest();
    let docker_ref = "docker.io/skiff-test/busybox:docker";
    let oci_ref = "docker.io/skiff-test/busybox:oci";
    assert_eq!(
        s.import(&docker),
        format!("{NODE}: imported {docker_ref} (sha256:{})\n", short(&id))
    );
    assert_eq!(
        s.import(&oci),
        format!("{NODE}: imported {oci_ref} (sha256:{})\n", short(&id))
    );
    let (code, listed, err) = s.skiff(&["image", "ls", "--node", NODE]);
    assert_eq!(code, 0, "{err}");
    let rows: BTreeSet<(String, String)> = listed
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[1].to_string(), cols[2].to_string())
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [docker_ref, oci_ref]
        .iter()
        .map(|r| (r.to_string(), short(&id).to_string()))
        .collect();
    assert_eq!(rows, expected, "{listed}");
    let images = s.client.list_images(NODE).await.unwrap();
    let from_layout = images
        .iter()
        .find(|i| i.references == [oci_ref])
        .unwrap_or_else(|| panic!("{images:?}"));
    assert_eq!(from_layout.digest, layout.manifest_digest);

    // A pod from each; Never: nothing is pulled from anywhere.
    for (pod, image) in [
        ("from-docker", "skiff-test/busybox:docker"),
        ("from-oci", "skiff-test/busybox:oci"),
    ] {
        s.create(httpd_pod(pod, image, "Never")).await;
    }
    let marker = Marker::new();
    let host_root: BTreeSet<String> = std::fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for pod in ["from-docker", "from-oci"] {
        let status = s
            .wait_pod(pod, "running and ready", running_and_ready)
            .await;
        let web = container(&status, "web");
        let id = web.container_id.as_deref().unwrap_or_default();
        assert!(id.starts_with("oci://"), "{pod}: container id {id:?}");
        assert!(web.ready && web.restart_count == 0, "{web:#?}");

        // `ps` sees only the container: httpd as PID 1, and ps itself.
        let (code, ps, err) = s.exec(pod, &["ps", "-o", "pid,args"]);
        assert_eq!(code, 0, "{pod}: ps: {err}\n{}", s.agent.log());
        let lines: Vec<&str> = ps.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["PID", "COMMAND"],
            "{ps}"
        );
        let processes: Vec<(u32, String)> = lines[1..]
            .iter()
            .map(|l| {
                let (pid, args) = l.trim_start().split_once(' ').unwrap_or((l, ""));
                (pid.parse().unwrap(), args.trim().to_string())
            })
            .collect();
        assert_eq!(processes.len(), 2, "{pod}: only httpd and ps:\n{ps}");
        assert_eq!(processes[0], (1, "httpd -f -p 8080".to_string()), "{ps}");
        assert_eq!(processes[1].1, "ps -o pid,args", "{ps}");
        for word in ["skiff", "runc", "shim", BUSYBOX] {
            assert!(!ps.contains(word), "{pod}: {word} visible:\n{ps}");
        }
        let (code, cmdline, err) = s.exec(pod, &["cat", "/proc/1/cmdline"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(cmdline, "httpd\0-f\0-p\08080\0");

        // `/` is the image's: none of the host's own top-level entries, not its /tmp.
        let (code, ls, err) = s.exec(pod, &["ls", "-a", "/"]);
        assert_eq!(code, 0, "{err}");
        let root: BTreeSet<String> = ls.split_whitespace().map(str::to_string).collect();
        assert!(root.contains("bin") && root.contains("proc"), "{ls}");
        // What a container root always has (the runtime's mounts and files).
        let runtime_made = ["dev", "etc", "proc", "sys", "tmp", "run", ".", ".."];
        let from_host: Vec<&String> = root
            .iter()
            .filter(|e| host_root.contains(*e) && e.as_str() != "bin")
            .filter(|e| !runtime_made.contains(&e.as_str()))
            .collect();
        assert!(
            from_host.is_empty(),
            "{pod}: the host's {from_host:?} in /: {ls}"
        );
        assert!(!root.contains("usr"), "{ls}");
        let (code, out, err) = s.exec(pod, &["cat", &marker.path()]);
        assert_ne!(
            code,
            0,
            "{pod}: the host's {} is visible: {out}",
            marker.path()
        );
        assert!(err.contains("No such file or directory"), "{err}");
        let (code, _, _) = s.exec(pod, &["ls", "/usr"]);
        assert_ne!(code, 0, "{pod}: /usr exists");
    }
    // An image a container runs from cannot be removed from under it; once its pod is
    // gone it can.
    let (code, out, err) = s.skiff(&["image", "rm", docker_ref, "--node", NODE]);
    assert_ne!(code, 0, "removed an image in use: {out}");
    assert!(err.contains("in use by 1 container"), "{err}");
    s.delete_all_and_check_clean().await;
    let (code, out, err) = s.skiff(&["image", "rm", docker_ref, "--node", NODE]);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_pods_2_missing_tag_backs_off_then_runs_once_pushed() {
    if !runnable(true) {
        return;
    }
    let registry = Registry::start().await.expect("start docker-registry");
    let s = setup("oci_pods_2").await;
    let host = registry.host();
    let image_name = format!("{host}/skiff-test/busybox:v1");
    let reason = format!("manifest unknown: tag v1 not found in {host}/skiff-test/busybox");
    s.create(httpd_pod("pulled", &image_name, "Always")).await;

    // Every waiting state the pod goes through, in order, until ImagePullBackOff follows
    // ErrImagePull (a watch sees every status the agent writes).
    let seen: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let backed_off = |pod: Option<&Pod>| {
        let Some(pod) = pod else { return false };
        let mut seen = seen.lock().unwrap();
        if let Some(state) = waiting(pod)
            && seen.last() != Some(&state)
        {
            seen.push(state);
        }
        let first_error = seen.iter().position(|(r, _)| r == "ErrImagePull");
        first_error.is_some_and(|i| seen[i..].iter().any(|(r, _)| r == "ImagePullBackOff"))
    };
    let pod = s
        .client
        .wait_for::<Pod, _>("default", "pulled", backed_off, SETTLE)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: waiting states seen {:#?}\n{}",
                seen.lock().unwrap(),
                s.agent.log()
            )
        })
        .unwrap();
    let seen = seen.into_inner().unwrap();
    // ErrImagePull with the registry's reason, then the back-off naming the image.
    let err_image_pull = seen.iter().find(|(r, _)| r == "ErrImagePull").unwrap();
    assert_eq!(err_image_pull.1, reason, "{seen:#?}");
    let back_off = seen.iter().find(|(r, _)| r == "ImagePullBackOff").unwrap();
    assert_eq!(
        back_off.1,
        format!("Back-off pulling image \"{image_name}\": {reason}"),
        "{seen:#?}"
    );
    let reasons: BTreeSet<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
    let expected = BTreeSet::from(["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]);
    assert!(reasons.is_subset(&expected), "{seen:#?}");
    assert_eq!(phase(&pod), Some("Pending"), "{:#?}", pod.status);
    assert!(!container(&pod, "web").ready);
    assert_eq!(container(&pod, "web").container_id, None);

    // Warning events carry the registry's reason.
    let failed = format!("Failed to pull image \"{image_name}\": {reason}");
    eventually(SETTLE, || async {
        let events = s.events_of("pulled").await;
        let warnings: Vec<(&str, &str)> = events
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .map(|e| {
                (
                    e.reason.as_deref().unwrap_or_default(),
                    e.message.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        for wanted in [
            ("Failed", failed.as_str()),
            ("Failed", "Error: ErrImagePull"),
            ("Failed", "Error: ImagePullBackOff"),
        ] {
            anyhow::ensure!(warnings.contains(&wanted), "no {wanted:?} in {warnings:#?}");
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.agent.log()));

    // Pushed: the next try pulls it and the pod runs (back-off at most 2 s).
    let digest = registry
        .push("skiff-test/busybox", "v1", &busybox_image())
        .await
        .expect("push");
    let pod = s
        .wait_pod("pulled", "running and ready once pushed", running_and_ready)
        .await;
    let web = container(&pod, "web");
    assert!(
        web.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("oci://")),
        "{web:#?}"
    );
    assert_eq!(web.restart_count, 0, "{web:#?}");
    let (code, cmdline, err) = s.exec("pulled", &["cat", "/proc/1/cmdline"]);
    assert_eq!(
        (code, cmdline.as_str()),
        (0, "httpd\0-f\0-p\08080\0"),
        "{err}"
    );
    // The node's store has it, as pushed.
    let images = s.client.list_images(NODE).await.unwrap();
    let pulled = images
        .iter()
        .find(|i| i.references.contains(&image_name))
        .unwrap_or_else(|| panic!("{image_name} not in {images:#?}"));
    assert_eq!(pulled.digest, digest);
    let (code, listed, err) = s.skiff(&["image", "ls", "--node", NODE]);
    assert_eq!(code, 0, "{err}");
    assert!(listed.contains(&image_name), "{listed}");
    eventually(SETTLE, || async {
        let events = s.events_of("pulled").await;
        anyhow::ensure!(
            events.iter().any(|e| e.reason.as_deref() == Some("Pulled")
                && e.message.as_deref().is_some_and(|m| m.contains(&digest))),
            "no Pulled event naming {digest}"
        );
        Ok(())
    })
    .await
    .unwrap();
    s.delete_all_and_check_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_pods_3_memory_limit_is_reported_as_oomkilled() {
    if !runnable(false) {
        return;
    }
    let s = setup("oci_pods_3").await;
    s.import_busybox("skiff-test/busybox:oom");
    let limited = |name: &str, script: &str| {
        json!({
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "skiff-test/busybox:oom",
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "resources": {"limits": {"memory": "16Mi"}},
                }]
            }
        })
    };
    // A string doubling without end: the shell's heap outgrows 16 MiB within moments.
    s.create(limited(
        "hog",
        "x=0123456789abcdef; while true; do x=$x$x; done",
    ))
    .await;
    // An ordinary failure under the same limit is not OOMKilled.
    s.create(limited("fails", "exit 3")).await;
    let terminated = |pod: &Pod| {
        pod.status.as_ref().is_some_and(|s| {
            s.container_statuses
                .iter()
                .any(|c| c.state.as_ref().is_some_and(|st| st.terminated.is_some()))
        })
    };
    let hog = s.wait_pod("hog", "terminated", terminated).await;
    let main = container(&hog, "main");
    let ended = main.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(ended.reason.as_deref(), Some("OOMKilled"), "{main:#?}");
    assert_eq!(ended.exit_code, 137, "{main:#?}");
    assert!(
        ended
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("oci://")),
        "{main:#?}"
    );
    assert_eq!(main.restart_count, 0, "restartPolicy Never");
    let hog = s
        .wait_pod("hog", "Failed", |p| phase(p) == Some("Failed"))
        .await;
    assert_eq!(container(&hog, "main").restart_count, 0);

    let fails = s.wait_pod("fails", "terminated", terminated).await;
    let main = container(&fails, "main");
    let ended = main.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (ended.exit_code, ended.reason.as_deref()),
        (3, Some("Error")),
        "{main:#?}"
    );
    s.delete_all_and_check_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_pods_4_corrupt_archive_is_refused_and_changes_nothing() {
    if !runnable(false) {
        return;
    }
    let s = setup("oci_pods_4").await;
    let image = busybox_image();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("busybox.tar");
    let archive = image.docker_archive("skiff-test/busybox:good");
    std::fs::write(&good, &archive).unwrap();
    s.import(&good);
    let (code, before, err) = s.skiff(&["image", "ls", "--node", NODE]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(before.lines().count(), 2, "{before}");

    // Cut in the middle of the layer (most of the archive is busybox), and an OCI layout
    // (another image, never imported) cut in the middle of its gzip layer blob.
    let truncated = dir.path().join("truncated.tar");
    std::fs::write(&truncated, &archive[..archive.len() / 2]).unwrap();
    let layout = image.oci_layout("skiff-test/busybox:cut").archive;
    let truncated_layout = dir.path().join("truncated-oci.tar");
    std::fs::write(&truncated_layout, &layout[..layout.len() / 2]).unwrap();
    let gzip_layer = skiff_tests::images::sha256(&image.layer_gzip);
    let cut_members = [
        "/layer.tar has ".to_string(),
        format!(" blobs/sha256/{} has ", &gzip_layer["sha256:".len()..]),
    ];
    for (file, member) in [&truncated, &truncated_layout].into_iter().zip(cut_members) {
        let shown = file.display().to_string();
        let (code, out, err) = s.skiff(&["image", "import", &shown, "--node", NODE]);
        assert_ne!(code, 0, "{shown} imported: {out}");
        assert!(out.is_empty(), "{out}");
        // E.g. `Error from server (Invalid): invalid image archive: the uploaded archive:
        // truncated archive: member <id>/layer.tar has 995072 of 1990144 bytes`. (Not the
        // agent's spool file's path: it means nothing to the user.)
        assert!(
            err.starts_with(
                "Error from server (Invalid): invalid image archive: the uploaded archive: "
            ) && err.contains(": truncated archive: member ")
                && err.contains(&member)
                && err.trim_end().ends_with(" bytes"),
            "{shown}: {err}"
        );
        let (code, after, err) = s.skiff(&["image", "ls", "--node", NODE]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(after, before, "after importing {shown}");
        let uploads: Vec<PathBuf> = std::fs::read_dir(s.agent.data_dir().join("image-uploads"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(uploads.is_empty(), "uploads left: {uploads:?}");
    }
    // The image still runs.
    s.create(httpd_pod("still-good", "skiff-test/busybox:good", "Never"))
        .await;
    s.wait_pod("still-good", "running and ready", running_and_ready)
        .await;
    s.delete_all_and_check_clean().await;
}

/// A container of the busybox image that runs `script` and then sleeps (so the pod stays
/// Running while its log is read).
fn scripted(
    name: &str,
    image: &str,
    script: &str,
    security: serde_json::Value,
) -> serde_json::Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["/bin/busybox", "sh", "-c", format!("{script}; exec /bin/busybox sleep 3600")],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "securityContext": security,
    })
}

/// What a container's shell reports about itself: its uid, then its effective
/// capabilities, no_new_privs and seccomp mode as /proc/self/status lists them, then
/// whether it could write to `/`.
const SELF_REPORT: &str = "/bin/busybox id -u; \
    /bin/busybox grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; \
    if why=$( (echo x > /probe) 2>&1 ); then echo 'wrote to /'; else echo \"write to / failed: $why\"; fi";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_the_security_context_it_asks_for_over_containerds_defaults() {
    if !runnable(false) {
        return;
    }
    let s = setup("oci_pods_security_context").await;
    let image = "skiff-test/busybox:secure";
    s.import_busybox(image);
    s.create(json!({
        "metadata": {"name": "secure"},
        "spec": {
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000,
                                "supplementalGroups": [4], "fsGroup": 2000},
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                // The pod's user and groups; it may write to the emptyDir, whose files
                // belong to the fsGroup.
                scripted("user", image,
                    "/bin/busybox id -u; /bin/busybox id -G; echo hi > /scratch/by-user && /bin/busybox stat -c 'group %g' /scratch/by-user",
                    json!({})),
                // Root, locked down: every capability dropped, no escalation, Docker's
                // seccomp profile, a read-only root.
                scripted("locked", image, SELF_REPORT, json!({
                    "runAsUser": 0, "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true,
                    "seccompProfile": {"type": "RuntimeDefault"}})),
                // Root with nothing asked for: containerd's defaults.
                scripted("defaults", image, SELF_REPORT, json!({"runAsUser": 0})),
            ],
        }
    }))
    .await;
    s.wait_pod("secure", "running", |p| phase(p) == Some("Running"))
        .await;
    let user = s.log_lines("secure", Some("user"), 3).await;
    let lines: Vec<&str> = user.lines().collect();
    assert_eq!(lines[0], "1000", "{user}");
    let groups: BTreeSet<&str> = lines[1].split_whitespace().collect();
    assert_eq!(groups, BTreeSet::from(["3000", "4", "2000"]), "{user}");
    assert_eq!(lines[2], "group 2000", "{user}");

    let locked = s.log_lines("secure", Some("locked"), 5).await;
    assert_eq!(
        locked.lines().collect::<Vec<_>>(),
        [
            "0",
            "CapEff:\t0000000000000000",
            "NoNewPrivs:\t1",
            "Seccomp:\t2",
            "write to / failed: sh: can't create /probe: Read-only file system",
        ],
        "{locked}"
    );
    let defaults = s.log_lines("secure", Some("defaults"), 5).await;
    assert_eq!(
        defaults.lines().collect::<Vec<_>>(),
        [
            "0",
            "CapEff:\t00000000a80425fb",
            "NoNewPrivs:\t0",
            "Seccomp:\t2",
            "wrote to /",
        ],
        "{defaults}"
    );
    // The host's timer list is masked: an empty file over it (it is there on the host).
    assert!(Path::new("/proc/timer_list").exists());
    let (code, out, err) = s.skiff(&[
        "exec",
        "secure",
        "-c",
        "defaults",
        "--",
        "/bin/busybox",
        "wc",
        "-c",
        "/proc/timer_list",
    ]);
    assert_eq!(
        (code, out.split_whitespace().next()),
        (0, Some("0")),
        "{out}{err}"
    );
    // The pids limit (the agent's default) holds in the container's cgroup (v1 or v2).
    let (code, out, err) = s.skiff(&[
        "exec",
        "secure",
        "-c",
        "defaults",
        "--",
        "/bin/busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!((code, out.trim()), (0, "4096"), "{out}{err}");
    s.delete_all_and_check_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_refuses_a_root_image_and_privileged_runs_unconfined_where_allowed() {
    if !runnable(false) {
        return;
    }
    let s = setup("oci_pods_non_root_and_privileged").await;
    let image = "skiff-test/busybox:root";
    s.import_busybox(image);
    let pod = |name: &str, pod_security: serde_json::Value, security: serde_json::Value| {
        json!({
            "metadata": {"name": name},
            "spec": {
                "securityContext": pod_security,
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "containers": [scripted("main", image, SELF_REPORT, security)],
            }
        })
    };

    // The image runs as root: runAsNonRoot refuses it in the kubelet's words.
    s.create(pod("rootless", json!({"runAsNonRoot": true}), json!({})))
        .await;
    let rootless = s
        .wait_pod("rootless", "refused", |p| {
            waiting(p).is_some_and(|(reason, _)| reason == "CreateContainerConfigError")
        })
        .await;
    let uid = rootless.metadata.uid.clone().unwrap();
    assert_eq!(
        waiting(&rootless).unwrap().1,
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"rootless_default({uid})\", container: main)"
        )
    );
    // With a user it may run.
    s.create(pod(
        "non-root",
        json!({"runAsNonRoot": true, "runAsUser": 1000}),
        json!({}),
    ))
    .await;
    s.wait_pod("non-root", "running", |p| phase(p) == Some("Running"))
        .await;

    // Privileged, once the namespace admits it: every capability, no filter, and a
    // writable root as asked.
    allow_privileged_pods(&s.client, "default").await.unwrap();
    s.create(pod("privileged", json!({}), json!({"privileged": true})))
        .await;
    s.wait_pod("privileged", "running", |p| phase(p) == Some("Running"))
        .await;
    let report = s.log_lines("privileged", None, 5).await;
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "0", "{report}");
    assert_eq!(
        lines[2..],
        ["NoNewPrivs:\t0", "Seccomp:\t0", "wrote to /"],
        "{report}"
    );
    // Every capability the agent holds (this process's bounding set: same user, same host).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    assert_eq!(lines[1], format!("CapEff:\t{bounding}"), "{report}");
    s.delete_all_and_check_clean().await;
}

/// What the node's image store holds: its images as `skiff image ls` lists them, its
/// unpacked layers, and whatever is left in its staging dir.
fn store_state(s: &Setup) -> (String, Vec<String>, Vec<String>) {
    let (code, listed, err) = s.skiff(&["image", "ls", "--node", NODE]);
    assert_eq!(code, 0, "{err}");
    let names = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(s.agent.data_dir().join("images").join(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    (listed, names("layers"), names("tmp"))
}

/// `skiff image import` of `archive`, which must fail; its stderr.
fn refused_import(s: &Setup, dir: &Path, name: &str, archive: &[u8]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, archive).unwrap();
    let (code, out, err) = s.skiff(&[
        "image",
        "import",
        &file.display().to_string(),
        "--node",
        NODE,
    ]);
    assert_ne!(code, 0, "{name} imported: {out}");
    err
}

/// The control plane's `--node-grace` (its default): a node whose agent stops heartbeating
/// for this long is no longer Ready.
const NODE_GRACE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_images_are_refused_or_fail_their_pod_alone_and_the_node_stays_up() {
    if !runnable(false) {
        return;
    }
    let s = setup_with(
        "oci_pods_hostile_images",
        &[
            "--image-max-unpacked-bytes",
            "16777216",
            "--image-max-manifest-bytes",
            "65536",
        ],
    )
    .await;
    let good = "skiff-test/busybox:good";
    s.import_busybox(good);
    let before = store_state(&s);
    let dir = tempfile::tempdir().unwrap();

    // A tar bomb: 32 MiB of zeros, 32 KiB gzip'ed, past the test's 16 MiB cap.
    let bomb =
        skiff_image::layer(&[skiff_image::Entry::file("zeros", vec![0u8; 32 << 20])]).unwrap();
    let config =
        skiff_image::Config::default().to_json(&skiff_image::diff_ids(std::slice::from_ref(&bomb)));
    let gzipped = [skiff_image::gzip(&bomb)];
    let archive = skiff_image::DockerSave::new(&config, &gzipped, &["skiff-test/bomb:1"])
        .tar()
        .unwrap();
    assert!(archive.len() < 1 << 20, "{} bytes", archive.len());
    let err = refused_import(&s, dir.path(), "bomb.tar", &archive);
    assert!(
        err.contains(
            "exceeds the limit of 16777216 unpacked bytes per image (--image-max-unpacked-bytes)"
        ),
        "{err}"
    );
    assert_eq!(store_state(&s), before, "after the tar bomb");

    // A manifest of 100 KiB (padded with an annotation), past the test's 64 KiB cap.
    let image = busybox_image();
    let mut manifest =
        skiff_image::OciManifest::new(image.config.clone(), vec![image.layer_gzip.clone()]);
    let mut padded: serde_json::Value = serde_json::from_slice(&manifest.json).unwrap();
    padded["annotations"] = json!({"padding": "x".repeat(100 << 10)});
    manifest.json = padded.to_string().into_bytes();
    let layout = skiff_image::OciLayout::single(
        skiff_image::host_architecture(),
        manifest,
        "skiff-test/busybox:long",
    );
    let err = refused_import(&s, dir.path(), "long.tar", &layout.archive().tar().unwrap());
    assert!(
        err.contains(
            "exceeds the limit of 65536 bytes for a manifest (--image-max-manifest-bytes)"
        ),
        "{err}"
    );
    assert_eq!(store_state(&s), before, "after the long manifest");

    // An image whose /etc/passwd links to /dev/zero, which it carries as a device node:
    // read through the link, the agent would read for ever.
    let hostile_layer = skiff_image::layer(&[
        skiff_image::Entry::dir("etc/"),
        skiff_image::Entry::symlink("etc/passwd", "/dev/zero"),
        skiff_image::Entry::dir("dev/"),
        skiff_image::Entry::char_device("dev/zero", 1, 5),
    ])
    .unwrap();
    let layers = [image.layer.clone(), hostile_layer];
    let config = skiff_image::Config {
        env: vec!["PATH=/bin".into()],
        ..skiff_image::Config::default()
    }
    .to_json(&skiff_image::diff_ids(&layers));
    let hostile = dir.path().join("hostile.tar");
    std::fs::write(
        &hostile,
        skiff_image::DockerSave::new(&config, &layers, &["skiff-test/hostile:1"])
            .tar()
            .unwrap(),
    )
    .unwrap();
    s.import(&hostile);
    s.create(json!({
        "metadata": {"name": "hostile"},
        "spec": {"containers": [{
            "name": "main",
            "image": "skiff-test/hostile:1",
            "imagePullPolicy": "Never",
            "command": ["sleep", "3600"],
        }]}
    }))
    .await;
    let refused = s
        .wait_pod("hostile", "refused", |p| {
            waiting(p).is_some_and(|(reason, _)| reason == "CreateContainerError")
        })
        .await;
    let (_, message) = waiting(&refused).unwrap();
    assert!(
        message.contains("the image's /etc/passwd is not a regular file"),
        "{message}"
    );
    // The rest of the node goes on: another pod starts, and the node heartbeats.
    s.create(httpd_pod("fine", good, "Never")).await;
    s.wait_pod("fine", "running and ready", running_and_ready)
        .await;
    // Heartbeats live in the leader's memory, not in the Node: the node stays Ready for
    // longer than the grace period while the agent retries the hostile pod.
    let until = std::time::Instant::now() + NODE_GRACE + Duration::from_secs(2);
    while std::time::Instant::now() < until {
        let node = s.client.get::<Node>("", NODE).await.unwrap();
        assert!(
            skiff_tests::nodes::is_ready(&node),
            "node-1 not ready: {:#?}\n{}",
            node.status,
            s.agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.delete_all_and_check_clean().await;
}

/// Host pids of processes whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// Waits until a process runs `argv`.
async fn started(argv: &[&str]) {
    eventually(SETTLE, || async {
        anyhow::ensure!(!pids_running(argv).is_empty(), "{argv:?} not running");
        Ok(())
    })
    .await
    .unwrap();
}

/// How long until no process runs `argv` (at most 10 s).
async fn gone_after(argv: &[&str]) -> Duration {
    let start = std::time::Instant::now();
    while !pids_running(argv).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{argv:?} still runs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_dies_with_its_client_and_one_session_past_the_cap_is_refused() {
    if !runnable(false) {
        return;
    }
    let s = setup_with(
        "oci_pods_exec_sessions",
        &["--max-exec-sessions-per-pod", "2"],
    )
    .await;
    let image = "skiff-test/busybox:exec";
    s.import_busybox(image);
    s.create(httpd_pod("shell", image, "Never")).await;
    s.wait_pod("shell", "running and ready", running_and_ready)
        .await;
    let argv = |n: &str| vec!["sleep".to_string(), n.to_string()];

    // One session through the SDK, one through a `skiff exec` process.
    let sdk = s
        .client
        .exec("default", "shell", None, &argv("3141"), false)
        .await
        .unwrap();
    started(&["sleep", "3141"]).await;
    let config = skiff_tests::cluster::cluster_files(&s.servers)
        .expect("the cluster's files")
        .admin_conf;
    let mut cli = std::process::Command::new(binary("skiff"))
        .args(["--server", &s.servers, "--config"])
        .arg(&config)
        .args(["exec", "shell", "--", "sleep", "2718"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    started(&["sleep", "2718"]).await;

    // A third is one too many.
    let refused = s
        .client
        .exec("default", "shell", None, &argv("1618"), false)
        .await
        .err()
        .expect("a third session refused");
    assert!(
        refused.to_string().contains(
            "too many exec sessions in pod default/shell: 2 open, the limit is 2 (--max-exec-sessions-per-pod)"
        ),
        "{refused}"
    );

    // The clients go away: their commands end within a second.
    drop(sdk);
    let waited = gone_after(&["sleep", "3141"]).await;
    eprintln!("the SDK's exec was gone {waited:?} after its client");
    assert!(
        waited < Duration::from_secs(1),
        "the SDK's exec ran {waited:?} on"
    );
    cli.kill().unwrap();
    cli.wait().unwrap();
    let waited = gone_after(&["sleep", "2718"]).await;
    eprintln!("the CLI's exec was gone {waited:?} after its client");
    assert!(
        waited < Duration::from_secs(1),
        "the CLI's exec ran {waited:?} on"
    );

    // Their sessions are closed: a new one runs.
    let output = eventually(SETTLE, || async {
        Ok(s.client
            .exec_output("default", "shell", None, &["echo".into(), "again".into()])
            .await?)
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "again\n");
    s.delete_all_and_check_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_restarts_only_the_current_and_previous_attempts_logs_are_on_disk() {
    if !runnable(false) {
        return;
    }
    let s = setup("oci_pods_log_retention").await;
    let image = "skiff-test/busybox:logs";
    s.import_busybox(image);
    s.create(json!({
        "metadata": {"name": "crasher"},
        "spec": {"containers": [{
            "name": "main",
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", "echo attempt; exit 1"],
        }]}
    }))
    .await;
    let pod = s
        .wait_pod("crasher", "restarted twice", |p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.first())
                .is_some_and(|c| c.restart_count >= 2)
        })
        .await;
    let sandbox: String = pod
        .metadata
        .uid
        .unwrap()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let logs = s
        .agent
        .data_dir()
        .join("oci/sandboxes")
        .join(sandbox)
        .join("logs/main");
    // Two files, the newest attempt's and the one before (it keeps restarting meanwhile).
    let kept = eventually(SETTLE, || async {
        let mut attempts: Vec<u32> = std::fs::read_dir(&logs)?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
            .collect();
        attempts.sort();
        anyhow::ensure!(
            attempts.len() == 2 && attempts[0] + 1 == attempts[1] && attempts[1] >= 2,
            "attempts logged: {attempts:?}"
        );
        Ok(attempts)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.agent.log()));
    assert!(!logs.join("0.log").exists(), "kept {kept:?}");
    s.delete_all_and_check_clean().await;
}
