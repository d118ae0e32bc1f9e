//! The `oci` runtime on the real kernel with Debian's runc: a busybox image (built from
//! /bin/busybox, see `common`) imported into a temporary store runs in pod sandboxes.
//! Needs root, runc and /bin/busybox; skipped otherwise, unless SKIFF_REQUIRE_PRIVILEGED
//! is set, when a missing prerequisite fails naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_agent::image::{ContainerSpec, ImageError, ImageStore};
use skiff_agent::logs::Rotation;
use skiff_agent::runtime::oci::{self, OciRuntime};
use skiff_agent::runtime::{
    ContainerConfig, ContainerOptions, ContainerState, Mount, Resources, Runtime, SandboxConfig,
};
use tokio::io::AsyncReadExt;

mod common;
use common::*;

const IMAGE: &str = "skiff.test/busybox:1";

fn runnable() -> bool {
    let missing = missing_root("namespaces, mounts, cgroups")
        .or_else(missing_busybox)
        .or_else(|| {
            oci::check_host(&oci::find_runc())
                .err()
                .map(|e| e.to_string())
        });
    runs_without(missing.as_deref())
}

/// A runtime over a fresh store holding the busybox image; everything goes on drop.
struct Fixture {
    runtime: Option<OciRuntime>,
    dir: tempfile::TempDir,
}

fn new_runtime(dir: &Path) -> OciRuntime {
    let store = ImageStore::open(dir.join("images")).unwrap();
    OciRuntime::new(
        dir.join("oci"),
        env!("CARGO_BIN_EXE_skiff-agent"),
        Rotation::default(),
        store,
        oci::find_runc(),
    )
    .unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("skiff-test-oci-")
        .tempdir()
        .unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    let layers = layers(&std::fs::read(BUSYBOX).unwrap());
    let files = docker_files(&layers, &default_config(&layers), &[IMAGE]);
    let archive = dir.path().join("busybox.tar");
    std::fs::write(&archive, pack(&files)).unwrap();
    store.import(&archive).unwrap();
    Fixture {
        runtime: Some(new_runtime(dir.path())),
        dir,
    }
}

impl Fixture {
    fn rt(&self) -> &OciRuntime {
        self.runtime.as_ref().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Whatever a failed test left: sandboxes (containers, runc state, cgroups, mounts),
        // then any mount still below the dir. On a thread of its own: the test's tokio
        // runtime may still be on this one.
        let runtime = self.runtime.take();
        let dir = self.dir.path().to_path_buf();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let runtime = runtime.unwrap_or_else(|| new_runtime(&dir));
            rt.block_on(async {
                for sandbox in runtime.list_sandboxes().await.unwrap_or_default() {
                    let _ = runtime.remove_sandbox(&sandbox.id).await;
                }
            });
            for m in mounts_under(&dir).iter().rev() {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        })
        .join()
        .unwrap();
    }
}

fn sandbox_config(uid: &str) -> SandboxConfig {
    SandboxConfig {
        pod_uid: uid.into(),
        namespace: "default".into(),
        name: "web".into(),
        hostname: "web-pod".into(),
        host_network: false,
    }
}

fn unique_uid() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

fn container(name: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        attempt: 0,
        image: IMAGE.into(),
        argv: vec![],
        env: BTreeMap::new(),
        working_dir: None,
        mounts: vec![],
    }
}

