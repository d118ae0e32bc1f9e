//! The Docker deployment (`deploy/docker/`): builds the FROM-scratch image with
//! `deploy/docker/build.sh --binaries` from this run's own binaries, starts the compose
//! project (3 control-plane containers, 3 agent containers on one bridge network) under a
//! unique project name, and drives it only through
//! `docker exec <container> skiff --server IP:7000 …`: every address the test uses lives on
//! the compose network, and all traffic to it starts inside a container. Checks: 3 Ready nodes, a 3-replica busybox httpd deployment spread over the
//! 3 agents, pod to pod across agent containers by pod IP with the client's own pod IP seen
//! by the server (no NAT), then the Raft leader's container is killed and the surviving
//! members still take writes and still hold what was written before.
//!
//! Needs docker (a reachable daemon), docker-compose and /bin/busybox; skipped otherwise,
//! unless SKIFF_REQUIRE_PRIVILEGED is set (CI), which turns a missing one into a failure.
//! The project is always taken down (`down -v --remove-orphans`), also on a panic, and
//! projects left by crashed runs (`skiffci<pid>` of a dead pid) are swept at the start.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::cluster::{binary, without_test_env};
use skiff_tests::host::BUSYBOX;

/// The image the test builds and runs (kept afterwards: the next build reuses its layers).
const IMAGE: &str = "skiff:ci";
/// Compose project names of this test: `skiffci<pid>`.
const PROJECT_PREFIX: &str = "skiffci";
const SETTLE: Duration = Duration::from_secs(60);
/// The control-plane members (`cpN`, id N, address .1N) and the agents (`agentN`, .2N).
const MEMBERS: [u8; 3] = [1, 2, 3];
const AGENTS: [u8; 3] = [1, 2, 3];
/// Where the test puts cp1's admin.conf in the container it runs `skiff` in.
const ADMIN_CONF: &str = "/root/admin.conf";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

fn compose_file() -> PathBuf {
    workspace().join("deploy/docker/docker-compose.yml")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command to completion; a command that cannot start is an error too.
fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// What is missing for this test, if anything.
fn missing_prerequisite() -> Option<&'static str> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works("docker", &["version", "--format", "{{.Server.Version}}"]) {
        Some("docker with a reachable daemon")
    } else if !works("docker-compose", &["version"]) {
        Some("docker-compose (apt-get install docker-compose)")
    } else if !Path::new(BUSYBOX).exists() {
        Some("/bin/busybox (apt-get install busybox-static)")
    } else {
        None
    }
}

fn runnable() -> bool {
    skiff_tests::host::runs_without(missing_prerequisite())
}

/// `docker-compose -p PROJECT -f deploy/docker/docker-compose.yml ARGS`.
fn compose(project: &str, net: &str, args: &[&str]) -> Output {
    run(Command::new("docker-compose")
        .arg("-p")
        .arg(project)
        .arg("-f")
        .arg(compose_file())
        .args(args)
        .env("SKIFF_IMAGE", IMAGE)
        .env("SKIFF_NET", net))
}

fn down(project: &str, net: &str) -> Output {
    compose(
        project,
        net,
        &["down", "-v", "--remove-orphans", "--timeout", "1"],
    )
}

/// Names printed by `docker <kind> ls --format …` that belong to our projects.
fn docker_names(args: &[&str]) -> Vec<String> {
    let out = run(Command::new("docker").args(args));
    text(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(PROJECT_PREFIX))
        .map(str::to_string)
        .collect()
}

/// The projects of this test that exist now (containers, networks or volumes), by name.
fn projects_present() -> BTreeSet<String> {
    let mut projects = BTreeSet::new();
    let label = "{{.Label \"com.docker.compose.project\"}}";
    projects.extend(docker_names(&["ps", "-a", "--format", label]));
    projects.extend(docker_names(&["network", "ls", "--format", label]));
    projects.extend(docker_names(&["volume", "ls", "--format", label]));
    projects
}

/// Takes down what crashed runs (their pid is gone) left behind.
fn sweep_stale_projects() {
    for project in projects_present() {
        let pid = project[PROJECT_PREFIX.len()..].parse::<u32>().ok();
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            continue;
        }
        println!("sweeping {project}, left by a run that is gone");
        let out = down(&project, "10.251.0");
        if !out.status.success() {
            eprintln!("sweep of {project}: {}", text(&out.stderr));
        }
    }
}

/// The running compose project; dropping it takes everything down (also on a panic, after
/// printing the containers' logs).
struct Cluster {
    project: String,
    /// First three octets of the project's /24.
    net: String,
}

