//! The `process` runtime against the real kernel: namespaces, mounts, processes. Needs
//! root and Debian's busybox-static at /bin/busybox; skipped otherwise, unless
//! SKIFF_REQUIRE_PRIVILEGED is set (CI sets it), when a missing prerequisite fails.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_agent::logs::{self, Rotation};
use skiff_agent::runtime::process::ProcessRuntime;
use skiff_agent::runtime::{ContainerConfig, ContainerState, Mount, Runtime, SandboxConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use skiff_testkit::BUSYBOX;

fn runnable() -> bool {
    skiff_testkit::root_and_busybox_or_skip("namespaces, mounts")
}

struct Fixture {
    runtime: ProcessRuntime,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("skiff-test-runtime-")
        .tempdir()
        .unwrap();
    Fixture {
        runtime: new_runtime(dir.path()),
        dir,
    }
}

fn new_runtime(dir: &Path) -> ProcessRuntime {
    ProcessRuntime::new(
        dir.join("root"),
        env!("CARGO_BIN_EXE_skiff-agent"),
        Rotation::default(),
    )
    .unwrap()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Whatever a failed test left: every sandbox goes (containers killed, mounts undone).
        // On a thread of its own: the test's runtime may still be on this one.
        let runtime = &self.runtime;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for sandbox in runtime.list_sandboxes().await.unwrap_or_default() {
                        let _ = runtime.remove_sandbox(&sandbox.id).await;
                    }
                });
            });
        });
    }
}

fn sandbox(uid: &str, name: &str) -> SandboxConfig {
    SandboxConfig {
        pod_uid: uid.into(),
        namespace: "default".into(),
        name: name.into(),
        hostname: name.into(),
        host_network: false,
    }
}

fn container(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        attempt: 0,
        image: "busybox".into(),
        argv: vec![BUSYBOX.into(), "sh".into(), "-c".into(), script.into()],
        env: BTreeMap::new(),
        working_dir: None,
        mounts: vec![],
    }
}