fn options(command: &[&str], args: &[&str]) -> ContainerOptions {
    ContainerOptions {
        spec: ContainerSpec {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        resources: Resources::default(),
        pod_ip: None,
        security: Default::default(),
    }
}

fn sh(script: &str) -> ContainerOptions {
    options(&["/bin/busybox", "sh", "-c", script], &[])
}

async fn run(
    rt: &OciRuntime,
    sandbox: &str,
    config: &ContainerConfig,
    options: &ContainerOptions,
) -> String {
    let info = rt
        .create_container_with(sandbox, config, options)
        .await
        .unwrap();
    assert!(info.id.starts_with("oci://"), "{}", info.id);
    rt.start_container(&info.id).await.unwrap();
    info.id
}

async fn wait_exited(rt: &OciRuntime, id: &str) -> ContainerState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = rt.container_status(id).await.unwrap().state;
        if matches!(state, ContainerState::Exited { .. }) || Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn exit_of(state: &ContainerState) -> (i32, String) {
    match state {
        ContainerState::Exited {
            exit_code, reason, ..
        } => (*exit_code, reason.clone()),
        other => panic!("not exited: {other:?}"),
    }
}

/// Runs busybox applet `argv` in the container (the image links only a few applets):
/// (exit code, stdout, stderr).
async fn exec(rt: &OciRuntime, id: &str, argv: &[&str]) -> (i32, String, String) {
    let argv: Vec<String> = std::iter::once("busybox")
        .chain(argv.iter().copied())
        .map(str::to_string)
        .collect();
    let mut process = rt.exec(id, &argv).await.unwrap();
    drop(process.child.stdin.take());
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = process.child.stdout.take().unwrap();
    let mut stderr = process.child.stderr.take().unwrap();
    let (a, b) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    a.unwrap();
    b.unwrap();
    let status = process.child.wait().await.unwrap();
    (status.code().unwrap_or(-1), out, err)
}

async fn log_of(rt: &OciRuntime, id: &str) -> String {
    let path = rt.container_status(id).await.unwrap().log_path;
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `argv` succeeds in the container (a server that is still starting).
async fn exec_until_ok(rt: &OciRuntime, id: &str, argv: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, err) = exec(rt, id, argv).await;
        if code == 0 {
            return out;
        }
        assert!(Instant::now() < deadline, "{argv:?}: {code} {err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    skiff_agent::runtime::sandbox::mounts_under(dir).expect("read /proc/self/mountinfo")
}

/// Removes a host file on drop.
struct Marker(PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn oci_runtime_1_image_containers_share_the_pod_network_and_nothing_else() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = f.rt();
    let sandbox = rt
        .create_sandbox(&sandbox_config(&unique_uid()))
        .await
        .unwrap();

    // The image's Entrypoint + Cmd: busybox httpd -f -p 8080, in WorkingDir /data.
    let web = run(rt, &sandbox.id, &container("web"), &options(&[], &[])).await;
    // With an emptyDir volume, bind-mounted from the sandbox.
    let mut client_config = container("client");
    client_config.mounts = vec![Mount {
        host_path: sandbox.volumes_dir.join("scratch"),
        container_path: PathBuf::from("/scratch"),
        read_only: false,
    }];
    // Created once the pod has its address: /etc/hosts names the pod on it, in both
    // containers (they share the file).
    let mut client_options = sh("exec sleep 3600");
    client_options.pod_ip = Some("10.244.7.9".parse().unwrap());
    let client = run(rt, &sandbox.id, &client_config, &client_options).await;
    for container in [&web, &client] {
        let (code, hosts, err) = exec(rt, container, &["cat", "/etc/hosts"]).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            hosts
                .lines()
                .any(|l| l.split_whitespace().eq(["10.244.7.9", "web-pod"])),
            "{hosts}"
        );
        assert!(!hosts.contains("127.0.1.1"), "{hosts}");
    }
    let (code, _, err) = exec(rt, &client, &["sh", "-c", "echo vol > /scratch/f"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(sandbox.volumes_dir.join("scratch/f")).unwrap(),
        "vol\n"
    );

    // From the second container over the pod's loopback: the layer-2 file in /data.
    let page = exec_until_ok(
        rt,
        &client,
        &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/new.txt"],
    )
    .await;
    assert_eq!(page, "new\n");
    // And from the agent side through connect (port-forward).
    rt.connect(&sandbox.id, 8080, Duration::from_secs(2))
        .await
        .unwrap();

    // Its own PID namespace: httpd is PID 1, the other container's sleep is not there.
    let (code, ps, err) = exec(rt, &web, &["ps", "-o", "pid,args"]).await;
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = ps.lines().skip(1).collect();
    assert!(
        rows.iter()
            .any(|r| r.trim_start().starts_with("1 ") && r.contains("httpd")),
        "{ps}"
    );
    assert!(!ps.contains("sleep"), "{ps}");
    assert!(rows.len() <= 3, "only httpd and ps itself: {ps}");

    // The host's root filesystem is not visible; `/` is the overlay.
    let marker = Marker(PathBuf::from(format!(
        "/tmp/skiff-oci-marker-{}",
        unique_uid()
    )));
    std::fs::write(&marker.0, "host").unwrap();
    let (code, _, _) = exec(rt, &client, &["cat", &marker.0.display().to_string()]).await;
    assert_ne!(code, 0, "the host's {} is visible", marker.0.display());
    let (_, mounts, _) = exec(rt, &client, &["cat", "/proc/mounts"]).await;
    assert!(
        mounts.lines().any(|l| l.starts_with("overlay / overlay")),
        "{mounts}"
    );
    // The pod's hostname and /etc files.
    let (_, hostname, _) = exec(rt, &client, &["hostname"]).await;
    assert_eq!(hostname.trim(), "web-pod");
    let (_, hosts, _) = exec(rt, &client, &["cat", "/etc/hosts"]).await;
    assert!(hosts.contains("web-pod"), "{hosts}");

    // Env and WorkingDir from the image, overridden by the container's.
    let mut env_opts = sh("echo \"$GREETING $FOO $(pwd) $PATH\"");
    env_opts.spec.env = vec![("FOO".into(), "bar".into())];
    let image_env = run(rt, &sandbox.id, &container("imgenv"), &env_opts).await;
    assert_eq!(
        exit_of(&wait_exited(rt, &image_env).await),
        (0, "Completed".into())
    );
    assert!(
        log_of(rt, &image_env)
            .await
            .contains("hello bar /data /bin"),
        "{}",
        log_of(rt, &image_env).await
    );
    let mut env_opts = sh("echo \"$GREETING $(pwd)\"");
    env_opts.spec.env = vec![("GREETING".into(), "override".into())];
    env_opts.spec.working_dir = Some("/tmp".into());
    let over = run(rt, &sandbox.id, &container("overenv"), &env_opts).await;
    wait_exited(rt, &over).await;
    assert!(log_of(rt, &over).await.contains("override /tmp"));
    // args only: the image's Entrypoint (/bin/busybox) with them.
    let args = run(
        rt,
        &sandbox.id,
        &container("args"),
        &options(&[], &["echo", "from-args"]),
    )
    .await;
    assert_eq!(exit_of(&wait_exited(rt, &args).await).0, 0);
    assert!(log_of(rt, &args).await.contains("from-args"));

    rt.remove_sandbox(&sandbox.id).await.unwrap();
}

#[tokio::test]
async fn oci_runtime_2_memory_limit_kills_with_oomkilled() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = f.rt();
    let sandbox = rt
        .create_sandbox(&sandbox_config(&unique_uid()))
        .await
        .unwrap();
    // A string doubling without end: the shell's heap outgrows 16 MiB within moments.
    let mut hog = sh("x=0123456789abcdef; while true; do x=$x$x; done");
    hog.resources.memory_limit_bytes = Some(16 << 20);
    let id = run(rt, &sandbox.id, &container("hog"), &hog).await;
    let state = wait_exited(rt, &id).await;
    assert_eq!(exit_of(&state), (137, "OOMKilled".into()), "{state:?}");
    // An ordinary failure is not OOMKilled.
    let mut fails = sh("exit 3");
    fails.resources.memory_limit_bytes = Some(16 << 20);
    let id = run(rt, &sandbox.id, &container("fails"), &fails).await;
    assert_eq!(exit_of(&wait_exited(rt, &id).await), (3, "Error".into()));
    rt.remove_sandbox(&sandbox.id).await.unwrap();
}

#[tokio::test]
async fn oci_runtime_3_cpu_limit_is_in_the_containers_cgroup() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = f.rt();
    let sandbox = rt
        .create_sandbox(&sandbox_config(&unique_uid()))
        .await
        .unwrap();
    let mut opts = sh("exec sleep 3600");
    opts.resources.cpu_limit_millis = Some(500);
    opts.resources.cpu_request_millis = Some(500);
    let id = run(rt, &sandbox.id, &container("cpu"), &opts).await;
    let dir = rt.cgroup_dir(&id, "cpu").unwrap();
    let v1 = dir.join("cpu.cfs_quota_us");
    if v1.exists() {
        assert_eq!(std::fs::read_to_string(&v1).unwrap().trim(), "50000");
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.cfs_period_us"))
                .unwrap()
                .trim(),
            "100000"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.shares"))
                .unwrap()
                .trim(),
            "512"
        );
    } else {
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap().trim(),
            "50000 100000"
        );
    }
    // The container's processes are in it.
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(!procs.trim().is_empty());
    rt.remove_sandbox(&sandbox.id).await.unwrap();
    assert!(!dir.exists(), "{} left", dir.display());
}