impl Cluster {
    /// `docker-compose up -d`, on the first of a few /24s that no other network holds.
    fn up(project: &str) -> Cluster {
        let first = 1 + std::process::id() % 250;
        let mut errors = Vec::new();
        for n in first..first + 4 {
            let net = format!("10.251.{}", n % 254 + 1);
            let cluster = Cluster {
                project: project.to_string(),
                net: net.clone(),
            };
            let out = compose(project, &net, &["up", "-d", "--no-build"]);
            if out.status.success() {
                return cluster;
            }
            let err = text(&out.stderr);
            // Another network holds this subnet: try the next one (the guard cleans up).
            if err.contains("overlap") {
                errors.push(format!("{net}.0/24: overlaps"));
                continue;
            }
            panic!("docker-compose up failed on {net}.0/24:\n{err}");
        }
        panic!("no free /24 for the compose network: {errors:?}");
    }

    fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.net)
    }

    fn member_ip(&self, id: u8) -> String {
        self.ip(10 + id)
    }

    fn agent_ip(&self, n: u8) -> String {
        self.ip(20 + n)
    }

    fn endpoint(&self, id: u8) -> String {
        format!("{}:7000", self.member_ip(id))
    }

    /// docker-compose 1.x names containers `<project>_<service>_<n>`.
    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    /// `docker exec [-i] CONTAINER skiff --server SERVERS ARGS`: (exit code, stdout, stderr).
    fn skiff_with_input(
        &self,
        container: &str,
        servers: &[u8],
        args: &[&str],
        input: Option<&str>,
    ) -> (i32, String, String) {
        let servers: Vec<String> = servers.iter().map(|id| self.endpoint(*id)).collect();
        let mut command = Command::new("docker");
        command.arg("exec");
        if input.is_some() {
            command.arg("-i");
        }
        command
            .arg(container)
            .arg("skiff")
            .arg("--config")
            .arg(ADMIN_CONF)
            .arg("--server")
            .arg(servers.join(","))
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            text(&output.stdout),
            text(&output.stderr),
        )
    }

    fn skiff(&self, container: &str, servers: &[u8], args: &[&str]) -> (i32, String, String) {
        self.skiff_with_input(container, servers, args, None)
    }

    fn logs(&self) -> String {
        let out = compose(
            &self.project,
            &self.net,
            &["logs", "--no-color", "--tail", "40"],
        );
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- logs of compose project {} ---\n{}",
                self.project,
                self.logs()
            );
        }
        let out = down(&self.project, &self.net);
        if !out.status.success() {
            eprintln!(
                "docker-compose down of {} failed: {}",
                self.project,
                text(&out.stderr)
            );
        }
    }
}

/// Retries `f` until it returns Ok or `timeout` passes; panics with the last error.
fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: not within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A pod of the deployment: name, pod IP, node.
#[derive(Debug, Clone)]
struct PodRow {
    name: String,
    ip: String,
    node: String,
}

/// A busybox httpd whose CGI `/cgi-bin/ip` answers with the caller's address as it saw
/// it. The process runtime runs the image's own /bin/busybox.
fn web_deployment(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
      - name: www
        emptyDir: {{}}
      containers:
      - name: httpd
        image: busybox
        command:
        - {BUSYBOX}
        - sh
        - -c
        - |
          mkdir -p /www/cgi-bin
          printf '#!{BUSYBOX} sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip
          chmod +x /www/cgi-bin/ip
          exec {BUSYBOX} httpd -f -p 8080 -h /www
        volumeMounts:
        - {{name: www, mountPath: /www}}
"#
    )
}