async fn wait_exited(runtime: &ProcessRuntime, id: &str) -> ContainerState {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = runtime.container_status(id).await.unwrap().state;
        if matches!(state, ContainerState::Exited { .. }) || Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn exit_code(state: &ContainerState) -> Option<i32> {
    match state {
        ContainerState::Exited { exit_code, .. } => Some(*exit_code),
        _ => None,
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    skiff_agent::runtime::sandbox::mounts_under(dir).expect("read /proc/self/mountinfo")
}

fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

#[tokio::test]
async fn pod_containers_share_localhost_volumes_and_hostname() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = &f.runtime;
    let sb = rt.create_sandbox(&sandbox("uid-1", "web-7")).await.unwrap();
    // Idempotent: the same pod uid gives the same sandbox.
    assert_eq!(
        rt.create_sandbox(&sandbox("uid-1", "web-7")).await.unwrap(),
        sb
    );
    let shared = sb.volumes_dir.join("shared");
    let mount_path = f.dir.path().join("mnt/shared");
    let volume = Mount {
        host_path: shared.clone(),
        container_path: mount_path.clone(),
        read_only: false,
    };

    let mut server = container(
        "server",
        "echo hello-from-server | busybox nc -l -p 8080; hostname > shared-dir/host; echo $GREETING > shared-dir/env; pwd > shared-dir/pwd; sleep 100",
    );
    server.mounts = vec![volume.clone()];
    server.working_dir = Some(mount_path.parent().unwrap().to_path_buf());
    server.env = BTreeMap::from([("GREETING".to_string(), "hi there".to_string())]);
    server.argv[3] = server.argv[3].replace("shared-dir", "shared");
    let server = rt.create_container(&sb.id, &server).await.unwrap();
    assert!(server.id.starts_with("process://"), "{}", server.id);
    assert_eq!(server.state, ContainerState::Created);
    rt.start_container(&server.id).await.unwrap();
    assert!(matches!(
        rt.container_status(&server.id).await.unwrap().state,
        ContainerState::Running { .. }
    ));

    let mut client = container(
        "client",
        &format!(
            // The retries before the server listens print "connection refused": keep them out of the log.
            "until busybox nc 127.0.0.1 8080 > {0}/got 2>/dev/null; do sleep 0.05; done; cat {0}/got",
            mount_path.display()
        ),
    );
    client.mounts = vec![volume];
    let client = rt.create_container(&sb.id, &client).await.unwrap();
    rt.start_container(&client.id).await.unwrap();
    let state = wait_exited(rt, &client.id).await;
    assert_eq!(exit_code(&state), Some(0), "{state:?}");
    let log = String::from_utf8(logs::read(&client.log_path, None, false).unwrap()).unwrap();
    assert_eq!(log, "hello-from-server\n");

    // The server ran on: its hostname, env and working dir, seen through the volume.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shared.join("pwd").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read = |f: &str| std::fs::read_to_string(shared.join(f)).unwrap();
    assert_eq!(read("host"), "web-7\n");
    assert_eq!(read("env"), "hi there\n");
    assert_eq!(
        read("pwd"),
        format!("{}\n", mount_path.parent().unwrap().display())
    );
    // The mount point was made for the pod; the host itself has no mount there.
    assert!(mount_path.is_dir());
    assert!(mounts_under(&mount_path).is_empty());

    // Exec inside the container: its namespaces, env and cwd; the exit code comes back.
    let argv: Vec<String> = [
        "/bin/busybox",
        "sh",
        "-c",
        "cat shared/env; hostname; exit 7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut exec = rt.exec(&server.id, &argv).await.unwrap();
    let mut out = String::new();
    exec.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let status = exec.child.wait().await.unwrap();
    assert_eq!(out, "hi there\nweb-7\n");
    assert_eq!(status.code(), Some(7));

    // Port-forward's connection: into the pod's loopback, which the host cannot reach.
    let mut echo = container("echo", "busybox nc -l -p 9090 -e busybox cat");
    echo.attempt = 3;
    let echo = rt.create_container(&sb.id, &echo).await.unwrap();
    rt.start_container(&echo.id).await.unwrap();
    let mut stream = None;
    for _ in 0..100 {
        match rt.connect(&sb.id, 9090, Duration::from_secs(1)).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let mut stream = stream.expect("connect into the pod");
    stream.write_all(b"ping\n").await.unwrap();
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping\n");

    // Another runtime instance on the same root (an agent restart) sees the same state.
    let again = new_runtime(f.dir.path());
    let listed = again.list_containers(Some(&sb.id)).await.unwrap();
    let names: Vec<(&str, u32)> = listed
        .iter()
        .map(|c| (c.name.as_str(), c.attempt))
        .collect();
    assert_eq!(names, vec![("client", 0), ("echo", 3), ("server", 0)]);
    assert!(matches!(listed[2].state, ContainerState::Running { .. }));
    assert_eq!(again.list_sandboxes().await.unwrap(), vec![sb.clone()]);

    // Removing the sandbox stops everything and leaves nothing behind.
    rt.remove_sandbox(&sb.id).await.unwrap();
    assert!(rt.list_sandboxes().await.unwrap().is_empty());
    assert_eq!(mounts_under(f.dir.path()), Vec::<String>::new());
    assert_eq!(processes_mentioning(f.dir.path()), Vec::<String>::new());
    assert!(
        !mount_path.exists(),
        "the mount point made for the pod is gone"
    );
    assert!(!shared.exists());
    rt.remove_sandbox(&sb.id).await.unwrap();
}

#[tokio::test]
async fn stop_is_graceful_then_forced() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = &f.runtime;
    let sb = rt.create_sandbox(&sandbox("uid-2", "stop")).await.unwrap();
    let polite = rt
        .create_container(
            &sb.id,
            &container(
                "polite",
                "trap 'exit 3' TERM; while true; do busybox sleep 0.05; done",
            ),
        )
        .await
        .unwrap();
    let mut stubborn = container(
        "stubborn",
        "trap '' TERM; while true; do busybox sleep 0.05; done",
    );
    stubborn.attempt = 1;
    let stubborn = rt.create_container(&sb.id, &stubborn).await.unwrap();
    for c in [&polite, &stubborn] {
        rt.start_container(&c.id).await.unwrap();
    }
    // Let the shells install their traps.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    rt.stop_container(&polite.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM ended it early"
    );
    let state = rt.container_status(&polite.id).await.unwrap().state;
    assert_eq!(exit_code(&state), Some(3), "{state:?}");

    let started = Instant::now();
    rt.stop_container(&stubborn.id, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    let state = rt.container_status(&stubborn.id).await.unwrap().state;
    match state {
        ContainerState::Exited {
            exit_code,
            signal,
            ref reason,
            ..
        } => {
            assert_eq!(
                (exit_code, signal, reason.as_str()),
                (137, Some(9), "Error")
            );
        }
        other => panic!("{other:?}"),
    }
    // Stopping an exited container is a no-op; removing twice too.
    rt.stop_container(&stubborn.id, Duration::ZERO)
        .await
        .unwrap();
    rt.remove_container(&stubborn.id).await.unwrap();
    rt.remove_container(&stubborn.id).await.unwrap();
    assert!(rt.container_status(&stubborn.id).await.is_err());
    rt.remove_sandbox(&sb.id).await.unwrap();
}

#[tokio::test]
async fn start_errors_and_killed_processes_are_reported() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = &f.runtime;
    let sb = rt
        .create_sandbox(&sandbox("uid-3", "errors"))
        .await
        .unwrap();
    let mut missing = container("missing", "");
    missing.argv = vec!["/no/such/program".into()];
    let missing = rt.create_container(&sb.id, &missing).await.unwrap();
    rt.start_container(&missing.id).await.unwrap();
    match rt.container_status(&missing.id).await.unwrap().state {
        ContainerState::Exited {
            reason, message, ..
        } => {
            assert_eq!(reason, "StartError");
            assert!(message.unwrap().contains("/no/such/program"));
        }
        other => panic!("{other:?}"),
    }

    let mut bad_dir = container("bad-dir", "true");
    bad_dir.working_dir = Some(PathBuf::from("/no/such/dir"));
    let bad_dir = rt.create_container(&sb.id, &bad_dir).await.unwrap();
    rt.start_container(&bad_dir.id).await.unwrap();
    let state = rt.container_status(&bad_dir.id).await.unwrap().state;
    assert!(
        matches!(state, ContainerState::Exited { ref reason, .. } if reason == "StartError"),
        "{state:?}"
    );

    // A hostPath that does not exist is refused before anything runs.
    let mut bad_volume = container("bad-volume", "true");
    bad_volume.mounts = vec![Mount {
        host_path: "/no/such/volume".into(),
        container_path: f.dir.path().join("v"),
        read_only: true,
    }];
    let err = rt.create_container(&sb.id, &bad_volume).await.unwrap_err();
    assert!(err.to_string().contains("/no/such/volume"), "{err}");

    // kill -9 from outside: reported like Kubernetes does (137, signal 9).
    let victim = rt
        .create_container(&sb.id, &container("victim", "busybox sleep 100"))
        .await
        .unwrap();
    rt.start_container(&victim.id).await.unwrap();
    let ContainerState::Running { pid, .. } = rt.container_status(&victim.id).await.unwrap().state
    else {
        panic!("not running");
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let state = wait_exited(rt, &victim.id).await;
    assert_eq!(exit_code(&state), Some(137), "{state:?}");

    // Read-only volumes are read-only inside.
    let ro_source = f.dir.path().join("ro-source");
    std::fs::create_dir(&ro_source).unwrap();
    let mut ro = container("ro", "echo x > /dev/null; touch \"$TARGET/f\"");
    let target = f.dir.path().join("ro-target");
    ro.env.insert("TARGET".into(), target.display().to_string());
    ro.mounts = vec![Mount {
        host_path: ro_source.clone(),
        container_path: target,
        read_only: true,
    }];
    let ro = rt.create_container(&sb.id, &ro).await.unwrap();
    rt.start_container(&ro.id).await.unwrap();
    let state = wait_exited(rt, &ro.id).await;
    assert_ne!(exit_code(&state), Some(0), "{state:?}");
    assert!(!ro_source.join("f").exists());
    rt.remove_sandbox(&sb.id).await.unwrap();
    assert_eq!(mounts_under(f.dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn host_network_pods_share_the_node_namespaces() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = &f.runtime;
    let mut config = sandbox("uid-4", "host-net");
    config.host_network = true;
    let sb = rt.create_sandbox(&config).await.unwrap();
    let c = rt
        .create_container(
            &sb.id,
            &container(
                "main",
                "busybox readlink /proc/self/ns/net; busybox readlink /proc/self/ns/uts",
            ),
        )
        .await
        .unwrap();
    rt.start_container(&c.id).await.unwrap();
    let state = wait_exited(rt, &c.id).await;
    assert_eq!(exit_code(&state), Some(0), "{state:?}");
    let seen = String::from_utf8(logs::read(&c.log_path, None, false).unwrap()).unwrap();
    let ours = format!(
        "{}\n{}\n",
        std::fs::read_link("/proc/self/ns/net").unwrap().display(),
        std::fs::read_link("/proc/self/ns/uts").unwrap().display()
    );
    assert_eq!(seen, ours);
    rt.remove_sandbox(&sb.id).await.unwrap();
    assert_eq!(mounts_under(f.dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn without_working_dir_a_container_starts_in_root() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = &f.runtime;
    let sb = rt.create_sandbox(&sandbox("uid-5", "cwd")).await.unwrap();
    let c = rt
        .create_container(&sb.id, &container("main", "busybox pwd"))
        .await
        .unwrap();
    rt.start_container(&c.id).await.unwrap();
    let state = wait_exited(rt, &c.id).await;
    assert_eq!(exit_code(&state), Some(0), "{state:?}");
    let seen = String::from_utf8(logs::read(&c.log_path, None, false).unwrap()).unwrap();
    assert_eq!(
        seen, "/\n",
        "Kubernetes' default working dir, not the agent's"
    );
    rt.remove_sandbox(&sb.id).await.unwrap();
}

#[tokio::test]
async fn a_sandbox_whose_namespaces_went_with_a_reboot_is_made_again_with_its_files() {
    if !runnable() {
        return;
    }
    let f = fixture();
    let rt = &f.runtime;
    let sb = rt
        .create_sandbox(&sandbox("uid-reboot", "rebooted"))
        .await
        .unwrap();
    let keep = sb.volumes_dir.join("data/kept.txt");
    std::fs::create_dir_all(keep.parent().unwrap()).unwrap();
    std::fs::write(&keep, "still here").unwrap();
    let c = rt
        .create_container(&sb.id, &container("main", "exec busybox sleep 1000"))
        .await
        .unwrap();
    rt.start_container(&c.id).await.unwrap();
    let old_netns = std::fs::metadata(&sb.netns_path).unwrap().ino();

    // A reboot: every process killed, every mount gone, the files left as they were.
    skiff_netplugin::hosts::kill_inside(&sb.netns_path);
    // Killed processes take a moment to go: sweep until nothing is left, as `skiff down` does.
    let left = skiff_agent::cleanup::sweep_until_clean(
        &[f.dir.path().to_path_buf()],
        Duration::from_secs(5),
    );
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(mounts_under(f.dir.path()), Vec::<String>::new());
    assert_eq!(processes_mentioning(f.dir.path()), Vec::<String>::new());
    assert!(!skiff_netplugin::netns::is_pinned(&sb.netns_path));

    // The agent starts again: a new runtime instance, the same sandbox made again in place.
    let rt = new_runtime(f.dir.path());
    let again = rt
        .create_sandbox(&sandbox("uid-reboot", "rebooted"))
        .await
        .unwrap();
    assert_eq!(again, sb);
    assert!(skiff_netplugin::netns::is_pinned(&sb.netns_path));
    assert_ne!(std::fs::metadata(&sb.netns_path).unwrap().ino(), old_netns);
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "still here");
    // The killed container reads as exited; its next attempt runs in the new namespaces.
    let old = rt.container_status(&c.id).await.unwrap();
    assert!(
        matches!(old.state, ContainerState::Exited { .. }),
        "{old:?}"
    );
    let mut next = container("main", "busybox hostname; busybox cat /data/kept.txt");
    next.attempt = 1;
    next.mounts.push(Mount {
        host_path: sb.volumes_dir.join("data"),
        container_path: PathBuf::from("/data"),
        read_only: true,
    });
    let c1 = rt.create_container(&sb.id, &next).await.unwrap();
    rt.start_container(&c1.id).await.unwrap();
    let state = wait_exited(&rt, &c1.id).await;
    assert_eq!(exit_code(&state), Some(0), "{state:?}");
    let seen = String::from_utf8(logs::read(&c1.log_path, None, false).unwrap()).unwrap();
    assert_eq!(seen, "rebooted\nstill here");
    rt.remove_sandbox(&sb.id).await.unwrap();
    assert_eq!(mounts_under(f.dir.path()), Vec::<String>::new());
}