#[tokio::test]
async fn oci_runtime_4_stop_exit_codes_and_nothing_left_after_remove() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = f.rt();
    let sandbox = rt
        .create_sandbox(&sandbox_config(&unique_uid()))
        .await
        .unwrap();
    // SIGTERM handled: exits with its own code well within the grace period.
    let graceful = run(
        rt,
        &sandbox.id,
        &container("graceful"),
        &sh("trap 'exit 3' TERM; while true; do sleep 0.1; done"),
    )
    .await;
    // SIGTERM ignored: SIGKILL after the grace period.
    let stubborn = run(
        rt,
        &sandbox.id,
        &container("stubborn"),
        &sh("trap '' TERM; while true; do sleep 0.1; done"),
    )
    .await;
    let ok = run(rt, &sandbox.id, &container("ok"), &sh("true")).await;
    let seven = run(rt, &sandbox.id, &container("seven"), &sh("exit 7")).await;
    let missing = run(
        rt,
        &sandbox.id,
        &container("missing"),
        &options(&["/no/such/program"], &[]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    rt.stop_container(&graceful, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        exit_of(&wait_exited(rt, &graceful).await),
        (3, "Error".into())
    );

    let started = Instant::now();
    rt.stop_container(&stubborn, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(exit_of(&wait_exited(rt, &stubborn).await).0, 137);

    assert_eq!(
        exit_of(&wait_exited(rt, &ok).await),
        (0, "Completed".into())
    );
    assert_eq!(exit_of(&wait_exited(rt, &seven).await), (7, "Error".into()));
    // runc could not start it: StartError with runc's reason, as Kubernetes shows it.
    match wait_exited(rt, &missing).await {
        ContainerState::Exited {
            exit_code,
            reason,
            message,
            ..
        } => {
            assert_eq!((exit_code, reason.as_str()), (128, "StartError"));
            let message = message.unwrap_or_default();
            assert!(message.contains("/no/such/program"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let cgroups: Vec<PathBuf> = [&graceful, &stubborn, &ok]
        .iter()
        .flat_map(|id| {
            [
                rt.cgroup_dir(id, "memory").unwrap(),
                rt.cgroup_dir(id, "cpu").unwrap(),
                rt.cgroup_dir(id, "pids").unwrap(),
            ]
        })
        .collect();
    assert!(cgroups.iter().any(|c| c.exists()), "kept until removal");

    rt.remove_container(&ok).await.unwrap();
    rt.remove_container(&ok).await.unwrap();
    rt.remove_sandbox(&sandbox.id).await.unwrap();
    assert_eq!(mounts_under(f.dir.path()), Vec::<String>::new());
    for c in &cgroups {
        assert!(!c.exists(), "cgroup {} left", c.display());
    }
    let runc_state: Vec<_> = std::fs::read_dir(rt.runc_root())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(runc_state.is_empty(), "runc state left: {runc_state:?}");
    assert!(rt.list_sandboxes().await.unwrap().is_empty());
    assert!(rt.list_containers(None).await.unwrap().is_empty());
    let sandboxes: Vec<_> = std::fs::read_dir(f.dir.path().join("oci/sandboxes"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(sandboxes.is_empty(), "{sandboxes:?}");
}

#[tokio::test]
async fn oci_runtime_5_a_new_runtime_adopts_running_containers() {
    if !runnable() {
        return;
    }
    let mut f = fixture();
    let sandbox = f
        .rt()
        .create_sandbox(&sandbox_config(&unique_uid()))
        .await
        .unwrap();
    let id = run(
        f.rt(),
        &sandbox.id,
        &container("long"),
        &sh("trap 'exit 4' TERM; echo up; while true; do sleep 0.1; done"),
    )
    .await;
    // The agent goes away (its runtime with it) and a new one starts on the same dir. A
    // lease whose container is gone (a crash between removal and release) ends then; the
    // live container's lease stays, so its image cannot be removed under it.
    let store = ImageStore::open(f.dir.path().join("images")).unwrap();
    store.lease("gone_web_0", IMAGE).unwrap();
    f.runtime = Some(new_runtime(f.dir.path()));
    let holders: Vec<String> = store.leases().unwrap().into_keys().collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert!(id.ends_with(&holders[0]), "{id} holds {holders:?}");
    match store.remove(IMAGE) {
        Err(ImageError::InUse { containers, .. }) => assert_eq!(containers, holders),
        other => panic!("removing an image in use: {other:?}"),
    }
    assert_eq!(store.list().unwrap().len(), 1);
    let rt = f.rt();
    let listed = rt.list_containers(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(matches!(listed[0].state, ContainerState::Running { .. }));
    let (code, out, _) = exec(rt, &id, &["echo", "adopted"]).await;
    assert_eq!((code, out.as_str()), (0, "adopted\n"));
    rt.stop_container(&id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(exit_of(&wait_exited(rt, &id).await), (4, "Error".into()));
    assert!(log_of(rt, &id).await.contains("up"));
    rt.remove_sandbox(&sandbox.id).await.unwrap();
    assert!(store.leases().unwrap().is_empty());
    store.remove(IMAGE).unwrap();
    assert!(store.list().unwrap().is_empty());
}