#[test]
fn compose_cluster_pods_across_containers_and_leader_kill() {
    if !runnable() {
        return;
    }
    sweep_stale_projects();
    let project = format!("{PROJECT_PREFIX}{}", std::process::id());

    // The image: the binaries this test run built (dynamically linked, with the libraries
    // they load) and busybox, FROM scratch. build.sh's default, a static build of the whole
    // tree in a target dir of its own, would compile everything a second time.
    let binaries = binary("skiff-control-plane")
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf();
    for name in ["skiff-agent", "skiff"] {
        binary(name);
    }
    println!(
        "building {IMAGE} with deploy/docker/build.sh --binaries {} …",
        binaries.display()
    );
    let started = Instant::now();
    let out = run(without_test_env(&mut Command::new("bash"))
        .arg(workspace().join("deploy/docker/build.sh"))
        .args(["--tag", IMAGE, "--binaries"])
        .arg(&binaries)
        .current_dir(workspace())
        .env_remove("SKIFF_RELEASE")
        .env_remove("SKIFF_IMAGE"));
    assert!(
        out.status.success(),
        "deploy/docker/build.sh failed:\n{}",
        text(&out.stderr)
    );
    let image_build = started.elapsed();
    println!("timing: image build (docker build of this run's binaries) {image_build:.1?}");

    // The cluster, and 3 Ready nodes seen through the control plane.
    let started = Instant::now();
    let cluster = Cluster::up(&project);
    println!(
        "compose project {project} on {}.0/24 (control plane .11-.13, agents .21-.23)",
        cluster.net
    );
    // The agent containers are never killed: every `skiff` runs in agent 1's container,
    // with cp1's admin.conf (the CA and a cluster-admin certificate) copied there.
    let shell = cluster.container("agent1");
    let admin = eventually("cp1's admin.conf", SETTLE, || {
        let out = run(Command::new("docker").args([
            "exec",
            &cluster.container("cp1"),
            "cat",
            "/var/lib/skiff/admin.conf",
        ]));
        out.status
            .success()
            .then(|| text(&out.stdout))
            .ok_or_else(|| text(&out.stderr))
    });
    let mut copy = Command::new("docker")
        .args(["exec", "-i", &shell, "sh", "-c"])
        .arg(format!("umask 077; cat > {ADMIN_CONF}"))
        .stdin(Stdio::piped())
        .spawn()
        .expect("docker exec");
    copy.stdin
        .take()
        .unwrap()
        .write_all(admin.as_bytes())
        .unwrap();
    assert!(
        copy.wait().unwrap().success(),
        "copy admin.conf into {shell}"
    );
    let all = MEMBERS;
    let nodes = eventually("3 Ready nodes", SETTLE, || {
        let (code, out, err) = cluster.skiff(&shell, &all, &["get", "nodes", "-o", "wide"]);
        let ready: Vec<String> = out
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect();
        if code == 0 && ready.len() == 3 {
            Ok(out)
        } else {
            Err(format!("exit {code}\n{out}{err}"))
        }
    });
    let cluster_up = started.elapsed();
    println!("timing: cluster up (compose up -> 3 Ready nodes) {cluster_up:.1?}\n{nodes}");
    // What one `docker exec … skiff` costs by itself, to read the timings below against.
    let started = Instant::now();
    let (code, _, err) = cluster.skiff(&shell, &all, &["get", "namespaces"]);
    assert_eq!(code, 0, "{err}");
    println!(
        "timing: one `docker exec … skiff get namespaces` round trip {:.1?}",
        started.elapsed()
    );
    for n in AGENTS {
        assert!(
            nodes.lines().any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.first() == Some(&format!("agent-{n}").as_str())
                    && c.get(5) == Some(&cluster.agent_ip(n).as_str())
            }),
            "agent-{n} with INTERNAL-IP {}:\n{nodes}",
            cluster.agent_ip(n)
        );
    }

    // Data written before the leader dies.
    let (code, out, err) = cluster.skiff(&shell, &all, &["create", "namespace", "before-kill"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "namespace/before-kill created\n"),
        "{err}"
    );
    let started = Instant::now();
    let (code, out, err) = cluster.skiff_with_input(
        &shell,
        &all,
        &["apply", "-f", "-"],
        Some(&web_deployment(3)),
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web created\n"),
        "{err}"
    );

    // Three Running pods, one per agent container.
    let jsonpath = "jsonpath={range .items[*]}{.metadata.name} {.status.phase} \
        {.status.podIP} {.spec.nodeName}{\"\\n\"}{end}";
    let running = |want: usize| {
        let (code, out, err) = cluster.skiff(
            &shell,
            &all,
            &["get", "pods", "-l", "app=web", "-o", jsonpath],
        );
        let rows: Vec<PodRow> = out
            .lines()
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [name, "Running", ip, node] => Some(PodRow {
                    name: name.into(),
                    ip: ip.into(),
                    node: node.into(),
                }),
                _ => None,
            })
            .collect();
        if code == 0 && rows.len() == want && out.lines().count() == want {
            Ok(rows)
        } else {
            Err(format!("exit {code}\n{out}{err}"))
        }
    };
    let pods = eventually("3 Running web pods", SETTLE, || running(3));
    println!(
        "timing: deployment of 3 pods Running {:.1?}",
        started.elapsed()
    );
    let spread: BTreeSet<&str> = pods.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(spread.len(), 3, "one pod per agent: {pods:?}");
    let cidrs: BTreeSet<&str> = pods
        .iter()
        .map(|p| &p.ip[..p.ip.rfind('.').unwrap()])
        .collect();
    assert_eq!(cidrs.len(), 3, "each agent hands out its own /24: {pods:?}");

    // Pod to pod across agent containers, by pod IP: the server sees the client's pod IP.
    let started = Instant::now();
    for from in &pods {
        for to in &pods {
            if from.name == to.name {
                continue;
            }
            let url = format!("http://{}:8080/cgi-bin/ip", to.ip);
            let seen = eventually(
                &format!("{} ({}) -> {} ({})", from.name, from.node, to.name, to.node),
                Duration::from_secs(30),
                || {
                    let (code, out, err) = cluster.skiff(
                        &shell,
                        &all,
                        &[
                            "exec", &from.name, "--", BUSYBOX, "timeout", "3", BUSYBOX, "wget",
                            "-qO-", &url,
                        ],
                    );
                    if code == 0 {
                        Ok(out)
                    } else {
                        Err(format!("exit {code}\n{out}{err}"))
                    }
                },
            );
            // httpd listens on IPv6 and writes IPv4 peers as `[::ffff:a.b.c.d]`.
            let seen = seen
                .trim()
                .trim_start_matches("[::ffff:")
                .trim_end_matches(']');
            assert_eq!(
                seen, from.ip,
                "{} -> {}: the server saw {seen}, not the client's pod IP {} (NAT?)",
                from.name, to.name, from.ip
            );
        }
    }
    println!(
        "pod to pod: 6 of 6 calls across agent containers, each server saw the client's pod IP ({:.1?})",
        started.elapsed()
    );

    // The leader's container is killed.
    let (code, status, err) = cluster.skiff(&shell, &all, &["cluster", "status"]);
    assert_eq!(code, 0, "{status}{err}");
    let leader: u8 = status
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("leader: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no leader in\n{status}"));
    assert!(MEMBERS.contains(&leader), "{status}");
    println!("cluster status before the kill:\n{status}");
    let survivors: Vec<u8> = MEMBERS.into_iter().filter(|id| *id != leader).collect();
    let killed = Instant::now();
    let out = run(Command::new("docker")
        .arg("kill")
        .arg(cluster.container(&format!("cp{leader}"))));
    assert!(out.status.success(), "docker kill: {}", text(&out.stderr));

    // A write through the surviving members succeeds within a bounded time. A retry after an
    // attempt that committed but timed out on the client sees AlreadyExists: also a success.
    let attempts = std::cell::Cell::new(0);
    eventually("a write after the leader was killed", SETTLE, || {
        attempts.set(attempts.get() + 1);
        let (code, out, err) =
            cluster.skiff(&shell, &survivors, &["create", "namespace", "after-kill"]);
        if code == 0 || err.contains("AlreadyExists") {
            Ok(())
        } else {
            Err(format!("exit {code}\n{out}{err}"))
        }
    });
    let recovery = killed.elapsed();
    println!(
        "timing: leader (member {leader}) killed -> next successful write {recovery:.1?} \
         ({} attempt(s), each a `docker exec … skiff create`)",
        attempts.get()
    );

    // What was written before is still there, and the new leader's controllers act on it.
    let (code, status, err) = cluster.skiff(&shell, &survivors, &["cluster", "status"]);
    println!("cluster status after the kill:\n{status}{err}");
    assert_eq!(code, 0);
    assert!(
        !status.starts_with(&format!("leader: {leader} ")),
        "{status}"
    );
    for ns in ["before-kill", "after-kill"] {
        let (code, out, err) =
            cluster.skiff(&shell, &survivors, &["get", "namespace", ns, "-o", "name"]);
        assert_eq!(
            (code, out.trim()),
            (0, format!("namespace/{ns}").as_str()),
            "{err}"
        );
    }
    let (code, out, err) = cluster.skiff(
        &shell,
        &survivors,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!((code, out.trim()), (0, "3"), "{err}");
    let (code, out, err) = cluster.skiff(
        &shell,
        &survivors,
        &["scale", "deployment/web", "--replicas=4"],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web scaled\n"),
        "{err}"
    );
    let after = eventually("4 Running web pods after the scale", SETTLE, || running(4));
    let before: BTreeMap<&str, &str> = pods
        .iter()
        .map(|p| (p.name.as_str(), p.ip.as_str()))
        .collect();
    for pod in &pods {
        assert!(
            after.iter().any(|p| p.name == pod.name && p.ip == pod.ip),
            "{} ({}) is gone after the leader's death: {after:?} (before: {before:?})",
            pod.name,
            pod.ip
        );
    }
    drop(cluster);

    // Nothing of the project is left.
    let left = projects_present();
    assert!(
        !left.contains(&project),
        "{project} left containers, networks or volumes behind"
    );
}
